#!/usr/bin/env python3
"""Markdown tables of an anchor run (ci/llama-cpp-anchor.sh): llama-bench tokens/s and the
time of each op of the model's graph (test-backend-ops perf, SQL output).

Usage: anchor_summary.py DIR   (DIR holds build.txt and llama-bench.json and/or ops.sql)
"""
import json
import os
import re
import sqlite3
import sys


def bench_table(path):
    with open(path) as f:
        runs = json.load(f)
    rows = []
    for r in runs:
        if r.get("n_prompt", 0) and not r.get("n_gen", 0):
            test = f"prefill pp{r['n_prompt']}"
        elif r.get("n_gen", 0) and not r.get("n_prompt", 0):
            test = f"decode tg{r['n_gen']}"
        else:
            test = f"pp{r.get('n_prompt', 0)}+tg{r.get('n_gen', 0)}"
        rows.append((r["n_threads"], test, r["avg_ts"], r["stddev_ts"], len(r.get("samples_ts", []))))
    rows.sort(key=lambda x: (x[0], x[1]))
    out = ["| threads | test | tokens/s | ± stddev | runs |", "|---:|---|---:|---:|---:|"]
    for t, test, ts, sd, n in rows:
        out.append(f"| {t} | {test} | {ts:.1f} | {sd:.1f} | {n} |")
    return out


def parse_params(params):
    """`name=X,type=T,ne=[..],op_params=[..],sources=T[..]nb[..],T[..]` -> (name, ne, sources)."""
    name = re.search(r"name=([^,]*)", params)
    ne = re.search(r"(?:^|,)ne=\[([0-9,]+)\]", params)
    srcs = re.findall(r"(\w+)\[([0-9,]+)\](?:nb\[[0-9,]+\])?", params.split("sources=", 1)[-1])
    dims = lambda t: [int(x) for x in t.split(",")]
    return (
        name.group(1) if name else "",
        dims(ne.group(1)) if ne else [],
        [(t, dims(d)) for t, d in srcs],
    )


def token_count(op, ne, srcs):
    """Tokens an op processes: 1 in the decode graph, the batch in a prefill graph. Which
    dimension holds them depends on the op (gllm-bench's report reads them the same way)."""
    def dim(dims, i):
        return dims[i] if len(dims) > i else 1
    if op == "MUL_MAT" and len(srcs) > 1:
        return dim(srcs[1][1], 1)
    if op in ("ROPE", "FLASH_ATTN_EXT"):
        return dim(ne, 2)
    if op == "SET_ROWS" and srcs:
        # the output is the cache: count the rows written, except in the transposed V cache
        # (one value per row: tokens x the V width, not known here)
        if dim(srcs[0][1], 0) == 1 and dim(ne, 0) == 1:
            return 0
        return dim(srcs[0][1], 1)
    return dim(ne, 1)


def shape(t, d):
    while len(d) > 2 and d[-1] == 1:
        d = d[:-1]
    return f"{t}[{'x'.join(map(str, d))}]"


def ops_table(path):
    db = sqlite3.connect(":memory:")
    with open(path) as f:
        db.executescript(f.read())
    rows = db.execute(
        "SELECT op_name, op_params, time_us, bandwidth_gb_s, n_runs FROM test_backend_ops "
        "WHERE test_mode = 'perf' AND supported = 1"
    ).fetchall()
    out_rows = []
    for op, params, us, bw, n in rows:
        name, ne, srcs = parse_params(params)
        tokens = token_count(op, ne, srcs)
        phase = {0: "?", 1: "decode"}.get(tokens, f"prefill {tokens}")
        rate = f"{bw:.1f} GB/s" if bw else ""
        if op == "MUL_MAT" and len(ne) >= 2 and srcs:
            # a batched product (attention without flash: one per head) counts every matrix
            batch = (ne[2] if len(ne) > 2 else 1) * (ne[3] if len(ne) > 3 else 1)
            flops = 2.0 * ne[0] * ne[1] * batch * srcs[0][1][0]
            rate = f"{flops / us / 1e3:.1f} GFLOP/s"
        inputs = ", ".join(shape(t, d) for t, d in srcs)
        out_rows.append((phase, op, name, inputs, us, rate, n))
    # decode first, then the prefills by size
    out_rows.sort(key=lambda r: (r[0] != "decode", len(r[0]), r[0], r[1], -r[4]))
    out = ["| phase | op | tensor | inputs | µs | rate | runs |", "|---|---|---|---|---:|---:|---:|"]
    for phase, op, name, inputs, us, rate, n in out_rows:
        out.append(f"| {phase} | {op} | `{name}` | `{inputs}` | {us:.2f} | {rate} | {n} |")
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    lines = ["# llama.cpp measured on this machine", ""]
    with open(os.path.join(d, "build.txt")) as f:
        lines += [f"- {line.rstrip()}" for line in f if line.strip()]
    bench = os.path.join(d, "llama-bench.json")
    if os.path.exists(bench):
        lines += ["", "## llama-bench", ""] + bench_table(bench)
    ops = os.path.join(d, "ops.sql")
    if os.path.exists(ops):
        lines += [
            "",
            "## The model's ops (test-backend-ops perf, CPU backend, 1 thread)",
            "",
            "Every distinct op of the model's graphs at its shapes: a decode step over 512 "
            "positions, prefills of 512 and of 64 tokens, the latter also without flash attention "
            "(anchors measured before that list the 512-token prefill only); a prefill's "
            "vocabulary projection of all its tokens is left out (a prompt needs the last "
            "token's logits only). ggml's CPU backend here runs the f32 MUL_MAT of one token as a "
            "GEMV and quantizes the activations inside MUL_MAT.",
            "",
        ] + ops_table(ops)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
