//! Block-format benchmarks from the registry: the quantized matvec at SmolLM2 shapes (m = 1)
//! for the formats llama.cpp was measured with, and dequantization throughput per format.
//! `cargo bench -p gllm-kernels --bench quant` (add `-- qmatvec_q4_1` to filter).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gllm_kernels::registry::{self, CaseSet, Unit};

fn bench_ops(c: &mut Criterion, ops: &[&str], only_m1: bool) {
    for name in ops {
        let op = registry::op(name).unwrap_or_else(|| panic!("no op {name}"));
        let mut group = c.benchmark_group(op.name);
        group.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(300));
        for shape in (op.shapes)(CaseSet::Model) {
            if only_m1 && shape.dims().iter().any(|&(d, v)| d == "m" && v != 1) {
                continue;
            }
            match op.unit {
                Unit::GbPerS => group.throughput(Throughput::Bytes((op.bytes)(&shape) as u64)),
                Unit::GflopPerS => {
                    group.throughput(Throughput::Elements((op.flops)(&shape) as u64))
                }
            };
            for variant in registry::variants_of(op.name) {
                if variant.name == "naive" || !(variant.available)().is_available() {
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

fn qmatvec(c: &mut Criterion) {
    bench_ops(c, &["qmatvec_q4_1", "qmatvec_q8_0", "qmatvec_q3_k", "qmatvec_q4_k"], true);
}

fn dequant(c: &mut Criterion) {
    let names: Vec<&str> =
        registry::ops().iter().map(|o| o.name).filter(|n| n.starts_with("dequant_")).collect();
    bench_ops(c, &names, false);
}

criterion_group!(benches, qmatvec, dequant);
criterion_main!(benches);
