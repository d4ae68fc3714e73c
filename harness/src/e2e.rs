//! End-to-end cases: prefill and decode tokens/s of the llama forward pass, one model per
//! stage of the comparison.
//!
//! - The model is the built-in synthetic SmolLM2-shaped GGUF (seeded; built once into the
//!   cache folder under a name that encodes its config and seed) or a real GGUF (`--model`).
//! - Every stage's model is loaded once and kept for the whole run (each f32 stage holds
//!   ~540 MB of dequantized weights for SmolLM2 shapes), so prefill and decode rounds are
//!   interleaved across stages like op cases (order alternating every round).
//! - Before timing, every stage runs a short prompt and its last-token logits are checked
//!   against the `naive` stage's; a stage that disagrees gets no speed.
//! - Slow stages get fewer tokens: the verification forward gives each stage's time per
//!   token, and a stage's token count is cut (never below [`MIN_TOKENS`]) so that a warm-up
//!   and [`MIN_SAMPLES`] samples of every stage fit the case's time budget. The token count
//!   is in the case id; samples are nanoseconds per token, so ratios between stages are
//!   tokens/s ratios.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gllm_kernels::stage::{self, ResolvedStage};
use gllm_model::config::LlamaConfig;
use gllm_model::gguf::GgufFile;
use gllm_model::synthetic::{self, SyntheticConfig};
use gllm_model::{Model, ModelOptions};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::baseline::{
    CaseKind, CaseRecord, Comparison, StageEntry, Verification, VerificationStatus,
};
use crate::error::HarnessError;
use crate::machine::Peaks;
use crate::measure::Samples;
use crate::stats;

/// Samples every stage gets even past the time budget.
pub const MIN_SAMPLES: usize = 3;
/// The fewest tokens a slow stage is cut to.
pub const MIN_TOKENS: usize = 4;
/// Tokens of the verification prompt.
const VERIFY_TOKENS: usize = 4;

/// Which built-in synthetic model (`--synthetic`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SyntheticModel {
    /// SmolLM2-135M's shapes and storage (30 layers, 576 wide, 49152 tokens; Q4_1).
    Smollm2,
    /// 2 layers, 64 wide, 320 tokens: for tests.
    Tiny,
}

/// Where the model of the end-to-end cases comes from, as recorded in the result file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// `synthetic-smollm2`, `synthetic-tiny`, or the file's stem.
    pub name: String,
    pub path: String,
    pub sha256: String,
    pub file_bytes: u64,
    /// Seed of a synthetic model (`null` for a real file).
    pub synthetic_seed: Option<u64>,
    pub architecture: String,
    pub n_layers: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub vocab_size: usize,
    pub context_length: usize,
}

/// The model file every end-to-end case runs, opened and checked once.
pub struct ModelSource {
    pub record: ModelRecord,
    pub file: Arc<GgufFile>,
    pub config: LlamaConfig,
}

fn model_error(path: &Path, message: impl std::fmt::Display) -> HarnessError {
    HarnessError::Harness(format!("--model {}: {message}", path.display()))
}

impl ModelSource {
    /// Opens a GGUF and checks it is a llama model this build can run (a clear error naming
    /// the path otherwise).
    pub fn open(path: &Path, name: String, seed: Option<u64>) -> Result<ModelSource, HarnessError> {
        if !path.is_file() {
            return Err(model_error(path, "no such file"));
        }
        let file = GgufFile::open(path).map_err(|e| model_error(path, e))?;
        let config = LlamaConfig::from_gguf(&file).map_err(|e| model_error(path, e))?;
        config.check_tensors(&file).map_err(|e| model_error(path, e))?;
        let bytes = std::fs::read(path).map_err(|e| model_error(path, e))?;
        let sha256 = format!("{:x}", Sha256::digest(&bytes));
        let record = ModelRecord {
            name,
            path: path.display().to_string(),
            sha256,
            file_bytes: bytes.len() as u64,
            synthetic_seed: seed,
            architecture: config.architecture.clone(),
            n_layers: config.n_layers,
            n_embd: config.n_embd,
            n_ff: config.n_ff,
            n_heads: config.n_heads,
            n_kv_heads: config.n_kv_heads,
            vocab_size: config.vocab_size,
            context_length: config.context_length,
        };
        Ok(ModelSource { record, file: Arc::new(file), config })
    }

