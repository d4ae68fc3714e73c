//! Text generation: prefill the prompt as one batch, then decode one token at a time with the
//! sampler, streaming the text through the tokenizer's streaming decoder, until an end-of-
//! generation token or `max_tokens`.
//!
//! Timing (monotonic clock): prefill = the batched forward over the prompt (last position's
//! logits included); decode = each later forward of one token plus its sampling (streaming
//! callbacks excluded). `n` generated tokens take 1 prefill and `n − 1` decode steps (the first
//! token comes from the prefill logits). With `warmup`, an untimed short run (the first ≤ 8
//! prompt tokens and 4 decode steps) first touches the weights, the KV cache and the pool's
//! threads; the timed run then starts from an empty cache.

use std::time::Instant;

use serde::Serialize;

use crate::llama::{Model, ModelError};
use crate::sampler::{Sampler, SamplerConfig};
use crate::tokenizer::Tokenizer;

#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Tokens to generate at most.
    pub max_tokens: usize,
    pub sampler: SamplerConfig,
    /// Stop at the tokenizer's end-of-generation tokens (EOS, `<|im_end|>`, ...).
    pub stop_at_end_of_generation: bool,
    /// Run an untimed warm-up first (see the module docs).
    pub warmup: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 64,
            sampler: SamplerConfig::greedy(),
            stop_at_end_of_generation: true,
            warmup: true,
        }
    }
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndOfGeneration,
    MaxTokens,
}

/// The result of one generation.
#[derive(Clone, Debug, Serialize)]
pub struct Generation {
    pub prompt_ids: Vec<u32>,
    /// Generated ids (an end-of-generation token that stopped it included).
    pub ids: Vec<u32>,
    pub text: String,
    pub stop: StopReason,
    pub prefill_tokens: usize,
    pub prefill_seconds: f64,
    pub decode_tokens: usize,
    pub decode_seconds: f64,
    pub warmup: bool,
}

impl Generation {
    pub fn prefill_tokens_per_s(&self) -> f64 {
        rate(self.prefill_tokens, self.prefill_seconds)
    }
    pub fn decode_tokens_per_s(&self) -> f64 {
        rate(self.decode_tokens, self.decode_seconds)
    }
}

fn rate(tokens: usize, seconds: f64) -> f64 {
    if tokens == 0 || seconds <= 0.0 {
        0.0
    } else {
        tokens as f64 / seconds
    }
}

/// Generates from `prompt_ids` (the model's cache is reset first), calling `on_text` with each
/// piece of decoded text as it completes.
pub fn generate(
    model: &mut Model,
    tokenizer: &Tokenizer,
    prompt_ids: &[u32],
    options: &GenerateOptions,
    on_text: &mut dyn FnMut(&str),
) -> Result<Generation, ModelError> {
    if prompt_ids.is_empty() {
        return Err(ModelError::Invalid("the prompt has no tokens".into()));
    }
    let needed = prompt_ids.len() + options.max_tokens.saturating_sub(1);
    if needed > model.capacity() {
        return Err(ModelError::ContextFull {
            needed,
            capacity: model.capacity(),
            context_length: model.config().context_length,
        });
    }
    if options.warmup {
        model.reset();
        let n = prompt_ids.len().min(8);
        model.prefill(&prompt_ids[..n])?;
        for _ in 0..4.min(model.capacity() - n) {
            model.decode(prompt_ids[0])?;
        }
    }
    model.reset();
    let mut sampler = Sampler::new(options.sampler.clone())?;
    for &id in prompt_ids {
        sampler.accept(id);
    }
    let mut decoder = tokenizer.stream_decoder(false);
    let mut text = String::new();
    let mut ids = Vec::with_capacity(options.max_tokens);
    let mut stop = StopReason::MaxTokens;

    let start = Instant::now();
    let mut next = if options.max_tokens == 0 {
        None
    } else {
        Some(sampler.sample(model.prefill(prompt_ids)?)?)
    };
    let prefill_seconds = start.elapsed().as_secs_f64();
    let mut decode_seconds = 0.0;
    let mut decode_tokens = 0;
    while let Some(id) = next {
        ids.push(id);
        sampler.accept(id);
        if options.stop_at_end_of_generation && tokenizer.is_end_of_generation(id) {
            stop = StopReason::EndOfGeneration;
            break;
        }
        let piece = decoder.push(id)?;
        on_text(&piece);
        text.push_str(&piece);
        if ids.len() >= options.max_tokens {
            break;
        }
        let t = Instant::now();
        next = Some(sampler.sample(model.decode(id)?)?);
        decode_seconds += t.elapsed().as_secs_f64();
        decode_tokens += 1;
    }
    let tail = decoder.finish();
    on_text(&tail);
    text.push_str(&tail);
    Ok(Generation {
        prompt_ids: prompt_ids.to_vec(),
        ids,
        text,
        stop,
        prefill_tokens: if options.max_tokens == 0 { 0 } else { prompt_ids.len() },
        prefill_seconds,
        decode_tokens,
        decode_seconds,
        warmup: options.warmup,
    })
}

/// Peak resident memory of this process (`VmHWM` in `/proc/self/status`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
