//! Q4_1 weights interleaved by 8 rows (`Q4_1x8`): the same bytes as the GGUF blocks,
//! reordered at load so that one 32-byte load holds the same 4 quants of 8 consecutive rows.
//!
//! A matrix of `n` rows (a multiple of 8) and `k` values per row (a multiple of 32) is stored
//! as `n / 8` panels; panel `p` holds rows `8p..8p+8` as `k / 32` panel blocks of 160 bytes (8
//! GGUF blocks of 20 bytes: the size, and the bytes per row, do not change):
//!
//! ```text
//! byte  0 ..  16   d of rows 0..7 (f16 LE each)
//! byte 16 ..  32   m of rows 0..7 (f16 LE each)
//! byte 32 + 32v + 4r + i  (v < 4, r < 8, i < 4)  =  row r's qs[4v + i]
//! ```
//!
//! Q4_1 keeps element `j < 16` of a block in the low nibble of `qs[j]` and element `j + 16` in
//! its high nibble. So 32-byte vector `v` holds, in its low nibbles, elements `4v..4v+4` of all
//! 8 rows (4 per 32-bit lane, lane = row), and in its high nibbles elements `16+4v..16+4v+4`:
//! one `vpand` (and one shift) gives the operand of a `vpmaddubsw` that serves 8 rows at once
//! against the token's 4 quants broadcast. The decode GEMV then needs no per-row unpacking,
//! shuffles or scale broadcasts ([`crate::arch::q4_1x8_avx2`]).
//!
//! Per output the arithmetic stays exactly ggml's `ggml_vec_dot_q4_1_q8_1` (AVX2): the layout
//! changes where bytes are, never which products are added in which order.
//!
//! Op `qmatvec_q4_1x8` in the registry: `naive` (each panel de-interleaved back into GGUF rows,
//! then [`super::matmul::qmatmul_naive`]: the specification), `avx2` and `avx512` (AVX-512
//! VNNI: `vpdpbusd` in place of `vpmaddubsw` + `vpmaddwd`, and a prefill GEMM on 16 rows per
//! vector; [`crate::arch::q4_1x8_avx512`]). Both fast variants give the same bits.

use super::matmul::{
    check_qmatmul, fill_empty_sums, qmatmul_panels_naive, QMatmulFn, QuantizedActs,
};
use super::QuantType;

/// Rows per panel.
pub const ROWS: usize = 8;
/// Bytes of one GGUF Q4_1 block (`d`, `m`, 16 bytes of nibbles).
const BLOCK: usize = 20;
/// Bytes of one panel block: 8 GGUF blocks.
pub const PANEL_BLOCK: usize = ROWS * BLOCK;

/// Whether a `[n_rows, k]` Q4_1 matrix can be interleaved (whole panels, whole blocks).
pub fn fits(n_rows: usize, k: usize) -> bool {
    n_rows.is_multiple_of(ROWS) && k.is_multiple_of(32)
}

fn check_layout(what: &str, bytes: usize, n_rows: usize, k: usize) {
    assert!(
        fits(n_rows, k),
        "{what}: {n_rows} rows × {k} values is not whole 8-row panels of 32-value blocks"
    );
    let need = n_rows * (k / 32) * BLOCK;
    assert_eq!(
        bytes, need,
        "{what}: {n_rows} rows of {k} Q4_1 values are {need} bytes, got {bytes}"
    );
}

/// Byte offsets of GGUF row `r`'s block `b` pieces inside the interleaved matrix: `(d, m,
/// qs[4v..4v+4] for v < 4)`.
#[inline]
fn panel_offsets(nb: usize, r: usize, b: usize) -> (usize, usize, [usize; 4]) {
    let base = (r / ROWS * nb + b) * PANEL_BLOCK;
    let lane = r % ROWS;
    (base + 2 * lane, base + 16 + 2 * lane, std::array::from_fn(|v| base + 32 + 32 * v + 4 * lane))
}