    /// A real GGUF named by `--model`.
    pub fn real(path: &Path) -> Result<ModelSource, HarnessError> {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().replace([',', '(', ')', '='], "_"))
            .unwrap_or_else(|| "model".into());
        ModelSource::open(path, name, None)
    }

    /// The built-in synthetic model, built into `cache_dir` on first use.
    pub fn synthetic(which: SyntheticModel, cache_dir: &Path) -> Result<ModelSource, HarnessError> {
        let (config, name) = match which {
            SyntheticModel::Smollm2 => (SyntheticConfig::default(), "synthetic-smollm2"),
            SyntheticModel::Tiny => (SyntheticConfig::tiny(), "synthetic-tiny"),
        };
        std::fs::create_dir_all(cache_dir)
            .map_err(|e| HarnessError::io(cache_dir, "create the model cache folder", e))?;
        let path = synthetic::cached(&config, Some(cache_dir)).map_err(|e| {
            HarnessError::Harness(format!(
                "building the synthetic model in {}: {e}",
                cache_dir.display()
            ))
        })?;
        ModelSource::open(&path, name.into(), Some(config.seed))
    }

    /// Multiply-adds × 2 of one token through every weight matrix of the layers (the
    /// projections and the feed-forward).
    pub fn layer_flops_per_token(&self) -> f64 {
        let c = &self.config;
        let (e, qd, kvd, ff) =
            (c.n_embd, c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim, c.n_ff);
        let per_layer = e * qd + 2 * e * kvd + qd * e + 3 * e * ff;
        2.0 * (c.n_layers * per_layer) as f64
    }

    /// Multiply-adds × 2 of one token's logits (the vocabulary matrix).
    pub fn logits_flops(&self) -> f64 {
        2.0 * (self.config.vocab_size * self.config.n_embd) as f64
    }

    /// Multiply-adds × 2 of one query's attention over `keys` positions in every layer
    /// (`q·k` and `p·v` per head).
    pub fn attention_flops(&self, keys: f64) -> f64 {
        let c = &self.config;
        2.0 * 2.0 * (c.n_layers * c.n_heads * c.head_dim) as f64 * keys
    }

    /// Multiply-adds × 2 of one token through every weight matrix, logits included: the
    /// work of a decode step's matmuls, and what a stage's weights stream per step.
    pub fn flops_per_token(&self) -> f64 {
        self.layer_flops_per_token() + self.logits_flops()
    }

    /// Bytes of weights one pass streams: f32 for the dequantizing stages, the file's blocks
    /// (≈ the file size) for a stage that multiplies on quantized weights.
    pub fn weight_bytes(&self, stage: &ResolvedStage) -> f64 {
        if stage.quantized_weights {
            self.record.file_bytes as f64
        } else {
            self.flops_per_token() / 2.0 * 4.0
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// One batched forward of `tokens` prompt tokens from an empty cache.
    Prefill,
    /// `tokens` single-token steps after a short prompt.
    Decode,
}

impl Phase {
    pub fn op(self) -> &'static str {
        match self {
            Phase::Prefill => "e2e_prefill",
            Phase::Decode => "e2e_decode",
        }
    }
}

/// Prompt tokens of the default prefill case; other lengths name their token count in the
/// case group id (`e2e_prefill(model=M,tokens=512,threads=1)`), this one keeps the plain id.
pub const DEFAULT_PREFILL_TOKENS: usize = 64;

/// The id of an end-to-end case group: `op(model=NAME[,tokens=N],threads=T)`, with `tokens`
/// for a prefill of other than [`DEFAULT_PREFILL_TOKENS`] tokens.
pub fn group_id(phase: Phase, model: &str, prefill_tokens: usize, threads: usize) -> String {
    match phase {
        Phase::Prefill if prefill_tokens != DEFAULT_PREFILL_TOKENS => {
            format!("{}(model={model},tokens={prefill_tokens},threads={threads})", phase.op())
        }
        _ => format!("{}(model={model},threads={threads})", phase.op()),
    }
}

/// One end-to-end case: a phase on the model with default token counts.
#[derive(Clone)]
pub struct EndToEndCase {
    pub phase: Phase,
    pub source: Arc<ModelSource>,
    /// Tokens per sample for stages fast enough (slow stages get fewer, see the module docs).
    pub tokens: usize,
    /// Prompt before the decode steps (0 for prefill).
    pub prompt: usize,
    pub threads: usize,
}

