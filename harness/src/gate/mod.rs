//! The CI performance-regression gate (`gllm-bench gate`) and its A/A self-check
//! (`gllm-bench aa`).
//!
//! Modes:
//! - **A/B in one job** (`--base-bin/--head-bin`, or `--base-ref REV`): both builds run as
//!   worker child processes ([`worker`]); every case is measured in ABBA rounds, one process
//!   at a time, and judged on the paired ratio head/base with a bootstrap CI.
//! - **Stored baseline** (`--baseline FILE`): the head build against a result file; refused
//!   (exit 3) on another machine or feature set unless `--allow-foreign-machine`, which
//!   normalizes by the FMA calibration kernel measured in this run.
//! - **Instructions** (`--mode instructions`): callgrind instruction counts ([`instructions`]).
//!
//! Verdicts, exit codes and output: [`verdict`]. Thresholds: [`thresholds`].

pub mod aa;
pub mod instructions;
pub mod thresholds;
pub mod verdict;
pub mod worker;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use regex::Regex;

use crate::baseline::{self, GitInfo, ResultFile};
use crate::cases::{CacheSelect, CaseSelect};
use crate::error::HarnessError;
use crate::machine::Fingerprint;
use crate::measure::iterations_for;
use crate::stats::{self, Interval};

use thresholds::{ModeRules, Thresholds};
use verdict::{
    classify, final_verdict, CaseResult, Environment, GateReport, Measurement, Side, Verdict,
};
use worker::{CatalogSpec, WorkerCommand, WorkerProcess};

pub const EXIT_CODES: &str = "\
Exit codes (an API, stable):
  0  pass: no case regressed (improvements and unconfirmed one-off flags are reported)
  1  confirmed regression: CI of head/base excludes 1, change > max(threshold, k x noise),
     in two measurements (re-measured with fresh rounds in fresh worker processes)
  2  inconclusive: too noisy to decide (wide CIs, steal time, control-kernel spread)
  3  usage or harness error (bad flag, missing build, foreign machine, worker failure)";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Wall time, paired ABBA rounds of the two builds.
    Wall,
    /// Instruction counts under valgrind callgrind (deterministic).
    Instructions,
}

/// Options of `gllm-bench gate`.
#[derive(clap::Args, Clone, Debug)]
pub struct GateArgs {
    /// The base build (a gllm-bench binary).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["base_ref", "baseline"])]
    pub base_bin: Option<PathBuf>,
    /// Build this git revision as the base (git worktree + its own target dir).
    #[arg(long, value_name = "REV", conflicts_with = "baseline")]
    pub base_ref: Option<String>,
    /// Compare the head build against this stored result file (run -o, baseline save).
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// With --baseline: accept another machine/feature set, normalizing by a calibration kernel.
    #[arg(long, requires = "baseline")]
    pub allow_foreign_machine: bool,
    /// The head build (default: this binary).
    #[arg(long, value_name = "PATH")]
    pub head_bin: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Mode::Wall)]
    pub mode: Mode,
    /// Only cases whose id matches this regex.
    #[arg(long, value_name = "REGEX")]
    pub filter: Option<String>,
    /// The stage whose variants are gated (default: the last built-in stage).
    #[arg(long)]
    pub stage: Option<String>,
    #[arg(long, value_enum, default_value_t = CaseSelect::Model)]
    pub cases: CaseSelect,
    /// Cache state; the default CI set is hot only (cold cases take far longer to prepare).
    #[arg(long, value_enum, default_value_t = CacheSelect::Hot)]
    pub cache: CacheSelect,
    /// Thresholds file (regex → threshold); default ci/thresholds.toml if present.
    #[arg(long, value_name = "FILE")]
    pub thresholds: Option<PathBuf>,
    /// ABBA rounds per case (wall mode); re-measurements use twice as many.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(6..=10_000))]
    pub rounds: u32,
    /// Target duration of one sample, ms (wall mode).
    #[arg(long, default_value_t = 2.0)]
    pub sample_ms: f64,
    /// Iterations counted per case (instructions mode).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub iters: u64,
    /// Write the markdown summary here (PR comment, $GITHUB_STEP_SUMMARY).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Write the full JSON report here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Extra environment for the base worker, KEY=VALUE (repeatable; for testing the gate).
    #[arg(long, value_name = "KEY=VALUE")]
    pub base_env: Vec<String>,
    /// Extra environment for the head worker, KEY=VALUE (repeatable; e.g.
    /// GLLM_CALIBRATION_WORK=1.1 slows the calibration case by 10 % to test the gate).
    #[arg(long, value_name = "KEY=VALUE")]
    pub head_env: Vec<String>,
    /// A/A self-test: this binary as both sides on the calibration case and the first
    /// few op cases; a harness error fails (3), noise gives 2, never a spurious 1.
    #[arg(long, conflicts_with_all = ["base_bin", "base_ref", "baseline"])]
    pub self_test: bool,
    /// Pin both workers to this CPU (default: the last CPU, when `taskset` is available).
    #[arg(long, value_name = "N", conflicts_with = "no_pin")]
    pub cpu: Option<usize>,
    /// Do not pin the workers to a CPU.
    #[arg(long)]
    pub no_pin: bool,
}

