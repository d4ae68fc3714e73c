//! AVX2 kernels for the GGUF block formats: integer dots with `vpmaddubsw` (u8 × i8 → i16
//! pairs) and `vpmaddwd` (i16 × i16 → i32 pairs), f16 scales through F16C.
//!
//! Every weight format implements [`Kernel`]: `prep` unpacks one weight block into registers
//! (quants as bytes, scales as f32 or i16 vectors) and `dot` adds that block's dot with one
//! activation block to an f32x8 accumulator (and a scalar one for minimum terms). The
//! driver [`qmatmul`] walks tiles of 4 rows × up to 3 tokens so every prepared weight block
//! serves every token of the tile (the K-quants; the 32-value formats go to the passes of
//! `qgemv_avx2`, which reproduce ggml's AVX2 dot order with vectorized scales).
//!
//! `vpmaddubsw` saturates at ±32767: with u8 weights ≤ 63 and i8 activations in −127..=127
//! no pair can reach it, and for Q4_0/Q5_0/Q8_0 the sign trick (|w| · sign(a, w)) keeps
//! |w| ≤ 127 as long as the activation quantizer never writes −128 (ggml's never does).

#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use crate::quant::{QuantType, QuantizedActs};

#[inline(always)]
unsafe fn f16(p: *const u8) -> f32 {
    let h = u16::from_le_bytes([*p, *p.add(1)]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
}

/// Two consecutive f16 values (e.g. Q4_1's `d`, `m`).
#[inline(always)]
unsafe fn f16x2(p: *const u8) -> (f32, f32) {
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(std::ptr::read_unaligned(p.cast::<i32>())));
    (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
}

#[inline(always)]
pub(super) unsafe fn loadu(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p.cast())
}

#[inline(always)]
pub(super) unsafe fn hsum_ps(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

#[inline(always)]
unsafe fn hsum_epi32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// 16 bytes of packed nibbles → 32 bytes: low nibbles (values 0..15) then high (16..31). The
/// bytes are broadcast into both 128-bit lanes and the high lane shifted by 4: two ALU
/// instructions after the load (`vpsrlw` + `vinserti128` + `vpand` took three).
#[inline(always)]
unsafe fn nibbles(p: *const u8) -> __m256i {
    let both = _mm256_broadcastsi128_si256(_mm_loadu_si128(p.cast()));
    let shifted = _mm256_srlv_epi64(both, _mm256_setr_epi64x(0, 0, 4, 4));
    _mm256_and_si256(shifted, _mm256_set1_epi8(0x0f))
}

/// Bit j of `bits` → byte j = 0xff if set, 0 if clear.
#[inline(always)]
unsafe fn bits_to_bytes(bits: u32) -> __m256i {
    let shuffle =
        _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0);
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(bits as i32), shuffle);
    let bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe_u64 as i64));
    _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1))
}

/// Σ of u8 × i8 products, 4 adjacent pairs per i32 lane.
#[inline(always)]
unsafe fn dot_u8_i8(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// Shift every 16-bit lane right by a run-time count.
#[inline(always)]
unsafe fn srl16(v: __m256i, n: u32) -> __m256i {
    _mm256_srl_epi16(v, _mm_cvtsi32_si128(n as i32))
}

/// 16 sub-block scales (bytes, i8 if `signed`) → i16 vector with the even-numbered scales in
/// the low 128-bit lane and the odd-numbered ones in the high lane (see [`scale_pair`]).
#[inline(always)]
unsafe fn even_odd_scales(raw: __m128i, signed: bool) -> __m256i {
    let split =
        _mm_shuffle_epi8(raw, _mm_set_epi8(15, 13, 11, 9, 7, 5, 3, 1, 14, 12, 10, 8, 6, 4, 2, 0));
    if signed {
        _mm256_cvtepi8_epi16(split)
    } else {
        _mm256_cvtepu8_epi16(split)
    }
}

/// Scale 2k broadcast over the low lane and scale 2k+1 over the high lane (a 32-byte chunk
/// covers two 16-value sub-blocks), from [`even_odd_scales`].
#[inline(always)]
unsafe fn scale_pair(even_odd: __m256i, k: usize) -> __m256i {
    let lo = (2 * k) as i16;
    _mm256_shuffle_epi8(even_odd, _mm256_set1_epi16(((lo + 1) << 8) | lo))
}

/// One weight format's AVX2 block kernel.
pub(crate) trait Kernel {
    const WTYPE: QuantType;
    /// Whether `dot` reads the activation block's Q8_1 sum `s`.
    const USES_SUM: bool = false;
    type Prep: Copy;
    /// Unpacks the weight block at `w`.
    unsafe fn prep(w: *const u8) -> Self::Prep;
    /// Adds the dot of a prepared weight block and the activation block at `a` (scale `ad`,
    /// Q8_1 sum `asum`) to `acc` (and minimum terms to `accm`).
    unsafe fn dot(
        p: &Self::Prep,
        a: *const u8,
        ad: f32,
        asum: f32,
        acc: &mut __m256,
        accm: &mut f32,
    );
}

pub(super) struct Q4_0;
impl Kernel for Q4_0 {
    const WTYPE: QuantType = QuantType::Q4_0;
    type Prep = (__m256i, __m256i, f32);
    #[inline(always)]
    unsafe fn prep(w: *const u8) -> Self::Prep {
        let q = _mm256_sub_epi8(nibbles(w.add(2)), _mm256_set1_epi8(8));
        (_mm256_sign_epi8(q, q), q, f16(w))
    }
    #[inline(always)]
    unsafe fn dot(p: &Self::Prep, a: *const u8, ad: f32, _: f32, acc: &mut __m256, _: &mut f32) {
        let s = _mm256_sign_epi8(loadu(a.add(2)), p.1);
        let sum = _mm256_cvtepi32_ps(dot_u8_i8(p.0, s));
        *acc = _mm256_fmadd_ps(_mm256_set1_ps(p.2 * ad), sum, *acc);
    }
}

pub(super) struct Q4_1;
impl Kernel for Q4_1 {
    const WTYPE: QuantType = QuantType::Q4_1;
    const USES_SUM: bool = true;
    type Prep = (__m256i, f32, f32);
    #[inline(always)]
    unsafe fn prep(w: *const u8) -> Self::Prep {
        let (d, m) = f16x2(w);
        (nibbles(w.add(4)), d, m)
    }
    #[inline(always)]
    unsafe fn dot(
        p: &Self::Prep,
        a: *const u8,
        ad: f32,
        asum: f32,
        acc: &mut __m256,
        accm: &mut f32,
    ) {
        let sum = _mm256_cvtepi32_ps(dot_u8_i8(p.0, loadu(a.add(4))));
        *acc = _mm256_fmadd_ps(_mm256_set1_ps(p.1 * ad), sum, *acc);
        *accm += p.2 * asum;
    }
}

pub(super) struct Q5_0;
impl Kernel for Q5_0 {
    const WTYPE: QuantType = QuantType::Q5_0;
    type Prep = (__m256i, __m256i, f32);
    #[inline(always)]
    unsafe fn prep(w: *const u8) -> Self::Prep {
        let qh = std::ptr::read_unaligned(w.add(2).cast::<u32>());
        // a clear 5th bit makes the byte nibble | 0xf0 = nibble − 16 as i8
        let high = _mm256_andnot_si256(bits_to_bytes(qh), _mm256_set1_epi8(0xf0u8 as i8));
        let q = _mm256_or_si256(nibbles(w.add(6)), high);
        (_mm256_sign_epi8(q, q), q, f16(w))
    }
    #[inline(always)]
    unsafe fn dot(p: &Self::Prep, a: *const u8, ad: f32, _: f32, acc: &mut __m256, _: &mut f32) {
        let s = _mm256_sign_epi8(loadu(a.add(2)), p.1);
        let sum = _mm256_cvtepi32_ps(dot_u8_i8(p.0, s));
        *acc = _mm256_fmadd_ps(_mm256_set1_ps(p.2 * ad), sum, *acc);
    }
}

pub(super) struct Q5_1;
impl Kernel for Q5_1 {
    const WTYPE: QuantType = QuantType::Q5_1;
    const USES_SUM: bool = true;
    type Prep = (__m256i, f32, f32);
    #[inline(always)]
    unsafe fn prep(w: *const u8) -> Self::Prep {
        let (d, m) = f16x2(w);
        let qh = std::ptr::read_unaligned(w.add(4).cast::<u32>());
        let high = _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10));
        (_mm256_or_si256(nibbles(w.add(8)), high), d, m)
    }
    #[inline(always)]
    unsafe fn dot(
        p: &Self::Prep,
        a: *const u8,
        ad: f32,
        asum: f32,
        acc: &mut __m256,
        accm: &mut f32,
    ) {
        let sum = _mm256_cvtepi32_ps(dot_u8_i8(p.0, loadu(a.add(4))));
        *acc = _mm256_fmadd_ps(_mm256_set1_ps(p.1 * ad), sum, *acc);
        *accm += p.2 * asum;
    }
}

