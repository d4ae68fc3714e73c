//! The quantized matmul driver: activations quantized once per input, then every weight row
//! dotted directly on its blocks.
//!
//! `y[t·y_stride + r] = Σ_i w[r, i]·x[t, i]` for tokens `t < m` and weight rows `r < n_rows`,
//! with `w` a contiguous run of rows of `k` values in blocks of `wtype` (a slice of a GGUF
//! tensor: the caller splits rows across threads by passing a sub-slice of rows and the
//! output shifted by its first row) and `x` quantized to `wtype.activation_type()`.
//!
//! Variants: `naive` (row by row with the spec dot), `simd` (row by row with the `wide`
//! dots, each weight row reused across all tokens), `avx2` (tiles of 4 rows × up to 3
//! tokens: each weight block is unpacked once and used for every token of the tile; from
//! [`gemm_min_m`] tokens on, a GEMM that unpacks each panel of 8 weight rows once per call,
//! transposed so one vector holds the same 4 quants of the 8 rows, and runs it over all tokens).

use super::block::as_blocks_mut;
use super::{dot_fn, q8_k, QuantError, QuantType};

/// A matrix of activations `[m, k]` quantized to one activation format, row-major, blocks
/// byte-identical to ggml's, plus each block's scale (and for Q8_1 its `s`) as f32 so the fast
/// kernels do not convert f16 in their inner loops.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedActs {
    ty: QuantType,
    m: usize,
    k: usize,
    row_bytes: usize,
    blocks: Vec<u8>,
    d: Vec<f32>,
    s: Vec<f32>,
}

impl QuantizedActs {
    /// An empty holder for activations of type `ty`, to be filled by
    /// [`quantize_activations_into`] (reusing its buffers across calls).
    pub fn empty(ty: QuantType) -> Self {
        QuantizedActs {
            ty,
            m: 0,
            k: 0,
            row_bytes: 0,
            blocks: Vec::new(),
            d: Vec::new(),
            s: Vec::new(),
        }
    }

    /// Wraps already-quantized blocks (`m` rows of `k` values of `ty`). Panics naming the
    /// lengths if `blocks` is not exactly that.
    pub fn from_blocks(ty: QuantType, m: usize, k: usize, blocks: Vec<u8>) -> Self {
        let row_bytes = ty.row_bytes(k).unwrap_or_else(|e| panic!("QuantizedActs: {e}"));
        assert_eq!(
            blocks.len(),
            m * row_bytes,
            "QuantizedActs {ty}: {m} rows of {k} need {} bytes, got {}",
            m * row_bytes,
            blocks.len()
        );
        let mut acts = QuantizedActs { ty, m, k, row_bytes, blocks, d: Vec::new(), s: Vec::new() };
        acts.fill_scales();
        acts
    }

    pub fn ty(&self) -> QuantType {
        self.ty
    }

    pub fn m(&self) -> usize {
        self.m
    }

    pub fn k(&self) -> usize {
        self.k
    }

    /// The blocks of token `t`.
    pub fn row(&self, t: usize) -> &[u8] {
        &self.blocks[t * self.row_bytes..(t + 1) * self.row_bytes]
    }

    /// All blocks, row-major.
    pub fn blocks(&self) -> &[u8] {
        &self.blocks
    }

    /// Each block's scale `d` as f32, row-major (`m · k/block` values).
    pub fn scales(&self) -> &[f32] {
        &self.d
    }

    /// Each Q8_1 block's `s = d·Σq` as f32 (empty for other types).
    pub fn sums(&self) -> &[f32] {
        &self.s
    }