/// The CPU both workers are pinned to: `--cpu`, else the last CPU if `taskset` runs.
fn pin_cpu(args: &GateArgs) -> Option<usize> {
    if args.no_pin {
        return None;
    }
    if args.cpu.is_some() {
        return args.cpu;
    }
    let works = std::process::Command::new("taskset")
        .args(["-c", "0", "true"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    works.then_some(n - 1)
}

fn usage(msg: impl Into<String>) -> HarnessError {
    HarnessError::Usage(msg.into())
}

fn parse_env(list: &[String], flag: &str) -> Result<Vec<(String, String)>, HarnessError> {
    list.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(usage(format!("{flag} {kv:?}: expected KEY=VALUE"))),
        })
        .collect()
}

fn this_exe() -> Result<PathBuf, HarnessError> {
    std::env::current_exe()
        .map_err(|e| HarnessError::Harness(format!("cannot find this binary: {e}")))
}

fn check_bin(path: &Path, flag: &str) -> Result<PathBuf, HarnessError> {
    if !path.is_file() {
        return Err(usage(format!("{flag} {}: no such file", path.display())));
    }
    Ok(path.to_path_buf())
}

/// Loads the thresholds: the given file, else `ci/thresholds.toml` under the current
/// directory or the workspace, else built-in defaults.
pub fn load_thresholds(path: Option<&Path>) -> Result<Thresholds, HarnessError> {
    if let Some(p) = path {
        return Thresholds::load(p);
    }
    let candidates = [
        PathBuf::from("ci/thresholds.toml"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/thresholds.toml"),
    ];
    for c in candidates {
        if c.is_file() {
            return Thresholds::load(&c);
        }
    }
    Ok(Thresholds::default())
}

/// CPU time counters from /proc/stat: (steal, total).
fn proc_stat() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    if v.len() < 8 {
        return None;
    }
    Some((v[7], v[..8].iter().sum()))
}

fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// The gate's own control kernel, run in the gate process between cases: the calibration
/// chain for about `ms` milliseconds; returns ns per iteration.
fn control_sample(ms: f64) -> f64 {
    let steps = worker::CALIBRATION_STEPS;
    let t = Instant::now();
    let mut iters = 0u64;
    while t.elapsed().as_secs_f64() * 1e3 < ms {
        std::hint::black_box(worker::calibration_chain(std::hint::black_box(iters), steps));
        iters += 1;
    }
    t.elapsed().as_nanos() as f64 / iters.max(1) as f64
}

/// Tracks the machine's state over a run.
struct EnvProbe {
    start: Option<(u64, u64)>,
    control: Vec<f64>,
}

impl EnvProbe {
    fn start() -> EnvProbe {
        EnvProbe { start: proc_stat(), control: Vec::new() }
    }

    fn sample(&mut self) {
        self.control.push(control_sample(2.0));
    }

