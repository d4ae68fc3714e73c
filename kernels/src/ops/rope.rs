//! Rotary position embedding (RoPE) of q and k, in place.
//!
//! For a token at position `p`, each head's first `rotary_dims` values are rotated in pairs
//! `(a, b)` by the angle `p·θ_i`, `θ_i = theta_base^(−2i / rotary_dims)`, `i < rotary_dims/2`:
//! `a' = a·cos − b·sin`, `b' = a·sin + b·cos`. The remaining `head_dim − rotary_dims` values
//! pass through. Pairings ([`RopePairing`]):
//! - `Adjacent`: pair `i` is `(x[2i], x[2i+1])`, ggml's mode 0, which GGUF llama weights
//!   need (llama.cpp permutes q/k weights at conversion for this);
//! - `Halves`: pair `i` is `(x[i], x[i + rotary_dims/2])`, the NeoX/HF layout.
//!
//! Shapes: `q: [m, n_heads, head_dim]`, `k: [m, n_kv_heads, head_dim]` row-major; token `t`
//! is at position `pos0 + t`. cos/sin come from a [`RopeTable`] precomputed per position
//! (angles in f64, stored as f32).

use wide::f32x8;

use crate::registry::{self, always, Buffer, Case, CaseSet, OpInfo, Shape, Unit, Variant};
use crate::tolerance::Tolerance;

/// Which values form a rotated pair (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopePairing {
    /// `(x[2i], x[2i+1])`: ggml mode 0, GGUF llama.
    Adjacent,
    /// `(x[i], x[i + rotary_dims/2])`: NeoX.
    Halves,
}

/// cos/sin per position, plus the interleaved forms the SIMD adjacent-pair kernel reads.
///
/// Layout per position `p` (`h = rotary_dims / 2`), `values[p·3·rotary_dims ..]`:
/// `cos[h] | sin[h] | cos_il[rotary_dims] | sin_il[rotary_dims]` where
/// `cos_il = c0 c0 c1 c1 …` and `sin_il = −s0 s0 −s1 s1 …`.
#[derive(Clone, Debug, PartialEq)]
pub struct RopeTable {
    theta_base: f32,
    rotary_dims: usize,
    max_positions: usize,
    values: Vec<f32>,
}

impl RopeTable {
    /// Tables for positions `0..max_positions`, angles `p · base^(−2i/rotary_dims)` computed
    /// in f64 (exact to f32 rounding). Panics if `rotary_dims` is odd.
    pub fn new(theta_base: f32, rotary_dims: usize, max_positions: usize) -> Self {
        Self::build(theta_base, rotary_dims, max_positions, |p| {
            (0..rotary_dims / 2)
                .map(|i| {
                    let theta = (theta_base as f64).powf(-2.0 * i as f64 / rotary_dims as f64);
                    let a = p as f64 * theta;
                    (a.cos() as f32, a.sin() as f32)
                })
                .collect()
        })
    }

    /// Tables with ggml's angles: the f32 recurrence `θ₀ = p`, `θ_{i+1} = θ_i · base^(−2/r)`,
    /// then `cosf`/`sinf` (see [`super::ggml`]). They drift from [`RopeTable::new`]'s by up to
    /// ~1e-5 at a few hundred positions: what llama.cpp computes, not the exact rotation.
    pub fn ggml(theta_base: f32, rotary_dims: usize, max_positions: usize) -> Self {
        Self::build(theta_base, rotary_dims, max_positions, |p| {
            super::ggml::ggml_angles(theta_base, rotary_dims, p)
                .map(|a| (a.cos(), a.sin()))
                .collect()
        })
    }

    fn build(
        theta_base: f32,
        rotary_dims: usize,
        max_positions: usize,
        cos_sin: impl Fn(usize) -> Vec<(f32, f32)>,
    ) -> Self {
        assert!(rotary_dims.is_multiple_of(2), "rope: rotary_dims {rotary_dims} must be even");
        let mut values = Vec::with_capacity(max_positions * 3 * rotary_dims);
        for p in 0..max_positions {
            let cs = cos_sin(p);
            values.extend(cs.iter().map(|c| c.0));
            values.extend(cs.iter().map(|c| c.1));
            for c in &cs {
                values.extend([c.0, c.0]);
            }
            for c in &cs {
                values.extend([-c.1, c.1]);
            }
        }
        RopeTable { theta_base, rotary_dims, max_positions, values }
    }

