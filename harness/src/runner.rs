//! Runs a plan: for every case, the distinct variants chosen by the stages are verified
//! against naive, the ones that pass are measured interleaved, and the result becomes case
//! records and per-stage comparisons (speedup vs the first and the previous stage, paired
//! bootstrap CIs). `run` is the one-stage special case of `compare`.

use std::collections::BTreeMap;

use gllm_kernels::stage::ResolvedStage;
use indicatif::{ProgressBar, ProgressStyle};
use regex::Regex;

use crate::baseline::{
    CaseRecord, Comparison, StageEntry, StageRecord, Timing, Verification, VerificationStatus,
};
use crate::cases::{self, Arm, Cache, CaseSpec};
use crate::machine::Peaks;
use crate::measure::{measure_interleaved, MeasureConfig, Routine};
use crate::stats;

/// What to run.
pub struct Plan<'a> {
    /// Stages in order (first = the reference of "vs first").
    pub stages: &'a [ResolvedStage],
    pub cases: Vec<CaseSpec>,
    pub config: MeasureConfig,
    pub l3: usize,
    pub show_progress: bool,
}

/// Everything measured.
pub struct Outcome {
    pub cases: Vec<CaseRecord>,
    pub comparisons: Vec<Comparison>,
}

pub fn stage_records(
    stages: &[ResolvedStage],
    summaries: &BTreeMap<String, String>,
) -> Vec<StageRecord> {
    stages
        .iter()
        .map(|s| StageRecord {
            name: s.name.clone(),
            summary: summaries.get(&s.name).cloned().unwrap_or_default(),
            chain: s.chain.clone(),
            choices: s.choices.iter().map(|(op, v)| (op.to_string(), v.name.to_string())).collect(),
        })
        .collect()
}

/// Keeps the cases `--filter` selects under these stages.
pub fn filter_cases(
    cases: Vec<CaseSpec>,
    stages: &[ResolvedStage],
    filter: Option<&Regex>,
) -> Vec<CaseSpec> {
    cases
        .into_iter()
        .filter(|c| {
            let arms = c.arms(stages);
            let names: Vec<&str> = arms.iter().map(|a| a.name.as_str()).collect();
            cases::selected(filter, c, &names)
        })
        .collect()
}

/// Throughput, limit and % of limit of a median time on this machine.
pub fn timing(
    spec: &CaseSpec,
    samples: &crate::measure::Samples,
    peaks: &Peaks,
    seed: u64,
) -> Timing {
    timing_for(
        spec.work_per_iter(),
        spec.flops(),
        spec.bytes(),
        spec.working_set() as f64,
        spec.cache() == Cache::Cold,
        spec.integer_arithmetic(),
        samples,
        peaks,
        seed,
    )
}

/// [`timing`] from the case's numbers: `work` per iteration in the unit's numerator, FLOP and
/// bytes per iteration, the working set (for the cache level it lives in) and whether every
/// iteration starts from DRAM; `integer`: the FLOP are int8 dot products (quantized
/// matmuls), bounded by the int8 peak rather than the f32 FMA peak.
#[allow(clippy::too_many_arguments)]
pub fn timing_for(
    work: f64,
    flops: f64,
    bytes: f64,
    working_set: f64,
    cold: bool,
    integer: bool,
    samples: &crate::measure::Samples,
    peaks: &Peaks,
    seed: u64,
) -> Timing {
    let summary = stats::summarize(&samples.ns_per_iter, seed);
    // Roofline: the shortest possible time is bounded by compute and by moving the bytes
    // from the level the working set lives in (DRAM when cold).
    let (compute_peak, compute_name) = peaks.compute_peak(integer);
    let compute_ns = flops / compute_peak;
    let (bw, level) = if cold {
        (peaks.dram_gb_per_s(), "DRAM".to_string())
    } else {
        let bw = peaks.bandwidth_for(working_set);
        let level = peaks
            .bandwidth
            .iter()
            .find(|b| b.gb_per_s == bw)
            .map(|b| b.level.clone())
            .unwrap_or_default();
        (bw, level)
    };
    let memory_ns = bytes / bw;
    let limit_ns = compute_ns.max(memory_ns);
    let limit_basis = if compute_ns >= memory_ns {
        compute_name
    } else {
        format!("{level} bandwidth {bw:.1} GB/s")
    };
    let valid = limit_ns.is_finite() && limit_ns > 0.0;
    Timing {
        iterations_per_sample: samples.iters_per_sample,
        samples_ns: samples.ns_per_iter.clone(),
        median_ns: summary.median,
        mad_ns: summary.mad,
        min_ns: summary.min,
        mean_ns: summary.mean,
        ci95_ns: summary.ci95,
        outliers: summary.outliers,
        throughput: work / summary.median,
        throughput_ci95: summary.ci95.map_decreasing(|t| work / t),
        limit: if valid { work / limit_ns } else { f64::NAN },
        percent_of_limit: if valid { 100.0 * limit_ns / summary.median } else { f64::NAN },
        limit_basis,
    }
}

