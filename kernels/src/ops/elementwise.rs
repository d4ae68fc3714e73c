//! Elementwise ops over equal-length slices.
//!
//! `add`: `y_i += x_i` in place (residual connections), `y, x: [n]`.

use wide::f32x8;

use crate::registry::{self, always, Buffer, Case, CaseSet, OpInfo, Shape, Unit, Variant};
use crate::tolerance::Tolerance;

fn assert_same_len(op: &str, y: &[f32], x: &[f32]) {
    assert_eq!(y.len(), x.len(), "{op}: y has {} elements but x has {}", y.len(), x.len());
}

/// `y_i += x_i`: the specification.
pub fn add_naive(y: &mut [f32], x: &[f32]) {
    assert_same_len("add", y, x);
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += *xi;
    }
}

/// `y_i += x_i` with `wide::f32x8`, 4 vectors per step; the tail by [`add_naive`].
pub fn add_simd(y: &mut [f32], x: &[f32]) {
    assert_same_len("add", y, x);
    const STEP: usize = 32;
    let body = y.len() / STEP * STEP;
    let (y_body, y_tail) = y.split_at_mut(body);
    let (x_body, x_tail) = x.split_at(body);
    for (yc, xc) in y_body.chunks_exact_mut(STEP).zip(x_body.chunks_exact(STEP)) {
        for (yv, xv) in yc.chunks_exact_mut(8).zip(xc.chunks_exact(8)) {
            let sum = f32x8::from(&yv[..]) + f32x8::from(xv);
            yv.copy_from_slice(sum.as_array());
        }
    }
    add_naive(y_tail, x_tail);
}

fn shapes(set: CaseSet) -> Vec<Shape> {
    let lengths: Vec<usize> = match set {
        // hidden (residual add) and ffn widths of SmolLM2-135M
        CaseSet::Model => vec![576, 1536],
        CaseSet::Sweep => (6..=22).step_by(2).map(|p| 1usize << p).collect(),
        CaseSet::Test => super::TEST_LENGTHS.to_vec(),
    };
    lengths.into_iter().map(|n| Shape::new(&[("n", n)])).collect()
}

fn prepare(shape: &Shape, seed: u64) -> Case {
    let n = shape.get("n");
    let mut rng = registry::rng(seed);
    let x = registry::uniform(&mut rng, n, 1.0);
    let y = registry::uniform(&mut rng, n, 1.0);
    // The output starts as y and accumulates x each run: it drifts linearly (no overflow or
    // denormals within any benchmark's iteration count).
    Case::new(shape.clone(), vec![Buffer::F32(x)], y)
}

fn run_add(variant: fn(&mut [f32], &[f32]), case: &mut Case) {
    let (inputs, y) = case.io();
    variant(y, inputs[0].f32());
}

pub fn op_infos() -> Vec<OpInfo> {
    vec![OpInfo {
        name: "add",
        summary: "y_i += x_i in place; y, x: [n]",
        unit: Unit::GbPerS,
        tolerance: Tolerance::BitExact,
        shapes,
        prepare,
        flops: |s| s.get("n") as f64,
        // read x and y, write y
        bytes: |s| 12.0 * s.get("n") as f64,
        magnitude: None,
    }]
}

pub fn variants() -> Vec<Variant> {
    vec![
        Variant {
            op: "add",
            name: "naive",
            summary: "scalar loop",
            available: always,
            run: |c| run_add(add_naive, c),
        },
        Variant {
            op: "add",
            name: "simd",
            summary: "wide::f32x8, 4 vectors per step",
            available: always,
            run: |c| run_add(add_simd, c),
        },
    ]
}
