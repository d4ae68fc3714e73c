//! Times every registered (op, variant) at the model shapes on the current thread and prints
//! one table: median time per call, throughput in the op's unit (at the median and at the
//! fastest batch), and the ratio of medians to `naive`.
//!
//! `cargo run --release -p gllm-kernels --example op_timing [filter]` (pin to one core with
//! `taskset -c 0` for figures comparable across runs). `filter` keeps ops whose name contains it.

use std::time::{Duration, Instant};

use gllm_kernels::registry::{self, CaseSet, Unit};

/// (median, fastest) seconds per call: batches sized to ~2 ms, 25 batches after a warm-up.
/// On a shared machine the fastest batch is the better estimate of what the code can do.
fn time_per_call(run: &mut dyn FnMut()) -> (f64, f64) {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < Duration::from_millis(50) {
        run();
        calls += 1;
    }
    let per = start.elapsed().as_secs_f64() / calls as f64;
    let batch = ((2e-3 / per).ceil() as u64).max(1);
    let mut samples: Vec<f64> = (0..25)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..batch {
                run();
            }
            t.elapsed().as_secs_f64() / batch as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    (samples[samples.len() / 2], samples[0])
}

fn main() {
    let filter = std::env::args().nth(1).unwrap_or_default();
    println!(
        "{:<62} {:>12} {:>18} {:>12} {:>9}",
        "case", "median/call", "median rate", "best rate", "vs naive"
    );
    for op in registry::ops().iter().filter(|o| o.name.contains(&filter)) {
        for shape in (op.shapes)(CaseSet::Model) {
            let mut naive_time = None;
            for variant in registry::variants_of(op.name) {
                let id = registry::case_id(op.name, variant.name, &shape);
                if !(variant.available)().is_available() {
                    println!("{id:<62} unavailable");
                    continue;
                }
                let mut case = (op.prepare)(&shape, 1);
                let (t, best) =
                    time_per_call(&mut || (variant.run)(std::hint::black_box(&mut case)));
                let rate = |t: f64| match op.unit {
                    Unit::GflopPerS => (op.flops)(&shape) / t / 1e9,
                    Unit::GbPerS => (op.bytes)(&shape) / t / 1e9,
                };
                if variant.name == "naive" {
                    naive_time = Some(t);
                }
                let ratio = naive_time.map_or(String::new(), |n| format!("{:.2}x", n / t));
                println!(
                    "{id:<62} {:>9.2} us {:>10.2} {:<7} {:>12.2} {ratio:>8}",
                    t * 1e6,
                    rate(t),
                    op.unit.symbol(),
                    rate(best),
                );
            }
        }
    }
}
