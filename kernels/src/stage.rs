//! Stages: named, cumulative choices of variant per op, defined as data.
//!
//! A stage names its parent and overrides the variant of some ops; each override is an
//! ordered list of candidates and the first one available on this CPU wins (so `simd` picks
//! `avx512` where the CPU has it, else `avx2`, else the portable `wide` code). Ops that no
//! stage in the chain mentions run `naive`. A user-defined stage is just another `Stage`.
//!
//! `GLLM_FORCE_VARIANT` overrides the choice after resolution: `avx2` forces that variant on
//! every op that has it; `linear=avx2,rms_norm=simd` forces per op. A forced variant that does
//! not exist or is unavailable is an error, never a silent fallback.

use std::collections::BTreeMap;
use std::fmt;

use crate::registry::{self, Availability, Variant};

/// A stage as data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    pub name: String,
    pub parent: Option<String>,
    pub summary: String,
    /// `(op, candidates)`; the first available candidate wins.
    pub overrides: Vec<(String, Vec<String>)>,
    /// Whether the model keeps weights in their GGUF blocks (`Some(true)`), dequantizes them
    /// to f32 at load (`Some(false)`), or inherits the parent's choice (`None`).
    pub quantized_weights: Option<bool>,
}

/// The built-in stages (name, parent, what it adds, weights kept in blocks?), each adding to
/// the one before. Which variants a stage picks comes from the op modules
/// ([`crate::ops::stage_overrides`], [`crate::quant::stage_overrides`]), so a new variant is
/// added to a stage next to its code.
const BUILTIN: [(&str, Option<&str>, &str, Option<bool>); 5] = [
    (
        "naive",
        None,
        "scalar loops (f64 accumulation) for every op; weights dequantized to f32 at load",
        Some(false),
    ),
    ("matrixmultiply", Some("naive"), "linear layers through matrixmultiply::sgemm", None),
    (
        "simd",
        Some("matrixmultiply"),
        "wide and hand-written AVX2 kernels for linear, norms, activations, \
         elementwise, RoPE, softmax and dequantization; attention as the naive algorithm in \
         f32 (scores materialized per block of queries, softmax, then P·V)",
        None,
    ),
    ("flash", Some("simd"), "flash attention: online softmax over KV tiles, no score matrix", None),
    (
        "quantized",
        Some("flash"),
        "weights stay in their GGUF blocks (Q4_1 interleaved by 8 rows at load, and with \
         AVX-512 VNNI Q8_0 by 16); matmul directly on blocks against quantized activations; \
         llama.cpp's arithmetic around them (f16 KV cache, its RoPE, norm, SwiGLU and both \
         flash attentions: row by row below 64 queries, tiled from 64), so its logits are \
         reproduced to the bit",
        Some(true),
    ),
];

/// The built-in stages, each adding to the one before.
pub fn builtin() -> Vec<Stage> {
    BUILTIN
        .iter()
        .map(|&(name, parent, summary, quantized_weights)| {
            let mut overrides: Vec<(String, Vec<String>)> = Vec::new();
            let from_modules = crate::ops::stage_overrides(name)
                .into_iter()
                .chain(crate::quant::stage_overrides(name));
            for (op, candidates) in from_modules {
                overrides
                    .push((op.to_string(), candidates.iter().map(|c| c.to_string()).collect()));
            }
            Stage {
                name: name.into(),
                parent: parent.map(Into::into),
                summary: summary.into(),
                overrides,
                quantized_weights,
            }
        })
        .collect()
}

/// A stage resolved against the registry and this CPU.
#[derive(Clone, Debug)]
pub struct ResolvedStage {
    pub name: String,
    /// Root first, this stage last.
    pub chain: Vec<String>,
    /// The variant chosen for every registered op.
    pub choices: BTreeMap<&'static str, &'static Variant>,
    pub quantized_weights: bool,
}

impl ResolvedStage {
    /// The variant chosen for `op`. Panics if the op is not registered (a programming error).
    pub fn variant(&self, op: &str) -> &'static Variant {
        self.choices.get(op).unwrap_or_else(|| panic!("op `{op}` is not registered"))
    }
}

/// Why a stage cannot be resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StageError {
    UnknownStage { name: String, known: Vec<String> },
    ParentCycle { chain: Vec<String> },
    UnknownOp { stage: String, op: String },
    UnknownVariant { stage: String, op: String, variant: String },
    NoCandidateAvailable { stage: String, op: String, reasons: Vec<String> },
    BadForce { spec: String, reason: String },
}

impl fmt::Display for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StageError::UnknownStage { name, known } => {
                write!(f, "unknown stage `{name}` (known: {})", known.join(", "))
            }
            StageError::ParentCycle { chain } => {
                write!(f, "stage parents form a cycle: {}", chain.join(" -> "))
            }
            StageError::UnknownOp { stage, op } => {
                write!(f, "stage `{stage}` overrides unknown op `{op}`")
            }
            StageError::UnknownVariant { stage, op, variant } => {
                write!(f, "stage `{stage}` names unknown variant `{variant}` of op `{op}`")
            }
            StageError::NoCandidateAvailable { stage, op, reasons } => write!(
                f,
                "stage `{stage}`: no candidate variant of `{op}` is available here ({})",
                reasons.join("; ")
            ),
            StageError::BadForce { spec, reason } => {
                write!(f, "GLLM_FORCE_VARIANT=`{spec}`: {reason}")
            }
        }
    }
}

