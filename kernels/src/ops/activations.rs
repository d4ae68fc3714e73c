//! Activations over equal-length slices, `y, x: [n]` (any row layout: they are elementwise).
//!
//! - `sigmoid`: `y_i = 1 / (1 + e^(−x_i))`
//! - `silu`: `y_i = x_i · sigmoid(x_i)` (out of place, and `silu_inplace`)
//! - `silu_mul` (fused SwiGLU): `y_i = silu(gate_i) · up_i`
//! - `gelu` (tanh form): `y_i = ½ x_i (1 + tanh(√(2/π) (x_i + 0.044715 x_i³)))`
//!
//! Limits: `silu(−inf) = gelu(−inf) = −0` (the mathematical limit, where the formula would
//! give `−inf · 0 = NaN`); NaN in, NaN out. The SIMD variants use [`fast_exp`] (relative
//! error ≤ 1.2e-7; sigmoid and silu its blend-free clamped form [`fast_exp_sat`], whose
//! saturations fall out of the IEEE division: `x / inf = ±0`) and the identity `½ (1 + tanh z) = sigmoid(2z)`, so
//! `gelu(x) = x / (1 + e^(−2z))`. `silu_mul`, the one the model calls, also has an `avx512`
//! variant (a table-driven exp, `arch::activations_avx512`) and, for the quantized stage,
//! `ggml` and `ggml_avx512` (llama.cpp's bits, [`super::ggml`]).

use wide::f32x8;

use super::fast_math::{fast_exp, fast_exp_sat};
use crate::registry::{
    self, always, needs_avx512, Buffer, Case, CaseSet, OpInfo, Shape, Unit, Variant,
};
use crate::tolerance::Tolerance;

const GELU_C: f64 = 0.797_884_560_802_865_4; // √(2/π)
const GELU_A: f64 = 0.044_715;

fn assert_same_len(op: &str, y: &[f32], x: &[f32]) {
    assert_eq!(y.len(), x.len(), "{op}: y has {} elements but x has {}", y.len(), x.len());
}

fn sigmoid_f64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn silu_f64(x: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        -0.0
    } else {
        x * sigmoid_f64(x)
    }
}

fn gelu_f64(x: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        -0.0
    } else {
        0.5 * x * (1.0 + (GELU_C * (x + GELU_A * x * x * x)).tanh())
    }
}

/// `1 / (1 + e^(−x))` on eight lanes; exact limits at ±inf (`e^(−x)` saturates to +inf for
/// `x ≤ −88.7`, giving 0; to `1.2e-38` for `x ≥ 87.34`, giving 1).
#[inline(always)]
pub fn sigmoid_x8(x: f32x8) -> f32x8 {
    f32x8::ONE / (f32x8::ONE + fast_exp_sat(-x))
}

/// Numerators below this are raised to it in [`silu_x8`]: `−1e4 / (1 + e^(1e4))` is
/// `−1e4 / inf = −0` (as is every `x ≤ −88.7`), so `silu(−inf) = −0` needs no blend.
const SILU_NUM_MIN: f32 = -1e4;

/// `x / (1 + e^(−x))` on eight lanes, `−0` at `−inf` (and for every `x ≤ −88.7`, where the
/// exact result, below `1.3e-37` in magnitude, is under every absolute floor).
#[inline(always)]
pub fn silu_x8(x: f32x8) -> f32x8 {
    // NaN second in max: it flows through
    f32x8::splat(SILU_NUM_MIN).fast_max(x) / (f32x8::ONE + fast_exp_sat(-x))
}

/// `x / (1 + e^(−2z))`, `z = √(2/π)(x + 0.044715 x³)`, on eight lanes, `−0` at `−inf`.
#[inline(always)]
pub fn gelu_x8(x: f32x8) -> f32x8 {
    let x3 = x * x * x;
    let z2 = x3.mul_add(
        f32x8::splat((GELU_A * GELU_C * 2.0) as f32),
        x * f32x8::splat((GELU_C * 2.0) as f32),
    );
    let y = x / (f32x8::ONE + fast_exp(-z2));
    x.simd_eq(f32x8::splat(f32::NEG_INFINITY)).select(f32x8::splat(-0.0), y)
}

/// Applies `f` to 8 lanes at a time; the tail by `tail` (the naive variant).
#[inline(always)]
fn map_x8(y: &mut [f32], x: &[f32], f: impl Fn(f32x8) -> f32x8, tail: fn(&mut [f32], &[f32])) {
    let body = y.len() / 8 * 8;
    let (y_body, y_tail) = y.split_at_mut(body);
    let (x_body, x_tail) = x.split_at(body);
    for (yv, xv) in y_body.chunks_exact_mut(8).zip(x_body.chunks_exact(8)) {
        yv.copy_from_slice(f(f32x8::from(xv)).as_array());
    }
    tail(y_tail, x_tail);
}