impl EndToEndCase {
    /// A prefill case per length of `prefill_tokens` (each at most the model's context),
    /// then the decode case (32 decode steps after 8 prompt tokens).
    pub fn cases(
        source: Arc<ModelSource>,
        threads: usize,
        prefill_tokens: &[usize],
    ) -> Vec<EndToEndCase> {
        let cap = source.config.context_length;
        let mut lengths: Vec<usize> = prefill_tokens.iter().map(|&t| t.clamp(1, cap)).collect();
        lengths.dedup();
        let mut v: Vec<EndToEndCase> = lengths
            .into_iter()
            .map(|tokens| EndToEndCase {
                phase: Phase::Prefill,
                source: source.clone(),
                tokens,
                prompt: 0,
                threads,
            })
            .collect();
        v.push(EndToEndCase {
            phase: Phase::Decode,
            source,
            tokens: 32.min(cap.saturating_sub(8).max(1)),
            prompt: 8.min(cap.saturating_sub(1)),
            threads,
        });
        v
    }

    /// The default cases: a prefill of [`DEFAULT_PREFILL_TOKENS`] tokens and the decode.
    pub fn pair(source: Arc<ModelSource>, threads: usize) -> Vec<EndToEndCase> {
        Self::cases(source, threads, &[DEFAULT_PREFILL_TOKENS])
    }

    pub fn shape(&self, tokens: usize) -> String {
        let prompt = if self.phase == Phase::Decode {
            format!(",prompt={}", self.prompt)
        } else {
            "".into()
        };
        format!(
            "model={},tokens={tokens}{prompt},threads={}",
            self.source.record.name, self.threads
        )
    }

    pub fn id(&self, stage: &str, tokens: usize) -> String {
        format!("{}(stage={stage},{})", self.phase.op(), self.shape(tokens))
    }

    pub fn group_id(&self) -> String {
        group_id(self.phase, &self.source.record.name, self.tokens, self.threads)
    }

    pub fn dims(&self, tokens: usize) -> Vec<(String, u64)> {
        let mut d = vec![("tokens".to_string(), tokens as u64)];
        if self.phase == Phase::Decode {
            d.push(("prompt".into(), self.prompt as u64));
        }
        d.push(("threads".into(), self.threads as u64));
        d
    }

    /// FLOP one token costs when a sample runs `tokens`: the layers' matmuls; the logits,
    /// which a prefill computes for its last token only (as llama.cpp does); attention over
    /// the keys each query sees on average (prefill `0..tokens`: `(tokens + 1)/2`; decode
    /// after `prompt`: `prompt + (tokens + 1)/2`).
    pub fn flops_per_token(&self, tokens: usize) -> f64 {
        let s = &self.source;
        let t = tokens.max(1) as f64;
        let (logits, keys) = match self.phase {
            Phase::Prefill => (s.logits_flops() / t, (t + 1.0) / 2.0),
            Phase::Decode => (s.logits_flops(), self.prompt as f64 + (t + 1.0) / 2.0),
        };
        s.layer_flops_per_token() + logits + s.attention_flops(keys)
    }

    /// Weight bytes one token costs: every decode step streams all weights; a prefill batch
    /// streams them once for all its tokens.
    fn bytes_per_token(&self, stage: &ResolvedStage, tokens: usize) -> f64 {
        let w = self.source.weight_bytes(stage);
        match self.phase {
            Phase::Prefill => w / tokens.max(1) as f64,
            Phase::Decode => w,
        }
    }
}

/// A fixed token sequence spread over the vocabulary (no tokenizer needed).
fn tokens(n: usize, vocab: usize, salt: u32) -> Vec<u32> {
    let v = vocab.max(1) as u64;
    (0..n as u64).map(|i| ((i * 7919 + 13 + salt as u64 * 104_729) % v) as u32).collect()
}

/// Options of one end-to-end run.
pub struct E2eSettings {
    /// Seconds of measurement (warm-up included) per case, for all stages together.
    pub budget_per_case: Duration,
    /// Samples per stage wanted (at least [`MIN_SAMPLES`] are taken).
    pub samples: usize,
    pub show_progress: bool,
}

