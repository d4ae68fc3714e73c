//! `fast_exp`: a polynomial `exp` on eight lanes for the SIMD activations, softmax and
//! flash attention.
//!
//! Method (Cephes `expf`): `n = round(x·log2 e)`, `r = x − n·ln 2` with ln 2 split in a high
//! and a low part so `r` is exact to a few ulp, `e^r ≈ 1 + r + r²·P(r)` with a degree-5
//! minimax `P` on `|r| ≤ ln2/2`, then `e^x = e^r · 2^n` by adding `n` to the exponent field
//! (`−126 ≤ n ≤ 127` after clamping).
//!
//! **Accuracy:** maximum relative error `FAST_EXP_MAX_REL_ERROR` (1.2e-7, about one ulp; 8.2e-8 measured)
//! against the exact `exp` for `x ∈ [FAST_EXP_MIN_X, FAST_EXP_MAX_X]` = `[−87.33654, 88.376]`.
//!
//! **Saturation:** `x < −87.33654` (result would be subnormal) returns `+0.0`; `x > 88.376`
//! returns `+inf` (early: the exact result overflows only above 88.7228); `−inf → 0`,
//! `+inf → +inf`, NaN → NaN.
//! Both are checked on a dense grid over every f32 bit pattern in `tests/fast_exp.rs`.

use wide::{f32x8, i32x8};

/// Largest relative error of [`fast_exp`] in its accurate range (see module docs).
pub const FAST_EXP_MAX_REL_ERROR: f64 = 1.2e-7;
/// Below this input `fast_exp` returns 0 (`ln(f32::MIN_POSITIVE)`).
pub const FAST_EXP_MIN_X: f32 = -87.336_54;
/// Above this input `fast_exp` returns +inf: just below `127.5·ln 2`, so `2^n` (n ≤ 127)
/// is one exponent field. `e^88.376 ≈ 2.4e38`; the true `e^x` stays finite up to
/// `ln(f32::MAX) ≈ 88.7228`, a range given up for a branch-free kernel (activations and
/// softmax never need it).
pub const FAST_EXP_MAX_X: f32 = 88.376;

const LOG2_E: f32 = std::f32::consts::LOG2_E;
// ln 2 = LN2_HI + LN2_LO; LN2_HI has 9 significant bits so n·LN2_HI is exact for |n| < 2^15.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const P0: f32 = 1.987_569_1e-4;
const P1: f32 = 1.398_199_9e-3;
const P2: f32 = 8.333_452e-3;
const P3: f32 = 4.166_579_6e-2;
const P4: f32 = 1.666_666_5e-1;
const P5: f32 = 0.5;

/// `e^x` on eight lanes; error bound and saturation range in the module docs.
///
/// Branch-free: clamp (NaN flows through), reduce, polynomial, one exponent-field scaling
/// (`n ≤ 127` because inputs above [`FAST_EXP_MAX_X`] saturate), then the two saturations.
#[inline(always)]
pub fn fast_exp(x: f32x8) -> f32x8 {
    let lo = f32x8::splat(FAST_EXP_MIN_X);
    let hi = f32x8::splat(FAST_EXP_MAX_X);
    // maxps/minps return their second operand when either is NaN: with x second, a NaN
    // input flows through the whole computation and comes out NaN (no final select, which
    // LLVM may turn into a microcoded masked store in in-place loops).
    let xc = hi.fast_min(lo.fast_max(x));
    // cvtps2dq rounds to nearest (the default MXCSR mode) in one instruction; −126 ≤ n ≤ 127.
    let ni: i32x8 = (xc * f32x8::splat(LOG2_E)).fast_round_int();
    let e_r = exp_reduced(xc, ni.round_float());
    let scale: f32x8 = wide::bytemuck::cast((ni + i32x8::splat(127)) << 23);
    let y = e_r * scale;
    let y = x.simd_lt(lo).select(f32x8::ZERO, y);
    x.simd_gt(hi).select(f32x8::splat(f32::INFINITY), y)
}

/// Above this input [`fast_exp_sat`] returns +inf: `n = round(89·log₂e) = 128` makes the
/// exponent field 255 (+inf) and the reduced `e^r` is positive and finite.
pub const FAST_EXP_SAT_MAX_X: f32 = 89.0;

/// `e^x` for the sigmoid family, without [`fast_exp`]'s two saturation blends: inputs are
/// clamped to `[FAST_EXP_MIN_X, FAST_EXP_SAT_MAX_X]`, so `x < −87.33654` gives `e^−87.33654 ≈
/// 1.2e-38` instead of 0 (invisible in `1 + e`), `x > 88.376` gives a huge value or +inf
/// (`x ≥ 88.7` → +inf, as exact `exp` overflows there too), `±inf` the clamped ends, NaN → NaN.
/// In `[FAST_EXP_MIN_X, FAST_EXP_MAX_X]` the result is bit-identical to [`fast_exp`] (same
/// arithmetic), so the same error bound holds.
#[inline(always)]
pub fn fast_exp_sat(x: f32x8) -> f32x8 {
    // NaN second in max/min: it flows through (see fast_exp)
    let xc = f32x8::splat(FAST_EXP_SAT_MAX_X).fast_min(f32x8::splat(FAST_EXP_MIN_X).fast_max(x));
    let ni: i32x8 = (xc * f32x8::splat(LOG2_E)).fast_round_int();
    let e_r = exp_reduced(xc, ni.round_float());
    e_r * wide::bytemuck::cast::<i32x8, f32x8>((ni + i32x8::splat(127)) << 23)
}

/// `e^r` with `r = x − n·ln 2` (|r| ≤ ln2/2): `1 + r + r²·P(r)`.
#[inline(always)]
fn exp_reduced(x: f32x8, n: f32x8) -> f32x8 {
    let r = n.mul_neg_add(f32x8::splat(LN2_HI), x);
    let r = n.mul_neg_add(f32x8::splat(LN2_LO), r);
    let mut p = f32x8::splat(P0);
    p = p.mul_add(r, f32x8::splat(P1));
    p = p.mul_add(r, f32x8::splat(P2));
    p = p.mul_add(r, f32x8::splat(P3));
    p = p.mul_add(r, f32x8::splat(P4));
    p = p.mul_add(r, f32x8::splat(P5));
    let r2 = r * r;
    p.mul_add(r2, r) + f32x8::ONE
}

/// [`fast_exp`] of one value (the same arithmetic in lane 0), for tails and tests.
#[inline]
pub fn fast_exp_scalar(x: f32) -> f32 {
    fast_exp(f32x8::splat(x)).to_array()[0]
}

/// `e^x` for every element of `x` in place with [`fast_exp`].
pub fn fast_exp_slice(x: &mut [f32]) {
    let mut chunks = x.chunks_exact_mut(8);
    for c in &mut chunks {
        c.copy_from_slice(fast_exp(f32x8::from(&c[..])).as_array());
    }
    for v in chunks.into_remainder() {
        *v = fast_exp_scalar(*v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_at_small_integers_and_saturates() {
        assert_eq!(fast_exp_scalar(0.0), 1.0);
        assert!((fast_exp_scalar(1.0) as f64 - std::f64::consts::E).abs() < 1e-6);
        assert_eq!(fast_exp_scalar(-1000.0), 0.0);
        assert_eq!(fast_exp_scalar(f32::NEG_INFINITY), 0.0);
        assert_eq!(fast_exp_scalar(1000.0), f32::INFINITY);
        assert_eq!(fast_exp_scalar(f32::INFINITY), f32::INFINITY);
        assert!(fast_exp_scalar(f32::NAN).is_nan());
    }
}
