//! Times llama.cpp's attentions over an f16 cache (the ones the quantized stage runs) at
//! SmolLM2-135M's shapes on one thread: `ops::ggml::attention_ggml` (a batch of fewer than 64
//! queries, and decode: one query over 512 cached positions) and
//! `ops::ggml_tiled::attention_ggml_tiled` (a batch of 64 or more; beside it its AVX2 path,
//! `attention_ggml_tiled_avx2`, which it leaves where AVX-512 VL is present), all on a prefill
//! batch of `m` queries over `m` keys. The functions timed for one shape run alternately,
//! batch by batch. Prints the best and median of 15 batches, in wall time and in this
//! thread's on-CPU time (which leaves out the time a shared machine kept the thread waiting).
//! Build two versions and run them alternately to compare other changes.
//!
//! `cargo run --release -p gllm-kernels --example attention_ggml_speed [m ...]` (default 64 512)

use std::time::Instant;

use gllm_kernels::ops::attention::{AttentionFn, AttentionShape};
use gllm_kernels::ops::ggml::attention_ggml;
use gllm_kernels::ops::ggml_tiled::{attention_ggml_tiled, attention_ggml_tiled_avx2};
use gllm_kernels::quant::f16;
use gllm_kernels::registry::rng;
use rand::Rng;

#[path = "support/cpu_clock.rs"]
mod cpu_clock;

/// Times each `(label, attention)` on shape `s`, alternating them batch by batch.
fn time(variants: &[(&str, AttentionFn)], s: AttentionShape) {
    let mut r = rng(7);
    let (qn, cn) = (s.m * s.n_heads * s.head_dim, s.n_kv_heads * s.capacity * s.head_dim);
    let mut f16s = |n: usize| -> Vec<f32> {
        (0..n).map(|_| f16::f16_to_f32(f16::f32_to_f16(r.gen_range(-2.0f32..2.0)))).collect()
    };
    let (q, k, v) = (f16s(qn), f16s(cn), f16s(cn));
    let mut out = vec![0.0f32; qn];
    // calls per batch: about 20 ms of work at 24 ns per (query head, key)
    let pairs = s.n_heads * (0..s.m).map(|i| s.kv_len - s.m + i + 1).sum::<usize>();
    let reps = (20_000_000 / (24 * pairs)).max(1);
    let mut times = vec![(Vec::new(), Vec::new()); variants.len()];
    for _ in 0..15 {
        for (&(_, attention), (wall, cpu)) in variants.iter().zip(&mut times) {
            let (t, c) =
                (Instant::now(), cpu_clock::on_cpu_ns().expect("the thread CPU clock (Linux)"));
            for _ in 0..reps {
                attention(&mut out, &q, &k, &v, s);
            }
            wall.push(t.elapsed().as_secs_f64() * 1e6 / reps as f64);
            cpu.push(
                (cpu_clock::on_cpu_ns().expect("the thread CPU clock (Linux)") - c) as f64 * 1e-3
                    / reps as f64,
            );
        }
    }
    let stats = |x: &mut Vec<f64>| {
        x.sort_by(f64::total_cmp);
        (x[0], x[x.len() / 2])
    };
    for (&(label, _), (wall, cpu)) in variants.iter().zip(&mut times) {
        let ((wb, wm), (cb, cm)) = (stats(wall), stats(cpu));
        println!(
            "{label:<24} wall {wb:>10.1} / {wm:>10.1} µs   on-CPU {cb:>10.1} / {cm:>10.1} µs   \
             ({:.1} ns per (query head, key), on-CPU best)",
            cb * 1e3 / pairs as f64
        );
    }
}

fn main() {
    let ms: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("m")).collect();
    let shape = |m, kv_len| AttentionShape {
        m,
        kv_len,
        capacity: kv_len.max(2),
        n_heads: 9,
        n_kv_heads: 3,
        head_dim: 64,
    };
    for m in if ms.is_empty() { vec![64, 512] } else { ms } {
        time(&[(&format!("prefill m = kv = {m}"), attention_ggml)], shape(m, m));
        time(
            &[
                (&format!("  tiled m = kv = {m}"), attention_ggml_tiled),
                ("    its AVX2 path", attention_ggml_tiled_avx2),
            ],
            shape(m, m),
        );
    }
    time(&[("decode kv = 512", attention_ggml)], shape(1, 512));
}
