//! Linear layer: `y[i, j] = Σ_k x[i, k] · W[j, k] (+ bias[j])`, i.e. `y = x · Wᵀ (+ b)`.
//!
//! Shapes and layout ([`LinearShape`]):
//! - `x: [m, k]` row-major, contiguous (`x.len() == m·k`);
//! - `w: [n, k]` row-major, the GGUF/HF layout `[out, in]` (`w.len() == n·k`);
//! - `bias: [n]` or `None`;
//! - `y`: `m` rows of `n` outputs, row `i` starting at `i·y_stride` (`y_stride >= n`,
//!   `y.len() >= (m−1)·y_stride + n`). Elements between `n` and `y_stride` are not touched.
//!
//! **Computing a block of output columns** (threads splitting `n`): for columns `[n0, n1)`
//! pass `w = &W[n0·k .. n1·k]`, `bias = bias.map(|b| &b[n0..n1])`, `n = n1 − n0`, and a `y`
//! that starts at column `n0` of row 0 with `y_stride` = the full row length. For m = 1 the
//! blocks of `y` are disjoint sub-slices (`chunks_mut`); for m > 1 either give each thread
//! its own `[m, n1−n0]` buffer (`y_stride = n1 − n0`) or split rows instead (`x` and `y`
//! sub-slices of whole rows, `m` = rows in the block).
//!
//! Variants: `naive` (f64 accumulation), `matrixmultiply` (`sgemm` with strides that read
//! `W` in place as `Wᵀ`: row stride 1, column stride k), `simd` (`wide` register-blocked dot
//! products) and `avx2` (the same blocking in intrinsics, `arch::f32_avx2`).

use wide::f32x8;

use crate::registry::{
    self, always, needs_avx2, Buffer, Case, CaseSet, OpInfo, Shape, Unit, Variant,
};
use crate::tolerance::Tolerance;

/// Dimensions of one call (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearShape {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// Distance between the starts of consecutive rows of `y` (`>= n`).
    pub y_stride: usize,
}

impl LinearShape {
    /// A dense output (`y_stride = n`).
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        LinearShape { m, n, k, y_stride: n }
    }
}

/// `(y, x, w, bias, shape)`, see the module docs.
pub type LinearFn = fn(&mut [f32], &[f32], &[f32], Option<&[f32]>, LinearShape);

/// Panics with the numbers if the slices do not match `s`.
pub fn check_shape(y: &[f32], x: &[f32], w: &[f32], bias: Option<&[f32]>, s: LinearShape) {
    let LinearShape { m, n, k, y_stride } = s;
    assert!(y_stride >= n, "linear: y_stride {y_stride} < n {n}");
    assert_eq!(x.len(), m * k, "linear: x has {} elements, want m·k = {m}·{k}", x.len());
    assert_eq!(w.len(), n * k, "linear: w has {} elements, want n·k = {n}·{k}", w.len());
    if let Some(b) = bias {
        assert_eq!(b.len(), n, "linear: bias has {} elements, want n = {n}", b.len());
    }
    let need = if m == 0 { 0 } else { (m - 1) * y_stride + n };
    assert!(
        y.len() >= need,
        "linear: y has {} elements, want (m−1)·y_stride + n = {need} (m={m}, n={n}, y_stride={y_stride})",
        y.len()
    );
}

/// Plain loops with f64 accumulation: the specification.
pub fn linear_naive(y: &mut [f32], x: &[f32], w: &[f32], bias: Option<&[f32]>, s: LinearShape) {
    check_shape(y, x, w, bias, s);
    let LinearShape { m, n, k, y_stride } = s;
    for i in 0..m {
        let xr = &x[i * k..(i + 1) * k];
        for j in 0..n {
            let wr = &w[j * k..(j + 1) * k];
            let mut acc = bias.map_or(0.0, |b| b[j] as f64);
            for (a, b) in xr.iter().zip(wr) {
                acc += *a as f64 * *b as f64;
            }
            y[i * y_stride + j] = acc as f32;
        }
    }
}

