//! One-core side-by-side timing of the SwiGLU (`silu_mul`) variants available on this CPU, at
//! SmolLM2's FFN width (1536), a 64-token block of it and llama.cpp's test-backend-ops
//! shape (1536 × 512): every variant runs one batch in turn, 41 rounds, so load from other
//! processes falls on all of them alike. Prints ns per call best / median and GB/s of the
//! best (12 bytes per value: gate and up read, y written). Inputs as the registry's case:
//! gates uniform in [−10, 10), ups in [−2, 2).
//!
//! The second argument places `y` that many floats past a 4 KiB-aligned offset of the inputs
//! (default 0): at 16 to 48 (64–192 bytes) a kernel that stores before it loads the next
//! vector meets 4 KiB aliasing (see `arch::activations_avx512`).
//!
//! `cargo run --release -p gllm-kernels --example act_speed [-- variant,variant,... [y_offset]]`

use std::time::Instant;

use gllm_kernels::ops::activations::select_silu_mul;

fn main() {
    let wanted: Vec<String> = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "simd,avx512,ggml,ggml_avx512".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let y_offset: usize = std::env::args().nth(2).map_or(0, |v| v.parse().expect("y offset"));
    let variants: Vec<_> = wanted
        .iter()
        .filter_map(|name| match select_silu_mul(name) {
            Some(f) => Some((name.as_str(), f)),
            None => {
                println!("{name}: not available on this CPU");
                None
            }
        })
        .collect();
    println!(
        "silu_mul, one thread, y {y_offset} floats past the inputs' 4 KiB offset, \
         ns per call best / median of 41 interleaved batches"
    );
    for n in [1536usize, 64 * 1536, 512 * 1536] {
        // three page-aligned buffers, y shifted by y_offset floats
        let page = 1024;
        let mut buffer = vec![0.0f32; 3 * (n + 2 * page) + y_offset];
        let start = buffer.as_ptr().align_offset(4096);
        let (inputs, y) = buffer[start..].split_at_mut(2 * (n + page));
        let (gate, up) = inputs.split_at_mut(n + page);
        let mut rng = gllm_kernels::registry::rng(1);
        gate[..n].copy_from_slice(&gllm_kernels::registry::uniform(&mut rng, n, 10.0));
        up[..n].copy_from_slice(&gllm_kernels::registry::uniform(&mut rng, n, 2.0));
        let (gate, up, y) = (&gate[..n], &up[..n], &mut y[y_offset..y_offset + n]);
        let reps = (3_000_000 / n).max(2);
        let mut times = vec![Vec::new(); variants.len()];
        for _ in 0..41 {
            for ((_, f), t) in variants.iter().zip(&mut times) {
                let start = Instant::now();
                for _ in 0..reps {
                    f(std::hint::black_box(&mut *y), gate, up);
                }
                t.push(start.elapsed().as_secs_f64() * 1e9 / reps as f64);
            }
        }
        println!("n = {n}");
        for ((name, _), t) in variants.iter().zip(&mut times) {
            t.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let (best, median) = (t[0], t[t.len() / 2]);
            let rate = 12.0 * n as f64 / best;
            println!("  {name:<12} {best:>10.0} / {median:>10.0} ns   {rate:>6.1} GB/s");
        }
    }
}
