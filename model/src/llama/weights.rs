//! The weights of a llama GGUF file, prepared for one stage.
//!
//! f32 stages (`quantized_weights == false`) dequantize every matrix once at load with the
//! stage's `dequant_<type>` variant. The `quantized` stage keeps each matrix in its GGUF blocks,
//! borrowed from the memory-mapped file (no copy; Q4_1 is the exception, see below), and
//! multiplies it with the stage's `qmatvec_<type>` variant against activations quantized to
//! the type's activation format. A matrix whose type has no quantized dot product (f32, f16,
//! bf16) is dequantized in every stage. Norm vectors are always f32.
//!
//! Every dequantized matrix lives in one [`WeightArena`]: an anonymous mapping aligned to 2
//! MiB and advised `MADV_HUGEPAGE`, so decode streams its ~520 MiB through 2 MiB pages instead
//! of 4 KiB ones (one TLB entry per 2 MiB, and no prefetch stream stopped at every 4 KiB page
//! boundary): a one-core AVX2 read of 512 MiB runs 20–22 GB/s against 15–17 GB/s on 4 KiB
//! pages on the Zen 3 development machine. The arena is read-only once filled.
//!
//! When the `quantized` stage chose a fast variant of `qmatvec_q4_1x8` (`avx512` or `avx2`: any
//! but `naive`), every Q4_1 matrix of whole 8-row panels is copied into the arena interleaved
//! by 8 rows ([`gllm_kernels::quant::q4_1x8`]: same size, one load serves 8 rows) and
//! multiplied by that op; the file's pages of those tensors are then released, so resident
//! memory holds the weights once. They also stream through huge pages instead of the file's 4
//! KiB ones.
//!
//! Likewise, when the stage chose a fast variant of `qmatvec_q8_0x16` (`avx512`), every Q8_0
//! matrix of whole 16-row panels (SmolLM2's vocabulary, `token_embd`) is copied into the arena
//! interleaved by 16 rows ([`gllm_kernels::quant::q8_0x16`]: same size, one 64-byte load serves
//! 16 rows) and its file pages released; the embedding lookup reads its rows back block by
//! block.
//!
//! When the stage chose a `linear_packed` variant other than `naive`, every dequantized
//! matrix is stored in that op's panels of 16 rows, transposed (see
//! [`gllm_kernels::ops::linear_packed`]), written panel by panel at load: the GEMM then needs
//! no per-call packing, and its outputs equal the GEMV's bit for bit (prefill == decode).

use std::ops::Deref;
use std::sync::Arc;

use memmap2::{Mmap, MmapMut};

use gllm_kernels::ops::linear::LinearFn;
use gllm_kernels::ops::linear_packed::{self, PANEL};
use gllm_kernels::quant::{self, q4_1x8, q8_0x16, DequantFn, QMatmulFn, QuantType};
use gllm_kernels::stage::ResolvedStage;

use super::error::ModelError;
use crate::config::LlamaConfig;
use crate::gguf::{GgufFile, TensorInfo};

/// Huge-page size on x86-64 Linux: the arena starts on a multiple of it.
const HUGE_PAGE: usize = 2 << 20;
/// Matrices start on 64-byte (cache-line) boundaries in the arena.
const MATRIX_ALIGN: usize = 64;

/// The prepared weights of a model (dequantized f32 matrices, interleaved blocks) in one
/// read-only anonymous mapping (see the module docs). Matrices borrow ranges of it through
/// [`F32Weights`] and [`ArenaBytes`].
pub struct WeightArena {
    map: Mmap,
    /// Byte offset of the first byte in `map` (the first 2 MiB boundary).
    start: usize,
    /// Bytes in the arena.
    len: usize,
}

