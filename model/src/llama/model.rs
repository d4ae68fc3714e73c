//! The llama forward pass over a KV cache, every op through one stage's kernels.
//!
//! Per token batch `x: [m, n_embd]` at positions `pos .. pos + m`:
//! ```text
//! x = token_embd[ids]
//! for each layer:
//!     h = rms_norm(x) · attn_norm
//!     q, k, v = h·Wqᵀ, h·Wkᵀ, h·Wvᵀ ; RoPE(q, k) (adjacent pairs, ggml mode 0)
//!     K, V cache[pos .. pos + m] = k, v
//!     x += attention(q, K, V)·Woᵀ            (grouped-query, causal)
//!     h = rms_norm(x) · ffn_norm
//!     x += (silu(h·Wgateᵀ) ⊙ h·Wupᵀ)·Wdownᵀ
//! logits = (rms_norm(x) · output_norm)·Woutᵀ  (Wout = token_embd when tied)
//! ```
//! Prefill runs the prompt as batches of up to `max_batch` tokens (the GEMM path); decode is
//! `m = 1` (the GEMV path). Kernels are function pointers chosen once at load; scratch
//! buffers are allocated at load, so the decode loop allocates nothing. Matmuls split their
//! weight rows across the model's persistent [`ThreadPool`], prefill attention splits its
//! query tokens and decode attention its heads (above a minimum size), and decode runs each
//! part's SiLU·up inside the gate/up region; the row-wise ops of a prefill batch (norms,
//! RoPE, KV-cache writes, SiLU·up, residual adds) split its tokens ([`super::rows`]), and
//! decode runs them on the calling thread.

use std::path::Path;
use std::sync::Arc;

use gllm_kernels::ops::attention::{AttentionFn, AttentionShape};
use gllm_kernels::ops::ggml as ggml_ops;
use gllm_kernels::ops::ggml_tiled::{self, TILED_MIN_QUERIES};
use gllm_kernels::ops::rope::{RopePairing, RopeShape, RopeTable};
use gllm_kernels::ops::KernelSet;
use gllm_kernels::stage::{self, ResolvedStage};
use gllm_kernels::threads::ThreadPool;

use super::attention::attend;
use super::error::ModelError;
use super::matmul::{project, project_group_decode, Activations, PartBuffers, SharedMut};
use super::rows::{self, KvLayout};
use super::timing::{Part, PartTimes, Stopwatch};
use super::weights::{Matrix, Weights};
use crate::config::LlamaConfig;
use crate::gguf::GgufFile;

/// Tokens per ubatch of llama.cpp's `llama_decode` by default (`n_ubatch`): what decides
/// which flash attention its CPU backend runs (see [`Model::forward`]).
pub const LLAMA_UBATCH: usize = 512;

/// Load-time choices.
#[derive(Clone, Debug)]
pub struct ModelOptions {
    /// Threads of the model's pool (the caller included); 0 is treated as 1.
    pub threads: usize,
    /// KV-cache positions (default: the file's context length). Memory is committed only as
    /// positions are written.
    pub max_positions: Option<usize>,
    /// Tokens per prefill batch; longer inputs run in several batches.
    pub max_batch: usize,
    /// Round K and V to f16 precision as they enter the cache (stored as f32), as llama.cpp's
    /// default f16 KV cache does, whatever the stage. Stages with llama.cpp's arithmetic
    /// (`quantized`, see [`Model::ggml_arithmetic`]) always do.
    pub kv_f16: bool,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions { threads: 1, max_positions: None, max_batch: 256, kv_f16: false }
    }
}

/// K and V of every layer, head-major per layer: `[n_layers][n_kv_heads][capacity][head_dim]`.
struct KvCache {
    k: Vec<f32>,
    v: Vec<f32>,
    capacity: usize,
    layer_len: usize,
}

/// Activation buffers for one batch of up to `max_batch` tokens.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    h: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    proj: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    ffn: Vec<f32>,
    logits: Vec<f32>,
    acts: Activations,
    parts: PartBuffers,
}

