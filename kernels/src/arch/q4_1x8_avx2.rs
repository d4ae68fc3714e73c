//! AVX2 matmul of interleaved Q4_1 weights ([`crate::quant::q4_1x8`]) against Q8_1 activations.
//!
//! One token (decode): a panel's 8 rows are computed side by side, lane `r` of every vector
//! belonging to row `r`. Per panel block: the 8 rows' `d` and `m` are one `vcvtph2ps` each,
//! `d_w·d_a` one `vmulps` (no per-row broadcast), `m_w·s_a` one `vmulps` + `vaddps` into the
//! rows' `summs`; then each 32-byte load of quants gives two groups (low and high nibbles) of 4
//! quants × 8 rows, each one `vpmaddubsw` + `vpmaddwd` + `vcvtdq2ps` + `vfmadd` against the
//! token's 4 quants broadcast. The GGUF-row GEMV (`qgemv_avx2`) spends about twice the vector
//! instructions per block: nibble unpacking per row, scale pairs gathered and broadcast.
//!
//! Per output this is exactly ggml's `ggml_vec_dot_q4_1_q8_1` (AVX2): 8 accumulator lanes
//! `acc[j] = fma(d_w·d_a, float(Σ_{i<4} w[4j+i]·a[4j+i]), acc[j])` block after block, summed
//! `((0+4)+(2+6))+((1+5)+(3+7))`, plus `Σ_b m_w·s_a` added block after block. Here lane `r` of
//! vector `acc[j]` is row `r`'s lane `j`, so the sum is the same tree over the 8 vectors.
//!
//! Several tokens (prefill): each panel is unpacked once into the GEMM's L1 panel
//! (`quant_avx2::Panel`, filled from the interleaved bytes with two `vpand`s per vector instead
//! of 8-row transposes) and run over every token by `quant_avx2::gemm_token`.

use std::arch::x86_64::*;

use super::quant_avx2::{gemm_token, loadu, Panel, Q4_1};
use crate::quant::q4_1x8::{PANEL_BLOCK, ROWS};
use crate::quant::QuantizedActs;

/// How far ahead of the panel block being read the GEMV prefetches: decode streams every
/// matrix from DRAM (see `qgemv_avx2::PREFETCH_BYTES`, measured the same way).
const PREFETCH_BYTES: usize = 8192;

/// Bytes of one Q8_1 activation block: f16 `d`, f16 `s`, 32 quants.
const ACT_BLOCK: usize = 36;

#[inline(always)]
unsafe fn broadcast4(p: *const u8) -> __m256i {
    _mm256_set1_epi32(std::ptr::read_unaligned(p.cast::<i32>()))
}

/// Rows `8p..8p+8` for `p` in `panels`, one token: `y[8p + r]`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gemv(w: *const u8, panels: usize, nb: usize, acts: &QuantizedActs, y: *mut f32) {
    let (a, ad, asum) = (acts.blocks().as_ptr(), acts.scales().as_ptr(), acts.sums().as_ptr());
    let low = _mm256_set1_epi8(0x0f);
    let ones = _mm256_set1_epi16(1);
    for p in 0..panels {
        let wp = w.add(p * nb * PANEL_BLOCK);
        let mut acc = [_mm256_setzero_ps(); 8];
        let mut summs = _mm256_setzero_ps();
        for b in 0..nb {
            let pb = wp.add(b * PANEL_BLOCK);
            // a panel block is 2.5 cache lines: fetch the three lines it may touch, far ahead
            // (a prefetch never faults, so past the end is harmless)
            let ahead = pb.wrapping_add(PREFETCH_BYTES);
            for i in 0..3 {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64 * i).cast());
            }
            let dw = _mm256_cvtph_ps(_mm_loadu_si128(pb.cast()));
            let mw = _mm256_cvtph_ps(_mm_loadu_si128(pb.add(16).cast()));
            let dd = _mm256_mul_ps(dw, _mm256_broadcast_ss(&*ad.add(b)));
            summs = _mm256_add_ps(summs, _mm256_mul_ps(mw, _mm256_broadcast_ss(&*asum.add(b))));
            let x = a.add(b * ACT_BLOCK + 4);
            for v in 0..4 {
                let raw = loadu(pb.add(32 + 32 * v));
                let lo = _mm256_and_si256(raw, low);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(raw), low);
                let i = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, broadcast4(x.add(4 * v))), ones);
                acc[v] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(i), acc[v]);
                let i = _mm256_madd_epi16(
                    _mm256_maddubs_epi16(hi, broadcast4(x.add(16 + 4 * v))),
                    ones,
                );
                acc[v + 4] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(i), acc[v + 4]);
            }
        }
        let add = |x, y| _mm256_add_ps(x, y);
        let sum = add(
            add(add(acc[0], acc[4]), add(acc[2], acc[6])),
            add(add(acc[1], acc[5]), add(acc[3], acc[7])),
        );
        _mm256_storeu_ps(y.add(p * ROWS), add(sum, summs));
    }
}

/// Rows `8p..8p+8` for `p` in `panels`, every token: the prefill GEMM.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gemm(
    w: *const u8,
    panels: usize,
    nb: usize,
    acts: &QuantizedActs,
    y: *mut f32,
    y_stride: usize,
) {
    let (a, ad, asum) = (acts.blocks().as_ptr(), acts.scales().as_ptr(), acts.sums().as_ptr());
    let a_row = nb * ACT_BLOCK;
    let mut panel = Panel::new::<Q4_1>(nb);
    for p in 0..panels {
        panel.fill_q4_1x8(w.add(p * nb * PANEL_BLOCK), nb);
        for t in 0..acts.m() {
            let (at, adt, ast) = (a.add(t * a_row), ad.add(t * nb), asum.add(t * nb));
            let v = gemm_token::<Q4_1>(&panel, nb, at, ACT_BLOCK, 4, adt, ast);
            _mm256_storeu_ps(y.add(t * y_stride + p * ROWS), v);
        }
    }
}

/// `y[t·y_stride + r] = Σ w[r]·x[t]` for interleaved Q4_1 weights `w` (`n_rows` rows, whole
/// panels) and Q8_1 activations; see the module docs.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C, and the arguments must satisfy
/// `crate::quant::q4_1x8`'s checks (the safe caller makes both);
/// `k > 0` (the safe caller fills the empty sums of `k = 0` itself).
pub unsafe fn qmatmul(
    weights: &[u8],
    n_rows: usize,
    k: usize,
    acts: &QuantizedActs,
    y: &mut [f32],
    y_stride: usize,
) {
    let (nb, panels) = (k / 32, n_rows / ROWS);
    match acts.m() {
        0 => {}
        1 => gemv(weights.as_ptr(), panels, nb, acts, y.as_mut_ptr()),
        _ => gemm(weights.as_ptr(), panels, nb, acts, y.as_mut_ptr(), y_stride),
    }
}
