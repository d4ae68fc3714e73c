//! One-core side-by-side timing of SmolLM2-135M's vocabulary projection (Q8_0, 49152×576, one
//! token): the GGUF-row `qmatvec_q8_0` avx2 against the interleaved `qmatvec_q8_0x16` avx512,
//! alternately, batch by batch. `hot`: one matrix called again and again (30 MB: it stays
//! partly in the 32 MiB L3, as in llama.cpp's test-backend-ops); `cold`: three copies in turn
//! (90 MB), so every call reads DRAM, as a decode step does after 30 layers. Prints the best
//! and the median µs per call and their ratios.
//!
//! `cargo run --release -p gllm-kernels --example vocab_speed [-- BATCHES]` (default 40)

use std::time::Instant;

use gllm_kernels::quant::{q8_0x16, quantize_activations, random, select_qmatmul, QuantType};

fn main() {
    let batches: usize = std::env::args().nth(1).map_or(40, |s| s.parse().expect("BATCHES"));
    let n: usize = std::env::args().nth(2).map_or(49152, |s| s.parse().expect("N"));
    let k = 576;
    let avx2 = select_qmatmul("avx2").expect("this example needs AVX2/FMA/F16C");
    let avx512 = q8_0x16::select("avx512").expect("this example needs AVX-512 VNNI");
    let mut rng = gllm_kernels::registry::rng(99);
    let rows = random::blocks(QuantType::Q8_0, n * k / 32, &mut rng);
    let mut x16 = vec![0u8; rows.len()];
    q8_0x16::interleave(&rows, n, k, &mut x16);
    let acts = quantize_activations(QuantType::Q8_0, &random::values(&mut rng, k), 1, k);
    let mut ys = [vec![0.0f32; n], vec![0.0f32; n]];
    avx2(&rows, QuantType::Q8_0, n, k, &acts, &mut ys[0], n);
    avx512(&x16, QuantType::Q8_0, n, k, &acts, &mut ys[1], n);
    assert!(
        ys[0].iter().zip(&ys[1]).all(|(a, b)| a.to_bits() == b.to_bits()),
        "the layouts disagree"
    );
    let copies = |w: &Vec<u8>| vec![w.clone(), w.clone(), w.clone()];
    let (rows3, x16_3) = (copies(&rows), copies(&x16));
    println!("vocabulary 49152x576 q8_0, one token, one thread: best / median µs per call");
    for cold in [false, true] {
        let mut times = [Vec::new(), Vec::new()];
        let per_batch = if cold { 3 } else { 4 };
        for _ in 0..batches {
            for (i, t) in times.iter_mut().enumerate() {
                let start = Instant::now();
                for c in 0..per_batch {
                    let c = if cold { c } else { 0 };
                    if i == 0 {
                        avx2(&rows3[c], QuantType::Q8_0, n, k, &acts, &mut ys[0], n);
                    } else {
                        avx512(&x16_3[c], QuantType::Q8_0, n, k, &acts, &mut ys[1], n);
                    }
                }
                t.push(start.elapsed().as_secs_f64() / per_batch as f64 * 1e6);
            }
        }
        for t in &mut times {
            t.sort_by(f64::total_cmp);
        }
        let (a, b) = ((times[0][0], times[0][batches / 2]), (times[1][0], times[1][batches / 2]));
        println!(
            "{:<5} rows avx2 {:>7.0} / {:>7.0}   x16 avx512 {:>7.0} / {:>7.0}   {:.2}x / {:.2}x",
            if cold { "cold" } else { "hot" },
            a.0,
            a.1,
            b.0,
            b.1,
            a.0 / b.0,
            a.1 / b.1
        );
    }
}
