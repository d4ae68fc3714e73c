//! Markdown: the staged table (for `compare --markdown`) and the optimization report.

use crate::baseline::{CaseKind, Comparison, ResultFile, StageEntry};
use crate::report::format::{interval, sig3, time_ns};

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn speedup(r: &Option<crate::stats::Ratio>) -> String {
    r.as_ref()
        .map(|r| format!("{}× {}", sig3(r.ratio), interval(&r.ci95)))
        .unwrap_or_else(|| "-".into())
}

/// `tokens=N` of a case shape (`model=m,tokens=64,threads=1`) or case id (`op(…,tokens=64)`).
pub fn tokens_of(shape_or_id: &str) -> Option<usize> {
    let inner = match shape_or_id.split_once('(') {
        Some((_, rest)) => rest.strip_suffix(')').unwrap_or(rest),
        None => shape_or_id,
    };
    inner.split(',').find_map(|kv| kv.strip_prefix("tokens=")).and_then(|v| v.parse().ok())
}

/// The tokens an end-to-end stage ran when the budget cut it below the case's count (the
/// group's `tokens=`, else the most any stage ran): `Some(n)` to be shown beside its figure.
pub fn cut_tokens(c: &Comparison, e: &StageEntry) -> Option<usize> {
    if c.kind != CaseKind::EndToEnd {
        return None;
    }
    let ran = tokens_of(&e.case_id)?;
    let full = tokens_of(&c.shape)
        .or_else(|| c.entries.iter().filter_map(|x| tokens_of(&x.case_id)).max())?;
    (ran < full).then_some(ran)
}

/// The staged table as markdown: one row per case and stage.
pub fn comparison_table(result: &ResultFile, comparisons: &[&Comparison]) -> String {
    let mut out = String::from(
        "| case | stage | variant | median time | throughput | % of limit | vs first [95% CI] | vs previous [95% CI] |\n\
         |---|---|---|---:|---:|---:|---:|---:|\n",
    );
    for c in comparisons {
        for (i, e) in c.entries.iter().enumerate() {
            let case = if i == 0 { format!("`{}`", cell(&c.group)) } else { String::new() };
            if !e.verified {
                out.push_str(&format!(
                    "| {case} | {} | {} | **failed verification: no speed reported** | | | | |\n",
                    e.stage, e.variant
                ));
                continue;
            }
            let ci = result.case(&e.case_id).and_then(|r| r.timing.as_ref()).map(|t| t.ci95_ns);
            let stage = match cut_tokens(c, e) {
                Some(n) => format!("{} ({n} tokens)", e.stage),
                None => e.stage.clone(),
            };
            out.push_str(&format!(
                "| {case} | {stage} | {} | {}{} | {} | {} | {} | {} |\n",
                e.variant,
                e.median_ns.map(time_ns).unwrap_or_default(),
                ci.map(|c| format!(" [{}, {}]", time_ns(c.lo), time_ns(c.hi))).unwrap_or_default(),
                e.throughput.map(|x| format!("{} {}", sig3(x), c.unit)).unwrap_or_default(),
                e.percent_of_limit.map(|p| format!("{p:.1}%")).unwrap_or_default(),
                if i == 0 { "1×".into() } else { speedup(&e.speedup_vs_first) },
                if i == 0 { String::new() } else { speedup(&e.speedup_vs_previous) },
            ));
        }
    }
    out
}

fn machine_section(result: &ResultFile) -> String {
    let git = match (&result.git.sha, result.git.dirty) {
        (Some(sha), Some(true)) => {
            format!("`{}` (with uncommitted changes)", &sha[..sha.len().min(12)])
        }
        (Some(sha), _) => format!("`{}`", &sha[..sha.len().min(12)]),
        _ => "not a git checkout".into(),
    };
    let bw: Vec<String> = result
        .peaks
        .bandwidth
        .iter()
        .map(|b| format!("{} {:.1} GB/s", b.level, b.gb_per_s))
        .collect();
    let int8 = match (result.peaks.int8_gops, &result.peaks.int8_kernel) {
        (Some(g), Some(k)) => {
            format!("; int8 dot-product peak {g:.0} GOP/s ({k}), the quantized matmuls' ceiling")
        }
        _ => String::new(),
    };
    format!(
        "- machine `{}`: {} ({} logical CPUs; L1d {} KiB, L2 {} KiB, L3 {} MiB)\n\
         - compiled features: {}; detected: {}\n\
         - build {git}, {}, profile `{}`; measured {} with `{}`\n\
         - measured limits (1 core): f32 FMA peak {:.1} GFLOP/s ({}){int8}; bandwidth (best of streaming read and y += x) {}\n",
        result.machine.id,
        result.machine.cpu_model,
        result.machine.logical_cpus,
        result.machine.caches.l1d >> 10,
        result.machine.caches.l2 >> 10,
        result.machine.caches.l3 >> 20,
        result.machine.compiled_features.join(" "),
        result.machine.detected_features.join(" "),
        result.rustc,
        result.profile,
        result.created,
        result.command,
        result.peaks.fma_gflops,
        result.peaks.fma_kernel,
        bw.join(", "),
    )
}

