//! Per-case verdicts, the run's status and exit code, and the console/markdown/JSON output.

use serde::{Deserialize, Serialize};

use crate::stats::Interval;

/// Exit codes of `gate` and `aa` (an API: documented in `--help` and ci/README.md).
pub const EXIT_PASS: u8 = 0;
pub const EXIT_REGRESSION: u8 = 1;
pub const EXIT_INCONCLUSIVE: u8 = 2;
pub const EXIT_ERROR: u8 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// No change beyond the effective threshold that the measurement could resolve.
    Pass,
    /// Faster beyond the effective threshold (reported, never a failure).
    Improved,
    /// Slower beyond the effective threshold, CI excludes 1, and it repeated on re-measuring.
    Regressed,
    /// Flagged once, not repeated on re-measuring: reported, not a failure.
    Unconfirmed,
    /// The CI is too wide to rule out a change of the effective threshold's size.
    Inconclusive,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Improved => "improved",
            Verdict::Regressed => "REGRESSED",
            Verdict::Unconfirmed => "unconfirmed",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// The first-pass decision on one measurement of a ratio head/base.
///
/// - regression candidate: CI lower bound > 1 and ratio > 1 + eff;
/// - improvement: CI upper bound < 1 and ratio < 1 / (1 + eff);
/// - inconclusive: otherwise, if the CI reaches above 1 + eff (a regression larger than the
///   threshold cannot be ruled out);
/// - otherwise pass: the measurement rules out a regression larger than `eff`.
pub fn classify(ratio: f64, ci: Interval, effective: f64) -> Verdict {
    if !ratio.is_finite() || !ci.lo.is_finite() || !ci.hi.is_finite() {
        return Verdict::Inconclusive;
    }
    if ci.lo > 1.0 && ratio > 1.0 + effective {
        Verdict::Regressed
    } else if ci.hi < 1.0 && ratio < 1.0 / (1.0 + effective) {
        Verdict::Improved
    } else if ci.hi > 1.0 + effective {
        Verdict::Inconclusive
    } else {
        Verdict::Pass
    }
}

/// One measurement of one case (a first pass or a re-measurement).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Measurement {
    /// Base and head medians: ns per iteration (wall) or instructions per iteration.
    pub base: f64,
    pub head: f64,
    pub ratio: f64,
    pub ci95: Interval,
    /// Same-code noise of this measurement (relative), see `gate::wall`.
    pub noise: f64,
    pub rounds: usize,
    pub verdict: Verdict,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseResult {
    pub id: String,
    /// `ns/iter` or `instructions/iter`.
    pub unit: String,
    pub threshold: f64,
    /// Which `thresholds.toml` rule gave the threshold.
    pub threshold_rule: String,
    /// max(threshold, noise_k × noise).
    pub effective_threshold: f64,
    pub measurements: Vec<Measurement>,
    pub verdict: Verdict,
    /// Ratios normalized by the calibration kernel (stored-baseline mode on another machine).
    pub normalized: bool,
}

impl CaseResult {
    pub fn last(&self) -> &Measurement {
        self.measurements.last().expect("a case result has a measurement")
    }
}

/// Measurements per case at most (the first, and up to two re-measurements).
pub const MAX_MEASUREMENTS: usize = 3;

/// The final verdict of a case from its measurements: a regression must be seen twice.
///
/// - two or more regressed measurements: regressed;
/// - otherwise the last measurement decides, except that a pass/improvement after a
///   regressed measurement is `unconfirmed` and a lone regression is `inconclusive`.
pub fn final_verdict(measurements: &[Measurement]) -> Verdict {
    let regressed = measurements.iter().filter(|m| m.verdict == Verdict::Regressed).count();
    match measurements.last().map(|m| m.verdict) {
        None => Verdict::Inconclusive,
        Some(_) if regressed >= 2 => Verdict::Regressed,
        Some(Verdict::Pass | Verdict::Improved) if regressed == 1 => Verdict::Unconfirmed,
        Some(Verdict::Regressed) if measurements.len() > 1 => Verdict::Inconclusive,
        Some(v) => v,
    }
}