impl WeightArena {
    /// Maps `len` zeroed bytes (whose start is 2 MiB-aligned), fills them with `fill`, then
    /// makes them read-only.
    fn build(len: usize, fill: impl FnOnce(&mut [u8])) -> std::io::Result<WeightArena> {
        // One huge page more than needed, so the values can start on a 2 MiB boundary; the
        // pages before it are never touched and cost no memory.
        let mut map = MmapMut::map_anon(len + HUGE_PAGE)?;
        let start = map.as_ptr().align_offset(HUGE_PAGE);
        #[cfg(target_os = "linux")]
        if len >= HUGE_PAGE {
            // Advice only: a kernel without transparent huge pages refuses it and the arena
            // stays on 4 KiB pages, which is still correct.
            let _ = map.advise_range(memmap2::Advice::HugePage, start, len);
        }
        fill(&mut map[start..start + len]);
        Ok(WeightArena { map: map.make_read_only()?, start, len })
    }

    fn bytes(&self) -> &[u8] {
        &self.map[self.start..self.start + self.len]
    }
}

/// `len` f32 values from byte `offset` (64-byte aligned) of an arena's bytes.
fn as_f32s(bytes: &[u8], offset: usize, len: usize) -> &[f32] {
    let b = &bytes[offset..offset + len * 4];
    assert_eq!(b.as_ptr().align_offset(4), 0, "f32 weights at a misaligned arena offset");
    // SAFETY: in bounds (sliced above) and f32-aligned (asserted: the arena starts 2 MiB-aligned
    // and matrices at multiples of MATRIX_ALIGN bytes); any bits are a valid f32.
    unsafe { std::slice::from_raw_parts(b.as_ptr().cast(), len) }
}

/// [`as_f32s`], writable (while the arena is being filled).
fn as_f32s_mut(bytes: &mut [u8], offset: usize, len: usize) -> &mut [f32] {
    let b = &mut bytes[offset..offset + len * 4];
    assert_eq!(b.as_ptr().align_offset(4), 0, "f32 weights at a misaligned arena offset");
    // SAFETY: as in `as_f32s`; `b` is exclusively borrowed for the result's lifetime.
    unsafe { std::slice::from_raw_parts_mut(b.as_mut_ptr().cast(), len) }
}

/// One matrix's `[rows, cols]` row-major values: a range of the model's [`WeightArena`].
pub struct F32Weights {
    arena: Arc<WeightArena>,
    /// Byte offset of the first value.
    offset: usize,
    /// Values.
    len: usize,
}

impl Deref for F32Weights {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        as_f32s(self.arena.bytes(), self.offset, self.len)
    }
}

/// One matrix's bytes in the model's [`WeightArena`].
pub struct ArenaBytes {
    arena: Arc<WeightArena>,
    range: std::ops::Range<usize>,
}

impl Deref for ArenaBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.arena.bytes()[self.range.clone()]
    }
}

/// How a matrix is stored for the forward pass.
pub enum MatrixData {
    /// Dequantized at load: `[rows, cols]` row-major.
    F32(F32Weights),
    /// Dequantized at load into `linear_packed` panels (`packed_len(rows, cols)` values),
    /// multiplied by the stage's `linear_packed` variant.
    F32Packed(F32Weights, LinearFn),
    /// The GGUF blocks in the mapped file, multiplied by `qmatmul` against `act` activations.
    Blocks { info: TensorInfo, qmatmul: QMatmulFn, act: QuantType },
    /// Q4_1 blocks interleaved by 8 rows at load ([`q4_1x8`]), multiplied by the stage's
    /// `qmatvec_q4_1x8` variant against Q8_1 activations.
    Q4_1x8 { bytes: ArenaBytes, qmatmul: QMatmulFn },
    /// Q8_0 blocks interleaved by 16 rows at load ([`q8_0x16`]), multiplied by the stage's
    /// `qmatvec_q8_0x16` variant against Q8_0 activations.
    Q8_0x16 { bytes: ArenaBytes, qmatmul: QMatmulFn },
}