pub(super) struct Q8_0;
impl Kernel for Q8_0 {
    const WTYPE: QuantType = QuantType::Q8_0;
    type Prep = (__m256i, __m256i, f32);
    #[inline(always)]
    unsafe fn prep(w: *const u8) -> Self::Prep {
        let q = loadu(w.add(2));
        (_mm256_sign_epi8(q, q), q, f16(w))
    }
    #[inline(always)]
    unsafe fn dot(p: &Self::Prep, a: *const u8, ad: f32, _: f32, acc: &mut __m256, _: &mut f32) {
        let s = _mm256_sign_epi8(loadu(a.add(2)), p.1);
        let sum = _mm256_cvtepi32_ps(dot_u8_i8(p.0, s));
        *acc = _mm256_fmadd_ps(_mm256_set1_ps(p.2 * ad), sum, *acc);
    }
}

/// Q8_K activation block offsets: d f32 at 0, qs at 4, bsums at 260.
const A_QS: usize = 4;
const A_BSUMS: usize = 260;

/// Q2_K: 4-bit scales/mins per 16 values; `scales` at 0, `qs` at 16, `d` 80, `dmin` 82.
struct Q2K;
#[derive(Clone, Copy)]
struct PrepQ2K {
    qs: *const u8,
    scales: __m256i,
    mins: __m256i,
    d: f32,
    dmin: f32,
}
impl Kernel for Q2K {
    const WTYPE: QuantType = QuantType::Q2K;
    type Prep = PrepQ2K;
    #[inline(always)]
    unsafe fn prep(w: *const u8) -> PrepQ2K {
        let raw = _mm_loadu_si128(w.cast());
        let low4 = _mm_set1_epi8(0x0f);
        let scales = even_odd_scales(_mm_and_si128(raw, low4), false);
        let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), low4));
        let (d, dmin) = f16x2(w.add(80));
        PrepQ2K { qs: w.add(16), scales, mins, d, dmin }
    }
    #[inline(always)]
    unsafe fn dot(p: &PrepQ2K, a: *const u8, ad: f32, _: f32, acc: &mut __m256, accm: &mut f32) {
        let mut sumi = _mm256_setzero_si256();
        for h in 0..2 {
            let q2 = loadu(p.qs.add(32 * h));
            for g in 0..4 {
                let q = _mm256_and_si256(srl16(q2, 2 * g as u32), _mm256_set1_epi8(3));
                let y = loadu(a.add(A_QS + 128 * h + 32 * g));
                let sc = scale_pair(p.scales, 4 * h + g);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), sc));
            }
        }
        let msum = hsum_epi32(_mm256_madd_epi16(loadu(a.add(A_BSUMS)), p.mins));
        *acc = _mm256_fmadd_ps(_mm256_set1_ps(p.d * ad), _mm256_cvtepi32_ps(sumi), *acc);
        *accm -= p.dmin * ad * msum as f32;
    }
}

