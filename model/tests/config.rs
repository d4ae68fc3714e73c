//! `LlamaConfig` from metadata: the real file (when present) and hand-written metadata.

mod common;

use gllm_kernels::quant::QuantType;
use gllm_model::config::{ConfigError, LlamaConfig};
use gllm_model::gguf::{GgufFile, GgufWriter, Value, ValueType};

fn base() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.add("general.architecture", Value::String("llama".into()));
    w.add("llama.block_count", Value::U32(2));
    w.add("llama.embedding_length", Value::U32(64));
    w.add("llama.feed_forward_length", Value::U64(96));
    w.add("llama.attention.head_count", Value::U32(4));
    w.add("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-6));
    w.add("llama.context_length", Value::U32(128));
    w.add(
        "tokenizer.ggml.tokens",
        Value::Array(ValueType::String, (0..10).map(|i| Value::String(format!("t{i}"))).collect()),
    );
    w
}

fn load(w: &GgufWriter) -> Result<LlamaConfig, ConfigError> {
    LlamaConfig::from_gguf(&GgufFile::from_bytes(w.to_bytes().unwrap(), "cfg.gguf").unwrap())
}

#[test]
fn real_model_config() {
    let Some(path) = common::real_model("real_model_config") else { return };
    let f = GgufFile::open(path).unwrap();
    let c = LlamaConfig::from_gguf(&f).unwrap();
    // values as gguf-py reads them from the file
    assert_eq!((c.n_layers, c.n_embd, c.n_ff, c.n_heads, c.n_kv_heads), (30, 576, 1536, 9, 3));
    assert_eq!((c.head_dim, c.rope_dim, c.context_length, c.vocab_size), (64, 64, 8192, 49152));
    assert_eq!(c.rope_freq_base, 100000.0);
    assert_eq!(c.rms_norm_eps, 1e-5);
    c.check_tensors(&f).unwrap();
    assert!(f.tensor("output.weight").is_none(), "SmolLM2 ties its output to token_embd");
}

#[test]
fn defaults_follow_llama_cpp() {
    let c = load(&base()).unwrap();
    assert_eq!(c.n_kv_heads, 4);
    assert_eq!(c.head_dim, 16);
    assert_eq!(c.rope_dim, 16);
    assert_eq!(c.rope_freq_base, 10000.0);
    assert_eq!(c.n_ff, 96);
    assert_eq!(c.vocab_size, 10);
}

#[test]
fn missing_and_wrong_keys_are_named() {
    for key in [
        "llama.block_count",
        "llama.embedding_length",
        "llama.feed_forward_length",
        "llama.attention.head_count",
        "llama.attention.layer_norm_rms_epsilon",
        "llama.context_length",
    ] {
        // rebuild without `key`
        let src = GgufFile::from_bytes(base().to_bytes().unwrap(), "x").unwrap();
        let mut w = GgufWriter::new();
        for (k, v) in src.metadata() {
            if k != key {
                w.add(k.clone(), v.clone());
            }
        }
        let e = load(&w).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains("missing") && e.contains("cfg.gguf"), "{e}");
    }
    let mut w = base();
    w.add("llama.block_count", Value::String("2".into()));
    let e = load(&w).unwrap_err().to_string();
    assert!(e.contains("llama.block_count") && e.contains("STRING"), "{e}");
    let mut w = base();
    w.add("llama.attention.head_count_kv", Value::U32(3));
    assert!(load(&w).unwrap_err().to_string().contains("head_count_kv"));
    let mut w = base();
    w.add("llama.attention.head_count", Value::U32(5));
    assert!(load(&w).unwrap_err().to_string().contains("do not divide"));
    let mut w = base();
    w.add("llama.rope.dimension_count", Value::U32(17));
    assert!(load(&w).unwrap_err().to_string().contains("rope.dimension_count"));
    let mut w = base();
    w.add("llama.attention.layer_norm_rms_epsilon", Value::F32(-1.0));
    assert!(load(&w).unwrap_err().to_string().contains("layer_norm_rms_epsilon"));
    let mut w = base();
    w.add("llama.block_count", Value::I32(-2));
    assert!(load(&w).unwrap_err().to_string().contains("llama.block_count"));
    let mut w = base();
    w.add("general.architecture", Value::String("qwen2".into()));
    let e = load(&w).unwrap_err().to_string();
    assert!(e.contains("qwen2") && e.contains("supported: llama"), "{e}");
}

#[test]
fn check_tensors_names_the_wrong_tensor() {
    let mut w = base();
    let c = load(&w).unwrap();
    for (name, shape, required) in c.expected_tensors() {
        if !required {
            continue;
        }
        let n: u64 = shape.iter().product();
        let shape = if name == "blk.1.ffn_down.weight" { vec![shape[1], shape[0]] } else { shape };
        w.add_tensor(name, &shape, QuantType::F32, vec![0u8; 4 * n as usize]).unwrap();
    }
    let f = GgufFile::from_bytes(w.to_bytes().unwrap(), "cfg.gguf").unwrap();
    let e = c.check_tensors(&f).unwrap_err().to_string();
    assert!(
        e.contains("blk.1.ffn_down.weight") && e.contains("[64, 96]") && e.contains("[96, 64]"),
        "{e}"
    );
    let f = GgufFile::from_bytes(base().to_bytes().unwrap(), "cfg.gguf").unwrap();
    let e = c.check_tensors(&f).unwrap_err().to_string();
    assert!(e.contains("token_embd.weight"), "{e}");
}
