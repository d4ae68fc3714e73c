//! LayerNorm, row-wise: `y_i = (x_i − μ) / sqrt(σ² + eps) · w_i + b_i`, with
//! `μ = mean(x)` and `σ² = mean((x − μ)²)` (two passes, no `E[x²] − μ²` cancellation).
//!
//! Shapes: `x, y: [rows, n]` row-major, `weight, bias: [n]`; `rows = x.len() / n`.
//! The SIMD variant falls back to the f64 specification for a row whose f32 variance is not
//! finite (inputs beyond ~1e18, NaN, inf).

use wide::f32x8;

use super::rms_norm::{row_shapes, EPS};
use crate::registry::{self, always, Buffer, Case, OpInfo, Shape, Unit, Variant};
use crate::tolerance::Tolerance;

/// `(y, x, weight, bias, eps)`, see the module docs.
pub type LayerNormFn = fn(&mut [f32], &[f32], &[f32], &[f32], f32);

fn check(y: &[f32], x: &[f32], weight: &[f32], bias: &[f32]) -> usize {
    assert_eq!(y.len(), x.len(), "layer_norm: y has {} elements but x has {}", y.len(), x.len());
    let n = weight.len();
    assert_eq!(bias.len(), n, "layer_norm: bias has {} elements, weight {n}", bias.len());
    assert!(
        (n == 0 && x.is_empty()) || (n > 0 && x.len().is_multiple_of(n)),
        "layer_norm: x has {} elements, not a multiple of the weight's {n}",
        x.len()
    );
    n
}

fn row_naive(y: &mut [f32], x: &[f32], weight: &[f32], bias: &[f32], eps: f32) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean) * (v as f64 - mean)).sum::<f64>() / n;
    let inv = 1.0 / (var + eps as f64).sqrt();
    for (((yi, xi), wi), bi) in y.iter_mut().zip(x).zip(weight).zip(bias) {
        *yi = ((*xi as f64 - mean) * inv * *wi as f64 + *bi as f64) as f32;
    }
}

/// Two passes in f64: the specification.
pub fn layer_norm_naive(y: &mut [f32], x: &[f32], weight: &[f32], bias: &[f32], eps: f32) {
    let n = check(y, x, weight, bias);
    if n == 0 {
        return;
    }
    for (yr, xr) in y.chunks_exact_mut(n).zip(x.chunks_exact(n)) {
        row_naive(yr, xr, weight, bias, eps);
    }
}

fn sum_x8(x: &[f32], f: impl Fn(f32x8, f32x8) -> f32x8, g: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [f32x8::ZERO; 4];
    let mut chunks = x.chunks_exact(32);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c.chunks_exact(8)) {
            *a = f(f32x8::from(v), *a);
        }
    }
    let mut sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])).reduce_add();
    for &v in chunks.remainder() {
        sum += g(v);
    }
    sum
}

/// Mean, variance and output on `f32x8` (4 accumulators per reduction).
pub fn layer_norm_simd(y: &mut [f32], x: &[f32], weight: &[f32], bias: &[f32], eps: f32) {
    let n = check(y, x, weight, bias);
    if n == 0 {
        return;
    }
    for (yr, xr) in y.chunks_exact_mut(n).zip(x.chunks_exact(n)) {
        let mean = sum_x8(xr, |v, a| v + a, |v| v) / n as f32;
        let mv = f32x8::splat(mean);
        let var = sum_x8(
            xr,
            |v, a| {
                let d = v - mv;
                d.mul_add(d, a)
            },
            |v| (v - mean) * (v - mean),
        ) / n as f32;
        if !var.is_finite() || !mean.is_finite() {
            row_naive(yr, xr, weight, bias, eps);
            continue;
        }
        let inv = 1.0 / (var + eps).sqrt();
        let iv = f32x8::splat(inv);
        let body = n / 8 * 8;
        for (((yv, xv), wv), bv) in yr[..body]
            .chunks_exact_mut(8)
            .zip(xr[..body].chunks_exact(8))
            .zip(weight[..body].chunks_exact(8))
            .zip(bias[..body].chunks_exact(8))
        {
            let d = (f32x8::from(xv) - mv) * iv;
            yv.copy_from_slice(d.mul_add(f32x8::from(wv), f32x8::from(bv)).as_array());
        }
        for i in body..n {
            yr[i] = ((xr[i] - mean) * inv).mul_add(weight[i], bias[i]);
        }
    }
}

/// The `layer_norm` variant named `variant` (`naive`, `simd`).
pub fn select(variant: &str) -> Option<LayerNormFn> {
    match variant {
        "naive" => Some(layer_norm_naive),
        "simd" => Some(layer_norm_simd),
        _ => None,
    }
}

fn prepare(shape: &Shape, seed: u64) -> Case {
    let (rows, n) = (shape.get("rows"), shape.get("n"));
    let mut rng = registry::rng(seed);
    // an offset mean, so the mean subtraction matters
    let x: Vec<f32> = registry::uniform(&mut rng, rows * n, 3.0).iter().map(|v| v + 1.5).collect();
    let w = registry::uniform(&mut rng, n, 2.0);
    let b = registry::uniform(&mut rng, n, 1.0);
    Case::new(
        shape.clone(),
        vec![Buffer::F32(x), Buffer::F32(w), Buffer::F32(b)],
        registry::nan_output(rows * n),
    )
}

fn run(variant: LayerNormFn, case: &mut Case) {
    let (inputs, y) = case.io();
    variant(y, inputs[0].f32(), inputs[1].f32(), inputs[2].f32(), EPS);
}

pub fn op_infos() -> Vec<OpInfo> {
    vec![OpInfo {
        name: "layer_norm",
        summary: "y = (x - mean)/sqrt(var + eps) * w + b row-wise; x, y: [rows, n], w, b: [n]",
        unit: Unit::GbPerS,
        // f32 mean and variance (relative error ~1e-6) on outputs of order 1; the absolute
        // part covers outputs near 0 where w·x̂ and b cancel.
        // Worst seen: 7e-7.
        tolerance: Tolerance::AbsRel { abs: 3e-6, rel: 3e-6 },
        shapes: row_shapes,
        prepare,
        flops: |s| 7.0 * (s.get("rows") * s.get("n")) as f64,
        bytes: |s| 4.0 * (2 * s.get("rows") * s.get("n") + 2 * s.get("n")) as f64,
        magnitude: None,
    }]
}

pub fn variants() -> Vec<Variant> {
    vec![
        Variant {
            op: "layer_norm",
            name: "naive",
            summary: "scalar loops, two passes in f64",
            available: always,
            run: |c| run(layer_norm_naive, c),
        },
        Variant {
            op: "layer_norm",
            name: "simd",
            summary: "wide::f32x8, two reduction passes and a fused output pass",
            available: always,
            run: |c| run(layer_norm_simd, c),
        },
    ]
}
