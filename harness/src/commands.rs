//! The CLI commands: parse-free glue between clap's arguments and the library.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use gllm_bench::baseline::{self, CaseKind, GitInfo, ResultFile, Settings, VerificationStatus};
use gllm_bench::cases::{self, CacheSelect, CaseSelect, CaseSpec};
use gllm_bench::e2e::{self, E2eSettings, EndToEndCase, ModelSource, Phase, SyntheticModel};
use gllm_bench::error::HarnessError;
use gllm_bench::machine::{self, Fingerprint};
use gllm_bench::measure::{timer_resolution, MeasureConfig};
use gllm_bench::report;
use gllm_bench::runner::{self, Plan};
use gllm_kernels::registry::{self, CaseSet};
use gllm_kernels::stage::{self, ResolvedStage};
use regex::Regex;

use crate::{BaselineCommand, ExportFormat, MeasureArgs};

pub struct Context {
    pub quiet: bool,
}

impl Context {
    fn progress(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }
}

type Outcome = Result<u8, HarnessError>;

fn usage(msg: impl Into<String>) -> HarnessError {
    HarnessError::Usage(msg.into())
}

fn compile_filter(filter: Option<&str>) -> Result<Option<Regex>, HarnessError> {
    filter
        .map(|f| {
            Regex::new(f).map_err(|e| usage(format!("--filter `{f}` is not a valid regex: {e}")))
        })
        .transpose()
}

fn resolve_stage(name: &str) -> Result<ResolvedStage, HarnessError> {
    stage::resolve(&stage::builtin(), name).map_err(|e| usage(e.to_string()))
}

/// The stages from `from` (default: the root) to `to`, along `to`'s chain.
fn stage_range(to: &str, from: Option<&str>) -> Result<Vec<ResolvedStage>, HarnessError> {
    let target = resolve_stage(to)?;
    let start = match from {
        None => 0,
        Some(f) => target.chain.iter().position(|s| s == f).ok_or_else(|| {
            usage(format!(
                "--from `{f}` is not an ancestor of `{to}` (its chain is {})",
                target.chain.join(" → ")
            ))
        })?,
    };
    target.chain[start..].iter().map(|s| resolve_stage(s)).collect()
}

fn summaries() -> BTreeMap<String, String> {
    stage::builtin().into_iter().map(|s| (s.name, s.summary)).collect()
}

/// Whether `--filter` keeps any end-to-end case of model `name` (matched against the group
/// ids, e.g. `e2e_prefill(model=NAME,threads=N)`, and against
/// `e2e_prefill(stage=S,model=NAME,threads=N)` per stage, the same for `e2e_decode`).
fn e2e_selected(
    filter: Option<&Regex>,
    name: &str,
    m: &MeasureArgs,
    stages: &[ResolvedStage],
) -> bool {
    let Some(re) = filter else { return true };
    let threads = m.threads as usize;
    let prefills = m.prefill_tokens.iter().map(|&t| (Phase::Prefill, t));
    prefills.chain([(Phase::Decode, 0)]).any(|(phase, tokens)| {
        let group = e2e::group_id(phase, name, tokens, threads);
        re.is_match(&group)
            || stages
                .iter()
                .any(|s| re.is_match(&group.replacen('(', &format!("(stage={},", s.name), 1)))
    })
}

/// The end-to-end cases of this run (none when `--filter` excludes them). A `--model` file is
/// opened and checked first, whatever the filter: a missing or corrupt file is an error.
fn e2e_cases(
    m: &MeasureArgs,
    filter: Option<&Regex>,
    stages: &[ResolvedStage],
) -> Result<Vec<CaseSpec>, HarnessError> {
    let source = match &m.model {
        Some(path) => Some(ModelSource::real(path)?),
        None => None,
    };
    let name = match (&source, m.synthetic) {
        (Some(s), _) => s.record.name.clone(),
        (None, SyntheticModel::Smollm2) => "synthetic-smollm2".into(),
        (None, SyntheticModel::Tiny) => "synthetic-tiny".into(),
    };
    if !e2e_selected(filter, &name, m, stages) {
        return Ok(Vec::new());
    }
    let source = match source {
        Some(s) => s,
        None => ModelSource::synthetic(m.synthetic, &e2e::model_cache_dir())?,
    };
    // Each case is kept only if the filter selects it (`--filter e2e_decode`).
    Ok(EndToEndCase::cases(std::sync::Arc::new(source), m.threads as usize, &m.prefill_tokens)
        .into_iter()
        .filter(|c| {
            filter.is_none_or(|re| {
                re.is_match(&c.group_id())
                    || stages.iter().any(|s| re.is_match(&c.id(&s.name, c.tokens)))
            })
        })
        .map(CaseSpec::EndToEnd)
        .collect())
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("gllm-bench {}", args.join(" "))
}