    fn finish(self, rules: &ModeRules, wall_mode: bool) -> Environment {
        let steal = match (self.start, proc_stat()) {
            (Some((s0, t0)), Some((s1, t1))) if t1 > t0 => {
                Some(s1.saturating_sub(s0) as f64 / (t1 - t0) as f64)
            }
            _ => None,
        };
        let (spread, median) = if self.control.len() >= 3 {
            let m = stats::median(&self.control);
            (Some(1.4826 * stats::mad(&self.control) / m), Some(m))
        } else {
            (None, self.control.first().copied())
        };
        let mut notes = Vec::new();
        let mut too_noisy = false;
        if wall_mode {
            if let Some(s) = steal.filter(|&s| s > rules.max_steal) {
                too_noisy = true;
                notes.push(format!(
                    "steal time {:.1} % > max_steal {:.1} %: the hypervisor took the CPU away",
                    s * 100.0,
                    rules.max_steal * 100.0
                ));
            }
            if let Some(s) = spread.filter(|&s| s > rules.max_calibration_spread) {
                too_noisy = true;
                notes.push(format!(
                    "control-kernel spread {:.1} % > max_calibration_spread {:.1} %: other \
                     processes compete for the cores",
                    s * 100.0,
                    rules.max_calibration_spread * 100.0
                ));
            }
        }
        Environment {
            steal_fraction: steal,
            load_average: load_average(),
            calibration_spread: spread,
            calibration_ns: median,
            too_noisy,
            notes,
        }
    }
}

/// Wall-mode settings.
#[derive(Clone, Debug)]
pub struct WallConfig {
    pub rounds: usize,
    pub sample: Duration,
    pub warmup: Duration,
    /// Per-case cap on the rounds' duration (never fewer than 6 rounds).
    pub time_cap: Duration,
}

/// Paired samples of one case: ns per iteration, round by round.
pub struct Paired {
    pub base: Vec<f64>,
    pub head: Vec<f64>,
}

/// Measures `case` in both workers in ABBA rounds (A B, B A, A B, ...) with the same
/// iteration count on both sides.
pub fn measure_pair(
    base: &mut WorkerProcess,
    head: &mut WorkerProcess,
    case: &str,
    cfg: &WallConfig,
) -> Result<Paired, HarnessError> {
    let eb = base.prepare(case, cfg.warmup)?;
    let eh = head.prepare(case, cfg.warmup)?;
    let iters = iterations_for(cfg.sample, eb.min(eh));
    let mut p =
        Paired { base: Vec::with_capacity(cfg.rounds), head: Vec::with_capacity(cfg.rounds) };
    let start = Instant::now();
    for round in 0..cfg.rounds {
        if round >= 6 && start.elapsed() >= cfg.time_cap {
            break;
        }
        if round % 2 == 0 {
            p.base.push(base.run(case, iters)?);
            p.head.push(head.run(case, iters)?);
        } else {
            p.head.push(head.run(case, iters)?);
            p.base.push(base.run(case, iters)?);
        }
    }
    base.release(case)?;
    head.release(case)?;
    Ok(p)
}

/// Same-code noise of one side: the relative difference between the medians of its even
/// and odd rounds (both halves interleaved with the other side exactly like a real pair).
pub fn split_noise(xs: &[f64]) -> f64 {
    let even: Vec<f64> = xs.iter().step_by(2).copied().collect();
    let odd: Vec<f64> = xs.iter().skip(1).step_by(2).copied().collect();
    if even.is_empty() || odd.is_empty() {
        return 0.0;
    }
    (stats::median(&even) / stats::median(&odd)).ln().abs().exp_m1()
}

/// Ratios of ABBA blocks: rounds 2j (base first) and 2j+1 (head first) together, so the
/// advantage or penalty of running first or second cancels inside each block; drift
/// between blocks cancels in the ratio. A trailing unpaired round is dropped.
pub fn block_ratios(head: &[f64], base: &[f64]) -> Vec<f64> {
    let n = head.len().min(base.len()) / 2 * 2;
    (0..n).step_by(2).map(|i| (head[i] + head[i + 1]) / (base[i] + base[i + 1])).collect()
}

/// The median of the ABBA block ratios head/base with a bootstrap 95 % CI over blocks.
pub fn paired_block_ratio(head: &[f64], base: &[f64], seed: u64) -> stats::Ratio {
    let ratios = block_ratios(head, base);
    stats::Ratio { ratio: stats::median(&ratios), ci95: stats::median_ci(&ratios, seed) }
}

/// Same-code noise of a paired measurement: how far the ratio estimates of two disjoint
/// halves of the blocks (even vs odd) disagree, relative. A real change moves both halves
/// alike and leaves this small; noise moves them apart.
pub fn ratio_split_noise(head: &[f64], base: &[f64]) -> f64 {
    split_noise(&block_ratios(head, base))
}

