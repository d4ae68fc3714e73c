//! `gllm-bench`: staged comparisons, baselines, exports and reports.

mod commands;
mod model_commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use gllm_bench::cases::{CacheSelect, CaseSelect};
use gllm_bench::e2e::SyntheticModel;

const EXIT_CODES: &str = "\
Exit codes (an API, stable):
  0  pass
  1  failure: a regression, or a variant that fails verification against naive
  2  inconclusive (too noisy to decide)
  3  usage or harness error (bad flag, missing or corrupt file, other schema version)

Environment: NO_COLOR disables color; GLLM_FORCE_VARIANT forces variants (see README);
GLLM_BASELINES_DIR overrides the baselines folder; GLLM_BENCH_CACHE the machine cache.";

/// Benchmarks, baselines and reports for gllm-kernels: every op and variant from the kernel
/// registry, measured interleaved stage by stage, verified against the naive specification.
#[derive(Parser)]
#[command(name = "gllm-bench", version, about, after_help = EXIT_CODES)]
struct Cli {
    /// No progress bars (they are hidden anyway when stderr is not a terminal).
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

/// Options shared by every command that measures.
#[derive(Args, Clone, Debug)]
pub struct MeasureArgs {
    /// Only cases whose id matches this regex (ids look like `add(variant=simd,n=576,cache=hot)`).
    #[arg(long, value_name = "REGEX")]
    pub filter: Option<String>,
    /// Threads (recorded; the op kernels are single-threaded, end-to-end cases will use it).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: u32,
    /// Fewer samples and shorter time caps: about 5× faster, wider confidence intervals.
    #[arg(long)]
    pub quick: bool,
    /// Which shapes: the model's (default), the size sweep, or both.
    #[arg(long, value_enum, default_value_t = CaseSelect::Model)]
    pub cases: CaseSelect,
    /// Cache state: `auto` measures hot, plus cold for working sets larger than L2.
    #[arg(long, value_enum, default_value_t = CacheSelect::Auto)]
    pub cache: CacheSelect,
    /// A real GGUF (llama) for the end-to-end cases instead of the built-in synthetic
    /// SmolLM2-shaped model (e.g. models/SmolLM2-135M-Instruct.Q4_1.gguf).
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Which built-in synthetic model the end-to-end cases use when no --model is given.
    #[arg(long, value_enum, default_value_t = SyntheticModel::Smollm2)]
    pub synthetic: SyntheticModel,
    /// Seconds for the end-to-end cases (prefill and decode, all stages, warm-up included;
    /// default 30, 6 with --quick). Slow stages get fewer tokens to fit (see README).
    #[arg(long, value_name = "SECONDS", value_parser = parse_budget)]
    pub e2e_budget: Option<f64>,
    /// Prompt lengths of the end-to-end prefill cases, comma-separated (e.g. `64,512`); each is
    /// one case (lengths other than 64 carry `tokens=N` in their id).
    #[arg(long, value_name = "N,...", value_delimiter = ',', default_value = "64",
          value_parser = parse_tokens)]
    pub prefill_tokens: Vec<usize>,
    /// Seconds of measurement rounds for all cases together (default 120, 20 with --quick):
    /// each case group gets min(1 s (0.15 s quick), budget / groups), and at least 50 ms.
    #[arg(long, value_name = "SECONDS", value_parser = parse_budget)]
    pub time_budget: Option<f64>,
    /// Measure the machine's peaks again instead of using the cached ones.
    #[arg(long)]
    pub remeasure_machine: bool,
}