/// `matrixmultiply::sgemm` with `A = x` (strides k, 1), `B = Wᵀ` read in place (strides 1, k)
/// and `C = y` (strides y_stride, 1); a bias is written into `y` first and kept with β = 1.
pub fn linear_matrixmultiply(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    s: LinearShape,
) {
    check_shape(y, x, w, bias, s);
    let LinearShape { m, n, k, y_stride } = s;
    if m == 0 || n == 0 {
        return;
    }
    for i in 0..m {
        let row = &mut y[i * y_stride..i * y_stride + n];
        match bias {
            Some(b) => row.copy_from_slice(b),
            None => row.fill(0.0),
        }
    }
    if k == 0 {
        return;
    }
    // SAFETY: check_shape proved x holds m·k, w holds n·k and y holds (m−1)·y_stride + n
    // elements, which are exactly the ranges sgemm addresses with these dimensions and
    // strides; y does not alias x or w (a &mut borrow).
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            x.as_ptr(),
            k as isize,
            1,
            w.as_ptr(),
            1,
            k as isize,
            1.0,
            y.as_mut_ptr(),
            y_stride as isize,
            1,
        );
    }
}

/// An `MR×NR` block of dot products `xs[r] · ws[c]` (all slices of one length): the inner
/// kernel of the blocked `linear` variants.
trait DotKernel {
    fn dot<const MR: usize, const NR: usize>(xs: [&[f32]; MR], ws: [&[f32]; NR])
        -> [[f32; NR]; MR];
}

/// `wide::f32x8`: `MR·NR` accumulators over 8-lane chunks, a horizontal sum each, then the
/// tail in scalar FMAs.
struct WideKernel;

impl DotKernel for WideKernel {
    #[inline(always)]
    fn dot<const MR: usize, const NR: usize>(
        xs: [&[f32]; MR],
        ws: [&[f32]; NR],
    ) -> [[f32; NR]; MR] {
        let k = if MR > 0 { xs[0].len() } else { 0 };
        let k8 = k / 8 * 8;
        let xs: [&[f32]; MR] = xs.map(|v| &v[..k]);
        let ws: [&[f32]; NR] = ws.map(|v| &v[..k]);
        let mut acc = [[f32x8::ZERO; NR]; MR];
        let mut i = 0;
        while i < k8 {
            let xv: [f32x8; MR] = std::array::from_fn(|r| f32x8::from(&xs[r][i..i + 8]));
            for c in 0..NR {
                let wv = f32x8::from(&ws[c][i..i + 8]);
                for r in 0..MR {
                    acc[r][c] = xv[r].mul_add(wv, acc[r][c]);
                }
            }
            i += 8;
        }
        let mut out = [[0.0f32; NR]; MR];
        for r in 0..MR {
            for c in 0..NR {
                let mut s = acc[r][c].reduce_add();
                for t in k8..k {
                    s = xs[r][t].mul_add(ws[c][t], s);
                }
                out[r][c] = s;
            }
        }
        out
    }
}

/// [`crate::arch::f32_avx2::dot_block`]: the same blocking in AVX2+FMA intrinsics over raw
/// row pointers (no bounds checks in the inner loop).
#[cfg(target_arch = "x86_64")]
struct Avx2Kernel;

#[cfg(target_arch = "x86_64")]
impl DotKernel for Avx2Kernel {
    #[inline(always)]
    fn dot<const MR: usize, const NR: usize>(
        xs: [&[f32]; MR],
        ws: [&[f32]; NR],
    ) -> [[f32; NR]; MR] {
        let k = if MR > 0 { xs[0].len() } else { 0 };
        assert!(xs.iter().all(|v| v.len() == k) && ws.iter().all(|v| v.len() == k));
        // SAFETY: linear_avx2 checked AVX2+FMA before calling in; every row has k elements
        // (asserted above).
        unsafe {
            crate::arch::f32_avx2::dot_block::<MR, NR>(
                xs.map(|v| v.as_ptr()),
                ws.map(|v| v.as_ptr()),
                k,
            )
        }
    }
}

/// Rows of x per GEMM block and rows of W per block: 3×4 = 12 accumulators, 7 loads per 12
/// FMAs, so the loop is FMA-bound rather than load-bound.
const GEMM_MR: usize = 3;
const GEMM_NR: usize = 4;
/// Rows of W read side by side per GEMV pass against one x vector, each from its own
/// contiguous region of W (see [`blocked`]).
const GEMV_STREAMS: usize = 8;
/// Longest k slice per pass: 4 W rows of it (10 KiB) stay in L1 while every group of 3 x
/// rows streams past from L2; longer k is split into equal slices (multiples of 8).
const GEMM_KC_MAX: usize = 640;