    pub fn theta_base(&self) -> f32 {
        self.theta_base
    }

    pub fn rotary_dims(&self) -> usize {
        self.rotary_dims
    }

    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    fn at(&self, p: usize) -> &[f32] {
        &self.values[p * 3 * self.rotary_dims..(p + 1) * 3 * self.rotary_dims]
    }

    /// `(cos, sin)` of position `p`, `rotary_dims / 2` values each.
    pub fn cos_sin(&self, p: usize) -> (&[f32], &[f32]) {
        let h = self.rotary_dims / 2;
        let v = self.at(p);
        (&v[..h], &v[h..2 * h])
    }

    /// `(cos_il, sin_il)` of position `p`, `rotary_dims` values each (see the type docs).
    pub fn interleaved(&self, p: usize) -> (&[f32], &[f32]) {
        let r = self.rotary_dims;
        let v = self.at(p);
        (&v[r..2 * r], &v[2 * r..3 * r])
    }
}

/// Head counts, head size, first position and pairing of one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RopeShape {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Position of the first token.
    pub pos0: usize,
    pub pairing: RopePairing,
}

/// `(q, k, shape, table)`, in place; see the module docs.
pub type RopeFn = fn(&mut [f32], &mut [f32], RopeShape, &RopeTable);

/// Tokens in the call; panics with the numbers on a shape mismatch.
pub(crate) fn check(q: &[f32], k: &[f32], s: RopeShape, table: &RopeTable) -> usize {
    let (qw, kw) = (s.n_heads * s.head_dim, s.n_kv_heads * s.head_dim);
    assert!(qw > 0, "rope: n_heads·head_dim must be > 0");
    assert_eq!(
        q.len() % qw,
        0,
        "rope: q has {} values, not a multiple of n_heads·head_dim = {qw}",
        q.len()
    );
    let m = q.len() / qw;
    assert_eq!(
        k.len(),
        m * kw,
        "rope: k has {} values, want m·n_kv_heads·head_dim = {m}·{kw}",
        k.len()
    );
    assert!(
        table.rotary_dims <= s.head_dim,
        "rope: rotary_dims {} > head_dim {}",
        table.rotary_dims,
        s.head_dim
    );
    assert!(
        s.pos0 + m <= table.max_positions,
        "rope: positions {}..{} beyond the table's {}",
        s.pos0,
        s.pos0 + m,
        table.max_positions
    );
    m
}

fn rotate_head_naive(x: &mut [f32], cos: &[f32], sin: &[f32], pairing: RopePairing) {
    let h = cos.len();
    for i in 0..h {
        let (ia, ib) = match pairing {
            RopePairing::Adjacent => (2 * i, 2 * i + 1),
            RopePairing::Halves => (i, i + h),
        };
        let (a, b) = (x[ia] as f64, x[ib] as f64);
        let (c, s) = (cos[i] as f64, sin[i] as f64);
        x[ia] = (a * c - b * s) as f32;
        x[ib] = (a * s + b * c) as f32;
    }
}

/// f64 rotations: the specification.
pub fn rope_naive(q: &mut [f32], k: &mut [f32], s: RopeShape, table: &RopeTable) {
    let m = check(q, k, s, table);
    let r = table.rotary_dims;
    for t in 0..m {
        let (cos, sin) = table.cos_sin(s.pos0 + t);
        for (x, heads) in [(&mut *q, s.n_heads), (&mut *k, s.n_kv_heads)] {
            for head in
                x[t * heads * s.head_dim..(t + 1) * heads * s.head_dim].chunks_exact_mut(s.head_dim)
            {
                rotate_head_naive(&mut head[..r], cos, sin, s.pairing);
            }
        }
    }
}

