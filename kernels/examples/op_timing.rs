//! Times every registered (op, variant) at the model shapes on the current thread and prints
//! one table: median wall time per call, the op's throughput at that median and at the
//! median of on-CPU time, and the ratio of medians to `naive`.
//!
//! `cargo run --release -p gllm-kernels --example op_timing [filter]` (pin to one core with
//! `taskset -c 0` for figures comparable across runs). `filter` keeps ops whose name contains it.
//!
//! On-CPU time is the thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`): on a shared machine it
//! leaves out the time the thread waited for the core, so the "on-CPU" column estimates what
//! the code does on an idle core (caches shared with other processes still cost something).
//! Off Linux the column repeats the wall figure.

use std::time::{Duration, Instant};

use gllm_kernels::registry::{self, CaseSet, Unit};

#[path = "support/cpu_clock.rs"]
mod cpu_clock;
use cpu_clock::on_cpu_ns;

/// (median wall, median on-CPU) seconds per call: batches sized to ~1 ms, 41 batches after
/// a 50 ms warm-up.
fn time_per_call(run: &mut dyn FnMut()) -> (f64, f64) {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < Duration::from_millis(50) {
        run();
        calls += 1;
    }
    let per = start.elapsed().as_secs_f64() / calls as f64;
    let batch = ((1e-3 / per).ceil() as u64).max(1);
    let (mut wall, mut cpu): (Vec<f64>, Vec<f64>) = (0..41)
        .map(|_| {
            let c0 = on_cpu_ns();
            let t = Instant::now();
            for _ in 0..batch {
                run();
            }
            let w = t.elapsed().as_secs_f64() / batch as f64;
            let c = match (c0, on_cpu_ns()) {
                (Some(a), Some(b)) => (b - a) as f64 * 1e-9 / batch as f64,
                _ => w,
            };
            (w, c)
        })
        .unzip();
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    (wall[wall.len() / 2], cpu[cpu.len() / 2])
}

fn main() {
    let filter = std::env::args().nth(1).unwrap_or_default();
    println!(
        "{:<62} {:>12} {:>18} {:>12} {:>9}",
        "case", "median/call", "wall rate", "on-CPU rate", "vs naive"
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
                let (t, on_cpu) =
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
                    rate(on_cpu),
                );
            }
        }
    }
}