/// Q3_K: `hmask` at 0, `qs` at 32, `scales` at 96, `d` at 108.
struct Q3K;
#[derive(Clone, Copy)]
struct PrepQ3K {
    w: *const u8,
    scales: __m256i,
    d: f32,
}
impl Kernel for Q3K {
    const WTYPE: QuantType = QuantType::Q3K;
    type Prep = PrepQ3K;
    #[inline(always)]
    unsafe fn prep(w: *const u8) -> PrepQ3K {
        // ggml's kmask unpacking of the 16 six-bit scales, four at a time
        let s = w.add(96);
        let word = |i: usize| std::ptr::read_unaligned(s.add(4 * i).cast::<u32>());
        let (a0, a1, t) = (word(0), word(1), word(2));
        const M1: u32 = 0x0303_0303;
        const M2: u32 = 0x0f0f_0f0f;
        let raw = _mm_set_epi32(
            (((a1 >> 4) & M2) | (((t >> 6) & M1) << 4)) as i32,
            (((a0 >> 4) & M2) | (((t >> 4) & M1) << 4)) as i32,
            ((a1 & M2) | (((t >> 2) & M1) << 4)) as i32,
            ((a0 & M2) | ((t & M1) << 4)) as i32,
        );
        let scales = _mm256_sub_epi16(even_odd_scales(raw, false), _mm256_set1_epi16(32));
        PrepQ3K { w, scales, d: f16(w.add(108)) }
    }
    #[inline(always)]
    unsafe fn dot(p: &PrepQ3K, a: *const u8, ad: f32, _: f32, acc: &mut __m256, _: &mut f32) {
        let hm = loadu(p.w);
        let mut sumi = _mm256_setzero_si256();
        for h in 0..2 {
            let q2 = loadu(p.w.add(32 + 32 * h));
            for g in 0..4 {
                let low = _mm256_and_si256(srl16(q2, 2 * g as u32), _mm256_set1_epi8(3));
                // 4 where the high bit is clear: q = low − 4·(1 − high)
                let hbit = srl16(hm, (4 * h + g) as u32);
                let sub = _mm256_slli_epi16(_mm256_andnot_si256(hbit, _mm256_set1_epi8(1)), 2);
                let y = loadu(a.add(A_QS + 128 * h + 32 * g));
                let prod =
                    _mm256_sub_epi16(_mm256_maddubs_epi16(low, y), _mm256_maddubs_epi16(sub, y));
                let sc = scale_pair(p.scales, 4 * h + g);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(prod, sc));
            }
        }
        *acc = _mm256_fmadd_ps(_mm256_set1_ps(p.d * ad), _mm256_cvtepi32_ps(sumi), *acc);
    }
}

/// ggml's kmask unpacking of Q4_K/Q5_K's 12 scale bytes: bytes 0..8 the scales, 8..16 the
/// mins.
#[inline(always)]
unsafe fn scales_mins_k4(s: *const u8) -> __m128i {
    let word = |i: usize| std::ptr::read_unaligned(s.add(4 * i).cast::<u32>());
    const M1: u32 = 0x3f3f_3f3f;
    const M2: u32 = 0x0f0f_0f0f;
    const M3: u32 = 0x0303_0303;
    let (u0, u1, u2) = (word(0), word(1), word(2));
    _mm_set_epi32(
        (((u2 >> 4) & M2) | (((u1 >> 6) & M3) << 4)) as i32,
        (u1 & M1) as i32,
        ((u2 & M2) | (((u0 >> 6) & M3) << 4)) as i32,
        (u0 & M1) as i32,
    )
}

#[derive(Clone, Copy)]
struct PrepQ45K {
    w: *const u8,
    /// the 8 scales as i16, in both 128-bit lanes
    scales: __m256i,
    /// the 8 mins as i16
    mins: __m128i,
    d: f32,
    dmin: f32,
}

/// Sub-block `j`'s scale broadcast over all 16 i16 lanes.
#[inline(always)]
unsafe fn scale_k4(scales: __m256i, j: usize) -> __m256i {
    let lo = (2 * j) as i16;
    _mm256_shuffle_epi8(scales, _mm256_set1_epi16(((lo + 1) << 8) | lo))
}

/// `m_j · (bsums[2j] + bsums[2j+1])` for the 8 Q4_K/Q5_K mins, summed pairwise into 4 i32
/// lanes (zero-extended to 8) so the caller folds them into its f32x8 accumulator without a
/// horizontal sum.
#[inline(always)]
unsafe fn min_sums_k4(mins: __m128i, a: *const u8) -> __m256 {
    let bs = loadu(a.add(A_BSUMS));
    let pairs = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
    _mm256_cvtepi32_ps(_mm256_zextsi128_si256(_mm_madd_epi16(mins, pairs)))
}

#[inline(always)]
unsafe fn prep_q45k(w: *const u8) -> PrepQ45K {
    let sm = scales_mins_k4(w.add(4));
    let scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
    let mins = _mm_cvtepu8_epi16(_mm_unpackhi_epi64(sm, sm));
    let (d, dmin) = f16x2(w);
    PrepQ45K { w, scales, mins, d, dmin }
}

/// Q4_K: `d`, `dmin` at 0, `scales` at 4, `qs` at 16.
struct Q4K;
impl Kernel for Q4K {
    const WTYPE: QuantType = QuantType::Q4K;
    type Prep = PrepQ45K;
    #[inline(always)]
    unsafe fn prep(w: *const u8) -> PrepQ45K {
        prep_q45k(w)
    }
    #[inline(always)]
    unsafe fn dot(p: &PrepQ45K, a: *const u8, ad: f32, _: f32, acc: &mut __m256, _: &mut f32) {
        let mut sumi = _mm256_setzero_si256();
        let mask = _mm256_set1_epi8(0x0f);
        for c in 0..4 {
            let q4 = loadu(p.w.add(16 + 32 * c));
            let lo = _mm256_and_si256(q4, mask);
            let hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), mask);
            let plo = _mm256_maddubs_epi16(lo, loadu(a.add(A_QS + 64 * c)));
            let phi = _mm256_maddubs_epi16(hi, loadu(a.add(A_QS + 64 * c + 32)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(plo, scale_k4(p.scales, 2 * c)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(phi, scale_k4(p.scales, 2 * c + 1)));
        }
        *acc = _mm256_fmadd_ps(_mm256_set1_ps(p.d * ad), _mm256_cvtepi32_ps(sumi), *acc);
        *acc = _mm256_fmadd_ps(_mm256_set1_ps(-p.dmin * ad), min_sums_k4(p.mins, a), *acc);
    }
}