/// One weight matrix `W: [rows, cols]` (ggml dims `[cols, rows]`): `y = x·Wᵀ`.
pub struct Matrix {
    pub name: String,
    /// Outputs (`n`).
    pub rows: usize,
    /// Inputs (`k`).
    pub cols: usize,
    /// The type in the file.
    pub file_type: QuantType,
    pub data: MatrixData,
    /// Bytes of one row in the file.
    row_bytes: usize,
    /// The stage's dequantizer of `file_type` (row lookups of the token embedding).
    dequant: DequantFn,
}

impl Matrix {
    /// Whether the matrix is multiplied on its blocks.
    pub fn is_quantized(&self) -> bool {
        matches!(
            self.data,
            MatrixData::Blocks { .. } | MatrixData::Q4_1x8 { .. } | MatrixData::Q8_0x16 { .. }
        )
    }

    /// The activation format the matrix multiplies against (`None` for f32 matrices).
    pub fn activation_type(&self) -> Option<QuantType> {
        match &self.data {
            MatrixData::F32(_) | MatrixData::F32Packed(..) => None,
            MatrixData::Blocks { act, .. } => Some(*act),
            MatrixData::Q4_1x8 { .. } => Some(QuantType::Q8_1),
            MatrixData::Q8_0x16 { .. } => Some(QuantType::Q8_0),
        }
    }

    /// Row `r` as f32 into `out` (`out.len() == cols`).
    pub fn row_into(&self, file: &GgufFile, r: usize, out: &mut [f32]) {
        match &self.data {
            MatrixData::F32(w) => out.copy_from_slice(&w[r * self.cols..(r + 1) * self.cols]),
            MatrixData::F32Packed(w, _) => linear_packed::unpack_row(w, self.cols, r, out),
            MatrixData::Blocks { info, .. } => {
                let bytes = &file.tensor_data(info)[r * self.row_bytes..(r + 1) * self.row_bytes];
                (self.dequant)(bytes, out)
            }
            MatrixData::Q4_1x8 { bytes, .. } => {
                let mut row = vec![0u8; self.row_bytes];
                q4_1x8::row(bytes, self.cols, r, &mut row);
                (self.dequant)(&row, out)
            }
            MatrixData::Q8_0x16 { bytes, .. } => {
                // the embedding lookup of every token: 8 blocks at a time through the stack,
                // so a decode step allocates nothing
                const CHUNK: usize = 8;
                let mut blocks = [0u8; CHUNK * 34];
                for (c, values) in out.chunks_mut(CHUNK * 32).enumerate() {
                    let piece = &mut blocks[..values.len() / 32 * 34];
                    q8_0x16::row_blocks(bytes, self.cols, r, c * CHUNK, piece);
                    (self.dequant)(piece, values)
                }
            }
        }
    }
}

/// The weights of one transformer block.
pub struct LayerWeights {
    pub attn_norm: Vec<f32>,
    pub wq: Matrix,
    pub wk: Matrix,
    pub wv: Matrix,
    pub wo: Matrix,
    pub ffn_norm: Vec<f32>,
    pub gate: Matrix,
    pub up: Matrix,
    pub down: Matrix,
}

/// Every weight of the model.
pub struct Weights {
    pub file: Arc<GgufFile>,
    pub token_embd: Matrix,
    /// `None` when the file ties the output projection to `token_embd`.
    pub output: Option<Matrix>,
    pub output_norm: Vec<f32>,
    pub layers: Vec<LayerWeights>,
}

impl Weights {
    /// The matrix the logits come from: `output.weight`, or the tied token embedding.
    pub fn logits_matrix(&self) -> &Matrix {
        self.output.as_ref().unwrap_or(&self.token_embd)
    }
}

