//! "Ops beside ggml": each op of the model's graphs that llama.cpp's test-backend-ops
//! measured on this machine (the anchor's `ops.sql`), beside the registry case our stages run
//! for it, stage by stage, with the speed ratio.
//!
//! The pairing is one table, [`PAIRINGS`]: which ggml ops (by op and weight type), summed or
//! not, stand beside which of our ops, under which weights (f32 stages or quantized ones),
//! and how our case's dimensions follow from ggml's ([`Form`]). When the inputs hold no case
//! of exactly ggml's shape, the nearest case sharing the dimensions that matter
//! ([`Form::fixed`]) stands in, its time scaled to ggml's work in the form's unit (per FLOP,
//! per element, ...), within a factor of [`MAX_SCALE`]; the report says so beside it.

use std::collections::BTreeMap;

use crate::baseline::{CaseKind, Comparison, ResultFile, StageRecord};
use crate::report::format::{sig3, time_ns};
use crate::report::ggml_ops::{AnchorOps, GgmlType, MeasuredOp, OpKind};

/// The weights a stage's model runs a counterpart with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weights {
    /// Stages that dequantize the weights to f32 at load.
    F32,
    /// Stages that keep the GGUF blocks (`quantized_weights` in the stage table).
    Quantized,
    /// Every stage (the op has no weights).
    Any,
}

/// The family of one of our ops: its dimensions from ggml's op, those a stand-in case must
/// share, the dimension that separates a single token from a batch, and the unit of work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `m, n, k` (tokens, output rows, dot length) from `src0 = W[k, n]`, `src1 = x[k, m]`;
    /// `k` fixed, `m = 1` (GEMV) never stands in for `m > 1` (GEMM); per FLOP (`2·m·n·k`).
    MatMul,
    /// `n` = the output's elements; per element.
    Elementwise,
    /// `rows, n` (row length fixed); per row of `n`.
    Norm,
    /// `m, heads, kv_heads, d, rot, neox` from the Q and the K rotation (summed): the larger
    /// head count is Q's; heads, `d`, `rot` and `neox` fixed; per rotated head vector.
    Rope,
    /// `m, kv, heads, kv_heads, d` from FLASH_ATTN_EXT (`out [d, heads, m]`, `K [d, kv, kv_heads]`);
    /// heads and `d` fixed, decode never stands in for prefill; per (head, query, key) pair:
    /// all `m·kv` for ggml (test-backend-ops' mask is random, not causal), the causal ones
    /// (`query i sees keys ..= kv − m + i`) for ours.
    Attention,
    /// `rows, n` (row length fixed); per element.
    Softmax,
    /// `n` = the output's elements (a row lookup dequantizes the rows); per element.
    Dequant,
}

/// Our dimensions, by the registry's names.
pub type Dims = BTreeMap<String, u64>;

impl Form {
    /// Our op's dimensions that would do ggml's op(s); `None` when the shapes do not fit the
    /// form (e.g. a batched matrix).
    pub fn target(self, ops: &[&MeasuredOp]) -> Option<Dims> {
        let first = ops.first()?;
        let d = |pairs: &[(&str, u64)]| -> Option<Dims> {
            Some(pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect())
        };
        let out = first.out.ne;
        match self {
            Form::MatMul => {
                let (w, x) = (first.sources.first()?, first.sources.get(1)?);
                if w.ne[2] * w.ne[3] != 1 || x.ne[2] * x.ne[3] != 1 || w.ne[0] != x.ne[0] {
                    return None;
                }
                d(&[("m", x.ne[1]), ("n", w.ne[1]), ("k", w.ne[0])])
            }
            Form::Elementwise | Form::Dequant => d(&[("n", first.out.elements())]),
            Form::Norm | Form::Softmax => d(&[("rows", out[1] * out[2] * out[3]), ("n", out[0])]),
            Form::Rope => {
                let [a, b] = ops else { return None };
                if a.out.ne[0] != b.out.ne[0] || a.tokens() != b.tokens() {
                    return None;
                }
                let neox = u64::from(a.param(2) & 2 != 0);
                d(&[
                    ("m", a.tokens()),
                    ("heads", a.out.ne[1].max(b.out.ne[1])),
                    ("kv_heads", a.out.ne[1].min(b.out.ne[1])),
                    ("d", out[0]),
                    ("rot", u64::try_from(a.param(1)).ok()?),
                    ("neox", neox),
                ])
            }
            Form::Attention => {
                let k = first.sources.get(1)?;
                d(&[
                    ("m", out[2]),
                    ("kv", k.ne[1]),
                    ("heads", out[1]),
                    ("kv_heads", k.ne[2]),
                    ("d", out[0]),
                ])
            }
        }
    }

    /// Dimensions a case must share with the target to stand in for it.
    pub fn fixed(self) -> &'static [&'static str] {
        match self {
            Form::MatMul => &["k"],
            Form::Elementwise | Form::Dequant => &[],
            Form::Norm | Form::Softmax => &["n"],
            Form::Rope => &["heads", "kv_heads", "d", "rot", "neox"],
            Form::Attention => &["heads", "kv_heads", "d"],
        }
    }

    /// The token dimension a case must have at 1 exactly when the target does.
    fn single(self) -> Option<&'static str> {
        match self {
            Form::MatMul | Form::Attention => Some("m"),
            _ => None,
        }
    }

    /// The unit of work, for the report (`per FLOP`).
    pub fn unit(self) -> &'static str {
        match self {
            Form::MatMul => "FLOP",
            Form::Elementwise | Form::Softmax | Form::Dequant => "element",
            Form::Norm => "row",
            Form::Rope => "rotated head",
            Form::Attention => "(head, query, key) pair",
        }
    }

    /// Our case's work at `dims`.
    fn work_ours(self, dims: &Dims) -> Option<f64> {
        let g = |k: &str| dims.get(k).map(|&v| v as f64);
        Some(match self {
            Form::MatMul => 2.0 * g("m")? * g("n")? * g("k")?,
            Form::Elementwise | Form::Dequant => g("n")?,
            Form::Norm | Form::Softmax => g("rows")? * g("n")?,
            Form::Rope => g("m")? * (g("heads")? + g("kv_heads")?),
            Form::Attention => {
                let (m, kv) = (*dims.get("m")?, *dims.get("kv")?);
                let visible: u64 = (0..m).map(|i| (kv + i + 1).saturating_sub(m)).sum();
                visible as f64 * g("heads")?
            }
        })
    }

    /// ggml's work at its target dims (differs from ours only where the test's data do).
    fn work_ggml(self, dims: &Dims) -> Option<f64> {
        match self {
            Form::Attention => {
                let g = |k: &str| dims.get(k).map(|&v| v as f64);
                Some(g("m")? * g("kv")? * g("heads")?)
            }
            f => f.work_ours(dims),
        }
    }
}

