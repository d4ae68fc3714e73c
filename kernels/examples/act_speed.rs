//! One-core side-by-side timing of the SIMD sigmoid family at SmolLM2's FFN width (1536):
//! the shipped kernels (`fast_exp_sat`, no saturation blends) against the previous
//! formulation (`x / (1 + fast_exp(−x))` with a blend for −inf, re-stated here), run alternately batch by batch.
//! Prints GB/s best / median of 41 batches (silu_mul moves 12 bytes per element).
//!
//! `cargo run --release -p gllm-kernels --example act_speed`

use std::time::Instant;

use gllm_kernels::ops::activations::{silu_mul_simd, silu_simd};
use gllm_kernels::ops::fast_math::fast_exp;
use wide::f32x8;

fn silu_div_x8(x: f32x8) -> f32x8 {
    let y = x / (f32x8::ONE + fast_exp(-x));
    x.simd_eq(f32x8::splat(f32::NEG_INFINITY)).select(f32x8::splat(-0.0), y)
}

fn silu_mul_div(y: &mut [f32], gate: &[f32], up: &[f32]) {
    for ((yc, gc), uc) in y.chunks_exact_mut(8).zip(gate.chunks_exact(8)).zip(up.chunks_exact(8)) {
        let v = silu_div_x8(f32x8::from(gc)) * f32x8::from(uc);
        yc.copy_from_slice(v.as_array());
    }
}

fn silu_div(y: &mut [f32], x: &[f32]) {
    for (yc, xc) in y.chunks_exact_mut(8).zip(x.chunks_exact(8)) {
        yc.copy_from_slice(silu_div_x8(f32x8::from(xc)).as_array());
    }
}

fn bench(name: &str, bytes: f64, mut old: impl FnMut(), mut new: impl FnMut()) {
    let reps = 2000;
    let mut rates = [Vec::new(), Vec::new()];
    for _ in 0..41 {
        for (i, f) in [&mut old as &mut dyn FnMut(), &mut new].into_iter().enumerate() {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            rates[i].push(bytes * reps as f64 / t.elapsed().as_secs_f64() / 1e9);
        }
    }
    for r in &mut rates {
        r.sort_by(|a, b| a.partial_cmp(b).unwrap());
    }
    let s = |r: &Vec<f64>| (r[r.len() - 1], r[r.len() / 2]);
    let (o, n) = (s(&rates[0]), s(&rates[1]));
    println!(
        "{name:<10} old {:>6.1} / {:>6.1}   new {:>6.1} / {:>6.1}   {:>5.2}x / {:>5.2}x",
        o.0,
        o.1,
        n.0,
        n.1,
        n.0 / o.0,
        n.1 / o.1
    );
}

fn main() {
    let n = 1536;
    let gate: Vec<f32> = (0..n).map(|i| ((i * 37 % 200) as f32 - 100.0) * 0.1).collect();
    let up: Vec<f32> = (0..n).map(|i| ((i * 11 % 50) as f32 - 25.0) * 0.08).collect();
    let mut y = vec![0.0f32; n];
    println!("n = {n}, one thread, GB/s best / median of 41 interleaved batches");
    let mut y2 = vec![0.0f32; n];
    bench(
        "silu_mul",
        12.0 * n as f64,
        || silu_mul_div(std::hint::black_box(&mut y2), &gate, &up),
        || silu_mul_simd(std::hint::black_box(&mut y), &gate, &up),
    );
    bench(
        "silu",
        8.0 * n as f64,
        || silu_div(std::hint::black_box(&mut y2), &gate),
        || silu_simd(std::hint::black_box(&mut y), &gate),
    );
}
