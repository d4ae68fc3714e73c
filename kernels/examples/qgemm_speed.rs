//! One-core side-by-side timing of the quantized prefill paths at SmolLM2 shapes, m tokens:
//! `tiles` (the 4-row × 3-token tile walk of `arch::quant_avx2::qmatmul`, each weight block
//! re-unpacked for every tile of tokens) against `gemm` (`arch::quant_avx2::qgemm`: each panel
//! of weight rows unpacked once, then register tiles over all tokens). The two are timed
//! alternately, batch by batch, so load from other processes hits both alike; the best batch (the
//! least disturbed) and the median GFLOP/s are printed. Activations are quantized once
//! outside the timing (the GEMM proper).
//!
//! `cargo run --release -p gllm-kernels --example qgemm_speed [-- M]` (default M = 64)

use std::time::Instant;

use gllm_kernels::quant::{quantize_activations, random, QuantType};
use rand::SeedableRng;

type Path = unsafe fn(
    &[u8],
    QuantType,
    usize,
    usize,
    &gllm_kernels::quant::QuantizedActs,
    &mut [f32],
    usize,
);

fn main() {
    let cpu = gllm_kernels::cpu::detected();
    assert!(cpu.has_avx2_fma() && cpu.f16c, "this example needs AVX2/FMA/F16C");
    let m: usize = std::env::args().nth(1).map(|s| s.parse().expect("M")).unwrap_or(64);
    println!(
        "quantized prefill, m = {m}, one thread; GFLOP/s best/median of 41 interleaved batches"
    );
    println!(
        "{:<6} {:>10} {:>18} {:>18} {:>15}",
        "format", "n x k", "tiles best/median", "gemm best/median", "ratio best/med"
    );
    let paths: [(&str, Path); 2] = [
        ("tiles", gllm_kernels::arch::quant_avx2::qmatmul),
        ("gemm", gllm_kernels::arch::quant_avx2::qgemm),
    ];
    for ty in [QuantType::Q4_1, QuantType::Q8_0, QuantType::Q4_0] {
        for (n, k) in [(576, 576), (1536, 576), (576, 1536)] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
            let w = random::blocks(ty, n * k / 32, &mut rng);
            let x = random::values(&mut rng, m * k);
            let acts = quantize_activations(ty.activation_type().unwrap(), &x, m, k);
            let mut ys = [vec![0.0f32; m * n], vec![0.0f32; m * n]];
            for (i, (_, f)) in paths.iter().enumerate() {
                // SAFETY: AVX2/FMA/F16C asserted above; shapes consistent by construction.
                unsafe { f(&w, ty, n, k, &acts, &mut ys[i], n) };
            }
            let maxdiff = ys[0]
                .iter()
                .zip(&ys[1])
                .map(|(a, b)| (a - b).abs() / (1.0 + a.abs()))
                .fold(0.0f32, f32::max);
            assert!(maxdiff < 1e-4, "{ty} {n}x{k}: paths disagree by {maxdiff}");
            let flops = 2.0 * (m * n * k) as f64;
            let reps = (5e7 / flops).ceil() as usize;
            let mut rates = [Vec::new(), Vec::new()];
            for _ in 0..41 {
                for (i, (_, f)) in paths.iter().enumerate() {
                    let t = Instant::now();
                    for _ in 0..reps {
                        // SAFETY: as above.
                        unsafe { f(&w, ty, n, k, &acts, std::hint::black_box(&mut ys[i]), n) };
                    }
                    rates[i].push(flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9);
                }
            }
            let stat = |v: &mut Vec<f64>| {
                v.sort_by(|a, b| a.partial_cmp(b).unwrap());
                (v[v.len() - 1], v[v.len() / 2])
            };
            let (a, b) = (stat(&mut rates[0]), stat(&mut rates[1]));
            println!(
                "{:<6} {:>10} {:>9.1} / {:>6.1} {:>9.1} / {:>6.1} {:>6.2}x {:>6.2}x",
                ty.to_string(),
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
