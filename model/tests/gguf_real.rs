//! The GGUF reader on the real SmolLM2-135M-Instruct file (skipped visibly when absent).

mod common;

use gllm_kernels::quant::QuantType;
use gllm_model::gguf::GgufFile;

#[test]
fn real_model_parses_and_its_tensors_lie_in_the_file() {
    let Some(path) = common::real_model("real_model_parses_and_its_tensors_lie_in_the_file") else {
        return;
    };
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(f.get_str("tokenizer.ggml.model").unwrap(), "gpt2");
    let layers = f.get_u32("llama.block_count").unwrap() as usize;
    // token_embd + output_norm + 9 per layer (no separate output.weight: tied embedding)
    assert_eq!(f.tensors().len(), 2 + 9 * layers);
    let embd = f.tensor("token_embd.weight").unwrap();
    assert_eq!(embd.ty, QuantType::Q8_0);
    assert_eq!(
        embd.dims,
        vec![
            u64::from(f.get_u32("llama.embedding_length").unwrap()),
            f.get_str_array("tokenizer.ggml.tokens").unwrap().len() as u64
        ]
    );
    assert_eq!(f.tensor("blk.0.attn_q.weight").unwrap().ty, QuantType::Q4_1);
    let end = f.tensors().iter().map(|t| f.data_offset() + t.offset + t.n_bytes).max().unwrap();
    assert!(end <= f.file_size());
    for t in f.tensors() {
        assert_eq!(f.tensor_data(t).len() as u64, t.n_bytes);
    }
}
