//! Q8_0 weights interleaved by 16 rows (`Q8_0x16`): the same bytes as the GGUF blocks, reordered
//! at load so that one 64-byte load holds the same 4 quants of 16 consecutive rows.
//!
//! A matrix of `n` rows (a multiple of 16) and `k` values per row (a multiple of 32) is stored
//! as `n / 16` panels; panel `p` holds rows `16p..16p+16` as `k / 32` panel blocks of 544 bytes
//! (16 GGUF blocks of 34 bytes: the size, and the bytes per row, do not change):
//!
//! ```text
//! byte  0 ..  32              d of rows 0..15 (f16 LE each)
//! byte 32 + 64j + 4r + i      (j < 8, r < 16, i < 4)  =  row r's qs[4j + i]
//! ```
//!
//! So 64-byte vector `j` of a panel block holds the quants `4j..4j+4` of all 16 rows, one row
//! per 32-bit lane: one `vpdpbusd zmm` against the token's 4 quants broadcast gives the 16
//! rows' integer sums of group `j`, and one `vcvtph2ps` gives their 16 scales. The matrix is
//! one stream of panel blocks in the order the GEMV reads them, which the hardware prefetchers
//! follow (scales gathered in front of each panel, which put every quant vector on a cache
//! line, made two streams and ran 2-3× slower from L3 and DRAM).
//!
//! Per output the arithmetic stays exactly ggml's `ggml_vec_dot_q8_0_q8_0` (AVX2): the layout
//! changes where bytes are, never which products are added in which order.
//!
//! Op `qmatvec_q8_0x16` in the registry: `naive` (each panel de-interleaved back into GGUF rows,
//! then [`super::matmul::qmatmul_naive`]: the specification) and `avx512` (AVX-512 VNNI,
//! [`crate::arch::q8_0x16_avx512`]). There is no AVX2 variant: without AVX-512 the model keeps
//! Q8_0 matrices in GGUF rows (`qmatvec_q8_0` avx2).

use super::matmul::{
    check_qmatmul, fill_empty_sums, qmatmul_panels_naive, QMatmulFn, QuantizedActs,
};
use super::QuantType;

/// Rows per panel.
pub const ROWS: usize = 16;
/// Bytes of one GGUF Q8_0 block (`d`, 32 quants).
const BLOCK: usize = 34;
/// Bytes of one panel block's scales (16 × f16), in front of its quants.
const PANEL_D: usize = ROWS * 2;

/// Whether a `[n_rows, k]` Q8_0 matrix can be interleaved (whole panels, whole blocks).
pub fn fits(n_rows: usize, k: usize) -> bool {
    n_rows.is_multiple_of(ROWS) && k.is_multiple_of(32)
}

fn check_layout(what: &str, bytes: usize, n_rows: usize, k: usize) {
    assert!(
        fits(n_rows, k),
        "{what}: {n_rows} rows × {k} values is not whole 16-row panels of 32-value blocks"
    );
    let need = n_rows * (k / 32) * BLOCK;
    assert_eq!(
        bytes, need,
        "{what}: {n_rows} rows of {k} Q8_0 values are {need} bytes, got {bytes}"
    );
}

/// Byte offsets of GGUF row `r`'s block `b` pieces inside the interleaved matrix (`nb` blocks
/// per row): `(d, qs[4j..4j+4] for j < 8)`.
#[inline]
fn panel_offsets(nb: usize, r: usize, b: usize) -> (usize, [usize; 8]) {
    let pb = (r / ROWS * nb + b) * ROWS * BLOCK;
    let lane = r % ROWS;
    let qs = pb + PANEL_D + 4 * lane;
    (pb + 2 * lane, std::array::from_fn(|j| qs + 64 * j))
}

/// Reorders `src` (`n_rows` GGUF Q8_0 rows of `k` values) into the interleaved layout `dst`
/// (same length). Panics naming the sizes if they do not fit.
pub fn interleave(src: &[u8], n_rows: usize, k: usize, dst: &mut [u8]) {
    check_layout("interleave Q8_0x16 source", src.len(), n_rows, k);
    check_layout("interleave Q8_0x16 destination", dst.len(), n_rows, k);
    let nb = k / 32;
    for (r, row) in src.chunks_exact((nb * BLOCK).max(1)).enumerate() {
        for (b, block) in row.chunks_exact(BLOCK).enumerate() {
            let (d, qs) = panel_offsets(nb, r, b);
            dst[d..d + 2].copy_from_slice(&block[0..2]);
            for (j, &at) in qs.iter().enumerate() {
                dst[at..at + 4].copy_from_slice(&block[2 + 4 * j..6 + 4 * j]);
            }
        }
    }
}

/// GGUF row `r` of an interleaved matrix (`k` values per row) into `out` (`k / 32` blocks).
pub fn row(src: &[u8], k: usize, r: usize, out: &mut [u8]) {
    let nb = k / 32;
    assert_eq!(
        out.len(),
        nb * BLOCK,
        "Q8_0x16 row: {k} values are {} bytes, got {}",
        nb * BLOCK,
        out.len()
    );
    row_blocks(src, k, r, 0, out);
}