/// Output rows `i0..i0+MR`, columns `j0..j0+NR`, over the k slice `k0..k0+kc`; the first
/// slice writes `dot + bias`, later ones add.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block<K: DotKernel, const MR: usize, const NR: usize>(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    s: LinearShape,
    (i0, j0): (usize, usize),
    (k0, kc): (usize, usize),
) {
    let k = s.k;
    let xs: [&[f32]; MR] = std::array::from_fn(|r| &x[(i0 + r) * k + k0..][..kc]);
    let ws: [&[f32]; NR] = std::array::from_fn(|c| &w[(j0 + c) * k + k0..][..kc]);
    let out = K::dot::<MR, NR>(xs, ws);
    for r in 0..MR {
        let row = &mut y[(i0 + r) * s.y_stride + j0..][..NR];
        for c in 0..NR {
            row[c] = if k0 == 0 {
                out[r][c] + bias.map_or(0.0, |b| b[j0 + c])
            } else {
                row[c] + out[r][c]
            };
        }
    }
}

/// Output `y[j] (+ bias)` for the rows `j = j0 + c·stride`, `c < NR`, of a GEMV (m = 1).
#[inline(always)]
fn gemv_strided<K: DotKernel, const NR: usize>(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    k: usize,
    (j0, stride): (usize, usize),
) {
    let ws: [&[f32]; NR] = std::array::from_fn(|c| &w[(j0 + c * stride) * k..][..k]);
    let out = K::dot::<1, NR>([&x[..k]], ws);
    for (c, v) in out[0].iter().enumerate() {
        let j = j0 + c * stride;
        y[j] = v + bias.map_or(0.0, |b| b[j]);
    }
}

/// The blocked driver shared by `simd` and `avx2`.
///
/// m = 1 (decode) is bound by the read bandwidth of W, read once: W is cut into
/// [`GEMV_STREAMS`] contiguous regions of `n / GEMV_STREAMS` rows and each pass takes the
/// next row of every region against the x vector. Every region is then one long sequential
/// stream, which the hardware prefetchers follow far better than 8 adjacent rows (8 streams
/// of only `k` values each): 8 regions read 21–26 GB/s where 8 adjacent rows read 15–19 GB/s
/// on one Zen 3 core at k = 576. The last `n mod GEMV_STREAMS` rows go one at a time.
/// m > 1 (prefill): for each k slice (≤ [`GEMM_KC_MAX`]), for each block of 4 W rows (held
/// in L1), every group of 3 x rows (from L2) makes a 3×4 output block; edges use smaller
/// blocks (const generics, fully unrolled; a lone last row joins the group before it as
/// two 2-row blocks).
fn blocked<K: DotKernel>(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    s: LinearShape,
) {
    let LinearShape { m, n, k, .. } = s;
    if m == 0 || n == 0 {
        return;
    }
    if m == 1 {
        let per_stream = n / GEMV_STREAMS;
        for j0 in 0..per_stream {
            gemv_strided::<K, GEMV_STREAMS>(y, x, w, bias, k, (j0, per_stream));
        }
        for j0 in per_stream * GEMV_STREAMS..n {
            gemv_strided::<K, 1>(y, x, w, bias, k, (j0, 1));
        }
        return;
    }
    let slices = k.div_ceil(GEMM_KC_MAX).max(1);
    let kc_step = k.div_ceil(slices).div_ceil(8) * 8;
    let mut k0 = 0;
    loop {
        let kc = kc_step.min(k - k0);
        for j0 in (0..n).step_by(GEMM_NR) {
            let nr = GEMM_NR.min(n - j0);
            let m3 = m / GEMM_MR * GEMM_MR;
            macro_rules! nr_block {
                ($mr:literal, $i0:expr) => {
                    match nr {
                        1 => block::<K, $mr, 1>(y, x, w, bias, s, ($i0, j0), (k0, kc)),
                        2 => block::<K, $mr, 2>(y, x, w, bias, s, ($i0, j0), (k0, kc)),
                        3 => block::<K, $mr, 3>(y, x, w, bias, s, ($i0, j0), (k0, kc)),
                        _ => block::<K, $mr, 4>(y, x, w, bias, s, ($i0, j0), (k0, kc)),
                    }
                };
            }
            // m ≡ 1 (mod 3): the last 4 rows as two 2-row blocks rather than 3 + a lone row
            let (m3, rest) = if m - m3 == 1 && m3 >= 3 { (m3 - 3, 4) } else { (m3, m - m3) };
            for i0 in (0..m3).step_by(GEMM_MR) {
                nr_block!(3, i0);
            }
            match rest {
                0 => {}
                1 => nr_block!(1, m3),
                2 => nr_block!(2, m3),
                _ => {
                    nr_block!(2, m3);
                    nr_block!(2, m3 + 2);
                }
            }
        }
        k0 += kc;
        if k0 >= k {
            break;
        }
    }
}