/// Whether another measurement is needed: the case is not settled yet.
pub fn needs_more(measurements: &[Measurement]) -> bool {
    let regressed = measurements.iter().filter(|m| m.verdict == Verdict::Regressed).count();
    let last = measurements.last().map(|m| m.verdict);
    measurements.len() < MAX_MEASUREMENTS
        && regressed < 2
        && matches!(last, Some(Verdict::Regressed | Verdict::Inconclusive) | None)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Side {
    pub label: String,
    pub bin: String,
    pub git_sha: Option<String>,
    pub git_dirty: Option<bool>,
    pub calibration_factor: f64,
}

/// The state of the machine during the run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Environment {
    /// Share of CPU time stolen by the hypervisor during the run (/proc/stat), if known.
    pub steal_fraction: Option<f64>,
    /// 1-minute load average at the end of the run, if known.
    pub load_average: Option<f64>,
    /// Relative spread (1.4826·MAD/median) of the gate's own control kernel, measured
    /// between cases; high when other processes compete for the cores.
    pub calibration_spread: Option<f64>,
    /// Median of the control kernel (ns), for normalization across machines.
    pub calibration_ns: Option<f64>,
    pub too_noisy: bool,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GateReport {
    pub schema: String,
    pub created: String,
    /// `wall` or `instructions`.
    pub mode: String,
    /// `ab` (two builds in one job) or `baseline` (a stored result file).
    pub source: String,
    pub base: Side,
    pub head: Side,
    pub thresholds: String,
    pub environment: Environment,
    pub cases: Vec<CaseResult>,
    /// `pass`, `regression` or `inconclusive`.
    pub status: String,
    pub exit_code: u8,
    pub wall_seconds: f64,
}

/// Status and exit code: a confirmed regression fails (1); otherwise any inconclusive case
/// or a too-noisy machine is inconclusive (2); otherwise pass (0).
pub fn status(cases: &[CaseResult], env: &Environment) -> (&'static str, u8) {
    if cases.iter().any(|c| c.verdict == Verdict::Regressed) {
        ("regression", EXIT_REGRESSION)
    } else if env.too_noisy || cases.iter().any(|c| c.verdict == Verdict::Inconclusive) {
        ("inconclusive", EXIT_INCONCLUSIVE)
    } else {
        ("pass", EXIT_PASS)
    }
}

fn pct(r: f64) -> String {
    format!("{:+.2} %", (r - 1.0) * 100.0)
}

fn num(x: f64, unit: &str) -> String {
    if unit.starts_with("instr") {
        format!("{x:.0}")
    } else if x >= 1e6 {
        format!("{:.3} ms", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.2} µs", x / 1e3)
    } else {
        format!("{x:.1} ns")
    }
}

fn env_lines(r: &GateReport) -> Vec<String> {
    let e = &r.environment;
    let mut v = Vec::new();
    let f = |x: Option<f64>, scale: f64, suffix: &str| {
        x.map(|x| format!("{:.2}{suffix}", x * scale)).unwrap_or_else(|| "n/a".into())
    };
    v.push(format!(
        "steal {}, load {}, control-kernel spread {}{}",
        f(e.steal_fraction, 100.0, " %"),
        f(e.load_average, 1.0, ""),
        f(e.calibration_spread, 100.0, " %"),
        if e.too_noisy { " (TOO NOISY)" } else { "" }
    ));
    v.extend(e.notes.iter().cloned());
    v
}

/// The console table.
pub fn console(r: &GateReport) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "gllm-bench gate ({} mode, {}): base {} vs head {}; thresholds: {}\n",
        r.mode,
        r.source,
        r.base.git_sha.as_deref().map(|s| &s[..s.len().min(10)]).unwrap_or(&r.base.bin),
        r.head.git_sha.as_deref().map(|s| &s[..s.len().min(10)]).unwrap_or(&r.head.bin),
        r.thresholds
    ));
    let w = r.cases.iter().map(|c| c.id.len()).max().unwrap_or(4).max(4);
    out.push_str(&format!(
        "{:<w$}  {:>12}  {:>12}  {:>9}  {:>21}  {:>7}  {:>6}  {}\n",
        "case", "base", "head", "change", "95 % CI", "noise", "limit", "verdict"
    ));
    for c in &r.cases {
        let m = c.last();
        out.push_str(&format!(
            "{:<w$}  {:>12}  {:>12}  {:>9}  {:>21}  {:>7}  {:>6}  {}{}{}\n",
            c.id,
            num(m.base, &c.unit),
            num(m.head, &c.unit),
            pct(m.ratio),
            format!("[{}, {}]", pct(m.ci95.lo), pct(m.ci95.hi)),
            format!("{:.2}%", m.noise * 100.0),
            format!("{:.1}%", c.effective_threshold * 100.0),
            c.verdict.name(),
            if c.measurements.len() > 1 { " (re-measured)" } else { "" },
            if c.normalized { " (normalized)" } else { "" },
        ));
    }
    for l in env_lines(r) {
        out.push_str(&format!("{l}\n"));
    }
    out.push_str(&format!(
        "status: {} (exit {}), {:.1} s\n",
        r.status, r.exit_code, r.wall_seconds
    ));
    out
}