/// The machine's peaks; a spinner while they are measured (about 3 s, once per machine).
fn peaks_with_spinner(
    ctx: &Context,
    fingerprint: &Fingerprint,
    remeasure: bool,
) -> Result<(machine::Peaks, bool), HarnessError> {
    let cached = !remeasure && machine::cache_path(&machine::cache_dir(), fingerprint).is_file();
    let spinner = if ctx.progress() && !cached {
        let s = indicatif::ProgressBar::new_spinner();
        s.set_message("measuring this machine's FMA peak and bandwidth (cached afterwards)");
        s.enable_steady_tick(std::time::Duration::from_millis(200));
        Some(s)
    } else {
        None
    };
    let result = machine::peaks(fingerprint, remeasure);
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    result
}

/// Verifies and measures `stages` over the selected cases; the whole result file.
fn measure_stages(
    ctx: &Context,
    stages: &[ResolvedStage],
    m: &MeasureArgs,
    name: Option<&str>,
) -> Result<ResultFile, HarnessError> {
    let filter = compile_filter(m.filter.as_deref())?;
    let e2e_specs = e2e_cases(m, filter.as_ref(), stages)?;
    let fingerprint = Fingerprint::detect();
    if !ctx.quiet {
        eprintln!("gllm-bench: machine {}", fingerprint.id);
    }
    let (peaks, cached) = peaks_with_spinner(ctx, &fingerprint, m.remeasure_machine)?;
    if !cached && !ctx.quiet {
        eprintln!("gllm-bench: measured this machine: {}", machine::summary_line(&peaks));
    }
    let specs = cases::plan(m.cases, m.cache, fingerprint.caches.l2);
    let specs = runner::filter_cases(specs, stages, filter.as_ref());
    if specs.is_empty() && e2e_specs.is_empty() {
        return Err(usage(format!(
            "no case matches --filter `{}`; `gllm-bench list` shows the ops",
            m.filter.as_deref().unwrap_or("")
        )));
    }
    let mut config = if m.quick { MeasureConfig::quick() } else { MeasureConfig::standard() };
    // A global budget keeps large plans (every op, every block format) within minutes.
    let budget = m.time_budget.unwrap_or(if m.quick { 20.0 } else { 120.0 });
    let per_group = std::time::Duration::from_secs_f64(budget / specs.len().max(1) as f64)
        .max(std::time::Duration::from_millis(50));
    config.time_cap = config.time_cap.min(per_group);
    if m.threads > 1 && !ctx.quiet {
        eprintln!(
            "gllm-bench: note: op kernels are single-threaded; --threads {} applies to the end-to-end cases",
            m.threads
        );
    }
    let plan = Plan {
        stages,
        cases: specs,
        config: config.clone(),
        l3: fingerprint.caches.l3,
        show_progress: ctx.progress(),
    };
    let mut outcome = runner::execute(&plan, &peaks);
    let e2e_refs: Vec<&EndToEndCase> = e2e_specs
        .iter()
        .filter_map(|c| match c {
            CaseSpec::EndToEnd(e) => Some(e),
            CaseSpec::Op(_) => None,
        })
        .collect();
    let e2e_budget = m.e2e_budget.unwrap_or(if m.quick { 6.0 } else { 30.0 });
    let e2e_out = e2e::execute(
        &e2e_refs,
        stages,
        &E2eSettings {
            budget_per_case: std::time::Duration::from_secs_f64(
                e2e_budget / e2e_refs.len().max(1) as f64,
            ),
            samples: if m.quick { 5 } else { 10 },
            show_progress: ctx.progress(),
        },
        &peaks,
    )?;
    if !ctx.quiet {
        for n in &e2e_out.notes {
            eprintln!("gllm-bench: end to end: {n}");
        }
    }
    outcome.cases.extend(e2e_out.cases);
    outcome.comparisons.extend(e2e_out.comparisons);
    let git: GitInfo = baseline::git_info();
    Ok(ResultFile {
        schema_version: baseline::SCHEMA_VERSION,
        created: baseline::now_rfc3339(),
        command: command_line(),
        name: name.map(str::to_string),
        git,
        rustc: baseline::rustc_version().to_string(),
        profile: baseline::profile().to_string(),
        machine: fingerprint,
        peaks,
        threads: m.threads as usize,
        settings: Settings {
            quick: m.quick,
            samples: config.samples,
            min_samples: config.min_samples,
            warmup_ms: config.warmup.as_secs_f64() * 1e3,
            min_sample_ms: config.sample_target().as_secs_f64() * 1e3,
            time_cap_ms: config.time_cap.as_secs_f64() * 1e3,
            timer_resolution_ns: timer_resolution().as_nanos() as f64,
            case_set: match m.cases {
                CaseSelect::Model => "model",
                CaseSelect::Sweep => "sweep",
                CaseSelect::All => "all",
            }
            .into(),
            cache: match m.cache {
                CacheSelect::Auto => "auto",
                CacheSelect::Hot => "hot",
                CacheSelect::Cold => "cold",
                CacheSelect::Both => "both",
            }
            .into(),
            filter: m.filter.clone(),
        },
        stages: runner::stage_records(stages, &summaries()),
        cases: outcome.cases,
        comparisons: outcome.comparisons,
    })
}

