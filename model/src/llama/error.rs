//! Errors of loading and running a model.

use thiserror::Error;

use crate::config::ConfigError;
use crate::gguf::GgufError;
use crate::sampler::SamplerError;
use crate::tokenizer::TokenizerError;

#[derive(Debug, Error)]
pub enum ModelError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Sampler(#[from] SamplerError),
    #[error("stage: {0}")]
    Stage(String),
    #[error("tensor `{tensor}`: {message}")]
    Weights { tensor: String, message: String },
    #[error("token id {id} is outside the vocabulary of {vocab_size} tokens")]
    TokenOutOfRange { id: u32, vocab_size: usize },
    #[error("the KV cache holds {capacity} positions; {needed} are needed (raise max_positions, at most the context length {context_length})")]
    ContextFull { needed: usize, capacity: usize, context_length: usize },
    #[error("{0}")]
    Invalid(String),
}