/// A markdown summary for a PR comment or a CI job summary.
pub fn markdown(r: &GateReport) -> String {
    let icon = match r.exit_code {
        EXIT_PASS => "✅",
        EXIT_REGRESSION => "❌",
        _ => "⚠️",
    };
    let mut out = format!("## {icon} gllm-bench perf gate: {} ({} mode)\n\n", r.status, r.mode);
    let regressed: Vec<&CaseResult> =
        r.cases.iter().filter(|c| c.verdict == Verdict::Regressed).collect();
    let improved = r.cases.iter().filter(|c| c.verdict == Verdict::Improved).count();
    out.push_str(&format!(
        "{} cases: {} regressed, {} improved, {} inconclusive. Base `{}`, head `{}`. \
         A case regresses only if the 95 % CI of head/base excludes 1, the change exceeds \
         max(threshold, k × same-code noise), and it repeats on re-measuring.\n\n",
        r.cases.len(),
        regressed.len(),
        improved,
        r.cases.iter().filter(|c| c.verdict == Verdict::Inconclusive).count(),
        r.base.git_sha.as_deref().unwrap_or(&r.base.bin),
        r.head.git_sha.as_deref().unwrap_or(&r.head.bin),
    ));
    out.push_str("| case | base | head | change | 95 % CI | limit | verdict |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---|\n");
    for c in &r.cases {
        let m = c.last();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | [{}, {}] | {:.1} % | {}{} |\n",
            c.id,
            num(m.base, &c.unit),
            num(m.head, &c.unit),
            pct(m.ratio),
            pct(m.ci95.lo),
            pct(m.ci95.hi),
            c.effective_threshold * 100.0,
            c.verdict.name(),
            if c.normalized { " (normalized)" } else { "" }
        ));
    }
    out.push('\n');
    for l in env_lines(r) {
        out.push_str(&format!("- {l}\n"));
    }
    out.push_str(&format!("- exit code {}, {:.1} s\n", r.exit_code, r.wall_seconds));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(lo: f64, hi: f64) -> Interval {
        Interval { lo, hi }
    }

    #[test]
    fn classification() {
        assert_eq!(classify(1.10, iv(1.08, 1.12), 0.05), Verdict::Regressed);
        // Excludes 1 but below the threshold: pass.
        assert_eq!(classify(1.02, iv(1.01, 1.03), 0.05), Verdict::Pass);
        assert_eq!(classify(0.90, iv(0.88, 0.92), 0.05), Verdict::Improved);
        // Wide CI reaching past the threshold: cannot tell.
        assert_eq!(classify(1.01, iv(0.95, 1.08), 0.05), Verdict::Inconclusive);
        // Wide but below the threshold: a regression > 5 % is ruled out.
        assert_eq!(classify(0.99, iv(0.93, 1.04), 0.05), Verdict::Pass);
        // Large change but CI includes 1: not a regression.
        assert_eq!(classify(1.2, iv(0.99, 1.3), 0.05), Verdict::Inconclusive);
        assert_eq!(classify(f64::NAN, iv(1.0, 1.0), 0.05), Verdict::Inconclusive);
    }

    fn m(v: Verdict) -> Measurement {
        Measurement {
            base: 1.0,
            head: 1.0,
            ratio: 1.0,
            ci95: iv(1.0, 1.0),
            noise: 0.0,
            rounds: 1,
            verdict: v,
        }
    }

    #[test]
    fn regressions_must_repeat() {
        use Verdict::*;
        assert_eq!(final_verdict(&[m(Regressed), m(Regressed)]), Regressed);
        assert_eq!(final_verdict(&[m(Regressed), m(Pass)]), Unconfirmed);
        assert_eq!(final_verdict(&[m(Regressed), m(Inconclusive), m(Regressed)]), Regressed);
        assert_eq!(final_verdict(&[m(Regressed), m(Inconclusive), m(Pass)]), Unconfirmed);
        assert_eq!(final_verdict(&[m(Regressed), m(Inconclusive), m(Inconclusive)]), Inconclusive);
        // Seen once only (after an inconclusive first look): not confirmed.
        assert_eq!(final_verdict(&[m(Inconclusive), m(Regressed)]), Inconclusive);
        assert_eq!(final_verdict(&[m(Inconclusive), m(Pass)]), Pass);
        assert_eq!(final_verdict(&[m(Improved)]), Improved);
        assert_eq!(final_verdict(&[]), Inconclusive);
        assert!(needs_more(&[m(Regressed)]));
        assert!(needs_more(&[m(Inconclusive), m(Regressed)]));
        assert!(!needs_more(&[m(Regressed), m(Regressed)]));
        assert!(!needs_more(&[m(Pass)]));
        assert!(!needs_more(&[m(Inconclusive), m(Inconclusive), m(Regressed)]));
    }

    #[test]
    fn exit_codes() {
        let env = Environment {
            steal_fraction: None,
            load_average: None,
            calibration_spread: None,
            calibration_ns: None,
            too_noisy: false,
            notes: vec![],
        };
        let case = |v| CaseResult {
            id: "x".into(),
            unit: "ns/iter".into(),
            threshold: 0.05,
            threshold_rule: "default".into(),
            effective_threshold: 0.05,
            measurements: vec![m(v)],
            verdict: v,
            normalized: false,
        };
        assert_eq!(status(&[case(Verdict::Pass), case(Verdict::Improved)], &env).1, 0);
        assert_eq!(status(&[case(Verdict::Unconfirmed)], &env).1, 0);
        assert_eq!(status(&[case(Verdict::Inconclusive)], &env).1, 2);
        assert_eq!(status(&[case(Verdict::Regressed), case(Verdict::Inconclusive)], &env).1, 1);
        let noisy = Environment { too_noisy: true, ..env };
        assert_eq!(status(&[case(Verdict::Pass)], &noisy).1, 2);
        assert_eq!(status(&[case(Verdict::Regressed)], &noisy).1, 1);
    }
}