    fn fill_scales(&mut self) {
        let bb = self.ty.block_bytes();
        self.d.clear();
        self.s.clear();
        for b in self.blocks.chunks_exact(bb) {
            match self.ty {
                QuantType::Q8K => self.d.push(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                QuantType::Q8_1 => {
                    self.d.push(super::block::f16_field([b[0], b[1]]));
                    self.s.push(super::block::f16_field([b[2], b[3]]));
                }
                _ => self.d.push(super::block::f16_field([b[0], b[1]])),
            }
        }
    }
}

/// Quantizes activations `x: [m, k]` (row-major) to `act` (Q8_0, Q8_1 or Q8_K) as ggml's
/// CPU backend does before its quantized dot products: Q8_0/Q8_1 with its x86 quantizer
/// ([`quantize_q8_ggml`]), Q8_K with its reference one. Panics naming the lengths if `k` is
/// not a whole number of blocks or `x.len() != m·k` (see [`try_quantize_activations`]).
pub fn quantize_activations(act: QuantType, x: &[f32], m: usize, k: usize) -> QuantizedActs {
    try_quantize_activations(act, x, m, k).unwrap_or_else(|e| panic!("quantize_activations: {e}"))
}

/// [`quantize_activations`] returning the contract violation as an error.
pub fn try_quantize_activations(
    act: QuantType,
    x: &[f32],
    m: usize,
    k: usize,
) -> Result<QuantizedActs, QuantError> {
    let mut acts = QuantizedActs::empty(act);
    quantize_activations_into(&mut acts, act, x, m, k)?;
    Ok(acts)
}

/// [`quantize_activations`] into an existing holder, reusing its buffers.
pub fn quantize_activations_into(
    acts: &mut QuantizedActs,
    act: QuantType,
    x: &[f32],
    m: usize,
    k: usize,
) -> Result<(), QuantError> {
    if !matches!(act, QuantType::Q8_0 | QuantType::Q8_1 | QuantType::Q8K) {
        return Err(QuantError::Unsupported { ty: act, what: "activation quantizer" });
    }
    let row_bytes = act.row_bytes(k)?;
    if x.len() != m * k {
        return Err(QuantError::ValueLength {
            ty: act,
            what: "the activations [m, k]",
            expected: m * k,
            got: x.len(),
        });
    }
    acts.ty = act;
    acts.m = m;
    acts.k = k;
    acts.row_bytes = row_bytes;
    acts.blocks.clear();
    acts.blocks.resize(m * row_bytes, 0);
    let cpu = crate::cpu::detected();
    #[cfg(target_arch = "x86_64")]
    if cpu.has_avx2_f16c() {
        // SAFETY: AVX2/FMA/F16C present; `x` fills exactly the blocks (checked above). The
        // AVX2 quantizers are bit-identical to the scalar ones below
        // (tests/quant_quantizers.rs).
        unsafe {
            match act {
                QuantType::Q8_0 => {
                    crate::arch::quant_avx2::quantize_q8_0_or_1(x, &mut acts.blocks, false)
                }
                QuantType::Q8_1 => {
                    crate::arch::quant_avx2::quantize_q8_0_or_1(x, &mut acts.blocks, true)
                }
                _ => crate::arch::quant_avx2::quantize_q8_k(x, &mut acts.blocks),
            }
        }
        acts.fill_scales();
        return Ok(());
    }
    let _ = cpu;
    match act {
        QuantType::Q8_0 => quantize_q8_ggml(x, &mut acts.blocks, false),
        QuantType::Q8_1 => quantize_q8_ggml(x, &mut acts.blocks, true),
        _ => q8_k::quantize(x, as_blocks_mut(&mut acts.blocks)),
    }
    acts.fill_scales();
    Ok(())
}

/// ggml's x86 activation quantizer (`quantize_row_q8_0`/`quantize_row_q8_1` built with AVX2),
/// one value at a time: per block of 32, `d = amax/127` (stored as f16), `id = 127/amax` (0
/// if `amax` is 0), `q = x·id` rounded to nearest even and converted like `vcvtps2dq`
/// (NaN or out of range → `i32::MIN`), stored saturated to i8; for Q8_1 (`with_sum`)
/// `s = d·Σq` with the i32 sum wrapping, stored as f16. It differs from the reference
/// quantizers (`q8_0::quantize`: `1/d`, ties away from zero) only at ties and in the last bit
/// of `id`, and that is enough to change a quantized model's logits (see `ops::ggml`).
pub fn quantize_q8_ggml(x: &[f32], out: &mut [u8], with_sum: bool) {
    let (bb, qs_at) = if with_sum { (36, 4) } else { (34, 2) };
    assert_eq!(
        x.len() / 32 * bb,
        out.len(),
        "quantize_q8_ggml: {} values, {} bytes",
        x.len(),
        out.len()
    );
    for (xs, b) in x.chunks_exact(32).zip(out.chunks_exact_mut(bb)) {
        let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mut sum = 0i32;
        for (o, &v) in b[qs_at..].iter_mut().zip(xs) {
            let r = (v * id).round_ties_even();
            let q =
                if (-2_147_483_648.0..2_147_483_648.0).contains(&r) { r as i32 } else { i32::MIN };
            sum = sum.wrapping_add(q);
            *o = q.clamp(-128, 127) as i8 as u8;
        }
        b[..2].copy_from_slice(&super::f16::f32_to_f16(d).to_le_bytes());
        if with_sum {
            b[2..4].copy_from_slice(&super::f16::f32_to_f16(d * sum as f32).to_le_bytes());
        }
    }
}

/// `y[t·y_stride + r] = Σ_i w[r, i]·x[t, i]`; see the module docs. The function-pointer form
/// of [`qmatmul`] (pick a variant once with [`select_qmatmul`]).
pub type QMatmulFn = fn(&[u8], QuantType, usize, usize, &QuantizedActs, &mut [f32], usize);

/// Every qmatmul variant this build has, fastest last.
pub fn qmatmul_variants() -> &'static [&'static str] {
    &["naive", "simd", "avx2"]
}