/// Q5_K: `d`, `dmin` at 0, `scales` at 4, `qh` at 16, `qs` at 48.
struct Q5K;
impl Kernel for Q5K {
    const WTYPE: QuantType = QuantType::Q5K;
    type Prep = PrepQ45K;
    #[inline(always)]
    unsafe fn prep(w: *const u8) -> PrepQ45K {
        prep_q45k(w)
    }
    #[inline(always)]
    unsafe fn dot(p: &PrepQ45K, a: *const u8, ad: f32, _: f32, acc: &mut __m256, _: &mut f32) {
        let mut sumi = _mm256_setzero_si256();
        let mask = _mm256_set1_epi8(0x0f);
        let one = _mm256_set1_epi8(1);
        let mut hb = loadu(p.w.add(16));
        for c in 0..4 {
            let q4 = loadu(p.w.add(48 + 32 * c));
            let lo = _mm256_and_si256(q4, mask);
            let hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), mask);
            let lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(hb, one), 4));
            let hi = _mm256_or_si256(
                hi,
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 1), one), 4),
            );
            hb = _mm256_srli_epi16(hb, 2);
            let plo = _mm256_maddubs_epi16(lo, loadu(a.add(A_QS + 64 * c)));
            let phi = _mm256_maddubs_epi16(hi, loadu(a.add(A_QS + 64 * c + 32)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(plo, scale_k4(p.scales, 2 * c)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(phi, scale_k4(p.scales, 2 * c + 1)));
        }
        *acc = _mm256_fmadd_ps(_mm256_set1_ps(p.d * ad), _mm256_cvtepi32_ps(sumi), *acc);
        *acc = _mm256_fmadd_ps(_mm256_set1_ps(-p.dmin * ad), min_sums_k4(p.mins, a), *acc);
    }
}

/// Q6_K: `ql` at 0, `qh` at 128, `scales` at 192, `d` at 208.
struct Q6K;
#[derive(Clone, Copy)]
struct PrepQ6K {
    w: *const u8,
    pairs: __m256i,
    scales: __m256i,
    d: f32,
}
impl Kernel for Q6K {
    const WTYPE: QuantType = QuantType::Q6K;
    type Prep = PrepQ6K;
    #[inline(always)]
    unsafe fn prep(w: *const u8) -> PrepQ6K {
        let raw = _mm_loadu_si128(w.add(192).cast());
        PrepQ6K {
            w,
            pairs: even_odd_scales(raw, true),
            scales: _mm256_cvtepi8_epi16(raw),
            d: f16(w.add(208)),
        }
    }
    #[inline(always)]
    unsafe fn dot(p: &PrepQ6K, a: *const u8, ad: f32, _: f32, acc: &mut __m256, _: &mut f32) {
        let mut sumi = _mm256_setzero_si256();
        let mask = _mm256_set1_epi8(0x0f);
        for h in 0..2 {
            let qh = loadu(p.w.add(128 + 32 * h));
            let ql = [loadu(p.w.add(64 * h)), loadu(p.w.add(64 * h + 32))];
            for g in 0..4 {
                let low = if g < 2 {
                    _mm256_and_si256(ql[g % 2], mask)
                } else {
                    _mm256_and_si256(_mm256_srli_epi16(ql[g % 2], 4), mask)
                };
                let high = _mm256_and_si256(srl16(qh, 2 * g as u32), _mm256_set1_epi8(3));
                let q = _mm256_or_si256(low, _mm256_slli_epi16(high, 4));
                let y = loadu(a.add(A_QS + 128 * h + 32 * g));
                let sc = scale_pair(p.pairs, 4 * h + g);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), sc));
            }
        }
        // the −32 offset, Σ_j sc_j · 32 · bsums_j, removed in integers before converting
        let offset = _mm256_madd_epi16(loadu(a.add(A_BSUMS)), p.scales);
        let sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(offset, 5));
        *acc = _mm256_fmadd_ps(_mm256_set1_ps(p.d * ad), _mm256_cvtepi32_ps(sumi), *acc);
    }
}

/// How far ahead (in rows) [`tile`] prefetches weights when it serves a single token
/// (prefetching past the end of the weights is harmless: a prefetch never faults).
const PREFETCH_ROWS: usize = 16;

