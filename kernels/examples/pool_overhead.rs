//! Round-trip cost of one parallel region on the persistent pool (2 threads, empty parts),
//! beside spawning scoped threads per region: `cargo run --release --example pool_overhead`.

use std::time::Instant;

use gllm_kernels::threads::ThreadPool;

fn main() {
    let pool = ThreadPool::new(2);
    let regions = 20_000;
    for _ in 0..1000 {
        pool.run(2, &|p| {
            std::hint::black_box(p);
        });
    }
    let start = Instant::now();
    for _ in 0..regions {
        pool.run(2, &|p| {
            std::hint::black_box(p);
        });
    }
    let pool_ns = start.elapsed().as_nanos() as f64 / regions as f64;
    let spawned = 2_000;
    let start = Instant::now();
    for _ in 0..spawned {
        std::thread::scope(|s| {
            s.spawn(|| std::hint::black_box(1));
            std::hint::black_box(0);
        });
    }
    let spawn_ns = start.elapsed().as_nanos() as f64 / spawned as f64;
    println!(
        "persistent pool: {pool_ns:.0} ns per region; scoped spawn: {spawn_ns:.0} ns per region"
    );
}
