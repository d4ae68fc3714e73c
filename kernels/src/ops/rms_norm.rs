//! RMSNorm, row-wise: `y_i = x_i / sqrt(mean(x²) + eps) · w_i`.
//!
//! Shapes: `x, y: [rows, n]` row-major, `weight: [n]`; `rows = x.len() / n`.
//!
//! The SIMD variant sums squares in f32 (32 lanes, then a tree); if that sum overflows (inputs
//! beyond ~1e18) or is NaN, the row is recomputed by the f64 specification, so huge rows stay
//! finite and NaN/inf propagate exactly as in `naive`.

use wide::f32x8;

use crate::registry::{self, always, Buffer, Case, CaseSet, OpInfo, Shape, Unit, Variant};
use crate::tolerance::Tolerance;

/// `(y, x, weight, eps)`, see the module docs.
pub type RmsNormFn = fn(&mut [f32], &[f32], &[f32], f32);

/// The contract of every `rms_norm` variant; returns the row length.
pub(super) fn check(y: &[f32], x: &[f32], weight: &[f32]) -> usize {
    assert_eq!(y.len(), x.len(), "rms_norm: y has {} elements but x has {}", y.len(), x.len());
    let n = weight.len();
    assert!(
        (n == 0 && x.is_empty()) || (n > 0 && x.len().is_multiple_of(n)),
        "rms_norm: x has {} elements, not a multiple of the weight's {n}",
        x.len()
    );
    n
}

/// One row in f64: the specification.
fn row_naive(y: &mut [f32], x: &[f32], weight: &[f32], eps: f32) {
    let ss: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
    let scale = 1.0 / (ss / x.len() as f64 + eps as f64).sqrt();
    for ((yi, xi), wi) in y.iter_mut().zip(x).zip(weight) {
        *yi = (*xi as f64 * scale * *wi as f64) as f32;
    }
}

/// Sum of squares with f64 accumulation: the specification.
pub fn rms_norm_naive(y: &mut [f32], x: &[f32], weight: &[f32], eps: f32) {
    let n = check(y, x, weight);
    if n == 0 {
        return;
    }
    for (yr, xr) in y.chunks_exact_mut(n).zip(x.chunks_exact(n)) {
        row_naive(yr, xr, weight, eps);
    }
}

/// `Σ x_i²` in f32: four `f32x8` accumulators, a tree reduction, then the scalar tail.
pub fn simd_sum_squares(x: &[f32]) -> f32 {
    const STEP: usize = 32;
    let mut acc = [f32x8::ZERO; 4];
    let mut chunks = x.chunks_exact(STEP);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c.chunks_exact(8)) {
            let v = f32x8::from(v);
            *a = v.mul_add(v, *a);
        }
    }
    let mut sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])).reduce_add();
    let mut rest = chunks.remainder().chunks_exact(8);
    let mut acc8 = f32x8::ZERO;
    for v in &mut rest {
        let v = f32x8::from(v);
        acc8 = v.mul_add(v, acc8);
    }
    sum += acc8.reduce_add();
    for &v in rest.remainder() {
        sum += v * v;
    }
    sum
}

/// `y_i = x_i · s · w_i` on `f32x8`, 4 vectors per step; the tail in scalar.
pub fn simd_scale_multiply(y: &mut [f32], x: &[f32], s: f32, weight: &[f32]) {
    const STEP: usize = 32;
    let sv = f32x8::splat(s);
    let body = y.len() / STEP * STEP;
    let (y_body, y_tail) = y.split_at_mut(body);
    for ((yc, xc), wc) in y_body
        .chunks_exact_mut(STEP)
        .zip(x[..body].chunks_exact(STEP))
        .zip(weight[..body].chunks_exact(STEP))
    {
        for ((yv, xv), wv) in yc.chunks_exact_mut(8).zip(xc.chunks_exact(8)).zip(wc.chunks_exact(8))
        {
            yv.copy_from_slice((f32x8::from(xv) * sv * f32x8::from(wv)).as_array());
        }
    }
    for ((yi, xi), wi) in y_tail.iter_mut().zip(&x[body..]).zip(&weight[body..]) {
        *yi = *xi * s * *wi;
    }
}