/// Register-blocked `wide::f32x8` dot products: m = 1 streams W once, a row of each of 8
/// contiguous regions per pass against the x vector; m > 1 makes 3×4 output blocks (3 x rows against 4 W rows held in
/// L1, k split in slices of at most 640).
pub fn linear_simd(y: &mut [f32], x: &[f32], w: &[f32], bias: Option<&[f32]>, s: LinearShape) {
    check_shape(y, x, w, bias, s);
    blocked::<WideKernel>(y, x, w, bias, s);
}

/// The blocking of [`linear_simd`] with AVX2+FMA intrinsics (`arch::f32_avx2::dot_block`).
/// Panics if the CPU lacks AVX2+FMA (the registry marks it unavailable there).
#[cfg(target_arch = "x86_64")]
pub fn linear_avx2(y: &mut [f32], x: &[f32], w: &[f32], bias: Option<&[f32]>, s: LinearShape) {
    assert!(crate::cpu::detected().has_avx2_fma(), "linear_avx2: this CPU lacks AVX2+FMA");
    check_shape(y, x, w, bias, s);
    blocked::<Avx2Kernel>(y, x, w, bias, s);
}

/// The `linear` variant named `variant` (`naive`, `matrixmultiply`, `simd`, `avx2`), or
/// `None` if it does not exist or cannot run on this CPU.
pub fn select(variant: &str) -> Option<LinearFn> {
    match variant {
        "naive" => Some(linear_naive),
        "matrixmultiply" => Some(linear_matrixmultiply),
        "simd" => Some(linear_simd),
        #[cfg(target_arch = "x86_64")]
        "avx2" if needs_avx2().is_available() => Some(linear_avx2),
        _ => None,
    }
}

/// The `(m, n, k)` of each case set (shared with [`super::linear_packed`]).
pub(crate) fn shape_list(set: CaseSet) -> Vec<(usize, usize, usize)> {
    match set {
        // SmolLM2-135M: q/o (576→576), k/v (576→192), gate/up (576→1536), down (1536→576);
        // m = 1 (decode) and m = 64 (prefill)
        CaseSet::Model => {
            let mut v = Vec::new();
            for m in [1, 64] {
                v.extend([(m, 576, 576), (m, 192, 576), (m, 1536, 576), (m, 576, 1536)]);
            }
            v
        }
        CaseSet::Sweep => (5..=11).map(|p| (64, 1usize << p, 1usize << p)).collect(),
        CaseSet::Test => {
            let mut v = Vec::new();
            for m in 0..=17 {
                for n in 0..=17 {
                    for k in 0..=17 {
                        v.push((m, n, k));
                    }
                }
            }
            v.extend([(1, 33, 129), (5, 67, 255), (2, 9, 1023), (1, 203, 40)]);
            v
        }
    }
}

fn shapes(set: CaseSet) -> Vec<Shape> {
    let mnk = shape_list(set);
    mnk.into_iter().map(|(m, n, k)| Shape::new(&[("m", m), ("n", n), ("k", k)])).collect()
}

