//! The weights of a llama GGUF file, prepared for one stage.
//!
//! f32 stages (`quantized_weights == false`) dequantize every matrix once at load with the
//! stage's `dequant_<type>` variant. The `quantized` stage keeps each matrix in its GGUF blocks,
//! borrowed from the memory-mapped file (no copy), and multiplies it with the stage's
//! `qmatvec_<type>` variant against activations quantized to the type's activation format. A
//! matrix whose type has no quantized dot product (f32, f16, bf16) is dequantized in every
//! stage. Norm vectors are always f32.

use std::sync::Arc;

use gllm_kernels::quant::{self, DequantFn, QMatmulFn, QuantType};
use gllm_kernels::stage::ResolvedStage;

use super::error::ModelError;
use crate::config::LlamaConfig;
use crate::gguf::{GgufFile, TensorInfo};

/// How a matrix is stored for the forward pass.
pub enum MatrixData {
    /// Dequantized at load: `[rows, cols]` row-major.
    F32(Vec<f32>),
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
            MatrixData::F32(_) => None,
            MatrixData::Blocks { act, .. } => Some(*act),
        }
    }

    /// Row `r` as f32 into `out` (`out.len() == cols`).
    pub fn row_into(&self, file: &GgufFile, r: usize, out: &mut [f32]) {
        match &self.data {
            MatrixData::F32(w) => out.copy_from_slice(&w[r * self.cols..(r + 1) * self.cols]),
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

/// Dequantizes `rows` rows of `bytes` (`row_bytes` each) into `[rows, cols]` f32.
fn dequantize_all(
    dequant: DequantFn,
    bytes: &[u8],
    rows: usize,
    cols: usize,
    row_bytes: usize,
) -> Vec<f32> {
    let mut out = vec![0.0f32; rows * cols];
    for (dst, src) in out.chunks_exact_mut(cols.max(1)).zip(bytes.chunks_exact(row_bytes.max(1))) {
        dequant(src, dst);
    }
    out
}

fn load_matrix(
    file: &GgufFile,
    stage: &ResolvedStage,
    name: &str,
    keep_blocks: bool,
) -> Result<Matrix, ModelError> {
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
    let data = match qmatmul_for(stage, t).filter(|_| keep_blocks) {
        Some(qmatmul) => {
            let act = t.activation_type().expect("qmatmul_for checked it");
            MatrixData::Blocks { info: info.clone(), qmatmul, act }
        }
        None => {
            MatrixData::F32(dequantize_all(dequant, file.tensor_data(&info), rows, cols, row_bytes))
        }
    };
    Ok(Matrix { name: name.into(), rows, cols, file_type: t, data, row_bytes, dequant })
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
        let keep = stage.quantized_weights;
        let f = &*file;
        let token_embd = load_matrix(f, stage, "token_embd.weight", keep)?;
        let output = match f.tensor("output.weight") {
            Some(_) => Some(load_matrix(f, stage, "output.weight", keep)?),
            None => None,
        };
        let output_norm = load_vector(f, stage, "output_norm.weight")?;
        let mut layers = Vec::with_capacity(config.n_layers);
        for l in 0..config.n_layers {
            let m = |part: &str| load_matrix(f, stage, &format!("blk.{l}.{part}.weight"), keep);
            let v = |part: &str| load_vector(f, stage, &format!("blk.{l}.{part}.weight"));
            layers.push(LayerWeights {
                attn_norm: v("attn_norm")?,
                wq: m("attn_q")?,
                wk: m("attn_k")?,
                wv: m("attn_v")?,
                wo: m("attn_output")?,
                ffn_norm: v("ffn_norm")?,
                gate: m("ffn_gate")?,
                up: m("ffn_up")?,
                down: m("ffn_down")?,
            });
        }
        Ok(Weights { file, token_embd, output, output_norm, layers })
    }
}