/// The overview's line for rates above their limit in `result` (see
/// [`crate::report::console::limits_exceeded_note`]), empty when there are none.
fn limits_line(result: &ResultFile, with_command: bool) -> String {
    match crate::report::console::limits_exceeded_note(result) {
        Some(n) if with_command => format!("- in the run of `{}`: {n}\n", result.command),
        Some(n) => format!("- {n}\n"),
        None => String::new(),
    }
}

/// `compare --markdown`: header and the staged table.
pub fn compare_markdown(result: &ResultFile) -> String {
    let stages: Vec<&str> = result.stages.iter().map(|s| s.name.as_str()).collect();
    let ops: Vec<&Comparison> =
        result.comparisons.iter().filter(|c| c.kind == CaseKind::Op).collect();
    format!(
        "## gllm-bench compare: {}\n\n{}\n{}\n\n{}",
        stages.join(" → "),
        machine_section(result) + &limits_line(result, false),
        comparison_table(result, &ops),
        end_to_end_section(result)
    )
}

/// One ranked opportunity: a case at the last stage and how far it is from its limit.
pub struct Opportunity {
    pub group: String,
    pub stage: String,
    pub variant: String,
    pub median_ns: f64,
    pub percent_of_limit: f64,
    pub limit_basis: String,
    /// Time that reaching the limit would save per call.
    pub headroom_ns: f64,
}

/// Cases at the last stage ranked by the time between their median and their roofline
/// limit (what reaching the limit would save per call), largest first.
pub fn opportunities(result: &ResultFile) -> Vec<Opportunity> {
    let mut out: Vec<Opportunity> = result
        .comparisons
        .iter()
        .filter_map(|c| {
            let e = c.entries.last()?;
            let rec = result.case(&e.case_id)?;
            // Op cases only: an end-to-end headroom (ns per token) is not an op's headroom.
            if rec.case_set != "model" || rec.kind != CaseKind::Op {
                return None;
            }
            let t = rec.timing.as_ref()?;
            let limit_ns = t.median_ns * t.percent_of_limit / 100.0;
            Some(Opportunity {
                group: c.group.clone(),
                stage: e.stage.clone(),
                variant: e.variant.clone(),
                median_ns: t.median_ns,
                percent_of_limit: t.percent_of_limit,
                limit_basis: t.limit_basis.clone(),
                headroom_ns: t.median_ns - limit_ns,
            })
        })
        .filter(|o| o.headroom_ns.is_finite())
        .collect();
    out.sort_by(|a, b| b.headroom_ns.total_cmp(&a.headroom_ns));
    out
}

/// Geometric mean over the model cases of a stage's speedup vs the first stage, and the
/// number of cases it covers (cases that failed verification are left out).
pub fn stage_geomean(r: &ResultFile, stage_index: usize) -> Option<(f64, usize)> {
    let ratios: Vec<f64> = r
        .comparisons
        .iter()
        .filter(|c| r.case(&c.entries[0].case_id).is_some_and(|x| x.case_set == "model"))
        .filter(|c| c.kind == CaseKind::Op)
        .filter_map(|c| c.entries.get(stage_index)?.speedup_vs_first.map(|x| x.ratio))
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    (!ratios.is_empty()).then(|| {
        ((ratios.iter().map(|x| x.ln()).sum::<f64>() / ratios.len() as f64).exp(), ratios.len())
    })
}

