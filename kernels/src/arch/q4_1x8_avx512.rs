//! AVX-512 VNNI matmul of interleaved Q4_1 weights ([`crate::quant::q4_1x8`]) against Q8_1
//! activations: the same bits as [`super::q4_1x8_avx2`], fewer instructions.
//!
//! `vpdpbusd` adds the 4 products of 4 unsigned bytes (the weight nibbles, 0..=15) and 4
//! signed bytes (the token's quants, −127..=127) into one i32 lane: exactly the integer that
//! `vpmaddubsw` + `vpmaddwd` give (no 16-bit step can saturate: |4·15·127| < 2^15), in one
//! instruction instead of two. The token's 4 quants are the instruction's embedded 32-bit
//! broadcast (`{1to8}`, `{1to16}`), so they cost a load, not a shuffle.
//!
//! Per output the arithmetic is ggml's `ggml_vec_dot_q4_1_q8_1` order (see
//! [`super::q4_1x8_avx2`]): 8 accumulator lanes, lane `j` of output `r` getting
//! `fma(d_w·d_a, float(Σ_{i<4} w[4j+i]·a[4j+i]), acc_j)` block after block, summed
//! `((0+4)+(2+6))+((1+5)+(3+7))`, plus `Σ_b m_w·s_a` summed in block order from 0. Lanes of one
//! vector always belong to different outputs (rows, for one token); one output's chain is never
//! split.
//!
//! One token (decode, [`gemv`]): as the AVX2 GEMV, a panel's 8 rows side by side in a `ymm`
//! (lane `r` = row `r`), with `vpdpbusd ymm` in place of `vpmaddubsw` + `vpmaddwd`. Per
//! panel block: 4 loads of 32 bytes; per load, the low nibbles `vpand`, the high ones
//! `vpandn` left in place (see [`SIXTEENTH`]), then per nibble group one `vpdpbusd` +
//! `vcvtdq2ps` + `vfmadd`. Two panels per `zmm` (a second load and a `vinserti64x4` per
//! vector) ran no faster. There is no software prefetch: on Zen 4 the hardware prefetchers
//! follow the one stream, and the AVX2 GEMV's prefetches (3 per panel block) cost more than
//! they gave (30 layers of SmolLM2's Q4_1 matrices from DRAM, one thread, best of 200
//! interleaved sweeps, three runs: 2.97-3.22 ms without, 3.55-3.68 ms with; hot 576×576:
//! 163 against 145 GFLOP/s).
//!
//! Several tokens (prefill, [`gemm`]): compute-bound. Two panels (16 rows) are unpacked once
//! into an L1 scratch ([`Panel16`]): `q[8b + j]` is a `zmm` whose 32-bit lane `r` holds row
//! `r`'s quants `4j..4j+4` of block `b` as bytes (rows 0..8 from panel `p`, 8..16 from panel
//! `p + 1`, zero if there is none), `d[b]`/`m[b]` the 16 rows' scales as f32. Then tokens go
//! through in pairs ([`GEMM_T`]): per block and group `j`, one load of `q[8b + j]` serves 2
//! tokens, each one `vpdpbusd zmm` (the token's 4 quants broadcast from memory) +
//! `vcvtdq2ps` + `vfmadd` for 16 outputs. The AVX2 GEMM spends `vpmaddubsw` + `vpmaddwd` +
//! `vcvtdq2ps` + `vfmadd` per 8 outputs. On Zen 4 (measured with dependent-free loops) a `zmm`
//! `vpdpbusd`, `vfmadd` or `vmulps` each take the two multiply pipes for a cycle, while
//! `vcvtdq2ps` runs beside them on the other two; per 16 outputs and block that is 8 `vpdpbusd`
//! plus 8 `vfmadd` plus 2 `vmulps` (`d_w·d_a`, `m_w·s_a`) = 18 cycles, 57 flops per cycle:
//! ~207 GFLOP/s at 3.65 GHz, and the GEMM runs 190-205. The arithmetic order leaves nothing
//! to remove: one exact integer and one `fma` per output, group and block.

use std::arch::x86_64::*;

use crate::quant::q4_1x8::{PANEL_BLOCK, ROWS};
use crate::quant::QuantizedActs;

/// Bytes of one Q8_1 activation block: f16 `d`, f16 `s`, 32 quants.
const ACT_BLOCK: usize = 36;
/// Offset of the quants in an activation block.
const ACT_QS: usize = 4;

/// Tokens per pass of the GEMM: each weight vector loaded serves this many tokens, with 8 `zmm`
/// accumulators per token. Measured (`--example x8_speed -- 64 256`, one core, best batches,
/// GFLOP/s at 576×576 / 1536×576 / 576×1536): 2 tokens 201-205 / 200-203 / 192-193, 3 tokens
/// 200-203 / 199-201 / 183-187, 4 tokens (32 accumulators: spills) 178-183 / 173-178 / 176-180.
const GEMM_T: usize = 2;

