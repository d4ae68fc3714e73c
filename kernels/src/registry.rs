//! The registry: every op with its cases, cost model and tolerance, and every (op, variant)
//! with its availability and a run function over a prepared [`Case`].
//!
//! Tests walk it (every variant against `naive`), the benchmarks walk it, and the
//! `gllm-bench` CLI lists, verifies, measures and charts it. A new variant registered in its
//! op's file is therefore tested, benchmarked, listed and charted with no other edit.

use std::fmt;
use std::sync::OnceLock;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::tolerance::Tolerance;

/// What an op's throughput is reported in: compute-bound ops in GFLOP/s, memory-bound ones
/// in GB/s (end-to-end tokens/s belongs to the harness, not to an op).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    GflopPerS,
    GbPerS,
}

impl Unit {
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::GflopPerS => "GFLOP/s",
            Unit::GbPerS => "GB/s",
        }
    }
}

/// Named dimensions of one case, in a fixed order: `n=576,rows=1`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shape {
    dims: Vec<(&'static str, usize)>,
}

impl Shape {
    pub fn new(dims: &[(&'static str, usize)]) -> Self {
        Shape { dims: dims.to_vec() }
    }

    /// The value of a dimension. Panics with the shape in the message if it is missing: a
    /// case prepared by an op always carries the dimensions that op reads.
    pub fn get(&self, name: &str) -> usize {
        self.dims
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("shape {self} has no dimension `{name}`"))
    }

    pub fn dims(&self) -> &[(&'static str, usize)] {
        &self.dims
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, value)) in self.dims.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{name}={value}")?;
        }
        Ok(())
    }
}

/// The stable id of a measured case, the key of baselines and the target of `--filter`:
/// `rms_norm(variant=simd,n=576,rows=1)`.
pub fn case_id(op: &str, variant: &str, shape: &Shape) -> String {
    if shape.dims().is_empty() {
        format!("{op}(variant={variant})")
    } else {
        format!("{op}(variant={variant},{shape})")
    }
}

/// One input of a prepared case.
#[derive(Clone, Debug, PartialEq)]
pub enum Buffer {
    F32(Vec<f32>),
    /// Raw bytes, e.g. quantized blocks exactly as they sit in a GGUF tensor.
    Bytes(Vec<u8>),
}

impl Buffer {
    pub fn f32(&self) -> &[f32] {
        match self {
            Buffer::F32(v) => v,
            Buffer::Bytes(_) => panic!("expected an f32 buffer, found bytes"),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            Buffer::Bytes(v) => v,
            Buffer::F32(_) => panic!("expected a byte buffer, found f32"),
        }
    }

    pub fn len_bytes(&self) -> usize {
        match self {
            Buffer::F32(v) => v.len() * 4,
            Buffer::Bytes(v) => v.len(),
        }
    }
}

/// Inputs and the output buffer of one op at one shape, prepared once and run many times.
///
/// A variant's run function reads `inputs` and writes the output window (see [`Case::io`]).
/// The output is surrounded by guard zones of a NaN pattern on both sides; tests check that
/// they are untouched after every run. Running a variant repeatedly must be numerically
/// stationary (no drift into denormals or infinities): benchmarks call it in a loop.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    pub shape: Shape,
    pub inputs: Vec<Buffer>,
    /// `GUARD` guard values, the output, `GUARD` guard values.
    output: Vec<f32>,
}

/// The bit pattern of guard values: a quiet NaN with a payload no arithmetic produces.
pub const GUARD_BITS: u32 = 0x7fc0_dead;

impl Case {
    /// Guard elements on each side of the output.
    pub const GUARD: usize = 16;

    /// A case whose output window starts as `output` (in-place ops start from their input;
    /// others pass [`nan_output`] so an element a variant forgets to write is caught).
    pub fn new(shape: Shape, inputs: Vec<Buffer>, output: Vec<f32>) -> Self {
        let guard = f32::from_bits(GUARD_BITS);
        let mut buffer = Vec::with_capacity(output.len() + 2 * Self::GUARD);
        buffer.extend(std::iter::repeat_n(guard, Self::GUARD));
        buffer.extend_from_slice(&output);
        buffer.extend(std::iter::repeat_n(guard, Self::GUARD));
        Case { shape, inputs, output: buffer }
    }

    pub fn output(&self) -> &[f32] {
        &self.output[Self::GUARD..self.output.len() - Self::GUARD]
    }

    pub fn output_mut(&mut self) -> &mut [f32] {
        let end = self.output.len() - Self::GUARD;
        &mut self.output[Self::GUARD..end]
    }

    /// The inputs and the output window, borrowed together for a run function.
    pub fn io(&mut self) -> (&[Buffer], &mut [f32]) {
        let end = self.output.len() - Self::GUARD;
        (&self.inputs, &mut self.output[Self::GUARD..end])
    }

