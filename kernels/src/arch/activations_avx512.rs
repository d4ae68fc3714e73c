//! AVX-512 SwiGLU (`y_i = silu(gate_i) · up_i`, `silu(x) = x / (1 + e^(−x))`), 16 lanes per
//! vector, awkward lengths by a masked last vector (masked loads do not touch memory past
//! the slices). Callers check `crate::cpu::detected().has_avx512()` (the registry's
//! `needs_avx512`); only AVX-512 F instructions are used.
//!
//! Two kernels:
//! - [`silu_mul_ggml`]: llama.cpp's arithmetic to the bit (ggml's AVX-512 `ggml_v_silu`,
//!   whose `ggml_v_expf` ends in `vscalefps`), the same bits as `ops::ggml::silu_mul_ggml`;
//! - [`silu_mul`]: a faster `e^(−x)` (a 16-entry table of `2^(k/16)`, a cubic, `vscalefps`)
//!   for the simd and flash stages, relative error ≤ 8e-8 (`fast_exp`'s bound is 1.2e-7).
//!
//! On Zen 4 both are bound by the FP pipes (a 512-bit operation holds a 256-bit pipe for two
//! cycles): ggml's form is 10 multiplies/FMAs, a scalef and a division (~6 cycles of the
//! divider) per 16 values; the table form 7 multiplies/FMAs, two `vpermps`, the scalef and
//! the division.

use std::arch::x86_64::*;

use crate::ops::ggml::{EXP_SHIFT, LN2_HI, LN2_LO, LOG2_E, POLY};

const LANES: usize = 16;

#[inline(always)]
unsafe fn splat(x: f32) -> __m512 {
    _mm512_set1_ps(x)
}

/// Vectors per block of [`map2`]: its loads run one block ahead of its stores.
const AHEAD: usize = 4;

/// `y[i] = f(gate[i], up[i])` for every `i`, 16 lanes at a time.
///
/// The loads of gate and up run [`AHEAD`] vectors (256 bytes) ahead of the stores to `y`: a
/// load whose address equals a pending store's in the low 12 bits waits for that store
/// (4 KiB aliasing), which with `y` 64–192 bytes past `gate` modulo 4 KiB (as in the
/// harness's guarded output buffers) made every load wait for the previous vector's result,
/// 25 % slower; loaded ahead, no load follows a store to its own offset for any `y` up to 256
/// bytes past the inputs, and the others gain ~3 % (`examples/act_speed.rs`). The rest goes
/// one vector at a time, the last `len % 16` through masked loads and a masked store (the
/// lanes beyond the slices read as 0, are computed and dropped).
///
/// # Safety
/// AVX-512 F must be present; `y`, `gate` and `up` must have the same length.
#[inline(always)]
unsafe fn map2(y: &mut [f32], gate: &[f32], up: &[f32], f: impl Fn(__m512, __m512) -> __m512) {
    debug_assert!(gate.len() == y.len() && up.len() == y.len());
    let n = y.len();
    let (yp, gp, up_) = (y.as_mut_ptr(), gate.as_ptr(), up.as_ptr());
    const BLOCK: usize = LANES * AHEAD;
    let blocks = n / BLOCK;
    let mut i = 0;
    if blocks > 0 {
        let mut g: [__m512; AHEAD] = std::array::from_fn(|k| _mm512_loadu_ps(gp.add(LANES * k)));
        let mut u: [__m512; AHEAD] = std::array::from_fn(|k| _mm512_loadu_ps(up_.add(LANES * k)));
        for b in 0..blocks {
            // the last block reloads itself rather than read past the slices
            let next = if b + 1 < blocks { i + BLOCK } else { i };
            for k in 0..AHEAD {
                let (gk, uk) = (g[k], u[k]);
                g[k] = _mm512_loadu_ps(gp.add(next + LANES * k));
                u[k] = _mm512_loadu_ps(up_.add(next + LANES * k));
                _mm512_storeu_ps(yp.add(i + LANES * k), f(gk, uk));
            }
            i += BLOCK;
        }
    }
    while i + LANES <= n {
        let v = f(_mm512_loadu_ps(gp.add(i)), _mm512_loadu_ps(up_.add(i)));
        _mm512_storeu_ps(yp.add(i), v);
        i += LANES;
    }
    if i < n {
        let mask: __mmask16 = (1u16 << (n - i)) - 1;
        let v = f(_mm512_maskz_loadu_ps(mask, gp.add(i)), _mm512_maskz_loadu_ps(mask, up_.add(i)));
        _mm512_mask_storeu_ps(yp.add(i), mask, v);
    }
}

// ------------------------------------------------------------------------ ggml, to the bit

