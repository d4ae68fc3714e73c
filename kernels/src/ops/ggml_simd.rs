//! Vector forms of llama.cpp's row-wise ops ([`super::ggml`]) for a prefill batch, giving the
//! bits of the scalar specifications: every lane does the specification's operations on one
//! value, in its order.
//!
//! - [`rms_norm_ggml_simd`]: ggml sums a row's squares one at a time in f64 (`Σ (f32)(x²)`, a
//!   chain of dependent additions that no reordering may shorten). Eight rows go side by side
//!   instead, one per lane: an 8 × 8 block (8 rows × 8 columns) is squared in f32, transposed,
//!   and its columns added in order to two 4-lane f64 sums, so lane `r` adds row `r`'s squares
//!   in the row's own order. Sixteen rows run as two such groups, so four chains of additions
//!   are in flight. Then per row `scale = 1/sqrtf((f32)(Σ/n) + eps)` and `y = (x·scale)·w`.
//! - [`rope_ggml_simd`]: pairs `(x0, x1)` at adjacent lanes, `x0' = fma(x0, c, −(x1·s))` and
//!   `x1' = fma(x0, s, x1·c)` as one `vfmaddsub` of `(x0, x0)·(c, s)` with `(x1·s, x1·c)`.
//! - [`copy_round_f16`]: values into the f16-valued KV cache, `f32 → f16 → f32` by F16C
//!   (round to nearest even, what [`crate::quant::f16::f32_to_f16`] reproduces).
//!
//! Each falls back to its scalar specification without AVX2/FMA (F16C), on the rows of a batch
//! that do not fill a group, and on the columns or pairs that do not fill a vector.

use super::ggml::{rms_norm_ggml, rope_ggml};
use super::rope::{RopePairing, RopeShape, RopeTable};
use crate::quant::f16;

/// Rows per group of [`rms_norm_ggml_simd`]'s vector loop (one per lane of two f64 vectors).
const GROUP: usize = 8;

/// [`rms_norm_ggml`] (same arguments, same bits) with rows side by side in vector lanes.
pub fn rms_norm_ggml_simd(y: &mut [f32], x: &[f32], weight: &[f32], eps: f32) {
    let n = super::rms_norm::check(y, x, weight);
    #[cfg(target_arch = "x86_64")]
    if n > 0 && crate::cpu::detected().has_avx2_fma() {
        let rows = x.len() / n;
        let mut r = 0;
        while r + GROUP <= rows {
            let g = if r + 2 * GROUP <= rows { 2 } else { 1 };
            let (xs, ys) = (&x[r * n..(r + g * GROUP) * n], &mut y[r * n..(r + g * GROUP) * n]);
            // SAFETY: AVX2 present; `xs` and `ys` hold g·8 rows of n values.
            unsafe {
                if g == 2 {
                    avx2::rms_norm_rows::<2>(ys, xs, weight, eps);
                } else {
                    avx2::rms_norm_rows::<1>(ys, xs, weight, eps);
                }
            }
            r += g * GROUP;
        }
        return rms_norm_ggml(&mut y[r * n..], &x[r * n..], weight, eps);
    }
    rms_norm_ggml(y, x, weight, eps)
}

/// Rotary dimensions up to which [`rope_ggml_simd`] vectorizes (its per-position tables live
/// on the stack, so decode allocates nothing).
const ROPE_MAX_DIMS: usize = 256;

/// [`rope_ggml`] (same arguments, same bits), eight values of a head at a time for adjacent
/// pairs (ggml mode 0) of up to [`ROPE_MAX_DIMS`] rotary dimensions; NeoX halves and wider
/// rotations run the specification.
pub fn rope_ggml_simd(q: &mut [f32], k: &mut [f32], s: RopeShape, table: &RopeTable) {
    #[cfg(target_arch = "x86_64")]
    if s.pairing == RopePairing::Adjacent
        && table.rotary_dims() <= ROPE_MAX_DIMS
        && crate::cpu::detected().has_avx2_fma()
    {
        let m = super::rope::check(q, k, s, table);
        let r = table.rotary_dims();
        // (c, s) and (s, c) of every pair, interleaved as the pairs are
        let (mut cs_buf, mut sc_buf) = ([0.0f32; ROPE_MAX_DIMS], [0.0f32; ROPE_MAX_DIMS]);
        let (cs, sc) = (&mut cs_buf[..r], &mut sc_buf[..r]);
        for t in 0..m {
            let (cos, sin) = table.cos_sin(s.pos0 + t);
            for i in 0..r / 2 {
                (cs[2 * i], cs[2 * i + 1]) = (cos[i], sin[i]);
                (sc[2 * i], sc[2 * i + 1]) = (sin[i], cos[i]);
            }
            for (x, heads) in [(&mut *q, s.n_heads), (&mut *k, s.n_kv_heads)] {
                let d = s.head_dim;
                for head in x[t * heads * d..(t + 1) * heads * d].chunks_exact_mut(d) {
                    // SAFETY: AVX2/FMA present; `head[..r]`, `cs` and `sc` hold r values.
                    unsafe { avx2::rotate_pairs(&mut head[..r], cs, sc) };
                }
            }
        }
        return;
    }
    rope_ggml(q, k, s, table)
}