#[inline(always)]
fn rotate_head_simd(x: &mut [f32], table: &RopeTable, p: usize, pairing: RopePairing) {
    match pairing {
        RopePairing::Adjacent => {
            let (cos_il, sin_il) = table.interleaved(p);
            let r8 = x.len() / 8 * 8;
            for ((xv, cv), sv) in
                x[..r8].chunks_exact_mut(8).zip(cos_il.chunks_exact(8)).zip(sin_il.chunks_exact(8))
            {
                let v = f32x8::from(&xv[..]);
                let a = v.to_array();
                let swapped = f32x8::from([a[1], a[0], a[3], a[2], a[5], a[4], a[7], a[6]]);
                let out = swapped.mul_add(f32x8::from(sv), v * f32x8::from(cv));
                xv.copy_from_slice(out.as_array());
            }
            let (cos, sin) = table.cos_sin(p);
            rotate_head_naive(&mut x[r8..], &cos[r8 / 2..], &sin[r8 / 2..], pairing);
        }
        RopePairing::Halves => {
            let (cos, sin) = table.cos_sin(p);
            let h = cos.len();
            let h8 = h / 8 * 8;
            let (lo, hi) = x.split_at_mut(h);
            for i in (0..h8).step_by(8) {
                let (a, b) = (f32x8::from(&lo[i..i + 8]), f32x8::from(&hi[i..i + 8]));
                let (c, s) = (f32x8::from(&cos[i..i + 8]), f32x8::from(&sin[i..i + 8]));
                lo[i..i + 8].copy_from_slice(a.mul_sub(c, b * s).as_array());
                hi[i..i + 8].copy_from_slice(a.mul_add(s, b * c).as_array());
            }
            for i in h8..h {
                let (a, b) = (lo[i], hi[i]);
                lo[i] = a.mul_add(cos[i], -(b * sin[i]));
                hi[i] = a.mul_add(sin[i], b * cos[i]);
            }
        }
    }
}

/// `f32x8` rotations: adjacent pairs with a lane swap against the interleaved tables, halves
/// with two aligned half-vectors; tails in scalar.
pub fn rope_simd(q: &mut [f32], k: &mut [f32], s: RopeShape, table: &RopeTable) {
    let m = check(q, k, s, table);
    let r = table.rotary_dims;
    for t in 0..m {
        let p = s.pos0 + t;
        for (x, heads) in [(&mut *q, s.n_heads), (&mut *k, s.n_kv_heads)] {
            for head in
                x[t * heads * s.head_dim..(t + 1) * heads * s.head_dim].chunks_exact_mut(s.head_dim)
            {
                rotate_head_simd(&mut head[..r], table, p, s.pairing);
            }
        }
    }
}

/// The `rope` variant named `variant` (`naive`, `simd`).
pub fn select(variant: &str) -> Option<RopeFn> {
    match variant {
        "naive" => Some(rope_naive),
        "simd" => Some(rope_simd),
        "ggml" => Some(super::ggml_simd::rope_ggml_simd),
        _ => None,
    }
}

/// SmolLM2's `rope.freq_base`.
const THETA_BASE: f32 = 100_000.0;

fn shapes(set: CaseSet) -> Vec<Shape> {
    // (m, heads, kv_heads, d, rot, pos, neox)
    let dims: Vec<[usize; 7]> = match set {
        CaseSet::Model => {
            vec![[1, 9, 3, 64, 64, 511, 0], [64, 9, 3, 64, 64, 0, 0], [1, 9, 3, 64, 64, 511, 1]]
        }
        CaseSet::Sweep => (0..=6).map(|p| [1 << p, 9, 3, 64, 64, 0, 0]).collect(),
        CaseSet::Test => {
            let mut v = Vec::new();
            for neox in [0, 1] {
                for [d, rot] in
                    [[2, 2], [6, 4], [8, 8], [18, 18], [24, 16], [64, 64], [64, 32], [66, 66]]
                {
                    for [m, pos] in [[0, 0], [1, 0], [1, 37], [3, 5], [17, 100]] {
                        v.push([m, 3, 1, d, rot, pos, neox]);
                    }
                }
                v.push([5, 2, 2, 64, 64, 200, neox]);
            }
            v
        }
    };
    dims.into_iter()
        .map(|[m, heads, kv_heads, d, rot, pos, neox]| {
            Shape::new(&[
                ("m", m),
                ("heads", heads),
                ("kv_heads", kv_heads),
                ("d", d),
                ("rot", rot),
                ("pos", pos),
                ("neox", neox),
            ])
        })
        .collect()
}

