#!/usr/bin/env python3
"""Markdown tables of an anchor run (ci/llama-cpp-anchor.sh): llama-bench tokens/s and the
time of each op of the model's graph (test-backend-ops perf, SQL output).

Usage: anchor_summary.py DIR   (DIR holds build.txt and llama-bench.json and/or ops.sql)
"""
import json
import os
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


def ops_table(path):
    db = sqlite3.connect(":memory:")
    with open(path) as f:
        db.executescript(f.read())
    rows = db.execute(
        "SELECT op_name, op_params, time_us, flops, bandwidth_gb_s, n_runs FROM test_backend_ops "
        "WHERE test_mode = 'perf' AND supported = 1 ORDER BY op_name, time_us DESC"
    ).fetchall()
    out = ["| op | params | µs | GFLOP/s | GB/s | runs |", "|---|---|---:|---:|---:|---:|"]
    for op, params, us, flops, bw, n in rows:
        gflops = f"{flops / 1e9:.1f}" if flops else ""
        gbs = f"{bw:.1f}" if bw else ""
        out.append(f"| {op} | `{params}` | {us:.2f} | {gflops} | {gbs} | {n} |")
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
            "Every distinct op of the prefill (512 tokens) and decode graphs, at the model's shapes.",
            "",
        ] + ops_table(ops)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