fn record(
    spec: &CaseSpec,
    arm: &Arm,
    verification: Verification,
    timing: Option<Timing>,
) -> CaseRecord {
    CaseRecord {
        id: spec.id(&arm.name),
        kind: spec.kind(),
        op: spec.op_name().to_string(),
        variant: arm.name.clone(),
        stages: arm.stages.clone(),
        shape: spec.shape_text(),
        dims: spec.dims().into_iter().collect(),
        cache: spec.cache().name().to_string(),
        case_set: spec.case_set().to_string(),
        unit: spec.unit().to_string(),
        flops_per_iter: spec.flops(),
        bytes_per_iter: spec.bytes(),
        working_set_bytes: spec.working_set() as f64,
        verification,
        timing,
        model: None,
    }
}

pub fn progress_bar(len: u64, show: bool, what: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let style =
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed} {wide_msg}")
            .expect("valid template")
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(what.to_string());
    bar
}

/// Verifies and measures every case of the plan.
pub fn execute(plan: &Plan, peaks: &Peaks) -> Outcome {
    let bar = progress_bar(plan.cases.len() as u64, plan.show_progress, "measuring");
    let mut cases_out = Vec::new();
    let mut comparisons = Vec::new();
    for spec in &plan.cases {
        if spec.kind() == crate::baseline::CaseKind::EndToEnd {
            continue; // measured by crate::e2e::execute, models loaded once for all cases
        }
        bar.set_message(spec.group_id());
        let arms = spec.arms(plan.stages);
        let verifications: Vec<Verification> = spec.verify_arms(&arms);
        // A failed arm is never timed: no speed is reported for a wrong implementation.
        let ok: Vec<usize> = (0..arms.len())
            .filter(|&i| verifications[i].status != VerificationStatus::Failed)
            .collect();
        let mut routines: Vec<Box<dyn Routine>> =
            ok.iter().filter_map(|&i| spec.arm_routine(&arms[i], plan.l3)).collect();
        let mut refs: Vec<&mut dyn Routine> =
            routines.iter_mut().map(|r| &mut **r as &mut dyn Routine).collect();
        let samples = if refs.is_empty() {
            Vec::new()
        } else {
            measure_interleaved(&mut refs, &plan.config, &mut |_, _| {})
        };
        drop(refs);
        drop(routines);
        let mut by_arm: BTreeMap<&str, crate::measure::Samples> = BTreeMap::new();
        for (k, &i) in ok.iter().enumerate() {
            by_arm.insert(arms[i].name.as_str(), samples[k].clone());
        }
        for (i, arm) in arms.iter().enumerate() {
            let t = by_arm
                .get(arm.name.as_str())
                .map(|s| timing(spec, s, peaks, stats::seed_for(&spec.id(&arm.name))));
            cases_out.push(record(spec, arm, verifications[i].clone(), t));
        }
        // One entry per stage; stages sharing an arm share its samples.
        let arm_of = |stage: &str| -> &str {
            arms.iter()
                .find(|a| a.stages.iter().any(|s| s == stage))
                .map(|a| a.name.as_str())
                .unwrap_or("")
        };
        let mut entries: Vec<StageEntry> = Vec::new();
        let first = plan.stages.first().map(|s| arm_of(&s.name));
        let mut previous: Option<&str> = None;
        for s in plan.stages {
            let name = arm_of(&s.name);
            let samples = by_arm.get(name);
            let rec = cases_out.iter().rev().find(|r| r.id == spec.id(name));
            let timing = rec.and_then(|r| r.timing.as_ref());
            let ratio_to = |base: Option<&str>| -> Option<stats::Ratio> {
                let base_samples = by_arm.get(base?)?;
                let mine = samples?;
                let seed = stats::seed_for(&format!("{}|{}|{}", spec.group_id(), base?, name));
                // time(base) / time(this): > 1 means this stage is faster.
                Some(stats::paired_ratio_ci(&base_samples.ns_per_iter, &mine.ns_per_iter, seed))
            };
            entries.push(StageEntry {
                stage: s.name.clone(),
                variant: name.to_string(),
                case_id: spec.id(name),
                verified: samples.is_some(),
                median_ns: timing.map(|t| t.median_ns),
                throughput: timing.map(|t| t.throughput),
                percent_of_limit: timing.map(|t| t.percent_of_limit),
                speedup_vs_first: ratio_to(first),
                speedup_vs_previous: ratio_to(previous.or(first)),
            });
            previous = Some(name);
        }
        comparisons.push(Comparison {
            group: spec.group_id(),
            kind: spec.kind(),
            op: spec.op_name().to_string(),
            shape: spec.shape_text(),
            cache: spec.cache().name().to_string(),
            unit: spec.unit().to_string(),
            entries,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    Outcome { cases: cases_out, comparisons }
}

/// Verification only (the `verify` command): every available variant of every op (not just
/// the ones a stage chooses) on every benchmark case. Returns `(case id, verification)`.
pub fn verify_all(
    cases: &[CaseSpec],
    only: Option<&[ResolvedStage]>,
    show_progress: bool,
) -> Vec<(String, String, Verification)> {
    let bar = progress_bar(cases.len() as u64, show_progress, "verifying");
    let mut out = Vec::new();
    for spec in cases {
        bar.set_message(spec.group_id());
        let arms = match only {
            Some(stages) => spec.arms(stages),
            None => spec.all_arms(),
        };
        for (arm, v) in arms.iter().zip(spec.verify_arms(&arms)) {
            out.push((spec.id(&arm.name), spec.op_name().to_string(), v));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use gllm_kernels::registry::{self, Variant};
    use gllm_kernels::stage;

    use super::*;
    use crate::cases::{CacheSelect, CaseSelect};
    use crate::machine::Bandwidth;

    fn peaks() -> Peaks {
        let bw = |level: &str, bytes: usize, gb: f64| Bandwidth {
            level: level.into(),
            bytes,
            read_gb_per_s: gb,
            update_gb_per_s: gb,
            gb_per_s: gb,
        };
        Peaks {
            machine_id: "test".into(),
            measured_at: String::new(),
            fma_gflops: 100.0,
            fma_kernel: "test".into(),
            int8_gops: None,
            int8_kernel: None,
            bandwidth: vec![
                bw("L1", 16 << 10, 200.0),
                bw("L2", 256 << 10, 100.0),
                bw("DRAM", 128 << 20, 20.0),
            ],
        }
    }

    fn tiny_config() -> MeasureConfig {
        MeasureConfig {
            warmup: Duration::from_millis(1),
            min_sample: Duration::from_micros(200),
            samples: 6,
            min_samples: 5,
            time_cap: Duration::from_millis(50),
        }
    }

    #[test]
    fn a_stage_with_a_wrong_variant_gets_no_speed_and_others_still_do() {
        let stages = stage::builtin();
        let good = stage::resolve_with_force(&stages, &stages[0].name, None).unwrap();
        let op = &registry::ops()[0];
        let wrong: &'static Variant = Box::leak(Box::new(Variant {
            op: op.name,
            name: "wrong",
            summary: "test-only: negates the naive result",
            available: registry::always,
            run: |case| {
                let naive = registry::variant(registry::ops()[0].name, "naive").unwrap();
                (naive.run)(case);
                for x in case.output_mut() {
                    *x = -*x - 1.0;
                }
            },
        }));
        let mut bad = good.clone();
        bad.name = "bad".into();
        bad.choices.insert(op.name, wrong);
        let plan_stages = vec![good, bad];
        let cases: Vec<CaseSpec> = cases::plan(CaseSelect::Model, CacheSelect::Hot, usize::MAX)
            .into_iter()
            .filter(|c| c.op_name() == op.name)
            .take(1)
            .collect();
        let plan = Plan {
            stages: &plan_stages,
            cases,
            config: tiny_config(),
            l3: 32 << 20,
            show_progress: false,
        };
        let out = execute(&plan, &peaks());
        let failed = out.cases.iter().find(|c| c.variant == "wrong").unwrap();
        assert_eq!(failed.verification.status, VerificationStatus::Failed);
        assert!(failed.timing.is_none(), "a failing variant must not get a speed");
        let reference = out.cases.iter().find(|c| c.variant == "naive").unwrap();
        let t = reference.timing.as_ref().unwrap();
        assert!(t.samples_ns.len() >= 5 && t.median_ns > 0.0 && t.throughput > 0.0);
        let entries = &out.comparisons[0].entries;
        assert!(entries[0].verified && !entries[1].verified);
        assert!(entries[1].speedup_vs_first.is_none() && entries[1].throughput.is_none());
    }

    #[test]
    fn shared_arms_share_samples_and_limits_follow_the_roofline() {
        let stages = stage::builtin();
        let resolved: Vec<ResolvedStage> = stages
            .iter()
            .map(|s| stage::resolve_with_force(&stages, &s.name, None).unwrap())
            .collect();
        let op = &registry::ops()[0];
        let cases: Vec<CaseSpec> = cases::plan(CaseSelect::Model, CacheSelect::Both, 0)
            .into_iter()
            .filter(|c| c.op_name() == op.name)
            .take(2)
            .collect();
        let plan = Plan {
            stages: &resolved,
            cases,
            config: tiny_config(),
            l3: 1 << 20,
            show_progress: false,
        };
        let p = peaks();
        let out = execute(&plan, &p);
        for comp in &out.comparisons {
            assert_eq!(comp.entries.len(), resolved.len());
            for pair in comp.entries.windows(2) {
                if pair[0].variant == pair[1].variant {
                    let r = pair[1].speedup_vs_previous.unwrap();
                    assert_eq!((r.ratio, r.ci95.lo, r.ci95.hi), (1.0, 1.0, 1.0));
                }
            }
        }
        for c in &out.cases {
            let t = c.timing.as_ref().unwrap();
            // limit time = max(flops / peak, bytes / bandwidth of the level).
            let bw = if c.cache == "cold" { 20.0 } else { p.bandwidth_for(c.working_set_bytes) };
            let limit_ns = (c.flops_per_iter / 100.0).max(c.bytes_per_iter / bw);
            let expected = 100.0 * limit_ns / t.median_ns;
            assert!((t.percent_of_limit - expected).abs() < 1e-9 * expected.max(1.0), "{}", c.id);
        }
    }
}
