//! Model subcommands: `generate`, `tokenize`, `gguf info`, `gguf dequant`.
//!
//! Every `run_*` returns `Err(ModelCommandError)` on bad input (missing file, bad tensor name,
//! unknown stage, invalid sampling parameters, ...); `main` prints it and exits with code 3.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use gllm_kernels::quant::try_dequantize_row;
use gllm_model::generate::{generate, peak_rss_bytes, GenerateOptions, Generation};
use gllm_model::gguf::{info_json, info_text, writer::write_atomically, GgufFile};
use gllm_model::sampler::SamplerConfig;
use gllm_model::synthetic::{self, SyntheticConfig};
use gllm_model::tokenizer::Tokenizer;
use gllm_model::{Model, ModelOptions};

/// A model command's failure, printed by `main` (exit code 3).
#[derive(Debug)]
pub struct ModelCommandError(pub String);

impl fmt::Display for ModelCommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::error::Error> From<E> for ModelCommandError {
    fn from(e: E) -> Self {
        ModelCommandError(e.to_string())
    }
}

/// `println!` that returns a [`ModelCommandError`] (closed pipe, full disk) instead of
/// panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*)
            .map_err(|e| ModelCommandError(format!("writing to stdout: {e}")))?
    };
}

/// `print!` with the same error handling as [`out!`].
macro_rules! outn {
    ($($arg:tt)*) => {
        write!(std::io::stdout().lock(), $($arg)*)
            .map_err(|e| ModelCommandError(format!("writing to stdout: {e}")))?
    };
}

fn fail<T>(message: impl Into<String>) -> Result<T, ModelCommandError> {
    Err(ModelCommandError(message.into()))
}

/// Generate text with a llama GGUF model through one stage.
///
/// Streams the text, then prints prefill and decode tokens/s measured apart (after an
/// untimed warm-up unless --no-warmup) and the peak RSS. Without --model, a synthetic model
/// with SmolLM2-135M's shapes and random weights is built once into the temp folder and used
/// (said on stderr).
///
/// Example: gllm-bench generate --model models/SmolLM2-135M-Instruct.Q4_1.gguf --chat "What is the capital of France?" -n 48 --greedy
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// GGUF model file (default: the built-in synthetic SmolLM2-shaped model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Raw prompt; special tokens such as <|im_start|> are parsed.
    #[arg(long, conflicts_with = "chat", required_unless_present = "chat")]
    pub prompt: Option<String>,
    /// A user message wrapped in the file's chat template.
    #[arg(long)]
    pub chat: Option<String>,
    /// Tokens to generate at most.
    #[arg(short = 'n', long = "tokens", default_value_t = 64)]
    pub tokens: usize,
    /// Stage (naive, matrixmultiply, simd, flash, quantized).
    #[arg(long, default_value = "quantized")]
    pub stage: String,
    /// Threads of the model's pool.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Argmax decoding (the default when no --temperature is given).
    #[arg(long, conflicts_with = "temperature")]
    pub greedy: bool,
    /// Sampling temperature (> 0 samples; 0 is greedy).
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Keep the K most likely tokens (0 = all).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Nucleus sampling threshold in (0, 1].
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Repetition penalty over the last 64 tokens (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Keep generating past end-of-generation tokens.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Skip the untimed warm-up run.
    #[arg(long)]
    pub no_warmup: bool,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    pub json: bool,
}

/// Tokenize text with a GGUF file's vocabulary.
///
/// Example: gllm-bench tokenize --model models/SmolLM2-135M-Instruct.Q4_1.gguf --json "Hello world"
#[derive(Args, Debug)]
pub struct TokenizeArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// Parse special tokens such as <|im_start|> in the text.
    #[arg(long)]
    pub special: bool,
    /// Print {"ids": [...]}.
    #[arg(long)]
    pub json: bool,
    pub text: String,
}