/// One tile: rows `r0..r0+R` × tokens `t0..t0+T`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<K: Kernel, const R: usize, const T: usize>(
    w: *const u8,
    row_bytes: usize,
    acts: &QuantizedActs,
    nb: usize,
    y: *mut f32,
    y_stride: usize,
    r0: usize,
    t0: usize,
) {
    let wb = K::WTYPE.block_bytes();
    let ab = acts.ty().block_bytes();
    let a = acts.blocks().as_ptr();
    let a_row = nb * ab;
    let ad = acts.scales().as_ptr();
    let asum = acts.sums();
    debug_assert!(!K::USES_SUM || asum.len() == acts.scales().len());
    let mut acc = [[_mm256_setzero_ps(); T]; R];
    let mut accm = [[0.0f32; T]; R];
    for b in 0..nb {
        // Software prefetch of the same block of the rows PREFETCH_ROWS ahead: the tile walks
        // R rows at once, which the hardware prefetchers follow less well than one stream.
        if T == 1 {
            let ahead = w.wrapping_add((r0 + PREFETCH_ROWS) * row_bytes + b * wb);
            for i in 0..R {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(i * row_bytes).cast());
            }
        }
        let preps: [K::Prep; R] =
            std::array::from_fn(|i| K::prep(w.add((r0 + i) * row_bytes + b * wb)));
        for t in 0..T {
            let idx = (t0 + t) * nb + b;
            let ap = a.add((t0 + t) * a_row + b * ab);
            let (d, s) = (*ad.add(idx), if K::USES_SUM { *asum.as_ptr().add(idx) } else { 0.0 });
            for i in 0..R {
                K::dot(&preps[i], ap, d, s, &mut acc[i][t], &mut accm[i][t]);
            }
        }
    }
    for i in 0..R {
        for t in 0..T {
            *y.add((t0 + t) * y_stride + r0 + i) = hsum_ps(acc[i][t]) + accm[i][t];
        }
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn rows<K: Kernel, const R: usize>(
    w: *const u8,
    row_bytes: usize,
    acts: &QuantizedActs,
    nb: usize,
    y: *mut f32,
    y_stride: usize,
    r0: usize,
) {
    let m = acts.m();
    let mut t = 0;
    while t + 3 <= m {
        tile::<K, R, 3>(w, row_bytes, acts, nb, y, y_stride, r0, t);
        t += 3;
    }
    match m - t {
        2 => tile::<K, R, 2>(w, row_bytes, acts, nb, y, y_stride, r0, t),
        1 => tile::<K, R, 1>(w, row_bytes, acts, nb, y, y_stride, r0, t),
        _ => {}
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn run<K: Kernel>(
    weights: &[u8],
    n_rows: usize,
    k: usize,
    acts: &QuantizedActs,
    y: &mut [f32],
    y_stride: usize,
) {
    let nb = k / K::WTYPE.block_elems();
    let row_bytes = nb * K::WTYPE.block_bytes();
    let (w, yp) = (weights.as_ptr(), y.as_mut_ptr());
    let mut r = 0;
    while r + 4 <= n_rows {
        rows::<K, 4>(w, row_bytes, acts, nb, yp, y_stride, r);
        r += 4;
    }
    while r < n_rows {
        rows::<K, 1>(w, row_bytes, acts, nb, yp, y_stride, r);
        r += 1;
    }
}

/// `y[t·y_stride + r] = Σ w[r]·x[t]` for every row and token.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C, and the arguments must satisfy
/// `crate::quant::matmul::check_qmatmul` (the caller checks both).
pub unsafe fn qmatmul(
    weights: &[u8],
    wtype: QuantType,
    n_rows: usize,
    k: usize,
    acts: &QuantizedActs,
    y: &mut [f32],
    y_stride: usize,
) {
    if super::qgemv_avx2::qgemv32(weights, wtype, n_rows, k, acts, y, y_stride).is_some() {
        return;
    }
    match wtype {
        QuantType::Q2K => run::<Q2K>(weights, n_rows, k, acts, y, y_stride),
        QuantType::Q3K => run::<Q3K>(weights, n_rows, k, acts, y, y_stride),
        QuantType::Q4K => run::<Q4K>(weights, n_rows, k, acts, y, y_stride),
        QuantType::Q5K => run::<Q5K>(weights, n_rows, k, acts, y, y_stride),
        QuantType::Q6K => run::<Q6K>(weights, n_rows, k, acts, y, y_stride),
        other => panic!("qmatmul avx2: {other} has no quantized dot product"),
    }
}

// ------------------------------------------------------------------ prefill GEMM (m > 1)

/// Formats with 32-value blocks whose quants unpack to one byte vector: signed formats
/// (Q4_0, Q5_0, Q8_0: i8 quants, dotted with the sign trick) and unsigned ones with a minimum
/// (Q4_1, Q5_1: u8 quants, plus `m_w · s_a` per block).
pub(crate) trait Gemm32: Kernel {
    const SIGNED: bool;
    /// The block's quants (i8 if `SIGNED`, else u8), scale `d` and minimum `m` (0 if signed).
    unsafe fn unpack(w: *const u8) -> (__m256i, f32, f32);
}

macro_rules! gemm32_signed {
    ($($t:ty),*) => {$(
        impl Gemm32 for $t {
            const SIGNED: bool = true;
            #[inline(always)]
            unsafe fn unpack(w: *const u8) -> (__m256i, f32, f32) {
                let p = <$t as Kernel>::prep(w);
                (p.1, p.2, 0.0)
            }
        }
    )*};
}
gemm32_signed!(Q4_0, Q5_0, Q8_0);

macro_rules! gemm32_unsigned {
    ($($t:ty),*) => {$(
        impl Gemm32 for $t {
            const SIGNED: bool = false;
            #[inline(always)]
            unsafe fn unpack(w: *const u8) -> (__m256i, f32, f32) {
                let p = <$t as Kernel>::prep(w);
                (p.0, p.1, p.2)
            }
        }
    )*};
}
gemm32_unsigned!(Q4_1, Q5_1);

/// Weight rows per panel of the GEMM: one per f32 lane, so a panel's 8 outputs for one token
/// are one vector.
pub(super) const GEMM_R: usize = 8;

/// One panel of [`GEMM_R`] weight rows, unpacked once per call into an L1-resident scratch
/// and transposed so that a vector holds the same 4 quants of all 8 rows:
/// ```text
/// q[b·8 + j]  bytes 4r..4r+4 = row r's elements 4j..4j+3 of block b   (u8, or i8 if SIGNED)
/// qabs[b·8+j] the same as |q| (signed formats: the `maddubs` sign trick)
/// d[b], m[b]  lane r = row r's scale and minimum of block b
/// ```
/// Rows past the end of the matrix are zero (their lanes are computed, never stored).
pub(super) struct Panel {
    q: Vec<__m256i>,
    qabs: Vec<__m256i>,
    d: Vec<__m256>,
    m: Vec<__m256>,
}

/// `out[j]` lane `r` = `v[r]` lane `j` (32-bit lanes).
#[inline(always)]
unsafe fn transpose_8x8(v: [__m256i; 8]) -> [__m256i; 8] {
    // pairs of rows interleaved, then quadruples, then the 128-bit halves swapped into place
    let lo = |a, b| _mm256_unpacklo_epi32(a, b);
    let hi = |a, b| _mm256_unpackhi_epi32(a, b);
    let t = [
        lo(v[0], v[1]),
        hi(v[0], v[1]),
        lo(v[2], v[3]),
        hi(v[2], v[3]),
        lo(v[4], v[5]),
        hi(v[4], v[5]),
        lo(v[6], v[7]),
        hi(v[6], v[7]),
    ];
    // u[i] (i < 4) holds rows 0..4 of columns i and i + 4, u[4 + i] rows 4..8 of the same
    let u = [
        _mm256_unpacklo_epi64(t[0], t[2]),
        _mm256_unpackhi_epi64(t[0], t[2]),
        _mm256_unpacklo_epi64(t[1], t[3]),
        _mm256_unpackhi_epi64(t[1], t[3]),
        _mm256_unpacklo_epi64(t[4], t[6]),
        _mm256_unpackhi_epi64(t[4], t[6]),
        _mm256_unpacklo_epi64(t[5], t[7]),
        _mm256_unpackhi_epi64(t[5], t[7]),
    ];
    std::array::from_fn(|j| {
        if j < 4 {
            _mm256_permute2x128_si256::<0x20>(u[j], u[4 + j])
        } else {
            _mm256_permute2x128_si256::<0x31>(u[j - 4], u[j])
        }
    })
}

impl Panel {
    pub(super) fn new<K: Gemm32>(nb: usize) -> Panel {
        // SAFETY: all-zero bits are a valid __m256i and a valid __m256 (eight 0.0).
        let (zi, zf): (__m256i, __m256) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
        Panel {
            q: vec![zi; nb * 8],
            qabs: if K::SIGNED { vec![zi; nb * 8] } else { Vec::new() },
            d: vec![zf; nb],
            m: if K::SIGNED { Vec::new() } else { vec![zf; nb] },
        }
    }

    /// Unpacks rows `0..rows` (≤ 8) of `w` (rows of `row_bytes`, `nb` blocks each).
    #[inline(always)]
    unsafe fn fill<K: Gemm32>(&mut self, w: *const u8, row_bytes: usize, rows: usize, nb: usize) {
        let wb = K::WTYPE.block_bytes();
        for b in 0..nb {
            let mut q = [_mm256_setzero_si256(); 8];
            let (mut d, mut m) = ([0.0f32; 8], [0.0f32; 8]);
            for r in 0..rows {
                (q[r], d[r], m[r]) = K::unpack(w.add(r * row_bytes + b * wb));
            }
            let qt = transpose_8x8(q);
            for j in 0..8 {
                *self.q.get_unchecked_mut(b * 8 + j) = qt[j];
                if K::SIGNED {
                    *self.qabs.get_unchecked_mut(b * 8 + j) = _mm256_sign_epi8(qt[j], qt[j]);
                }
            }
            *self.d.get_unchecked_mut(b) = _mm256_loadu_ps(d.as_ptr());
            if !K::SIGNED {
                *self.m.get_unchecked_mut(b) = _mm256_loadu_ps(m.as_ptr());
            }
        }
    }
}

impl Panel {
    /// Rows of one panel of an interleaved Q4_1 matrix (see [`crate::quant::q4_1x8`]): the
    /// same contents [`Panel::fill`] makes from the 8 GGUF rows, without the transposes
    /// (vector `v`'s low nibbles are group `v`, its high nibbles group `v + 4`).
    #[inline(always)]
    pub(super) unsafe fn fill_q4_1x8(&mut self, w: *const u8, nb: usize) {
        let low = _mm256_set1_epi8(0x0f);
        for b in 0..nb {
            let pb = w.add(b * crate::quant::q4_1x8::PANEL_BLOCK);
            *self.d.get_unchecked_mut(b) = _mm256_cvtph_ps(_mm_loadu_si128(pb.cast()));
            *self.m.get_unchecked_mut(b) = _mm256_cvtph_ps(_mm_loadu_si128(pb.add(16).cast()));
            for v in 0..4 {
                let raw = loadu(pb.add(32 + 32 * v));
                *self.q.get_unchecked_mut(b * 8 + v) = _mm256_and_si256(raw, low);
                *self.q.get_unchecked_mut(b * 8 + v + 4) =
                    _mm256_and_si256(_mm256_srli_epi16::<4>(raw), low);
            }
        }
    }
}

/// The panel's 8 rows dotted with one token (`a`: its blocks, `ad`/`asum`: its blocks' scales
/// and Q8_1 sums), lane r = row r. Per output this is exactly ggml's AVX2 order: lane j of
/// block b's accumulator gets `fma(d_w·d_a, Σ_{i<4} w[4j+i]·a[4j+i], ·)`, the 8 lanes are
/// summed `((0+4)+(2+6))+((1+5)+(3+7))`, then `Σ_b m_w·s_a` (summed in block order) is added;
/// here the 8 lanes of one output live in the 8 accumulators `acc[j]`, one output per lane.
#[inline(always)]
pub(super) unsafe fn gemm_token<K: Gemm32>(
    p: &Panel,
    nb: usize,
    a: *const u8,
    ab: usize,
    a_qs: usize,
    ad: *const f32,
    asum: *const f32,
) -> __m256 {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); 8];
    let mut summs = _mm256_setzero_ps();
    let (q, qabs) = (p.q.as_ptr(), p.qabs.as_ptr());
    for b in 0..nb {
        let dd = _mm256_mul_ps(*p.d.get_unchecked(b), _mm256_broadcast_ss(&*ad.add(b)));
        let x = a.add(b * ab + a_qs);
        for j in 0..8 {
            // the token's 4 quants of group j, in every lane
            let s = _mm256_set1_epi32(std::ptr::read_unaligned(x.add(4 * j).cast::<i32>()));
            let w = _mm256_load_si256(q.add(b * 8 + j));
            let (u, s) = if K::SIGNED {
                (_mm256_load_si256(qabs.add(b * 8 + j)), _mm256_sign_epi8(s, w))
            } else {
                (w, s)
            };
            let i = _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), ones);
            acc[j] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(i), acc[j]);
        }
        if !K::SIGNED {
            let ms = _mm256_mul_ps(*p.m.get_unchecked(b), _mm256_broadcast_ss(&*asum.add(b)));
            summs = _mm256_add_ps(summs, ms);
        }
    }
    let add = |x, y| _mm256_add_ps(x, y);
    let sum = add(
        add(add(acc[0], acc[4]), add(acc[2], acc[6])),
        add(add(acc[1], acc[5]), add(acc[3], acc[7])),
    );
    if K::SIGNED {
        sum
    } else {
        add(sum, summs)
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gemm<K: Gemm32>(
    weights: &[u8],
    n_rows: usize,
    k: usize,
    acts: &QuantizedActs,
    y: &mut [f32],
    y_stride: usize,
) {
    let nb = k / 32;
    let row_bytes = nb * K::WTYPE.block_bytes();
    let ab = acts.ty().block_bytes();
    let a_qs = if K::SIGNED { 2 } else { 4 };
    let (a, ad, asum) = (acts.blocks().as_ptr(), acts.scales().as_ptr(), acts.sums().as_ptr());
    let a_row = nb * ab;
    let yp = y.as_mut_ptr();
    let mut p = Panel::new::<K>(nb);
    let mut r0 = 0;
    while r0 < n_rows {
        let rows = GEMM_R.min(n_rows - r0);
        p.fill::<K>(weights.as_ptr().add(r0 * row_bytes), row_bytes, rows, nb);
        for t in 0..acts.m() {
            let sums = if K::SIGNED { asum } else { asum.add(t * nb) };
            let v = gemm_token::<K>(&p, nb, a.add(t * a_row), ab, a_qs, ad.add(t * nb), sums);
            let out = yp.add(t * y_stride + r0);
            if rows == GEMM_R {
                _mm256_storeu_ps(out, v);
            } else {
                let mut lanes = [0.0f32; GEMM_R];
                _mm256_storeu_ps(lanes.as_mut_ptr(), v);
                std::ptr::copy_nonoverlapping(lanes.as_ptr(), out, rows);
            }
        }
        r0 += GEMM_R;
    }
}

/// The prefill GEMM for `m > 1`: `y[t·y_stride + r] = Σ w[r]·x[t]` like [`qmatmul`], for the
/// 32-value formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0; other formats go to [`qmatmul`]), every
/// output bit-identical to ggml's AVX2 `ggml_vec_dot_*` of its row and token. Each panel of
/// 8 weight rows is unpacked once into an L1 scratch, transposed so one vector holds 4 quants
/// of all 8 rows; then for every token one `maddubs`/`madd`/`cvt`/`fma` per 4-quant group
/// serves the 8 rows (the token's 4 quants broadcast), and the 8 outputs are one store.
///
/// # Safety
/// As [`qmatmul`].
pub unsafe fn qgemm(
    weights: &[u8],
    wtype: QuantType,
    n_rows: usize,
    k: usize,
    acts: &QuantizedActs,
    y: &mut [f32],
    y_stride: usize,
) {
    if k == 0 || n_rows == 0 || acts.m() == 0 {
        return qmatmul(weights, wtype, n_rows, k, acts, y, y_stride);
    }
    match wtype {
        QuantType::Q4_0 => gemm::<Q4_0>(weights, n_rows, k, acts, y, y_stride),
        QuantType::Q4_1 => gemm::<Q4_1>(weights, n_rows, k, acts, y, y_stride),
        QuantType::Q5_0 => gemm::<Q5_0>(weights, n_rows, k, acts, y, y_stride),
        QuantType::Q5_1 => gemm::<Q5_1>(weights, n_rows, k, acts, y, y_stride),
        QuantType::Q8_0 => gemm::<Q8_0>(weights, n_rows, k, acts, y, y_stride),
        _ => qmatmul(weights, wtype, n_rows, k, acts, y, y_stride),
    }
}

/// F16 → f32 with F16C, 8 values per `vcvtph2ps`, the tail one at a time.
///
/// # Safety
/// The CPU must have F16C and AVX; `dst.len() == src.len() / 2`.
#[target_feature(enable = "avx2,f16c")]
pub unsafe fn f16_to_f32_row(src: &[u8], dst: &mut [f32]) {
    let n = dst.len();
    let body = n / 8 * 8;
    for i in (0..body).step_by(8) {
        let h = _mm_loadu_si128(src.as_ptr().add(2 * i).cast());
        _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
    }
    for i in body..n {
        dst[i] = f16(src.as_ptr().add(2 * i));
    }
}

/// Reads an activation block's scale and (Q8_1) sum from its bytes.
#[inline(always)]
unsafe fn act_scale(t: QuantType, a: *const u8) -> (f32, f32) {
    match t {
        QuantType::Q8K => (std::ptr::read_unaligned(a.cast::<f32>()), 0.0),
        QuantType::Q8_1 => f16x2(a),
        _ => (f16(a), 0.0),
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot1<K: Kernel>(w: &[u8], a: &[u8]) -> f32 {
    let act = K::WTYPE.activation_type().expect("a weight type");
    let (wb, ab) = (K::WTYPE.block_bytes(), act.block_bytes());
    let mut acc = _mm256_setzero_ps();
    let mut accm = 0.0f32;
    for b in 0..w.len() / wb {
        let p = K::prep(w.as_ptr().add(b * wb));
        let ap = a.as_ptr().add(b * ab);
        let (d, s) = act_scale(act, ap);
        K::dot(&p, ap, d, s, &mut acc, &mut accm);
    }
    hsum_ps(acc) + accm
}

/// One dot product of a weight row and an activation row (blocks as bytes).
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C; `w` and `a` must hold the same number of blocks of
/// `wtype` and its activation type (the caller checks).
pub unsafe fn vec_dot(wtype: QuantType, w: &[u8], a: &[u8]) -> f32 {
    match wtype {
        QuantType::Q4_0 => dot1::<Q4_0>(w, a),
        QuantType::Q4_1 => dot1::<Q4_1>(w, a),
        QuantType::Q5_0 => dot1::<Q5_0>(w, a),
        QuantType::Q5_1 => dot1::<Q5_1>(w, a),
        QuantType::Q8_0 => dot1::<Q8_0>(w, a),
        QuantType::Q2K => dot1::<Q2K>(w, a),
        QuantType::Q3K => dot1::<Q3K>(w, a),
        QuantType::Q4K => dot1::<Q4K>(w, a),
        QuantType::Q5K => dot1::<Q5K>(w, a),
        QuantType::Q6K => dot1::<Q6K>(w, a),
        other => panic!("vec_dot avx2: {other} has no quantized dot product"),
    }
}

/// One 32-value block as bytes (signed or not), its scale and its minimum (0 if none).
#[inline(always)]
unsafe fn block32(t: QuantType, p: *const u8) -> (__m256i, bool, f32, f32) {
    match t {
        QuantType::Q4_0 => {
            (_mm256_sub_epi8(nibbles(p.add(2)), _mm256_set1_epi8(8)), true, f16(p), 0.0)
        }
        QuantType::Q4_1 => {
            let (d, m) = f16x2(p);
            (nibbles(p.add(4)), false, d, m)
        }
        QuantType::Q5_0 => {
            let qh = std::ptr::read_unaligned(p.add(2).cast::<u32>());
            let high = _mm256_andnot_si256(bits_to_bytes(qh), _mm256_set1_epi8(0xf0u8 as i8));
            (_mm256_or_si256(nibbles(p.add(6)), high), true, f16(p), 0.0)
        }
        QuantType::Q5_1 => {
            let (d, m) = f16x2(p);
            let qh = std::ptr::read_unaligned(p.add(4).cast::<u32>());
            let high = _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10));
            (_mm256_or_si256(nibbles(p.add(8)), high), false, d, m)
        }
        QuantType::Q8_0 => (loadu(p.add(2)), true, f16(p), 0.0),
        QuantType::Q8_1 => (loadu(p.add(4)), true, f16(p), 0.0),
        other => unreachable!("{other} is not a 32-value block format"),
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dequant32<const T: u32>(src: &[u8], dst: &mut [f32]) {
    let t = QuantType::from_id(T).expect("a valid type id");
    for (b, ys) in src.chunks_exact(t.block_bytes()).zip(dst.chunks_exact_mut(32)) {
        let (q, signed, d, m) = block32(t, b.as_ptr());
        let (dv, mv) = (_mm256_set1_ps(d), _mm256_set1_ps(m));
        let halves = [_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1)];
        for c in 0..4 {
            let half = halves[c / 2];
            let bytes = if c % 2 == 0 { half } else { _mm_srli_si128(half, 8) };
            let ints =
                if signed { _mm256_cvtepi8_epi32(bytes) } else { _mm256_cvtepu8_epi32(bytes) };
            // d·q then + m as two roundings (never fused): bit-identical to the specification
            let mut v = _mm256_mul_ps(dv, _mm256_cvtepi32_ps(ints));
            if !signed {
                v = _mm256_add_ps(v, mv);
            }
            _mm256_storeu_ps(ys.as_mut_ptr().add(8 * c), v);
        }
    }
}

/// Dequantizes whole blocks of the 32-value formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1).
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C; `dst.len()` must be 32 × the number of blocks in
/// `src` (the caller checks).
pub unsafe fn dequantize_32(t: QuantType, src: &[u8], dst: &mut [f32]) {
    match t {
        QuantType::Q4_0 => dequant32::<2>(src, dst),
        QuantType::Q4_1 => dequant32::<3>(src, dst),
        QuantType::Q5_0 => dequant32::<6>(src, dst),
        QuantType::Q5_1 => dequant32::<7>(src, dst),
        QuantType::Q8_0 => dequant32::<8>(src, dst),
        QuantType::Q8_1 => dequant32::<9>(src, dst),
        other => panic!("dequantize avx2: {other} is not a 32-value block format"),
    }
}

#[inline(always)]
unsafe fn hmax_ps(v: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)))
}

