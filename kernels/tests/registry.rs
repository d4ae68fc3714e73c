//! Every registered variant against `naive`, on the awkward test shapes and the model shapes,
//! with seeded inputs, guard zones around every output, and the op's tolerance.

use gllm_kernels::registry::{self, CaseSet};
use gllm_kernels::stage;

#[test]
fn every_variant_agrees_with_naive() {
    let mut checked = 0;
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
                if let Err(m) =
                    op.tolerance.check(got.output(), want.output(), magnitude.as_deref())
                {
                    panic!("{id}: {m}");
                }
                checked += 1;
            }
        }
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