/// The GEMV leaves the high nibbles in place (`raw & 0xf0`, one instruction instead of a shift
/// and a mask), so their dot is 16·S for the true integer S: exactly, since |16·S| ≤
/// 16·4·15·127 < 2^24, and `float(16·S)` is exact too. Their block's `d_w·d_a` is scaled by
/// 1/16 to match: exact as well (a power of two; the product of two f16 values is ≥ 2^-48 in
/// magnitude or zero, far from f32's subnormals), so `fma(dd/16, 16·S, acc)` rounds the same
/// exact value `dd·S + acc` as `fma(dd, S, acc)`: the same bits.
const SIXTEENTH: f32 = 0.0625;

/// The 4 bytes at `p` as an i32 (a token's 4 quants of one group).
#[inline(always)]
unsafe fn quad(p: *const u8) -> i32 {
    std::ptr::read_unaligned(p.cast::<i32>())
}

/// `((v0+v4)+(v2+v6))+((v1+v5)+(v3+v7))`: ggml's order of the 8 lanes of one output.
#[inline(always)]
unsafe fn tree8_256(v: &[__m256; 8]) -> __m256 {
    let add = |x, y| _mm256_add_ps(x, y);
    add(add(add(v[0], v[4]), add(v[2], v[6])), add(add(v[1], v[5]), add(v[3], v[7])))
}

#[inline(always)]
unsafe fn tree8_512(v: &[__m512; 8]) -> __m512 {
    let add = |x, y| _mm512_add_ps(x, y);
    add(add(add(v[0], v[4]), add(v[2], v[6])), add(add(v[1], v[5]), add(v[3], v[7])))
}

/// Rows `8p..8p+8` for `p` in `panels`, one token: `y[8p + r]`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn gemv(w: *const u8, panels: usize, nb: usize, acts: &QuantizedActs, y: *mut f32) {
    let (a, ad, asum) = (acts.blocks().as_ptr(), acts.scales().as_ptr(), acts.sums().as_ptr());
    let low = _mm256_set1_epi8(0x0f);
    let zero = _mm256_setzero_si256();
    for p in 0..panels {
        let wp = w.add(p * nb * PANEL_BLOCK);
        let mut acc = [_mm256_setzero_ps(); 8];
        let mut summs = _mm256_setzero_ps();
        for b in 0..nb {
            let pb = wp.add(b * PANEL_BLOCK);
            let dw = _mm256_cvtph_ps(_mm_loadu_si128(pb.cast()));
            let mw = _mm256_cvtph_ps(_mm_loadu_si128(pb.add(16).cast()));
            let dd = _mm256_mul_ps(dw, _mm256_set1_ps(*ad.add(b)));
            // the high nibbles stay in place (16× their value): see `SIXTEENTH`
            let dd16 = _mm256_mul_ps(dd, _mm256_set1_ps(SIXTEENTH));
            summs = _mm256_add_ps(summs, _mm256_mul_ps(mw, _mm256_set1_ps(*asum.add(b))));
            let x = a.add(b * ACT_BLOCK + ACT_QS);
            for v in 0..4 {
                let raw = _mm256_loadu_si256(pb.add(32 + 32 * v).cast());
                let lo = _mm256_and_si256(raw, low);
                let hi16 = _mm256_andnot_si256(low, raw);
                let i = _mm256_dpbusd_epi32(zero, lo, _mm256_set1_epi32(quad(x.add(4 * v))));
                acc[v] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(i), acc[v]);
                let i = _mm256_dpbusd_epi32(zero, hi16, _mm256_set1_epi32(quad(x.add(16 + 4 * v))));
                acc[v + 4] = _mm256_fmadd_ps(dd16, _mm256_cvtepi32_ps(i), acc[v + 4]);
            }
        }
        _mm256_storeu_ps(y.add(p * ROWS), _mm256_add_ps(tree8_256(&acc), summs));
    }
}

/// Two panels of an interleaved matrix (16 rows), unpacked for the GEMM (see the module docs):
/// `q[8b + j]` lane `r` = row `r`'s quants `4j..4j+4` of block `b`, `d[b]`, `m[b]` lane `r` =
/// its scale and minimum. Rows of a missing second panel are zero (computed, never stored).
struct Panel16 {
    q: Vec<__m512i>,
    d: Vec<__m512>,
    m: Vec<__m512>,
}

impl Panel16 {
    fn new(nb: usize) -> Panel16 {
        // SAFETY: all-zero bits are a valid __m512i and a valid __m512 (sixteen 0.0).
        let (zi, zf): (__m512i, __m512) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
        Panel16 { q: vec![zi; nb * 8], d: vec![zf; nb], m: vec![zf; nb] }
    }

