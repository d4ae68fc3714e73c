//! Console tables. Only the `report` module renders tables; the CLI prints the strings.

use crate::baseline::{ResultFile, VerificationStatus};
use crate::report::format::{pm_percent, ratio, sig3, time_ns};

/// A plain aligned text table (widths in characters, so `µ` and `×` align).
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Table { headers: headers.iter().map(|s| s.to_string()).collect(), rows: Vec::new() }
    }

    pub fn render(&self) -> String {
        let cols = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(cols) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, cell) in cells.iter().enumerate().take(cols) {
                let pad = widths[i] - cell.chars().count();
                s.push_str(cell);
                if i + 1 < cols {
                    s.push_str(&" ".repeat(pad + 2));
                }
            }
            s.trim_end().to_string()
        };
        let mut out = line(&self.headers);
        out.push('\n');
        out.push_str(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }
}

/// The staged table: per case and stage, time, throughput, % of limit, speedups with CIs.
pub fn compare_table(result: &ResultFile) -> String {
    let mut t = Table::new(&[
        "case",
        "stage",
        "variant",
        "median time",
        "throughput",
        "% limit",
        "vs first [95% CI]",
        "vs previous [95% CI]",
    ]);
    for c in &result.comparisons {
        for (i, e) in c.entries.iter().enumerate() {
            let case = if i == 0 { c.group.clone() } else { String::new() };
            if !e.verified {
                t.rows.push(vec![
                    case,
                    e.stage.clone(),
                    e.variant.clone(),
                    "FAILED verification: no speed reported".into(),
                ]);
                continue;
            }
            let rec = result.case(&e.case_id);
            let timing = rec.and_then(|r| r.timing.as_ref());
            t.rows.push(vec![
                case,
                e.stage.clone(),
                e.variant.clone(),
                timing
                    .map(|t| {
                        format!("{} {}", time_ns(t.median_ns), pm_percent(t.median_ns, &t.ci95_ns))
                    })
                    .unwrap_or_default(),
                e.throughput.map(|x| format!("{} {}", sig3(x), c.unit)).unwrap_or_default(),
                e.percent_of_limit.map(|p| format!("{p:.1}%")).unwrap_or_default(),
                if i == 0 {
                    "1×".into()
                } else {
                    e.speedup_vs_first.as_ref().map(ratio).unwrap_or_default()
                },
                if i == 0 {
                    String::new()
                } else {
                    e.speedup_vs_previous.as_ref().map(ratio).unwrap_or_default()
                },
            ]);
        }
    }
    let mut out = t.render();
    let summary: Vec<String> = result
        .stages
        .iter()
        .enumerate()
        .skip(1)
        .filter_map(|(i, s)| {
            let (g, n) = crate::report::markdown::stage_geomean(result, i)?;
            Some(format!("{} {}× ({n} cases)", s.name, sig3(g)))
        })
        .collect();
    if !summary.is_empty() {
        out.push_str(&format!(
            "\ngeometric-mean speedup vs the first stage: {}\n",
            summary.join(", ")
        ));
    }
    if let Some(note) = limits_exceeded_note(result) {
        out.push_str(&format!("\n{note}\n"));
    }
    out
}

/// Above this % of limit a measurement is taken to have outrun its ceiling rather than to
/// sit on it within the noise.
const OUTRUN_PERCENT: f64 = 105.0;

/// A note when measured rates exceed this machine's limits (more than [`OUTRUN_PERCENT`]):
/// a limit is the best of a few short runs at one size per cache level, so a working set
/// between two levels can outrun it, and limits measured while a neighbour loaded the machine
/// sit low and stay cached. `None` when every rate is under its limit.
pub fn limits_exceeded_note(result: &ResultFile) -> Option<String> {
    let over: Vec<(f64, &str)> = result
        .comparisons
        .iter()
        .flat_map(|c| c.entries.iter().map(move |e| (e, c.group.as_str())))
        .filter_map(|(e, group)| Some((e.percent_of_limit?, group)))
        .filter(|(p, _)| *p > OUTRUN_PERCENT)
        .collect();
    let (worst, group) = over.iter().copied().max_by(|a, b| a.0.total_cmp(&b.0))?;
    Some(format!(
        "note: {} measurement(s) ran faster than this machine's measured limit (at most {worst:.0} %, \
         {group}). A limit is the best of a few short runs at one working-set size per cache \
         level: a working set between two levels, or limits measured while the machine was busy \
         (these: {}), put a rate above it; `gllm-bench machine --remeasure` measures them again",
        over.len(),
        result.peaks.measured_at
    ))
}