/// Inputs of ggml's `expf` beyond `±GGML_EXP_CLAMP` are clamped to it: see [`silu_ggml`].
const GGML_EXP_CLAMP: f32 = 150.0;

/// `g / (1 + ggml_v_expf(0 − g))` with ggml's operations, rearranged without changing a bit:
///
/// - ggml negates first (`x = 0 − g`); here the sign goes into the constants instead. With
///   round-to-nearest `RN(−a) = −RN(a)`, so `z = fma(g, −log2e, 0x1.8p23)` and `n = z − 0x1.8p23`
///   are ggml's, and `b' = fma(n, ln2_lo, fma(n, ln2_hi, g))` is ggml's `b` negated (where
///   the sum is exactly 0 both are +0, and a zero `b` only ever meets added constants). Its
///   polynomial `((C5·b + C4)·u + (C3·b + C2))·u + (C1·b + 1)`, `u = b²`, is evaluated on
///   `b'` with `C5`, `C3`, `C1` negated: the same roundings of the same values.
/// - ggml replaces `vscalefps(j, n)` by +∞ (`n > 0`) or 0 where `|n| > 192` (so `|x| > 133.1`,
///   including ±∞, and the range where the `0x1.8p23` rounding trick fails). Here `x` is
///   clamped to `±150` first: `j ∈ [0.7, 1.42]` there, so `vscalefps` with `|n| ≥ 216` itself
///   overflows to +∞ or underflows to +0: the same two values, and for `|x| ≤ 133.1` nothing
///   changes. NaN passes the clamp (it is `max`/`min`'s second operand) and comes out NaN.
/// - The numerator is the unclamped `g`: `−∞ / ∞` is NaN in both, a finite `g < −88.73`
///   gives `g / ∞ = −0`.
#[inline(always)]
unsafe fn silu_ggml(g: __m512) -> __m512 {
    let [c1, c2, c3, c4, c5] = POLY;
    let gc = _mm512_min_ps(splat(GGML_EXP_CLAMP), _mm512_max_ps(splat(-GGML_EXP_CLAMP), g));
    let shift = splat(EXP_SHIFT);
    let z = _mm512_fmadd_ps(gc, splat(-LOG2_E), shift);
    let n = _mm512_sub_ps(z, shift);
    let b = _mm512_fmadd_ps(n, splat(LN2_LO), _mm512_fmadd_ps(n, splat(LN2_HI), gc));
    let u = _mm512_mul_ps(b, b);
    let j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(
            _mm512_fmadd_ps(splat(-c5), b, splat(c4)),
            u,
            _mm512_fmadd_ps(splat(-c3), b, splat(c2)),
        ),
        u,
        _mm512_fmadd_ps(splat(-c1), b, splat(1.0)),
    );
    let e = _mm512_scalef_ps(j, n);
    _mm512_div_ps(g, _mm512_add_ps(splat(1.0), e))
}

/// `y_i = silu(gate_i) · up_i` with ggml's AVX-512 arithmetic (see `silu_ggml`): the bits
/// of `ops::ggml::silu_mul_ggml_scalar` in every lane, tail included, and NaN where it gives
/// NaN (which NaN, Rust leaves unspecified). Checked on all 2^32 gates
/// (`tests/silu_mul_avx512.rs`).
///
/// # Safety
/// AVX-512 F must be present; the three slices must have the same length.
#[target_feature(enable = "avx512f")]
pub unsafe fn silu_mul_ggml(y: &mut [f32], gate: &[f32], up: &[f32]) {
    map2(y, gate, up, |g, u| _mm512_mul_ps(silu_ggml(g), u));
}

// ------------------------------------------------------------------- fast (simd, flash)

/// `1.5 · 2^19`: adding it rounds to a multiple of 1/16 (the ulp of `[2^19, 2^20)`), and the
/// low 4 bits of the sum's encoding are then that multiple's sixteenths.
const SHIFT_SIXTEENTHS: f32 = 786_432.0;

/// `2^(k/16)`, `k = 0..16`, each rounded to nearest (a test recomputes them).
pub(crate) const EXP2_SIXTEENTHS: [u32; 16] = [
    0x3f80_0000,
    0x3f85_aac3,
    0x3f8b_95c2,
    0x3f91_c3d3,
    0x3f98_37f0,
    0x3f9e_f532,
    0x3fa5_fed7,
    0x3fad_583f,
    0x3fb5_04f3,
    0x3fbd_08a4,
    0x3fc5_672a,
    0x3fce_248c,
    0x3fd7_44fd,
    0x3fe0_ccdf,
    0x3fea_c0c7,
    0x3ff5_257d,
];