/// The stage's dequantizer for `t` (`dequant_<t>` variant), else the fastest available.
fn dequantizer(stage: &ResolvedStage, t: QuantType, name: &str) -> Result<DequantFn, ModelError> {
    if t == QuantType::F32 {
        return quant::dequant_fn(t, "naive").ok_or_else(|| unsupported(name, t, "f32 copy"));
    }
    let op = format!("dequant_{}", t.name().to_lowercase());
    let chosen = stage.choices.get(op.as_str()).and_then(|v| quant::dequant_fn(t, v.name));
    chosen
        .or_else(|| quant::best_dequant_fn(t))
        .ok_or_else(|| unsupported(name, t, "dequantization"))
}

/// The stage's quantized matmul for weight type `t` (`qmatvec_<t>` variant).
fn qmatmul_for(stage: &ResolvedStage, t: QuantType) -> Option<QMatmulFn> {
    t.activation_type()?;
    let op = format!("qmatvec_{}", t.name().to_lowercase());
    let variant = stage.choices.get(op.as_str())?.name;
    quant::select_qmatmul(variant)
}

fn unsupported(name: &str, t: QuantType, what: &str) -> ModelError {
    ModelError::Weights {
        tensor: name.to_string(),
        message: format!("type {t} has no {what} in this build"),
    }
}

/// Dequantizes `rows` rows of `bytes` (`row_bytes` each) into `out` (`[rows, cols]` f32).
fn dequantize_all(
    dequant: DequantFn,
    bytes: &[u8],
    out: &mut [f32],
    cols: usize,
    row_bytes: usize,
) {
    for (dst, src) in out.chunks_exact_mut(cols.max(1)).zip(bytes.chunks_exact(row_bytes.max(1))) {
        dequant(src, dst);
    }
}

/// Dequantizes the matrix in `bytes` (`row_bytes` per row of `cols` values) into `out`
/// (`packed_len(rows, cols)` values) as `linear_packed` panels, 16 rows at a time.
fn dequantize_packed(
    dequant: DequantFn,
    bytes: &[u8],
    out: &mut [f32],
    cols: usize,
    row_bytes: usize,
) {
    let mut rows = vec![0.0f32; PANEL * cols];
    let panel_bytes = bytes.chunks(PANEL * row_bytes.max(1));
    for (panel, src) in out.chunks_exact_mut(PANEL * cols.max(1)).zip(panel_bytes) {
        let n = src.len() / row_bytes.max(1);
        dequantize_all(dequant, src, &mut rows[..n * cols], cols, row_bytes);
        linear_packed::pack(&rows[..n * cols], n, cols, panel);
    }
}

/// How a planned matrix is stored.
#[derive(Clone, Copy)]
enum Storage {
    /// Its GGUF blocks in the mapped file.
    Blocks(QMatmulFn),
    /// Q4_1 interleaved by 8 rows into the arena.
    Q4_1x8(QMatmulFn),
    /// Q8_0 interleaved by 16 rows into the arena.
    Q8_0x16(QMatmulFn),
    /// Dequantized into the arena, packed for `linear_packed` when `Some`.
    F32(Option<LinearFn>),
}

/// A matrix checked and prepared for the stage, before any value is read.
struct MatrixPlan {
    name: String,
    info: TensorInfo,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    dequant: DequantFn,
    storage: Storage,
    /// Where it goes in the arena (unless it stays in its blocks).
    arena_offset: usize,
}

/// The stage's `qmatvec_q4_1x8` function when it is worth interleaving for (not `naive`):
/// then every Q4_1 matrix of whole 8-row panels is stored interleaved.
pub fn interleaved_qmatmul(stage: &ResolvedStage) -> Option<QMatmulFn> {
    let variant = stage.choices.get(quant::QMATVEC_Q4_1X8)?.name;
    q4_1x8::select(variant).filter(|_| variant != "naive")
}

