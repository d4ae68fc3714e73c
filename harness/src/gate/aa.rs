//! `gllm-bench aa`: the gate run N times with one build as both sides (A/A). Counts false
//! alarms (runs that would fail CI), inconclusive runs, and each case's same-code noise
//! (distribution of |ratio − 1|), from which `ci/thresholds.toml` is set.
//!
//! With `--head-env GLLM_CALIBRATION_WORK=1.1` the head side's calibration case does 10 %
//! more work: the same command then measures the gate's detection rate.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::HarnessError;
use crate::stats;

use super::verdict::{GateReport, Verdict};
use super::GateArgs;

#[derive(clap::Args, Clone, Debug)]
pub struct AaArgs {
    /// Gate runs.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub runs: u32,
    /// Also write every run's report and the summary as JSON here.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub gate: GateArgs,
}

#[derive(Serialize)]
pub struct CaseNoise {
    pub id: String,
    pub runs: usize,
    pub verdicts: BTreeMap<String, usize>,
    pub median_abs_change: f64,
    pub p95_abs_change: f64,
    pub max_abs_change: f64,
    pub median_noise: f64,
    /// A threshold that would have kept every run of this case below it, with margin:
    /// 1.5 × the largest |ratio − 1| seen, at least the current threshold's floor of 1 %.
    pub suggested_threshold: f64,
}

#[derive(Serialize)]
pub struct AaSummary {
    pub runs: usize,
    pub exit_codes: BTreeMap<u8, usize>,
    /// Runs that exited 1 (a confirmed regression).
    pub alarms: usize,
    pub inconclusive: usize,
    pub head_env: Vec<String>,
    pub cases: Vec<CaseNoise>,
    pub mean_seconds_per_run: f64,
}

pub fn summarize(reports: &[GateReport], head_env: &[String]) -> AaSummary {
    let mut exit_codes = BTreeMap::new();
    let mut per_case: BTreeMap<String, Vec<(Verdict, f64, f64)>> = BTreeMap::new();
    for r in reports {
        *exit_codes.entry(r.exit_code).or_insert(0) += 1;
        for c in &r.cases {
            let first = &c.measurements[0];
            per_case.entry(c.id.clone()).or_default().push((
                c.verdict,
                (first.ratio - 1.0).abs(),
                first.noise,
            ));
        }
    }
    let cases = per_case
        .into_iter()
        .map(|(id, v)| {
            let mut verdicts = BTreeMap::new();
            for (verdict, _, _) in &v {
                *verdicts.entry(verdict.name().to_string()).or_insert(0) += 1;
            }
            let mut changes: Vec<f64> = v.iter().map(|x| x.1).collect();
            changes.sort_by(f64::total_cmp);
            let noise: Vec<f64> = v.iter().map(|x| x.2).collect();
            let max = changes.last().copied().unwrap_or(0.0);
            CaseNoise {
                id,
                runs: v.len(),
                verdicts,
                median_abs_change: stats::median(&changes),
                p95_abs_change: stats::quantile_sorted(&changes, 0.95),
                max_abs_change: max,
                median_noise: stats::median(&noise),
                suggested_threshold: (1.5 * max).max(0.01),
            }
        })
        .collect();
    AaSummary {
        runs: reports.len(),
        alarms: *exit_codes.get(&1).unwrap_or(&0),
        inconclusive: *exit_codes.get(&2).unwrap_or(&0),
        exit_codes,
        head_env: head_env.to_vec(),
        cases,
        mean_seconds_per_run: reports.iter().map(|r| r.wall_seconds).sum::<f64>()
            / reports.len().max(1) as f64,
    }
}

pub fn console(s: &AaSummary) -> String {
    let mut out = format!(
        "A/A over {} gate runs{}: exit codes {:?}; runs with a confirmed regression: {}; \
         inconclusive: {}; {:.1} s per run\n",
        s.runs,
        if s.head_env.is_empty() {
            String::new()
        } else {
            format!(" (head env {})", s.head_env.join(" "))
        },
        s.exit_codes,
        s.alarms,
        s.inconclusive,
        s.mean_seconds_per_run
    );
    let w = s.cases.iter().map(|c| c.id.len()).max().unwrap_or(4).max(4);
    out.push_str(&format!(
        "{:<w$}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}  verdicts\n",
        "case", "med|Δ|", "p95|Δ|", "max|Δ|", "noise", "suggest"
    ));
    for c in &s.cases {
        out.push_str(&format!(
            "{:<w$}  {:>8.2}%  {:>8.2}%  {:>8.2}%  {:>8.2}%  {:>8.1}%  {:?}\n",
            c.id,
            c.median_abs_change * 100.0,
            c.p95_abs_change * 100.0,
            c.max_abs_change * 100.0,
            c.median_noise * 100.0,
            c.suggested_threshold * 100.0,
            c.verdicts
        ));
    }
    out
}

/// `gllm-bench aa`: always exits 0 after measuring (3 on a harness error).
pub fn aa(args: &AaArgs, show_progress: bool) -> Result<u8, HarnessError> {
    let mut gate_args = args.gate.clone();
    if gate_args.base_bin.is_none() && gate_args.base_ref.is_none() {
        // One build as both sides.
        gate_args.base_bin = Some(match &gate_args.head_bin {
            Some(p) => p.clone(),
            None => std::env::current_exe()
                .map_err(|e| HarnessError::Harness(format!("cannot find this binary: {e}")))?,
        });
    }
    if gate_args.baseline.is_some() || gate_args.self_test {
        return Err(HarnessError::Usage(
            "aa compares one build with itself: no --baseline or --self-test".into(),
        ));
    }
    let plan = super::plan_from_args(&gate_args, false)?;
    let mut reports = Vec::new();
    for i in 0..args.runs {
        let r = super::run_ab(&plan)?;
        if show_progress {
            eprintln!("aa: run {}/{}: {} ({:.1} s)", i + 1, args.runs, r.status, r.wall_seconds);
        }
        reports.push(r);
    }
    let summary = summarize(&reports, &gate_args.head_env);
    print!("{}", console(&summary));
    if let Some(p) = &args.out {
        let v = serde_json::json!({ "summary": summary, "reports": reports });
        let text = serde_json::to_string_pretty(&v)
            .map_err(|e| HarnessError::Harness(format!("cannot serialize: {e}")))?;
        crate::baseline::write_atomic(p, text.as_bytes())?;
    }
    Ok(0)
}