/// What a run of the end-to-end cases produced, plus notes for the console.
pub struct E2eOutcome {
    pub cases: Vec<CaseRecord>,
    pub comparisons: Vec<Comparison>,
    pub notes: Vec<String>,
}

fn rms(a: &[f32]) -> f32 {
    (a.iter().map(|x| x * x).sum::<f32>() / a.len().max(1) as f32).sqrt()
}

fn load(
    source: &ModelSource,
    stage: &ResolvedStage,
    threads: usize,
    positions: usize,
) -> Result<Model, HarnessError> {
    let options = ModelOptions {
        threads,
        max_positions: Some(positions.min(source.config.context_length)),
        max_batch: 64,
        kv_f16: false,
    };
    Model::from_file(source.file.clone(), stage, &options).map_err(|e| {
        HarnessError::Harness(format!(
            "loading {} for stage {}: {e}",
            source.record.path, stage.name
        ))
    })
}

/// Last-token logits of the verification prompt and the seconds per token it took.
fn verify_forward(model: &mut Model, prompt: &[u32]) -> Result<(Vec<f32>, f64), String> {
    model.reset();
    let t = Instant::now();
    let logits = model.forward(prompt, false).map_err(|e| e.to_string())?.to_vec();
    let secs = t.elapsed().as_secs_f64() / prompt.len() as f64;
    if logits.iter().any(|v| !v.is_finite()) {
        return Err("non-finite logits".into());
    }
    Ok((logits, secs))
}

/// Runs one sample: `reps` repetitions of `tokens` tokens of the case's phase; returns
/// nanoseconds per token.
fn sample(model: &mut Model, case: &EndToEndCase, seq: &[u32], tokens: usize, reps: usize) -> f64 {
    let t = Instant::now();
    for _ in 0..reps {
        match case.phase {
            Phase::Prefill => {
                model.reset();
                let out = model.prefill(&seq[..tokens]).expect("checked capacity");
                std::hint::black_box(out);
            }
            Phase::Decode => {
                // The prompt stays in the cache; only the decode steps are timed.
                model.truncate(case.prompt);
                for &t in &seq[case.prompt..case.prompt + tokens] {
                    std::hint::black_box(model.decode(std::hint::black_box(t)).expect("capacity"));
                }
            }
        }
    }
    t.elapsed().as_nanos() as f64 / (tokens * reps) as f64
}

/// Tokens per sample that fit a warm-up and [`MIN_SAMPLES`] samples in `share` seconds at
/// `secs_per_token`, within `MIN_TOKENS ..= wanted`.
fn fitting_tokens(share: f64, secs_per_token: f64, wanted: usize) -> usize {
    let fit = share / (MIN_SAMPLES + 1) as f64 / secs_per_token;
    if fit.is_finite() {
        (fit.floor() as usize).clamp(MIN_TOKENS.min(wanted), wanted)
    } else {
        MIN_TOKENS.min(wanted)
    }
}

/// Repetitions so one sample lasts at least 1 ms (the tiny model's passes take microseconds).
fn repetitions(tokens: usize, ns_per_token: f64) -> usize {
    let per_rep = tokens as f64 * ns_per_token;
    if per_rep.is_finite() && per_rep > 0.0 {
        (1e6 / per_rep).ceil().clamp(1.0, 10_000.0) as usize
    } else {
        1
    }
}

