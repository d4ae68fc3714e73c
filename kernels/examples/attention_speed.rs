//! Times f32 attention variants side by side at SmolLM2-135M's shapes (9 query heads, 3 KV
//! heads, head_dim 64) on one thread, hot: decode over 128/512/2048 cached positions, the
//! decode calls of a 2-thread head split (3, 2 and 1 heads of one KV head), and prefill batches
//! of m queries over kv keys. The variants' batches alternate, 15 rounds; per variant the best
//! on-CPU time of a call (this thread's CPU clock, which leaves out the time a shared machine
//! kept it waiting) and its ratio to the first variant's.
//!
//! `cargo run --release -p gllm-kernels --example attention_speed [VARIANT ...]`
//! (default `simd tiled flash_avx2`)

use gllm_kernels::ops::attention::{self, AttentionShape};
use gllm_kernels::registry::{rng, uniform};

#[path = "support/cpu_clock.rs"]
mod cpu_clock;

fn main() {
    let mut names: Vec<String> = std::env::args().skip(1).collect();
    if names.is_empty() {
        names = ["simd", "tiled", "flash_avx2"].map(String::from).to_vec();
    }
    let variants: Vec<_> = names
        .iter()
        .map(|n| attention::select(n).unwrap_or_else(|| panic!("no attention variant {n}")))
        .collect();
    let shape = |m, kv_len, n_heads, n_kv_heads| AttentionShape {
        m,
        kv_len,
        capacity: kv_len,
        n_heads,
        n_kv_heads,
        head_dim: 64,
    };
    let shapes = [
        ("decode kv=128", shape(1, 128, 9, 3)),
        ("decode kv=512", shape(1, 512, 9, 3)),
        ("decode kv=2048", shape(1, 2048, 9, 3)),
        ("decode kv=512 3 heads/1", shape(1, 512, 3, 1)),
        ("decode kv=512 2 heads/1", shape(1, 512, 2, 1)),
        ("decode kv=512 1 head/1", shape(1, 512, 1, 1)),
        ("prefill m=64 kv=64", shape(64, 64, 9, 3)),
        ("prefill m=64 kv=512", shape(64, 512, 9, 3)),
        ("prefill m=150 kv=512", shape(150, 512, 9, 3)),
        ("prefill m=256 kv=512", shape(256, 512, 9, 3)),
        ("prefill m=362 kv=362", shape(362, 362, 9, 3)),
        ("prefill m=512 kv=512", shape(512, 512, 9, 3)),
    ];
    print!("{:<26}", "shape (best µs on-CPU)");
    for n in &names {
        print!("{n:>14}");
    }
    println!();
    for (label, s) in shapes {
        let mut r = rng(7);
        let (qn, cn) = (s.m * s.n_heads * s.head_dim, s.n_kv_heads * s.capacity * s.head_dim);
        let (q, k, v) =
            (uniform(&mut r, qn, 2.0), uniform(&mut r, cn, 2.0), uniform(&mut r, cn, 2.0));
        let mut out = vec![0.0f32; qn];
        // calls per batch: about 10 ms of work at 0.1 ns per multiply-add
        let pairs = s.n_heads * (0..s.m).map(|i| s.kv_len - s.m + i + 1).sum::<usize>();
        let reps = (100_000_000 / (pairs * s.head_dim * 2)).max(1);
        let mut best = vec![f64::INFINITY; variants.len()];
        for _ in 0..15 {
            for (b, f) in best.iter_mut().zip(&variants) {
                let c = cpu_clock::on_cpu_ns().expect("the thread CPU clock (Linux)");
                for _ in 0..reps {
                    f(&mut out, &q, &k, &v, s);
                }
                let t = (cpu_clock::on_cpu_ns().unwrap() - c) as f64 * 1e-3 / reps as f64;
                *b = b.min(t);
            }
        }
        print!("{label:<26}");
        for b in &best {
            print!("{:>8.1} {:>4.2}x", b, best[0] / b);
        }
        println!();
    }
}