/// One of our ops standing beside ggml's under some weights.
#[derive(Clone, Copy, Debug)]
pub struct Counterpart {
    pub op: &'static str,
    pub weights: Weights,
    pub form: Form,
}

/// A ggml op by kind and (optionally) its first source's type.
#[derive(Clone, Debug)]
pub struct Select {
    pub op: OpKind,
    pub src0: Option<GgmlType>,
}

impl Select {
    pub fn matches(&self, op: &MeasuredOp) -> bool {
        op.kind == self.op
            && self.src0.as_ref().is_none_or(|t| op.sources.first().map(|s| &s.ty) == Some(t))
    }
}

/// Whether a pairing takes each matching ggml op alone or sums those of a phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combine {
    /// One row per matching ggml op.
    Each,
    /// One row per phase: the times of all matching ops summed (ggml splits what one of our
    /// cases does); the dimensions come from the ops matching the first selector.
    SumPerPhase,
}

/// One entry of the pairing table.
#[derive(Clone, Debug)]
pub struct Pairing {
    pub ggml: &'static [Select],
    pub combine: Combine,
    /// Empty: no counterpart (the op is listed as such, with `note` as the reason).
    pub ours: &'static [Counterpart],
    /// Told apart from another pairing of the same ggml op (e.g. a layout the model no longer runs).
    pub aside: Option<&'static str>,
    pub note: &'static str,
}

const fn sel(op: OpKind, src0: Option<GgmlType>) -> Select {
    Select { op, src0 }
}
const fn ours(op: &'static str, weights: Weights, form: Form) -> Counterpart {
    Counterpart { op, weights, form }
}

/// The pairing table: every ggml op of a llama graph and what stands beside it. An op that
/// no entry selects is listed as "no entry in the pairing table".
pub static PAIRINGS: &[Pairing] = &[
    Pairing {
        ggml: &[sel(OpKind::MulMat, Some(GgmlType::Q4_1))],
        combine: Combine::Each,
        ours: &[
            ours("linear_packed", Weights::F32, Form::MatMul),
            ours("qmatvec_q4_1x8", Weights::Quantized, Form::MatMul),
        ],
        aside: None,
        note: "the Q4_1 projections. f32 stages: the dequantized matrix, packed \
               (`linear_packed`); quantized: the Q4_1 blocks interleaved by 8 rows at load \
               (`qmatvec_q4_1x8`), the activations quantized to Q8_1 inside the op, as ggml \
               quantizes them inside MUL_MAT",
    },
    Pairing {
        ggml: &[sel(OpKind::MulMat, Some(GgmlType::Q4_1))],
        combine: Combine::Each,
        ours: &[ours("qmatvec_q4_1", Weights::Quantized, Form::MatMul)],
        aside: Some("rows"),
        note: "the same Q4_1 projections on the blocks in GGUF row order (`qmatvec_q4_1`, the \
               layout ggml runs; the model runs the interleaved one)",
    },
    Pairing {
        ggml: &[sel(OpKind::MulMat, Some(GgmlType::Q8_0))],
        combine: Combine::Each,
        ours: &[ours("qmatvec_q8_0x16", Weights::Quantized, Form::MatMul)],
        aside: None,
        note: "the vocabulary projection on the tied Q8_0 embedding, as the model runs it with \
               AVX-512 VNNI: interleaved by 16 rows at load (`qmatvec_q8_0x16`); no case \
               measures the f32 stages' dequantized one",
    },
    Pairing {
        ggml: &[sel(OpKind::MulMat, Some(GgmlType::Q8_0))],
        combine: Combine::Each,
        ours: &[ours("qmatvec_q8_0", Weights::Quantized, Form::MatMul)],
        aside: Some("rows"),
        note: "the same projection on the blocks in GGUF row order (`qmatvec_q8_0`, the layout \
               ggml runs, and the model's without AVX-512 VNNI)",
    },
    Pairing {
        ggml: &[sel(OpKind::RmsNorm, None), sel(OpKind::Mul, None)],
        combine: Combine::SumPerPhase,
        ours: &[ours("rms_norm", Weights::Any, Form::Norm)],
        aside: None,
        note: "ggml normalizes (RMS_NORM) then multiplies by the weight (MUL); our `rms_norm` \
               does both, so the two times are summed",
    },
    Pairing {
        ggml: &[sel(OpKind::Mul, None)],
        combine: Combine::Each,
        ours: &[ours("mul", Weights::Any, Form::Elementwise)],
        aside: None,
        note: "the norm's weight multiply alone; in a batch ggml broadcasts one weight row over \
               the tokens, our `mul` reads two arrays of the same length",
    },
    Pairing {
        ggml: &[sel(OpKind::Add, None)],
        combine: Combine::Each,
        ours: &[ours("add", Weights::Any, Form::Elementwise)],
        aside: None,
        note: "the residual adds",
    },
    Pairing {
        ggml: &[sel(OpKind::Swiglu, None)],
        combine: Combine::Each,
        ours: &[ours("silu_mul", Weights::Any, Form::Elementwise)],
        aside: None,
        note: "SwiGLU, silu(gate) · up",
    },
    Pairing {
        ggml: &[sel(OpKind::Rope, None)],
        combine: Combine::SumPerPhase,
        ours: &[ours("rope", Weights::Any, Form::Rope)],
        aside: None,
        note: "ggml rotates Q and K in two ops, our `rope` case rotates both: the two times \
               are summed",
    },
    Pairing {
        ggml: &[sel(OpKind::FlashAttnExt, None)],
        combine: Combine::Each,
        ours: &[ours("attention", Weights::Any, Form::Attention)],
        aside: None,
        note: "ggml: f16 K and V; test-backend-ops fills the mask with random values and a few \
               128x64 blocks of −∞ or 0 (no causal structure), so all query × key pairs are \
               counted although ggml skips the −∞ ones (about a tenth of a 512 × 512 mask: \
               this favours ggml). Ours: f32 K and V, causal; the pairs it visits are counted",
    },
    Pairing {
        ggml: &[sel(OpKind::SoftMax, None)],
        combine: Combine::Each,
        ours: &[ours("softmax", Weights::Any, Form::Softmax)],
        aside: None,
        note: "the attention scores' softmax of graphs without flash attention; ggml's op \
               also scales the scores and adds the mask, our `softmax` normalizes plain rows",
    },
    Pairing {
        ggml: &[sel(OpKind::GetRows, Some(GgmlType::Q8_0))],
        combine: Combine::Each,
        ours: &[ours("dequant_q8_0", Weights::Any, Form::Dequant)],
        aside: None,
        note: "the token embedding lookup dequantizes Q8_0 rows; `dequant_q8_0` dequantizes \
               contiguous blocks (no ggml rate: test-backend-ops' byte count is the whole table)",
    },
    Pairing {
        ggml: &[sel(OpKind::GetRows, Some(GgmlType::F32))],
        combine: Combine::Each,
        ours: &[],
        aside: None,
        note: "a row copy (the hidden states whose logits are wanted); no registry op copies rows",
    },
    Pairing {
        ggml: &[sel(OpKind::SetRows, None)],
        combine: Combine::Each,
        ours: &[],
        aside: None,
        note: "writes K or V into the f16 cache (f32 → f16); no registry op converts f32 to f16 \
               (`dequant_f16` is the reverse)",
    },
];

