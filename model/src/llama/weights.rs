//! The weights of a llama GGUF file, prepared for one stage.
//!
//! f32 stages (`quantized_weights == false`) dequantize every matrix once at load with the
//! stage's `dequant_<type>` variant. The `quantized` stage keeps each matrix in its GGUF blocks,
//! borrowed from the memory-mapped file (no copy), and multiplies it with the stage's
//! `qmatvec_<type>` variant against activations quantized to the type's activation format. A
//! matrix whose type has no quantized dot product (f32, f16, bf16) is dequantized in every
//! stage. Norm vectors are always f32.
//!
//! Every dequantized matrix lives in one [`F32Arena`]: an anonymous mapping aligned to 2 MiB
//! and advised `MADV_HUGEPAGE`, so decode streams its ~520 MiB through 2 MiB pages instead of
//! 4 KiB ones (one TLB entry per 2 MiB, and no prefetch stream stopped at every 4 KiB page
//! boundary): a one-core AVX2 read of 512 MiB runs 20–22 GB/s against 15–17 GB/s on 4 KiB
//! pages on the Zen 3 development machine. The arena is read-only once filled.
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
use gllm_kernels::quant::{self, DequantFn, QMatmulFn, QuantType};
use gllm_kernels::stage::ResolvedStage;

use super::error::ModelError;
use crate::config::LlamaConfig;
use crate::gguf::{GgufFile, TensorInfo};

/// Huge-page size on x86-64 Linux: the arena starts on a multiple of it.
const HUGE_PAGE: usize = 2 << 20;
/// Matrices start on 64-byte (cache-line) boundaries in the arena.
const MATRIX_ALIGN_FLOATS: usize = 16;

/// The f32 values of every dequantized matrix of a model, in one read-only anonymous mapping
/// (see the module docs). Matrices borrow ranges of it through [`F32Weights`].
pub struct F32Arena {
    map: Mmap,
    /// Byte offset of the first value in `map` (the first 2 MiB boundary).
    start: usize,
    /// Values in the arena.
    len: usize,
}

impl F32Arena {
    /// Maps `len` zeroed values, fills them with `fill`, then makes them read-only.
    fn build(len: usize, fill: impl FnOnce(&mut [f32])) -> std::io::Result<F32Arena> {
        let bytes = len * std::mem::size_of::<f32>();
        // One huge page more than needed, so the values can start on a 2 MiB boundary; the
        // pages before it are never touched and cost no memory.
        let mut map = MmapMut::map_anon(bytes + HUGE_PAGE)?;
        let start = map.as_ptr().align_offset(HUGE_PAGE);
        #[cfg(target_os = "linux")]
        if bytes >= HUGE_PAGE {
            // Advice only: a kernel without transparent huge pages refuses it and the arena
            // stays on 4 KiB pages, which is still correct.
            let _ = map.advise_range(memmap2::Advice::HugePage, start, bytes);
        }
        // SAFETY: `start + bytes <= map.len()` (align_offset < HUGE_PAGE), the start is
        // 2 MiB- and therefore f32-aligned, the zeroed bytes are valid f32 values (0.0), and
        // `map` is exclusively borrowed for the slice's lifetime.
        let values = unsafe {
            std::slice::from_raw_parts_mut(map.as_mut_ptr().add(start).cast::<f32>(), len)
        };
        fill(values);
        Ok(F32Arena { map: map.make_read_only()?, start, len })
    }

    fn values(&self) -> &[f32] {
        // SAFETY: as in `build`: `len` f32 values from the aligned `start`, inside the map,
        // which lives as long as `self` and is no longer written.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(self.start).cast(), self.len) }
    }
}

/// One matrix's `[rows, cols]` row-major values: a range of the model's [`F32Arena`].
pub struct F32Weights {
    arena: Arc<F32Arena>,
    range: std::ops::Range<usize>,
}

impl Deref for F32Weights {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.arena.values()[self.range.clone()]
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
        matches!(self.data, MatrixData::Blocks { .. })
    }

    /// The activation format the matrix multiplies against (`None` for f32 matrices).
    pub fn activation_type(&self) -> Option<QuantType> {
        match &self.data {
            MatrixData::F32(_) | MatrixData::F32Packed(..) => None,
            MatrixData::Blocks { act, .. } => Some(*act),
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

/// A matrix checked and prepared for the stage, before any value is read.
struct MatrixPlan {
    name: String,
    info: TensorInfo,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    dequant: DequantFn,
    /// `Some` when the matrix stays in its blocks.
    qmatmul: Option<QMatmulFn>,
    /// `Some` when the dequantized matrix is packed for this `linear_packed` variant.
    packed: Option<LinearFn>,
    /// Where its values go in the arena when it is dequantized.
    arena_offset: usize,
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
    let qmatmul = qmatmul_for(stage, t).filter(|_| keep_blocks);
    let packed_variant = stage.variant("linear_packed").name;
    let packed = linear_packed::select(packed_variant).filter(|_| packed_variant != "naive");
    Ok(MatrixPlan {
        name: name.into(),
        info,
        rows,
        cols,
        row_bytes,
        dequant,
        qmatmul,
        packed,
        arena_offset: 0,
    })
}

impl MatrixPlan {
    /// Values the matrix takes in the arena.
    fn arena_len(&self) -> usize {
        match self.packed {
            Some(_) => linear_packed::packed_len(self.rows, self.cols),
            None => self.rows * self.cols,
        }
    }

    fn into_matrix(self, arena: &Arc<F32Arena>) -> Matrix {
        let t = self.info.ty;
        let data = match self.qmatmul {
            Some(qmatmul) => {
                let act = t.activation_type().expect("qmatmul_for checked it");
                MatrixData::Blocks { info: self.info, qmatmul, act }
            }
            None => {
                let range = self.arena_offset..self.arena_offset + self.arena_len();
                let weights = F32Weights { arena: Arc::clone(arena), range };
                match self.packed {
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
        for p in plans.iter_mut().filter(|p| p.qmatmul.is_none()) {
            p.arena_offset = arena_len;
            arena_len += p.arena_len().next_multiple_of(MATRIX_ALIGN_FLOATS);
        }
        let arena = F32Arena::build(arena_len, |values| {
            for p in plans.iter().filter(|p| p.qmatmul.is_none()) {
                let out = &mut values[p.arena_offset..p.arena_offset + p.arena_len()];
                let bytes = f.tensor_data(&p.info);
                match p.packed {
                    Some(_) => dequantize_packed(p.dequant, bytes, out, p.cols, p.row_bytes),
                    None => dequantize_all(p.dequant, bytes, out, p.cols, p.row_bytes),
                }
            }
        })
        .map_err(|e| ModelError::Weights {
            tensor: "(all dequantized matrices)".into(),
            message: format!("mapping {arena_len} f32 values: {e}"),
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
