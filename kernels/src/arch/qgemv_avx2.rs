//! The decode GEMV of the 32-value block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 weights against
//! Q8_0/Q8_1 activations) for 1 to 4 tokens: passes over `R` weight rows × up to 3 tokens,
//! each weight block unpacked once for every token of the pass.
//!
//! Per output (row r, token t) the arithmetic is exactly ggml's AVX2
//! `ggml_vec_dot_q4_1_q8_1` / `ggml_vec_dot_q8_0_q8_0`:
//!
//! ```text
//! acc = 0 (8 f32 lanes)
//! for b in 0..nb:  lane j = Σ of the integer products of block elements 4j..4j+3
//!                  acc    = fma(d_w[b]·d_a[b], float(lane), acc)
//! y = hsum(acc)  (+ summs = Σ_b m_w[b]·s_a[b] in f32, sequentially, for Q4_1/Q5_1)
//! ```
//!
//! What is vectorized differently is only how the scales are found: the f16 `(d, m)` pairs of
//! 4 rows are loaded together and converted by one `vcvtph2ps` to `[d0 m0 d1 m1 d2 m2 d3 m3]`,
//! multiplied by `[d_a s_a d_a s_a …]` (one `vmulps` for the 4 `d_w·d_a` and the 4 `m_w·s_a`
//! products) and the `m_w·s_a` lanes added to a running vector of 4 rows' `summs`; each row's
//! `d_w·d_a` is then broadcast into its `fma`. The scalar path this replaces spent ~7
//! instructions per row and block on f16 conversions, products and broadcasts.

use std::arch::x86_64::*;

use super::quant_avx2::{hsum_ps, loadu, Gemm32, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0};
use crate::quant::{QuantType, QuantizedActs};

/// How far ahead of the bytes being read a single-token pass prefetches its weights. Decode
/// streams every matrix from DRAM (the model is 3× the L3), so the distance must cover the
/// latency at ~17 GB/s. Cold sweeps of one token's matrices (`qgemv_speed`, 1 thread, best of
/// 3 interleaved runs on a loaded machine): 2 passes ahead (1.4-2.4 KB) vocabulary 1.92-2.04
/// ms, sweep 6.51-7.45 ms; 8 KB 1.51-1.88 ms, 6.46-6.58 ms; 16-32 KB no better than 8 KB.
const PREFETCH_BYTES: usize = 8192;

/// The first 4 bytes of up to 4 blocks (each an f16 `d` then an f16 `m` or quant bytes)
/// converted to `[d0 m0 d1 m1 d2 m2 d3 m3]`; missing rows read as 0.
#[inline(always)]
unsafe fn scale_pairs<const N: usize>(p: [*const u8; N]) -> __m256 {
    let word = |i: usize| {
        if i < N {
            _mm_cvtsi32_si128(std::ptr::read_unaligned(p[i].cast::<i32>()))
        } else {
            _mm_setzero_si128()
        }
    };
    let pairs = if N == 1 {
        word(0)
    } else {
        _mm_unpacklo_epi64(
            _mm_unpacklo_epi32(word(0), word(1)),
            _mm_unpacklo_epi32(word(2), word(3)),
        )
    };
    _mm256_cvtph_ps(pairs)
}

/// Where a pass keeps its scale products: the rows' `d_w·d_a` are broadcast into their `fma`s
/// from memory (`vbroadcastss m32`, a load-port uop). Kept in a register, each broadcast would
/// be a lane shuffle competing with the integer dot for the vector ALUs; the volatile store
/// and loads stop the compiler from making that trade.
#[repr(align(32))]
struct Staged<const T: usize>([__m256; T]);

