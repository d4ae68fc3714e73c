//! Any bytes: parsing must return Ok or a typed error, never panic; whatever parses must be
//! readable end to end (tensor data, info, tokenizer and config built from the metadata).
#![no_main]

use gllm_model::config::LlamaConfig;
use gllm_model::gguf::{info_json, info_text, GgufFile};
use gllm_model::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(data.to_vec(), "fuzz.gguf") else {
        return;
    };
    for t in file.tensors() {
        assert_eq!(file.tensor_data(t).len() as u64, t.n_bytes);
    }
    let _ = info_text(&file);
    let _ = info_json(&file, Some(4));
    if let Ok(config) = LlamaConfig::from_gguf(&file) {
        let _ = config.check_tensors(&file);
    }
    if let Ok(tokenizer) = Tokenizer::from_gguf(&file) {
        let ids = tokenizer.encode("héllo  wörld 123 <|im_start|>", true);
        let _ = tokenizer.decode(&ids, true);
    }
});
