//! Every registered variant against `naive`, on the awkward test shapes and the model shapes,
//! with seeded inputs, guard zones around every output, and the op's tolerance.

use gllm_kernels::registry::{self, CaseSet};
use gllm_kernels::stage;

#[test]
fn every_variant_agrees_with_naive() {
    let mut checked = 0;
    let mut worst = std::collections::BTreeMap::new();
    for op in registry::ops() {
        let naive = registry::variant(op.name, "naive").expect("every op has a naive variant");
        let mut shapes = (op.shapes)(CaseSet::Test);
        shapes.extend((op.shapes)(CaseSet::Model));
        for (i, shape) in shapes.iter().enumerate() {
            let seed = 1000 + i as u64;
            let mut want = (op.prepare)(shape, seed);
            (naive.run)(&mut want);
            want.check_guards().unwrap_or_else(|at| {
                panic!("{}: naive wrote outside its output at offset {at}", op.name)
            });
            let magnitude = op.magnitude.map(|m| m(&(op.prepare)(shape, seed)));
            for variant in registry::variants_of(op.name) {
                if !(variant.available)().is_available() {
                    eprintln!("skip {}/{}: not available on this CPU", op.name, variant.name);
                    continue;
                }
                let mut got = (op.prepare)(shape, seed);
                (variant.run)(&mut got);
                let id = registry::case_id(op.name, variant.name, shape);
                got.check_guards()
                    .unwrap_or_else(|at| panic!("{id}: wrote outside its output at offset {at}"));
                match op.tolerance.check(got.output(), want.output(), magnitude.as_deref()) {
                    Err(m) => panic!("{id}: {m}"),
                    Ok(a) => {
                        let e = worst.entry((op.name, variant.name)).or_insert(0.0f64);
                        *e = e.max(a.worst_error);
                    }
                }
                checked += 1;
            }
        }
    }
    for ((op, variant), e) in &worst {
        let metric = registry::op(op).unwrap().tolerance.metric();
        eprintln!("{op:>14}/{variant:<15} worst {e:.3e} ({metric})");
    }
    assert!(checked > 0, "the registry produced no case to check");
}

#[test]
fn every_op_has_naive_and_a_faster_variant() {
    for op in registry::ops() {
        let names: Vec<_> = registry::variants_of(op.name).map(|v| v.name).collect();
        assert!(names.contains(&"naive"), "{} has no naive variant", op.name);
        assert!(names.len() >= 2, "{} has only {:?}", op.name, names);
    }
}

#[test]
fn builtin_stages_resolve_on_this_cpu() {
    let stages = stage::builtin();
    for s in &stages {
        stage::resolve_with_force(&stages, &s.name, None)
            .unwrap_or_else(|e| panic!("stage {}: {e}", s.name));
    }
}

#[test]
fn every_f32_variant_has_a_typed_entry_point() {
    for op in gllm_kernels::ops::op_infos() {
        for v in registry::variants_of(op.name) {
            if !(v.available)().is_available() {
                continue;
            }
            assert!(
                gllm_kernels::ops::kernel_set::has_typed_entry(v.op, v.name),
                "{}/{} is registered but has no select() entry",
                v.op,
                v.name
            );
        }
    }
}