/// Inspect or extract GGUF files.
#[derive(Subcommand, Debug)]
pub enum GgufCommand {
    /// Header, metadata and tensors of a GGUF file.
    ///
    /// Example: gllm-bench gguf info models/SmolLM2-135M-Instruct.Q4_1.gguf --json
    Info {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Write one tensor as little-endian f32 (atomically).
    ///
    /// Example: gllm-bench gguf dequant model.gguf blk.0.attn_q.weight -o q.f32
    Dequant {
        file: PathBuf,
        tensor: String,
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
}

/// The model file to use, building the synthetic default when none is given.
fn model_path(model: &Option<PathBuf>) -> Result<(PathBuf, bool), ModelCommandError> {
    match model {
        Some(p) if !p.exists() => fail(format!("{}: no such model file", p.display())),
        Some(p) => Ok((p.clone(), false)),
        None => {
            let path = synthetic::cached(&SyntheticConfig::default(), None)?;
            eprintln!(
                "note: no --model given: using the synthetic SmolLM2-135M-shaped model {} (random weights, byte-level vocabulary)",
                path.display()
            );
            Ok((path, true))
        }
    }
}

pub fn run_generate(args: &GenerateArgs) -> Result<(), ModelCommandError> {
    if args.threads == 0 {
        return fail("--threads must be at least 1");
    }
    let (path, is_synthetic) = model_path(&args.model)?;
    // One parse of the file serves the tokenizer and the model (peak RSS counts both).
    let file = std::sync::Arc::new(GgufFile::open(&path)?);
    let tokenizer = Tokenizer::from_gguf(&file)?;
    let stage = gllm_kernels::stage::resolve(&gllm_kernels::stage::builtin(), &args.stage)
        .map_err(|e| ModelCommandError(format!("stage: {e}")))?;
    let prompt_text = match (&args.prompt, &args.chat) {
        (Some(p), _) => p.clone(),
        (None, Some(c)) => tokenizer.chat_template()?.user_prompt(c),
        (None, None) => return fail("give --prompt TEXT or --chat TEXT"),
    };
    let prompt_ids = tokenizer.encode_prompt(&prompt_text, true);
    let sampler = match args.temperature {
        Some(t) if t > 0.0 => SamplerConfig {
            temperature: t,
            top_k: args.top_k,
            top_p: args.top_p,
            repetition_penalty: args.repeat_penalty,
            seed: args.seed,
            ..SamplerConfig::greedy()
        },
        _ => SamplerConfig { repetition_penalty: args.repeat_penalty, ..SamplerConfig::greedy() },
    };
    // The cache holds the prompt and the generated tokens, at most the context length (a
    // longer request fails in `generate` with the numbers).
    let context = gllm_model::config::LlamaConfig::from_gguf(&file)?.context_length;
    let max_positions = (prompt_ids.len() + args.tokens).max(16).min(context);
    let options = ModelOptions {
        threads: args.threads,
        max_positions: Some(max_positions),
        ..Default::default()
    };
    let load_start = std::time::Instant::now();
    let mut model = Model::from_file(file, &stage, &options)?;
    let load_seconds = load_start.elapsed().as_secs_f64();
    let gen_options = GenerateOptions {
        max_tokens: args.tokens,
        sampler,
        stop_at_end_of_generation: !args.ignore_eos,
        warmup: !args.no_warmup,
    };
    let stdout = std::io::stdout();
    let g: Generation = if args.json {
        generate(&mut model, &tokenizer, &prompt_ids, &gen_options, &mut |_| {})?
    } else {
        let mut out = stdout.lock();
        let g = generate(&mut model, &tokenizer, &prompt_ids, &gen_options, &mut |s| {
            let _ = out.write_all(s.as_bytes());
            let _ = out.flush();
        })?;
        drop(out);
        g
    };
    let rss = peak_rss_bytes();
    if args.json {
        let v = serde_json::json!({
            "model": path.display().to_string(),
            "synthetic_model": is_synthetic,
            "stage": model.stage().name,
            "threads": model.threads(),
            "kernels": model.kernels().names.iter().map(|(op, v)| format!("{op}={v}")).collect::<Vec<_>>(),
            "prompt_ids": g.prompt_ids,
            "ids": g.ids,
            "text": g.text,
            "stop": g.stop,
            "prefill_tokens": g.prefill_tokens,
            "prefill_seconds": g.prefill_seconds,
            "prefill_tokens_per_s": g.prefill_tokens_per_s(),
            "decode_tokens": g.decode_tokens,
            "decode_seconds": g.decode_seconds,
            "decode_tokens_per_s": g.decode_tokens_per_s(),
            "warmup": g.warmup,
            "load_seconds": load_seconds,
            "peak_rss_bytes": rss,
        });
        out!("{v}");
    } else {
        out!();
        out!(
            "[{} | stage {} | {} thread(s) | warm-up {}]",
            path.display(),
            model.stage().name,
            model.threads(),
            if g.warmup { "yes" } else { "no" }
        );
        out!(
            "prefill: {} tokens in {:.3} s = {:.1} tokens/s",
            g.prefill_tokens,
            g.prefill_seconds,
            g.prefill_tokens_per_s()
        );
        out!(
            "decode:  {} tokens in {:.3} s = {:.1} tokens/s",
            g.decode_tokens,
            g.decode_seconds,
            g.decode_tokens_per_s()
        );
        if let Some(r) = rss {
            out!("peak RSS: {:.1} MiB (load {:.2} s)", r as f64 / 1048576.0, load_seconds);
        }
    }
    Ok(())
}

pub fn run_tokenize(args: &TokenizeArgs) -> Result<(), ModelCommandError> {
    if !args.model.exists() {
        return fail(format!("{}: no such model file", args.model.display()));
    }
    let file = GgufFile::open(&args.model)?;
    let tokenizer = Tokenizer::from_gguf(&file)?;
    if args.json {
        out!("{}", gllm_model::tokenizer::tokenize_json(&tokenizer, &args.text, args.special));
    } else {
        outn!("{}", gllm_model::tokenizer::tokenize_text(&tokenizer, &args.text, args.special));
    }
    Ok(())
}

pub fn run_gguf(command: &GgufCommand) -> Result<(), ModelCommandError> {
    match command {
        GgufCommand::Info { file, json } => {
            let f = GgufFile::open(file)?;
            if *json {
                out!("{}", info_json(&f, Some(64)));
            } else {
                outn!("{}", info_text(&f));
            }
            Ok(())
        }
        GgufCommand::Dequant { file, tensor, output } => dequant(file, tensor, output),
    }
}

fn dequant(file: &Path, tensor: &str, output: &Path) -> Result<(), ModelCommandError> {
    let f = GgufFile::open(file)?;
    let info = f.require_tensor(tensor)?;
    let n = usize::try_from(info.n_elements)
        .map_err(|_| ModelCommandError(format!("tensor `{tensor}` is too large")))?;
    let mut values = vec![0.0f32; n];
    try_dequantize_row(info.ty, f.tensor_data(info), &mut values)
        .map_err(|e| ModelCommandError(format!("{}: tensor `{tensor}`: {e}", file.display())))?;
    write_atomically(output, |out| {
        let mut w = std::io::BufWriter::new(out);
        for v in &values {
            w.write_all(&v.to_le_bytes())?;
        }
        w.flush()
    })
    .map_err(|e| ModelCommandError(format!("{}: {e}", output.display())))?;
    eprintln!(
        "wrote {} ({} f32 values, {:?} {}) to {}",
        tensor,
        n,
        info.dims,
        info.ty,
        output.display()
    );
    Ok(())
}
