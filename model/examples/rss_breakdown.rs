//! Resident memory after each step of loading and running a model (VmRSS, and VmHWM at the
//! end): what the peak RSS of `generate` is made of.
//!
//! Usage: rss_breakdown MODEL.gguf [STAGE]
use std::sync::Arc;

use gllm_model::generate::{generate, GenerateOptions};
use gllm_model::gguf::GgufFile;
use gllm_model::tokenizer::Tokenizer;
use gllm_model::{Model, ModelOptions};

fn status(key: &str) -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: rss_breakdown MODEL.gguf [STAGE]");
    let stage = std::env::args().nth(2).unwrap_or_else(|| "quantized".into());
    println!("start:            {:7.1} MiB", status("VmRSS:"));
    let file = Arc::new(GgufFile::open(&path).unwrap());
    println!("GGUF parsed:      {:7.1} MiB", status("VmRSS:"));
    let tokenizer = Tokenizer::from_gguf(&file).unwrap();
    println!("tokenizer:        {:7.1} MiB", status("VmRSS:"));
    let resolved = gllm_kernels::stage::resolve(&gllm_kernels::stage::builtin(), &stage).unwrap();
    let options = ModelOptions { max_positions: Some(192), ..Default::default() };
    let mut model = Model::from_file(file, &resolved, &options).unwrap();
    println!("model loaded:     {:7.1} MiB", status("VmRSS:"));
    let prompt: Vec<u32> = (0..59).map(|i| 100 + i).collect();
    let g =
        GenerateOptions { max_tokens: 128, stop_at_end_of_generation: false, ..Default::default() };
    generate(&mut model, &tokenizer, &prompt, &g, &mut |_| {}).unwrap();
    println!("after generate:   {:7.1} MiB (peak {:.1} MiB)", status("VmRSS:"), status("VmHWM:"));
}