/// Judges paired samples: ratio head/base with its CI, noise, verdict. A measurement whose
/// same-code noise exceeds `max_noise` cannot resolve anything: inconclusive.
pub fn judge_pair(id: &str, p: &Paired, rules: &ModeRules, attempt: usize) -> (Measurement, f64) {
    let seed = stats::seed_for(&format!("gate:{id}:{attempt}"));
    let r = paired_block_ratio(&p.head, &p.base, seed);
    let noise = ratio_split_noise(&p.head, &p.base);
    let (threshold, _) = rules.threshold(id);
    let effective = threshold.max(rules.noise_k * noise);
    let verdict = if noise > rules.max_noise {
        Verdict::Inconclusive
    } else {
        classify(r.ratio, r.ci95, effective)
    };
    let m = Measurement {
        base: stats::median(&p.base),
        head: stats::median(&p.head),
        ratio: r.ratio,
        ci95: r.ci95,
        noise,
        rounds: p.base.len(),
        verdict,
    };
    (m, effective)
}

/// Everything a gate run needs, resolved from the arguments.
pub struct GatePlan {
    pub mode: Mode,
    pub base: WorkerCommand,
    pub head: WorkerCommand,
    pub catalog: CatalogSpec,
    pub filter: Option<Regex>,
    /// At most this many op cases (after the filter), for the self-test; calibration always.
    pub max_op_cases: Option<usize>,
    pub thresholds: Thresholds,
    pub wall: WallConfig,
    pub iters: u64,
    pub show_progress: bool,
}

fn select_cases(all: Vec<String>, plan: &GatePlan) -> Vec<String> {
    let mut out: Vec<String> = all
        .into_iter()
        .filter(|id| plan.filter.as_ref().map(|re| re.is_match(id)).unwrap_or(true))
        .collect();
    if let Some(max) = plan.max_op_cases {
        let mut ops = 0;
        out.retain(|id| {
            if id == worker::CALIBRATION_ID {
                return true;
            }
            ops += 1;
            ops <= max
        });
    }
    out
}

fn side(label: &str, cmd: &WorkerCommand, hello: Option<&worker::Hello>) -> Side {
    Side {
        label: label.into(),
        bin: cmd.bin.display().to_string(),
        git_sha: cmd.git.sha.clone(),
        git_dirty: cmd.git.dirty,
        calibration_factor: hello.map(|h| h.calibration_factor).unwrap_or(1.0),
    }
}

fn progress(show: bool, msg: &str) {
    if show {
        eprintln!("gate: {msg}");
    }
}

/// Runs an A/B gate (wall or instructions) and returns the report.
pub fn run_ab(plan: &GatePlan) -> Result<GateReport, HarnessError> {
    let t0 = Instant::now();
    match plan.mode {
        Mode::Wall => run_wall(plan, t0),
        Mode::Instructions => run_instructions(plan, t0),
    }
}

fn finish(
    plan: &GatePlan,
    mode: &str,
    source: &str,
    (base, head): (Side, Side),
    environment: Environment,
    cases: Vec<CaseResult>,
    t0: Instant,
) -> GateReport {
    let (status, exit_code) = verdict::status(&cases, &environment);
    GateReport {
        schema: "gllm-bench-gate/1".into(),
        created: baseline::now_rfc3339(),
        mode: mode.into(),
        source: source.into(),
        base,
        head,
        thresholds: plan.thresholds.source.clone(),
        environment,
        cases,
        status: status.into(),
        exit_code,
        wall_seconds: t0.elapsed().as_secs_f64(),
    }
}