/// `dst[i] = (f32)(f16)src[i]`, round to nearest even: a value as the f16 KV cache holds it.
pub fn copy_round_f16(dst: &mut [f32], src: &[f32]) {
    assert_eq!(
        dst.len(),
        src.len(),
        "copy_round_f16: dst has {} values, src {}",
        dst.len(),
        src.len()
    );
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::detected().has_avx2_f16c() {
        done = src.len() / 8 * 8;
        // SAFETY: AVX2 and F16C present; both slices hold `done` values.
        unsafe { avx2::copy_round_f16(&mut dst[..done], &src[..done]) };
    }
    for (d, &v) in dst[done..].iter_mut().zip(&src[done..]) {
        *d = f16::f16_to_f32(f16::f32_to_f16(v));
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::GROUP;
    use crate::arch::attention_avx2::transpose8;

    /// [`super::rms_norm_ggml`] of `G`·8 rows (`x`, `y`: `[G·8, n]`), the rows in lanes.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn rms_norm_rows<const G: usize>(
        y: &mut [f32],
        x: &[f32],
        weight: &[f32],
        eps: f32,
    ) {
        let n = weight.len();
        debug_assert!(x.len() == G * GROUP * n && y.len() == x.len());
        let n8 = n / 8 * 8;
        let xp = x.as_ptr();
        // sums[g][h]: rows 8g + 4h .. 8g + 4h + 4
        let mut sums = [[_mm256_setzero_pd(); 2]; G];
        for i in (0..n8).step_by(8) {
            for (g, sum) in sums.iter_mut().enumerate() {
                let rows: [__m256; 8] = std::array::from_fn(|r| {
                    let v = _mm256_loadu_ps(xp.add((GROUP * g + r) * n + i));
                    _mm256_mul_ps(v, v)
                });
                for col in transpose8(rows) {
                    let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(col));
                    let hi = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(col));
                    sum[0] = _mm256_add_pd(sum[0], lo);
                    sum[1] = _mm256_add_pd(sum[1], hi);
                }
            }
        }
        for (g, sum) in sums.iter().enumerate() {
            let mut lanes = [0.0f64; GROUP];
            _mm256_storeu_pd(lanes.as_mut_ptr(), sum[0]);
            _mm256_storeu_pd(lanes.as_mut_ptr().add(4), sum[1]);
            for (r, lane) in lanes.iter_mut().enumerate() {
                let row = GROUP * g + r;
                let (xr, yr) = (&x[row * n..(row + 1) * n], &mut y[row * n..(row + 1) * n]);
                let mut sum = *lane;
                for &v in &xr[n8..] {
                    sum += (v * v) as f64;
                }
                let mean = (sum / n as f64) as f32;
                let scale = 1.0 / (mean + eps).sqrt();
                scale_row(yr, xr, scale, weight);
            }
        }
    }

    /// `y = (x·scale)·w`, two roundings per value as in the specification.
    #[inline(always)]
    unsafe fn scale_row(y: &mut [f32], x: &[f32], scale: f32, w: &[f32]) {
        let n8 = y.len() / 8 * 8;
        let sv = _mm256_set1_ps(scale);
        for i in (0..n8).step_by(8) {
            let v = _mm256_mul_ps(_mm256_loadu_ps(x.as_ptr().add(i)), sv);
            let out = _mm256_mul_ps(v, _mm256_loadu_ps(w.as_ptr().add(i)));
            _mm256_storeu_ps(y.as_mut_ptr().add(i), out);
        }
        for ((yv, &xv), &wv) in y[n8..].iter_mut().zip(&x[n8..]).zip(&w[n8..]) {
            *yv = (xv * scale) * wv;
        }
    }

    /// Rotates adjacent pairs of `x` (`cs` = (c, s) and `sc` = (s, c) per pair): even lanes
    /// `fma(x0, c, −(x1·s))`, odd lanes `fma(x0, s, x1·c)`; pairs past the last 8 values in
    /// scalar, the same operations.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn rotate_pairs(x: &mut [f32], cs: &[f32], sc: &[f32]) {
        let n8 = x.len() / 8 * 8;
        let p = x.as_mut_ptr();
        for i in (0..n8).step_by(8) {
            let v = _mm256_loadu_ps(p.add(i));
            // (x0, x0) and (x1, x1) of each pair
            let (x0, x1) = (_mm256_moveldup_ps(v), _mm256_movehdup_ps(v));
            let t = _mm256_mul_ps(x1, _mm256_loadu_ps(sc.as_ptr().add(i)));
            let out = _mm256_fmaddsub_ps(x0, _mm256_loadu_ps(cs.as_ptr().add(i)), t);
            _mm256_storeu_ps(p.add(i), out);
        }
        for i in (n8..x.len()).step_by(2) {
            let (x0, x1, c, s) = (x[i], x[i + 1], cs[i], cs[i + 1]);
            x[i] = x0.mul_add(c, -(x1 * s));
            x[i + 1] = x0.mul_add(s, x1 * c);
        }
    }

    /// `dst = f32(f16(src))` by `vcvtps2ph` (round to nearest even) and `vcvtph2ps`.
    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn copy_round_f16(dst: &mut [f32], src: &[f32]) {
        debug_assert!(dst.len() == src.len() && src.len().is_multiple_of(8));
        for i in (0..src.len()).step_by(8) {
            let h =
                _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(src.as_ptr().add(i)));
            _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
        }
    }
}