/// The stage's `qmatvec_q8_0x16` function when it is worth interleaving for (not `naive`):
/// then every Q8_0 matrix of whole 16-row panels is stored interleaved.
pub fn interleaved_q8_0_qmatmul(stage: &ResolvedStage) -> Option<QMatmulFn> {
    let variant = stage.choices.get(quant::QMATVEC_Q8_0X16)?.name;
    q8_0x16::select(variant).filter(|_| variant != "naive")
}

fn plan_matrix(
    file: &GgufFile,
    stage: &ResolvedStage,
    name: &str,
    keep_blocks: bool,
) -> Result<MatrixPlan, ModelError> {
    let info = file.require_tensor(name)?.clone();
    if info.dims.len() != 2 {
        return Err(ModelError::Weights {
            tensor: name.into(),
            message: format!("expected a matrix, found dims {:?}", info.dims),
        });
    }
    let (cols, rows) = (info.dims[0] as usize, info.dims[1] as usize);
    let t = info.ty;
    let row_bytes = t
        .row_bytes(cols)
        .map_err(|e| ModelError::Weights { tensor: name.into(), message: e.to_string() })?;
    let dequant = dequantizer(stage, t, name)?;
    let packed_variant = stage.variant("linear_packed").name;
    let packed = linear_packed::select(packed_variant).filter(|_| packed_variant != "naive");
    let x8 =
        interleaved_qmatmul(stage).filter(|_| t == QuantType::Q4_1 && q4_1x8::fits(rows, cols));
    let x16 = interleaved_q8_0_qmatmul(stage)
        .filter(|_| t == QuantType::Q8_0 && q8_0x16::fits(rows, cols));
    let storage = match (keep_blocks, x8, x16, qmatmul_for(stage, t)) {
        (true, Some(f), _, _) => Storage::Q4_1x8(f),
        (true, None, Some(f), _) => Storage::Q8_0x16(f),
        (true, None, None, Some(f)) => Storage::Blocks(f),
        _ => Storage::F32(packed),
    };
    Ok(MatrixPlan {
        name: name.into(),
        info,
        rows,
        cols,
        row_bytes,
        dequant,
        storage,
        arena_offset: 0,
    })
}

impl MatrixPlan {
    /// Bytes the matrix takes in the arena.
    fn arena_bytes(&self) -> usize {
        match self.storage {
            Storage::Blocks(_) => 0,
            Storage::Q4_1x8(_) | Storage::Q8_0x16(_) => self.info.n_bytes as usize,
            Storage::F32(Some(_)) => 4 * linear_packed::packed_len(self.rows, self.cols),
            Storage::F32(None) => 4 * self.rows * self.cols,
        }
    }

    /// Writes the matrix into its arena bytes `out` (`arena_bytes()` long).
    fn fill(&self, file: &GgufFile, out: &mut [u8]) {
        let bytes = file.tensor_data(&self.info);
        let (cols, row_bytes) = (self.cols, self.row_bytes);
        match self.storage {
            Storage::Blocks(_) => {}
            Storage::Q4_1x8(_) => q4_1x8::interleave(bytes, self.rows, cols, out),
            Storage::Q8_0x16(_) => q8_0x16::interleave(bytes, self.rows, cols, out),
            Storage::F32(packed) => {
                let values = as_f32s_mut(out, 0, out.len() / 4);
                match packed {
                    Some(_) => dequantize_packed(self.dequant, bytes, values, cols, row_bytes),
                    None => dequantize_all(self.dequant, bytes, values, cols, row_bytes),
                }
            }
        }
    }

