//! `gllm-bench`: staged comparisons, baselines, the CI gate and reports.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gllm_kernels::{cpu, registry, stage};

mod model_commands;

/// Exit codes are an API: 0 pass, 1 confirmed regression, 2 inconclusive, 3 usage or
/// harness error.
#[derive(Parser)]
#[command(name = "gllm-bench", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List ops, their variants (available on this CPU or not, and why) and the stages.
    ///
    /// Example: gllm-bench list
    List,
    /// Generate text with a GGUF model through one stage (prefill and decode tokens/s).
    Generate(model_commands::GenerateArgs),
    /// Tokenize text with a GGUF file's vocabulary.
    Tokenize(model_commands::TokenizeArgs),
    /// Inspect or extract GGUF files.
    #[command(subcommand)]
    Gguf(model_commands::GgufCommand),
}

fn list() {
    let detected = cpu::detected();
    println!("CPU: {}", cpu::model_name());
    println!("compiled features: {}", cpu::compiled().names().join(" "));
    println!("detected features: {}", detected.names().join(" "));
    println!();
    println!("{:<28} {:<16} {:<10} summary", "op", "variant", "available");
    for op in registry::ops() {
        for v in registry::variants_of(op.name) {
            let avail = match (v.available)() {
                registry::Availability::Available => "yes".to_string(),
                registry::Availability::Unavailable(why) => format!("no ({why})"),
            };
            println!("{:<28} {:<16} {:<10} {}", op.name, v.name, avail, v.summary);
        }
    }
    println!();
    let stages = stage::builtin();
    for s in &stages {
        let parent = s.parent.as_deref().unwrap_or("-");
        println!("stage {:<16} parent {:<16} {}", s.name, parent, s.summary);
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
    match cli.command {
        Command::List => list(),
        Command::Generate(args) => return model_exit(model_commands::run_generate(&args)),
        Command::Tokenize(args) => return model_exit(model_commands::run_tokenize(&args)),
        Command::Gguf(command) => return model_exit(model_commands::run_gguf(&command)),
    }
    ExitCode::SUCCESS
}

/// Exit code 3 with the message for a failed model command.
fn model_exit(result: Result<(), model_commands::ModelCommandError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
    }
}