/// Our case may stand in for ggml's shape when their work differs at most this much.
pub const MAX_SCALE: f64 = 32.0;

/// Phase of a ggml op: one token (decode), a batch (prefill), or not known (0 tokens: the
/// transposed V-cache write of a graph without flash attention, see
/// [`super::ggml_ops::tokens`]).
pub fn phase(tokens: u64) -> String {
    match tokens {
        0 => "graph without flash attention".into(),
        1 => "decode".into(),
        t => format!("prefill {t}"),
    }
}

/// The case standing in for a counterpart: a comparison of one of the inputs.
#[derive(Clone, Debug)]
pub struct StandIn<'a> {
    pub result: &'a ResultFile,
    pub comparison: &'a Comparison,
    pub dims: Dims,
    /// ggml's work / ours: our times are multiplied by it.
    pub factor: f64,
    pub exact: bool,
}

/// Our side of a row, per counterpart.
#[derive(Clone, Debug)]
pub struct Side<'a> {
    pub counterpart: Counterpart,
    pub stand_in: Option<StandIn<'a>>,
    /// Why there is none (shape not understood, or no case near it).
    pub missing: Option<String>,
}

/// One stage's figure in a row.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// The stage runs none of the row's counterparts (another row's op, or an f32 one).
    NotRun,
    /// No case of the counterpart in the inputs (see the row's `ours`).
    NoCase,
    /// The case's result file has no such stage.
    NoStage,
    Failed {
        variant: String,
    },
    Measured {
        op: &'static str,
        variant: String,
        /// Our time scaled to ggml's work.
        ns: f64,
        /// 95 % CI of it, when the case record has one.
        ci: Option<(f64, f64)>,
        /// ggml's time / ours (> 1: ours faster).
        ratio: f64,
    },
}

/// One row of the section: ggml op(s) beside our counterpart(s).
#[derive(Clone, Debug)]
pub struct Row<'a> {
    pub tokens: u64,
    pub pairing: &'static Pairing,
    pub ggml: Vec<&'a MeasuredOp>,
    pub ggml_ns: f64,
    pub sides: Vec<Side<'a>>,
    /// Per stage of the primary result.
    pub cells: Vec<Cell>,
}

impl Row<'_> {
    /// ggml's rate: GFLOP/s for MUL_MAT and FLASH_ATTN_EXT (2 FLOP per multiply-add, as
    /// ours count), otherwise test-backend-ops' GB/s (its byte count) over the summed time.
    pub fn ggml_rate(&self) -> String {
        let first = self.ggml[0];
        let flops = match first.kind {
            OpKind::MulMat => {
                Form::MatMul.target(&self.ggml[..1]).and_then(|d| Form::MatMul.work_ours(&d))
            }
            OpKind::FlashAttnExt => Form::Attention
                .target(&self.ggml[..1])
                .and_then(|d| Some(Form::Attention.work_ggml(&d)? * 4.0 * *d.get("d")? as f64)),
            _ => None,
        };
        match flops {
            Some(f) if self.ggml.len() == 1 => format!("{} GFLOP/s", sig3(f / self.ggml_ns)),
            // test-backend-ops counts the whole table a row lookup reads from
            _ if first.kind == OpKind::GetRows => "-".into(),
            _ => {
                let bytes: f64 = self
                    .ggml
                    .iter()
                    .map(|o| o.bandwidth_gb_s * o.time_us.unwrap_or(0.0) * 1e3)
                    .sum();
                format!("{} GB/s", sig3(bytes / self.ggml_ns))
            }
        }
    }
}

/// A ggml op with no row: measured without a counterpart, not supported, or not measured.
#[derive(Clone, Debug)]
pub struct Unpaired {
    pub tokens: u64,
    pub what: String,
    pub time_ns: Option<f64>,
    pub why: String,
}