/// The end-to-end table (prefill and decode tokens/s per stage) with the model it ran.
pub fn end_to_end_section(r: &ResultFile) -> String {
    let comps: Vec<&Comparison> =
        r.comparisons.iter().filter(|c| c.kind == CaseKind::EndToEnd).collect();
    let mut md = String::from("## End to end\n\n");
    if comps.is_empty() {
        md.push_str("No end-to-end cases in this result (excluded by `--filter`?).\n\n");
        return md;
    }
    if let Some(m) = r.cases.iter().find_map(|c| c.model.as_ref()) {
        md.push_str(&format!(
            "Model `{}` ({}; {} layers, {} wide, FFN {}, {} heads / {} KV heads, vocabulary {}), \
             file `{}`, {} bytes, SHA-256 `{}`{}; {} thread(s).\n\n",
            m.name,
            m.architecture,
            m.n_layers,
            m.n_embd,
            m.n_ff,
            m.n_heads,
            m.n_kv_heads,
            m.vocab_size,
            m.path,
            m.file_bytes,
            m.sha256,
            m.synthetic_seed.map(|s| format!(", synthetic seed {s:#x}")).unwrap_or_default(),
            r.threads
        ));
    }
    md.push_str(
        "Prefill: one batched forward of the prompt from an empty KV cache; decode: single-token \
         steps after a short prompt (kept in the cache). Median time is per token; tokens/s = \
         1 / that. Every stage's model is loaded once and the samples are interleaved across \
         stages round by round; slow stages may run fewer tokens per sample (shown beside the \
         stage when they do). % of limit: the FMA peak over 2 FLOP per weight per token, or the \
         DRAM bandwidth over the weight bytes streamed per token (once per prefill batch).\n\n",
    );
    md.push_str(&comparison_table(r, &comps));
    md.push('\n');
    md
}