/// `y = sigmoid(x)` in f64: the specification.
pub fn sigmoid_naive(y: &mut [f32], x: &[f32]) {
    assert_same_len("sigmoid", y, x);
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = sigmoid_f64(*xi as f64) as f32;
    }
}

/// `y = sigmoid(x)` with [`fast_exp_sat`] on `f32x8`.
pub fn sigmoid_simd(y: &mut [f32], x: &[f32]) {
    assert_same_len("sigmoid", y, x);
    map_x8(y, x, sigmoid_x8, sigmoid_naive);
}

/// `y = silu(x)` in f64: the specification.
pub fn silu_naive(y: &mut [f32], x: &[f32]) {
    assert_same_len("silu", y, x);
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = silu_f64(*xi as f64) as f32;
    }
}

/// `y = silu(x)` with [`fast_exp_sat`] on `f32x8`.
pub fn silu_simd(y: &mut [f32], x: &[f32]) {
    assert_same_len("silu", y, x);
    map_x8(y, x, silu_x8, silu_naive);
}

/// `x = silu(x)` in place, in f64: the specification.
pub fn silu_inplace_naive(x: &mut [f32]) {
    for xi in x.iter_mut() {
        *xi = silu_f64(*xi as f64) as f32;
    }
}

/// `x = silu(x)` in place with [`fast_exp_sat`] on `f32x8`.
pub fn silu_inplace_simd(x: &mut [f32]) {
    let mut chunks = x.chunks_exact_mut(8);
    for c in &mut chunks {
        c.copy_from_slice(silu_x8(f32x8::from(&c[..])).as_array());
    }
    silu_inplace_naive(chunks.into_remainder());
}

/// `y_i = silu(gate_i) · up_i` in f64: the specification.
pub fn silu_mul_naive(y: &mut [f32], gate: &[f32], up: &[f32]) {
    assert_same_len("silu_mul", y, gate);
    assert_same_len("silu_mul", y, up);
    for ((yi, g), u) in y.iter_mut().zip(gate).zip(up) {
        *yi = (silu_f64(*g as f64) * *u as f64) as f32;
    }
}

/// `y_i = silu(gate_i) · up_i` with [`fast_exp_sat`] on `f32x8`, 2 vectors per step.
pub fn silu_mul_simd(y: &mut [f32], gate: &[f32], up: &[f32]) {
    assert_same_len("silu_mul", y, gate);
    assert_same_len("silu_mul", y, up);
    const STEP: usize = 16;
    let body = y.len() / STEP * STEP;
    let (y_body, y_tail) = y.split_at_mut(body);
    let (g_body, g_tail) = gate.split_at(body);
    let (u_body, u_tail) = up.split_at(body);
    for ((yc, gc), uc) in
        y_body.chunks_exact_mut(STEP).zip(g_body.chunks_exact(STEP)).zip(u_body.chunks_exact(STEP))
    {
        let a = silu_x8(f32x8::from(&gc[..8])) * f32x8::from(&uc[..8]);
        let b = silu_x8(f32x8::from(&gc[8..])) * f32x8::from(&uc[8..]);
        yc[..8].copy_from_slice(a.as_array());
        yc[8..].copy_from_slice(b.as_array());
    }
    silu_mul_naive(y_tail, g_tail, u_tail);
}

/// `y_i = silu(gate_i) · up_i` with AVX-512: a table-driven `e^(−x)` (16 entries, a cubic,
/// `vscalefps`; relative error ≤ 8e-8, see `arch::activations_avx512`) and a division, 16
/// lanes, a masked last vector; result within 2.6e-7 relative (−0 below `gate = −88.7`).
/// Panics if the CPU lacks AVX-512 (the registry marks the variant unavailable there).
#[cfg(target_arch = "x86_64")]
pub fn silu_mul_avx512(y: &mut [f32], gate: &[f32], up: &[f32]) {
    assert!(crate::cpu::detected().has_avx512(), "silu_mul_avx512: this CPU lacks AVX-512");
    assert_same_len("silu_mul", y, gate);
    assert_same_len("silu_mul", y, up);
    // SAFETY: AVX-512 F is present (asserted); the three lengths are equal (asserted).
    unsafe { crate::arch::activations_avx512::silu_mul(y, gate, up) }
}