    /// `Err(offset)` of the first guard element that was overwritten (negative: before the
    /// output, `>= len`: after it).
    pub fn check_guards(&self) -> Result<(), isize> {
        let n = self.output.len() - 2 * Self::GUARD;
        for (i, v) in self.output.iter().enumerate() {
            let in_guard = i < Self::GUARD || i >= Self::GUARD + n;
            if in_guard && v.to_bits() != GUARD_BITS {
                return Err(i as isize - Self::GUARD as isize);
            }
        }
        Ok(())
    }

    /// Bytes held by the inputs (the harness uses it to size "cold" rotations beyond L3).
    pub fn input_bytes(&self) -> usize {
        self.inputs.iter().map(Buffer::len_bytes).sum()
    }
}

/// Which list of shapes to prepare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CaseSet {
    /// SmolLM2-135M shapes (hidden 576, ffn 1536, 9 q heads / 3 KV heads of dim 64, vocab 49152).
    Model,
    /// A size sweep for charts (log-spaced sizes).
    Sweep,
    /// Awkward sizes for correctness tests (0, 1, 2, 3, 7, ... 4097; GEMM m, n, k in 0..=17).
    Test,
}

/// An op: what it computes, at which shapes, what it costs, and how exactly variants must agree.
pub struct OpInfo {
    pub name: &'static str,
    /// The formula and shapes, one line.
    pub summary: &'static str,
    pub unit: Unit,
    pub tolerance: Tolerance,
    pub shapes: fn(CaseSet) -> Vec<Shape>,
    /// Seeded inputs and a NaN-filled output buffer for `shape`.
    pub prepare: fn(&Shape, u64) -> Case,
    /// Floating-point (or integer multiply-add) operations of one run.
    pub flops: fn(&Shape) -> f64,
    /// Bytes one run must move at the least (inputs read once, outputs written once).
    pub bytes: fn(&Shape) -> f64,
    /// `Σ|aᵢbᵢ|` per output element, for [`Tolerance::DotBound`].
    pub magnitude: Option<fn(&Case) -> Vec<f64>>,
}

/// Whether a variant can run on this CPU, and why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Availability {
    Available,
    Unavailable(String),
}

impl Availability {
    pub fn is_available(&self) -> bool {
        matches!(self, Availability::Available)
    }
}

/// One implementation of an op.
pub struct Variant {
    pub op: &'static str,
    pub name: &'static str,
    pub summary: &'static str,
    pub available: fn() -> Availability,
    pub run: fn(&mut Case),
}

impl std::fmt::Debug for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.op, self.name)
    }
}

/// Always available (portable code).
pub fn always() -> Availability {
    Availability::Available
}

/// Available when the CPU has AVX2 and FMA.
pub fn needs_avx2() -> Availability {
    if crate::cpu::detected().has_avx2_fma() {
        Availability::Available
    } else {
        Availability::Unavailable("CPU lacks AVX2+FMA".into())
    }
}

/// Available when the CPU has AVX-512 F/BW/VL.
pub fn needs_avx512() -> Availability {
    if crate::cpu::detected().has_avx512() {
        Availability::Available
    } else {
        Availability::Unavailable("CPU lacks AVX-512 F/BW/VL".into())
    }
}

/// Available when the CPU has AVX-512 F/BW/VL and VNNI (and AVX2/FMA/F16C).
pub fn needs_avx512_vnni() -> Availability {
    if crate::cpu::detected().has_avx512_vnni() {
        Availability::Available
    } else {
        Availability::Unavailable("CPU lacks AVX-512 F/BW/VL/VNNI".into())
    }
}

struct Registry {
    ops: Vec<OpInfo>,
    variants: Vec<Variant>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut ops = crate::ops::op_infos();
        ops.extend(crate::quant::op_infos());
        let mut variants = crate::ops::variants();
        variants.extend(crate::quant::variants());
        for v in &variants {
            assert!(
                ops.iter().any(|o| o.name == v.op),
                "variant {}/{} registered for an unknown op",
                v.op,
                v.name
            );
        }
        Registry { ops, variants }
    })
}

/// Every op, f32 ops first, then the block-format ops.
pub fn ops() -> &'static [OpInfo] {
    &registry().ops
}

/// Every (op, variant).
pub fn variants() -> &'static [Variant] {
    &registry().variants
}

pub fn op(name: &str) -> Option<&'static OpInfo> {
    ops().iter().find(|o| o.name == name)
}

pub fn variants_of(op: &str) -> impl Iterator<Item = &'static Variant> + '_ {
    variants().iter().filter(move |v| v.op == op)
}

pub fn variant(op: &str, name: &str) -> Option<&'static Variant> {
    variants().iter().find(|v| v.op == op && v.name == name)
}

/// A seeded generator for case inputs: the same seed gives the same case on every machine.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// `n` values uniform in `[-scale, scale)`.
pub fn uniform(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-scale..scale)).collect()
}

/// An output buffer of `n` NaNs: a variant that forgets to write an element is caught.
pub fn nan_output(n: usize) -> Vec<f32> {
    vec![f32::NAN; n]
}