/// The qmatmul variant named `variant`, or `None` if it does not exist or cannot run on this
/// CPU (`avx512` is not implemented: this project's machines run AVX2 only).
pub fn select_qmatmul(variant: &str) -> Option<QMatmulFn> {
    match variant {
        "naive" => Some(qmatmul_naive),
        "simd" => Some(qmatmul_simd),
        "avx2" if crate::cpu::detected().has_avx2_f16c() => Some(qmatmul_avx2),
        _ => None,
    }
}

/// The fastest qmatmul variant available here.
pub fn best_qmatmul_variant() -> &'static str {
    if select_qmatmul("avx2").is_some() {
        "avx2"
    } else {
        "simd"
    }
}

/// The contract of every qmatmul variant; panics with the numbers.
pub fn check_qmatmul(
    weights: &[u8],
    wtype: QuantType,
    n_rows: usize,
    k: usize,
    acts: &QuantizedActs,
    y: &[f32],
    y_stride: usize,
) {
    let act = wtype
        .activation_type()
        .unwrap_or_else(|| panic!("qmatmul: {wtype} has no quantized dot product"));
    assert_eq!(
        acts.ty, act,
        "qmatmul: {wtype} weights pair with {act} activations, got {}",
        acts.ty
    );
    let row_bytes = wtype.row_bytes(k).unwrap_or_else(|e| panic!("qmatmul: {e}"));
    assert_eq!(
        acts.k, k,
        "qmatmul: weights have rows of {k} values but the activations have {}",
        acts.k
    );
    assert_eq!(
        weights.len(),
        n_rows * row_bytes,
        "qmatmul {wtype}: {n_rows} rows of {k} values need {} bytes, got {}",
        n_rows * row_bytes,
        weights.len()
    );
    if acts.m > 1 {
        assert!(y_stride >= n_rows, "qmatmul: y_stride {y_stride} < n_rows {n_rows}");
    }
    if acts.m > 0 && n_rows > 0 {
        let need = (acts.m - 1) * y_stride + n_rows;
        assert!(y.len() >= need, "qmatmul: y has {} values, {} tokens × stride {y_stride} with {n_rows} rows need {need}", y.len(), acts.m);
    }
}

/// [`qmatmul`] with the fastest variant available here.
pub fn qmatmul(
    weights: &[u8],
    wtype: QuantType,
    n_rows: usize,
    k: usize,
    acts: &QuantizedActs,
    y: &mut [f32],
    y_stride: usize,
) {
    let f = select_qmatmul(best_qmatmul_variant()).expect("the best variant is available");
    f(weights, wtype, n_rows, k, acts, y, y_stride)
}

#[allow(clippy::too_many_arguments)]
fn rows_with(
    variant: &str,
    weights: &[u8],
    wtype: QuantType,
    n_rows: usize,
    k: usize,
    acts: &QuantizedActs,
    y: &mut [f32],
    y_stride: usize,
) {
    check_qmatmul(weights, wtype, n_rows, k, acts, y, y_stride);
    let dot = dot_fn(wtype, variant).expect("every weight type has naive and simd dots");
    if k == 0 {
        return fill_empty_sums(acts.m, n_rows, y, y_stride);
    }
    let row_bytes = weights.len() / n_rows.max(1);
    for (r, w) in weights.chunks_exact(row_bytes.max(1)).enumerate().take(n_rows) {
        for t in 0..acts.m {
            y[t * y_stride + r] = dot(w, acts.row(t));
        }
    }
}