#[test]
fn kernel_sets_follow_the_stages() {
    use gllm_kernels::ops::KernelSet;
    let stages = stage::builtin();
    let set = |name: &str| {
        KernelSet::from_stage(&stage::resolve_with_force(&stages, name, None).unwrap())
    };
    let naive = set("naive");
    assert!(naive.names.iter().all(|(_, v)| *v == "naive"), "{naive:?}");
    let mm = set("matrixmultiply");
    assert_eq!(mm.variant_of("linear"), Some("matrixmultiply"));
    assert_eq!(mm.variant_of("rms_norm"), Some("naive"));
    let simd = set("simd");
    let fastest_linear = if gllm_kernels::cpu::detected().has_avx2_fma() { "avx2" } else { "simd" };
    assert_eq!(simd.variant_of("linear"), Some(fastest_linear));
    let simd_attention = if fastest_linear == "avx2" { "simd" } else { "naive" };
    assert_eq!(simd.variant_of("attention"), Some(simd_attention));
    let packed_linear = if fastest_linear == "avx2" { "avx2" } else { "naive" };
    assert_eq!(simd.variant_of("linear_packed"), Some(packed_linear));
    let avx512 = gllm_kernels::cpu::detected().has_avx512();
    assert_eq!(simd.variant_of("silu_mul"), Some(if avx512 { "avx512" } else { "simd" }));
    for (op, v) in simd.names {
        if !["linear", "linear_packed", "attention", "silu_mul"].contains(&op) {
            assert_eq!(v, "simd", "stage simd chose {v} for {op}");
        }
    }
    let quantized = set("quantized");
    let ggml_silu = if avx512 { "ggml_avx512" } else { "ggml" };
    assert_eq!(quantized.variant_of("silu_mul"), Some(ggml_silu));
    let flash_attention = if fastest_linear == "avx2" { "flash_avx2" } else { "flash" };
    assert_eq!(set("flash").variant_of("attention"), Some(flash_attention));
    // every f32 op of the registry is a field of the set
    for op in gllm_kernels::ops::op_infos() {
        assert!(simd.variant_of(op.name).is_some(), "KernelSet has no field for {}", op.name);
    }
    // a forced variant reaches the function pointer
    let forced = stage::resolve_with_force(&stages, "simd", Some("linear=naive")).unwrap();
    assert_eq!(KernelSet::from_stage(&forced).variant_of("linear"), Some("naive"));
}

/// Benchmarks run a prepared case over and over: the output must not drift into
/// infinities, NaN or subnormals (which would change what is timed).
#[test]
fn repeated_runs_are_numerically_stationary() {
    for op in registry::ops() {
        for shape in (op.shapes)(CaseSet::Model) {
            for variant in registry::variants_of(op.name) {
                // naive is the slowest and shares its case handling with the others
                if variant.name == "naive" || !(variant.available)().is_available() {
                    continue;
                }
                let id = registry::case_id(op.name, variant.name, &shape);
                let mut case = (op.prepare)(&shape, 7);
                let count = |c: &registry::Case| {
                    let out = c.output();
                    (
                        out.iter().filter(|v| !v.is_finite()).count(),
                        out.iter().filter(|v| v.is_subnormal()).count(),
                    )
                };
                (variant.run)(&mut case);
                let first = count(&case);
                for _ in 0..25 {
                    (variant.run)(&mut case);
                }
                let last = count(&case);
                assert!(
                    last.0 <= first.0 && last.1 <= first.1,
                    "{id}: non-finite/subnormal outputs went from {first:?} to {last:?} over 25 runs"
                );
            }
        }
    }
}

/// Case ids key baselines and `--filter`: unique per case set and spelled as documented.
#[test]
fn case_ids_are_unique_and_readable() {
    for op in registry::ops() {
        for set in [CaseSet::Model, CaseSet::Sweep, CaseSet::Test] {
            let mut seen = std::collections::BTreeSet::new();
            for shape in (op.shapes)(set) {
                let id = registry::case_id(op.name, "simd", &shape);
                assert!(seen.insert(id.clone()), "{set:?}: duplicate case id {id}");
            }
        }
    }
    let linear = registry::op("linear").unwrap();
    let ids: Vec<String> = (linear.shapes)(CaseSet::Model)
        .iter()
        .map(|s| registry::case_id("linear", "simd", s))
        .collect();
    assert!(ids.contains(&"linear(variant=simd,m=1,n=1536,k=576)".to_string()), "{ids:?}");
    let attention = registry::op("attention").unwrap();
    let ids: Vec<String> = (attention.shapes)(CaseSet::Model)
        .iter()
        .map(|s| registry::case_id("attention", "flash", s))
        .collect();
    assert!(
        ids.contains(&"attention(variant=flash,m=1,kv=512,heads=9,kv_heads=3,d=64)".to_string()),
        "{ids:?}"
    );
}