impl std::error::Error for StageError {}

/// The chain of stage names from the root to `name`.
pub fn chain(stages: &[Stage], name: &str) -> Result<Vec<String>, StageError> {
    let mut chain = Vec::new();
    let mut current = Some(name.to_string());
    while let Some(n) = current {
        if chain.contains(&n) {
            chain.push(n);
            return Err(StageError::ParentCycle { chain });
        }
        let stage =
            stages.iter().find(|s| s.name == n).ok_or_else(|| StageError::UnknownStage {
                name: n.clone(),
                known: stages.iter().map(|s| s.name.clone()).collect(),
            })?;
        chain.push(n);
        current = stage.parent.clone();
    }
    chain.reverse();
    Ok(chain)
}

/// Resolves `name` among `stages`, then applies `GLLM_FORCE_VARIANT` if it is set.
pub fn resolve(stages: &[Stage], name: &str) -> Result<ResolvedStage, StageError> {
    let force = std::env::var("GLLM_FORCE_VARIANT").ok().filter(|s| !s.trim().is_empty());
    resolve_with_force(stages, name, force.as_deref())
}

/// Resolves `name` among `stages` with an explicit force specification (see module docs).
pub fn resolve_with_force(
    stages: &[Stage],
    name: &str,
    force: Option<&str>,
) -> Result<ResolvedStage, StageError> {
    let chain = chain(stages, name)?;
    let mut choices: BTreeMap<&'static str, &'static Variant> = BTreeMap::new();
    for op in registry::ops() {
        let naive = registry::variant(op.name, "naive")
            .unwrap_or_else(|| panic!("op `{}` has no naive variant", op.name));
        choices.insert(op.name, naive);
    }
    let mut quantized_weights = false;
    for stage_name in &chain {
        let stage = stages.iter().find(|s| &s.name == stage_name).expect("chain is resolved");
        if let Some(q) = stage.quantized_weights {
            quantized_weights = q;
        }
        for (op, candidates) in &stage.overrides {
            let op_info = registry::op(op).ok_or_else(|| StageError::UnknownOp {
                stage: stage.name.clone(),
                op: op.clone(),
            })?;
            let mut reasons = Vec::new();
            let mut chosen = None;
            for candidate in candidates {
                let v =
                    registry::variant(op, candidate).ok_or_else(|| StageError::UnknownVariant {
                        stage: stage.name.clone(),
                        op: op.clone(),
                        variant: candidate.clone(),
                    })?;
                match (v.available)() {
                    Availability::Available => {
                        chosen = Some(v);
                        break;
                    }
                    Availability::Unavailable(why) => reasons.push(format!("{candidate}: {why}")),
                }
            }
            let v = chosen.ok_or_else(|| StageError::NoCandidateAvailable {
                stage: stage.name.clone(),
                op: op.clone(),
                reasons,
            })?;
            choices.insert(op_info.name, v);
        }
    }
    if let Some(spec) = force {
        apply_force(&mut choices, spec)?;
    }
    Ok(ResolvedStage { name: name.to_string(), chain, choices, quantized_weights })
}

fn apply_force(
    choices: &mut BTreeMap<&'static str, &'static Variant>,
    spec: &str,
) -> Result<(), StageError> {
    let bad = |reason: String| StageError::BadForce { spec: spec.to_string(), reason };
    let force_one = |v: &'static Variant| match (v.available)() {
        Availability::Available => Ok(v),
        Availability::Unavailable(why) => {
            Err(bad(format!("variant `{}` of `{}` is not available: {why}", v.name, v.op)))
        }
    };
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.split_once('=') {
            Some((op, variant)) => {
                let v = registry::variant(op.trim(), variant.trim())
                    .ok_or_else(|| bad(format!("op `{op}` has no variant `{variant}`")))?;
                choices.insert(v.op, force_one(v)?);
            }
            None => {
                let mut any = false;
                for v in registry::variants().iter().filter(|v| v.name == item) {
                    choices.insert(v.op, force_one(v)?);
                    any = true;
                }
                if !any {
                    return Err(bad(format!("no op has a variant named `{item}`")));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_stage_resolves() {
        let stages = builtin();
        for s in &stages {
            let r = resolve_with_force(&stages, &s.name, None).unwrap();
            assert_eq!(r.chain.last(), Some(&s.name));
            assert_eq!(r.choices.len(), registry::ops().len());
        }
    }

    #[test]
    fn bad_names_and_forces_are_errors() {
        let stages = builtin();
        assert!(matches!(
            resolve_with_force(&stages, "nope", None),
            Err(StageError::UnknownStage { .. })
        ));
        assert!(matches!(
            resolve_with_force(&stages, "simd", Some("no_such_variant")),
            Err(StageError::BadForce { .. })
        ));
        assert!(matches!(
            resolve_with_force(&stages, "simd", Some("add=no_such_variant")),
            Err(StageError::BadForce { .. })
        ));
        let forced = resolve_with_force(&stages, "simd", Some("add=naive")).unwrap();
        assert_eq!(forced.variant("add").name, "naive");
    }

    #[test]
    fn parent_cycles_are_reported() {
        let mut stages = builtin();
        stages[0].parent = Some("simd".into());
        assert!(matches!(chain(&stages, "simd"), Err(StageError::ParentCycle { .. })));
    }
}
