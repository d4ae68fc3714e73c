//! Linear layer on a packed W: `y[i, j] = Σ_t x[i, t] · W[j, t] (+ bias[j])` as in
//! [`super::linear`], with `W: [n, k]` stored once (at model load) in panels of [`PANEL`]
//! rows, transposed:
//!
//! ```text
//! packed[(p·k + t)·16 + c] = W[16p + c, t]     (0 for rows 16p + c ≥ n)
//! ```
//!
//! so `packed.len() == ⌈n/16⌉·16·k` ([`packed_len`]). Panel `p` is one contiguous run of
//! `16·k` values; columns `[16a, 16b)` of the output read `packed[16a·k .. 16b·k]` with
//! `n = 16b − 16a` (or fewer in the last panel): threads split `n` on panel boundaries.
//!
//! **Order of the sums** (every variant but `naive`): each output is one f32 FMA chain
//! `acc = fma(x[i, t], W[j, t], acc)` over `t = 0, 1, …, k−1` from `acc = 0`, then `+ bias[j]`.
//! The GEMM (m > 1, 6×16 tiles) and the GEMV (m = 1) run that same chain, so row `i` of
//! a GEMM equals the GEMV of `x[i]` bit for bit, whatever `m` and the panel split.
//!
//! Variants: `naive` (f64 accumulation, the specification), `scalar` (the chain above in
//! plain Rust, `f32::mul_add`) and `avx2` (`arch::f32_packed_avx2`).

use super::linear::{self, LinearFn, LinearShape};
use crate::registry::{always, needs_avx2, Case, CaseSet, OpInfo, Shape, Unit, Variant};
use crate::tolerance::Tolerance;

/// Rows of W per panel: two 8-lane vectors.
pub const PANEL: usize = 16;

/// Values of the packed form of an `[n, k]` matrix.
pub fn packed_len(n: usize, k: usize) -> usize {
    n.div_ceil(PANEL) * PANEL * k
}

/// Packs the row-major `w: [n, k]` into `out` (`packed_len(n, k)` values; see the module
/// docs).
pub fn pack(w: &[f32], n: usize, k: usize, out: &mut [f32]) {
    assert_eq!(w.len(), n * k, "pack: w has {} values, want n·k = {n}·{k}", w.len());
    assert_eq!(
        out.len(),
        packed_len(n, k),
        "pack: out has {} values, want {}",
        out.len(),
        packed_len(n, k)
    );
    for (p, panel) in out.chunks_exact_mut(PANEL * k.max(1)).enumerate() {
        for c in 0..PANEL {
            let j = p * PANEL + c;
            for t in 0..k {
                panel[t * PANEL + c] = if j < n { w[j * k + t] } else { 0.0 };
            }
        }
    }
}

/// Row `j` of the matrix whose packed form is `packed` (`k` columns) into `out[..k]`.
pub fn unpack_row(packed: &[f32], k: usize, j: usize, out: &mut [f32]) {
    let panel = &packed[j / PANEL * PANEL * k..][..PANEL * k];
    for (t, o) in out[..k].iter_mut().enumerate() {
        *o = panel[t * PANEL + j % PANEL];
    }
}

/// Panics with the numbers if the slices do not match `s` (`w` packed).
pub fn check_shape(y: &[f32], x: &[f32], w: &[f32], bias: Option<&[f32]>, s: LinearShape) {
    let LinearShape { m, n, k, y_stride } = s;
    assert!(y_stride >= n, "linear_packed: y_stride {y_stride} < n {n}");
    assert_eq!(x.len(), m * k, "linear_packed: x has {} elements, want m·k = {m}·{k}", x.len());
    assert_eq!(
        w.len(),
        packed_len(n, k),
        "linear_packed: w has {} elements, want ⌈n/16⌉·16·k for n = {n}, k = {k}",
        w.len()
    );
    if let Some(b) = bias {
        assert_eq!(b.len(), n, "linear_packed: bias has {} elements, want n = {n}", b.len());
    }
    let need = if m == 0 { 0 } else { (m - 1) * y_stride + n };
    assert!(y.len() >= need, "linear_packed: y has {} elements, want {need}", y.len());
}

/// `W[j, t]` of the packed `w` (`k` columns).
#[inline(always)]
fn at(w: &[f32], k: usize, j: usize, t: usize) -> f32 {
    w[(j / PANEL * k + t) * PANEL + j % PANEL]
}

/// Plain loops with f64 accumulation: the specification.
pub fn linear_packed_naive(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    s: LinearShape,
) {
    check_shape(y, x, w, bias, s);
    let k = s.k;
    each_output(y, s, |i, j| {
        let mut acc = bias.map_or(0.0, |b| b[j] as f64);
        for t in 0..k {
            acc += x[i * k + t] as f64 * at(w, k, j, t) as f64;
        }
        acc as f32
    });
}

/// `y[i·y_stride + j] = value(i, j)` for every output of `s`.
fn each_output(y: &mut [f32], s: LinearShape, value: impl Fn(usize, usize) -> f32) {
    for i in 0..s.m {
        for j in 0..s.n {
            y[i * s.y_stride + j] = value(i, j);
        }
    }
}

