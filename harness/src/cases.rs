//! What gets measured: benchmark cases drawn from the kernel registry, never named here.
//!
//! A [`CaseSpec`] is one kind of measured case. Today every case is an op case (one
//! registered op at one shape, hot or cold); end-to-end model cases (prefill/decode
//! tokens/s) will be another variant of the enum with the same samples, stats and baseline
//! path: each kind supplies ids, a unit, work per iteration, verification and routines.

use std::panic::{catch_unwind, AssertUnwindSafe};

use gllm_kernels::registry::{self, Case, CaseSet, OpInfo, Shape, Unit, Variant};
use gllm_kernels::stage::{self, ResolvedStage};
use regex::Regex;

use crate::baseline::{CaseKind, Verification, VerificationStatus};
use crate::e2e::EndToEndCase;
use crate::measure::{cold_copies, Rotating, Routine};

/// Seed of every prepared benchmark case: the same inputs on every machine and run.
pub const CASE_SEED: u64 = 0x9e11_be4c;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cache {
    /// One prepared case reused every iteration: data stays in the caches it fits.
    Hot,
    /// Iterations rotate over copies totalling > 2 × L3: every one starts from DRAM.
    Cold,
}

impl Cache {
    pub fn name(self) -> &'static str {
        match self {
            Cache::Hot => "hot",
            Cache::Cold => "cold",
        }
    }
}

/// Which cache states to measure (`--cache`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CacheSelect {
    /// Hot for every case, plus cold for cases whose working set exceeds one core's L2
    /// (in a decode step such operands are weights streamed from DRAM).
    Auto,
    /// One prepared case reused: data stays in the caches it fits.
    Hot,
    /// Rotation over copies larger than twice the L3: every iteration starts from DRAM.
    Cold,
    /// Hot and cold for every case.
    Both,
}

/// Which shapes of each op to measure (`--cases`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CaseSelect {
    /// SmolLM2-135M shapes.
    Model,
    /// The size sweep (for the size-sweep charts).
    Sweep,
    /// Both.
    All,
}

fn case_set_name(set: CaseSet) -> &'static str {
    match set {
        CaseSet::Model => "model",
        CaseSet::Sweep => "sweep",
        CaseSet::Test => "test",
    }
}

pub fn unit_name(unit: Unit) -> &'static str {
    unit.symbol()
}

/// One op at one shape in one cache state; measured for one or several variants.
#[derive(Clone)]
pub struct OpCase {
    pub op: &'static OpInfo,
    pub shape: Shape,
    pub case_set: CaseSet,
    pub cache: Cache,
    /// Bytes of one prepared case (inputs + output).
    pub working_set: usize,
}

/// A measured case of any kind (see the module docs).
#[derive(Clone)]
pub enum CaseSpec {
    Op(OpCase),
    /// Prefill or decode tokens/s of the whole model ([`crate::e2e`]); measured by
    /// [`crate::e2e::execute`] with every stage's model loaded once.
    EndToEnd(EndToEndCase),
}

fn with_cache(base: &str, cache: Cache) -> String {
    match base.strip_suffix(')') {
        Some(body) => format!("{body},cache={})", cache.name()),
        None => format!("{base}(cache={})", cache.name()),
    }
}

/// One implementation measured for a case under one or several stages.
#[derive(Clone, Debug)]
pub struct Arm {
    /// The name in the case id (`variant=...`): the registry variant for op cases (end-to-end
    /// cases will use the stage).
    pub name: String,
    /// The stages (of the plan, in order) that measure this arm for the case.
    pub stages: Vec<String>,
    pub implementation: Implementation,
}

/// What an arm runs.
#[derive(Clone, Copy, Debug)]
pub enum Implementation {
    OpVariant(&'static Variant),
    /// The whole model through the stage named by the arm.
    Stage,
}

impl std::fmt::Debug for CaseSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.group_id())
    }
}

impl CaseSpec {
    pub fn kind(&self) -> CaseKind {
        match self {
            CaseSpec::Op(_) => CaseKind::Op,
            CaseSpec::EndToEnd(_) => CaseKind::EndToEnd,
        }
    }

    /// The id of this case measured with `variant`: `add(variant=simd,n=576,cache=hot)`.
    pub fn id(&self, variant: &str) -> String {
        match self {
            CaseSpec::Op(c) => {
                with_cache(&registry::case_id(c.op.name, variant, &c.shape), c.cache)
            }
            CaseSpec::EndToEnd(e) => e.id(variant, e.tokens),
        }
    }

    /// The id without a variant, shared by every stage: `add(n=576,cache=hot)`.
    pub fn group_id(&self) -> String {
        match self {
            CaseSpec::Op(c) => {
                let base = if c.shape.dims().is_empty() {
                    format!("{}()", c.op.name)
                } else {
                    format!("{}({})", c.op.name, c.shape)
                };
                with_cache(&base, c.cache).replace("(,", "(")
            }
            CaseSpec::EndToEnd(e) => e.group_id(),
        }
    }

