//! AVX-512 VNNI matmul of interleaved Q8_0 weights ([`crate::quant::q8_0x16`]) against Q8_0
//! activations: 16 rows per `zmm`, one row per 32-bit lane.
//!
//! `vpdpbusd` multiplies unsigned bytes by signed ones, and both Q8_0 operands are signed. The
//! weights are made unsigned by flipping their top bit (`w ^ 0x80 = w + 128` as u8), which
//! adds `128·Σa` to each group's sum; the instruction starts from the negated correction
//! instead of zero, so its lane ends exactly at `Σ_{i<4} w[4j+i]·a[4j+i]`:
//!
//! ```text
//! c_j = 128 · Σ_{i<4} a[4j+i]                     (per token and block: one vpdpbusd ymm
//!                                                  of 0x80 bytes by the block's quants)
//! S_j = vpdpbusd(−c_j, w ^ 0x80, a[4j..4j+4])    = Σ (w + 128)·a − 128·Σ a = Σ w·a
//! ```
//!
//! No 32-bit step can overflow (|4·255·128| < 2^31), so this is the integer that ggml's AVX2
//! `vpsignb`/`vpmaddubsw`/`vpmaddwd` sequence gives, for any weight byte (the sign trick needs
//! weights above −128; this does not). Per output the float arithmetic is then ggml's
//! `ggml_vec_dot_q8_0_q8_0` order: lane `j` of the output's accumulator
//! `acc_j = fma(d_w·d_a, float(S_j), acc_j)` block after block, then
//! `((0+4)+(2+6))+((1+5)+(3+7))`. Here output `r`'s lane `j` is lane `r` of the vector
//! `acc[j]`, so the final sum is the same tree over the 8 vectors.
//!
//! Per 16 rows and block: one `vcvtph2ps` of the 16 scales, one `vmulps` by the token's
//! scale, then per group `j` a 64-byte load, `vpxord`, `vpdpbusd` (the correction a 32-bit
//! broadcast load into the destination, the token's 4 quants an embedded broadcast),
//! `vcvtdq2ps`, `vfmadd`: 17 cycles of the multiply pipes for 544 bytes, ~110 GB/s at 3.65
//! GHz, more than the caches deliver, so one token's GEMV runs at the speed of memory (the
//! GGUF-row AVX2 GEMV needs two `vpsignb`, `vpmaddubsw`, `vpmaddwd` and a scale broadcast per
//! row and block).
//!
//! One token (decode) is bound by memory: the vocabulary's 30 MB come from L3 and DRAM. The
//! GEMV walks panel `p` beside panel `p + panels/2`: two streams far apart, which the hardware
//! prefetchers run ahead on independently, sharing each block's corrections and quant
//! broadcasts (`--example vocab_speed`, best of 30 batches, three runs on a loaded machine:
//! hot 0.90-1.01 → 0.83-0.87 ms, from DRAM 1.16-1.27 → 1.04-1.06 ms). Neighbouring panels as
//! the pair (9.8 KB apart) ran 1.5-1.9 ms; software prefetches 2-16 KB ahead made it no faster
//! (one panel at a time: none 0.96-1.05 ms hot, 4 KB 1.03-1.20, 16 KB 1.19-1.61). Several
//! tokens go in pairs: each weight vector loaded and flipped serves both.

use std::arch::x86_64::*;

use crate::quant::q8_0x16::ROWS;
use crate::quant::QuantizedActs;

/// Bytes of one Q8_0 activation block: f16 `d`, 32 quants.
const ACT_BLOCK: usize = 34;
/// Offset of the quants in an activation block.
const ACT_QS: usize = 2;
/// Bytes of one GGUF Q8_0 block, and so of one row's share of a panel block.
const BLOCK: usize = 34;

/// Tokens per pass for `m > 1`: each weight vector loaded serves this many tokens.
const PAIR: usize = 2;

/// The 4 bytes at `p` as an i32 (a token's 4 quants of one group).
#[inline(always)]
unsafe fn quad(p: *const u8) -> i32 {
    std::ptr::read_unaligned(p.cast::<i32>())
}

/// `−128·Σ_{i<4} a[4j+i]` for the 8 groups `j` of one token's block, in a 32-byte aligned stack
/// slot: each `vpdpbusd` starts from one of them broadcast by a load (`vpbroadcastd zmm, m32`,
/// no ALU work). Read through a `black_box`ed pointer, since the compiler otherwise forwards
/// the store and broadcasts from the register with 8 `vpermd` per block (GEMM at m = 64, 576×576:
/// 156 GFLOP/s with them, 168 without).
#[repr(align(32))]
struct Corrections([i32; 8]);