/// Verifies and measures `cases` for every stage of `stages`.
pub fn execute(
    cases: &[&EndToEndCase],
    stages: &[ResolvedStage],
    settings: &E2eSettings,
    peaks: &Peaks,
) -> Result<E2eOutcome, HarnessError> {
    let mut out = E2eOutcome { cases: Vec::new(), comparisons: Vec::new(), notes: Vec::new() };
    let Some(first) = cases.first() else { return Ok(out) };
    let source = first.source.clone();
    let threads = first.threads;
    // Limits of as many cores as the model uses (the 1-core peaks when threads = 1).
    let peaks = &peaks.for_threads(threads);
    let vocab = source.config.vocab_size;
    let positions = cases.iter().map(|c| c.prompt + c.tokens).max().unwrap_or(1).max(VERIFY_TOKENS);
    let bar = crate::runner::progress_bar(
        (stages.len() + cases.len()) as u64,
        settings.show_progress,
        "end to end",
    );
    // Every stage's model, loaded once.
    let mut models = Vec::new();
    for s in stages {
        bar.set_message(format!("loading {} for {}", source.record.name, s.name));
        let t = Instant::now();
        models.push(load(&source, s, threads, positions)?);
        out.notes.push(format!("{}: loaded in {:.1} s", s.name, t.elapsed().as_secs_f64()));
        bar.inc(1);
    }
    // Verification against naive on a short prompt (its timing sizes the samples).
    let prompt = tokens(VERIFY_TOKENS, vocab, 1);
    let reference = match stages.iter().position(|s| s.name == "naive") {
        Some(i) => verify_forward(&mut models[i], &prompt),
        None => {
            let naive = stage::resolve(&stage::builtin(), "naive")
                .map_err(|e| HarnessError::Harness(e.to_string()))?;
            let mut m = load(&source, &naive, threads, positions)?;
            verify_forward(&mut m, &prompt)
        }
    };
    let metric = format!("max |Δ logit| vs naive, last token of a {VERIFY_TOKENS}-token prompt");
    let mut verifications = Vec::new();
    let mut secs_per_token = Vec::new();
    for (s, model) in stages.iter().zip(models.iter_mut()) {
        let failed = |detail: String| Verification {
            status: VerificationStatus::Failed,
            metric: metric.clone(),
            worst_error: None,
            detail: Some(detail),
        };
        let got = verify_forward(model, &prompt);
        let v = match (&reference, &got) {
            (Err(e), _) => failed(format!("naive: {e}")),
            (_, Err(e)) => failed(e.clone()),
            (Ok((want, _)), Ok((logits, _))) => {
                let diff =
                    want.iter().zip(logits).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                let scale = rms(want).max(1.0);
                // f32 stages differ from naive by rounding only; a quantized stage also
                // quantizes its activations to 8 bits.
                let bound = if s.quantized_weights { 0.25 * scale } else { 2e-3 * scale };
                let status = if s.name == "naive" {
                    VerificationStatus::Reference
                } else if diff <= bound {
                    VerificationStatus::Passed
                } else {
                    VerificationStatus::Failed
                };
                Verification {
                    status,
                    metric: metric.clone(),
                    worst_error: Some(diff as f64),
                    detail: (status == VerificationStatus::Failed)
                        .then(|| format!("logits differ from naive by {diff} (bound {bound})")),
                }
            }
        };
        secs_per_token.push(got.as_ref().map(|g| g.1).unwrap_or(f64::INFINITY));
        verifications.push(v);
    }
    let ok: Vec<usize> = (0..stages.len())
        .filter(|&i| verifications[i].status != VerificationStatus::Failed)
        .collect();

    for case in cases {
        bar.set_message(case.group_id());
        let seq = tokens(case.prompt + case.tokens, vocab, 2);
        // Token counts: a warm-up and MIN_SAMPLES samples of every stage within the budget.
        let share = settings.budget_per_case.as_secs_f64() / ok.len().max(1) as f64;
        let mut counts = vec![case.tokens; stages.len()];
        let mut reps = vec![1; stages.len()];
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); stages.len()];
        let start = Instant::now();
        for &i in &ok {
            if case.phase == Phase::Decode {
                models[i].reset();
                models[i].prefill(&seq[..case.prompt]).map_err(|e| {
                    HarnessError::Harness(format!("{}: decode prompt: {e}", stages[i].name))
                })?;
            }
            // A first guess from the verification forward (a 4-token batch), a warm-up with
            // it, then the count from the warm-up's own time per token.
            let guess = fitting_tokens(share, secs_per_token[i], case.tokens);
            let warm_ns = sample(&mut models[i], case, &seq, guess, 1);
            counts[i] = fitting_tokens(share, warm_ns * 1e-9, case.tokens);
            reps[i] = repetitions(counts[i], warm_ns);
        }
        let mut round = 0;
        while round < settings.samples.max(MIN_SAMPLES)
            && (round < MIN_SAMPLES || start.elapsed() < settings.budget_per_case)
        {
            let order: Vec<usize> =
                if round % 2 == 0 { ok.clone() } else { ok.iter().rev().copied().collect() };
            for i in order {
                samples[i].push(sample(&mut models[i], case, &seq, counts[i], reps[i]));
            }
            round += 1;
        }
        let reduced: Vec<String> = ok
            .iter()
            .filter(|&&i| counts[i] < case.tokens)
            .map(|&i| format!("{} {} tokens", stages[i].name, counts[i]))
            .collect();
        out.notes.push(format!(
            "{}: {} tokens per sample, {round} samples per stage, {:.1} s{}",
            case.group_id(),
            case.tokens,
            start.elapsed().as_secs_f64(),
            if reduced.is_empty() {
                String::new()
            } else {
                format!(" (slow stages cut to fit the budget: {})", reduced.join(", "))
            }
        ));
        let mut entries = Vec::new();
        let mut first_ok: Option<usize> = None;
        let mut previous: Option<usize> = None;
        for (i, s) in stages.iter().enumerate() {
            let id = case.id(&s.name, counts[i]);
            let flops = case.flops_per_token(counts[i]);
            let bytes = case.bytes_per_token(s, counts[i]);
            let working_set = source.weight_bytes(s);
            let timing = (!samples[i].is_empty()).then(|| {
                let smp = Samples { ns_per_iter: samples[i].clone(), iters_per_sample: 1 };
                let mut t = crate::runner::timing_for(
                    1e9,
                    flops,
                    bytes,
                    working_set,
                    false,
                    // the weight matmuls (all of `flops`) of a quantized stage are int8 dots
                    s.quantized_weights,
                    &smp,
                    peaks,
                    stats::seed_for(&id),
                );
                t.iterations_per_sample = counts[i] as u64;
                if threads > 1 {
                    t.limit_basis = format!("{} ({threads} cores)", t.limit_basis);
                }
                t
            });
            let ratio_to = |base: Option<usize>| -> Option<stats::Ratio> {
                let b = base?;
                if samples[i].is_empty() || samples[b].is_empty() {
                    return None;
                }
                let seed = stats::seed_for(&format!("{}|{}|{}", case.group_id(), b, i));
                Some(stats::paired_ratio_ci(&samples[b], &samples[i], seed))
            };
            entries.push(StageEntry {
                stage: s.name.clone(),
                variant: s.name.clone(),
                case_id: id.clone(),
                verified: timing.is_some(),
                median_ns: timing.as_ref().map(|t| t.median_ns),
                throughput: timing.as_ref().map(|t| t.throughput),
                percent_of_limit: timing.as_ref().map(|t| t.percent_of_limit),
                speedup_vs_first: ratio_to(first_ok.or(Some(i))),
                speedup_vs_previous: ratio_to(previous.or(first_ok).or(Some(i))),
            });
            if timing.is_some() {
                first_ok.get_or_insert(i);
                previous = Some(i);
            }
            out.cases.push(CaseRecord {
                id,
                kind: CaseKind::EndToEnd,
                op: case.phase.op().to_string(),
                variant: s.name.clone(),
                stages: vec![s.name.clone()],
                shape: case.shape(counts[i]),
                dims: case.dims(counts[i]).into_iter().collect(),
                cache: "hot".into(),
                case_set: "model".into(),
                unit: "tokens/s".into(),
                flops_per_iter: flops,
                bytes_per_iter: bytes,
                working_set_bytes: working_set,
                verification: verifications[i].clone(),
                timing,
                model: Some(source.record.clone()),
            });
        }
        out.comparisons.push(Comparison {
            group: case.group_id(),
            kind: CaseKind::EndToEnd,
            op: case.phase.op().to_string(),
            shape: case.shape(case.tokens),
            cache: "hot".into(),
            unit: "tokens/s".into(),
            entries,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// The default folder of the synthetic model: `$GLLM_BENCH_CACHE`, else `target/gllm-bench`
/// under the workspace (or the current folder).
pub fn model_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GLLM_BENCH_CACHE") {
        return PathBuf::from(dir);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf);
    match workspace {
        Some(w) if w.join("Cargo.toml").is_file() => w.join("target").join("gllm-bench"),
        _ => PathBuf::from("target").join("gllm-bench"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_non_default_prefill_lengths_name_their_tokens_in_the_group_id() {
        assert_eq!(group_id(Phase::Prefill, "m", 64, 1), "e2e_prefill(model=m,threads=1)");
        assert_eq!(
            group_id(Phase::Prefill, "m", 512, 2),
            "e2e_prefill(model=m,tokens=512,threads=2)"
        );
        assert_eq!(group_id(Phase::Decode, "m", 512, 1), "e2e_decode(model=m,threads=1)");
    }
}