/// `x` rounded values clamped to −127..=127, NaN → 0 (what `f32::clamp` then `as i8` does),
/// converted to i32.
#[inline(always)]
unsafe fn clamp_to_i32(r: __m256) -> __m256i {
    let c = _mm256_min_ps(_mm256_max_ps(r, _mm256_set1_ps(-127.0)), _mm256_set1_ps(127.0));
    _mm256_cvttps_epi32(_mm256_and_ps(c, _mm256_cmp_ps::<_CMP_ORD_Q>(r, r)))
}

/// Four vectors of 8 i32 → 32 bytes in value order (saturated to −128..=127).
#[inline(always)]
unsafe fn pack_i32_to_i8(q: [__m256i; 4]) -> __m256i {
    let p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

#[inline(always)]
unsafe fn f32_to_f16_bits(x: f32) -> [u8; 2] {
    let h = _mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(x));
    (_mm_extract_epi16::<0>(h) as u16).to_le_bytes()
}

/// Q8_0 (`with_sum` false, 34-byte blocks) or Q8_1 (true, 36-byte blocks) quantization of
/// activations as ggml's x86 quantizer does it, bit-identical to
/// `quant::matmul::quantize_q8_ggml`: `id = 127/amax`, `q = round-to-nearest-even(x·id)`
/// converted with `vcvtps2dq` (out of range → `i32::MIN`), packed with saturation; `s` from
/// the wrapping i32 sum.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C; `x.len()` must be 32 × the blocks in `out`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn quantize_q8_0_or_1(x: &[f32], out: &mut [u8], with_sum: bool) {
    let (bb, qs_at) = if with_sum { (36, 4) } else { (34, 2) };
    for (xs, b) in x.chunks_exact(32).zip(out.chunks_exact_mut(bb)) {
        let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(xs.as_ptr().add(8 * i)));
        let abs = |v: __m256| _mm256_andnot_ps(_mm256_set1_ps(-0.0), v);
        let amax = hmax_ps(_mm256_max_ps(
            _mm256_max_ps(abs(v[0]), abs(v[1])),
            _mm256_max_ps(abs(v[2]), abs(v[3])),
        ));
        let d = amax / 127.0;
        let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
        let q: [__m256i; 4] =
            std::array::from_fn(|i| {
                _mm256_cvtps_epi32(_mm256_round_ps::<
                    { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
                >(_mm256_mul_ps(v[i], id)))
            });
        _mm256_storeu_si256(b.as_mut_ptr().add(qs_at).cast(), pack_i32_to_i8(q));
        b[..2].copy_from_slice(&f32_to_f16_bits(d));
        if with_sum {
            let sum = hsum_epi32(_mm256_add_epi32(
                _mm256_add_epi32(q[0], q[1]),
                _mm256_add_epi32(q[2], q[3]),
            ));
            b[2..4].copy_from_slice(&f32_to_f16_bits(d * sum as f32));
        }
    }
}

