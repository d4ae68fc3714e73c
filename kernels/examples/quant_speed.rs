//! One-core timing of the block-format kernels, side by side in one run, beside llama.cpp's
//! figures from `../shared/reference/this-machine.md` (ggml test-backend-ops, 1 thread,
//! measured on a Zen 4 VM *with* AVX-512; this example runs whatever this CPU has).
//!
//! `cargo run --release -p gllm-kernels --example quant_speed [-- --quick]`
//!
//! Every figure is the fastest of many batches of runs (the machine is shared; set
//! `QUANT_SPEED_MEDIAN=1` for the median) through the registry (the same run functions the
//! tests check), after a warm-up; qmatvec includes quantizing the activations.

use std::time::{Duration, Instant};

use gllm_kernels::registry::{self, Shape};

/// Median seconds per run of `variant` of `op` at `shape`.
fn time_case(op: &str, variant: &str, shape: &Shape, budget: Duration) -> f64 {
    let info = registry::op(op).unwrap_or_else(|| panic!("no op {op}"));
    let v = registry::variant(op, variant).unwrap_or_else(|| panic!("no {op}/{variant}"));
    let mut case = (info.prepare)(shape, 1);
    let start = Instant::now();
    let mut runs = 0u64;
    while start.elapsed() < budget / 5 || runs < 3 {
        (v.run)(&mut case);
        runs += 1;
    }
    let per_batch = (runs / 4).max(1);
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < budget || samples.len() < 5 {
        let t = Instant::now();
        for _ in 0..per_batch {
            (v.run)(std::hint::black_box(&mut case));
        }
        samples.push(t.elapsed().as_secs_f64() / per_batch as f64);
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    // The machine is shared: the fastest batch is the one least disturbed by other processes.
    if std::env::var_os("QUANT_SPEED_MEDIAN").is_some() {
        samples[samples.len() / 2]
    } else {
        samples[0]
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = Duration::from_millis(if quick { 150 } else { 600 });
    let cpu = gllm_kernels::cpu::detected();
    println!("CPU: {} ; detected: {}", gllm_kernels::cpu::model_name(), cpu.names().join(","));
    println!("one thread; llama.cpp figures were measured with AVX-512 (ggml -march=native)\n");

    let shape = |m: usize, n: usize, k: usize| Shape::new(&[("m", m), ("n", n), ("k", k)]);
    // (format, n, k, llama.cpp GFLOP/s)
    let rows: [(&str, usize, usize, Option<&str>); 10] = [
        ("q4_1", 576, 576, Some("~40-43")),
        ("q4_1", 1536, 576, Some("~40-43")),
        ("q4_1", 576, 1536, Some("~40-43")),
        ("q4_1", 49152, 576, None),
        ("q8_0", 576, 576, Some("53")),
        ("q8_0", 1536, 576, None),
        ("q8_0", 576, 1536, None),
        ("q8_0", 49152, 576, Some("36.7")),
        ("q3_k", 576, 1536, Some("52")),
        ("q4_k", 576, 1536, Some("68")),
    ];
    // The table is measured in several rounds spread over time, each cell keeping its fastest
    // time: a burst of load from other processes then spoils one round, not the figure.
    let rounds = if quick { 1 } else { 8 };
    let mut best = vec![[f64::INFINITY; 2]; rows.len()];
    for _ in 0..rounds {
        for (i, &(fmt, n, k, _)) in rows.iter().enumerate() {
            let op = format!("qmatvec_{fmt}");
            let s = shape(1, n, k);
            best[i][0] = best[i][0].min(time_case(&op, "simd", &s, budget / 2));
            if (registry::variant(&op, "avx2").unwrap().available)().is_available() {
                best[i][1] = best[i][1].min(time_case(&op, "avx2", &s, budget / 2));
            }
        }
    }
    println!("qmatvec m=1 (GFLOP/s, 2·n·k flops; activations quantized in every run; best of {rounds} rounds)");
    println!(
        "{:<8} {:>12} {:>9} {:>9} {:>9} {:>12}",
        "format", "n x k", "simd", "avx2", "µs avx2", "llama.cpp"
    );
    for (i, &(fmt, n, k, llama)) in rows.iter().enumerate() {
        let flops = 2.0 * (n * k) as f64;
        let [simd, avx2] = best[i];
        println!(
            "{:<8} {:>12} {:>9.1} {:>9} {:>9} {:>12}",
            fmt,
            format!("{n}x{k}"),
            flops / simd / 1e9,
            if avx2.is_finite() { format!("{:.1}", flops / avx2 / 1e9) } else { "-".into() },
            if avx2.is_finite() { format!("{:.1}", avx2 * 1e6) } else { "-".into() },
            llama.unwrap_or("-"),
        );
    }

    // The vocab-sized matrix (49152x576) does not fit in any cache: its rate is a bandwidth.
    let w_q8 = 49152.0 * 576.0 * 34.0 / 32.0;
    println!(
        "q8_0 49152x576 avx2 streams its {:.1} MB of weights from DRAM at {:.1} GB/s",
        w_q8 / 1e6,
        w_q8 / best[7][1] / 1e9
    );

    println!("\nqmatvec m=64 prefill (GFLOP/s)");
    for (fmt, n, k) in [("q4_1", 576, 576), ("q8_0", 576, 576), ("q4_k", 576, 1536)] {
        let op = format!("qmatvec_{fmt}");
        let s = shape(64, n, k);
        let flops = 2.0 * (64 * n * k) as f64;
        let t = time_case(&op, "avx2", &s, budget);
        println!("{:<8} {:>12} avx2 {:>7.1}", fmt, format!("{n}x{k}"), flops / t / 1e9);
    }

    println!("\ndequant, n = 1536·576 values (GB/s of f32 output)");
    println!("{:<8} {:>8} {:>8} {:>8}", "format", "naive", "simd", "avx2");
    for op in registry::ops().iter().filter(|o| o.name.starts_with("dequant_")) {
        let s = Shape::new(&[("n", 1536 * 576)]);
        let bytes = (op.bytes)(&s);
        let mut cols = Vec::new();
        for v in ["naive", "simd", "avx2"] {
            cols.push(match registry::variant(op.name, v) {
                Some(var) if (var.available)().is_available() => {
                    format!("{:.1}", bytes / time_case(op.name, v, &s, budget / 2) / 1e9)
                }
                _ => "-".into(),
            });
        }
        println!("{:<8} {:>8} {:>8} {:>8}", &op.name[8..], cols[0], cols[1], cols[2]);
    }
}