/// A case with inputs `[x, layout(W), bias]`: `layout` turns the row-major `W: [n, k]` into
/// the op's form of W (shared with [`super::linear_packed`]).
pub(crate) fn prepare_case(
    shape: &Shape,
    seed: u64,
    layout: fn(Vec<f32>, usize, usize) -> Vec<f32>,
) -> Case {
    let (m, n, k) = (shape.get("m"), shape.get("n"), shape.get("k"));
    let mut rng = registry::rng(seed);
    let x = registry::uniform(&mut rng, m * k, 1.0);
    let w = registry::uniform(&mut rng, n * k, 0.1);
    let b = registry::uniform(&mut rng, n, 0.5);
    Case::new(
        shape.clone(),
        vec![Buffer::F32(x), Buffer::F32(layout(w, n, k)), Buffer::F32(b)],
        registry::nan_output(m * n),
    )
}

fn prepare(shape: &Shape, seed: u64) -> Case {
    prepare_case(shape, seed, |w, _, _| w)
}

pub(crate) fn run(variant: LinearFn, case: &mut Case) {
    let (m, n, k) = (case.shape.get("m"), case.shape.get("n"), case.shape.get("k"));
    let (inputs, y) = case.io();
    variant(y, inputs[0].f32(), inputs[1].f32(), Some(inputs[2].f32()), LinearShape::new(m, n, k));
}

/// `|b_j| + Σ_t |x_it · W[j, t]|` per output, `w_at(w, k, j, t)` reading `W[j, t]` from the
/// case's form of W.
pub(crate) fn magnitude_case(
    case: &Case,
    w_at: fn(&[f32], usize, usize, usize) -> f32,
) -> Vec<f64> {
    let (m, n, k) = (case.shape.get("m"), case.shape.get("n"), case.shape.get("k"));
    let (x, w, b) = (case.inputs[0].f32(), case.inputs[1].f32(), case.inputs[2].f32());
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        for (j, bj) in b[..n].iter().enumerate() {
            let s: f64 =
                (0..k).map(|t| (x[i * k + t] as f64 * w_at(w, k, j, t) as f64).abs()).sum();
            out.push(s + (*bj as f64).abs());
        }
    }
    out
}

fn magnitude(case: &Case) -> Vec<f64> {
    magnitude_case(case, |w, k, j, t| w[j * k + t])
}

pub fn op_infos() -> Vec<OpInfo> {
    vec![OpInfo {
        name: "linear",
        summary: "y[m,n] = x[m,k] · W[n,k]^T + b[n]; W row-major [out, in] (GGUF layout)",
        unit: Unit::GflopPerS,
        // An f32 sum of k products has worst-case error k·ε·Σ|ab| (matrixmultiply sums each
        // output in one lane; simd/avx2 in 8 lanes of k/8 terms plus a 3-level tree). Rounding
        // errors of random sign grow like √k·ε·Σ|ab| relative to the terms, and much less
        // relative to Σ|ab|: the worst seen over every test and model shape is 1.4·ε·Σ|ab|.
        // c = 16 leaves a 10x margin and still catches one wrong or missing term (~|ab|).
        tolerance: Tolerance::DotBound { c: 16.0 },
        shapes,
        prepare,
        flops: |s| 2.0 * (s.get("m") * s.get("n") * s.get("k")) as f64,
        bytes: |s| {
            4.0 * (s.get("m") * s.get("k")
                + s.get("n") * s.get("k")
                + s.get("m") * s.get("n")
                + s.get("n")) as f64
        },
        magnitude: Some(magnitude),
    }]
}

pub fn variants() -> Vec<Variant> {
    let mut v = vec![
        Variant {
            op: "linear",
            name: "naive",
            summary: "scalar loops, f64 accumulation",
            available: always,
            run: |c| run(linear_naive, c),
        },
        Variant {
            op: "linear",
            name: "matrixmultiply",
            summary: "matrixmultiply::sgemm reading W in place as W^T",
            available: always,
            run: |c| run(linear_matrixmultiply, c),
        },
        Variant {
            op: "linear",
            name: "simd",
            summary: "wide::f32x8 register-blocked dot products (GEMV 8 streams, GEMM 3x4)",
            available: always,
            run: |c| run(linear_simd, c),
        },
    ];
    #[cfg(target_arch = "x86_64")]
    v.push(Variant {
        op: "linear",
        name: "avx2",
        summary: "AVX2+FMA intrinsics, same blocking as simd",
        available: needs_avx2,
        run: |c| run(linear_avx2, c),
    });
    v
}