/// The section's content.
#[derive(Clone, Debug, Default)]
pub struct OpsBeside<'a> {
    /// Stage names of the primary result, in order; `shown` indexes them.
    pub stages: Vec<String>,
    /// The stages with a column: those that change a paired op's variant (or its
    /// counterpart), and the last one.
    pub shown: Vec<usize>,
    pub rows: Vec<Row<'a>>,
    pub unpaired: Vec<Unpaired>,
    pub notes: Vec<String>,
    /// ggml ops with a time, and how many of them stand in a row.
    pub measured_ops: usize,
    pub paired_ops: usize,
}

fn stage_weights(stage: &StageRecord) -> Option<Weights> {
    let builtin = gllm_kernels::stage::builtin();
    let mut weights = None;
    for name in &stage.chain {
        let b = builtin.iter().find(|b| &b.name == name)?;
        if let Some(q) = b.quantized_weights {
            weights = Some(q);
        }
    }
    weights.map(|q| if q { Weights::Quantized } else { Weights::F32 })
}

/// The case of `cp.op` among `results` nearest to `target`: hot cache, sharing the form's
/// fixed dimensions, within [`MAX_SCALE`] of its work; then the fewest dimensions differing
/// from the target, the least scaling, the earlier input (the primary one first).
fn stand_in<'a>(
    results: &'a [ResultFile],
    primary: usize,
    cp: &Counterpart,
    target: &Dims,
) -> Option<StandIn<'a>> {
    let form = cp.form;
    let want = form.work_ggml(target)?;
    let order = std::iter::once(primary).chain((0..results.len()).filter(|&i| i != primary));
    // (dimensions differing from ggml's, |ln scaling|, input rank, the case)
    let mut found: Vec<(usize, f64, usize, StandIn<'a>)> = Vec::new();
    for (rank, i) in order.enumerate() {
        let r = &results[i];
        let comparisons = r.comparisons.iter();
        for c in comparisons.filter(|c| c.kind == CaseKind::Op && c.cache == "hot" && c.op == cp.op)
        {
            let Some(dims) =
                c.entries.first().and_then(|e| r.case(&e.case_id)).map(|x| x.dims.clone())
            else {
                continue;
            };
            if form.fixed().iter().any(|k| dims.get(*k) != target.get(*k)) {
                continue;
            }
            if let Some(s) = form.single() {
                if (dims.get(s) == Some(&1)) != (target.get(s) == Some(&1)) {
                    continue;
                }
            }
            let Some(work) = form.work_ours(&dims).filter(|w| *w > 0.0) else { continue };
            let factor = want / work;
            if !(factor.is_finite() && (1.0 / MAX_SCALE..=MAX_SCALE).contains(&factor)) {
                continue;
            }
            let differing = target.iter().filter(|(k, v)| dims.get(*k) != Some(*v)).count();
            let exact = differing == 0 && (factor - 1.0).abs() < 1e-9;
            let stand_in = StandIn { result: r, comparison: c, dims, factor, exact };
            found.push((differing, factor.ln().abs(), rank, stand_in));
        }
    }
    // scalings equal but for rounding (×1.125 up or down) tie: the earlier input wins
    let scaling = |a: f64, b: f64| {
        if (a - b).abs() < 1e-9 {
            std::cmp::Ordering::Equal
        } else {
            a.total_cmp(&b)
        }
    };
    found
        .into_iter()
        .min_by(|a, b| a.0.cmp(&b.0).then(scaling(a.1, b.1)).then(a.2.cmp(&b.2)))
        .map(|f| f.3)
}

/// A stage's figure from the case standing in for `side`, beside ggml's `ggml_ns`.
fn cell(side: &Side<'_>, stage: &str, ggml_ns: f64) -> Cell {
    let Some(s) = &side.stand_in else { return Cell::NoCase };
    let Some(e) = s.comparison.entries.iter().find(|e| e.stage == stage) else {
        return Cell::NoStage;
    };
    let Some(median) = e.median_ns.filter(|_| e.verified) else {
        return Cell::Failed { variant: e.variant.clone() };
    };
    let ns = median * s.factor;
    let ci = s
        .result
        .case(&e.case_id)
        .and_then(|r| r.timing.as_ref())
        .map(|t| (t.ci95_ns.lo * s.factor, t.ci95_ns.hi * s.factor));
    Cell::Measured {
        op: side.counterpart.op,
        variant: e.variant.clone(),
        ns,
        ci,
        ratio: ggml_ns / ns,
    }
}

/// Our side for a counterpart of ggml's `ops` (those matching the pairing's first selector).
fn side<'a>(
    results: &'a [ResultFile],
    primary: usize,
    cp: &Counterpart,
    ops: &[&MeasuredOp],
) -> Side<'a> {
    let Some(target) = cp.form.target(ops) else {
        let missing = Some("ggml's shape does not fit this op".to_string());
        return Side { counterpart: *cp, stand_in: None, missing };
    };
    let stand_in = stand_in(results, primary, cp, &target);
    let missing = stand_in.is_none().then(|| {
        let fixed: Vec<String> = cp
            .form
            .fixed()
            .iter()
            .map(|k| format!("{k}={}", target.get(*k).copied().unwrap_or(0)))
            .collect();
        format!(
            "no hot case of `{}` with {} within ×{MAX_SCALE:.0} of ggml's work ({}) in the inputs",
            cp.op,
            if fixed.is_empty() { "any shape".to_string() } else { fixed.join(",") },
            dims_text(&target)
        )
    });
    Side { counterpart: *cp, stand_in, missing }
}