#[derive(Subcommand)]
enum Command {
    /// List ops, their variants (available on this CPU or not, and why), stages and cases.
    ///
    /// Example: gllm-bench list --coverage
    #[command(
        after_help = "Example:\n  gllm-bench list --coverage\n  gllm-bench list --json > registry.json"
    )]
    List {
        /// Show op × variant cells that no stage uses or that lack benchmark cases.
        #[arg(long)]
        coverage: bool,
        #[arg(long)]
        json: bool,
    },
    /// Check every variant against naive on the benchmark cases (exit 1 on a mismatch).
    #[command(
        after_help = "Example:\n  gllm-bench verify\n  gllm-bench verify --stage simd --json"
    )]
    Verify {
        /// Only the variants this stage (and its ancestors) choose; default: every variant.
        #[arg(long)]
        stage: Option<String>,
        #[arg(long)]
        json: bool,
        #[arg(long, value_name = "REGEX")]
        filter: Option<String>,
        #[arg(long, value_enum, default_value_t = CaseSelect::Model)]
        cases: CaseSelect,
    },
    /// Measure one stage and save the result file.
    #[command(
        after_help = "Example:\n  gllm-bench run --stage simd --save main\n  gllm-bench run --stage simd --filter '^add' --quick -o add.json"
    )]
    Run {
        /// The stage to measure (`gllm-bench list` shows the stages).
        #[arg(long)]
        stage: String,
        #[command(flatten)]
        measure: MeasureArgs,
        /// Write the result file here.
        #[arg(short = 'o', long = "output", value_name = "FILE", conflicts_with = "save")]
        output: Option<PathBuf>,
        /// Save as baseline NAME under baselines/<machine-id>/NAME.json.
        #[arg(long, value_name = "NAME")]
        save: Option<String>,
    },
    /// Measure every stage from --from to --stage interleaved in one process; print the table.
    #[command(
        after_help = "Example:\n  gllm-bench compare --stage simd\n  gllm-bench compare --stage quantized --from simd --quick --markdown cmp.md --json cmp.json"
    )]
    Compare {
        /// Last stage of the comparison (`gllm-bench list` shows the stages).
        #[arg(long)]
        stage: String,
        /// First stage of the comparison (default: the root of --stage's chain).
        #[arg(long, value_name = "STAGE")]
        from: Option<String>,
        #[command(flatten)]
        measure: MeasureArgs,
        /// Also write the result file (raw samples, CIs, comparisons).
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Also write the table as markdown.
        #[arg(long, value_name = "FILE")]
        markdown: Option<PathBuf>,
    },
    /// Store, list, show and diff baselines (baselines/<machine-id>/NAME.json).
    #[command(subcommand)]
    Baseline(BaselineCommand),
    /// Write DIR/report.md and charts (SVG and PNG) from result files (or a fresh compare).
    #[command(
        after_help = "Example:\n  gllm-bench compare --stage quantized --json cmp.json && gllm-bench report --input cmp.json --out reports/example\n  ci/llama-cpp-anchor.sh --out target/anchor && gllm-bench report --input cmp.json --anchor target/anchor --out reports/example"
    )]
    Report {
        /// Result files (run -o, compare --json, baselines); default: measure a compare of every stage.
        #[arg(long, value_name = "FILE", num_args = 1..)]
        input: Vec<PathBuf>,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// llama.cpp measured on this machine (the folder `ci/llama-cpp-anchor.sh` writes): the
        /// end-to-end figures are quoted beside its own.
        #[arg(long, value_name = "DIR")]
        anchor: Option<PathBuf>,
        #[command(flatten)]
        measure: MeasureArgs,
    },
    /// Export a result file for other tools.
    #[command(
        after_help = "Example:\n  gllm-bench export --format bmf --input cmp.json --out bmf.json\n  gllm-bench export --format criterion --input cmp.json --out target/criterion"
    )]
    Export {
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// A result file; default: measure a quick compare of every built-in stage.
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// A file (bmf, github-action-benchmark) or a directory (criterion).
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
    },
    /// Measure (or show the cached) f32 FMA peak and bandwidth at L1, L2, L3, DRAM sizes.
    #[command(
        after_help = "Example:\n  gllm-bench machine\n  gllm-bench machine --json --remeasure"
    )]
    Machine {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        remeasure: bool,
    },
    /// Generate text with a GGUF model through one stage (prefill and decode tokens/s).
    Generate(model_commands::GenerateArgs),
    /// Tokenize text with a GGUF file's vocabulary.
    Tokenize(model_commands::TokenizeArgs),
    /// Inspect or extract GGUF files.
    #[command(subcommand)]
    Gguf(model_commands::GgufCommand),
    /// CI regression gate: head vs base build (or a stored baseline), exit 0/1/2/3.
    #[command(after_help = GATE_HELP)]
    Gate(Box<gllm_bench::gate::GateArgs>),
    /// Run the gate N times with one build as both sides: false alarms and per-case noise.
    #[command(after_help = AA_HELP)]
    Aa(Box<gllm_bench::gate::aa::AaArgs>),
    /// (internal) A measuring worker for the gate, JSON lines on stdin/stdout.
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        stage: Option<String>,
        #[arg(long, value_enum, default_value_t = CaseSelect::Model)]
        cases: CaseSelect,
        #[arg(long, value_enum, default_value_t = CacheSelect::Hot)]
        cache: CacheSelect,
        /// Run ITERS iterations of this case inside the callgrind region and exit.
        #[arg(long, value_name = "ID")]
        count: Option<String>,
        #[arg(long, default_value_t = 1)]
        iters: u64,
    },
}

const GATE_HELP: &str = "\
Examples:
  gllm-bench gate --base-bin base/gllm-bench --head-bin head/gllm-bench --markdown summary.md
  gllm-bench gate --base-ref origin/main --json gate.json
  gllm-bench gate --base-bin base/gllm-bench --mode instructions
  gllm-bench gate --baseline baselines/<machine>/main.json
  gllm-bench gate --self-test

