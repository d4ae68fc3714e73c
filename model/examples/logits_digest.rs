//! A digest of every bit of a forward pass's logits, to check that a change to the model's
//! arithmetic keeps its output: the prompt's logits (all rows, one `forward`), then a few
//! decode steps, hashed (FNV-1a over the f32 bits) per phase.
//!
//! Usage: logits_digest MODEL.gguf [TOKENS [THREADS [STAGE]]] (default 300 1 quantized)
use gllm_model::{Model, ModelOptions};

fn fnv(hash: &mut u64, values: &[f32]) {
    for v in values {
        for b in v.to_bits().to_le_bytes() {
            *hash = (*hash ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: logits_digest MODEL.gguf [TOKENS [THREADS [STAGE]]]");
    let n: usize = args.next().map_or(300, |s| s.parse().expect("TOKENS"));
    let threads: usize = args.next().map_or(1, |s| s.parse().expect("THREADS"));
    let stage = args.next().unwrap_or_else(|| "quantized".into());
    let decode = 4;
    let options = ModelOptions { threads, max_positions: Some(n + decode), ..Default::default() };
    let mut model = Model::load(&path, &stage, &options).unwrap();
    let tokens: Vec<u32> = (0..n as u32).map(|i| 100 + (i * 37) % 5000).collect();
    let mut prompt = 0xcbf2_9ce4_8422_2325u64;
    fnv(&mut prompt, model.forward(&tokens, true).unwrap());
    let mut steps = 0xcbf2_9ce4_8422_2325u64;
    for t in 0..decode as u32 {
        fnv(&mut steps, model.decode(200 + t).unwrap());
    }
    println!("{stage}, {threads} thread(s), {n} tokens: prompt {prompt:016x}, decode {steps:016x}");
}
