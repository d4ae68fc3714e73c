//! The gate end to end through the real binary: identical builds pass, an injected +10 %
//! (wall, large margins) and +2 % (instructions, deterministic) slowdown of the calibration
//! case is caught, −10 % is reported as an improvement, exit codes, outputs.
//!
//! Timed assertions only use big effects with loose bounds or instruction counts; the
//! statistical rates (false alarms, detection) are measured with `gllm-bench aa`, not here.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gllm-bench"))
}

fn gate(args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--quiet")
        .arg("gate")
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run gllm-bench")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn has_valgrind() -> bool {
    let ok = Command::new("valgrind").arg("--version").output().is_ok();
    if !ok {
        eprintln!("SKIP: valgrind not installed; instruction-mode gate tests skipped");
    }
    ok
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn verdict_of(r: &serde_json::Value, prefix: &str) -> String {
    r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"].as_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("no case {prefix} in {r}"))["verdict"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn instructions_identical_builds_pass_and_2_percent_is_caught() {
    if !has_valgrind() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = bin();
    let b = b.to_str().unwrap();
    let json = dir.path().join("aa.json");
    let o = gate(&["--base-bin", b, "--mode", "instructions", "--json", json.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let r = report(&json);
    for c in r["cases"].as_array().unwrap() {
        assert_eq!(c["measurements"][0]["ratio"], 1.0, "counts are deterministic: {c}");
    }

    let md = dir.path().join("summary.md");
    let o = gate(&[
        "--base-bin",
        b,
        "--mode",
        "instructions",
        "--filter",
        "^calibration",
        "--head-env",
        "GLLM_CALIBRATION_WORK=1.02",
        "--json",
        json.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    let r = report(&json);
    assert_eq!(verdict_of(&r, "calibration"), "regressed");
    let ratio = r["cases"][0]["measurements"][0]["ratio"].as_f64().unwrap();
    assert!((ratio - 1.02).abs() < 0.001, "+2 % work gave ratio {ratio}");
    let md = std::fs::read_to_string(md).unwrap();
    assert!(md.contains("REGRESSED") && md.contains("| case |"), "{md}");

    // −2 %: an improvement, never a failure.
    let o = gate(&[
        "--base-bin",
        b,
        "--mode",
        "instructions",
        "--filter",
        "^calibration",
        "--head-env",
        "GLLM_CALIBRATION_WORK=0.98",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(verdict_of(&report(&json), "calibration"), "improved");
}

/// Wall time with a large effect (1.5×, 0.67×) so a noisy machine cannot flip the verdict;
/// +10 % detection rates are measured with `aa`, see ci/README.md.
#[test]
fn wall_large_slowdown_is_caught_and_speedup_is_an_improvement() {
    let dir = tempfile::tempdir().unwrap();
    let b = bin();
    let b = b.to_str().unwrap();
    let json = dir.path().join("g.json");
    let run = |factor: &str| {
        gate(&[
            "--base-bin",
            b,
            "--filter",
            "^calibration",
            "--head-env",
            &format!("GLLM_CALIBRATION_WORK={factor}"),
            "--json",
            json.to_str().unwrap(),
        ])
    };
    let o = run("1.5");
    // A confirmed regression; on a machine too noisy even for 50 %, at worst inconclusive,
    // never a pass.
    assert!(matches!(code(&o), 1 | 2), "{}", text(&o));
    let r = report(&json);
    let ratio = r["cases"][0]["measurements"][0]["ratio"].as_f64().unwrap();
    assert!(ratio > 1.25 && ratio < 1.8, "1.5× work measured as {ratio}");
    if code(&o) == 1 {
        assert_eq!(verdict_of(&r, "calibration"), "regressed");
    }
    let o = run("0.67");
    assert!(matches!(code(&o), 0 | 2), "an improvement never fails: {}", text(&o));
    let r = report(&json);
    assert_ne!(verdict_of(&r, "calibration"), "regressed");
    let ratio = r["cases"][0]["measurements"][0]["ratio"].as_f64().unwrap();
    assert!(ratio < 0.85, "0.67× work measured as {ratio}");
}

#[test]
fn self_test_never_reports_a_regression() {
    let o = Command::new(bin()).args(["--quiet", "gate", "--self-test"]).output().unwrap();
    assert!(matches!(code(&o), 0 | 2), "{}", text(&o));
    assert!(text(&o).contains("calibration("), "{}", text(&o));
}

#[test]
fn usage_and_harness_errors_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    // No base at all.
    let o = gate(&[]);
    assert_eq!(code(&o), 3, "{}", text(&o));
    assert!(text(&o).contains("--base-bin"), "{}", text(&o));
    // Missing binary.
    let o = gate(&["--base-bin", "/nonexistent/gllm-bench"]);
    assert_eq!(code(&o), 3);
    assert!(text(&o).contains("/nonexistent/gllm-bench"), "{}", text(&o));
    // A binary that does not speak the worker protocol.
    let o = gate(&["--base-bin", "/bin/true"]);
    assert_eq!(code(&o), 3, "{}", text(&o));
    assert!(text(&o).contains("worker protocol"), "{}", text(&o));
    // Bad regex, bad env, unknown flag.
    let b = bin();
    let b = b.to_str().unwrap();
    assert_eq!(code(&gate(&["--base-bin", b, "--filter", "("])), 3);
    assert_eq!(code(&gate(&["--base-bin", b, "--head-env", "NOEQUALS"])), 3);
    assert_eq!(code(&gate(&["--base-bin", b, "--bogus"])), 3);
    // A filter matching nothing.
    let o = gate(&["--base-bin", b, "--filter", "^no-such-case$"]);
    assert_eq!(code(&o), 3, "{}", text(&o));
    // A corrupt thresholds file names the file and field.
    let t = dir.path().join("t.toml");
    std::fs::write(&t, "[wall]\ndefault = \"x\"\n").unwrap();
    let o = gate(&["--base-bin", b, "--thresholds", t.to_str().unwrap()]);
    assert_eq!(code(&o), 3);
    assert!(text(&o).contains("t.toml"), "{}", text(&o));
    // A bad calibration factor in the worker's environment is a harness error too.
    let o = gate(&["--base-bin", b, "--head-env", "GLLM_CALIBRATION_WORK=-1"]);
    assert_eq!(code(&o), 3, "{}", text(&o));
}

#[test]
fn help_documents_the_exit_codes() {
    let o = Command::new(bin()).args(["gate", "--help"]).output().unwrap();
    let t = text(&o);
    for needle in ["0  pass", "1  confirmed regression", "2  inconclusive", "3  usage"] {
        assert!(t.contains(needle), "{needle} missing from:\n{t}");
    }
}

#[test]
fn shipped_thresholds_parse() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/thresholds.toml");
    gllm_bench::gate::thresholds::Thresholds::load(&path).unwrap();
}

/// Stored-baseline mode: a result file from another machine is refused (exit 3, with the
/// reason); `--allow-foreign-machine` runs and marks every verdict normalized.
#[test]
fn foreign_baseline_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("base.json");
    let o = Command::new(bin())
        .args(["--quiet", "run", "--stage", "naive", "--filter", "^add\\(", "--quick", "-o"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    let stage = "naive";
    // Same machine: accepted.
    let o = gate(&["--baseline", file.to_str().unwrap(), "--stage", stage, "--filter", "^add\\("]);
    assert!(matches!(code(&o), 0..=2), "{}", text(&o));
    // Another machine.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    v["machine"]["id"] = "other-cpu-64cpu-00000000".into();
    std::fs::write(&file, serde_json::to_string(&v).unwrap()).unwrap();
    let o = gate(&["--baseline", file.to_str().unwrap(), "--stage", stage, "--filter", "^add\\("]);
    assert_eq!(code(&o), 3, "{}", text(&o));
    assert!(text(&o).contains("other-cpu-64cpu-00000000"), "{}", text(&o));
    assert!(text(&o).contains("--allow-foreign-machine"), "{}", text(&o));
    let json = dir.path().join("g.json");
    let o = gate(&[
        "--baseline",
        file.to_str().unwrap(),
        "--allow-foreign-machine",
        "--stage",
        stage,
        "--filter",
        "^add\\(",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(matches!(code(&o), 0..=2), "{}", text(&o));
    let r = report(&json);
    assert_eq!(r["source"], "baseline");
    for c in r["cases"].as_array().unwrap() {
        assert_eq!(c["normalized"], true, "{c}");
    }
    assert!(text(&o).contains("normalized"), "{}", text(&o));
}
