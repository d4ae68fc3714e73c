//! One-core side-by-side timing of llama.cpp's row-wise ops at the shapes of a SmolLM2-135M
//! prefill batch (256 tokens: hidden 576, 9 query and 3 KV heads of 64): the scalar
//! specifications (`ops::ggml`) against their vector forms (`ops::ggml_simd`), which give the
//! same bits, run alternately batch by batch. Prints µs per call, best / median of 41 batches,
//! and old / new.
//!
//! `cargo run --release -p gllm-kernels --example ggml_rows_speed [TOKENS]`

use std::time::Instant;

use gllm_kernels::ops::ggml::{rms_norm_ggml, rope_ggml};
use gllm_kernels::ops::ggml_simd::{copy_round_f16, rms_norm_ggml_simd, rope_ggml_simd};
use gllm_kernels::ops::rope::{RopePairing, RopeShape, RopeTable};
use gllm_kernels::quant::f16;

/// `(best, median)` µs per call of `old` and `new`, alternating batches of `reps` calls.
fn bench(name: &str, reps: usize, mut old: impl FnMut(), mut new: impl FnMut()) {
    let mut us = [Vec::new(), Vec::new()];
    for _ in 0..41 {
        for (i, f) in [&mut old as &mut dyn FnMut(), &mut new].into_iter().enumerate() {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            us[i].push(t.elapsed().as_secs_f64() * 1e6 / reps as f64);
        }
    }
    for u in &mut us {
        u.sort_by(|a, b| a.partial_cmp(b).unwrap());
    }
    let s = |u: &Vec<f64>| (u[0], u[u.len() / 2]);
    let (o, n) = (s(&us[0]), s(&us[1]));
    println!(
        "{name:<12} old {:>8.1} / {:>8.1}   new {:>8.1} / {:>8.1}   {:>5.2}x / {:>5.2}x",
        o.0,
        o.1,
        n.0,
        n.1,
        o.0 / n.0,
        o.1 / n.1
    );
}

fn main() {
    let m: usize = std::env::args().nth(1).map_or(256, |s| s.parse().expect("TOKENS"));
    let (e, heads, kv_heads, d) = (576, 9, 3, 64);
    let values = |len: usize, seed: usize| -> Vec<f32> {
        (0..len).map(|i| ((i * 7919 + seed) % 1000) as f32 / 250.0 - 2.0).collect()
    };
    println!("{m} tokens, one thread, µs per call: best / median of 41 interleaved batches");
    let (x, w) = (values(m * e, 1), values(e, 2));
    let (mut y_old, mut y_new) = (vec![0.0f32; m * e], vec![0.0f32; m * e]);
    bench(
        "rms_norm",
        20,
        || rms_norm_ggml(std::hint::black_box(&mut y_old), &x, &w, 1e-5),
        || rms_norm_ggml_simd(std::hint::black_box(&mut y_new), &x, &w, 1e-5),
    );
    let table = RopeTable::ggml(100_000.0, d, 512);
    let s = RopeShape {
        n_heads: heads,
        n_kv_heads: kv_heads,
        head_dim: d,
        pos0: 512 - m,
        pairing: RopePairing::Adjacent,
    };
    let (mut q0, mut k0) = (values(m * heads * d, 3), values(m * kv_heads * d, 4));
    let (mut q1, mut k1) = (q0.clone(), k0.clone());
    // rotations keep norms, so repeated calls stay in range
    bench(
        "rope",
        20,
        || rope_ggml(std::hint::black_box(&mut q0), &mut k0, s, &table),
        || rope_ggml_simd(std::hint::black_box(&mut q1), &mut k1, s, &table),
    );
    // K and V of every token into the cache: m·3 rows of 64, twice
    let src = values(m * kv_heads * d, 5);
    let (mut c_old, mut c_new) = (vec![0.0f32; src.len()], vec![0.0f32; src.len()]);
    bench(
        "kv f16",
        20,
        || {
            for _ in 0..2 {
                for (c, &v) in c_old.iter_mut().zip(&src) {
                    *c = v;
                }
                for c in c_old.iter_mut() {
                    *c = f16::f16_to_f32(f16::f32_to_f16(*c));
                }
                std::hint::black_box(&mut c_old);
            }
        },
        || {
            for _ in 0..2 {
                copy_round_f16(std::hint::black_box(&mut c_new), &src);
            }
        },
    );
}
