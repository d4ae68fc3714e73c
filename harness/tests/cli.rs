//! The `gllm-bench` binary end to end: exit codes, error messages naming files and fields,
//! result files validated against the shipped schema, exports parsed back, reports written.
//!
//! Measurements use `--quick` on one small op case, so the suite stays fast; the numbers are
//! never asserted (speed is measured in benchmarks, not in tests).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use gllm_bench::baseline::{self, ResultFile};
use gllm_bench::schema;

const BIN: &str = env!("CARGO_BIN_EXE_gllm-bench");

/// A machine cache shared by every test (the peaks are measured once, ~3 s).
fn cache_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(BIN)
            .args(["machine", "--json"])
            .env("GLLM_BENCH_CACHE", dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        dir
    })
    .path()
}

fn gllm(args: &[&str], extra_env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("GLLM_BENCH_CACHE", cache_dir()).env_remove("GLLM_FORCE_VARIANT");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// The first registered op's first model case, as a filter.
fn small_filter() -> String {
    let op = &gllm_kernels::registry::ops()[0];
    let shape = (op.shapes)(gllm_kernels::registry::CaseSet::Model).remove(0);
    format!("^{}\\({}", regex_escape(op.name), regex_escape(&shape.to_string()))
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| if "()[]{}.*+?^$|\\".contains(c) { vec!['\\', c] } else { vec![c] })
        .collect()
}

/// One quick comparison over every built-in stage, shared by the tests that read results.
fn comparison() -> (&'static PathBuf, &'static ResultFile) {
    static RESULT: OnceLock<(tempfile::TempDir, PathBuf, ResultFile)> = OnceLock::new();
    let (_, p, r) = RESULT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cmp.json");
        let md = dir.path().join("cmp.md");
        let last = gllm_kernels::stage::builtin().last().unwrap().name.clone();
        let o = gllm(
            &[
                "compare",
                "--stage",
                &last,
                "--quick",
                "--cache",
                "both",
                "--filter",
                &small_filter(),
                "--json",
                path.to_str().unwrap(),
                "--markdown",
                md.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(stdout(&o).contains("vs first"), "{}", stdout(&o));
        assert!(std::fs::read_to_string(&md).unwrap().contains("| case | stage |"));
        let r = baseline::load(&path).unwrap();
        (dir, path, r)
    });
    (p, r)
}

#[test]
fn help_has_examples_and_exit_codes() {
    let o = gllm(&["--help"], &[]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("Exit codes"), "{}", stdout(&o));
    for cmd in ["list", "verify", "run", "compare", "report", "export", "machine"] {
        let o = gllm(&[cmd, "--help"], &[]);
        assert_eq!(code(&o), 0, "{cmd}");
        assert!(stdout(&o).contains("Example"), "{cmd} --help lacks an example");
    }
    for cmd in ["save", "list", "show", "diff"] {
        let o = gllm(&["baseline", cmd, "--help"], &[]);
        assert!(stdout(&o).contains("Example"), "baseline {cmd} --help lacks an example");
    }
}

#[test]
fn usage_errors_exit_3() {
    for args in [
        vec!["--no-such-flag"],
        vec!["no-such-command"],
        vec!["run"],
        vec!["run", "--stage", "simd", "--bogus"],
        vec!["run", "--stage", "simd", "--threads", "0"],
        vec!["run", "--stage", "simd", "--time-budget", "-1"],
        vec!["export", "--format", "xml", "--out", "x"],
    ] {
        let o = gllm(&args, &[]);
        assert_eq!(code(&o), 3, "{args:?}: {}", stderr(&o));
    }
    let o = gllm(&["run", "--stage", "no-such-stage", "--quick"], &[]);
    assert_eq!(code(&o), 3);
    assert!(stderr(&o).contains("no-such-stage"), "{}", stderr(&o));
    let o = gllm(&["run", "--stage", "naive", "--filter", "(", "--quick"], &[]);
    assert_eq!(code(&o), 3);
    assert!(stderr(&o).contains("--filter"), "{}", stderr(&o));
    let o = gllm(&["run", "--stage", "naive", "--filter", "^matches-nothing$", "--quick"], &[]);
    assert_eq!(code(&o), 3);
    let o = gllm(&["compare", "--stage", "naive", "--from", "simd"], &[]);
    assert_eq!(code(&o), 3);
    assert!(stderr(&o).contains("--from"), "{}", stderr(&o));
    let o = gllm(&["run", "--stage", "naive", "--model", "/nonexistent.gguf"], &[]);
    assert_eq!(code(&o), 3);
    let o = gllm(&["run", "--stage", "naive", "--save", "../escape"], &[]);
    assert_eq!(code(&o), 3);
}

