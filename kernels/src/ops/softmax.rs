//! Softmax, row-wise and in place: `x_j ← e^(v_j − max v) / Σ_l e^(v_l − max v)` over the
//! visible columns of each row, where `v = x (+ mask)`.
//!
//! Shapes: `x: [rows, cols]` row-major, `rows = x.len() / cols`. Masks ([`SoftmaxMask`]):
//! - `None`;
//! - `Additive(m)`: `v = x + m`, `m: [cols]` (the same for every row) or `[rows, cols]`;
//!   `−inf` entries hide a column;
//! - `Causal { offset }`: row `r` sees columns `0..=offset + r` (capped at `cols`); the others
//!   become exactly 0. Attention over a cache of L positions with m new tokens uses
//!   `offset = L − m`.
//!
//! Conventions: a row whose visible non-NaN values are all `−inf` (or that has no visible
//! column) becomes all zeros; otherwise a NaN or `+inf` in a row makes the whole row NaN
//! (`inf − inf`), in every variant. The SIMD variant uses [`fast_exp`] (relative error ≤ 1.2e-7).

use wide::f32x8;

use super::fast_math::fast_exp;
use crate::registry::{self, always, Case, CaseSet, OpInfo, Shape, Unit, Variant};
use crate::tolerance::Tolerance;

/// Which columns each row sees (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SoftmaxMask<'a> {
    None,
    Additive(&'a [f32]),
    Causal { offset: usize },
}

/// `(x, cols, mask)`, in place; see the module docs.
pub type SoftmaxFn = fn(&mut [f32], usize, SoftmaxMask<'_>);

fn check(x: &[f32], cols: usize, mask: SoftmaxMask<'_>) -> usize {
    assert!(
        (cols == 0 && x.is_empty()) || (cols > 0 && x.len().is_multiple_of(cols)),
        "softmax: x has {} elements, not a multiple of cols = {cols}",
        x.len()
    );
    let rows = x.len().checked_div(cols).unwrap_or(0);
    if let SoftmaxMask::Additive(m) = mask {
        assert!(
            m.len() == cols || m.len() == rows * cols,
            "softmax: additive mask has {} elements, want cols = {cols} or rows·cols = {}",
            m.len(),
            rows * cols
        );
    }
    rows
}

/// The mask row for row `r` and the number of visible leading columns.
fn row_mask<'a>(mask: SoftmaxMask<'a>, r: usize, cols: usize) -> (Option<&'a [f32]>, usize) {
    match mask {
        SoftmaxMask::None => (None, cols),
        SoftmaxMask::Additive(m) if m.len() == cols => (Some(m), cols),
        SoftmaxMask::Additive(m) => (Some(&m[r * cols..(r + 1) * cols]), cols),
        SoftmaxMask::Causal { offset } => (None, (offset + r + 1).min(cols)),
    }
}

/// f64 exponentials and sums: the specification.
pub fn softmax_naive(x: &mut [f32], cols: usize, mask: SoftmaxMask<'_>) {
    let rows = check(x, cols, mask);
    let mut v = vec![0.0f64; cols];
    for r in 0..rows {
        let row = &mut x[r * cols..(r + 1) * cols];
        let (m, visible) = row_mask(mask, r, cols);
        for j in 0..visible {
            v[j] = row[j] as f64 + m.map_or(0.0, |m| m[j] as f64);
        }
        let max = v[..visible].iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        if max == f64::NEG_INFINITY {
            row.fill(0.0);
            continue;
        }
        let mut sum = 0.0;
        for vj in &mut v[..visible] {
            *vj = (*vj - max).exp();
            sum += *vj;
        }
        for j in 0..visible {
            row[j] = (v[j] / sum) as f32;
        }
        row[visible..].fill(0.0);
    }
}

/// Three passes on `f32x8` per row: max (4 accumulators), `e = fast_exp(v − max)` stored in
/// place with its sum, then a scale by `1/sum`.
pub fn softmax_simd(x: &mut [f32], cols: usize, mask: SoftmaxMask<'_>) {
    let rows = check(x, cols, mask);
    for r in 0..rows {
        let row = &mut x[r * cols..(r + 1) * cols];
        let (m, visible) = row_mask(mask, r, cols);
        let (vis, hidden) = row.split_at_mut(visible);
        hidden.fill(0.0);
        if let Some(m) = m {
            super::elementwise::add_simd(vis, &m[..visible]);
        }
        softmax_row_simd(vis);
    }
}