fn rope_shape(shape: &Shape) -> RopeShape {
    RopeShape {
        n_heads: shape.get("heads"),
        n_kv_heads: shape.get("kv_heads"),
        head_dim: shape.get("d"),
        pos0: shape.get("pos"),
        pairing: if shape.get("neox") == 1 { RopePairing::Halves } else { RopePairing::Adjacent },
    }
}

/// Output = q then k (both rotated in place); `inputs[0]` holds the table's values.
fn prepare(shape: &Shape, seed: u64) -> Case {
    let s = rope_shape(shape);
    let m = shape.get("m");
    let mut rng = registry::rng(seed);
    let mut qk = registry::uniform(&mut rng, m * s.n_heads * s.head_dim, 1.0);
    qk.extend(registry::uniform(&mut rng, m * s.n_kv_heads * s.head_dim, 1.0));
    let table = RopeTable::new(THETA_BASE, shape.get("rot"), shape.get("pos") + m);
    Case::new(shape.clone(), vec![Buffer::F32(table.values)], qk)
}

/// Rotations preserve norms, so repeated runs stay stationary. The table's values are moved
/// out of the case for the call and back (no copy).
fn run(variant: RopeFn, case: &mut Case) {
    let s = rope_shape(&case.shape);
    let (m, rot) = (case.shape.get("m"), case.shape.get("rot"));
    let values = match &mut case.inputs[0] {
        Buffer::F32(v) => std::mem::take(v),
        Buffer::Bytes(_) => panic!("rope: the table buffer must be f32"),
    };
    let table =
        RopeTable { theta_base: THETA_BASE, rotary_dims: rot, max_positions: s.pos0 + m, values };
    let (q, k) = case.output_mut().split_at_mut(m * s.n_heads * s.head_dim);
    variant(q, k, s, &table);
    case.inputs[0] = Buffer::F32(table.values);
}

pub fn op_infos() -> Vec<OpInfo> {
    vec![OpInfo {
        name: "rope",
        summary: "rotate q [m,heads,d] and k [m,kv_heads,d] pairs by pos*theta_i (adjacent = ggml mode 0, or NeoX halves)",
        unit: Unit::GbPerS,
        // Inputs in [-1, 1): a·c − b·s in f32 FMAs is within ~2 ulp of max(|a|, |b|) ≤ 1.
        tolerance: Tolerance::AbsRel { abs: 5e-7, rel: 2e-7 },
        shapes,
        prepare,
        flops: |s| 3.0 * (s.get("m") * (s.get("heads") + s.get("kv_heads")) * s.get("rot")) as f64,
        // read and write q and k, read cos and sin per token
        bytes: |s| {
            let m = s.get("m") as f64;
            m * (8.0 * ((s.get("heads") + s.get("kv_heads")) * s.get("d")) as f64 + 4.0 * s.get("rot") as f64)
        },
        magnitude: None,
    }]
}

pub fn variants() -> Vec<Variant> {
    vec![
        Variant {
            op: "rope",
            name: "naive",
            summary: "scalar f64 rotations",
            available: always,
            run: |c| run(rope_naive, c),
        },
        Variant {
            op: "rope",
            name: "simd",
            summary:
                "wide::f32x8: lane swap against interleaved tables (adjacent), half-vectors (NeoX)",
            available: always,
            run: |c| run(rope_simd, c),
        },
        Variant {
            op: "rope",
            name: "ggml",
            summary: "llama.cpp's rotation: fused multiply-adds, AVX2 vfmaddsub or scalar, same bits (with RopeTable::ggml angles in the model)",
            available: always,
            run: |c| run(super::ggml_simd::rope_ggml_simd, c),
        },
    ]
}