    pub fn op_name(&self) -> &'static str {
        match self {
            CaseSpec::Op(c) => c.op.name,
            CaseSpec::EndToEnd(e) => e.phase.op(),
        }
    }

    pub fn shape_text(&self) -> String {
        match self {
            CaseSpec::Op(c) => c.shape.to_string(),
            CaseSpec::EndToEnd(e) => e.shape(e.tokens),
        }
    }

    pub fn dims(&self) -> Vec<(String, u64)> {
        match self {
            CaseSpec::Op(c) => {
                c.shape.dims().iter().map(|(k, v)| (k.to_string(), *v as u64)).collect()
            }
            CaseSpec::EndToEnd(e) => e.dims(e.tokens),
        }
    }

    /// Whether the case's FLOP are int8 dot products (a quantized matmul or block dot
    /// product, its limit the int8 peak); end-to-end cases say it per stage instead.
    pub fn integer_arithmetic(&self) -> bool {
        match self {
            CaseSpec::Op(c) => ["qmatvec_", "vec_dot_"].iter().any(|p| c.op.name.starts_with(p)),
            CaseSpec::EndToEnd(_) => false,
        }
    }

    pub fn cache(&self) -> Cache {
        match self {
            CaseSpec::Op(c) => c.cache,
            CaseSpec::EndToEnd(_) => Cache::Hot,
        }
    }

    pub fn case_set(&self) -> &'static str {
        match self {
            CaseSpec::Op(c) => case_set_name(c.case_set),
            CaseSpec::EndToEnd(_) => "model",
        }
    }

    pub fn unit(&self) -> &'static str {
        match self {
            CaseSpec::Op(c) => unit_name(c.op.unit),
            CaseSpec::EndToEnd(_) => "tokens/s",
        }
    }

    pub fn flops(&self) -> f64 {
        match self {
            CaseSpec::Op(c) => (c.op.flops)(&c.shape),
            CaseSpec::EndToEnd(e) => e.flops_per_token(e.tokens),
        }
    }

    pub fn bytes(&self) -> f64 {
        match self {
            CaseSpec::Op(c) => (c.op.bytes)(&c.shape),
            // Per token, f32 weights (the stage-specific figure is in each record).
            CaseSpec::EndToEnd(e) => e.source.flops_per_token() * 2.0,
        }
    }

    pub fn working_set(&self) -> usize {
        match self {
            CaseSpec::Op(c) => c.working_set,
            CaseSpec::EndToEnd(e) => (e.source.flops_per_token() * 2.0) as usize,
        }
    }

    /// Work of one iteration in the unit's numerator (FLOP, bytes or tokens).
    pub fn work_per_iter(&self) -> f64 {
        match self {
            CaseSpec::Op(c) => match c.op.unit {
                Unit::GflopPerS => self.flops(),
                Unit::GbPerS => self.bytes(),
            },
            // One token per iteration; samples are ns per token, so 1e9 gives tokens/s.
            CaseSpec::EndToEnd(_) => 1e9,
        }
    }
}

/// Every op case of the registry in the selected sets and cache states. `l2` decides
/// which cases `auto` measures cold too.
pub fn plan(select: CaseSelect, cache: CacheSelect, l2: usize) -> Vec<CaseSpec> {
    let sets: &[CaseSet] = match select {
        CaseSelect::Model => &[CaseSet::Model],
        CaseSelect::Sweep => &[CaseSet::Sweep],
        CaseSelect::All => &[CaseSet::Model, CaseSet::Sweep],
    };
    let mut out = Vec::new();
    for op in registry::ops() {
        for &set in sets {
            for shape in (op.shapes)(set) {
                let prepared = (op.prepare)(&shape, CASE_SEED);
                let working_set = prepared.input_bytes() + prepared.output().len() * 4;
                let caches: &[Cache] = match cache {
                    CacheSelect::Hot => &[Cache::Hot],
                    CacheSelect::Cold => &[Cache::Cold],
                    CacheSelect::Both => &[Cache::Hot, Cache::Cold],
                    CacheSelect::Auto if working_set > l2 => &[Cache::Hot, Cache::Cold],
                    CacheSelect::Auto => &[Cache::Hot],
                };
                for &c in caches {
                    out.push(CaseSpec::Op(OpCase {
                        op,
                        shape: shape.clone(),
                        case_set: set,
                        cache: c,
                        working_set,
                    }));
                }
            }
        }
    }
    out
}