    fn into_matrix(self, arena: &Arc<WeightArena>) -> Matrix {
        let t = self.info.ty;
        let (offset, len) = (self.arena_offset, self.arena_bytes());
        let arena = Arc::clone(arena);
        let data = match self.storage {
            Storage::Blocks(qmatmul) => {
                let act = t.activation_type().expect("qmatmul_for checked it");
                MatrixData::Blocks { info: self.info, qmatmul, act }
            }
            Storage::Q4_1x8(qmatmul) => MatrixData::Q4_1x8 {
                bytes: ArenaBytes { arena, range: offset..offset + len },
                qmatmul,
            },
            Storage::Q8_0x16(qmatmul) => MatrixData::Q8_0x16 {
                bytes: ArenaBytes { arena, range: offset..offset + len },
                qmatmul,
            },
            Storage::F32(packed) => {
                let weights = F32Weights { arena, offset, len: len / 4 };
                match packed {
                    Some(linear) => MatrixData::F32Packed(weights, linear),
                    None => MatrixData::F32(weights),
                }
            }
        };
        Matrix {
            name: self.name,
            rows: self.rows,
            cols: self.cols,
            file_type: t,
            data,
            row_bytes: self.row_bytes,
            dequant: self.dequant,
        }
    }
}

fn load_vector(file: &GgufFile, stage: &ResolvedStage, name: &str) -> Result<Vec<f32>, ModelError> {
    let info = file.require_tensor(name)?;
    let n = info.n_elements as usize;
    let dequant = dequantizer(stage, info.ty, name)?;
    let mut out = vec![0.0f32; n];
    dequant(file.tensor_data(info), &mut out);
    Ok(out)
}

impl Weights {
    /// Reads every tensor `config` names from `file`, prepared for `stage`. The shapes were
    /// checked by [`LlamaConfig::check_tensors`].
    pub fn load(
        file: Arc<GgufFile>,
        config: &LlamaConfig,
        stage: &ResolvedStage,
    ) -> Result<Weights, ModelError> {
        const LAYER_MATRICES: [&str; 7] =
            ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];
        let keep = stage.quantized_weights;
        let f = &*file;
        let tied = f.tensor("output.weight").is_none();
        let mut names = vec!["token_embd.weight".to_string()];
        if !tied {
            names.push("output.weight".into());
        }
        for l in 0..config.n_layers {
            names.extend(LAYER_MATRICES.iter().map(|part| format!("blk.{l}.{part}.weight")));
        }
        let mut plans = names
            .iter()
            .map(|name| plan_matrix(f, stage, name, keep))
            .collect::<Result<Vec<_>, _>>()?;
        let mut arena_len = 0;
        for p in &mut plans {
            p.arena_offset = arena_len;
            arena_len += p.arena_bytes().next_multiple_of(MATRIX_ALIGN);
        }
        let arena = WeightArena::build(arena_len, |bytes| {
            for p in &plans {
                p.fill(f, &mut bytes[p.arena_offset..p.arena_offset + p.arena_bytes()]);
                if let Storage::Q4_1x8(_) | Storage::Q8_0x16(_) = p.storage {
                    // Read no more from the file: its pages leave the resident set (the page
                    // cache keeps them), one matrix at a time, so the peak holds one copy.
                    f.release_pages(&p.info);
                }
            }
        })
        .map_err(|e| ModelError::Weights {
            tensor: "(all prepared matrices)".into(),
            message: format!("mapping {arena_len} bytes: {e}"),
        })?;
        let arena = Arc::new(arena);
        let mut matrices = plans.into_iter().map(|p| p.into_matrix(&arena));
        let mut next = || matrices.next().expect("one plan per name");
        let token_embd = next();
        let output = (!tied).then(&mut next);
        let output_norm = load_vector(f, stage, "output_norm.weight")?;
        let mut layers = Vec::with_capacity(config.n_layers);
        for l in 0..config.n_layers {
            let v = |part: &str| load_vector(f, stage, &format!("blk.{l}.{part}.weight"));
            layers.push(LayerWeights {
                attn_norm: v("attn_norm")?,
                wq: next(),
                wk: next(),
                wv: next(),
                wo: next(),
                ffn_norm: v("ffn_norm")?,
                gate: next(),
                up: next(),
                down: next(),
            });
        }
        Ok(Weights { file, token_embd, output, output_norm, layers })
    }
}
