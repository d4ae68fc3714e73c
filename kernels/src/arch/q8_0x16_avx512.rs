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
//! row and block). There is no software prefetch: the panel blocks are one stream, which the
//! hardware prefetchers follow; prefetches 4 or 16 KB ahead made the vocabulary GEMV no faster
//! from L3 or DRAM (`--example vocab_speed`, best of 30 batches on a loaded machine: none
//! 0.96-1.05 ms hot, 1.0-1.2 ms cold; 4 KB 1.03-1.20 / 1.08-1.29; 16 KB 1.19-1.61 /
//! 1.51-2.71). Several tokens go in pairs: each weight vector loaded and flipped serves both.

// The AVX-512 intrinsics are stable since Rust 1.89, past the workspace's `rust-version`
// (1.85): building this module needs 1.89 or newer.
#![allow(clippy::incompatible_msrv)]

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

/// The panel of 16 rows at `w` (`nb` blocks) against tokens `0..T` of `a` (token `t`'s blocks
/// at `a + t·a_row`, their scales at `ad + t·nb`): `y[t·y_stride + r]`.
#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn panel_tokens<const T: usize>(
    w: *const u8,
    nb: usize,
    a: *const u8,
    a_row: usize,
    ad: *const f32,
    y: *mut f32,
    y_stride: usize,
) {
    let flip = _mm512_set1_epi8(0x80u8 as i8);
    let bias = _mm256_set1_epi8(0x80u8 as i8);
    let zero = _mm256_setzero_si256();
    let mut acc = [[_mm512_setzero_ps(); 8]; T];
    let mut corr: [Corrections; T] = std::array::from_fn(|_| Corrections([0; 8]));
    for b in 0..nb {
        let pb = w.add(b * ROWS * BLOCK);
        let dw = _mm512_cvtph_ps(_mm256_loadu_si256(pb.cast()));
        let dd: [__m512; T] =
            std::array::from_fn(|t| _mm512_mul_ps(dw, _mm512_set1_ps(*ad.add(t * nb + b))));
        let x: [*const u8; T] = std::array::from_fn(|t| a.add(t * a_row + b * ACT_BLOCK + ACT_QS));
        // where the passes read this block's corrections from (see `Corrections`)
        let mut cp = [std::ptr::null::<i32>(); T];
        for t in 0..T {
            let c = _mm256_dpbusd_epi32(zero, bias, _mm256_loadu_si256(x[t].cast()));
            _mm256_store_si256(corr[t].0.as_mut_ptr().cast(), _mm256_sub_epi32(zero, c));
            cp[t] = std::hint::black_box(corr[t].0.as_ptr());
        }
        let wb = pb.add(2 * ROWS);
        for j in 0..8 {
            let wq = _mm512_xor_si512(_mm512_loadu_si512(wb.add(64 * j).cast()), flip);
            for t in 0..T {
                let c = _mm512_set1_epi32(*cp[t].add(j));
                let s = _mm512_dpbusd_epi32(c, wq, _mm512_set1_epi32(quad(x[t].add(4 * j))));
                acc[t][j] = _mm512_fmadd_ps(dd[t], _mm512_cvtepi32_ps(s), acc[t][j]);
            }
        }
    }
    let add = |x, y| _mm512_add_ps(x, y);
    for t in 0..T {
        let v = &acc[t];
        let sum = add(add(add(v[0], v[4]), add(v[2], v[6])), add(add(v[1], v[5]), add(v[3], v[7])));
        _mm512_storeu_ps(y.add(t * y_stride), sum);
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
    for p in 0..panels {
        let wp = w.add(p * panel_bytes);
        let yp = y.add(p * ROWS);
        let mut t = 0;
        while t + PAIR <= m {
            panel_tokens::<PAIR>(
                wp,
                nb,
                a.add(t * a_row),
                a_row,
                ad.add(t * nb),
                yp.add(t * y_stride),
                y_stride,
            );
            t += PAIR;
        }
        if t < m {
            panel_tokens::<1>(
                wp,
                nb,
                a.add(t * a_row),
                a_row,
                ad.add(t * nb),
                yp.add(t * y_stride),
                y_stride,
            );
        }
    }
}

/// `y[t·y_stride + r] = Σ w[r]·x[t]` for interleaved Q8_0 weights `w` (`n_rows` rows, whole
/// panels) and Q8_0 activations; see the module docs.
///
/// # Safety
/// The CPU must have AVX-512 F/BW/VL and VNNI, and the arguments must satisfy
/// `crate::quant::q8_0x16`'s checks (the safe caller makes both).
pub unsafe fn qmatmul(
    weights: &[u8],
    n_rows: usize,
    k: usize,
    acts: &QuantizedActs,
    y: &mut [f32],
    y_stride: usize,
) {
    let (nb, panels) = (k / 32, n_rows / ROWS);
    if nb == 0 {
        // no blocks: every output is the empty sum, as the row kernels give
        for t in 0..acts.m() {
            y[t * y_stride..t * y_stride + n_rows].fill(0.0);
        }
        return;
    }
    run(weights.as_ptr(), panels, nb, acts, y.as_mut_ptr(), y_stride);
}