/// Whether `--filter` selects a case: the regex matches its group id or the id of any of
/// the variants it would be measured with.
pub fn selected(filter: Option<&Regex>, spec: &CaseSpec, variants: &[&str]) -> bool {
    match filter {
        None => true,
        Some(re) => {
            re.is_match(&spec.group_id()) || variants.iter().any(|v| re.is_match(&spec.id(v)))
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panicked".into())
}

/// Runs a variant once on a fresh case; a panic becomes an error message.
fn run_once(variant: &Variant, case: &Case) -> Result<Case, String> {
    let mut case = case.clone();
    catch_unwind(AssertUnwindSafe(|| (variant.run)(&mut case)))
        .map_err(|p| format!("{}/{} panicked: {}", variant.op, variant.name, panic_message(p)))?;
    Ok(case)
}

/// Checks `variant` against the op's naive variant on this op case with the op's tolerance,
/// and the output's guard zones.
pub fn verify_op(op: &OpInfo, shape: &Shape, variant: &Variant) -> Verification {
    verify_op_variants(op, shape, &[variant]).remove(0)
}

/// [`verify_op`] for several variants of one case: the case is prepared and naive is run
/// once (naive on a large case costs tens of milliseconds).
pub fn verify_op_variants(op: &OpInfo, shape: &Shape, variants: &[&Variant]) -> Vec<Verification> {
    let metric = op.tolerance.metric();
    let failed = |detail: String| Verification {
        status: VerificationStatus::Failed,
        metric: metric.clone(),
        worst_error: None,
        detail: Some(detail),
    };
    let prepared = (op.prepare)(shape, CASE_SEED);
    let Some(naive) = registry::variant(op.name, "naive") else {
        let why = format!("op `{}` has no naive variant to check against", op.name);
        return variants.iter().map(|_| failed(why.clone())).collect();
    };
    let want = match run_once(naive, &prepared) {
        Ok(c) => c,
        Err(e) => return variants.iter().map(|_| failed(e.clone())).collect(),
    };
    let magnitude = op.magnitude.map(|m| m(&prepared));
    let check = |variant: &Variant| -> Verification {
        if variant.name == naive.name {
            return match want.check_guards() {
                Ok(()) => Verification {
                    status: VerificationStatus::Reference,
                    metric: metric.clone(),
                    worst_error: None,
                    detail: None,
                },
                Err(at) => failed(format!("naive wrote outside its output (guard offset {at})")),
            };
        }
        let got = match run_once(variant, &prepared) {
            Ok(c) => c,
            Err(e) => return failed(e),
        };
        if let Err(at) = got.check_guards() {
            return failed(format!("wrote outside its output (guard offset {at})"));
        }
        if got.output().len() != want.output().len() {
            return failed(format!(
                "output length {} differs from naive's {}",
                got.output().len(),
                want.output().len()
            ));
        }
        match op.tolerance.check(got.output(), want.output(), magnitude.as_deref()) {
            Ok(a) => Verification {
                status: VerificationStatus::Passed,
                metric: metric.clone(),
                worst_error: Some(a.worst_error),
                detail: None,
            },
            Err(m) => failed(m.to_string()),
        }
    };
    variants.iter().map(|v| check(v)).collect()
}

impl CaseSpec {
    /// The distinct arms the stages measure for this case, in stage order; stages that pick
    /// the same implementation share one arm (and its samples).
    pub fn arms(&self, stages: &[ResolvedStage]) -> Vec<Arm> {
        let mut out: Vec<Arm> = Vec::new();
        for s in stages {
            let (name, implementation) = match self {
                CaseSpec::Op(c) => {
                    let v = s.variant(c.op.name);
                    (v.name.to_string(), Implementation::OpVariant(v))
                }
                CaseSpec::EndToEnd(_) => (s.name.clone(), Implementation::Stage),
            };
            match out.iter_mut().find(|a| a.name == name) {
                Some(a) => a.stages.push(s.name.clone()),
                None => out.push(Arm { name, stages: vec![s.name.clone()], implementation }),
            }
        }
        out
    }

    /// Every available registry variant of an op case as an arm (for `verify`).
    pub fn all_arms(&self) -> Vec<Arm> {
        match self {
            CaseSpec::Op(c) => registry::variants_of(c.op.name)
                .filter(|v| (v.available)().is_available())
                .map(|v| Arm {
                    name: v.name.to_string(),
                    stages: Vec::new(),
                    implementation: Implementation::OpVariant(v),
                })
                .collect(),
            CaseSpec::EndToEnd(_) => stage::builtin()
                .into_iter()
                .map(|s| Arm {
                    name: s.name,
                    stages: Vec::new(),
                    implementation: Implementation::Stage,
                })
                .collect(),
        }
    }

    /// Checks an arm against the reference (naive) before it may be timed.
    pub fn verify_arm(&self, arm: &Arm) -> Verification {
        self.verify_arms(std::slice::from_ref(arm)).remove(0)
    }

    /// Checks several arms of this case, computing the reference once.
    pub fn verify_arms(&self, arms: &[Arm]) -> Vec<Verification> {
        match self {
            CaseSpec::Op(c) => {
                let variants: Vec<&Variant> = arms
                    .iter()
                    .filter_map(|a| match a.implementation {
                        Implementation::OpVariant(v) => Some(v),
                        Implementation::Stage => None,
                    })
                    .collect();
                verify_op_variants(c.op, &c.shape, &variants)
            }
            // Verified with the models loaded for measuring (crate::e2e::execute).
            CaseSpec::EndToEnd(_) => arms
                .iter()
                .map(|_| Verification {
                    status: VerificationStatus::Failed,
                    metric: "logits vs naive".into(),
                    worst_error: None,
                    detail: Some("end-to-end cases are verified by e2e::execute".into()),
                })
                .collect(),
        }
    }

    /// The routine that runs an arm on this case (hot or cold, see [`CaseSpec::routine`]).
    /// `None` for end-to-end arms (measured by [`crate::e2e::execute`]).
    pub fn arm_routine(&self, arm: &Arm, l3: usize) -> Option<Box<dyn Routine>> {
        match arm.implementation {
            Implementation::OpVariant(v) => self.routine(v, l3),
            Implementation::Stage => None,
        }
    }

    pub fn verify(&self, variant: &Variant) -> Verification {
        match self {
            CaseSpec::Op(c) => verify_op(c.op, &c.shape, variant),
            CaseSpec::EndToEnd(_) => self
                .verify_arms(&[Arm {
                    name: variant.name.into(),
                    stages: Vec::new(),
                    implementation: Implementation::Stage,
                }])
                .remove(0),
        }
    }

    /// A routine running `variant` on this case: one prepared case (hot) or a rotation over
    /// enough copies to exceed twice the last-level cache (cold).
    pub fn routine(&self, variant: &'static Variant, l3: usize) -> Option<Box<dyn Routine>> {
        match self {
            CaseSpec::Op(c) => {
                let prepared = (c.op.prepare)(&c.shape, CASE_SEED);
                let copies = match c.cache {
                    Cache::Hot => 1,
                    Cache::Cold => cold_copies(c.working_set, l3),
                };
                let states = vec![prepared; copies];
                let run = variant.run;
                Some(Box::new(Rotating::new(states, move |case: &mut Case| run(case))))
            }
            CaseSpec::EndToEnd(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_variant_shape_and_cache() {
        let specs = plan(CaseSelect::Model, CacheSelect::Both, 512 << 10);
        assert!(!specs.is_empty());
        for s in &specs {
            let id = s.id("naive");
            assert!(id.starts_with(&format!("{}(variant=naive", s.op_name())), "{id}");
            assert!(id.ends_with(&format!("cache={})", s.cache().name())), "{id}");
            let group = s.group_id();
            assert!(!group.contains("variant="), "{group}");
            assert!(group.ends_with(&format!("cache={})", s.cache().name())), "{group}");
        }
    }

    #[test]
    fn every_registered_variant_verifies_on_a_model_case() {
        for spec in plan(CaseSelect::Model, CacheSelect::Hot, usize::MAX) {
            for v in
                registry::variants_of(spec.op_name()).filter(|v| (v.available)().is_available())
            {
                let result = spec.verify(v);
                assert_ne!(
                    result.status,
                    VerificationStatus::Failed,
                    "{}: {result:?}",
                    spec.id(v.name)
                );
            }
        }
    }

    #[test]
    fn a_wrong_variant_fails_verification() {
        let op = &registry::ops()[0];
        let naive = registry::variant(op.name, "naive").unwrap();
        let shape = (op.shapes)(CaseSet::Model).remove(0);
        // Writes zeros everywhere: wrong for any op whose output is not all zeros.
        let wrong = Variant {
            op: op.name,
            name: "zeros",
            summary: "test-only wrong variant",
            available: registry::always,
            run: |case| case.output_mut().fill(0.0),
        };
        let wrong: &'static Variant = Box::leak(Box::new(wrong));
        assert_eq!(verify_op(op, &shape, naive).status, VerificationStatus::Reference);
        let v = verify_op(op, &shape, wrong);
        assert_eq!(v.status, VerificationStatus::Failed, "{v:?}");
        assert!(v.detail.unwrap().contains("index"));
        // A variant that panics is a failure too, not a crash.
        let panicking: &'static Variant = Box::leak(Box::new(Variant {
            op: op.name,
            name: "panics",
            summary: "test-only",
            available: registry::always,
            run: |_| panic!("boom"),
        }));
        let v = verify_op(op, &shape, panicking);
        assert!(v.detail.unwrap().contains("boom"));
    }
}