/// `y = gelu(x)` (tanh form) in f64: the specification.
pub fn gelu_naive(y: &mut [f32], x: &[f32]) {
    assert_same_len("gelu", y, x);
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = gelu_f64(*xi as f64) as f32;
    }
}

/// `y = gelu(x)` as `x · sigmoid(2z)` with [`fast_exp`] on `f32x8`.
pub fn gelu_simd(y: &mut [f32], x: &[f32]) {
    assert_same_len("gelu", y, x);
    map_x8(y, x, gelu_x8, gelu_naive);
}

/// Out-of-place unary activation `(y, x)`: `sigmoid`, `silu`, `gelu`.
pub type UnaryFn = fn(&mut [f32], &[f32]);
/// In-place SiLU.
pub type SiluInplaceFn = fn(&mut [f32]);
/// Fused SwiGLU `(y, gate, up)`.
pub type SiluMulFn = fn(&mut [f32], &[f32], &[f32]);

/// The `sigmoid` variant named `variant` (`naive`, `simd`).
pub fn select_sigmoid(variant: &str) -> Option<UnaryFn> {
    match variant {
        "naive" => Some(sigmoid_naive),
        "simd" => Some(sigmoid_simd),
        _ => None,
    }
}

/// The `silu` variant named `variant` (`naive`, `simd`).
pub fn select_silu(variant: &str) -> Option<UnaryFn> {
    match variant {
        "naive" => Some(silu_naive),
        "simd" => Some(silu_simd),
        _ => None,
    }
}

/// The in-place `silu` variant named `variant` (`naive`, `simd`).
pub fn select_silu_inplace(variant: &str) -> Option<SiluInplaceFn> {
    match variant {
        "naive" => Some(silu_inplace_naive),
        "simd" => Some(silu_inplace_simd),
        _ => None,
    }
}

/// The `silu_mul` variant named `variant` (`naive`, `simd`, `avx512`, `ggml`, `ggml_avx512`),
/// or `None` if it does not exist or cannot run on this CPU.
pub fn select_silu_mul(variant: &str) -> Option<SiluMulFn> {
    match variant {
        "naive" => Some(silu_mul_naive),
        "simd" => Some(silu_mul_simd),
        "ggml" => Some(super::ggml::silu_mul_ggml),
        #[cfg(target_arch = "x86_64")]
        "avx512" if needs_avx512().is_available() => Some(silu_mul_avx512),
        #[cfg(target_arch = "x86_64")]
        "ggml_avx512" if needs_avx512().is_available() => Some(super::ggml::silu_mul_ggml_avx512),
        _ => None,
    }
}

/// The `gelu` variant named `variant` (`naive`, `simd`).
pub fn select_gelu(variant: &str) -> Option<UnaryFn> {
    match variant {
        "naive" => Some(gelu_naive),
        "simd" => Some(gelu_simd),
        _ => None,
    }
}

fn shapes(set: CaseSet) -> Vec<Shape> {
    let lengths: Vec<usize> = match set {
        // ffn width: one token, a 64-token prefill block, a 512-token prefill
        CaseSet::Model => vec![1536, 64 * 1536, 512 * 1536],
        CaseSet::Sweep => (6..=22).step_by(2).map(|p| 1usize << p).collect(),
        CaseSet::Test => super::TEST_LENGTHS.to_vec(),
    };
    lengths.into_iter().map(|n| Shape::new(&[("n", n)])).collect()
}

/// Inputs uniform in [-10, 10): both tails of the exponential are exercised.
fn prepare_unary(shape: &Shape, seed: u64) -> Case {
    let n = shape.get("n");
    let mut rng = registry::rng(seed);
    let x = registry::uniform(&mut rng, n, 10.0);
    Case::new(shape.clone(), vec![Buffer::F32(x)], registry::nan_output(n))
}

/// The in-place case keeps its input in `inputs[0]` and copies it into the output before
/// each run, so repeated runs are stationary (the copy is part of the measured time).
fn run_inplace(variant: SiluInplaceFn, case: &mut Case) {
    let (inputs, y) = case.io();
    y.copy_from_slice(inputs[0].f32());
    variant(y);
}

fn prepare_silu_mul(shape: &Shape, seed: u64) -> Case {
    let n = shape.get("n");
    let mut rng = registry::rng(seed);
    let gate = registry::uniform(&mut rng, n, 10.0);
    let up = registry::uniform(&mut rng, n, 2.0);
    Case::new(shape.clone(), vec![Buffer::F32(gate), Buffer::F32(up)], registry::nan_output(n))
}

fn run_unary(variant: UnaryFn, case: &mut Case) {
    let (inputs, y) = case.io();
    variant(y, inputs[0].f32());
}