/// The groups of ggml ops (indices into `timed`) a pairing makes rows of.
fn groups(pairing: &Pairing, timed: &[&MeasuredOp], matching: &[usize]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = match pairing.combine {
        Combine::Each => matching.iter().map(|&i| vec![i]).collect(),
        Combine::SumPerPhase => {
            let mut phases: Vec<u64> = matching.iter().map(|&i| timed[i].tokens()).collect();
            phases.sort_unstable();
            phases.dedup();
            phases
                .into_iter()
                .map(|t| matching.iter().copied().filter(|&i| timed[i].tokens() == t).collect())
                .collect()
        }
    };
    // the first selector's ops first (they give the dimensions), larger ones first (Q
    // before K), then in file order
    for g in &mut groups {
        g.sort_by_key(|&i| {
            let selector = pairing.ggml.iter().position(|s| s.matches(timed[i]));
            (selector, std::cmp::Reverse(timed[i].out.elements()), timed[i].line)
        });
    }
    groups
}

/// Pairs the anchor's ops with the cases of `results` (the first comparing several stages
/// is the primary one: its stages are the columns).
pub fn pair<'a>(ops: &'a AnchorOps, results: &'a [ResultFile]) -> OpsBeside<'a> {
    let primary = results.iter().position(|r| r.stages.len() > 1).unwrap_or(0);
    let Some(main) = results.get(primary) else { return OpsBeside::default() };
    let stages: Vec<String> = main.stages.iter().map(|s| s.name.clone()).collect();
    let weights: Vec<Option<Weights>> = main.stages.iter().map(stage_weights).collect();
    let timed: Vec<&MeasuredOp> = ops.measured.iter().filter(|o| o.time_us.is_some()).collect();
    let mut rows: Vec<Row<'a>> = Vec::new();
    let mut covered = vec![false; timed.len()];
    // why an op has no row, when a pairing says
    let mut reasons: Vec<Option<String>> = vec![None; timed.len()];
    for pairing in PAIRINGS {
        let matching: Vec<usize> = (0..timed.len())
            .filter(|&i| pairing.ggml.iter().any(|s| s.matches(timed[i])))
            .collect();
        if pairing.ours.is_empty() {
            for i in matching {
                reasons[i].get_or_insert_with(|| format!("no counterpart: {}", pairing.note));
            }
            continue;
        }
        for group in groups(pairing, &timed, &matching) {
            let absent: Vec<String> = pairing
                .ggml
                .iter()
                .filter(|s| !group.iter().any(|&i| s.matches(timed[i])))
                .map(|s| s.op.to_string())
                .collect();
            if !absent.is_empty() {
                // a sum missing a part would compare less work of ggml's with all of ours
                for &i in &group {
                    reasons[i].get_or_insert_with(|| {
                        format!(
                            "summed with {} for `{}`, which this phase lacks",
                            absent.join(" and "),
                            pairing.ours[0].op
                        )
                    });
                }
                continue;
            }
            let ggml: Vec<&MeasuredOp> = group.iter().map(|&i| timed[i]).collect();
            for &i in &group {
                covered[i] = true;
            }
            let first: Vec<&MeasuredOp> =
                ggml.iter().copied().filter(|o| pairing.ggml[0].matches(o)).collect();
            let sides: Vec<Side<'a>> =
                pairing.ours.iter().map(|cp| side(results, primary, cp, &first)).collect();
            let ggml_ns: f64 = ggml.iter().map(|o| o.time_us.unwrap_or(0.0) * 1e3).sum();
            // per stage, the counterpart its weights run (an unknown stage: the first)
            let cells = stages
                .iter()
                .zip(&weights)
                .map(|(stage, w)| {
                    let runs = |s: &&Side| match (s.counterpart.weights, w) {
                        (Weights::Any, _) | (_, None) => true,
                        (cw, Some(sw)) => cw == *sw,
                    };
                    sides.iter().find(runs).map_or(Cell::NotRun, |s| cell(s, stage, ggml_ns))
                })
                .collect();
            rows.push(Row { tokens: ggml[0].tokens(), pairing, ggml, ggml_ns, sides, cells });
        }
    }
    // by phase; pairings of the same ggml ops together (the first one's place), each op's
    // rows beside each other in file order
    let index = |p: &'static Pairing| {
        PAIRINGS.iter().position(|x| std::ptr::eq(x, p)).unwrap_or(usize::MAX)
    };
    let family = |p: &'static Pairing| {
        let key = format!("{:?}", p.ggml);
        PAIRINGS.iter().position(|x| format!("{:?}", x.ggml) == key).unwrap_or(usize::MAX)
    };
    rows.sort_by_key(|r| (r.tokens, family(r.pairing), r.ggml[0].line, index(r.pairing)));
    let mut unpaired: Vec<Unpaired> = Vec::new();
    for (i, op) in timed.iter().enumerate().filter(|(i, _)| !covered[*i]) {
        unpaired.push(Unpaired {
            tokens: op.tokens(),
            what: format!("{} `{}` ({})", op.kind, op.name, op.inputs()),
            time_ns: op.time_us.map(|t| t * 1e3),
            why: reasons[i].take().unwrap_or_else(|| "no entry in the pairing table".into()),
        });
    }
    for op in ops.measured.iter().filter(|o| o.time_us.is_none()) {
        unpaired.push(Unpaired {
            tokens: op.tokens(),
            what: format!("{} `{}` ({})", op.kind, op.name, op.inputs()),
            time_ns: None,
            why: "not supported by ggml's CPU backend here (`ops.sql`: supported = 0)".into(),
        });
    }
    for g in &ops.unmeasured {
        let inputs: Vec<String> = g.sources.iter().map(|s| s.to_string()).collect();
        unpaired.push(Unpaired {
            tokens: g.tokens(),
            what: format!("{} `{}` ({})", g.kind, g.name, inputs.join(", ")),
            time_ns: None,
            why: format!("listed in `graph-ops.txt` (line {}), no perf row in `ops.sql`", g.line),
        });
    }
    unpaired.sort_by_key(|u| (u.tokens == 0, u.tokens));
    // columns: the stages after the first that change a row's cell, and the last stage
    let key = |c: &Cell| match c {
        Cell::Measured { op, variant, .. } => format!("{op}/{variant}"),
        Cell::Failed { variant } => format!("failed/{variant}"),
        other => format!("{other:?}"),
    };
    let mut shown: Vec<usize> = (1..stages.len())
        .filter(|&s| rows.iter().any(|r| key(&r.cells[s]) != key(&r.cells[s - 1])))
        .collect();
    if let Some(last) = stages.len().checked_sub(1) {
        if !shown.contains(&last) {
            shown.push(last);
        }
    }
    OpsBeside {
        stages,
        shown,
        rows,
        unpaired,
        notes: ops.notes.clone(),
        measured_ops: timed.len(),
        paired_ops: covered.iter().filter(|c| **c).count(),
    }
}