/// Blocks `first..first + out.len() / 34` of GGUF row `r` of an interleaved matrix (`k` values
/// per row) into `out`: a row piece by piece without a row-sized buffer.
pub fn row_blocks(src: &[u8], k: usize, r: usize, first: usize, out: &mut [u8]) {
    let nb = k / 32;
    assert!(
        out.len().is_multiple_of(BLOCK) && first + out.len() / BLOCK <= nb,
        "Q8_0x16 row blocks: {} bytes from block {first} are not whole blocks of a {k}-value row",
        out.len()
    );
    assert!(src.len() >= (r / ROWS + 1) * nb * ROWS * BLOCK, "Q8_0x16 row {r} past the matrix");
    for (i, block) in out.chunks_exact_mut(BLOCK).enumerate() {
        let (d, qs) = panel_offsets(nb, r, first + i);
        block[0..2].copy_from_slice(&src[d..d + 2]);
        for (j, &at) in qs.iter().enumerate() {
            block[2 + 4 * j..6 + 4 * j].copy_from_slice(&src[at..at + 4]);
        }
    }
}

/// The inverse of [`interleave`].
pub fn deinterleave(src: &[u8], n_rows: usize, k: usize, dst: &mut [u8]) {
    check_layout("de-interleave Q8_0x16 source", src.len(), n_rows, k);
    check_layout("de-interleave Q8_0x16 destination", dst.len(), n_rows, k);
    let row_bytes = k / 32 * BLOCK;
    for (r, out) in dst.chunks_exact_mut(row_bytes.max(1)).enumerate().take(n_rows) {
        row(src, k, r, out);
    }
}

/// The contract of every `qmatvec_q8_0x16` variant: [`check_qmatmul`]'s on the equivalent GGUF
/// rows, plus whole panels.
fn check(
    weights: &[u8],
    wtype: QuantType,
    n_rows: usize,
    k: usize,
    acts: &QuantizedActs,
    y: &[f32],
    y_stride: usize,
) {
    assert_eq!(wtype, QuantType::Q8_0, "qmatvec_q8_0x16: weights must be Q8_0, got {wtype}");
    check_qmatmul(weights, wtype, n_rows, k, acts, y, y_stride);
    check_layout("qmatvec_q8_0x16 weights", weights.len(), n_rows, k);
}

/// The specification: each panel de-interleaved into GGUF rows, then [`qmatmul_naive`] on
/// them.
pub fn qmatmul_x16_naive(
    weights: &[u8],
    wtype: QuantType,
    n_rows: usize,
    k: usize,
    acts: &QuantizedActs,
    y: &mut [f32],
    y_stride: usize,
) {
    check(weights, wtype, n_rows, k, acts, y, y_stride);
    let panel = (ROWS, k / 32 * ROWS * BLOCK);
    qmatmul_panels_naive(weights, wtype, n_rows, k, acts, y, y_stride, panel, deinterleave)
}

/// AVX-512 VNNI (see [`crate::arch::q8_0x16_avx512`]): 16 rows per vector, tokens in pairs;
/// every output bit-identical to the GGUF-row `avx2` qmatmul. Panics if the CPU lacks AVX-512
/// F/BW/VL/VNNI.
pub fn qmatmul_x16_avx512(
    weights: &[u8],
    wtype: QuantType,
    n_rows: usize,
    k: usize,
    acts: &QuantizedActs,
    y: &mut [f32],
    y_stride: usize,
) {
    check(weights, wtype, n_rows, k, acts, y, y_stride);
    assert!(
        crate::cpu::detected().has_avx512_vnni(),
        "qmatvec_q8_0x16 avx512: the CPU lacks AVX-512 F/BW/VL/VNNI"
    );
    if k == 0 {
        return fill_empty_sums(acts.m(), n_rows, y, y_stride);
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has AVX-512 F/BW/VL/VNNI (asserted); every length was checked above.
    unsafe {
        crate::arch::q8_0x16_avx512::qmatmul(weights, n_rows, k, acts, y, y_stride)
    }
    #[cfg(not(target_arch = "x86_64"))]
    qmatmul_x16_naive(weights, wtype, n_rows, k, acts, y, y_stride)
}

/// The `qmatvec_q8_0x16` variants, fastest last.
pub fn variants() -> &'static [&'static str] {
    &["naive", "avx512"]
}

