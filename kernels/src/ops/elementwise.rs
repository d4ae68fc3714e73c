//! Elementwise ops over equal-length slices.
//!
//! - `add`: `y_i += x_i` in place (residual connections), `y, x: [n]`.
//! - `mul`: `y_i *= x_i` in place (gating), `y, x: [n]`.
//! - `scale`: `y_i *= s` in place, `y: [n]`.
//!
//! All three are exact in f32 (one rounding per element), so every variant is bit-exact.

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

/// `y_i *= x_i`: the specification.
pub fn mul_naive(y: &mut [f32], x: &[f32]) {
    assert_same_len("mul", y, x);
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi *= *xi;
    }
}

/// `y_i *= x_i` with `wide::f32x8`, 4 vectors per step; the tail by [`mul_naive`].
pub fn mul_simd(y: &mut [f32], x: &[f32]) {
    assert_same_len("mul", y, x);
    const STEP: usize = 32;
    let body = y.len() / STEP * STEP;
    let (y_body, y_tail) = y.split_at_mut(body);
    let (x_body, x_tail) = x.split_at(body);
    for (yc, xc) in y_body.chunks_exact_mut(STEP).zip(x_body.chunks_exact(STEP)) {
        for (yv, xv) in yc.chunks_exact_mut(8).zip(xc.chunks_exact(8)) {
            let product = f32x8::from(&yv[..]) * f32x8::from(xv);
            yv.copy_from_slice(product.as_array());
        }
    }
    mul_naive(y_tail, x_tail);
}

/// `y_i *= s`: the specification.
pub fn scale_naive(y: &mut [f32], s: f32) {
    for yi in y.iter_mut() {
        *yi *= s;
    }
}

/// `y_i *= s` with `wide::f32x8`, 4 vectors per step; the tail by [`scale_naive`].
pub fn scale_simd(y: &mut [f32], s: f32) {
    const STEP: usize = 32;
    let body = y.len() / STEP * STEP;
    let (y_body, y_tail) = y.split_at_mut(body);
    let sv = f32x8::splat(s);
    for yc in y_body.chunks_exact_mut(STEP) {
        for yv in yc.chunks_exact_mut(8) {
            let product = f32x8::from(&yv[..]) * sv;
            yv.copy_from_slice(product.as_array());
        }
    }
    scale_naive(y_tail, s);
}

/// `add`/`mul` kernel: `(y, x)`, in place on `y`.
pub type AddFn = fn(&mut [f32], &[f32]);
/// `mul` kernel: `y_i *= x_i`.
pub type MulFn = fn(&mut [f32], &[f32]);
/// `scale` kernel: `y_i *= s`.
pub type ScaleFn = fn(&mut [f32], f32);

/// The `add` variant named `variant` (`naive`, `simd`).
pub fn select_add(variant: &str) -> Option<AddFn> {
    match variant {
        "naive" => Some(add_naive),
        "simd" => Some(add_simd),
        _ => None,
    }
}

/// The `mul` variant named `variant` (`naive`, `simd`).
pub fn select_mul(variant: &str) -> Option<MulFn> {
    match variant {
        "naive" => Some(mul_naive),
        "simd" => Some(mul_simd),
        _ => None,
    }
}

/// The `scale` variant named `variant` (`naive`, `simd`).
pub fn select_scale(variant: &str) -> Option<ScaleFn> {
    match variant {
        "naive" => Some(scale_naive),
        "simd" => Some(scale_simd),
        _ => None,
    }
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

fn prepare_mul(shape: &Shape, seed: u64) -> Case {
    let n = shape.get("n");
    let mut rng = registry::rng(seed);
    // Gate values of magnitude 1 (random signs): the output keeps its magnitude however many
    // times a benchmark runs the op (no drift into denormals or infinities).
    let x: Vec<f32> = registry::uniform(&mut rng, n, 1.0)
        .into_iter()
        .map(|v| if v < 0.0 { -1.0 } else { 1.0 })
        .collect();
    let y = registry::uniform(&mut rng, n, 1.0);
    Case::new(shape.clone(), vec![Buffer::F32(x)], y)
}

fn prepare_scale(shape: &Shape, seed: u64) -> Case {
    let n = shape.get("n");
    let mut rng = registry::rng(seed);
    let y = registry::uniform(&mut rng, n, 1.0);
    // s = -1 keeps repeated runs stationary; other factors are tested in ops_special_values.
    Case::new(shape.clone(), vec![Buffer::F32(vec![-1.0])], y)
}

fn run_scale(variant: ScaleFn, case: &mut Case) {
    let (inputs, y) = case.io();
    variant(y, inputs[0].f32()[0]);
}

fn run_add(variant: fn(&mut [f32], &[f32]), case: &mut Case) {
    let (inputs, y) = case.io();
    variant(y, inputs[0].f32());
}

pub fn op_infos() -> Vec<OpInfo> {
    vec![
        OpInfo {
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
        },
        OpInfo {
            name: "mul",
            summary: "y_i *= x_i in place; y, x: [n]",
            unit: Unit::GbPerS,
            tolerance: Tolerance::BitExact,
            shapes,
            prepare: prepare_mul,
            flops: |s| s.get("n") as f64,
            bytes: |s| 12.0 * s.get("n") as f64,
            magnitude: None,
        },
        OpInfo {
            name: "scale",
            summary: "y_i *= s in place; y: [n]",
            unit: Unit::GbPerS,
            tolerance: Tolerance::BitExact,
            shapes,
            prepare: prepare_scale,
            flops: |s| s.get("n") as f64,
            bytes: |s| 8.0 * s.get("n") as f64,
            magnitude: None,
        },
    ]
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
        Variant {
            op: "mul",
            name: "naive",
            summary: "scalar loop",
            available: always,
            run: |c| run_add(mul_naive, c),
        },
        Variant {
            op: "mul",
            name: "simd",
            summary: "wide::f32x8, 4 vectors per step",
            available: always,
            run: |c| run_add(mul_simd, c),
        },
        Variant {
            op: "scale",
            name: "naive",
            summary: "scalar loop",
            available: always,
            run: |c| run_scale(scale_naive, c),
        },
        Variant {
            op: "scale",
            name: "simd",
            summary: "wide::f32x8, 4 vectors per step",
            available: always,
            run: |c| run_scale(scale_simd, c),
        },
    ]
}