fn dims_text(d: &Dims) -> String {
    d.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// `decode` or `pp512`, for chart labels.
fn phase_short(tokens: u64) -> String {
    if tokens == 1 {
        "decode".into()
    } else {
        format!("pp{tokens}")
    }
}

impl Row<'_> {
    /// A short label for the chart: `pp512 ROPE Qcur-0+Kcur-0`, `decode MUL_MAT ffn_gate-0 (rows)`.
    pub fn chart_label(&self) -> String {
        let mut kinds: Vec<&str> = Vec::new();
        for o in &self.ggml {
            if !kinds.contains(&o.kind.name()) {
                kinds.push(o.kind.name());
            }
        }
        let mut names: Vec<&str> = Vec::new();
        for o in &self.ggml {
            if !names.contains(&o.name.as_str()) {
                names.push(&o.name);
            }
        }
        let name = names.join("+");
        let aside = self.pairing.aside.map(|a| format!(" ({a})")).unwrap_or_default();
        format!("{} {} {name}{aside}", phase_short(self.tokens), kinds.join("+"))
    }
}

fn cell_text(c: &Cell) -> String {
    match c {
        Cell::NotRun => "—".into(),
        Cell::NoCase => "no case".into(),
        Cell::NoStage => "stage not in that input".into(),
        Cell::Failed { variant } => format!("`{variant}` failed verification"),
        Cell::Measured { variant, ns, ratio, .. } => {
            let r = format!("{}×", sig3(*ratio));
            if *ratio < 1.0 {
                format!("`{variant}` {} · **{r} slower**", time_ns(*ns))
            } else {
                format!("`{variant}` {} · {r}", time_ns(*ns))
            }
        }
    }
}

fn side_text(side: &Side<'_>) -> String {
    let who = match side.counterpart.weights {
        Weights::F32 => "f32 stages: ",
        Weights::Quantized => "quantized weights: ",
        Weights::Any => "",
    };
    match (&side.stand_in, &side.missing) {
        (Some(s), _) if s.exact => format!("{who}`{}({})`", s.comparison.op, s.comparison.shape),
        (Some(s), _) => format!(
            "{who}`{}({})`, time ×{} (per {})",
            s.comparison.op,
            s.comparison.shape,
            sig3(s.factor),
            side.counterpart.form.unit()
        ),
        (None, Some(why)) => format!("{who}`{}`: {why}", side.counterpart.op),
        (None, None) => format!("{who}`{}`: no case", side.counterpart.op),
    }
}