#[test]
fn missing_and_corrupt_files_exit_3_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let o = gllm(&["baseline", "show", missing.to_str().unwrap()], &[]);
    assert_eq!(code(&o), 3);
    assert!(stderr(&o).contains("missing.json"), "{}", stderr(&o));
    let o = gllm(
        &["report", "--input", missing.to_str().unwrap(), "--out", dir.path().to_str().unwrap()],
        &[],
    );
    assert_eq!(code(&o), 3);

    let (_, good) = comparison();
    let text = serde_json::to_string(good).unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        ("truncated.json", text[..text.len() / 2].to_string(), "not valid JSON"),
        ("not-ours.json", "{\"hello\": 1}".into(), "schema_version"),
        (
            "future.json",
            text.replacen("\"schema_version\":1", "\"schema_version\":99", 1),
            "schema_version",
        ),
        (
            "wrong-type.json",
            {
                let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
                v["cases"][0]["unit"] = serde_json::json!(42);
                v.to_string()
            },
            "cases[0].unit",
        ),
        (
            "missing-field.json",
            {
                let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
                v["machine"].as_object_mut().unwrap().remove("cpu_model");
                v.to_string()
            },
            "machine.cpu_model",
        ),
    ];
    for (name, content, expect) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        for args in [
            vec!["baseline", "show", p.to_str().unwrap()],
            vec!["export", "--format", "bmf", "--input", p.to_str().unwrap(), "--out", "/dev/null"],
        ] {
            let o = gllm(&args, &[]);
            assert_eq!(code(&o), 3, "{name}: {}", stderr(&o));
            let err = stderr(&o);
            assert!(err.contains(name) && err.contains(expect), "{name}: {err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}

#[test]
fn result_files_validate_against_the_shipped_schema_and_round_trip() {
    let (path, result) = comparison();
    let text = std::fs::read_to_string(path).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let schema_text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/baseline.schema.json"),
    )
    .unwrap();
    let schema_value: serde_json::Value = serde_json::from_str(&schema_text).unwrap();
    let errors = schema::validate(&schema_value, &value);
    assert!(errors.is_empty(), "{errors:?}");
    // Serialize → parse gives the same value.
    let again = baseline::parse(path, &serde_json::to_string(result).unwrap()).unwrap();
    assert_eq!(&again, result);
    assert_eq!(result.schema_version, baseline::SCHEMA_VERSION);
    assert!(result.created.ends_with('Z') && result.created.contains('T'));
    assert!(!result.rustc.is_empty() && result.profile == "release");
    assert!(result.peaks.fma_gflops > 0.0);
    assert!(result.stages.len() >= 2);
    // Every case is hot and cold, with raw samples and a CI around the median.
    for c in &result.cases {
        let t = c.timing.as_ref().expect("verified cases have timings");
        assert!(t.samples_ns.len() >= 5);
        assert!(t.ci95_ns.lo <= t.median_ns && t.median_ns <= t.ci95_ns.hi);
        assert!(c.id.contains(&format!("variant={}", c.variant)) && c.id.contains("cache="));
    }
    for comp in &result.comparisons {
        assert_eq!(comp.entries.len(), result.stages.len());
        assert_eq!(comp.entries[0].speedup_vs_first.unwrap().ratio, 1.0);
    }
}

#[test]
fn exports_parse_back() {
    let (path, result) = comparison();
    let dir = tempfile::tempdir().unwrap();
    let timed: Vec<_> = result.cases.iter().filter(|c| c.timing.is_some()).collect();

    let bmf = dir.path().join("bmf.json");
    let o = gllm(
        &[
            "export",
            "--format",
            "bmf",
            "--input",
            path.to_str().unwrap(),
            "--out",
            bmf.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bmf).unwrap()).unwrap();
    let obj = v.as_object().unwrap();
    assert_eq!(obj.len(), timed.len());
    for c in &timed {
        let latency = &obj[&c.id]["latency"];
        let (lo, mid, hi) = (
            latency["lower_value"].as_f64().unwrap(),
            latency["value"].as_f64().unwrap(),
            latency["upper_value"].as_f64().unwrap(),
        );
        assert!(lo <= mid && mid <= hi);
        assert!(obj[&c.id]["throughput"]["value"].as_f64().unwrap() > 0.0);
    }

    for (format, unit_check) in
        [("github-action-benchmark", "ns/iter"), ("github-action-benchmark-bigger", "")]
    {
        let out = dir.path().join(format!("{format}.json"));
        let o = gllm(
            &[
                "export",
                "--format",
                format,
                "--input",
                path.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let arr = v.as_array().unwrap();
        assert_eq!(arr.len(), timed.len());
        for item in arr {
            assert!(item["name"].is_string() && item["value"].as_f64().unwrap() > 0.0);
            assert!(item["unit"].is_string() && item["range"].as_str().unwrap().starts_with('±'));
            if !unit_check.is_empty() {
                assert_eq!(item["unit"], unit_check);
            }
        }
    }

    let crit = dir.path().join("criterion");
    let o = gllm(
        &[
            "export",
            "--format",
            "criterion",
            "--input",
            path.to_str().unwrap(),
            "--out",
            crit.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let mut found = 0;
    for c in &timed {
        let value_str = format!("{},cache={}", c.shape, c.cache);
        let case_dir = crit.join(&c.op).join(&c.variant).join(&value_str).join("new");
        let bench: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(case_dir.join("benchmark.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(bench["group_id"], c.op.as_str());
        assert_eq!(bench["function_id"], c.variant.as_str());
        assert_eq!(bench["value_str"], value_str.as_str());
        assert!(bench["full_id"].is_string() && bench["directory_name"].is_string());
        let est: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(case_dir.join("estimates.json")).unwrap(),
        )
        .unwrap();
        for key in ["mean", "median", "median_abs_dev", "std_dev"] {
            let s = &est[key];
            assert!(s["point_estimate"].is_number(), "{key}");
            assert!(s["standard_error"].is_number(), "{key}");
            assert_eq!(s["confidence_interval"]["confidence_level"], 0.95);
            assert!(s["confidence_interval"]["lower_bound"].is_number());
            assert!(s["confidence_interval"]["upper_bound"].is_number());
        }
        assert_eq!(
            est["median"]["point_estimate"].as_f64().unwrap(),
            c.timing.as_ref().unwrap().median_ns
        );
        found += 1;
    }
    assert_eq!(found, timed.len());
}

#[test]
fn report_writes_markdown_and_charts() {
    let (path, _) = comparison();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let o =
        gllm(&["report", "--input", path.to_str().unwrap(), "--out", out.to_str().unwrap()], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for section in [
        "## Overview",
        "## What each stage changes",
        "## Measured results",
        "## Next opportunities",
        "## End to end",
    ] {
        assert!(md.contains(section), "report.md lacks {section}");
    }
    for chart in ["speedup", "roofline"] {
        let png = std::fs::read(out.join(format!("{chart}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{chart}.png is not a PNG");
        let svg = std::fs::read_to_string(out.join(format!("{chart}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{chart}.svg");
        assert!(md.contains(&format!("{chart}.png")));
    }
    assert!(md.contains("Tokens/s per stage") && md.contains("Not drawn"));
}

#[test]
fn baselines_save_list_show_diff() {
    let (path, _) = comparison();
    let root = tempfile::tempdir().unwrap();
    let env = [("GLLM_BASELINES_DIR", root.path())];
    let o = gllm(&["baseline", "save", "first", "--input", path.to_str().unwrap()], &env);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = gllm(&["baseline", "save", "second", "--input", path.to_str().unwrap()], &env);
    assert_eq!(code(&o), 0);
    let o = gllm(&["baseline", "list"], &env);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("first") && stdout(&o).contains("second"), "{}", stdout(&o));
    let stored = baseline::list_baselines(root.path());
    assert_eq!(stored.len(), 2);
    let r = baseline::load(&stored[0].2).unwrap();
    assert_eq!(stored[0].0, r.machine.id);
    let o = gllm(&["baseline", "show", "first"], &env);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = gllm(&["baseline", "diff", "first", "second"], &env);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Identical samples: every ratio is exactly 1.
    assert!(stdout(&o).contains("1.00×"), "{}", stdout(&o));
    let o = gllm(&["baseline", "show", "nonexistent"], &env);
    assert_eq!(code(&o), 3);
    assert!(stderr(&o).contains("nonexistent"));
}

#[test]
fn run_saves_and_verify_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let o = gllm(
        &[
            "run",
            "--stage",
            "simd",
            "--quick",
            "--filter",
            &small_filter(),
            "-o",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = baseline::load(&out).unwrap();
    assert_eq!(r.stages.len(), 1);
    assert!(!r.cases.is_empty());
    let o = gllm(&["verify", "--json", "--filter", &small_filter()], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(!v.as_array().unwrap().is_empty());
    let o = gllm(&["list", "--json"], &[]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["ops"].as_array().unwrap().len() == gllm_kernels::registry::ops().len());
    let o = gllm(&["list", "--coverage"], &[]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("coverage holes"));
}

/// End-to-end cases on the tiny synthetic model through `compare --quick`: every stage
/// measured (tokens/s, samples, CIs), the model recorded, the file valid against the schema
/// and round-tripping, and the report's tokens/s chart and end-to-end table drawn from it.
#[test]
fn end_to_end_cases_run_through_compare_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e2e.json");
    let md = dir.path().join("e2e.md");
    let last = gllm_kernels::stage::builtin().last().unwrap().name.clone();
    let o = gllm(
        &[
            "compare",
            "--stage",
            &last,
            "--quick",
            "--synthetic",
            "tiny",
            "--threads",
            "2",
            "--filter",
            "^e2e_",
            "--json",
            path.to_str().unwrap(),
            "--markdown",
            md.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("e2e_prefill(model=synthetic-tiny,threads=2)"), "{out}");
    assert!(out.contains("e2e_decode(model=synthetic-tiny,threads=2)"), "{out}");
    assert!(out.contains("tokens/s"), "{out}");
    let text = std::fs::read_to_string(&path).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let schema_text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/baseline.schema.json"),
    )
    .unwrap();
    let schema_value: serde_json::Value = serde_json::from_str(&schema_text).unwrap();
    let errors = schema::validate(&schema_value, &value);
    assert!(errors.is_empty(), "{errors:?}");
    let r = baseline::load(&path).unwrap();
    let again = baseline::parse(&path, &serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(again, r);
    assert_eq!(r.threads, 2);
    let stages = gllm_kernels::stage::builtin().len();
    assert_eq!(r.cases.len(), 2 * stages, "prefill and decode for every stage");
    for c in &r.cases {
        assert_eq!(c.kind, baseline::CaseKind::EndToEnd);
        assert_eq!(c.unit, "tokens/s");
        assert!(c.id.starts_with(&format!("{}(stage={},model=synthetic-tiny,", c.op, c.variant)));
        assert!(c.id.ends_with(",threads=2)"), "{}", c.id);
        assert!(c.dims["tokens"] >= 4, "{}", c.id);
        let m = c.model.as_ref().expect("end-to-end records carry the model");
        assert_eq!((m.name.as_str(), m.n_layers, m.n_embd), ("synthetic-tiny", 2, 64));
        assert_eq!(m.sha256.len(), 64);
        assert!(m.synthetic_seed.is_some());
        assert_ne!(c.verification.status, baseline::VerificationStatus::Failed, "{c:?}");
        let t = c.timing.as_ref().unwrap();
        assert!(t.samples_ns.len() >= 3);
        assert!(t.ci95_ns.lo <= t.median_ns && t.median_ns <= t.ci95_ns.hi);
        // tokens/s is 1e9 / (ns per token).
        assert!((t.throughput * t.median_ns / 1e9 - 1.0).abs() < 1e-9);
    }
    assert_eq!(r.comparisons.len(), 2);
    for comp in &r.comparisons {
        assert_eq!(comp.entries.len(), stages);
        assert_eq!(comp.entries[0].speedup_vs_first.unwrap().ratio, 1.0);
        assert!(comp.entries.iter().all(|e| e.verified && e.throughput.unwrap() > 0.0));
    }
    let md_text = std::fs::read_to_string(&md).unwrap();
    assert!(md_text.contains("## End to end") && md_text.contains("SHA-256"), "{md_text}");
    let report = dir.path().join("report");
    let o = gllm(
        &["report", "--input", path.to_str().unwrap(), "--out", report.to_str().unwrap()],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(report.join("tokens.png").is_file() && report.join("tokens.svg").is_file());
    let report_md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(report_md.contains("![Tokens/s per stage](tokens.png)"), "{report_md}");

    // --anchor: llama.cpp's figures for the same model and threads, quoted beside each stage's
    let prefill_tokens: usize = r
        .comparisons
        .iter()
        .find(|c| c.op == "e2e_prefill")
        .unwrap()
        .shape
        .split(',')
        .find_map(|kv| kv.strip_prefix("tokens="))
        .unwrap()
        .parse()
        .unwrap();
    let sha = &r.cases[0].model.as_ref().unwrap().sha256;
    let anchor = dir.path().join("anchor");
    std::fs::create_dir_all(&anchor).unwrap();
    std::fs::write(anchor.join("anchor.md"), "# llama.cpp measured on this machine\n").unwrap();
    std::fs::write(
        anchor.join("llama-bench.json"),
        format!(
            r#"[{{"n_threads":2,"n_prompt":{prefill_tokens},"n_gen":0,"avg_ts":1234.4,"stddev_ts":5.0}},
                {{"n_threads":2,"n_prompt":0,"n_gen":128,"avg_ts":432.1,"stddev_ts":3.0}},
                {{"n_threads":1,"n_prompt":0,"n_gen":128,"avg_ts":99.0,"stddev_ts":1.0}}]"#
        ),
    )
    .unwrap();
    let with_anchor = |sha: &str| {
        std::fs::write(anchor.join("build.txt"), format!("model: tiny.gguf (sha256 {sha})\n"))
            .unwrap();
        gllm(
            &[
                "report",
                "--input",
                path.to_str().unwrap(),
                "--anchor",
                anchor.to_str().unwrap(),
                "--out",
                report.to_str().unwrap(),
            ],
            &[],
        )
    };
    let o = with_anchor(sha);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let report_md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(report_md.contains("## Beside llama.cpp on this machine"), "{report_md}");
    assert!(
        report_md.contains(&format!("| 2 | prefill {prefill_tokens} tokens | 1234 ± 5.0 |")),
        "{report_md}"
    );
    assert!(report_md.contains("| 2 | decode (llama.cpp tg128) | 432 ± 3.0 |"), "{report_md}");
    assert!(!report_md.contains("| 99.0 ±"), "the 1-thread run does not match a 2-thread result");
    assert!(report.join("llama-cpp.md").is_file());
    let o = with_anchor(&"0".repeat(64));
    assert_eq!(code(&o), 3, "another model's anchor is refused");
    assert!(stderr(&o).contains("--anchor") && stderr(&o).contains(sha.as_str()), "{}", stderr(&o));
}

/// `--model` with a missing, corrupt or non-llama file: exit 3, the path named, no panic.
#[test]
fn a_bad_model_file_exits_3_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.gguf");
    let corrupt = dir.path().join("corrupt.gguf");
    std::fs::write(&corrupt, b"GGUF\x03\x00\x00\x00 this is not a model").unwrap();
    let empty = dir.path().join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    for p in [&missing, &corrupt, &empty] {
        // Even when --filter excludes the end-to-end cases, the file named is checked.
        for filter in ["e2e", &small_filter()] {
            let o = gllm(
                &[
                    "compare",
                    "--stage",
                    "simd",
                    "--quick",
                    "--filter",
                    filter,
                    "--model",
                    p.to_str().unwrap(),
                ],
                &[],
            );
            assert_eq!(code(&o), 3, "{}: {}", p.display(), stderr(&o));
            let err = stderr(&o);
            assert!(err.contains(p.to_str().unwrap()), "{err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}
