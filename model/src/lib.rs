//! gllm-model: GGUF reader, BPE tokenizer and a llama forward pass whose every op runs
//! through a `gllm_kernels::stage::ResolvedStage`.
//!
//! - [`gguf`]: [`gguf::GgufFile`] (v2/v3, memory-mapped; typed metadata accessors; raw tensor
//!   bytes), [`gguf::GgufWriter`] (v3, atomic), [`gguf::info_text`] / [`gguf::info_json`].
//! - [`tokenizer`]: [`tokenizer::Tokenizer`] (byte-level BPE from the file's metadata, as
//!   llama.cpp tokenizes), streaming decoding, the ChatML chat template.
//! - [`config`]: [`config::LlamaConfig`], the hyper-parameters from the metadata.
//! - [`sampler`]: greedy and seeded temperature / top-k / top-p / repetition-penalty sampling.
//! - [`llama`]: [`Model`] — the llama forward pass over a KV cache through one stage's kernels
//!   (`Model::load(path, stage, &ModelOptions)`, `forward(tokens, all_logits)`, `prefill`,
//!   `decode`), weights dequantized once (f32 stages) or kept in their GGUF blocks (`quantized`).
//! - [`generate`]: prefill + decode with the sampler, streamed text, prefill and decode rates
//!   measured apart, peak RSS.
//! - [`synthetic`]: a seeded random llama GGUF of any shape (default: SmolLM2-135M's), the
//!   built-in model for benchmarks and tests.

pub mod config;
pub mod generate;
pub mod gguf;
pub mod llama;
pub mod sampler;
pub mod synthetic;
pub mod tokenizer;

pub use llama::{Model, ModelError, ModelOptions};