/// `(2^(k/16) − T_k) / T_k` for the rounded table entries `T_k` of [`EXP2_SIXTEENTHS`] (each
/// below 2^-24 in magnitude): added into the polynomial so the table's rounding drops out
/// of the error.
pub(crate) const EXP2_SIXTEENTHS_CORRECTION: [u32; 16] = [
    0x0000_0000,
    0x3346_cb6a,
    0xb24e_0611,
    0x334b_2482,
    0x3309_2801,
    0x331b_85f2,
    0xb305_1aa8,
    0xb200_6c56,
    0x3293_02ae,
    0xb302_e5a2,
    0x31b3_d0e5,
    0x31d1_daf2,
    0xb27c_e182,
    0xb1b4_b0da,
    0xb1d2_90be,
    0x31b0_a147,
];

/// The exp argument of [`silu_fast`] is `−g` with `g` in `[SILU_NUM_MIN, SILU_EXP_MAX_G]`.
const SILU_EXP_MAX_G: f32 = 100.0;
/// Numerators below this are raised to it: `e^(1e4) = ∞` and `−1e4 / ∞ = −0`, so
/// `silu(−∞) = −0` (the limit) without a blend.
const SILU_NUM_MIN: f32 = -1e4;

/// The two 16-entry tables of [`exp_neg`], one register each.
#[derive(Clone, Copy)]
struct ExpTables {
    exp2: __m512,
    correction: __m512,
}

#[inline(always)]
unsafe fn exp_tables() -> ExpTables {
    ExpTables {
        exp2: _mm512_loadu_ps(EXP2_SIXTEENTHS.as_ptr().cast()),
        correction: _mm512_loadu_ps(EXP2_SIXTEENTHS_CORRECTION.as_ptr().cast()),
    }
}

/// `g / (1 + e^(−g))` with [`exp_neg`].
///
/// Ranges: `g > 100` computes `e^(−100)` (`1 + e = 1` either way); `g < −88.73` makes
/// `e^(−g) = +∞` and the result `−0` (the exact one is below 1.4e-36 in magnitude), including
/// `g = −∞` through the numerator floor [`SILU_NUM_MIN`]; NaN passes both clamps (second
/// operand of `max`/`min`) and comes out NaN. Relative error: `e`'s (below) plus three
/// roundings (`1 + e`, `/`, and the `· up` after), `≤ 2.6e-7`.
#[inline(always)]
unsafe fn silu_fast(g: __m512, tables: ExpTables) -> __m512 {
    let num = _mm512_max_ps(splat(SILU_NUM_MIN), g);
    let e = exp_neg(_mm512_min_ps(splat(SILU_EXP_MAX_G), num), tables);
    _mm512_div_ps(num, _mm512_add_ps(splat(1.0), e))
}

/// `e^x` for `x = −gc`, `|x| < 2^17·ln 2`; beyond ±88.7 it saturates to +∞ or to 0 through
/// subnormals. Method:
///
/// `x = (n/16)·ln 2 + r`, `n = round(16·x·log2 e)` (the `1.5·2^19` trick), `r` by ggml's
/// two-constant Cody–Waite split (`|r| ≤ ln2/32`, error ~1e-9);
/// `e^x = 2^⌊n/16⌋ · T_k · (1 + c_k + r + r²/2 + r³/6)`, `k = n mod 16`, with `T_k` the rounded
/// `2^(k/16)` and `c_k` its relative rounding error ([`EXP2_SIXTEENTHS_CORRECTION`]). Both
/// entries come from the low 4 bits of the rounded sum (`vpermps`), `2^⌊n/16⌋` from
/// `vscalefps` (which rounds subnormal results once and saturates).
///
/// **Accuracy:** relative error ≤ 8e-8 where the result is normal (`x ∈ [−87.33, 88.72]`):
/// the last FMA's rounding (≤ 2^-24 of a value in [1, 2)), the cubic's truncation
/// (`r⁴/24 ≤ 9.2e-9`), `r`'s and `c_k`'s (~3e-9); 6.9e-8 measured on 30 million points
/// (the unit test below). That is within `fast_exp`'s bound
/// ([`crate::ops::fast_math::FAST_EXP_MAX_REL_ERROR`], 1.2e-7).
#[inline(always)]
unsafe fn exp_neg(gc: __m512, tables: ExpTables) -> __m512 {
    // with x = −gc: z = 16·x·log2e rounded, plus the shift; nq = n/16
    let shift = splat(SHIFT_SIXTEENTHS);
    let z = _mm512_fmadd_ps(gc, splat(-LOG2_E), shift);
    let nq = _mm512_sub_ps(z, shift);
    // r' = gc + nq·ln2 = −r
    let rn = _mm512_fmadd_ps(nq, splat(LN2_LO), _mm512_fmadd_ps(nq, splat(LN2_HI), gc));
    let k = _mm512_castps_si512(z);
    let t = _mm512_permutexvar_ps(k, tables.exp2);
    let c = _mm512_permutexvar_ps(k, tables.correction);
    // e^r − 1 + c = r'·(−1 + r'/2 − r'²/6) + c
    let q = _mm512_fmadd_ps(_mm512_fmadd_ps(splat(-1.0 / 6.0), rn, splat(0.5)), rn, splat(-1.0));
    let em1 = _mm512_fmadd_ps(rn, q, c);
    _mm512_scalef_ps(_mm512_fmadd_ps(t, em1, t), nq)
}

