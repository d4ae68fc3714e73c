//! Times one decode step of a model and its parts (matmuls by matrix, everything else) at
//! the given threads (default 1): where a token's time goes.
//!
//! Usage: decode_profile MODEL.gguf [STAGE [THREADS]]
use std::time::Instant;

use gllm_kernels::quant::{qmatmul, quantize_activations};
use gllm_model::gguf::GgufFile;
use gllm_model::{Model, ModelOptions};

fn main() {
    let path = std::env::args().nth(1).expect("usage: decode_profile MODEL.gguf [STAGE]");
    let stage = std::env::args().nth(2).unwrap_or_else(|| "quantized".into());
    let threads: usize = std::env::args().nth(3).map_or(1, |t| t.parse().expect("threads"));
    let options = ModelOptions { threads, max_positions: Some(512), ..Default::default() };
    let mut model = Model::load(&path, &stage, &options).unwrap();
    model.prefill(&[1, 2, 3, 4]).unwrap();
    let n = 64;
    let t = Instant::now();
    for i in 0..n {
        model.decode(100 + i).unwrap();
    }
    let per_token = t.elapsed().as_secs_f64() / n as f64;
    println!("{stage}: decode {:.2} ms/token = {:.1} tokens/s", per_token * 1e3, 1.0 / per_token);
    for op in ["qmatvec_q4_1", "qmatvec_q8_0", "attention", "rms_norm", "linear"] {
        println!("  {op} = {}", model.stage().variant(op).name);
    }
    let file = GgufFile::open(&path).unwrap();
    for name in [
        "blk.0.attn_q.weight",
        "blk.0.attn_k.weight",
        "blk.0.ffn_up.weight",
        "blk.0.ffn_down.weight",
        "token_embd.weight",
    ] {
        let info = file.tensor(name).unwrap();
        let (k, rows) = (info.dims[0] as usize, info.dims[1] as usize);
        let x: Vec<f32> = (0..k).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
        let act = info.ty.activation_type().unwrap();
        let reps = if rows > 10000 { 20 } else { 2000 };
        let t = Instant::now();
        let mut acts = quantize_activations(act, &x, 1, k);
        for _ in 0..reps {
            acts = quantize_activations(act, &x, 1, k);
        }
        let q_us = t.elapsed().as_secs_f64() / reps as f64 * 1e6;
        let mut y = vec![0.0f32; rows];
        let t = Instant::now();
        for _ in 0..reps {
            qmatmul(file.tensor_data(info), info.ty, rows, k, &acts, &mut y, rows);
        }
        let us = t.elapsed().as_secs_f64() / reps as f64 * 1e6;
        let gbs = info.n_bytes as f64 / (us * 1e-6) / 1e9;
        println!(
            "{name} {rows}x{k} {}: qmatmul {us:.1} µs ({gbs:.1} GB/s), quantize acts {q_us:.2} µs",
            info.ty
        );
    }
}

#[allow(dead_code)]
fn unused() {}