/// Prints failed verifications; the exit code (1 when any failed).
fn verification_exit(result: &ResultFile) -> u8 {
    let failed: Vec<_> = result
        .cases
        .iter()
        .filter(|c| c.verification.status == VerificationStatus::Failed)
        .collect();
    for c in &failed {
        eprintln!(
            "gllm-bench: {} FAILED verification ({}): {}; no speed reported",
            c.id,
            c.verification.metric,
            c.verification.detail.as_deref().unwrap_or("")
        );
    }
    u8::from(!failed.is_empty())
}

pub fn list(coverage: bool, json: bool) -> Outcome {
    let stages = stage::builtin();
    let resolved: Vec<ResolvedStage> =
        stages.iter().filter_map(|s| stage::resolve(&stages, &s.name).ok()).collect();
    let used_by = |op: &str, variant: &str| -> Vec<String> {
        resolved
            .iter()
            .filter(|r| r.choices.get(op).is_some_and(|v| v.name == variant))
            .map(|r| r.name.clone())
            .collect()
    };
    let count = |op: &registry::OpInfo, set| (op.shapes)(set).len();
    if json {
        let ops: Vec<serde_json::Value> = registry::ops()
            .iter()
            .map(|op| {
                let variants: Vec<serde_json::Value> = registry::variants_of(op.name)
                    .map(|v| {
                        let avail = (v.available)();
                        serde_json::json!({
                            "name": v.name,
                            "summary": v.summary,
                            "available": avail.is_available(),
                            "unavailable_reason": match avail {
                                registry::Availability::Unavailable(why) => Some(why),
                                registry::Availability::Available => None,
                            },
                            "stages": used_by(op.name, v.name),
                        })
                    })
                    .collect();
                serde_json::json!({
                    "name": op.name,
                    "summary": op.summary,
                    "unit": op.unit.symbol(),
                    "tolerance": op.tolerance.metric(),
                    "cases": {
                        "model": (op.shapes)(CaseSet::Model).iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                        "sweep": count(op, CaseSet::Sweep),
                        "test": count(op, CaseSet::Test),
                    },
                    "variants": variants,
                })
            })
            .collect();
        let stages_json: Vec<serde_json::Value> = stages
            .iter()
            .map(|s| serde_json::json!({"name": s.name, "parent": s.parent, "summary": s.summary}))
            .collect();
        let doc = serde_json::json!({
            "cpu": gllm_kernels::cpu::model_name(),
            "compiled_features": gllm_kernels::cpu::compiled().names(),
            "detected_features": gllm_kernels::cpu::detected().names(),
            "ops": ops,
            "stages": stages_json,
        });
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
        return Ok(0);
    }
    let mut out = String::new();
    out.push_str(&format!("CPU: {}\n", gllm_kernels::cpu::model_name()));
    out.push_str(&format!(
        "compiled features: {}\n",
        gllm_kernels::cpu::compiled().names().join(" ")
    ));
    out.push_str(&format!(
        "detected features: {}\n\n",
        gllm_kernels::cpu::detected().names().join(" ")
    ));
    let mut rows = Vec::new();
    let mut holes = Vec::new();
    for op in registry::ops() {
        let (model, sweep, test) =
            (count(op, CaseSet::Model), count(op, CaseSet::Sweep), count(op, CaseSet::Test));
        for v in registry::variants_of(op.name) {
            let avail = match (v.available)() {
                registry::Availability::Available => "yes".to_string(),
                registry::Availability::Unavailable(why) => format!("no ({why})"),
            };
            let stages_using = used_by(op.name, v.name);
            rows.push(vec![
                op.name.to_string(),
                v.name.to_string(),
                avail.clone(),
                if stages_using.is_empty() { "-".into() } else { stages_using.join(",") },
                format!("{model}/{sweep}/{test}"),
                v.summary.to_string(),
            ]);
            if coverage {
                let mut why = Vec::new();
                if !(v.available)().is_available() {
                    why.push(format!("not testable or benchmarkable on this CPU: {avail}"));
                }
                if test == 0 {
                    why.push("no test cases (CaseSet::Test is empty)".into());
                }
                if model == 0 {
                    why.push("no benchmark cases (CaseSet::Model is empty)".into());
                }
                if sweep == 0 {
                    why.push("no size sweep (CaseSet::Sweep is empty)".into());
                }
                if stages_using.is_empty() && v.name != "naive" {
                    why.push("no built-in stage chooses it (measured by `verify` only)".into());
                }
                for w in why {
                    holes.push(format!("{}/{}: {w}", op.name, v.name));
                }
            }
        }
    }
    let table = report::console::Table {
        headers: ["op", "variant", "available", "stages", "cases model/sweep/test", "summary"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        rows,
    };
    out.push_str(&table.render());
    out.push('\n');
    for s in &stages {
        out.push_str(&format!(
            "stage {:<16} parent {:<16} {}\n",
            s.name,
            s.parent.as_deref().unwrap_or("-"),
            s.summary
        ));
    }
    if coverage {
        out.push_str("\ncoverage holes:\n");
        if holes.is_empty() {
            out.push_str("  none\n");
        }
        for h in holes {
            out.push_str(&format!("  {h}\n"));
        }
    }
    print!("{out}");
    Ok(0)
}

pub fn verify(
    ctx: &Context,
    stage_name: Option<&str>,
    json: bool,
    filter: Option<&str>,
    select: CaseSelect,
) -> Outcome {
    let filter = compile_filter(filter)?;
    let stages = match stage_name {
        Some(s) => Some(stage_range(s, None)?),
        None => None,
    };
    let specs = cases::plan(select, CacheSelect::Hot, usize::MAX);
    let specs: Vec<_> = specs
        .into_iter()
        .filter(|s| {
            let arms = match &stages {
                Some(st) => s.arms(st),
                None => s.all_arms(),
            };
            let names: Vec<&str> = arms.iter().map(|a| a.name.as_str()).collect();
            cases::selected(filter.as_ref(), s, &names)
        })
        .collect();
    if specs.is_empty() {
        return Err(usage("no case matches --filter"));
    }
    let results = runner::verify_all(&specs, stages.as_deref(), ctx.progress());
    let failed = results.iter().filter(|(_, _, v)| v.status == VerificationStatus::Failed).count();
    if json {
        let doc: Vec<serde_json::Value> = results
            .iter()
            .map(|(id, op, v)| serde_json::json!({"id": id, "op": op, "verification": v}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
    } else {
        print!("{}", report::console::verify_table(&results));
        println!("{} checked, {} failed", results.len(), failed);
    }
    Ok(u8::from(failed > 0))
}

pub fn run(
    ctx: &Context,
    stage_name: &str,
    m: &MeasureArgs,
    output: Option<&Path>,
    save: Option<&str>,
) -> Outcome {
    if let Some(name) = save {
        baseline::check_name(name)?;
    }
    let stages = vec![resolve_stage(stage_name)?];
    let result = measure_stages(ctx, &stages, m, save)?;
    print!("{}", report::console::header(&result));
    print!("{}", report::console::cases_table(&result));
    let path = match (output, save) {
        (Some(p), _) => Some(p.to_path_buf()),
        (None, Some(name)) => {
            Some(baseline::baseline_path(&baseline::baselines_root(), &result.machine.id, name))
        }
        (None, None) => None,
    };
    if let Some(p) = path {
        baseline::save(&p, &result)?;
        eprintln!("gllm-bench: wrote {}", p.display());
    }
    Ok(verification_exit(&result))
}

pub fn compare(
    ctx: &Context,
    stage_name: &str,
    from: Option<&str>,
    m: &MeasureArgs,
    json: Option<&Path>,
    markdown: Option<&Path>,
) -> Outcome {
    let stages = stage_range(stage_name, from)?;
    let started = std::time::Instant::now();
    let result = measure_stages(ctx, &stages, m, None)?;
    print!("{}", report::console::header(&result));
    println!(
        "stages: {}\n",
        stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(" → ")
    );
    print!("{}", report::console::compare_table(&result));
    if result.cases.iter().any(|c| c.kind == CaseKind::EndToEnd) {
        println!(
            "\nend to end (e2e_*): median time per token, throughput tokens/s; prefill = one batch of \
             `tokens` from an empty cache, decode = `tokens` steps after `prompt`; slow stages \
             may run fewer tokens per sample (see the notes above and each case id)."
        );
    }
    println!("measured in {:.1} s", started.elapsed().as_secs_f64());
    if let Some(p) = json {
        baseline::save(p, &result)?;
        eprintln!("gllm-bench: wrote {}", p.display());
    }
    if let Some(p) = markdown {
        let text = report::markdown::compare_markdown(&result);
        baseline::write_atomic(p, text.as_bytes())?;
        eprintln!("gllm-bench: wrote {}", p.display());
    }
    Ok(verification_exit(&result))
}

pub fn baseline(ctx: &Context, cmd: BaselineCommand) -> Outcome {
    let root = baseline::baselines_root();
    match cmd {
        BaselineCommand::Save { name, input, stage, measure } => {
            baseline::check_name(&name)?;
            let mut result = match input {
                Some(p) => baseline::load(&p)?,
                None => {
                    let stage_name = stage.unwrap_or_else(|| {
                        stage::builtin().last().map(|s| s.name.clone()).unwrap_or_default()
                    });
                    measure_stages(ctx, &[resolve_stage(&stage_name)?], &measure, Some(&name))?
                }
            };
            result.name = Some(name.clone());
            let path = baseline::baseline_path(&root, &result.machine.id, &name);
            baseline::save(&path, &result)?;
            println!("saved {}", path.display());
            Ok(verification_exit(&result))
        }
        BaselineCommand::List => {
            let all = baseline::list_baselines(&root);
            if all.is_empty() {
                println!("no baselines in {}", root.display());
            }
            let mut table =
                report::console::Table::new(&["machine", "name", "created", "cases", "git"]);
            for (machine_id, name, path) in all {
                let (created, cases, git) = match baseline::load(&path) {
                    Ok(r) => (
                        r.created.clone(),
                        r.cases.len().to_string(),
                        r.git
                            .sha
                            .as_deref()
                            .map(|s| s[..s.len().min(12)].to_string())
                            .unwrap_or_default(),
                    ),
                    Err(e) => (format!("unreadable: {e}"), String::new(), String::new()),
                };
                table.rows.push(vec![machine_id, name, created, cases, git]);
            }
            print!("{}", table.render());
            Ok(0)
        }
        BaselineCommand::Show { name } => {
            let path = baseline::resolve(&root, &Fingerprint::detect().id, &name)?;
            let result = baseline::load(&path)?;
            println!("{}", path.display());
            print!("{}", report::console::header(&result));
            print!("{}", report::console::cases_table(&result));
            if !result.comparisons.is_empty() && result.stages.len() > 1 {
                println!();
                print!("{}", report::console::compare_table(&result));
            }
            Ok(0)
        }
        BaselineCommand::Diff { a, b } => {
            let id = Fingerprint::detect().id;
            let (pa, pb) = (baseline::resolve(&root, &id, &a)?, baseline::resolve(&root, &id, &b)?);
            let (ra, rb) = (baseline::load(&pa)?, baseline::load(&pb)?);
            print!("{}", report::console::diff_table(&ra, &rb));
            Ok(0)
        }
    }
}

/// Loads every input, or measures a compare of every built-in stage when there is none.
fn inputs_or_measure(
    ctx: &Context,
    inputs: &[PathBuf],
    m: &MeasureArgs,
) -> Result<Vec<ResultFile>, HarnessError> {
    if !inputs.is_empty() {
        return inputs.iter().map(|p| baseline::load(p)).collect();
    }
    let last = stage::builtin().last().map(|s| s.name.clone()).unwrap_or_default();
    let stages = stage_range(&last, None)?;
    Ok(vec![measure_stages(ctx, &stages, m, None)?])
}

pub fn report(
    ctx: &Context,
    inputs: &[PathBuf],
    out: &Path,
    anchor: Option<&Path>,
    m: &MeasureArgs,
) -> Outcome {
    // a bad anchor folder fails before anything is measured
    let anchor = anchor.map(report::anchor::Anchor::load).transpose()?;
    let results = inputs_or_measure(ctx, inputs, m)?;
    if inputs.is_empty() {
        baseline::save(&out.join("results.json"), &results[0])?;
    }
    for r in &results {
        print!("{}", report::console::header(r));
        if r.stages.len() > 1 {
            print!("{}", report::console::compare_table(r));
        } else {
            print!("{}", report::console::cases_table(r));
        }
    }
    let written = report::write_report(&results, out, anchor.as_ref())?;
    for p in written {
        eprintln!("gllm-bench: wrote {}", p.display());
    }
    Ok(0)
}

pub fn export(ctx: &Context, format: ExportFormat, input: Option<&Path>, out: &Path) -> Outcome {
    let result = match input {
        Some(p) => baseline::load(p)?,
        None => {
            let quick = MeasureArgs {
                filter: None,
                threads: 1,
                quick: true,
                cases: CaseSelect::Model,
                cache: CacheSelect::Auto,
                model: None,
                synthetic: gllm_bench::e2e::SyntheticModel::Smollm2,
                e2e_budget: None,
                prefill_tokens: vec![e2e::DEFAULT_PREFILL_TOKENS],
                time_budget: None,
                remeasure_machine: false,
            };
            inputs_or_measure(ctx, &[], &quick)?.remove(0)
        }
    };
    use report::export as ex;
    let written = match format {
        ExportFormat::Bmf => ex::write_json(out, &ex::bmf(&result))?,
        ExportFormat::GithubActionBenchmark => {
            ex::write_json(out, &ex::github_action_benchmark(&result, false))?
        }
        ExportFormat::GithubActionBenchmarkBigger => {
            ex::write_json(out, &ex::github_action_benchmark(&result, true))?
        }
        ExportFormat::Criterion => ex::write_criterion(out, &result)?,
    };
    eprintln!("gllm-bench: wrote {} file(s) under {}", written, out.display());
    Ok(0)
}

pub fn machine(ctx: &Context, json: bool, remeasure: bool) -> Outcome {
    let fingerprint = Fingerprint::detect();
    let (peaks, cached) = peaks_with_spinner(ctx, &fingerprint, remeasure)?;
    if json {
        let doc = serde_json::json!({"fingerprint": fingerprint, "peaks": peaks, "cached": cached,
            "cache_file": machine::cache_path(&machine::cache_dir(), &fingerprint)});
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
        return Ok(0);
    }
    println!("machine id   {}", fingerprint.id);
    println!("CPU          {} ({} logical CPUs)", fingerprint.cpu_model, fingerprint.logical_cpus);
    println!(
        "caches       L1d {} KiB, L2 {} KiB, L3 {} MiB",
        fingerprint.caches.l1d >> 10,
        fingerprint.caches.l2 >> 10,
        fingerprint.caches.l3 >> 20
    );
    println!("compiled     {}", fingerprint.compiled_features.join(" "));
    println!("detected     {}", fingerprint.detected_features.join(" "));
    println!("FMA peak     {:.1} GFLOP/s, 1 core ({})", peaks.fma_gflops, peaks.fma_kernel);
    if let (Some(g), Some(k)) = (peaks.int8_gops, &peaks.int8_kernel) {
        println!("int8 dots    {g:.1} GOP/s, 1 core ({k})");
    }
    for b in &peaks.bandwidth {
        println!(
            "{:<5} {:>7} KiB  read {:6.1} GB/s  y+=x {:6.1} GB/s",
            b.level,
            b.bytes >> 10,
            b.read_gb_per_s,
            b.update_gb_per_s
        );
    }
    println!(
        "{} {} ({})",
        if cached { "cached at" } else { "measured now, cached at" },
        machine::cache_path(&machine::cache_dir(), &fingerprint).display(),
        peaks.measured_at
    );
    Ok(0)
}