/// Q8_K quantization, bit-identical to the reference in `quant::q8_k`.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C; `x.len()` must be 256 × the blocks in `out`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn quantize_q8_k(x: &[f32], out: &mut [u8]) {
    for (xs, b) in x.chunks_exact(256).zip(out.chunks_exact_mut(292)) {
        let mut m = _mm256_setzero_ps();
        for i in 0..32 {
            m = _mm256_max_ps(
                m,
                _mm256_andnot_ps(_mm256_set1_ps(-0.0), _mm256_loadu_ps(xs.as_ptr().add(8 * i))),
            );
        }
        let amax = hmax_ps(m);
        if amax == 0.0 {
            b.fill(0);
            continue;
        }
        // the first value of the largest magnitude, keeping its sign
        let max = xs.iter().copied().find(|v| v.abs() == amax).unwrap_or(0.0);
        let iscale = -127.0 / max;
        let isv = _mm256_set1_ps(iscale);
        for c in 0..8 {
            let q: [__m256i; 4] = std::array::from_fn(|i| {
                let v = _mm256_mul_ps(isv, _mm256_loadu_ps(xs.as_ptr().add(32 * c + 8 * i)));
                clamp_to_i32(_mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                    v,
                ))
            });
            _mm256_storeu_si256(b.as_mut_ptr().add(4 + 32 * c).cast(), pack_i32_to_i8(q));
            for h in 0..2 {
                let s = hsum_epi32(_mm256_add_epi32(q[2 * h], q[2 * h + 1]));
                let at = 260 + 2 * (2 * c + h);
                b[at..at + 2].copy_from_slice(&(s as i16).to_le_bytes());
            }
        }
        b[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}