/// The optimization report: overview, stages, results, charts, opportunities, method.
pub fn report_markdown(
    results: &[ResultFile],
    primary: usize,
    charts: &[(String, String, Option<String>)],
    anchor: Option<&str>,
) -> String {
    let r = &results[primary];
    let mut md = String::new();
    let stage_names: Vec<&str> = r.stages.iter().map(|s| s.name.as_str()).collect();
    md.push_str("# gllm-bench optimization report\n\n");
    md.push_str(&format!(
        "Every op of the kernel registry measured under the stages {}, interleaved in one process, \
         each variant verified against the naive specification before it was timed.\n\n",
        stage_names.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(" → ")
    ));
    md.push_str("## Overview\n\n");
    md.push_str(&machine_section(r));
    for result in results {
        md.push_str(&limits_line(result, results.len() > 1));
    }
    let timed = r.cases.iter().filter(|c| c.timing.is_some()).count();
    let failed = r.cases.len() - timed;
    md.push_str(&format!(
        "- {} case groups, {} measured (case, variant) pairs{}\n\n",
        r.comparisons.len(),
        timed,
        if failed > 0 {
            format!(", **{failed} failed verification (no speed reported)**")
        } else {
            String::new()
        }
    ));
    let geo = |stage_index: usize| stage_geomean(r, stage_index);
    md.push_str("## What each stage changes\n\n| stage | what it adds | ops whose variant changes | geometric-mean speedup vs first (model cases) |\n|---|---|---|---:|\n");
    for (i, s) in r.stages.iter().enumerate() {
        let changed: Vec<String> = match i {
            0 => vec!["(reference)".into()],
            _ => s
                .choices
                .iter()
                .filter(|(op, v)| r.stages[i - 1].choices.get(*op) != Some(*v))
                .map(|(op, v)| format!("{op} → {v}"))
                .collect(),
        };
        md.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            s.name,
            cell(&s.summary),
            if changed.is_empty() {
                "none (same variants as the previous stage)".into()
            } else {
                changed.join(", ")
            },
            geo(i)
                .map(|(g, n)| format!("{}× over {n} cases", sig3(g)))
                .unwrap_or_else(|| "-".into())
        ));
    }
    md.push_str("\n## Measured results\n\n");
    let mut ops: Vec<&str> = r.comparisons.iter().map(|c| c.op.as_str()).collect();
    ops.dedup();
    for op in ops {
        let comps: Vec<&Comparison> = r
            .comparisons
            .iter()
            .filter(|c| {
                c.op == op && r.case(&c.entries[0].case_id).is_some_and(|x| x.case_set == "model")
            })
            .filter(|c| c.kind == CaseKind::Op)
            .collect();
        if comps.is_empty() {
            continue;
        }
        md.push_str(&format!("### `{op}`\n\n"));
        md.push_str(&comparison_table(r, &comps));
        md.push('\n');
    }
    md.push_str(&end_to_end_section(r));
    // further results with end-to-end cases (e.g. the same compare at other thread counts)
    for (i, other) in results.iter().enumerate() {
        let has_e2e = other.comparisons.iter().any(|c| c.kind == CaseKind::EndToEnd);
        if i != primary && has_e2e {
            let model = other.cases.iter().find_map(|c| c.model.as_ref());
            let title = format!(
                "## End to end, {}{} thread(s)\n",
                model.map(|m| format!("{}, ", m.name)).unwrap_or_default(),
                other.threads
            );
            md.push_str(&end_to_end_section(other).replacen("## End to end\n", &title, 1));
        }
    }
    if let Some(a) = anchor {
        md.push_str(a);
    }
    md.push_str("## Charts\n\n");
    for (title, file, note) in charts {
        match note {
            None => md.push_str(&format!(
                "### {title}\n\n![{title}]({file}) ([SVG]({}))\n\n",
                file.replace(".png", ".svg")
            )),
            Some(n) => md.push_str(&format!("### {title}\n\nNot drawn: {n}\n\n")),
        }
    }
    md.push_str("## Next opportunities, ranked by measured headroom\n\nAt the last stage, each case's \
        median time against its roofline limit (`max(FLOPs / FMA peak, bytes / bandwidth of the level \
        its working set lives in)`); the headroom is the time reaching the limit would save per call.\n\n\
        | rank | case | stage (variant) | median | % of limit | limit | headroom per call |\n|---:|---|---|---:|---:|---|---:|\n");
    for (i, o) in opportunities(r).iter().take(12).enumerate() {
        md.push_str(&format!(
            "| {} | `{}` | {} ({}) | {} | {:.1}% | {} | {} |\n",
            i + 1,
            cell(&o.group),
            o.stage,
            o.variant,
            time_ns(o.median_ns),
            o.percent_of_limit,
            o.limit_basis,
            time_ns(o.headroom_ns)
        ));
    }
    md.push_str(&format!(
        "\n## Method\n\n- Warm-up {} ms per variant, then samples of ≥ {:.2} ms (and ≥ 100× the timer's \
         resolution of {} ns), up to {} samples per variant within {} ms per case group (at least {}).\n\
         - The variants of a case are measured interleaved, round robin, order reversed every round; \
         speedups are ratios of medians with paired bootstrap 95 % CIs ({} resamples, seeded).\n\
         - `cache=hot` reuses one prepared case; `cache=cold` rotates over copies totalling more than \
         twice the L3, so every iteration starts from DRAM.\n\
         - Outliers (Tukey fences) are flagged in the result file, never dropped; raw samples are kept.\n\
         - Limits are the best of repeated probe runs (`gllm-bench machine`) on a shared machine: a \
         case above 100 % means the probe was slowed by a neighbour, or the kernel overlaps loads and \
         stores better than the probe does.\n\
         - Inputs: {} result file(s); the JSON next to this report holds every sample.\n",
        r.settings.warmup_ms,
        r.settings.min_sample_ms,
        r.settings.timer_resolution_ns,
        r.settings.samples,
        r.settings.time_cap_ms,
        r.settings.min_samples,
        crate::stats::BOOTSTRAP_RESAMPLES,
        results.len(),
    ));
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_case_shape_or_id() {
        assert_eq!(tokens_of("model=smollm2,tokens=64,threads=1"), Some(64));
        assert_eq!(tokens_of("model=smollm2,threads=1"), None);
        assert_eq!(tokens_of("e2e_prefill(stage=simd,model=m,tokens=485,threads=1)"), Some(485));
        assert_eq!(tokens_of("e2e_decode(stage=simd,model=m,threads=1)"), None);
    }

    fn entry(stage: &str, tokens: usize) -> StageEntry {
        StageEntry {
            stage: stage.into(),
            variant: stage.into(),
            case_id: format!("e2e_prefill(stage={stage},model=m,tokens={tokens},threads=1)"),
            verified: true,
            median_ns: Some(1e6),
            throughput: Some(1e3),
            percent_of_limit: None,
            speedup_vs_first: None,
            speedup_vs_previous: None,
        }
    }

    #[test]
    fn a_stage_cut_below_the_case_tokens_is_named() {
        let comparison = |shape: &str| Comparison {
            group: format!("e2e_prefill({shape})"),
            kind: CaseKind::EndToEnd,
            op: "e2e_prefill".into(),
            shape: shape.into(),
            cache: "hot".into(),
            unit: "tokens/s".into(),
            entries: vec![entry("naive", 14), entry("simd", 485), entry("quantized", 512)],
        };
        // the group's own count, or (a default count left out of the shape) the most any ran
        for c in [comparison("model=m,tokens=512,threads=1"), comparison("model=m,threads=1")] {
            let cut: Vec<_> = c.entries.iter().map(|e| cut_tokens(&c, e)).collect();
            assert_eq!(cut, [Some(14), Some(485), None]);
        }
        let mut op = comparison("model=m,tokens=512,threads=1");
        op.kind = CaseKind::Op;
        assert_eq!(cut_tokens(&op, &op.entries[0]), None);
    }
}