/// `y_i = silu(gate_i) · up_i` with `silu_fast` (its doc gives ranges and errors).
///
/// # Safety
/// AVX-512 F must be present; the three slices must have the same length.
#[target_feature(enable = "avx512f")]
pub unsafe fn silu_mul(y: &mut [f32], gate: &[f32], up: &[f32]) {
    let tables = exp_tables();
    map2(y, gate, up, |g, u| _mm512_mul_ps(silu_fast(g, tables), u));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_hold_two_to_the_sixteenths_and_their_rounding() {
        for (k, (&bits, &c)) in EXP2_SIXTEENTHS.iter().zip(&EXP2_SIXTEENTHS_CORRECTION).enumerate()
        {
            let exact = (k as f64 / 16.0).exp2();
            let t = f32::from_bits(bits) as f64;
            let ulp = f32::EPSILON as f64; // of [1, 2)
            assert!((t - exact).abs() <= ulp / 2.0, "2^({k}/16): {t} vs {exact}");
            // T·(1 + c) is 2^(k/16) but for c's own rounding (2^-24 of |c| < 2^-24)
            let c = f32::from_bits(c) as f64;
            assert!((t * (1.0 + c) - exact).abs() < 1e-14, "correction {k}: {c:e}");
        }
    }

    /// The error bound stated at [`silu_fast`], on 30 million points of the accurate range.
    #[test]
    fn table_exp_is_within_its_stated_error() {
        if !crate::cpu::detected().has_avx512() {
            eprintln!("SKIPPED table_exp_is_within_its_stated_error: CPU lacks AVX-512");
            return;
        }
        let (lo, hi) = (-87.33f32, 88.37f32);
        let count = 30_000_000usize;
        let step = (hi - lo) as f64 / count as f64;
        let mut worst = 0.0f64;
        let mut x = [0.0f32; 16];
        let mut e = [0.0f32; 16];
        for i in (0..count).step_by(16) {
            for (l, xl) in x.iter_mut().enumerate() {
                *xl = (lo as f64 + (i + l) as f64 * step) as f32;
            }
            // SAFETY: AVX-512 F is present (checked above); both arrays hold 16 values.
            unsafe {
                #[target_feature(enable = "avx512f")]
                unsafe fn run(x: &[f32; 16], e: &mut [f32; 16]) {
                    let gc = _mm512_sub_ps(_mm512_setzero_ps(), _mm512_loadu_ps(x.as_ptr()));
                    _mm512_storeu_ps(e.as_mut_ptr(), exp_neg(gc, exp_tables()));
                }
                run(&x, &mut e);
            }
            for (xl, el) in x.iter().zip(&e) {
                let want = (*xl as f64).exp();
                worst = worst.max((*el as f64 - want).abs() / want);
            }
        }
        eprintln!("table exp: worst relative error {worst:.3e}");
        assert!(worst <= 8e-8, "worst relative error {worst:e}");
        // saturation: +inf above 88.73 (and at the silu's clamp 1e4), subnormal results
        // rounded once, 0 far below
        let x: [f32; 16] = [
            88.73, 100.0, 1e4, 88.72, -87.4, -95.0, -100.0, -103.0, -104.0, -110.0, -1e4, 0.0,
            -0.0, 1.0, -1.0, 20.0,
        ];
        // SAFETY: AVX-512 F is present (checked above).
        let e: [f32; 16] = unsafe {
            #[target_feature(enable = "avx512f")]
            unsafe fn run(x: &[f32; 16]) -> [f32; 16] {
                let gc = _mm512_sub_ps(_mm512_setzero_ps(), _mm512_loadu_ps(x.as_ptr()));
                std::mem::transmute(exp_neg(gc, exp_tables()))
            }
            run(&x)
        };
        for (xl, el) in x.iter().zip(e) {
            let want = (*xl as f64).exp();
            let (got, subnormal_ulp) = (el as f64, f32::from_bits(1) as f64);
            let ok = if want > f32::MAX as f64 {
                el == f32::INFINITY
            } else {
                (got - want).abs() <= 8e-8 * want + 0.5 * subnormal_ulp
            };
            assert!(ok, "exp({xl}) = {el:e}, want {want:e}");
        }
    }
}