/// A llama model ready to run on one stage.
pub struct Model {
    config: LlamaConfig,
    stage: ResolvedStage,
    kernels: KernelSet,
    weights: Weights,
    pool: ThreadPool,
    rope: RopeTable,
    cache: KvCache,
    scratch: Scratch,
    max_batch: usize,
    kv_f16: bool,
    /// The stage's attention, or llama.cpp's (`gllm_kernels::ops::ggml::attention_ggml`,
    /// over the f16-valued cache) when the model runs llama.cpp's arithmetic.
    attention: AttentionFn,
    /// Positions filled in the KV cache.
    pos: usize,
    /// Time per part of the forward passes, when timing is on ([`Model::time_parts`]).
    part_times: Option<PartTimes>,
}

impl Model {
    /// Opens `path` (memory-mapped) and prepares it for the built-in stage `stage`.
    pub fn load(
        path: impl AsRef<Path>,
        stage: &str,
        options: &ModelOptions,
    ) -> Result<Model, ModelError> {
        let stage = stage::resolve(&stage::builtin(), stage)
            .map_err(|e| ModelError::Stage(e.to_string()))?;
        let file = Arc::new(GgufFile::open(path)?);
        Model::from_file(file, &stage, options)
    }

    /// Prepares an open file for a resolved stage.
    pub fn from_file(
        file: Arc<GgufFile>,
        stage: &ResolvedStage,
        options: &ModelOptions,
    ) -> Result<Model, ModelError> {
        let config = LlamaConfig::from_gguf(&file)?;
        config.check_tensors(&file)?;
        let kernels = KernelSet::from_stage(stage);
        let weights = Weights::load(file, &config, stage)?;
        let capacity = options.max_positions.unwrap_or(config.context_length);
        if capacity == 0 || capacity > config.context_length {
            return Err(ModelError::Invalid(format!(
                "max_positions {capacity} must be in 1..={} (the context length)",
                config.context_length
            )));
        }
        let max_batch = options.max_batch.clamp(1, capacity);
        let layer_len = config.n_kv_heads * capacity * config.head_dim;
        // Zeroed allocations are mapped lazily: untouched positions cost no memory.
        let cache = KvCache {
            k: vec![0.0; config.n_layers * layer_len],
            v: vec![0.0; config.n_layers * layer_len],
            capacity,
            layer_len,
        };
        let (e, qd, kvd, ff) = (
            config.n_embd,
            config.n_heads * config.head_dim,
            config.n_kv_heads * config.head_dim,
            config.n_ff,
        );
        let b = max_batch;
        let scratch = Scratch {
            x: vec![0.0; b * e],
            h: vec![0.0; b * e],
            q: vec![0.0; b * qd],
            k: vec![0.0; b * kvd],
            v: vec![0.0; b * kvd],
            att: vec![0.0; b * qd],
            proj: vec![0.0; b * e],
            gate: vec![0.0; b * ff],
            up: vec![0.0; b * ff],
            ffn: vec![0.0; b * ff],
            logits: vec![0.0; config.vocab_size],
            ..Default::default()
        };
        // A stage whose RoPE is llama.cpp's runs llama.cpp's arithmetic throughout: its rope
        // angles, f16 KV cache and flash attention (see gllm_kernels::ops::ggml).
        let ggml = kernels.variant_of("rope") == Some("ggml");
        let rope = if ggml {
            RopeTable::ggml(config.rope_freq_base, config.rope_dim, capacity)
        } else {
            RopeTable::new(config.rope_freq_base, config.rope_dim, capacity)
        };
        Ok(Model {
            kernels,
            weights,
            pool: ThreadPool::new(options.threads),
            rope,
            cache,
            scratch,
            max_batch,
            kv_f16: options.kv_f16 || ggml,
            attention: if ggml { ggml_ops::attention_ggml } else { kernels.attention },
            pos: 0,
            part_times: None,
            stage: stage.clone(),
            config,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }
    pub fn stage(&self) -> &ResolvedStage {
        &self.stage
    }
    pub fn kernels(&self) -> &KernelSet {
        &self.kernels
    }
    /// Whether the model runs llama.cpp's arithmetic around its matmuls (the stage's RoPE is
    /// `ggml`): its RoPE angles, an f16 KV cache and its flash attention.
    pub fn ggml_arithmetic(&self) -> bool {
        self.kernels.variant_of("rope") == Some("ggml")
    }

    /// The attention a ubatch of `queries` tokens runs: the stage's, or with llama.cpp's
    /// arithmetic the flash attention ggml picks for that many queries (see [`Model::forward`]).
    pub fn attention_for(&self, queries: usize) -> AttentionFn {
        if self.ggml_arithmetic() && queries >= TILED_MIN_QUERIES {
            ggml_tiled::attention_ggml_tiled
        } else {
            self.attention
        }
    }

    pub fn threads(&self) -> usize {
        self.pool.threads()
    }
    pub fn file(&self) -> &GgufFile {
        &self.weights.file
    }
    pub fn weights(&self) -> &Weights {
        &self.weights
    }
    /// Positions filled in the KV cache (the next token's position).
    pub fn position(&self) -> usize {
        self.pos
    }
    /// Positions the KV cache holds.
    pub fn capacity(&self) -> usize {
        self.cache.capacity
    }
    /// Starts timing every part of the forward passes from zero (`on`), or stops timing.
    pub fn time_parts(&mut self, on: bool) {
        self.part_times = on.then(PartTimes::default);
    }

    /// Time per part of the forward passes since [`Model::time_parts`] turned timing on.
    pub fn part_times(&self) -> Option<PartTimes> {
        self.part_times
    }

    /// Empties the KV cache (the next forward starts at position 0).
    pub fn reset(&mut self) {
        self.pos = 0;
    }
    /// Forgets every position from `pos` on (keeps a shared prefix).
    pub fn truncate(&mut self, pos: usize) {
        self.pos = self.pos.min(pos);
    }

    /// Runs `tokens` at positions `position() ..`, appending them to the KV cache, and returns
    /// the logits of every token (`[tokens.len(), vocab]`, row-major) when `all_logits`, else
    /// those of the last token only (`[vocab]`). Empty `tokens` return empty logits.
    ///
    /// With llama.cpp's arithmetic, one call is one `llama_decode` of `tokens` with its default
    /// ubatch of [`LLAMA_UBATCH`] tokens: a ubatch of 64 or more queries takes ggml's tiled
    /// flash attention ([`ggml_tiled`]), a shorter one (decode, short prompts) its row-by-row
    /// one. Feeding the same tokens in other calls (all at once, or one at a time) is another
    /// computation in llama.cpp too, with other bits.
    pub fn forward(&mut self, tokens: &[u32], all_logits: bool) -> Result<&[f32], ModelError> {
        let vocab = self.config.vocab_size;
        if let Some(&id) = tokens.iter().find(|&&id| id as usize >= vocab) {
            return Err(ModelError::TokenOutOfRange { id, vocab_size: vocab });
        }
        let needed = self.pos + tokens.len();
        if needed > self.cache.capacity {
            return Err(ModelError::ContextFull {
                needed,
                capacity: self.cache.capacity,
                context_length: self.config.context_length,
            });
        }
        if tokens.is_empty() {
            return Ok(&[]);
        }
        let rows = if all_logits { tokens.len() } else { 1 };
        if self.scratch.logits.len() < rows * vocab {
            self.scratch.logits.resize(rows * vocab, 0.0);
        }
        let mut done = 0;
        for ubatch in tokens.chunks(LLAMA_UBATCH) {
            let attention = self.attention_for(ubatch.len());
            for chunk in ubatch.chunks(self.max_batch) {
                let m = chunk.len();
                self.run_layers(chunk, attention);
                if all_logits {
                    self.logits(0, m, done);
                } else if done + m == tokens.len() {
                    self.logits(m - 1, 1, 0);
                }
                self.pos += m;
                done += m;
            }
        }
        Ok(&self.scratch.logits[..rows * vocab])
    }

    /// The prompt as batches; the last token's logits.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<&[f32], ModelError> {
        self.forward(tokens, false)
    }

    /// One token; its logits.
    pub fn decode(&mut self, token: u32) -> Result<&[f32], ModelError> {
        self.forward(&[token], false)
    }

    /// Final norm of batch rows `row0 .. row0 + m` and their logits into logits rows
    /// `out_row0 ..`.
    fn logits(&mut self, row0: usize, m: usize, out_row0: usize) {
        let e = self.config.n_embd;
        let vocab = self.config.vocab_size;
        let mut clock = Stopwatch::start(self.part_times.is_some());
        let s = &mut self.scratch;
        let k = &self.kernels;
        (k.rms_norm)(
            &mut s.h[..m * e],
            &s.x[row0 * e..(row0 + m) * e],
            &self.weights.output_norm,
            self.config.rms_norm_eps,
        );
        s.acts.reset();
        let w = self.weights.logits_matrix();
        project(
            &self.pool,
            k.linear,
            &self.weights.file,
            w,
            &s.h[..m * e],
            &mut s.acts,
            m,
            &mut s.logits[out_row0 * vocab..(out_row0 + m) * vocab],
            &mut s.parts,
        );
        clock.lap(Part::Logits);
        clock.finish(&mut self.part_times);
    }

    /// Every layer over `tokens` (at positions `pos ..`), leaving the residual stream in
    /// `scratch.x`, attending with `attention`.
    fn run_layers(&mut self, tokens: &[u32], attention: AttentionFn) {
        let m = tokens.len();
        let cfg = &self.config;
        let (e, hd) = (cfg.n_embd, cfg.head_dim);
        let (qd, kvd, ff) = (cfg.n_heads * hd, cfg.n_kv_heads * hd, cfg.n_ff);
        let eps = cfg.rms_norm_eps;
        let pos0 = self.pos;
        let k = &self.kernels;
        let s = &mut self.scratch;
        let w = &self.weights;
        let file = &*w.file;
        let pool = &self.pool;
        let mut clock = Stopwatch::start(self.part_times.is_some());
        for (t, &id) in tokens.iter().enumerate() {
            w.token_embd.row_into(file, id as usize, &mut s.x[t * e..(t + 1) * e]);
        }
        clock.lap(Part::Embed);
        let rope_shape = RopeShape {
            n_heads: cfg.n_heads,
            n_kv_heads: cfg.n_kv_heads,
            head_dim: hd,
            pos0,
            pairing: RopePairing::Adjacent,
        };
        let att_shape = AttentionShape {
            m,
            kv_len: pos0 + m,
            capacity: self.cache.capacity,
            n_heads: cfg.n_heads,
            n_kv_heads: cfg.n_kv_heads,
            head_dim: hd,
        };
        let kv_layout = KvLayout {
            n_kv_heads: cfg.n_kv_heads,
            head_dim: hd,
            capacity: self.cache.capacity,
            pos0,
        };
        let layer_len = self.cache.layer_len;
        for (l, lw) in w.layers.iter().enumerate() {
            // Attention block.
            rows::rms_norm(pool, k.rms_norm, &mut s.h[..m * e], &s.x[..m * e], &lw.attn_norm, eps);
            clock.lap(Part::Norm);
            s.acts.reset();
            let h = &s.h[..m * e];
            let mut proj = |mat: &Matrix, out: &mut [f32], acts: &mut Activations| {
                project(pool, k.linear, file, mat, h, acts, m, out, &mut s.parts)
            };
            if m == 1 {
                project_group_decode(
                    pool,
                    k.linear,
                    file,
                    [&lw.wq, &lw.wk, &lw.wv],
                    h,
                    &mut s.acts,
                    [&mut s.q[..qd], &mut s.k[..kvd], &mut s.v[..kvd]],
                    &mut s.parts,
                    None,
                );
            } else {
                proj(&lw.wq, &mut s.q[..m * qd], &mut s.acts);
                proj(&lw.wk, &mut s.k[..m * kvd], &mut s.acts);
                proj(&lw.wv, &mut s.v[..m * kvd], &mut s.acts);
            }
            clock.lap(Part::Matmul);
            rows::rope(
                pool,
                k.rope,
                &mut s.q[..m * qd],
                &mut s.k[..m * kvd],
                rope_shape,
                &self.rope,
            );
            clock.lap(Part::Rope);
            let kc = &mut self.cache.k[l * layer_len..(l + 1) * layer_len];
            let vc = &mut self.cache.v[l * layer_len..(l + 1) * layer_len];
            let (sk, sv) = (&s.k[..m * kvd], &s.v[..m * kvd]);
            rows::write_kv(pool, kc, vc, sk, sv, kv_layout, self.kv_f16);
            clock.lap(Part::KvCache);
            attend(pool, attention, &mut s.att[..m * qd], &s.q[..m * qd], kc, vc, att_shape);
            clock.lap(Part::Attention);
            s.acts.reset();
            project(
                pool,
                k.linear,
                file,
                &lw.wo,
                &s.att[..m * qd],
                &mut s.acts,
                m,
                &mut s.proj[..m * e],
                &mut s.parts,
            );
            clock.lap(Part::Matmul);
            rows::add(pool, k.add, &mut s.x[..m * e], &s.proj[..m * e], e);
            clock.lap(Part::Add);

            // Feed-forward block.
            rows::rms_norm(pool, k.rms_norm, &mut s.h[..m * e], &s.x[..m * e], &lw.ffn_norm, eps);
            clock.lap(Part::Norm);
            s.acts.reset();
            let h = &s.h[..m * e];
            let mut proj = |mat: &Matrix, out: &mut [f32], acts: &mut Activations| {
                project(pool, k.linear, file, mat, h, acts, m, out, &mut s.parts)
            };
            if m == 1 {
                // SiLU·up of each part's rows inside the region, while they are hot.
                let ffn = SharedMut(s.ffn.as_mut_ptr());
                assert!(s.ffn.len() >= ff);
                let silu = |r: std::ops::Range<usize>, [g, u]: [&[f32]; 2]| {
                    // SAFETY: the parts' ranges are disjoint and inside `ffn[..ff]` (asserted).
                    let y =
                        unsafe { std::slice::from_raw_parts_mut(ffn.ptr().add(r.start), r.len()) };
                    (k.silu_mul)(y, g, u)
                };
                project_group_decode(
                    pool,
                    k.linear,
                    file,
                    [&lw.gate, &lw.up],
                    h,
                    &mut s.acts,
                    [&mut s.gate[..ff], &mut s.up[..ff]],
                    &mut s.parts,
                    Some(&silu),
                );
            } else {
                proj(&lw.gate, &mut s.gate[..m * ff], &mut s.acts);
                proj(&lw.up, &mut s.up[..m * ff], &mut s.acts);
                clock.lap(Part::Matmul);
                let (gate, up) = (&s.gate[..m * ff], &s.up[..m * ff]);
                rows::silu_mul(pool, k.silu_mul, &mut s.ffn[..m * ff], gate, up, ff);
                clock.lap(Part::SiluMul);
            }
            s.acts.reset();
            project(
                pool,
                k.linear,
                file,
                &lw.down,
                &s.ffn[..m * ff],
                &mut s.acts,
                m,
                &mut s.proj[..m * e],
                &mut s.parts,
            );
            clock.lap(Part::Matmul);
            rows::add(pool, k.add, &mut s.x[..m * e], &s.proj[..m * e], e);
            clock.lap(Part::Add);
        }
        clock.finish(&mut self.part_times);
    }
}
