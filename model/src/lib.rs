//! gllm-model: GGUF reader, BPE tokenizer and a llama forward pass whose every op runs
//! through a `gllm_kernels::stage::ResolvedStage`.

pub mod config;
pub mod gguf;
pub mod sampler;
pub mod tokenizer;
