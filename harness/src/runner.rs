//! Runs a plan: for every case, the distinct variants chosen by the stages are verified
//! against naive, the ones that pass are measured interleaved, and the result becomes case
//! records and per-stage comparisons (speedup vs the first and the previous stage, paired
//! bootstrap CIs). `run` is the one-stage special case of `compare`.

use std::collections::BTreeMap;

use gllm_kernels::registry::{self, Variant};
use gllm_kernels::stage::ResolvedStage;
use indicatif::{ProgressBar, ProgressStyle};
use regex::Regex;

use crate::baseline::{
    CaseRecord, Comparison, StageEntry, StageRecord, Timing, Verification, VerificationStatus,
};
use crate::cases::{self, Cache, CaseSpec};
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

/// The distinct variants the stages choose for `spec`, in stage order, with the stages
/// choosing each.
pub fn variants_for(
    stages: &[ResolvedStage],
    spec: &CaseSpec,
) -> Vec<(&'static Variant, Vec<String>)> {
    let mut out: Vec<(&'static Variant, Vec<String>)> = Vec::new();
    for s in stages {
        let v = s.variant(spec.op_name());
        match out.iter_mut().find(|(x, _)| x.name == v.name) {
            Some((_, names)) => names.push(s.name.clone()),
            None => out.push((v, vec![s.name.clone()])),
        }
    }
    out
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
            let names: Vec<&str> = variants_for(stages, c).iter().map(|(v, _)| v.name).collect();
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
    let summary = stats::summarize(&samples.ns_per_iter, seed);
    let work = spec.work_per_iter();
    let (flops, bytes) = (spec.flops(), spec.bytes());
    // Roofline: the shortest possible time is bounded by compute and by moving the bytes
    // from the level the working set lives in (DRAM when cold).
    let compute_ns = flops / peaks.fma_gflops;
    let (bw, level) = if spec.cache() == Cache::Cold {
        (peaks.dram_gb_per_s(), "DRAM".to_string())
    } else {
        let bw = peaks.bandwidth_for(spec.working_set() as f64);
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
        format!("FMA peak {:.1} GFLOP/s", peaks.fma_gflops)
    } else {
        format!("{level} read {bw:.1} GB/s")
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
    variant: &Variant,
    stages: Vec<String>,
    verification: Verification,
    timing: Option<Timing>,
) -> CaseRecord {
    CaseRecord {
        id: spec.id(variant.name),
        kind: spec.kind(),
        op: spec.op_name().to_string(),
        variant: variant.name.to_string(),
        stages,
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
        bar.set_message(spec.group_id());
        let variants = variants_for(plan.stages, spec);
        let verifications: Vec<Verification> =
            variants.iter().map(|(v, _)| spec.verify(v)).collect();
        let ok: Vec<usize> = (0..variants.len())
            .filter(|&i| verifications[i].status != VerificationStatus::Failed)
            .collect();
        let mut routines: Vec<Box<dyn Routine>> =
            ok.iter().map(|&i| spec.routine(variants[i].0, plan.l3)).collect();
        let mut refs: Vec<&mut dyn Routine> =
            routines.iter_mut().map(|r| &mut **r as &mut dyn Routine).collect();
        let samples = if refs.is_empty() {
            Vec::new()
        } else {
            measure_interleaved(&mut refs, &plan.config, &mut |_, _| {})
        };
        drop(refs);
        drop(routines);
        let mut by_variant: BTreeMap<&str, crate::measure::Samples> = BTreeMap::new();
        for (k, &i) in ok.iter().enumerate() {
            by_variant.insert(variants[i].0.name, samples[k].clone());
        }
        for (i, (v, stage_names)) in variants.iter().enumerate() {
            let t = by_variant
                .get(v.name)
                .map(|s| timing(spec, s, peaks, stats::seed_for(&spec.id(v.name))));
            cases_out.push(record(spec, v, stage_names.clone(), verifications[i].clone(), t));
        }
        // One entry per stage; consecutive stages with the same variant share samples.
        let mut entries: Vec<StageEntry> = Vec::new();
        let first = plan.stages.first().map(|s| s.variant(spec.op_name()).name);
        let mut previous: Option<&str> = None;
        for s in plan.stages {
            let v = s.variant(spec.op_name());
            let samples = by_variant.get(v.name);
            let rec = cases_out.iter().rev().find(|r| r.id == spec.id(v.name));
            let timing = rec.and_then(|r| r.timing.as_ref());
            let ratio_to = |base: Option<&str>| -> Option<stats::Ratio> {
                let base_samples = by_variant.get(base?)?;
                let mine = samples?;
                let seed = stats::seed_for(&format!("{}|{}|{}", spec.group_id(), base?, v.name));
                // time(base) / time(this): > 1 means this stage is faster.
                Some(stats::paired_ratio_ci(&base_samples.ns_per_iter, &mine.ns_per_iter, seed))
            };
            entries.push(StageEntry {
                stage: s.name.clone(),
                variant: v.name.to_string(),
                case_id: spec.id(v.name),
                verified: samples.is_some(),
                median_ns: timing.map(|t| t.median_ns),
                throughput: timing.map(|t| t.throughput),
                percent_of_limit: timing.map(|t| t.percent_of_limit),
                speedup_vs_first: ratio_to(first),
                speedup_vs_previous: ratio_to(previous.or(first)),
            });
            previous = Some(v.name);
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
        let variants: Vec<&'static Variant> = match only {
            Some(stages) => variants_for(stages, spec).into_iter().map(|(v, _)| v).collect(),
            None => registry::variants_of(spec.op_name())
                .filter(|v| (v.available)().is_available())
                .collect(),
        };
        for v in variants {
            out.push((spec.id(v.name), spec.op_name().to_string(), spec.verify(v)));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    out
}