fn run_wall(plan: &GatePlan, t0: Instant) -> Result<GateReport, HarnessError> {
    let rules = &plan.thresholds.wall;
    let mut base = WorkerProcess::spawn("base", &plan.base, &plan.catalog)?;
    let mut head = WorkerProcess::spawn("head", &plan.head, &plan.catalog)?;
    let base_cases = base.list()?;
    let head_cases = head.list()?;
    let mut notes = Vec::new();
    let only_base: Vec<&String> = base_cases.iter().filter(|c| !head_cases.contains(c)).collect();
    let only_head: Vec<&String> = head_cases.iter().filter(|c| !base_cases.contains(c)).collect();
    if !only_base.is_empty() || !only_head.is_empty() {
        notes.push(format!(
            "not compared (in one build only): {} base-only, {} head-only",
            only_base.len(),
            only_head.len()
        ));
    }
    let common: Vec<String> = base_cases.into_iter().filter(|c| head_cases.contains(c)).collect();
    let ids = select_cases(common, plan);
    if ids.is_empty() {
        return Err(usage("no case of both builds matches --filter"));
    }
    let mut probe = EnvProbe::start();
    let mut results = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        probe.sample();
        progress(plan.show_progress, &format!("[{}/{}] {id}", i + 1, ids.len()));
        let mut measurements = Vec::new();
        let mut effective_threshold = 0.0;
        while verdict::needs_more(&measurements) {
            let attempt = measurements.len();
            let cfg = if attempt == 0 {
                plan.wall.clone()
            } else {
                // Fresh rounds (twice as many) in fresh worker processes: a difference tied
                // to one process's memory layout (heap placement, page mapping) must not
                // confirm itself.
                base = WorkerProcess::spawn("base", &plan.base, &plan.catalog)?;
                head = WorkerProcess::spawn("head", &plan.head, &plan.catalog)?;
                probe.sample();
                WallConfig {
                    rounds: plan.wall.rounds * 2,
                    time_cap: plan.wall.time_cap * 2,
                    ..plan.wall.clone()
                }
            };
            let p = measure_pair(&mut base, &mut head, id, &cfg)?;
            let (m, effective) = judge_pair(id, &p, rules, attempt);
            effective_threshold = effective;
            measurements.push(m);
        }
        let (threshold, rule) = rules.threshold(id);
        results.push(CaseResult {
            id: id.clone(),
            unit: "ns/iter".into(),
            threshold,
            threshold_rule: rule,
            effective_threshold,
            verdict: final_verdict(&measurements),
            measurements,
            normalized: false,
        });
    }
    probe.sample();
    let mut env = probe.finish(rules, true);
    env.notes.extend(notes);
    let (b, h) =
        (side("base", &plan.base, Some(&base.hello)), side("head", &plan.head, Some(&head.hello)));
    Ok(finish(plan, "wall", "ab", (b, h), env, results, t0))
}