/// [`simd_sum_squares`] then [`simd_scale_multiply`] per row; rows whose f32 sum of squares
/// is not finite fall back to the f64 specification.
pub fn rms_norm_simd(y: &mut [f32], x: &[f32], weight: &[f32], eps: f32) {
    let n = check(y, x, weight);
    if n == 0 {
        return;
    }
    for (yr, xr) in y.chunks_exact_mut(n).zip(x.chunks_exact(n)) {
        let ss = simd_sum_squares(xr);
        if !ss.is_finite() {
            row_naive(yr, xr, weight, eps);
            continue;
        }
        let scale = 1.0 / (ss / n as f32 + eps).sqrt();
        simd_scale_multiply(yr, xr, scale, weight);
    }
}

/// The `rms_norm` variant named `variant` (`naive`, `simd`).
pub fn select(variant: &str) -> Option<RmsNormFn> {
    match variant {
        "naive" => Some(rms_norm_naive),
        "simd" => Some(rms_norm_simd),
        "ggml" => Some(super::ggml_simd::rms_norm_ggml_simd),
        _ => None,
    }
}

/// `(rows, n)` shapes shared by the row-wise norms.
pub(crate) fn row_shapes(set: CaseSet) -> Vec<Shape> {
    let dims: Vec<(usize, usize)> = match set {
        // one decode token and a 64-token prefill block, hidden 576
        CaseSet::Model => vec![(1, 576), (64, 576)],
        CaseSet::Sweep => (6..=20).step_by(2).map(|p| (1, 1usize << p)).collect(),
        CaseSet::Test => super::TEST_LENGTHS.iter().map(|&n| (3, n)).collect(),
    };
    dims.into_iter().map(|(rows, n)| Shape::new(&[("rows", rows), ("n", n)])).collect()
}

/// Norm epsilon used by the cases (SmolLM2's `rms_norm_eps`).
pub(crate) const EPS: f32 = 1e-5;

fn prepare(shape: &Shape, seed: u64) -> Case {
    let (rows, n) = (shape.get("rows"), shape.get("n"));
    let mut rng = registry::rng(seed);
    let x = registry::uniform(&mut rng, rows * n, 3.0);
    let w = registry::uniform(&mut rng, n, 2.0);
    Case::new(shape.clone(), vec![Buffer::F32(x), Buffer::F32(w)], registry::nan_output(rows * n))
}

fn run(variant: RmsNormFn, case: &mut Case) {
    let (inputs, y) = case.io();
    variant(y, inputs[0].f32(), inputs[1].f32(), EPS);
}

pub fn op_infos() -> Vec<OpInfo> {
    vec![OpInfo {
        name: "rms_norm",
        summary: "y = x / sqrt(mean(x^2) + eps) * w row-wise; x, y: [rows, n], w: [n]",
        unit: Unit::GbPerS,
        // f32 sum of squares over up to 4097 values (relative error ~ sqrt(n)·ε in practice,
        // n/32·ε worst case) halved by the square root, plus three roundings.
        // The absolute floor (the smallest normal f32) covers subnormal outputs.
        tolerance: Tolerance::AbsRel { abs: f32::MIN_POSITIVE, rel: 2e-6 },
        shapes: row_shapes,
        prepare,
        flops: |s| 4.0 * (s.get("rows") * s.get("n")) as f64,
        // read x and w, write y
        bytes: |s| 4.0 * (2 * s.get("rows") * s.get("n") + s.get("n")) as f64,
        magnitude: None,
    }]
}

pub fn variants() -> Vec<Variant> {
    vec![
        Variant {
            op: "rms_norm",
            name: "naive",
            summary: "scalar loops, f64 sum of squares",
            available: always,
            run: |c| run(rms_norm_naive, c),
        },
        Variant {
            op: "rms_norm",
            name: "simd",
            summary: "wide::f32x8 simd_sum_squares + simd_scale_multiply",
            available: always,
            run: |c| run(rms_norm_simd, c),
        },
        Variant {
            op: "rms_norm",
            name: "ggml",
            summary: "llama.cpp's arithmetic: sequential f64 sum of f32 squares, (x·scale)·w \
                      (8 rows in AVX2 lanes or scalar, same bits)",
            available: always,
            run: |c| run(super::ggml_simd::rms_norm_ggml_simd, c),
        },
    ]
}