Exit codes (an API, stable):
  0  pass: no case regressed (improvements and unconfirmed one-off flags are reported)
  1  confirmed regression: CI of head/base excludes 1, change > max(threshold, k x noise),
     in two measurements (re-measured with fresh rounds in fresh worker processes)
  2  inconclusive: too noisy to decide (wide CIs, steal time, control-kernel spread)
  3  usage or harness error (bad flag, missing build, foreign machine, worker failure)";

const AA_HELP: &str = "\
Examples:
  gllm-bench aa --runs 20
  gllm-bench aa --runs 20 --mode instructions
  gllm-bench aa --runs 20 --filter calibration --head-env GLLM_CALIBRATION_WORK=1.1   # power

Exit codes: 0 measured, 3 usage or harness error.";

#[derive(Subcommand)]
pub enum BaselineCommand {
    /// Save a baseline: a given result file, or measure one stage now.
    #[command(
        after_help = "Example:\n  gllm-bench baseline save main --stage simd\n  gllm-bench baseline save main --input cmp.json"
    )]
    Save {
        name: String,
        /// Store this result file instead of measuring.
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// The stage to measure (default: the last built-in stage).
        #[arg(long)]
        stage: Option<String>,
        #[command(flatten)]
        measure: MeasureArgs,
    },
    /// List stored baselines (every machine).
    #[command(after_help = "Example:\n  gllm-bench baseline list")]
    List,
    /// Print a baseline's cases (NAME for this machine, or a path).
    #[command(after_help = "Example:\n  gllm-bench baseline show main")]
    Show { name: String },
    /// Compare two baselines case by case: ratio of medians B/A with bootstrap CIs.
    #[command(after_help = "Example:\n  gllm-bench baseline diff main feature")]
    Diff { a: String, b: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Bencher Metric Format JSON.
    Bmf,
    /// github-action-benchmark `customSmallerIsBetter` array (ns per iteration).
    GithubActionBenchmark,
    /// github-action-benchmark `customBiggerIsBetter` array (throughput).
    GithubActionBenchmarkBigger,
    /// A criterion-compatible tree (`<group>/<function>/<value>/new/{estimates,benchmark}.json`).
    Criterion,
}

fn parse_budget(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("`{text}` is not a positive number of seconds")),
    }
}

fn parse_tokens(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(v) if (1..=65536).contains(&v) => Ok(v),
        _ => Err(format!("`{text}` is not a token count in 1..=65536")),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(3) } else { ExitCode::SUCCESS };
        }
    };
    let ctx = commands::Context { quiet: cli.quiet };
    let result = match cli.command {
        Command::List { coverage, json } => commands::list(coverage, json),
        Command::Verify { stage, json, filter, cases } => {
            commands::verify(&ctx, stage.as_deref(), json, filter.as_deref(), cases)
        }
        Command::Run { stage, measure, output, save } => {
            commands::run(&ctx, &stage, &measure, output.as_deref(), save.as_deref())
        }
        Command::Compare { stage, from, measure, json, markdown } => commands::compare(
            &ctx,
            &stage,
            from.as_deref(),
            &measure,
            json.as_deref(),
            markdown.as_deref(),
        ),
        Command::Baseline(cmd) => commands::baseline(&ctx, cmd),
        Command::Report { input, out, anchor, measure } => {
            commands::report(&ctx, &input, &out, anchor.as_deref(), &measure)
        }
        Command::Export { format, input, out } => {
            commands::export(&ctx, format, input.as_deref(), &out)
        }
        Command::Machine { json, remeasure } => commands::machine(&ctx, json, remeasure),
        Command::Generate(args) => return model_exit(model_commands::run_generate(&args)),
        Command::Tokenize(args) => return model_exit(model_commands::run_tokenize(&args)),
        Command::Gguf(command) => return model_exit(model_commands::run_gguf(&command)),
        Command::Gate(args) => gllm_bench::gate::gate(&args, !cli.quiet),
        Command::Aa(args) => gllm_bench::gate::aa::aa(&args, !cli.quiet),
        Command::Worker { stage, cases, cache, count, iters } => {
            gllm_bench::gate::worker_main(stage, cases, cache, count.as_deref(), iters)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("gllm-bench: error: {e}");
            ExitCode::from(3)
        }
    }
}

/// Exit code 3 with the message for a failed model command.
fn model_exit(result: Result<(), model_commands::ModelCommandError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gllm-bench: error: {e}");
            ExitCode::from(3)
        }
    }
}