fn run_instructions(plan: &GatePlan, t0: Instant) -> Result<GateReport, HarnessError> {
    let rules = &plan.thresholds.instructions;
    let version = instructions::valgrind_version()?;
    // The case list comes from short-lived workers run by valgrind too: its CPU has no
    // AVX-512, so the list names the variants the counting runs can execute.
    let (base_cases, base_hello) = {
        let mut w = WorkerProcess::spawn_under_valgrind("base", &plan.base, &plan.catalog)?;
        (w.list()?, w.hello.clone())
    };
    let (head_cases, head_hello) = {
        let mut w = WorkerProcess::spawn_under_valgrind("head", &plan.head, &plan.catalog)?;
        (w.list()?, w.hello.clone())
    };
    let common: Vec<String> = base_cases.into_iter().filter(|c| head_cases.contains(c)).collect();
    let ids = select_cases(common, plan);
    if ids.is_empty() {
        return Err(usage("no case of both builds matches --filter"));
    }
    let scratch = std::env::temp_dir().join(format!("gllm-gate-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| HarnessError::io(&scratch, "create", e))?;
    let count_pair = |id: &str, attempt: usize| -> Result<(f64, f64), HarnessError> {
        std::thread::scope(|s| {
            let b = s.spawn(|| {
                instructions::count(
                    &plan.base,
                    &plan.catalog,
                    id,
                    plan.iters,
                    &scratch,
                    &format!("b{attempt}"),
                )
            });
            let h = instructions::count(
                &plan.head,
                &plan.catalog,
                id,
                plan.iters,
                &scratch,
                &format!("h{attempt}"),
            );
            let b =
                b.join().map_err(|_| HarnessError::Harness("counting thread panicked".into()))?;
            Ok((b?, h?))
        })
    };
    let mut results = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        progress(plan.show_progress, &format!("[{}/{}] {id} (callgrind)", i + 1, ids.len()));
        let (threshold, rule) = rules.threshold(id);
        let mut measurements = Vec::new();
        while verdict::needs_more(&measurements) {
            let attempt = measurements.len();
            let (b, h) = count_pair(id, attempt)?;
            let ratio = h / b;
            let ci = Interval { lo: ratio, hi: ratio };
            // Noise: how much a re-count of the same build moved (0 when deterministic).
            let noise = match measurements.first() {
                Some(m) => {
                    let m: &Measurement = m;
                    ((b / m.base - 1.0).abs()).max((h / m.head - 1.0).abs())
                }
                None => 0.0,
            };
            let effective = threshold.max(rules.noise_k * noise);
            measurements.push(Measurement {
                base: b,
                head: h,
                ratio,
                ci95: ci,
                noise,
                rounds: 1,
                verdict: if noise > rules.max_noise {
                    Verdict::Inconclusive
                } else {
                    classify(ratio, ci, effective)
                },
            });
        }
        let effective =
            threshold.max(rules.noise_k * measurements.last().map(|m| m.noise).unwrap_or(0.0));
        results.push(CaseResult {
            id: id.clone(),
            unit: "instructions/iter".into(),
            threshold,
            threshold_rule: rule,
            effective_threshold: effective,
            verdict: final_verdict(&measurements),
            measurements,
            normalized: false,
        });
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let mut env = EnvProbe::start().finish(rules, false);
    env.notes.push(format!("{version}, {} iterations counted per case", plan.iters));
    let (b, h) =
        (side("base", &plan.base, Some(&base_hello)), side("head", &plan.head, Some(&head_hello)));
    Ok(finish(plan, "instructions", "ab", (b, h), env, results, t0))
}

/// Builds `rev` of the repository containing the current directory into its own target
/// dir with a temporary `git worktree`; returns the binary.
pub fn build_ref(rev: &str, show: bool) -> Result<(PathBuf, GitInfo), HarnessError> {
    let git = |args: &[&str], dir: &Path| -> Result<String, HarnessError> {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .map_err(|e| HarnessError::Harness(format!("cannot run git: {e}")))?;
        if !out.status.success() {
            return Err(usage(format!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let cwd = std::env::current_dir().map_err(|e| HarnessError::Harness(e.to_string()))?;
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"], &cwd)?);
    let sha = git(&["rev-parse", "--verify", &format!("{rev}^{{commit}}")], &top)
        .map_err(|_| usage(format!("--base-ref {rev}: not a commit of {}", top.display())))?;
    let target = top.join("target/gate-base");
    let tree = target.join(format!("src-{}", &sha[..12]));
    let bin = target.join("release/gllm-bench");
    if !tree.exists() {
        std::fs::create_dir_all(&target).map_err(|e| HarnessError::io(&target, "create", e))?;
        git(&["worktree", "add", "--detach", &tree.display().to_string(), &sha], &top)?;
    }
    progress(show, &format!("building base {rev} ({}) into {}", &sha[..12], target.display()));
    let status = std::process::Command::new("cargo")
        .args(["build", "--release", "-p", "gllm-bench", "--target-dir"])
        .arg(&target)
        .current_dir(&tree)
        .status()
        .map_err(|e| HarnessError::Harness(format!("cannot run cargo: {e}")))?;
    let _ = git(&["worktree", "remove", "--force", &tree.display().to_string()], &top);
    if !status.success() {
        return Err(HarnessError::Harness(format!("building --base-ref {rev} failed ({status})")));
    }
    Ok((bin, GitInfo { sha: Some(sha), dirty: Some(false) }))
}

/// Resolves the arguments into a plan (A/B modes).
pub fn plan_from_args(args: &GateArgs, show_progress: bool) -> Result<GatePlan, HarnessError> {
    let unknown = || GitInfo { sha: None, dirty: None };
    let (head_bin, head_git) = match &args.head_bin {
        Some(p) => (check_bin(p, "--head-bin")?, unknown()),
        None => (this_exe()?, baseline::git_info()),
    };
    let (base_bin, base_git) = if args.self_test {
        (head_bin.clone(), head_git.clone())
    } else if let Some(p) = &args.base_bin {
        (check_bin(p, "--base-bin")?, unknown())
    } else if let Some(r) = &args.base_ref {
        build_ref(r, show_progress)?
    } else {
        return Err(usage(
            "gate needs --base-bin PATH, --base-ref REV, --baseline FILE or --self-test",
        ));
    };
    let filter = args
        .filter
        .as_deref()
        .map(|f| {
            Regex::new(f).map_err(|e| usage(format!("--filter `{f}` is not a valid regex: {e}")))
        })
        .transpose()?;
    if !(args.sample_ms > 0.0 && args.sample_ms <= 10_000.0) {
        return Err(usage(format!("--sample-ms {}: expected (0, 10000]", args.sample_ms)));
    }
    let rounds = args.rounds as usize;
    Ok(GatePlan {
        mode: args.mode,
        base: WorkerCommand {
            bin: base_bin,
            env: parse_env(&args.base_env, "--base-env")?,
            cpu: pin_cpu(args),
            git: base_git,
        },
        head: WorkerCommand {
            bin: head_bin,
            env: parse_env(&args.head_env, "--head-env")?,
            cpu: pin_cpu(args),
            git: head_git,
        },
        catalog: CatalogSpec { stage: args.stage.clone(), cases: args.cases, cache: args.cache },
        filter,
        max_op_cases: if args.self_test { Some(2) } else { None },
        thresholds: load_thresholds(args.thresholds.as_deref())?,
        wall: WallConfig {
            rounds,
            sample: Duration::from_secs_f64(args.sample_ms / 1e3),
            warmup: Duration::from_millis(20),
            time_cap: Duration::from_secs_f64((args.sample_ms / 1e3) * rounds as f64 * 2.0 * 3.0),
        },
        iters: args.iters,
        show_progress,
    })
}

/// Stored-baseline mode: the head build against a result file.
pub fn run_baseline(args: &GateArgs, path: &Path, show: bool) -> Result<GateReport, HarnessError> {
    let t0 = Instant::now();
    if args.mode == Mode::Instructions {
        return Err(usage("--mode instructions needs two builds (--base-bin or --base-ref): a stored result file holds times, not instruction counts"));
    }
    let stored: ResultFile = baseline::load(path)?;
    let here = Fingerprint::detect();
    let foreign =
        stored.machine.id != here.id || stored.machine.compiled_features != here.compiled_features;
    if foreign && !args.allow_foreign_machine {
        return Err(usage(format!(
            "{}: recorded on machine `{}` (cpu `{}`, compiled features [{}]), this is `{}` (cpu \
             `{}`, compiled features [{}]). Times from another machine or build configuration \
             are not comparable; measure both builds here with --base-bin/--base-ref, or pass \
             --allow-foreign-machine to normalize by a calibration kernel (verdicts are then \
             marked normalized).",
            path.display(),
            stored.machine.id,
            stored.machine.cpu_model,
            stored.machine.compiled_features.join(","),
            here.id,
            here.cpu_model,
            here.compiled_features.join(",")
        )));
    }
    let mut plan_args = args.clone();
    plan_args.self_test = true; // head only; base_bin unused
    let plan = plan_from_args(&plan_args, show)?;
    let plan = GatePlan { max_op_cases: None, ..plan };
    let rules = &plan.thresholds.wall;
    let scale = if foreign {
        // The FMA peak kernel measured now vs when the baseline was recorded.
        let (now, _) = crate::machine::measure_fma_peak();
        Some(now / stored.peaks.fma_gflops)
    } else {
        None
    };
    let mut head = WorkerProcess::spawn("head", &plan.head, &plan.catalog)?;
    let cases = head.list()?;
    let ids: Vec<String> = select_cases(cases, &plan)
        .into_iter()
        .filter(|id| stored.case(id).and_then(|c| c.timing.as_ref()).is_some())
        .collect();
    if ids.is_empty() {
        return Err(usage(format!(
            "{}: no case of the head build (after --filter) has timings in this file",
            path.display()
        )));
    }
    let mut probe = EnvProbe::start();
    let mut results = Vec::new();
    for id in &ids {
        probe.sample();
        let timing = stored.case(id).and_then(|c| c.timing.as_ref()).expect("filtered above");
        let mut measurements = Vec::new();
        while verdict::needs_more(&measurements) {
            let attempt = measurements.len();
            let est = head.prepare(id, plan.wall.warmup)?;
            let iters = iterations_for(plan.wall.sample, est);
            let mut xs = Vec::new();
            for _ in 0..plan.wall.rounds * attempt.clamp(1, 2) {
                xs.push(head.run(id, iters)?);
            }
            head.release(id)?;
            let s = scale.unwrap_or(1.0);
            let scaled: Vec<f64> = xs.iter().map(|x| x * s).collect();
            let r = stats::ratio_ci(&scaled, &timing.samples_ns, stats::seed_for(id));
            let noise = split_noise(&xs);
            let (threshold, _) = rules.threshold(id);
            let effective = threshold.max(rules.noise_k * noise);
            measurements.push(Measurement {
                base: timing.median_ns,
                head: stats::median(&scaled),
                ratio: r.ratio,
                ci95: r.ci95,
                noise,
                rounds: xs.len(),
                verdict: if noise > rules.max_noise {
                    Verdict::Inconclusive
                } else {
                    classify(r.ratio, r.ci95, effective)
                },
            });
        }
        let (threshold, rule) = rules.threshold(id);
        let noise = measurements.last().map(|m| m.noise).unwrap_or(0.0);
        results.push(CaseResult {
            id: id.clone(),
            unit: "ns/iter".into(),
            threshold,
            threshold_rule: rule,
            effective_threshold: threshold.max(rules.noise_k * noise),
            verdict: final_verdict(&measurements),
            measurements,
            normalized: scale.is_some(),
        });
    }
    probe.sample();
    let mut env = probe.finish(rules, true);
    env.notes.push(
        "stored baseline: samples taken at another time are not paired; drift between then \
         and now is not cancelled (prefer --base-bin/--base-ref)"
            .into(),
    );
    if let Some(s) = scale {
        env.notes.push(format!(
            "FOREIGN MACHINE: head times multiplied by {s:.4} (FMA calibration kernel now / \
             recorded); every verdict is normalized"
        ));
    }
    let b = Side {
        label: "baseline".into(),
        bin: path.display().to_string(),
        git_sha: stored.git.sha.clone(),
        git_dirty: stored.git.dirty,
        calibration_factor: 1.0,
    };
    let h = side("head", &plan.head, Some(&head.hello));
    Ok(finish(&plan, "wall", "baseline", (b, h), env, results, t0))
}

/// Writes the outputs of a report (console to stdout, markdown and JSON files).
pub fn emit(
    report: &GateReport,
    markdown: Option<&Path>,
    json: Option<&Path>,
) -> Result<(), HarnessError> {
    print!("{}", verdict::console(report));
    if let Some(p) = markdown {
        baseline::write_atomic(p, verdict::markdown(report).as_bytes())?;
    }
    if let Some(p) = json {
        let text = serde_json::to_string_pretty(report)
            .map_err(|e| HarnessError::Harness(format!("cannot serialize the report: {e}")))?;
        baseline::write_atomic(p, text.as_bytes())?;
    }
    Ok(())
}

/// `gllm-bench gate`: returns the exit code.
pub fn gate(args: &GateArgs, show_progress: bool) -> Result<u8, HarnessError> {
    let report = match &args.baseline {
        Some(path) => run_baseline(args, path, show_progress)?,
        None => run_ab(&plan_from_args(args, show_progress)?)?,
    };
    emit(&report, args.markdown.as_deref(), args.json.as_deref())?;
    Ok(report.exit_code)
}

/// The hidden `worker` subcommand: serve JSON lines, or count one case (`--count`).
pub fn worker_main(
    stage: Option<String>,
    cases: CaseSelect,
    cache: CacheSelect,
    count: Option<&str>,
    iters: u64,
) -> Result<u8, HarnessError> {
    let spec = CatalogSpec { stage, cases, cache };
    match count {
        Some(id) => worker::count(&spec, id, iters)?,
        None => {
            let stdin = std::io::stdin();
            worker::serve(&spec, stdin.lock(), std::io::stdout().lock())?
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_noise_of_constant_samples_is_zero_and_sees_alternation() {
        assert_eq!(split_noise(&[5.0; 10]), 0.0);
        let alt: Vec<f64> = (0..10).map(|i| if i % 2 == 0 { 1.0 } else { 1.1 }).collect();
        assert!((split_noise(&alt) - 0.1).abs() < 1e-9);
    }

    #[test]
    fn env_parsing() {
        assert_eq!(
            parse_env(&["A=1".into(), "B=x=y".into()], "--head-env").unwrap(),
            vec![("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
        assert!(parse_env(&["nope".into()], "--head-env").is_err());
    }

    #[test]
    fn proc_stat_reads_steal() {
        if let Some((steal, total)) = proc_stat() {
            assert!(steal <= total);
        }
    }
}