/// The FMA chain of the module docs, one output at a time: the order the fast variants
/// reproduce bit for bit.
pub fn linear_packed_scalar(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    s: LinearShape,
) {
    check_shape(y, x, w, bias, s);
    let k = s.k;
    each_output(y, s, |i, j| {
        let mut acc = 0.0f32;
        for t in 0..k {
            acc = x[i * k + t].mul_add(at(w, k, j, t), acc);
        }
        bias.map_or(acc, |b| acc + b[j])
    });
}

/// AVX2+FMA: 6×16 tiles for m > 1, 4 panels side by side for m = 1, both the chain of
/// [`linear_packed_scalar`]. Panics if the CPU lacks AVX2+FMA.
#[cfg(target_arch = "x86_64")]
pub fn linear_packed_avx2(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    s: LinearShape,
) {
    assert!(crate::cpu::detected().has_avx2_fma(), "linear_packed_avx2: this CPU lacks AVX2+FMA");
    check_shape(y, x, w, bias, s);
    let LinearShape { m, n, k, y_stride } = s;
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            let row = &mut y[i * y_stride..][..n];
            for (j, v) in row.iter_mut().enumerate() {
                *v = bias.map_or(0.0, |b| 0.0 + b[j]);
            }
        }
        return;
    }
    use crate::arch::f32_packed_avx2::{gemm, gemv};
    let bias = bias.map(|b| b.as_ptr());
    // SAFETY: AVX2+FMA were checked above; check_shape proved x holds m·k values, w the
    // ⌈n/16⌉ packed panels, bias n and y (m−1)·y_stride + n with y_stride ≥ n; k ≥ 1.
    unsafe {
        if m == 1 {
            gemv(y.as_mut_ptr(), x.as_ptr(), w.as_ptr(), bias, n, k);
        } else {
            gemm(y.as_mut_ptr(), x.as_ptr(), w.as_ptr(), bias, (m, n, k, y_stride));
        }
    }
}

/// The `linear_packed` variant named `variant`, or `None` if it does not exist or cannot
/// run on this CPU.
pub fn select(variant: &str) -> Option<LinearFn> {
    match variant {
        "naive" => Some(linear_packed_naive),
        "scalar" => Some(linear_packed_scalar),
        #[cfg(target_arch = "x86_64")]
        "avx2" if needs_avx2().is_available() => Some(linear_packed_avx2),
        _ => None,
    }
}

fn shapes(set: CaseSet) -> Vec<Shape> {
    let mut mnk = linear::shape_list(set);
    if set == CaseSet::Test {
        // several k slices (> 256) and, at k = 1536, two blocks of x rows (66 rows each) of
        // the GEMM
        mnk.extend([(7, 33, 600), (13, 40, 1100), (150, 20, 30), (2, 17, 257), (80, 24, 1536)]);
    }
    mnk.into_iter().map(|(m, n, k)| Shape::new(&[("m", m), ("n", n), ("k", k)])).collect()
}

fn prepare(shape: &Shape, seed: u64) -> Case {
    linear::prepare_case(shape, seed, |w, n, k| {
        let mut packed = vec![0.0; packed_len(n, k)];
        pack(&w, n, k, &mut packed);
        packed
    })
}

fn magnitude(case: &Case) -> Vec<f64> {
    linear::magnitude_case(case, at)
}

pub fn op_infos() -> Vec<OpInfo> {
    vec![OpInfo {
        name: "linear_packed",
        summary:
            "y[m,n] = x[m,k] · W[n,k]^T + b[n]; W packed once in panels of 16 rows, transposed",
        unit: Unit::GflopPerS,
        // One sequential f32 chain of k FMAs per output: worst case k·ε·Σ|ab|; rounding errors
        // of random sign keep it near √k·ε·|partial sums|, far below Σ|ab|. c = 16 as for
        // `linear` still catches one wrong or missing term (~|ab|).
        tolerance: Tolerance::DotBound { c: 16.0 },
        shapes,
        prepare,
        flops: |s| 2.0 * (s.get("m") * s.get("n") * s.get("k")) as f64,
        bytes: |s| {
            4.0 * (s.get("m") * s.get("k")
                + packed_len(s.get("n"), s.get("k"))
                + s.get("m") * s.get("n")
                + s.get("n")) as f64
        },
        magnitude: Some(magnitude),
    }]
}

pub fn variants() -> Vec<Variant> {
    let mut v = vec![
        Variant {
            op: "linear_packed",
            name: "naive",
            summary: "scalar loops over the packed panels, f64 accumulation",
            available: always,
            run: |c| linear::run(linear_packed_naive, c),
        },
        Variant {
            op: "linear_packed",
            name: "scalar",
            summary: "one f32 FMA chain per output in k order (the order avx2 reproduces)",
            available: always,
            run: |c| linear::run(linear_packed_scalar, c),
        },
    ];
    #[cfg(target_arch = "x86_64")]
    v.push(Variant {
        op: "linear_packed",
        name: "avx2",
        summary: "AVX2+FMA: GEMM 6x16 tiles, GEMV 4 panels side by side, same FMA chain",
        available: needs_avx2,
        run: |c| linear::run(linear_packed_avx2, c),
    });
    v
}
