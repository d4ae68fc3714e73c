//! Instruction counts under valgrind's callgrind, collected only inside
//! [`super::worker::gllm_bench_measured_region`]: deterministic, so thresholds can be tight.
//!
//! valgrind cannot execute AVX-512; the workspace targets x86-64-v3 (AVX2/FMA) and runtime
//! detection under valgrind reports no AVX-512, so the same binaries run unchanged.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::HarnessError;

use super::worker::{CatalogSpec, WorkerCommand};

/// The toggle pattern: the region function's symbol contains this string.
pub const REGION: &str = "gllm_bench_measured_region";

/// Checks that valgrind is installed; returns its version line.
pub fn valgrind_version() -> Result<String, HarnessError> {
    let out = Command::new("valgrind").arg("--version").output().map_err(|e| {
        HarnessError::Harness(format!(
            "--mode instructions needs valgrind (callgrind) on PATH: {e} (apt-get install valgrind)"
        ))
    })?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Parses the total instruction count (`Ir`) of a callgrind output file: the `totals:` line
/// (or `summary:` for older formats), first event.
pub fn parse_total(path: &Path, text: &str) -> Result<u64, HarnessError> {
    let mut found = None;
    for line in text.lines() {
        for key in ["totals:", "summary:"] {
            if let Some(rest) = line.strip_prefix(key) {
                let first = rest.split_whitespace().next().unwrap_or("");
                let n = first.parse::<u64>().map_err(|_| HarnessError::Corrupt {
                    path: path.to_path_buf(),
                    field: key.trim_end_matches(':').into(),
                    message: format!("expected an instruction count, found {first:?}"),
                })?;
                if key == "totals:" || found.is_none() {
                    found = Some(n);
                }
            }
        }
    }
    found.ok_or_else(|| HarnessError::Corrupt {
        path: path.to_path_buf(),
        field: "totals".into(),
        message: "no `totals:` or `summary:` line (did callgrind run?)".into(),
    })
}

/// Instructions per iteration of `case` in the build `cmd`, from one callgrind run of
/// `iters` iterations inside the region.
pub fn count(
    cmd: &WorkerCommand,
    spec: &CatalogSpec,
    case: &str,
    iters: u64,
    scratch: &Path,
    tag: &str,
) -> Result<f64, HarnessError> {
    let out_file = scratch.join(format!("callgrind.{tag}.out"));
    let mut args = vec![
        "--tool=callgrind".to_string(),
        format!("--toggle-collect=*{REGION}*"),
        format!("--callgrind-out-file={}", out_file.display()),
        cmd.bin.display().to_string(),
    ];
    args.extend(WorkerCommand::catalog_args(spec));
    args.extend(["--count".to_string(), case.to_string(), "--iters".into(), iters.to_string()]);
    let output = Command::new("valgrind")
        .args(&args)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HarnessError::Harness(format!("cannot run valgrind: {e}")))?;
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = err.lines().rev().take(8).collect();
        return Err(HarnessError::Harness(format!(
            "valgrind on {} `{case}` failed ({}): {}",
            cmd.bin.display(),
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )));
    }
    let text = std::fs::read_to_string(&out_file)
        .map_err(|e| HarnessError::io(&out_file, "read callgrind output", e))?;
    let total = parse_total(&out_file, &text)?;
    let _ = std::fs::remove_file(&out_file);
    if total == 0 {
        return Err(HarnessError::Harness(format!(
            "callgrind counted 0 instructions in `{REGION}` for `{case}` ({}): the region \
             function is missing or inlined in this build",
            cmd.bin.display()
        )));
    }
    Ok(total as f64 / iters.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_totals_and_rejects_garbage() {
        let p = Path::new("cg.out");
        let text = "version: 1\nevents: Ir\nsummary: 1234\nfl=x\n1 2\ntotals: 1234\n";
        assert_eq!(parse_total(p, text).unwrap(), 1234);
        assert_eq!(parse_total(p, "summary: 99\n").unwrap(), 99);
        assert!(parse_total(p, "events: Ir\n").unwrap_err().to_string().contains("totals"));
        assert!(parse_total(p, "totals: abc\n").unwrap_err().to_string().contains("abc"));
    }
}