/// One pass: rows `r0..r0+R` × tokens `t0..t0+T` (R ≤ 4), every block.
#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn pass<K: Gemm32, const R: usize, const T: usize>(
    w: *const u8,
    row_bytes: usize,
    nb: usize,
    acts: &QuantizedActs,
    y: *mut f32,
    y_stride: usize,
    r0: usize,
    t0: usize,
) {
    const { assert!(R >= 1 && R <= 4) };
    let wb = K::WTYPE.block_bytes();
    let ab = acts.ty().block_bytes();
    let has_min = !K::SIGNED;
    let a_qs = if has_min { 4 } else { 2 };
    let a = acts.blocks().as_ptr().add(t0 * nb * ab);
    let ad = acts.scales().as_ptr().add(t0 * nb);
    let ones = _mm256_set1_epi16(1);
    let w = w.add(r0 * row_bytes);
    let mut acc = [[_mm256_setzero_ps(); T]; R];
    // lanes 2i+1: row i's Σ_b m_w·s_a, added block after block from 0 (ggml's `summs`); the
    // even lanes add up the d_w·d_a products, unused
    let mut summs = [_mm256_setzero_ps(); T];
    let mut staged = Staged([_mm256_setzero_ps(); T]);
    for b in 0..nb {
        if T == 1 {
            // The pass reads its R rows, one contiguous span, at R·wb bytes per block: fetch
            // as much, PREFETCH_BYTES further on (a prefetch never faults).
            let ahead = w.wrapping_add(PREFETCH_BYTES + b * R * wb);
            for i in 0..(R * wb).div_ceil(64) {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64 * i).cast());
            }
        }
        let wp = w.add(b * wb);
        let row = |i: usize| wp.add(i.min(R - 1) * row_bytes);
        let wscales = match R {
            1 => scale_pairs::<1>([row(0)]),
            2 => scale_pairs::<2>([row(0), row(1)]),
            3 => scale_pairs::<3>([row(0), row(1), row(2)]),
            _ => scale_pairs::<4>([row(0), row(1), row(2), row(3)]),
        };
        let mut aq = [_mm256_setzero_si256(); T];
        for t in 0..T {
            let ap = a.add((t * nb + b) * ab);
            aq[t] = loadu(ap.add(a_qs));
            let act = if has_min {
                // Q8_1's f16 (d, s) pair, exactly the f32 values `acts.scales()`/`sums()` hold
                _mm256_cvtph_ps(_mm_set1_epi32(std::ptr::read_unaligned(ap.cast::<i32>())))
            } else {
                _mm256_set1_ps(*ad.add(t * nb + b))
            };
            // [d_w·d_a, m_w·s_a] of the pass's rows for token t
            let products = _mm256_mul_ps(wscales, act);
            if has_min {
                summs[t] = _mm256_add_ps(summs[t], products);
            }
            std::ptr::write_volatile(&mut staged.0[t], products);
        }
        for r in 0..R {
            let q = K::unpack(wp.add(r * row_bytes)).0;
            let u = if has_min { q } else { _mm256_sign_epi8(q, q) };
            for t in 0..T {
                let s = if has_min { aq[t] } else { _mm256_sign_epi8(aq[t], q) };
                let sums = _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), ones);
                let p = (&staged.0[t] as *const __m256).cast::<f32>().add(2 * r);
                let d = _mm256_set1_ps(std::ptr::read_volatile(p));
                acc[r][t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sums), acc[r][t]);
            }
        }
    }
    for t in 0..T {
        let s: &[f32; 8] = &*(&summs[t] as *const __m256).cast();
        for r in 0..R {
            let mut v = hsum_ps(acc[r][t]);
            if has_min {
                v += s[2 * r + 1];
            }
            *y.add((t0 + t) * y_stride + r0 + r) = v;
        }
    }
}

/// Every row of one token tile `t0..t0+T`: passes of 4 rows, then single rows. (Passes of 8
/// rows × 1 token ran no faster and took ~2 % more instructions.)
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn rows<K: Gemm32, const T: usize>(
    w: *const u8,
    n_rows: usize,
    row_bytes: usize,
    nb: usize,
    acts: &QuantizedActs,
    y: *mut f32,
    y_stride: usize,
    t0: usize,
) {
    let mut r = 0;
    while r + 4 <= n_rows {
        pass::<K, 4, T>(w, row_bytes, nb, acts, y, y_stride, r, t0);
        r += 4;
    }
    while r < n_rows {
        pass::<K, 1, T>(w, row_bytes, nb, acts, y, y_stride, r, t0);
        r += 1;
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn run<K: Gemm32>(
    weights: &[u8],
    n_rows: usize,
    k: usize,
    acts: &QuantizedActs,
    y: &mut [f32],
    y_stride: usize,
) {
    let nb = k / 32;
    let row_bytes = nb * K::WTYPE.block_bytes();
    let (w, yp) = (weights.as_ptr(), y.as_mut_ptr());
    let m = acts.m();
    let mut t = 0;
    while t + 3 <= m {
        rows::<K, 3>(w, n_rows, row_bytes, nb, acts, yp, y_stride, t);
        t += 3;
    }
    match m - t {
        2 => rows::<K, 2>(w, n_rows, row_bytes, nb, acts, yp, y_stride, t),
        1 => rows::<K, 1>(w, n_rows, row_bytes, nb, acts, yp, y_stride, t),
        _ => {}
    }
}

/// `y[t·y_stride + r] = Σ w[r]·x[t]` for the 32-value formats; `None` for other formats.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C, and the arguments must satisfy
/// `crate::quant::matmul::check_qmatmul` (the caller checks both).
pub(crate) unsafe fn qgemv32(
    weights: &[u8],
    wtype: QuantType,
    n_rows: usize,
    k: usize,
    acts: &QuantizedActs,
    y: &mut [f32],
    y_stride: usize,
) -> Option<()> {
    match wtype {
        QuantType::Q4_0 => run::<Q4_0>(weights, n_rows, k, acts, y, y_stride),
        QuantType::Q4_1 => run::<Q4_1>(weights, n_rows, k, acts, y, y_stride),
        QuantType::Q5_0 => run::<Q5_0>(weights, n_rows, k, acts, y, y_stride),
        QuantType::Q5_1 => run::<Q5_1>(weights, n_rows, k, acts, y, y_stride),
        QuantType::Q8_0 => run::<Q8_0>(weights, n_rows, k, acts, y, y_stride),
        _ => return None,
    }
    Some(())
}