/// The outputs of a matmul over `k = 0` values: every one the empty sum, 0.
pub(crate) fn fill_empty_sums(m: usize, n_rows: usize, y: &mut [f32], y_stride: usize) {
    for t in 0..m {
        y[t * y_stride..t * y_stride + n_rows].fill(0.0);
    }
}

/// The specification of a layout that interleaves `rows` GGUF rows per panel of `panel_bytes`
/// (`q4_1x8`, `q8_0x16`): each panel back into GGUF rows by `deinterleave` (`(panel, rows, k,
/// out)`), then [`qmatmul_naive`] on them. The caller has checked the arguments.
#[allow(clippy::too_many_arguments)]
pub(super) fn qmatmul_panels_naive(
    weights: &[u8],
    wtype: QuantType,
    n_rows: usize,
    k: usize,
    acts: &QuantizedActs,
    y: &mut [f32],
    y_stride: usize,
    (rows, panel_bytes): (usize, usize),
    deinterleave: fn(&[u8], usize, usize, &mut [u8]),
) {
    if k == 0 {
        return fill_empty_sums(acts.m, n_rows, y, y_stride);
    }
    let mut gguf_rows = vec![0u8; panel_bytes];
    let need = if acts.m == 0 { 0 } else { (acts.m - 1) * y_stride + rows };
    for (p, panel) in weights.chunks_exact(panel_bytes).enumerate() {
        deinterleave(panel, rows, k, &mut gguf_rows);
        let at = p * rows;
        qmatmul_naive(&gguf_rows, wtype, rows, k, acts, &mut y[at..at + need], y_stride);
    }
}

/// Row by row, token by token, with the specification dots.
pub fn qmatmul_naive(
    weights: &[u8],
    wtype: QuantType,
    n_rows: usize,
    k: usize,
    acts: &QuantizedActs,
    y: &mut [f32],
    y_stride: usize,
) {
    rows_with("naive", weights, wtype, n_rows, k, acts, y, y_stride)
}

/// Row by row with the `wide` dots; each weight row stays in L1 across the tokens.
pub fn qmatmul_simd(
    weights: &[u8],
    wtype: QuantType,
    n_rows: usize,
    k: usize,
    acts: &QuantizedActs,
    y: &mut [f32],
    y_stride: usize,
) {
    rows_with("simd", weights, wtype, n_rows, k, acts, y, y_stride)
}

/// From how many tokens on the `avx2` variant runs the prefill GEMM
/// (`arch::quant_avx2::qgemm`: 8-row weight panels unpacked once, then every token) for a
/// 32-value weight format; below it the tile walk (`arch::quant_avx2::qmatmul`), which needs
/// no unpacking pass. Measured with `--example qgemm_speed -- M` (one core, best batches):
/// Q4_1 at m = 2 even (0.96-1.10×), at m = 3 the GEMM 1.13-1.20× faster, at m = 4 1.23-1.38×;
/// the signed formats (Q4_0, Q8_0: their panels hold `|q|` too) at m = 3 0.71-0.94×, so 5.
pub fn gemm_min_m(wtype: QuantType) -> usize {
    match wtype {
        QuantType::Q4_1 | QuantType::Q5_1 => 3,
        _ => 5,
    }
}

/// Hand-written AVX2 (`maddubs`/`madd`) block dots: for fewer than [`gemm_min_m`] tokens (and
/// for the K-quants) tiles of 4 weight rows × up to 3 tokens; from [`gemm_min_m`] tokens on,
/// for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0, the prefill GEMM. Panics if the CPU lacks AVX2/FMA/F16C.
pub fn qmatmul_avx2(
    weights: &[u8],
    wtype: QuantType,
    n_rows: usize,
    k: usize,
    acts: &QuantizedActs,
    y: &mut [f32],
    y_stride: usize,
) {
    check_qmatmul(weights, wtype, n_rows, k, acts, y, y_stride);
    let cpu = crate::cpu::detected();
    assert!(cpu.has_avx2_f16c(), "qmatmul avx2: the CPU lacks AVX2/FMA/F16C");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has AVX2/FMA/F16C (asserted); every length was checked above.
    unsafe {
        if acts.m >= gemm_min_m(wtype) {
            crate::arch::quant_avx2::qgemm(weights, wtype, n_rows, k, acts, y, y_stride)
        } else {
            crate::arch::quant_avx2::qmatmul(weights, wtype, n_rows, k, acts, y, y_stride)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    qmatmul_simd(weights, wtype, n_rows, k, acts, y, y_stride)
}
