//! The llama hyper-parameters of a GGUF file, read from its metadata (`general.architecture`,
//! then `<arch>.*`). Nothing model-specific is built in: every size comes from the file.
//!
//! Required: `<arch>.block_count`, `.embedding_length`, `.feed_forward_length`,
//! `.attention.head_count`, `.attention.layer_norm_rms_epsilon`, `.context_length`, and the
//! vocabulary (`tokenizer.ggml.tokens`, else `<arch>.vocab_size`). Optional, with llama.cpp's
//! defaults: `.attention.head_count_kv` (= head count), `.rope.freq_base` (10000),
//! `.rope.dimension_count` (= head dimension), `.attention.key_length` (= embedding / heads).

use std::path::PathBuf;

use serde::Serialize;
use thiserror::Error;

use crate::gguf::{GgufError, GgufFile, Value};

/// Architectures whose tensors and hyper-parameters follow llama's layout.
pub const SUPPORTED_ARCHITECTURES: [&str; 1] = ["llama"];

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("{}: general.architecture is {found:?}; supported: {}", path.display(), SUPPORTED_ARCHITECTURES.join(", "))]
    UnsupportedArchitecture { path: PathBuf, found: String },
    #[error("{}: `{key}`: {message}", path.display())]
    Invalid { path: PathBuf, key: String, message: String },
    #[error("{}: tensor `{tensor}` has shape {found:?} ({found_type}), expected {expected:?}", path.display())]
    TensorShape {
        path: PathBuf,
        tensor: String,
        expected: Vec<u64>,
        found: Vec<u64>,
        found_type: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LlamaConfig {
    pub architecture: String,
    pub n_layers: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    /// Dimension of one attention head (q, k and v).
    pub head_dim: usize,
    /// Leading dimensions of each head that RoPE rotates (even, ≤ `head_dim`).
    pub rope_dim: usize,
    pub rope_freq_base: f32,
    pub rms_norm_eps: f32,
    pub context_length: usize,
    pub vocab_size: usize,
}

impl LlamaConfig {
    pub fn from_gguf(file: &GgufFile) -> Result<Self, ConfigError> {
        let path = file.path().to_path_buf();
        let arch = file.get_str("general.architecture")?.to_string();
        if !SUPPORTED_ARCHITECTURES.contains(&arch.as_str()) {
            return Err(ConfigError::UnsupportedArchitecture { path, found: arch });
        }
        let key = |k: &str| format!("{arch}.{k}");
        let invalid = |key: String, message: String| ConfigError::Invalid {
            path: path.clone(),
            key,
            message,
        };
        let positive = |k: String| -> Result<usize, ConfigError> {
            let v = file.get_uint(&k)?;
            if v == 0 || v > u32::MAX as u64 {
                return Err(invalid(k, format!("{v} is out of range (1..=2^32-1)")));
            }
            Ok(v as usize)
        };
        let optional = |k: String, default: usize| -> Result<usize, ConfigError> {
            if file.get(&k).is_some() {
                positive(k)
            } else {
                Ok(default)
            }
        };
        let float = |k: String, default: Option<f32>| -> Result<f32, ConfigError> {
            let v = match (file.get(&k), default) {
                (None, Some(d)) => return Ok(d),
                (None, None) => file.require(&k).map(|_| 0.0)?,
                (Some(Value::F32(v)), _) => *v,
                (Some(Value::F64(v)), _) => *v as f32,
                (Some(other), _) => {
                    return Err(GgufError::WrongType {
                        path: path.clone(),
                        key: k,
                        expected: "FLOAT32".into(),
                        found: other.type_description(),
                    }
                    .into())
                }
            };
            if !(v.is_finite() && v > 0.0) {
                return Err(invalid(k, format!("{v} must be finite and > 0")));
            }
            Ok(v)
        };

        let n_layers = positive(key("block_count"))?;
        let n_embd = positive(key("embedding_length"))?;
        let n_ff = positive(key("feed_forward_length"))?;
        let n_heads = positive(key("attention.head_count"))?;
        let n_kv_heads = optional(key("attention.head_count_kv"), n_heads)?;
        let context_length = positive(key("context_length"))?;
        let rms_norm_eps = float(key("attention.layer_norm_rms_epsilon"), None)?;
        let rope_freq_base = float(key("rope.freq_base"), Some(10_000.0))?;
        if n_embd % n_heads != 0 {
            return Err(invalid(
                key("attention.head_count"),
                format!("{n_heads} heads do not divide the embedding length {n_embd}"),
            ));
        }
        let head_dim = optional(key("attention.key_length"), n_embd / n_heads)?;
        if n_heads % n_kv_heads != 0 {
            return Err(invalid(
                key("attention.head_count_kv"),
                format!("{n_kv_heads} KV heads do not divide the {n_heads} query heads"),
            ));
        }
        let rope_dim = optional(key("rope.dimension_count"), head_dim)?;
        if rope_dim > head_dim || rope_dim % 2 != 0 {
            return Err(invalid(
                key("rope.dimension_count"),
                format!("{rope_dim} must be even and at most the head dimension {head_dim}"),
            ));
        }
        let vocab_size = if file.contains("tokenizer.ggml.tokens") {
            file.array_len("tokenizer.ggml.tokens")?
        } else {
            positive(key("vocab_size"))?
        };
        if vocab_size == 0 {
            return Err(invalid("tokenizer.ggml.tokens".into(), "the vocabulary is empty".into()));
        }
        Ok(LlamaConfig {
            architecture: arch,
            n_layers,
            n_embd,
            n_ff,
            n_heads,
            n_kv_heads,
            head_dim,
            rope_dim,
            rope_freq_base,
            rms_norm_eps,
            context_length,
            vocab_size,
        })
    }

    /// Every tensor the llama forward pass reads, with its ggml shape (`[columns, rows]`, the
    /// contiguous dimension first). `output.weight` is optional (tied to `token_embd.weight`).
    pub fn expected_tensors(&self) -> Vec<(String, Vec<u64>, bool)> {
        let (e, f, v) = (self.n_embd as u64, self.n_ff as u64, self.vocab_size as u64);
        let q = (self.n_heads * self.head_dim) as u64;
        let kv = (self.n_kv_heads * self.head_dim) as u64;
        let mut out = vec![
            ("token_embd.weight".to_string(), vec![e, v], true),
            ("output_norm.weight".to_string(), vec![e], true),
            ("output.weight".to_string(), vec![e, v], false),
        ];
        for l in 0..self.n_layers {
            for (name, shape) in [
                ("attn_norm.weight", vec![e]),
                ("attn_q.weight", vec![e, q]),
                ("attn_k.weight", vec![e, kv]),
                ("attn_v.weight", vec![e, kv]),
                ("attn_output.weight", vec![q, e]),
                ("ffn_norm.weight", vec![e]),
                ("ffn_gate.weight", vec![e, f]),
                ("ffn_up.weight", vec![e, f]),
                ("ffn_down.weight", vec![f, e]),
            ] {
                out.push((format!("blk.{l}.{name}"), shape, true));
            }
        }
        out
    }

    /// Check that the file holds every required tensor with the shape this config implies.
    pub fn check_tensors(&self, file: &GgufFile) -> Result<(), ConfigError> {
        for (name, shape, required) in self.expected_tensors() {
            let Some(t) = file.tensor(&name) else {
                if required {
                    return Err(file.require_tensor(&name).unwrap_err().into());
                }
                continue;
            };
            if t.dims != shape {
                return Err(ConfigError::TensorShape {
                    path: file.path().to_path_buf(),
                    tensor: name,
                    expected: shape,
                    found: t.dims.clone(),
                    found_type: t.ty.name().to_string(),
                });
            }
        }
        Ok(())
    }
}