fn escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The markdown section; `chart` is the PNG's file name, or why it was not drawn.
pub fn section(b: &OpsBeside<'_>, chart: Result<&str, String>) -> String {
    let mut md = String::from("## Ops beside ggml\n\n");
    for n in &b.notes {
        md.push_str(&format!("Note: {n}.\n\n"));
    }
    if b.measured_ops == 0 && b.unpaired.is_empty() {
        if b.notes.is_empty() {
            md.push_str("The anchor's `ops.sql` holds no measured op.\n\n");
        }
        return md;
    }
    md.push_str(
        "llama.cpp's `test-backend-ops perf` (CPU backend, 1 thread; the anchor's `ops.sql`) \
         timed every op of the model's decode and prefill graphs at the model's shapes, \
         repeating each on the same tensors; beside each, the registry case our stages run for \
         it (hot cache, 1 thread, median). A column per stage that changes a paired op's variant \
         (the others repeat the stage before them) and for the last stage: the variant the stage \
         picks, its time and the speed ratio ggml's time / ours (> 1: ours faster; **slower** \
         where ours is). Where the inputs hold no case of ggml's exact shape, the nearest case \
         sharing the dimensions that matter stands in, its time scaled to ggml's work at its own \
         rate per FLOP, element, row or pair (the factor is in the `ours` column): those rows \
         compare rates, not the same call. ggml's rate: GFLOP/s for MUL_MAT and FLASH_ATTN_EXT \
         (2 FLOP per multiply-add, as ours), otherwise test-backend-ops' GB/s (its own byte \
         count, not ours).\n\n",
    );
    md.push_str(&format!(
        "- {} ops of the model's graphs timed by ggml, {} of them in the {} rows below; {} listed \
         after the table without a counterpart or without a ggml figure.\n",
        b.measured_ops,
        b.paired_ops,
        b.rows.len(),
        b.unpaired.len()
    ));
    if let Some(&last) = b.shown.last() {
        let mut faster = 0;
        let mut slower = Vec::new();
        for r in &b.rows {
            if let Cell::Measured { ratio, .. } = r.cells[last] {
                if ratio < 1.0 {
                    slower.push(format!("{} {}×", r.chart_label(), sig3(ratio)));
                } else {
                    faster += 1;
                }
            }
        }
        md.push_str(&format!(
            "- At `{}`: ours at least as fast in {faster} rows, slower in {}{}\n",
            b.stages[last],
            slower.len(),
            if slower.is_empty() { ".".to_string() } else { format!(": {}.", slower.join(", ")) }
        ));
    }
    md.push('\n');
    match chart {
        Ok(file) => md.push_str(&format!(
            "![Ops beside ggml]({file}) ([SVG]({}))\n\n",
            file.replace(".png", ".svg")
        )),
        Err(why) => md.push_str(&format!("Chart not drawn: {why}.\n\n")),
    }
    if !b.rows.is_empty() {
        md.push_str("| phase | ggml op (inputs) | ggml | ggml rate | ours |");
        for &s in &b.shown {
            md.push_str(&format!(" `{}` |", b.stages[s]));
        }
        md.push_str("\n|---|---|---:|---:|---|");
        for _ in &b.shown {
            md.push_str("---|");
        }
        md.push('\n');
        for r in &b.rows {
            let ggml: Vec<String> =
                r.ggml.iter().map(|o| format!("{} `{}` {}", o.kind, o.name, o.inputs())).collect();
            let ours: Vec<String> = r.sides.iter().map(side_text).collect();
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} |",
                phase(r.tokens),
                escape(&ggml.join(" + ")),
                time_ns(r.ggml_ns),
                r.ggml_rate(),
                escape(&ours.join("; "))
            ));
            for &s in &b.shown {
                md.push_str(&format!(" {} |", cell_text(&r.cells[s])));
            }
            md.push('\n');
        }
        md.push_str("\nThe pairs:\n\n");
        let mut seen: Vec<*const Pairing> = Vec::new();
        for r in &b.rows {
            if seen.contains(&(r.pairing as *const Pairing)) {
                continue;
            }
            seen.push(r.pairing);
            let kinds: Vec<String> = r
                .pairing
                .ggml
                .iter()
                .map(|s| match &s.src0 {
                    Some(t) => format!("{} ({t})", s.op),
                    None => s.op.to_string(),
                })
                .collect();
            let ours: Vec<String> = r.pairing.ours.iter().map(|c| format!("`{}`", c.op)).collect();
            md.push_str(&format!(
                "- {} ↔ {}{}: {}.\n",
                kinds.join(" + "),
                ours.join(" / "),
                r.pairing.aside.map(|a| format!(" ({a})")).unwrap_or_default(),
                r.pairing.note
            ));
        }
        md.push('\n');
    }
    if !b.unpaired.is_empty() {
        md.push_str("### ggml ops without a counterpart\n\n| phase | ggml op (inputs) | ggml | why |\n|---|---|---:|---|\n");
        for u in &b.unpaired {
            md.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                phase(u.tokens),
                escape(&u.what),
                u.time_ns.map(time_ns).unwrap_or_else(|| "-".into()),
                escape(&u.why)
            ));
        }
        md.push('\n');
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ggml_ops::Tensor;
    use std::path::Path;

    fn fixture() -> (AnchorOps, Vec<ResultFile>) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/anchor-ops");
        let ops = AnchorOps::load(&dir.join("anchor")).unwrap();
        let results = vec![crate::baseline::load(&dir.join("results.json")).unwrap()];
        (ops, results)
    }

    fn op(kind: OpKind, out: [u64; 4], sources: &[(GgmlType, [u64; 4])]) -> MeasuredOp {
        MeasuredOp {
            kind,
            name: "t".into(),
            out: Tensor { ty: GgmlType::F32, ne: out },
            op_params: vec![(1, 64)],
            sources: sources.iter().map(|(ty, ne)| Tensor { ty: ty.clone(), ne: *ne }).collect(),
            time_us: Some(1.0),
            bandwidth_gb_s: 1.0,
            n_runs: 1,
            line: 1,
        }
    }

    fn dims(pairs: &[(&str, u64)]) -> Dims {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn every_counterpart_is_a_registry_op_whose_dimensions_its_form_reads() {
        for p in PAIRINGS {
            assert!(!p.ggml.is_empty() && !p.note.is_empty(), "{p:?}");
            for cp in p.ours {
                let info = gllm_kernels::registry::op(cp.op)
                    .unwrap_or_else(|| panic!("`{}` is not a registry op", cp.op));
                let shapes = (info.shapes)(gllm_kernels::registry::CaseSet::Model);
                let shape = shapes.first().unwrap_or_else(|| panic!("{} has no model case", cp.op));
                let d: Dims =
                    shape.dims().iter().map(|(k, v)| (k.to_string(), *v as u64)).collect();
                assert!(cp.form.work_ours(&d).is_some_and(|w| w > 0.0), "{}: {d:?}", cp.op);
                for k in cp.form.fixed().iter().chain(cp.form.single().as_ref()) {
                    assert!(d.contains_key(*k), "{}: no dimension `{k}` in {d:?}", cp.op);
                }
            }
        }
    }

    #[test]
    fn forms_read_ggml_shapes_and_count_work() {
        let q4_1 = |ne| (GgmlType::Q4_1, ne);
        let f32 = |ne| (GgmlType::F32, ne);
        let mm = op(
            OpKind::MulMat,
            [1536, 512, 1, 1],
            &[q4_1([576, 1536, 1, 1]), f32([576, 512, 1, 1])],
        );
        let t = Form::MatMul.target(&[&mm]).unwrap();
        assert_eq!(t, dims(&[("m", 512), ("n", 1536), ("k", 576)]));
        assert_eq!(Form::MatMul.work_ggml(&t), Some(2.0 * 512.0 * 1536.0 * 576.0));
        let batched =
            op(OpKind::MulMat, [64, 64, 9, 1], &[f32([64, 64, 9, 1]), f32([64, 64, 9, 1])]);
        assert_eq!(Form::MatMul.target(&[&batched]), None, "a batched product is not a linear");
        let q = op(OpKind::Rope, [64, 9, 512, 1], &[f32([64, 9, 512, 1])]);
        let k = op(OpKind::Rope, [64, 3, 512, 1], &[f32([64, 3, 512, 1])]);
        let t = Form::Rope.target(&[&k, &q]).unwrap();
        assert_eq!(
            t,
            dims(&[("m", 512), ("heads", 9), ("kv_heads", 3), ("d", 64), ("rot", 64), ("neox", 0)])
        );
        assert_eq!(Form::Rope.work_ggml(&t), Some(512.0 * 12.0));
        assert_eq!(Form::Rope.target(&[&q]), None, "Q without K");
        let fa = op(
            OpKind::FlashAttnExt,
            [64, 9, 64, 1],
            &[
                f32([64, 64, 9, 1]),
                (GgmlType::F16, [64, 512, 3, 1]),
                (GgmlType::F16, [64, 512, 3, 1]),
            ],
        );
        let t = Form::Attention.target(&[&fa]).unwrap();
        assert_eq!(t, dims(&[("m", 64), ("kv", 512), ("heads", 9), ("kv_heads", 3), ("d", 64)]));
        // ggml: every pair of its random mask; ours: query i sees 449 + i keys
        assert_eq!(Form::Attention.work_ggml(&t), Some(64.0 * 512.0 * 9.0));
        let visible: u64 = (449..449 + 64).sum();
        assert_eq!(Form::Attention.work_ours(&t), Some(visible as f64 * 9.0));
        let norm = op(OpKind::RmsNorm, [576, 512, 1, 1], &[f32([576, 512, 1, 1])]);
        assert_eq!(Form::Norm.target(&[&norm]), Some(dims(&[("rows", 512), ("n", 576)])));
    }

    #[test]
    fn the_fixture_pairs_each_op_with_the_case_our_stages_run() {
        let (ops, results) = fixture();
        let b = pair(&ops, &results);
        let shown: Vec<&str> = b.shown.iter().map(|&s| b.stages[s].as_str()).collect();
        assert_eq!(shown, ["simd", "flash", "quantized"], "the stages that change a paired op");
        assert_eq!((b.measured_ops, b.paired_ops, b.rows.len()), (12, 10, 11));
        let row = |label: &str| {
            b.rows.iter().find(|r| r.chart_label() == label).unwrap_or_else(|| {
                panic!("{label}: {:?}", b.rows.iter().map(|r| r.chart_label()).collect::<Vec<_>>())
            })
        };
        let (simd, quantized) = (b.shown[0], b.shown[2]);
        // Q and K rotations summed, Q first
        let rope = row("decode ROPE Qcur-0+Kcur-0");
        assert!((rope.ggml_ns - (350.137 + 218.327)).abs() < 1e-6, "{}", rope.ggml_ns);
        assert!(rope.sides[0].stand_in.as_ref().unwrap().exact);
        // the norm: RMS_NORM and its weight MUL summed
        let norm = row("decode RMS_NORM+MUL norm-0+attn_norm-0");
        assert!((norm.ggml_ns - (586.128 + 80.19)).abs() < 1e-6);
        // decode MUL_MAT: f32 stages run linear_packed, the quantized one the interleaved blocks
        let q = row("decode MUL_MAT Qcur-0");
        let op_at = |r: &Row, s: usize| match &r.cells[s] {
            Cell::Measured { op, ratio, ns, .. } => {
                assert!((ratio - r.ggml_ns / ns).abs() < 1e-9);
                Some(*op)
            }
            _ => None,
        };
        assert_eq!(op_at(q, simd), Some("linear_packed"));
        assert_eq!(op_at(q, quantized), Some("qmatvec_q4_1x8"));
        let rows_layout = row("decode MUL_MAT Qcur-0 (rows)");
        assert_eq!(rows_layout.cells[simd], Cell::NotRun);
        assert_eq!(op_at(rows_layout, quantized), Some("qmatvec_q4_1"));
        // prefill MUL_MAT from the 64-token cases, per FLOP: the same n where there is one
        let gate = row("pp512 MUL_MAT ffn_gate-0");
        let s = |i: usize| gate.sides[i].stand_in.as_ref().unwrap();
        assert_eq!((s(0).comparison.shape.as_str(), s(0).factor), ("m=64,n=1536,k=576", 8.0));
        assert_eq!(s(1).comparison.shape, "m=64,n=576,k=576");
        assert!((s(1).factor - 512.0 * 1536.0 / (64.0 * 576.0)).abs() < 1e-9);
        assert!(!s(0).exact && !s(1).exact);
        let Cell::Measured { ns, .. } = &gate.cells[quantized] else { panic!() };
        let measured = s(1).comparison.entries.last().unwrap().median_ns.unwrap();
        assert!((ns - measured * s(1).factor).abs() < 1e-6, "scaled to ggml's work");
        // no 64-token rows-layout case in the fixture, and no add near 576 x 512
        let gate_rows = row("pp512 MUL_MAT ffn_gate-0 (rows)");
        assert!(gate_rows.sides[0].missing.as_deref().unwrap().contains("k=576"));
        assert_eq!(gate_rows.cells[quantized], Cell::NoCase);
        assert_eq!(row("pp512 ADD ffn_inp-0").cells[simd], Cell::NoCase);
        // without a counterpart: a reason each, none dropped
        let why: Vec<(&str, &str)> = b
            .unpaired
            .iter()
            .map(|u| (u.what.split(' ').next().unwrap(), u.why.split(':').next().unwrap()))
            .collect();
        assert_eq!(
            why,
            [
                ("GET_ROWS", "no counterpart"),
                ("SET_ROWS", "no counterpart"),
                ("CPY", "not supported by ggml's CPU backend here (`ops.sql`"),
                ("SOFT_MAX", "listed in `graph-ops.txt` (line 13), no perf row in `ops.sql`"),
            ]
        );
    }

    #[test]
    fn a_sum_missing_a_part_is_listed_with_the_reason() {
        let (mut ops, results) = fixture();
        ops.measured.retain(|o| o.kind != OpKind::Mul);
        let b = pair(&ops, &results);
        assert!(b.rows.iter().all(|r| r.ggml.iter().all(|o| o.kind != OpKind::RmsNorm)));
        let norm = b.unpaired.iter().find(|u| u.what.starts_with("RMS_NORM")).unwrap();
        assert_eq!(norm.why, "summed with MUL for `rms_norm`, which this phase lacks");
    }

    #[test]
    fn without_ops_the_section_is_a_note() {
        let (_, results) = fixture();
        let ops = AnchorOps { notes: vec!["d has no `ops.sql`".into()], ..Default::default() };
        let b = pair(&ops, &results);
        let md = section(&b, Err("no rows".into()));
        assert_eq!(md, "## Ops beside ggml\n\nNote: d has no `ops.sql`.\n\n");
    }
}