/// One row per measured case (for `run` and `baseline show`).
pub fn cases_table(result: &ResultFile) -> String {
    let mut t = Table::new(&[
        "case",
        "median time",
        "MAD",
        "throughput [95% CI]",
        "% limit",
        "limit",
        "verified",
    ]);
    for c in &result.cases {
        let status = match c.verification.status {
            VerificationStatus::Passed => "yes".to_string(),
            VerificationStatus::Reference => "reference".to_string(),
            VerificationStatus::Failed => {
                format!("FAILED: {}", c.verification.detail.clone().unwrap_or_default())
            }
        };
        match &c.timing {
            Some(tm) => t.rows.push(vec![
                c.id.clone(),
                time_ns(tm.median_ns),
                time_ns(tm.mad_ns),
                format!(
                    "{} {} [{}, {}]",
                    sig3(tm.throughput),
                    c.unit,
                    sig3(tm.throughput_ci95.lo),
                    sig3(tm.throughput_ci95.hi)
                ),
                format!("{:.1}%", tm.percent_of_limit),
                tm.limit_basis.clone(),
                status,
            ]),
            None => t.rows.push(vec![
                c.id.clone(),
                "-".into(),
                "-".into(),
                "no speed: failed verification".into(),
                "-".into(),
                "-".into(),
                status,
            ]),
        }
    }
    t.render()
}

/// The header lines every table output starts with: machine, build, peaks.
pub fn header(result: &ResultFile) -> String {
    let git = match (&result.git.sha, result.git.dirty) {
        (Some(sha), Some(true)) => format!("{} (dirty)", &sha[..sha.len().min(12)]),
        (Some(sha), _) => sha[..sha.len().min(12)].to_string(),
        _ => "not a git checkout".into(),
    };
    format!(
        "machine {} ({}, {} CPUs); compiled [{}] detected [{}]\n\
         build {git}, {}, profile {}; threads {}; {}\n\
         limits: {}\n",
        result.machine.id,
        result.machine.cpu_model,
        result.machine.logical_cpus,
        result.machine.compiled_features.join(" "),
        result.machine.detected_features.join(" "),
        result.rustc,
        result.profile,
        result.threads,
        if result.settings.quick { "quick settings" } else { "default settings" },
        crate::machine::summary_line(&result.peaks),
    )
}

/// `verify`'s table: one row per (case, variant).
pub fn verify_table(results: &[(String, String, crate::baseline::Verification)]) -> String {
    let mut t = Table::new(&["case", "status", "metric", "worst error", "detail"]);
    for (id, _, v) in results {
        t.rows.push(vec![
            id.clone(),
            match v.status {
                VerificationStatus::Passed => "ok".into(),
                VerificationStatus::Reference => "reference".into(),
                VerificationStatus::Failed => "FAILED".into(),
            },
            v.metric.clone(),
            v.worst_error.map(|e| format!("{e:.3e}")).unwrap_or_default(),
            v.detail.clone().unwrap_or_default(),
        ]);
    }
    t.render()
}

/// `baseline diff A B`: per common case, time(B) / time(A) with an independent bootstrap
/// CI (> 1: B is slower). Machine or build differences are printed first.
pub fn diff_table(a: &ResultFile, b: &ResultFile) -> String {
    let mut out = String::new();
    if a.machine.id != b.machine.id {
        out.push_str(&format!(
            "warning: different machines ({} vs {}): ratios mix hardware and code\n",
            a.machine.id, b.machine.id
        ));
    }
    if a.machine.compiled_features != b.machine.compiled_features {
        out.push_str("warning: built with different compiled CPU features\n");
    }
    let mut t = Table::new(&["case", "A median", "B median", "B/A time [95% CI]", "verdict"]);
    let mut only_a = 0;
    for ca in &a.cases {
        let Some(cb) = b.case(&ca.id) else {
            only_a += 1;
            continue;
        };
        let (Some(ta), Some(tb)) = (&ca.timing, &cb.timing) else {
            t.rows.push(vec![
                ca.id.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "unverified".into(),
            ]);
            continue;
        };
        let r =
            crate::stats::ratio_ci(&tb.samples_ns, &ta.samples_ns, crate::stats::seed_for(&ca.id));
        let verdict = if r.ci95.lo > 1.0 {
            "slower"
        } else if r.ci95.hi < 1.0 {
            "faster"
        } else {
            "no significant change"
        };
        t.rows.push(vec![
            ca.id.clone(),
            time_ns(ta.median_ns),
            time_ns(tb.median_ns),
            ratio(&r),
            verdict.into(),
        ]);
    }
    out.push_str(&t.render());
    let only_b = b.cases.iter().filter(|c| a.case(&c.id).is_none()).count();
    if only_a + only_b > 0 {
        out.push_str(&format!("{only_a} case(s) only in A, {only_b} only in B\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result() -> ResultFile {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/anchor-ops/results.json");
        crate::baseline::load(&path).unwrap()
    }

    #[test]
    fn rates_over_their_limit_get_a_note_and_rates_under_it_none() {
        let mut r = result();
        for c in &mut r.comparisons {
            for e in &mut c.entries {
                e.percent_of_limit = e.percent_of_limit.map(|p| p.min(100.0));
            }
        }
        assert_eq!(limits_exceeded_note(&r), None);
        let group = r.comparisons[0].group.clone();
        r.comparisons[0].entries[0].percent_of_limit = Some(121.5);
        let note = limits_exceeded_note(&r).expect("a rate at 121.5 % of its limit");
        assert!(note.contains("1 measurement(s)") && note.contains("122 %"), "{note}");
        assert!(note.contains(&group) && note.contains("--remeasure"), "{note}");
        assert!(compare_table(&r).contains("--remeasure"));
    }
}