/// Reorders `src` (`n_rows` GGUF Q4_1 rows of `k` values) into the interleaved layout `dst`
/// (same length). Panics naming the sizes if they do not fit.
pub fn interleave(src: &[u8], n_rows: usize, k: usize, dst: &mut [u8]) {
    check_layout("interleave Q4_1x8 source", src.len(), n_rows, k);
    check_layout("interleave Q4_1x8 destination", dst.len(), n_rows, k);
    let nb = k / 32;
    for (r, row) in src.chunks_exact((nb * BLOCK).max(1)).enumerate() {
        for (b, block) in row.chunks_exact(BLOCK).enumerate() {
            let (d, m, qs) = panel_offsets(nb, r, b);
            dst[d..d + 2].copy_from_slice(&block[0..2]);
            dst[m..m + 2].copy_from_slice(&block[2..4]);
            for (v, &at) in qs.iter().enumerate() {
                dst[at..at + 4].copy_from_slice(&block[4 + 4 * v..8 + 4 * v]);
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
        "Q4_1x8 row: {k} values are {} bytes, got {}",
        nb * BLOCK,
        out.len()
    );
    assert!(src.len() >= (r / ROWS + 1) * nb * PANEL_BLOCK, "Q4_1x8 row {r} past the matrix");
    for (b, block) in out.chunks_exact_mut(BLOCK).enumerate() {
        let (d, m, qs) = panel_offsets(nb, r, b);
        block[0..2].copy_from_slice(&src[d..d + 2]);
        block[2..4].copy_from_slice(&src[m..m + 2]);
        for (v, &at) in qs.iter().enumerate() {
            block[4 + 4 * v..8 + 4 * v].copy_from_slice(&src[at..at + 4]);
        }
    }
}

/// The inverse of [`interleave`].
pub fn deinterleave(src: &[u8], n_rows: usize, k: usize, dst: &mut [u8]) {
    check_layout("de-interleave Q4_1x8 source", src.len(), n_rows, k);
    check_layout("de-interleave Q4_1x8 destination", dst.len(), n_rows, k);
    let row_bytes = k / 32 * BLOCK;
    for (r, out) in dst.chunks_exact_mut(row_bytes.max(1)).enumerate().take(n_rows) {
        row(src, k, r, out);
    }
}

/// The contract of every `qmatvec_q4_1x8` variant: [`check_qmatmul`]'s on the equivalent GGUF
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
    assert_eq!(wtype, QuantType::Q4_1, "qmatvec_q4_1x8: weights must be Q4_1, got {wtype}");
    check_qmatmul(weights, wtype, n_rows, k, acts, y, y_stride);
    check_layout("qmatvec_q4_1x8 weights", weights.len(), n_rows, k);
}

/// The specification: each panel de-interleaved into GGUF rows, then
/// [`qmatmul_naive`] on them.
pub fn qmatmul_x8_naive(
    weights: &[u8],
    wtype: QuantType,
    n_rows: usize,
    k: usize,
    acts: &QuantizedActs,
    y: &mut [f32],
    y_stride: usize,
) {
    check(weights, wtype, n_rows, k, acts, y, y_stride);
    let panel = (ROWS, k / 32 * PANEL_BLOCK);
    qmatmul_panels_naive(weights, wtype, n_rows, k, acts, y, y_stride, panel, deinterleave)
}

/// AVX2 (see [`crate::arch::q4_1x8_avx2`]): one token, the panels' 8 rows side by side; more
/// tokens, the prefill GEMM on panels unpacked from the interleaved bytes. Panics if the CPU
/// lacks AVX2/FMA/F16C.
pub fn qmatmul_x8_avx2(
    weights: &[u8],
    wtype: QuantType,
    n_rows: usize,
    k: usize,
    acts: &QuantizedActs,
    y: &mut [f32],
    y_stride: usize,
) {
    check(weights, wtype, n_rows, k, acts, y, y_stride);
    let cpu = crate::cpu::detected();
    assert!(cpu.has_avx2_f16c(), "qmatvec_q4_1x8 avx2: the CPU lacks AVX2/FMA/F16C");
    if k == 0 {
        return fill_empty_sums(acts.m(), n_rows, y, y_stride);
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has AVX2/FMA/F16C (asserted); every length was checked above.
    unsafe {
        crate::arch::q4_1x8_avx2::qmatmul(weights, n_rows, k, acts, y, y_stride)
    }
    #[cfg(not(target_arch = "x86_64"))]
    qmatmul_x8_naive(weights, wtype, n_rows, k, acts, y, y_stride)
}

/// AVX-512 VNNI (see [`crate::arch::q4_1x8_avx512`]): the same bits as [`qmatmul_x8_avx2`].
/// Panics if the CPU lacks AVX-512 F/BW/VL/VNNI.
pub fn qmatmul_x8_avx512(
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
        "qmatvec_q4_1x8 avx512: the CPU lacks AVX-512 F/BW/VL/VNNI"
    );
    if k == 0 {
        return fill_empty_sums(acts.m(), n_rows, y, y_stride);
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has AVX-512 F/BW/VL/VNNI (asserted); every length was checked above.
    unsafe {
        crate::arch::q4_1x8_avx512::qmatmul(weights, n_rows, k, acts, y, y_stride)
    }
    #[cfg(not(target_arch = "x86_64"))]
    qmatmul_x8_naive(weights, wtype, n_rows, k, acts, y, y_stride)
}

/// The `qmatvec_q4_1x8` variants, fastest last.
pub fn variants() -> &'static [&'static str] {
    &["naive", "avx2", "avx512"]
}

/// The variant named `variant`, or `None` if it does not exist or cannot run on this CPU.
pub fn select(variant: &str) -> Option<QMatmulFn> {
    match variant {
        "naive" => Some(qmatmul_x8_naive),
        "avx2" if crate::cpu::detected().has_avx2_f16c() => Some(qmatmul_x8_avx2),
        "avx512" if crate::cpu::detected().has_avx512_vnni() => Some(qmatmul_x8_avx512),
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
        for (n, k) in [(8, 32), (16, 96), (24, 64)] {
            let src = random::blocks(QuantType::Q4_1, n * k / 32, &mut rng);
            let mut x8 = vec![0u8; src.len()];
            interleave(&src, n, k, &mut x8);
            assert_ne!(x8, src, "{n}×{k}: the layout must differ from the rows");
            let mut back = vec![0u8; src.len()];
            deinterleave(&x8, n, k, &mut back);
            assert_eq!(back, src, "{n}×{k}");
            let rb = k / 32 * BLOCK;
            let mut one = vec![0u8; rb];
            for r in 0..n {
                row(&x8, k, r, &mut one);
                assert_eq!(one, src[r * rb..(r + 1) * rb], "{n}×{k} row {r}");
            }
        }
    }

    #[test]
    fn layout_puts_the_same_quants_of_eight_rows_in_one_vector() {
        // row r's block 0 gets d = r, m = 100 + r, qs[j] = 16·r + j (bytes, any values)
        let k = 32;
        let mut src = vec![0u8; ROWS * BLOCK];
        for r in 0..ROWS {
            let b = &mut src[r * BLOCK..(r + 1) * BLOCK];
            b[0] = r as u8;
            b[2] = 100 + r as u8;
            for j in 0..16 {
                b[4 + j] = (16 * r + j) as u8;
            }
        }
        let mut x8 = vec![0u8; src.len()];
        interleave(&src, ROWS, k, &mut x8);
        for r in 0..ROWS {
            assert_eq!(x8[2 * r], r as u8);
            assert_eq!(x8[16 + 2 * r], 100 + r as u8);
            for v in 0..4 {
                for i in 0..4 {
                    assert_eq!(x8[32 + 32 * v + 4 * r + i], (16 * r + 4 * v + i) as u8);
                }
            }
        }
    }

    /// Every output of every variant equals the GGUF-row `avx2` qmatmul's (the one the model's
    /// bit-exact llama.cpp test pins), bit for bit, for 1 token (the GEMV), a few (the GEMMs'
    /// token tails: the avx512 GEMM runs tokens in pairs) and many, with one panel, an odd
    /// number (the avx512 GEMM pairs panels) and many, k of 1 to 48 blocks; and `naive` equals
    /// `qmatmul_naive` on the rows. Outputs past `n` in each strided row must stay NaN.
    #[test]
    fn variants_match_the_row_layout_bit_for_bit() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let have_avx2 = select_qmatmul("avx2").is_some();
        let fast: Vec<&str> =
            ["avx2", "avx512"].into_iter().filter(|v| select(v).is_some()).collect();
        for v in ["avx2", "avx512"] {
            if select(v).is_none() {
                eprintln!("SKIP qmatvec_q4_1x8/{v}: not available on this CPU");
            }
        }
        for (m, n, nb) in [
            (2, 16, 0),
            (1, 8, 1),
            (1, 16, 3),
            (1, 24, 2),
            (1, 64, 18),
            (2, 8, 2),
            (2, 24, 1),
            (3, 24, 9),
            (3, 8, 48),
            (4, 40, 5),
            (5, 16, 7),
            (5, 24, 17),
            (6, 56, 4),
            (9, 8, 48),
            (9, 40, 33),
            (64, 32, 18),
            (64, 24, 48),
            (7, 8, 1),
        ] {
            let k = 32 * nb;
            let w = random::blocks(QuantType::Q4_1, n * nb, &mut rng);
            let mut x8 = vec![0u8; w.len()];
            interleave(&w, n, k, &mut x8);
            let x = random::values(&mut rng, m * k);
            let acts = quantize_activations(QuantType::Q8_1, &x, m, k);
            let stride = n + 3;
            let run = |f: QMatmulFn, w: &[u8]| {
                let mut y = vec![f32::NAN; m * stride];
                f(w, QuantType::Q4_1, n, k, &acts, &mut y, stride);
                for t in 0..m {
                    assert!(y[t * stride + n..(t + 1) * stride].iter().all(|v| v.is_nan()));
                }
                y
            };
            let bits = |y: Vec<f32>| y.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            let want_naive = bits(run(qmatmul_naive, &w));
            assert_eq!(bits(run(qmatmul_x8_naive, &x8)), want_naive, "naive m={m} n={n} k={k}");
            if have_avx2 {
                let want = bits(run(select_qmatmul("avx2").unwrap(), &w));
                for &v in &fast {
                    let got = bits(run(select(v).unwrap(), &x8));
                    assert_eq!(got, want, "{v} m={m} n={n} k={k}");
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "not whole 8-row panels")]
    fn partial_panels_are_refused_by_name() {
        let mut dst = vec![0u8; 7 * BLOCK];
        interleave(&[0u8; 7 * BLOCK], 7, 32, &mut dst);
    }
}