fn run_silu_mul(variant: SiluMulFn, case: &mut Case) {
    let (inputs, y) = case.io();
    variant(y, inputs[0].f32(), inputs[1].f32());
}

/// One rounding of the f64 result plus `fast_exp`'s 1.2e-7 and two f32 roundings (add,
/// divide); the absolute floor covers results the SIMD path flushes to 0 near e^-88.
const EXP_BASED: Tolerance = Tolerance::AbsRel { abs: 1e-30, rel: 5e-7 };

fn unary_info(name: &'static str, summary: &'static str, tolerance: Tolerance) -> OpInfo {
    OpInfo {
        name,
        summary,
        unit: Unit::GbPerS,
        tolerance,
        shapes,
        prepare: prepare_unary,
        // exp, add, divide, multiply
        flops: |s| 4.0 * s.get("n") as f64,
        bytes: |s| 8.0 * s.get("n") as f64,
        magnitude: None,
    }
}

pub fn op_infos() -> Vec<OpInfo> {
    vec![
        unary_info("sigmoid", "y_i = 1/(1+exp(-x_i)); y, x: [n]", EXP_BASED),
        unary_info("silu", "y_i = x_i*sigmoid(x_i); y, x: [n]", EXP_BASED),
        unary_info("silu_inplace", "x_i = x_i*sigmoid(x_i) in place; x: [n]", EXP_BASED),
        OpInfo {
            name: "silu_mul",
            summary: "fused SwiGLU y_i = silu(gate_i)*up_i; y, gate, up: [n]",
            unit: Unit::GbPerS,
            tolerance: Tolerance::AbsRel { abs: 1e-30, rel: 6e-7 },
            shapes,
            prepare: prepare_silu_mul,
            flops: |s| 5.0 * s.get("n") as f64,
            bytes: |s| 12.0 * s.get("n") as f64,
            magnitude: None,
        },
        // z = √(2/π)(x + 0.044715x³) is computed in f32: its rounding (a few ulp of z) is
        // amplified by |2z| in e^(-2z), which dominates the error where the result is small.
        unary_info(
            "gelu",
            "y_i = 0.5 x_i (1 + tanh(sqrt(2/pi)(x_i + 0.044715 x_i^3))); y, x: [n]",
            Tolerance::AbsRel { abs: 1e-6, rel: 4e-6 },
        ),
    ]
}

fn variant(
    op: &'static str,
    name: &'static str,
    summary: &'static str,
    run: fn(&mut Case),
) -> Variant {
    Variant { op, name, summary, available: always, run }
}

pub fn variants() -> Vec<Variant> {
    const F64: &str = "scalar loop, f64 exp";
    const SIMD: &str = "wide::f32x8 with polynomial fast_exp";
    let mut v = vec![
        variant("sigmoid", "naive", F64, |c| run_unary(sigmoid_naive, c)),
        variant("sigmoid", "simd", SIMD, |c| run_unary(sigmoid_simd, c)),
        variant("silu", "naive", F64, |c| run_unary(silu_naive, c)),
        variant("silu", "simd", SIMD, |c| run_unary(silu_simd, c)),
        variant("silu_inplace", "naive", F64, |c| run_inplace(silu_inplace_naive, c)),
        variant("silu_inplace", "simd", SIMD, |c| run_inplace(silu_inplace_simd, c)),
        variant("silu_mul", "naive", F64, |c| run_silu_mul(silu_mul_naive, c)),
        variant("silu_mul", "simd", SIMD, |c| run_silu_mul(silu_mul_simd, c)),
        variant(
            "silu_mul",
            "ggml",
            "llama.cpp's arithmetic: ggml's vector expf, x/(1+e)·u (AVX2 lanes or scalar, same bits)",
            |c| run_silu_mul(super::ggml::silu_mul_ggml, c),
        ),
        variant("gelu", "naive", "scalar loop, f64 tanh", |c| run_unary(gelu_naive, c)),
        variant("gelu", "simd", SIMD, |c| run_unary(gelu_simd, c)),
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        Variant {
            op: "silu_mul",
            name: "avx512",
            summary: "AVX-512, 16 lanes: table-driven exp (2^(k/16), cubic, vscalefps), division",
            available: needs_avx512,
            run: |c| run_silu_mul(silu_mul_avx512, c),
        },
        Variant {
            op: "silu_mul",
            name: "ggml_avx512",
            summary: "llama.cpp's arithmetic in ggml's own AVX-512 form (16 lanes, vscalefps): \
                      the bits of ggml",
            available: needs_avx512,
            run: |c| run_silu_mul(super::ggml::silu_mul_ggml_avx512, c),
        },
    ]);
    v
}
