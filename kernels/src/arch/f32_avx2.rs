//! f32_avx2: hand-written AVX2+FMA kernels for the f32 ops (callers check
//! `crate::cpu::detected().has_avx2_fma()` once, through the registry's `needs_avx2`).

use std::arch::x86_64::*;

/// Sum of the 8 lanes of `v`.
#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps::<1>(v);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// `MR×NR` dot products `xs[r] · ws[c]` of length `k`: 8 lanes per FMA, `MR·NR`
/// accumulators, a horizontal sum each, then the `k mod 8` tail in scalar FMAs.
///
/// # Safety
/// The CPU must support AVX2 and FMA; every `xs[r]` and `ws[c]` must point to `k` readable
/// f32 values.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_block<const MR: usize, const NR: usize>(
    xs: [*const f32; MR],
    ws: [*const f32; NR],
    k: usize,
) -> [[f32; NR]; MR] {
    let k8 = k / 8 * 8;
    let mut acc = [[_mm256_setzero_ps(); NR]; MR];
    let mut i = 0;
    while i < k8 {
        let xv: [__m256; MR] = std::array::from_fn(|r| _mm256_loadu_ps(xs[r].add(i)));
        for c in 0..NR {
            let wv = _mm256_loadu_ps(ws[c].add(i));
            for r in 0..MR {
                acc[r][c] = _mm256_fmadd_ps(xv[r], wv, acc[r][c]);
            }
        }
        i += 8;
    }
    let mut out = [[0.0f32; NR]; MR];
    for r in 0..MR {
        for c in 0..NR {
            let mut s = hsum(acc[r][c]);
            for t in k8..k {
                s = (*xs[r].add(t)).mul_add(*ws[c].add(t), s);
            }
            out[r][c] = s;
        }
    }
    out
}
