//! One criterion group per registered op, its variants side by side at the model shapes.

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

criterion_group!(benches, bench_registry);
criterion_main!(benches);