    /// Unpacks panel `first` and, if `second` is given, the panel there (each `nb` panel
    /// blocks).
    #[inline(always)]
    unsafe fn fill(&mut self, first: *const u8, second: Option<*const u8>, nb: usize) {
        let low = _mm512_set1_epi8(0x0f);
        for b in 0..nb {
            let p0 = first.add(b * PANEL_BLOCK);
            let p1 = second.map(|s| s.add(b * PANEL_BLOCK));
            // 16 bytes of panel `p0` at `at`, and of `p1` (or zeros) above them
            let pair128 = |at: usize| {
                let lo = _mm256_castsi128_si256(_mm_loadu_si128(p0.add(at).cast()));
                match p1 {
                    Some(p1) => {
                        _mm256_inserti128_si256::<1>(lo, _mm_loadu_si128(p1.add(at).cast()))
                    }
                    None => _mm256_zextsi128_si256(_mm256_castsi256_si128(lo)),
                }
            };
            *self.d.get_unchecked_mut(b) = _mm512_cvtph_ps(pair128(0));
            *self.m.get_unchecked_mut(b) = _mm512_cvtph_ps(pair128(16));
            for v in 0..4 {
                let at = 32 + 32 * v;
                let lo = _mm512_castsi256_si512(_mm256_loadu_si256(p0.add(at).cast()));
                let raw = match p1 {
                    Some(p1) => _mm512_inserti64x4::<1>(lo, _mm256_loadu_si256(p1.add(at).cast())),
                    None => _mm512_zextsi256_si512(_mm512_castsi512_si256(lo)),
                };
                *self.q.get_unchecked_mut(b * 8 + v) = _mm512_and_si512(raw, low);
                *self.q.get_unchecked_mut(b * 8 + v + 4) =
                    _mm512_and_si512(_mm512_srli_epi16::<4>(raw), low);
            }
        }
    }
}

/// The panel's 16 rows × tokens `0..T` of `a` (token `t`'s blocks at `a + t·a_row`, its
/// blocks' scales and sums at `ad`/`asum + t·nb`): outputs `y[t·y_stride + r]` for the rows in
/// `mask`.
#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn panel_tokens<const T: usize>(
    p: &Panel16,
    nb: usize,
    a: *const u8,
    a_row: usize,
    ad: *const f32,
    asum: *const f32,
    y: *mut f32,
    y_stride: usize,
    mask: __mmask16,
) {
    let zero = _mm512_setzero_si512();
    let mut acc = [[_mm512_setzero_ps(); 8]; T];
    let q = p.q.as_ptr();
    for b in 0..nb {
        let d = *p.d.get_unchecked(b);
        let dd: [__m512; T] =
            std::array::from_fn(|t| _mm512_mul_ps(d, _mm512_set1_ps(*ad.add(t * nb + b))));
        let x = a.add(b * ACT_BLOCK + ACT_QS);
        for j in 0..8 {
            let wq = _mm512_load_si512(q.add(b * 8 + j).cast());
            for t in 0..T {
                let s = _mm512_set1_epi32(quad(x.add(t * a_row + 4 * j)));
                let i = _mm512_dpbusd_epi32(zero, wq, s);
                acc[t][j] = _mm512_fmadd_ps(dd[t], _mm512_cvtepi32_ps(i), acc[t][j]);
            }
        }
    }
    for t in 0..T {
        let mut summs = _mm512_setzero_ps();
        for b in 0..nb {
            let ms = _mm512_mul_ps(*p.m.get_unchecked(b), _mm512_set1_ps(*asum.add(t * nb + b)));
            summs = _mm512_add_ps(summs, ms);
        }
        let v = _mm512_add_ps(tree8_512(&acc[t]), summs);
        _mm512_mask_storeu_ps(y.add(t * y_stride), mask, v);
    }
}

/// Rows `8p..8p+8` for `p` in `panels`, every token: the prefill GEMM.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
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
    let m = acts.m();
    let panel_bytes = nb * PANEL_BLOCK;
    let mut panel = Panel16::new(nb);
    let mut p = 0;
    while p < panels {
        let pair = p + 1 < panels;
        let first = w.add(p * panel_bytes);
        panel.fill(first, pair.then(|| first.add(panel_bytes)), nb);
        let mask: __mmask16 = if pair { 0xffff } else { 0x00ff };
        let yp = y.add(p * ROWS);
        let at =
            |t: usize| (a.add(t * a_row), ad.add(t * nb), asum.add(t * nb), yp.add(t * y_stride));
        let mut t = 0;
        while t + GEMM_T <= m {
            let (at_, adt, ast, yt) = at(t);
            panel_tokens::<GEMM_T>(&panel, nb, at_, a_row, adt, ast, yt, y_stride, mask);
            t += GEMM_T;
        }
        let (at_, adt, ast, yt) = at(t);
        if t < m {
            panel_tokens::<1>(&panel, nb, at_, a_row, adt, ast, yt, y_stride, mask);
        }
        p += 2;
    }
}

/// `y[t·y_stride + r] = Σ w[r]·x[t]` for interleaved Q4_1 weights `w` (`n_rows` rows, whole
/// panels) and Q8_1 activations; see the module docs.
///
/// # Safety
/// The CPU must have AVX-512 F/BW/VL and VNNI, and the arguments must satisfy
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
