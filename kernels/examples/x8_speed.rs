//! One-core side-by-side timing of the `qmatvec_q4_1x8` variants (`avx2` against `avx512`) on
//! SmolLM2-135M's Q4_1 shapes, weights hot (in cache), activations quantized once outside the
//! timing. The variants run alternately, batch by batch, so load from other processes hits
//! both alike; the best batch (the least disturbed) and the median are printed, with their
//! ratios.
//!
//! `cargo run --release -p gllm-kernels --example x8_speed [-- M...]` (default M = 1 64 512)

use std::time::Instant;

use gllm_kernels::quant::{q4_1x8, quantize_activations, random, QMatmulFn, QuantType};
use rand::SeedableRng;

fn main() {
    let ms: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().expect("M")).collect();
    let ms = if ms.is_empty() { vec![1, 64, 512] } else { ms };
    let variants: Vec<(&str, QMatmulFn)> =
        ["avx2", "avx512"].into_iter().filter_map(|v| q4_1x8::select(v).map(|f| (v, f))).collect();
    assert!(variants.len() == 2, "this example needs AVX2/FMA/F16C and AVX-512 VNNI");
    println!("qmatvec_q4_1x8, one thread, hot; GFLOP/s best/median of 21 interleaved batches");
    println!(
        "{:>4} {:>10} {:>18} {:>18} {:>15}",
        "m", "n x k", "avx2 best/median", "avx512 best/med", "ratio best/med"
    );
    for &m in &ms {
        for (n, k) in [(576, 576), (1536, 576), (576, 1536)] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
            let rows = random::blocks(QuantType::Q4_1, n * k / 32, &mut rng);
            let mut w = vec![0u8; rows.len()];
            q4_1x8::interleave(&rows, n, k, &mut w);
            let x = random::values(&mut rng, m * k);
            let acts = quantize_activations(QuantType::Q8_1, &x, m, k);
            let mut ys = [vec![0.0f32; m * n], vec![0.0f32; m * n]];
            for (i, (_, f)) in variants.iter().enumerate() {
                f(&w, QuantType::Q4_1, n, k, &acts, &mut ys[i], n);
            }
            assert!(
                ys[0].iter().zip(&ys[1]).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{n}x{k} m={m}: the variants disagree"
            );
            let flops = 2.0 * (m * n * k) as f64;
            let reps = (2e7 / flops).ceil() as usize;
            let mut rates = [Vec::new(), Vec::new()];
            for _ in 0..21 {
                for (i, (_, f)) in variants.iter().enumerate() {
                    let t = Instant::now();
                    for _ in 0..reps {
                        f(&w, QuantType::Q4_1, n, k, &acts, std::hint::black_box(&mut ys[i]), n);
                    }
                    rates[i].push(flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9);
                }
            }
            let stat = |v: &mut Vec<f64>| {
                v.sort_by(|a, b| a.total_cmp(b));
                (v[v.len() - 1], v[v.len() / 2])
            };
            let (a, b) = (stat(&mut rates[0]), stat(&mut rates[1]));
            println!(
                "{m:>4} {:>10} {:>9.1} / {:>6.1} {:>9.1} / {:>6.1} {:>6.2}x {:>6.2}x",
                format!("{n}x{k}"),
                a.0,
                a.1,
                b.0,
                b.1,
                b.0 / a.0,
                b.1 / a.1
            );
        }
    }
}
