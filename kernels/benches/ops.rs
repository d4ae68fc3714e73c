//! One criterion group per registered op, its variants side by side at the model shapes
//! (SmolLM2-135M), throughput set in the op's unit.
//!
//! `cargo bench -p gllm-kernels --bench ops -- linear` runs one op; criterion's own flags
//! (`--warm-up-time`, `--measurement-time`, `--sample-size`) override the short defaults
//! below. Compute-bound ops report `Throughput::Elements(flops)`, so criterion's "elem/s"
//! reads as FLOP/s; memory-bound ops report bytes (GB/s). Every case is prepared once and
//! run in place repeatedly: the registry guarantees such runs are numerically stationary.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gllm_kernels::registry::{self, CaseSet, Unit};

fn bench_registry(c: &mut Criterion) {
    for op in registry::ops() {
        let mut group = c.benchmark_group(op.name);
        for shape in (op.shapes)(CaseSet::Model) {
            match op.unit {
                Unit::GbPerS => group.throughput(Throughput::Bytes((op.bytes)(&shape) as u64)),
                Unit::GflopPerS => {
                    group.throughput(Throughput::Elements((op.flops)(&shape) as u64))
                }
            };
            for variant in registry::variants_of(op.name) {
                if !(variant.available)().is_available() {
                    eprintln!("skip {}/{}: not available on this CPU", op.name, variant.name);
                    continue;
                }
                let mut case = (op.prepare)(&shape, 1);
                group.bench_function(BenchmarkId::new(variant.name, &shape), |b| {
                    b.iter(|| (variant.run)(std::hint::black_box(&mut case)))
                });
            }
        }
        group.finish();
    }
}

/// ~150 (op, variant, shape) cases: short defaults keep a full run to a few minutes.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_registry
}
criterion_main!(benches);