/// Softmax of one fully visible row on `f32x8` (used by the attention kernels too).
pub fn softmax_row_simd(v: &mut [f32]) {
    let n8 = v.len() / 8 * 8;
    let mut mx = [f32x8::splat(f32::NEG_INFINITY); 4];
    let mut chunks = v[..n8].chunks_exact(32);
    for c in &mut chunks {
        for (a, x) in mx.iter_mut().zip(c.chunks_exact(8)) {
            *a = a.max(f32x8::from(x));
        }
    }
    for x in chunks.remainder().chunks_exact(8) {
        mx[0] = mx[0].max(f32x8::from(x));
    }
    let mut max = mx[0].max(mx[1]).max(mx[2].max(mx[3])).reduce_max_f32();
    for &x in &v[n8..] {
        max = max.max(x);
    }
    if max == f32::NEG_INFINITY {
        v.fill(0.0);
        return;
    }
    // Blocked summation: f32 lanes within a block of `BLOCK` values (each lane adds at most
    // BLOCK/16 terms, so its rounding error stays near 2^-24 · 16), f64 across blocks. A single
    // f32 accumulator over a 262144-wide row drifted to 3e-5 relative; this keeps the sum
    // within a few ulp of the f64 reference at any width, at no measurable cost.
    const BLOCK: usize = 256;
    let mv = f32x8::splat(max);
    let mut sum = 0.0f64;
    for block in v[..n8].chunks_mut(BLOCK) {
        let mut acc = [f32x8::ZERO; 2];
        let mut pairs = block.chunks_exact_mut(16);
        for c in &mut pairs {
            let (lo, hi) = c.split_at_mut(8);
            let e0 = fast_exp(f32x8::from(&lo[..]) - mv);
            let e1 = fast_exp(f32x8::from(&hi[..]) - mv);
            acc[0] += e0;
            acc[1] += e1;
            lo.copy_from_slice(e0.as_array());
            hi.copy_from_slice(e1.as_array());
        }
        for c in pairs.into_remainder().chunks_exact_mut(8) {
            let e = fast_exp(f32x8::from(&c[..]) - mv);
            acc[0] += e;
            c.copy_from_slice(e.as_array());
        }
        sum += (acc[0] + acc[1]).reduce_add() as f64;
    }
    for x in &mut v[n8..] {
        *x = super::fast_math::fast_exp_scalar(*x - max);
        sum += *x as f64;
    }
    let sum = sum as f32;
    let inv = f32x8::splat(1.0 / sum);
    for c in v[..n8].chunks_exact_mut(8) {
        c.copy_from_slice((f32x8::from(&c[..]) * inv).as_array());
    }
    for x in &mut v[n8..] {
        *x /= sum;
    }
}

trait ReduceMax {
    fn reduce_max_f32(self) -> f32;
}

impl ReduceMax for f32x8 {
    #[inline(always)]
    fn reduce_max_f32(self) -> f32 {
        self.to_array().into_iter().fold(f32::NEG_INFINITY, f32::max)
    }
}

/// The `softmax` variant named `variant` (`naive`, `simd`).
pub fn select(variant: &str) -> Option<SoftmaxFn> {
    match variant {
        "naive" => Some(softmax_naive),
        "simd" => Some(softmax_simd),
        _ => None,
    }
}

fn shapes(set: CaseSet) -> Vec<Shape> {
    let dims: Vec<(usize, usize, usize)> = match set {
        // sampling over the vocabulary; 9 heads' scores over a 512-position cache (decode);
        // one head's causal scores for a 64-token prefill
        CaseSet::Model => vec![(1, 49152, 0), (9, 512, 0), (64, 64, 1)],
        CaseSet::Sweep => (6..=18).step_by(2).map(|p| (1, 1usize << p, 0)).collect(),
        CaseSet::Test => super::TEST_LENGTHS.iter().flat_map(|&n| [(3, n, 0), (3, n, 1)]).collect(),
    };
    dims.into_iter()
        .map(|(rows, n, causal)| Shape::new(&[("rows", rows), ("n", n), ("causal", causal)]))
        .collect()
}

fn prepare(shape: &Shape, seed: u64) -> Case {
    let (rows, n) = (shape.get("rows"), shape.get("n"));
    let mut rng = registry::rng(seed);
    let x = registry::uniform(&mut rng, rows * n, 8.0);
    Case::new(shape.clone(), vec![], x)
}

/// Causal cases: row r sees columns 0..=(n − rows) + r, like attention's last `rows` tokens
/// over a cache of n positions (offset 0 when rows > n).
fn mask_of(shape: &Shape) -> SoftmaxMask<'static> {
    if shape.get("causal") == 0 {
        SoftmaxMask::None
    } else {
        SoftmaxMask::Causal { offset: shape.get("n").saturating_sub(shape.get("rows")) }
    }
}

/// In place; repeated runs converge towards the uniform row (values stay in [0, 1]) and cost
/// the same each time.
fn run(variant: SoftmaxFn, case: &mut Case) {
    let (n, mask) = (case.shape.get("n"), mask_of(&case.shape));
    variant(case.output_mut(), n, mask);
}

pub fn op_infos() -> Vec<OpInfo> {
    vec![OpInfo {
        name: "softmax",
        summary: "x = exp(x - max) / sum row-wise in place, optional additive or causal mask; x: [rows, n]",
        unit: Unit::GbPerS,
        // fast_exp (1.2e-7) of an argument rounded in f32 (|v − max| ≤ 16 here: 1e-6), the
        // f32 sum and one division; the floor covers exponentials flushed below e^-87.
        tolerance: Tolerance::AbsRel { abs: 1e-9, rel: 4e-6 },
        shapes,
        prepare,
        flops: |s| 5.0 * (s.get("rows") * s.get("n")) as f64,
        // read and write x (the passes after the first hit cache)
        bytes: |s| 8.0 * (s.get("rows") * s.get("n")) as f64,
        magnitude: None,
    }]
}

pub fn variants() -> Vec<Variant> {
    vec![
        Variant {
            op: "softmax",
            name: "naive",
            summary: "scalar loops, f64 exp and sum",
            available: always,
            run: |c| run(softmax_naive, c),
        },
        Variant {
            op: "softmax",
            name: "simd",
            summary: "wide::f32x8 max, fast_exp and scale passes",
            available: always,
            run: |c| run(softmax_simd, c),
        },
    ]
}