/// The variant named `variant`, or `None` if it does not exist or cannot run on this CPU.
pub fn select(variant: &str) -> Option<QMatmulFn> {
    match variant {
        "naive" => Some(qmatmul_x16_naive),
        "avx512" if crate::cpu::detected().has_avx512_vnni() => Some(qmatmul_x16_avx512),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::matmul::qmatmul_naive;
    use crate::quant::{quantize_activations, random, select_qmatmul};
    use rand::SeedableRng;

    #[test]
    fn interleave_round_trips_and_rows_read_back() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for (n, k) in [(16, 32), (32, 96), (48, 64)] {
            let src = random::blocks(QuantType::Q8_0, n * k / 32, &mut rng);
            let mut x16 = vec![0u8; src.len()];
            interleave(&src, n, k, &mut x16);
            assert_ne!(x16, src, "{n}×{k}: the layout must differ from the rows");
            let mut back = vec![0u8; src.len()];
            deinterleave(&x16, n, k, &mut back);
            assert_eq!(back, src, "{n}×{k}");
            let rb = k / 32 * BLOCK;
            let mut one = vec![0u8; rb];
            for r in 0..n {
                row(&x16, k, r, &mut one);
                assert_eq!(one, src[r * rb..(r + 1) * rb], "{n}×{k} row {r}");
                // the last two blocks (or the only one) on their own
                let first = (k / 32).saturating_sub(2);
                let mut piece = vec![0u8; rb - first * BLOCK];
                row_blocks(&x16, k, r, first, &mut piece);
                assert_eq!(piece, src[r * rb + first * BLOCK..(r + 1) * rb], "{n}×{k} row {r}");
            }
        }
    }

    #[test]
    fn layout_puts_the_same_quants_of_sixteen_rows_in_one_vector_after_their_scales() {
        // two blocks per row; row r's block b gets d = (r, b), qs[i] = 100·b + i ^ r (any bytes)
        let (nb, k) = (2, 64);
        let mut src = vec![0u8; ROWS * nb * BLOCK];
        for r in 0..ROWS {
            for b in 0..nb {
                let blk = &mut src[(r * nb + b) * BLOCK..(r * nb + b + 1) * BLOCK];
                blk[0] = r as u8;
                blk[1] = b as u8;
                for i in 0..32 {
                    blk[2 + i] = (100 * b + i) as u8 ^ r as u8;
                }
            }
        }
        let mut x16 = vec![0u8; src.len()];
        interleave(&src, ROWS, k, &mut x16);
        for r in 0..ROWS {
            for b in 0..nb {
                let pb = 544 * b;
                assert_eq!(x16[pb + 2 * r..pb + 2 * r + 2], [r as u8, b as u8]);
                for j in 0..8 {
                    for i in 0..4 {
                        let at = pb + 32 + 64 * j + 4 * r + i;
                        assert_eq!(x16[at], (100 * b + 4 * j + i) as u8 ^ r as u8);
                    }
                }
            }
        }
    }

    /// Every output of every variant equals the GGUF-row `avx2` qmatmul's (the one the model's
    /// bit-exact llama.cpp test pins), bit for bit, for 1 token (the GEMV), 2, 3 (a token
    /// pair and a single token) and many, one panel and several, k of 1 to 48 blocks (odd
    /// counts put the quant vectors off cache lines); and `naive` equals `qmatmul_naive` on
    /// the rows. Outputs past `n` in each strided row must stay NaN.
    #[test]
    fn variants_match_the_row_layout_bit_for_bit() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
        let avx2 = select_qmatmul("avx2");
        let fast = select("avx512");
        if fast.is_none() {
            eprintln!("SKIP qmatvec_q8_0x16/avx512: not available on this CPU");
        }
        for (m, n, nb) in [
            (2, 32, 0),
            (1, 16, 1),
            (1, 32, 3),
            (1, 48, 18),
            (1, 16, 48),
            (2, 16, 2),
            (2, 48, 1),
            (3, 32, 9),
            (3, 16, 48),
            (5, 16, 7),
            (5, 48, 17),
            (9, 16, 48),
            (9, 64, 33),
            (64, 32, 18),
            (64, 16, 5),
        ] {
            let k = 32 * nb;
            let w = random::blocks(QuantType::Q8_0, n * nb, &mut rng);
            let mut x16 = vec![0u8; w.len()];
            interleave(&w, n, k, &mut x16);
            let x = random::values(&mut rng, m * k);
            let acts = quantize_activations(QuantType::Q8_0, &x, m, k);
            let stride = n + 3;
            let run = |f: QMatmulFn, w: &[u8]| {
                let mut y = vec![f32::NAN; m * stride];
                f(w, QuantType::Q8_0, n, k, &acts, &mut y, stride);
                for t in 0..m {
                    assert!(y[t * stride + n..(t + 1) * stride].iter().all(|v| v.is_nan()));
                }
                y
            };
            let bits = |y: Vec<f32>| y.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            let want_naive = bits(run(qmatmul_naive, &w));
            assert_eq!(bits(run(qmatmul_x16_naive, &x16)), want_naive, "naive m={m} n={n} k={k}");
            if let (Some(avx2), Some(fast)) = (avx2, fast) {
                let want = bits(run(avx2, &w));
                assert_eq!(bits(run(fast, &x16)), want, "avx512 m={m} n={n} k={k}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "not whole 16-row panels")]
    fn partial_panels_are_refused_by_name() {
        let mut dst = vec![0u8; 8 * BLOCK];
        interleave(&[0u8; 8 * BLOCK], 8, 32, &mut dst);
    }
}
