//! `gllm-bench report --anchor`: the "Ops beside ggml" section rendered from a small anchor
//! (`tests/data/anchor-ops/anchor`: rows of a real `ops.sql` and `graph-ops.txt`, plus an
//! unsupported op and a graph op without a perf row, both in the same format) and a result
//! file trimmed to a few cases (`tests/data/anchor-ops/results.json`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_gllm-bench");

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/anchor-ops")
}

fn report(anchor: &Path, out: &Path) -> Output {
    let results = data().join("results.json");
    Command::new(BIN)
        .args(["report", "--input", results.to_str().unwrap()])
        .args(["--anchor", anchor.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .env_remove("GLLM_FORCE_VARIANT")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A copy of the fixture anchor, `edit` applied to it.
fn anchor_copy(dir: &Path, edit: impl Fn(&Path)) -> PathBuf {
    let anchor = dir.join("anchor");
    std::fs::create_dir_all(&anchor).unwrap();
    for f in std::fs::read_dir(data().join("anchor")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, anchor.join(f.file_name().unwrap())).unwrap();
    }
    edit(&anchor);
    anchor
}

#[test]
fn the_section_pairs_ggml_ops_with_our_cases_and_draws_the_ratio_chart() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let o = report(&data().join("anchor"), &out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let section = md.split("## Ops beside ggml\n").nth(1).expect("the section").to_string();
    let section = section.split("\n## ").next().unwrap();
    assert!(md.find("## Beside llama.cpp").unwrap() < md.find("## Ops beside ggml").unwrap());
    for want in [
        "- 12 ops of the model's graphs timed by ggml, 10 of them in the 11 rows below; 4 listed \
         after the table without a counterpart or without a ggml figure.",
        "- At `quantized`: ours at least as fast in 8 rows, slower in 1: decode SWIGLU \
         ffn_swiglu-0 0.606×.",
        "![Ops beside ggml](ops-vs-ggml.png) ([SVG](ops-vs-ggml.svg))",
        "| phase | ggml op (inputs) | ggml | ggml rate | ours | `simd` | `flash` | `quantized` |",
        // the model's matrices: f32 at simd and flash, the interleaved Q4_1 blocks quantized
        "| decode | MUL_MAT `Qcur-0` q4_1[576x576], f32[576x1] | 17.2 µs | 38.6 GFLOP/s | f32 \
         stages: `linear_packed(m=1,n=576,k=576)`; quantized weights: \
         `qmatvec_q4_1x8(m=1,n=576,k=576)` | `avx2` 18.3 µs · **0.940× slower** | `avx2` 18.3 µs \
         · **0.940× slower** | `avx2` 8.75 µs · 1.97× |",
        // the layout ggml runs, quantized stage only
        "| decode | MUL_MAT `Qcur-0` q4_1[576x576], f32[576x1] | 17.2 µs | 38.6 GFLOP/s | \
         quantized weights: `qmatvec_q4_1(m=1,n=576,k=576)` | — | — | `avx2` 14.0 µs · 1.23× |",
        // Q and K rotations summed against one rope case
        "| decode | ROPE `Qcur-0` f32[64x9], i32[1x1] + ROPE `Kcur-0` f32[64x3], i32[1x1] | 568 ns \
         | 10.1 GB/s | `rope(m=1,heads=9,kv_heads=3,d=64,rot=64,pos=511,neox=0)` | `simd` 129 ns · \
         4.40× | `simd` 129 ns · 4.40× | `ggml` 350 ns · 1.62× |",
        // a prefill product from the 64-token cases, per FLOP
        "| prefill 512 | MUL_MAT `ffn_gate-0` q4_1[576x1536], f32[576x512] | 23.2 ms | 39.1 \
         GFLOP/s | f32 stages: `linear_packed(m=64,n=1536,k=576)`, time ×8.00 (per FLOP); \
         quantized weights: `qmatvec_q4_1x8(m=64,n=576,k=576)`, time ×21.3 (per FLOP) |",
        // no case near the shape: said, not dropped
        "| prefill 512 | ADD `ffn_inp-0` f32[576x512], f32[576x512] | 42.0 µs | 78.4 GB/s | `add`: \
         no hot case of `add` with any shape within ×32 of ggml's work (n=294912) in the inputs | \
         no case | no case | no case |",
        "- ROPE ↔ `rope`: ggml rotates Q and K in two ops, our `rope` case rotates both: the two \
         times are summed.",
        "### ggml ops without a counterpart",
        "| decode | GET_ROWS `node_923` (f32[576x1], i32[1x1]) | 65.5 ns | no counterpart: a row copy",
        "| decode | CPY `cpy-0` (f32[576x1], f32[576x1]) | - | not supported by ggml's CPU backend \
         here (`ops.sql`: supported = 0) |",
        "| decode | SOFT_MAX `kq_soft_max-0` (f32[512x1x9]) | - | listed in `graph-ops.txt` (line \
         13), no perf row in `ops.sql` |",
    ] {
        assert!(section.contains(want), "missing:\n{want}\nin:\n{section}");
    }
    assert_eq!(
        section.matches("\n| decode |").count() + section.matches("\n| prefill 512 |").count(),
        15
    );
    for ext in ["png", "svg"] {
        let chart = std::fs::read(out.join(format!("ops-vs-ggml.{ext}"))).unwrap();
        assert!(chart.len() > 1000, "{ext}: {} bytes", chart.len());
    }
    let svg = std::fs::read_to_string(out.join("ops-vs-ggml.svg")).unwrap();
    for label in ["decode ROPE Qcur-0+Kcur-0", "decode MUL_MAT Qcur-0 (rows)", "1.62×"] {
        assert!(svg.contains(label), "{label} not in the chart");
    }
}

#[test]
fn missing_ops_files_are_a_note_and_malformed_ones_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let anchor = anchor_copy(dir.path(), |a| {
        std::fs::remove_file(a.join("ops.sql")).unwrap();
        std::fs::remove_file(a.join("graph-ops.txt")).unwrap();
    });
    let out = dir.path().join("report");
    let o = report(&anchor, &out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## Ops beside ggml\n\nNote: "), "{md}");
    assert!(md.contains("has no `ops.sql` (anchor measured with `--bench-only`?)"), "{md}");
    assert!(!out.join("ops-vs-ggml.png").exists());

    let dir = tempfile::tempdir().unwrap();
    let anchor = anchor_copy(dir.path(), |a| {
        let sql = std::fs::read_to_string(a.join("ops.sql")).unwrap();
        std::fs::write(a.join("ops.sql"), sql.replacen("'17.209656'", "'fast'", 1)).unwrap();
    });
    let o = report(&anchor, &dir.path().join("report"));
    assert_eq!(o.status.code(), Some(3));
    let e = stderr(&o);
    assert!(e.contains("ops.sql") && e.contains("line ") && e.contains("time_us"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let anchor = anchor_copy(dir.path(), |a| {
        let g = std::fs::read_to_string(a.join("graph-ops.txt")).unwrap();
        std::fs::write(a.join("graph-ops.txt"), format!("{g}48 0 64 3\n")).unwrap();
    });
    let o = report(&anchor, &dir.path().join("report"));
    assert_eq!(o.status.code(), Some(3));
    let e = stderr(&o);
    assert!(e.contains("graph-ops.txt") && e.contains("line 14, ne[2]"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
}