/// Panels `w[0..P]` (16 rows each, `nb` blocks) against tokens `0..T` of `a` (token `t`'s
/// blocks at `a + t·a_row`, their scales at `ad + t·nb`): panel `i`, token `t` into
/// `y[i][t·y_stride..]`. Each weight vector loaded and flipped serves the `T` tokens; each
/// token's corrections and quants serve the `P` panels. 8 accumulators per (panel, token).
#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn tile<const P: usize, const T: usize>(
    w: [*const u8; P],
    nb: usize,
    a: *const u8,
    a_row: usize,
    ad: *const f32,
    y: [*mut f32; P],
    y_stride: usize,
) {
    let flip = _mm512_set1_epi8(0x80u8 as i8);
    let bias = _mm256_set1_epi8(0x80u8 as i8);
    let zero = _mm256_setzero_si256();
    let mut acc = [[[_mm512_setzero_ps(); 8]; T]; P];
    let mut corr: [Corrections; T] = std::array::from_fn(|_| Corrections([0; 8]));
    for b in 0..nb {
        let pb: [*const u8; P] = std::array::from_fn(|i| w[i].add(b * ROWS * BLOCK));
        let dw: [__m512; P] =
            std::array::from_fn(|i| _mm512_cvtph_ps(_mm256_loadu_si256(pb[i].cast())));
        // d_w·d_a per (panel, token), rounded to f32 as ggml rounds it
        let dd: [[__m512; T]; P] = std::array::from_fn(|i| {
            std::array::from_fn(|t| _mm512_mul_ps(dw[i], _mm512_set1_ps(*ad.add(t * nb + b))))
        });
        let x: [*const u8; T] = std::array::from_fn(|t| a.add(t * a_row + b * ACT_BLOCK + ACT_QS));
        // where the passes read this block's corrections from (see `Corrections`)
        let mut cp = [std::ptr::null::<i32>(); T];
        for t in 0..T {
            let c = _mm256_dpbusd_epi32(zero, bias, _mm256_loadu_si256(x[t].cast()));
            _mm256_store_si256(corr[t].0.as_mut_ptr().cast(), _mm256_sub_epi32(zero, c));
            cp[t] = std::hint::black_box(corr[t].0.as_ptr());
        }
        for j in 0..8 {
            let wq: [__m512i; P] = std::array::from_fn(|i| {
                _mm512_xor_si512(_mm512_loadu_si512(pb[i].add(2 * ROWS + 64 * j).cast()), flip)
            });
            for t in 0..T {
                let c = _mm512_set1_epi32(*cp[t].add(j));
                let xq = _mm512_set1_epi32(quad(x[t].add(4 * j)));
                for i in 0..P {
                    let s = _mm512_dpbusd_epi32(c, wq[i], xq);
                    acc[i][t][j] = _mm512_fmadd_ps(dd[i][t], _mm512_cvtepi32_ps(s), acc[i][t][j]);
                }
            }
        }
    }
    let add = |x, y| _mm512_add_ps(x, y);
    for i in 0..P {
        for t in 0..T {
            let v = &acc[i][t];
            let sum =
                add(add(add(v[0], v[4]), add(v[2], v[6])), add(add(v[1], v[5]), add(v[3], v[7])));
            _mm512_storeu_ps(y[i].add(t * y_stride), sum);
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn run(
    w: *const u8,
    panels: usize,
    nb: usize,
    acts: &QuantizedActs,
    y: *mut f32,
    y_stride: usize,
) {
    let (a, ad) = (acts.blocks().as_ptr(), acts.scales().as_ptr());
    let a_row = nb * ACT_BLOCK;
    let panel_bytes = nb * ROWS * BLOCK;
    let m = acts.m();
    let wp = |p: usize| w.add(p * panel_bytes);
    let yp = |p: usize| y.add(p * ROWS);
    if m == 1 {
        // panel p beside panel p + half: two streams far apart (see the module docs); the
        // order of panels changes no output's arithmetic
        let half = panels / 2;
        for p in 0..half {
            let q = p + half;
            tile::<2, 1>([wp(p), wp(q)], nb, a, a_row, ad, [yp(p), yp(q)], y_stride);
        }
        if panels % 2 == 1 {
            let p = panels - 1;
            tile::<1, 1>([wp(p)], nb, a, a_row, ad, [yp(p)], y_stride);
        }
        return;
    }
    for p in 0..panels {
        let mut t = 0;
        while t + PAIR <= m {
            let (at, adt, yt) = (a.add(t * a_row), ad.add(t * nb), yp(p).add(t * y_stride));
            tile::<1, PAIR>([wp(p)], nb, at, a_row, adt, [yt], y_stride);
            t += PAIR;
        }
        if t < m {
            let (at, adt, yt) = (a.add(t * a_row), ad.add(t * nb), yp(p).add(t * y_stride));
            tile::<1, 1>([wp(p)], nb, at, a_row, adt, [yt], y_stride);
        }
    }
}

/// `y[t·y_stride + r] = Σ w[r]·x[t]` for interleaved Q8_0 weights `w` (`n_rows` rows, whole
/// panels) and Q8_0 activations; see the module docs.
///
/// # Safety
/// The CPU must have AVX-512 F/BW/VL and VNNI, and the arguments must satisfy
/// `crate::quant::q8_0x16`'s checks (the safe caller makes both);
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
    run(weights.as_ptr(), panels, nb, acts, y.as_mut_ptr(), y_stride);
}
