//! Special values (±0, ±inf, NaN, 1e±30) and contract details of the f32 ops, every
//! variant against `naive` (NaN/inf agreement first, then the op's tolerance), plus facts
//! known in closed form: softmax([1234, 0]) = [1, 0], RMSNorm of huge rows stays finite,
//! linear's output stride and column blocks, RoPE's rotation angles.

use gllm_kernels::ops::activations::{self, SiluInplaceFn, SiluMulFn, UnaryFn};
use gllm_kernels::ops::elementwise;
use gllm_kernels::ops::layer_norm::{self, LayerNormFn};
use gllm_kernels::ops::linear::{self, LinearFn, LinearShape};
use gllm_kernels::ops::rms_norm::{self, RmsNormFn};
use gllm_kernels::ops::rope::{self, RopePairing, RopeShape, RopeTable};
use gllm_kernels::ops::softmax::{self, SoftmaxMask};
use gllm_kernels::registry;
use gllm_kernels::tolerance::Tolerance;

const SPECIALS: [f32; 12] = [
    0.0,
    -0.0,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::NAN,
    1e30,
    -1e30,
    1e-30,
    -1e-30,
    1.0,
    -2.5,
    88.5,
];

/// The specials repeated and interleaved with ordinary values over `n` elements, so both
/// the SIMD body and the scalar tail see every special value.
fn with_specials(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = registry::rng(seed);
    let mut v = registry::uniform(&mut rng, n, 4.0);
    for (i, x) in v.iter_mut().enumerate() {
        if i % 3 == 0 {
            *x = SPECIALS[(i / 3) % SPECIALS.len()];
        }
    }
    v
}

fn variants_of(op: &str) -> Vec<&'static str> {
    registry::variants_of(op)
        .filter(|v| (v.available)().is_available() && v.name != "naive")
        .map(|v| v.name)
        .collect()
}

fn tolerance(op: &str) -> Tolerance {
    registry::op(op).unwrap().tolerance
}

fn agree(id: &str, tol: Tolerance, got: &[f32], want: &[f32]) {
    if let Err(m) = tol.check(got, want, None) {
        panic!("{id}: {m}");
    }
}

#[test]
fn elementwise_ops_are_bit_exact_on_special_values() {
    for n in [7usize, 40, 77] {
        let x = with_specials(n, 1);
        let y0 = with_specials(n, 2);
        for (op, f_naive, f_simd) in [
            (
                "add",
                elementwise::add_naive as fn(&mut [f32], &[f32]),
                elementwise::add_simd as fn(&mut [f32], &[f32]),
            ),
            ("mul", elementwise::mul_naive, elementwise::mul_simd),
        ] {
            let (mut want, mut got) = (y0.clone(), y0.clone());
            f_naive(&mut want, &x);
            f_simd(&mut got, &x);
            agree(&format!("{op} n={n}"), Tolerance::BitExact, &got, &want);
        }
        for s in [0.37f32, -3.0, 0.0, f32::INFINITY, f32::NAN, 1e30] {
            let (mut want, mut got) = (y0.clone(), y0.clone());
            elementwise::scale_naive(&mut want, s);
            elementwise::scale_simd(&mut got, s);
            agree(&format!("scale s={s} n={n}"), Tolerance::BitExact, &got, &want);
        }
    }
}

#[test]
fn activations_on_special_values() {
    type Select = fn(&str) -> Option<UnaryFn>;
    let unary: [(&str, Select); 3] = [
        ("sigmoid", activations::select_sigmoid),
        ("silu", activations::select_silu),
        ("gelu", activations::select_gelu),
    ];
    for n in [12usize, 45, 100] {
        let x = with_specials(n, 3);
        for (op, select) in unary {
            let mut want = vec![f32::NAN; n];
            select("naive").unwrap()(&mut want, &x);
            for v in variants_of(op) {
                let mut got = vec![f32::NAN; n];
                select(v).unwrap()(&mut got, &x);
                agree(&format!("{op}/{v} n={n}"), tolerance(op), &got, &want);
            }
        }
        let mut want = x.clone();
        activations::silu_inplace_naive(&mut want);
        for v in variants_of("silu_inplace") {
            let f: SiluInplaceFn = activations::select_silu_inplace(v).unwrap();
            let mut got = x.clone();
            f(&mut got);
            agree(&format!("silu_inplace/{v} n={n}"), tolerance("silu_inplace"), &got, &want);
        }
        let up = with_specials(n, 4);
        let mut want = vec![f32::NAN; n];
        activations::silu_mul_naive(&mut want, &x, &up);
        for v in variants_of("silu_mul") {
            let f: SiluMulFn = activations::select_silu_mul(v).unwrap();
            let mut got = vec![f32::NAN; n];
            f(&mut got, &x, &up);
            agree(&format!("silu_mul/{v} n={n}"), tolerance("silu_mul"), &got, &want);
        }
    }
    // The limits, in every variant (8 lanes so the SIMD body runs, not only the tail).
    let x = [f32::NEG_INFINITY, f32::INFINITY, f32::NAN, 0.0, -1e30, 1e30, -0.0, 100.0];
    for v in ["naive", "simd"] {
        let mut y = [0.0f32; 8];
        activations::select_sigmoid(v).unwrap()(&mut y, &x);
        assert_eq!(&y[..2], &[0.0, 1.0], "sigmoid/{v}");
        assert!(y[2].is_nan());
        assert_eq!(y[3], 0.5);
        activations::select_silu(v).unwrap()(&mut y, &x);
        assert_eq!(y[0].to_bits(), (-0.0f32).to_bits(), "silu/{v}(-inf) = {}", y[0]);
        assert_eq!(y[1], f32::INFINITY);
        assert!(y[2].is_nan());
        assert_eq!((y[3], y[4], y[5]), (0.0, -0.0, 1e30), "silu/{v}");
        activations::select_gelu(v).unwrap()(&mut y, &x);
        assert_eq!(y[0].to_bits(), (-0.0f32).to_bits(), "gelu/{v}(-inf) = {}", y[0]);
        assert_eq!(y[1], f32::INFINITY);
        assert!(y[2].is_nan());
        assert_eq!((y[3], y[4], y[5]), (0.0, -0.0, 1e30), "gelu/{v}");
    }
}

#[test]
fn softmax_closed_forms_and_special_values() {
    for v in ["naive", "simd"] {
        let f = softmax::select(v).unwrap();
        let mut x = [1234.0f32, 0.0];
        f(&mut x, 2, SoftmaxMask::None);
        assert_eq!(x, [1.0, 0.0], "softmax/{v}([1234, 0])");
        // long rows so the SIMD body runs: the same at index 0 of 20
        let mut x = vec![0.0f32; 20];
        x[0] = 1234.0;
        f(&mut x, 20, SoftmaxMask::None);
        assert_eq!(x[0], 1.0, "softmax/{v}");
        assert!(x[1..].iter().all(|&e| e == 0.0), "softmax/{v}: {x:?}");
        // a fully masked row becomes zeros; -inf entries become exact zeros
        let mut x = vec![f32::NEG_INFINITY; 17];
        f(&mut x, 17, SoftmaxMask::None);
        assert!(x.iter().all(|&e| e == 0.0), "softmax/{v} of -inf row: {x:?}");
        let mut x = vec![1.0f32; 10];
        x[3] = f32::NEG_INFINITY;
        f(&mut x, 10, SoftmaxMask::None);
        assert_eq!(x[3], 0.0);
        assert!((x[0] - 1.0 / 9.0).abs() < 1e-7, "softmax/{v}: {x:?}");
        // NaN anywhere makes the row NaN
        let mut x = vec![1.0f32; 10];
        x[9] = f32::NAN;
        f(&mut x, 10, SoftmaxMask::None);
        assert!(x.iter().all(|e| e.is_nan()), "softmax/{v} with NaN: {x:?}");
        // causal: row r of 3 over 12 columns with offset 9 sees 10 + r columns
        let mut x = vec![0.5f32; 36];
        f(&mut x, 12, SoftmaxMask::Causal { offset: 9 });
        for r in 0..3 {
            let row = &x[r * 12..(r + 1) * 12];
            let visible = 10 + r;
            for (j, &e) in row.iter().enumerate() {
                let want = if j < visible { 1.0 / visible as f32 } else { 0.0 };
                assert!(
                    (e - want).abs() < 1e-7,
                    "softmax/{v} causal row {r} col {j}: {e} want {want}"
                );
            }
        }
    }
    // additive masks ([cols] and [rows, cols]) and special values, simd against naive
    let tol = tolerance("softmax");
    for cols in [5usize, 33, 100] {
        let rows = 3;
        let x0: Vec<f32> =
            with_specials(rows * cols, 5).into_iter().map(|v| v.clamp(-50.0, 50.0)).collect();
        let mut mask = registry::uniform(&mut registry::rng(6), rows * cols, 2.0);
        mask[1] = f32::NEG_INFINITY;
        for m in
            [SoftmaxMask::Additive(&mask[..cols]), SoftmaxMask::Additive(&mask), SoftmaxMask::None]
        {
            let mut want = x0.clone();
            softmax::softmax_naive(&mut want, cols, m);
            let mut got = x0.clone();
            softmax::softmax_simd(&mut got, cols, m);
            agree(&format!("softmax cols={cols} {m:?}"), tol, &got, &want);
        }
        let x1 = with_specials(rows * cols, 7);
        let mut want = x1.clone();
        softmax::softmax_naive(&mut want, cols, SoftmaxMask::None);
        let mut got = x1.clone();
        softmax::softmax_simd(&mut got, cols, SoftmaxMask::None);
        agree(&format!("softmax specials cols={cols}"), tol, &got, &want);
    }
}

#[test]
fn norms_stay_finite_on_huge_and_tiny_rows() {
    let n = 576;
    let w: Vec<f32> = registry::uniform(&mut registry::rng(8), n, 2.0);
    let b: Vec<f32> = registry::uniform(&mut registry::rng(9), n, 1.0);
    for magnitude in [7e9f32, 1e20, 1e30, 3e38, 1e-30, 1e-40] {
        let x: Vec<f32> = registry::uniform(&mut registry::rng(10), n, 1.0)
            .iter()
            .map(|v| v * magnitude)
            .collect();
        for v in ["naive", "simd"] {
            let f: RmsNormFn = rms_norm::select(v).unwrap();
            let mut y = vec![f32::NAN; n];
            f(&mut y, &x, &w, 1e-5);
            assert!(y.iter().all(|e| e.is_finite()), "rms_norm/{v} at {magnitude:e}: not finite");
            let mut want = vec![f32::NAN; n];
            rms_norm::rms_norm_naive(&mut want, &x, &w, 1e-5);
            agree(&format!("rms_norm/{v} at {magnitude:e}"), tolerance("rms_norm"), &y, &want);
            let g: LayerNormFn = layer_norm::select(v).unwrap();
            let mut y = vec![f32::NAN; n];
            g(&mut y, &x, &w, &b, 1e-5);
            assert!(y.iter().all(|e| e.is_finite()), "layer_norm/{v} at {magnitude:e}: not finite");
            let mut want = vec![f32::NAN; n];
            layer_norm::layer_norm_naive(&mut want, &x, &w, &b, 1e-5);
            agree(&format!("layer_norm/{v} at {magnitude:e}"), tolerance("layer_norm"), &y, &want);
        }
    }
    // 7e9 everywhere: RMS is 7e9, so y = w (up to rounding)
    let x = vec![7e9f32; n];
    let mut y = vec![f32::NAN; n];
    rms_norm::rms_norm_simd(&mut y, &x, &w, 1e-5);
    for (yi, wi) in y.iter().zip(&w) {
        assert!((yi - wi).abs() <= 1e-6 * wi.abs().max(1.0), "rms_norm of 7e9: {yi} want {wi}");
    }
    // special values: simd and naive agree (NaN/inf in the same places)
    for v in variants_of("rms_norm") {
        let x = with_specials(3 * 40, 11);
        let w40 = &w[..40];
        let mut want = vec![f32::NAN; 120];
        rms_norm::rms_norm_naive(&mut want, &x, w40, 1e-5);
        let mut got = vec![f32::NAN; 120];
        rms_norm::select(v).unwrap()(&mut got, &x, w40, 1e-5);
        agree("rms_norm specials", tolerance("rms_norm"), &got, &want);
        // (rms_norm's `ggml` variant has no layer_norm counterpart)
        if let Some(layer_norm) = layer_norm::select(v) {
            let mut want = vec![f32::NAN; 120];
            layer_norm::layer_norm_naive(&mut want, &x, w40, &b[..40], 1e-5);
            let mut got = vec![f32::NAN; 120];
            layer_norm(&mut got, &x, w40, &b[..40], 1e-5);
            agree("layer_norm specials", tolerance("layer_norm"), &got, &want);
        }
    }
}

fn linear_variants() -> Vec<(&'static str, LinearFn)> {
    registry::variants_of("linear")
        .filter(|v| (v.available)().is_available())
        .map(|v| (v.name, linear::select(v.name).unwrap()))
        .collect()
}

#[test]
fn linear_honours_the_output_stride_and_column_blocks() {
    let (m, n, k) = (5usize, 37usize, 70usize);
    let mut rng = registry::rng(12);
    let x = registry::uniform(&mut rng, m * k, 1.0);
    let w = registry::uniform(&mut rng, n * k, 1.0);
    let b = registry::uniform(&mut rng, n, 1.0);
    let mut want = vec![0.0f32; m * n];
    linear::linear_naive(&mut want, &x, &w, Some(&b), LinearShape::new(m, n, k));
    let magnitude: Vec<f64> = (0..m * n)
        .map(|idx| {
            let (i, j) = (idx / n, idx % n);
            (0..k).map(|t| (x[i * k + t] as f64 * w[j * k + t] as f64).abs()).sum::<f64>()
                + b[j].abs() as f64
        })
        .collect();
    let tol = tolerance("linear");
    for (name, f) in linear_variants() {
        for mm in [1, m] {
            // the whole output written with a stride of n + 9: the gaps keep their sentinel
            let stride = n + 9;
            let sentinel = -7.25f32;
            let mut y = vec![sentinel; (mm - 1) * stride + n + 4];
            f(&mut y, &x[..mm * k], &w, Some(&b), LinearShape { m: mm, n, k, y_stride: stride });
            for i in 0..mm {
                let row = &y[i * stride..i * stride + n];
                tol.check(row, &want[i * n..(i + 1) * n], Some(&magnitude[i * n..(i + 1) * n]))
                    .unwrap_or_else(|e| panic!("linear/{name} m={mm} strided row {i}: {e}"));
                let gap_end = if i + 1 < mm { (i + 1) * stride } else { y.len() };
                assert!(
                    y[i * stride + n..gap_end].iter().all(|&v| v == sentinel),
                    "linear/{name} m={mm}: wrote into the gap after row {i}"
                );
            }
            // column blocks [0, 16), [16, 29), [29, 37), each computed alone into the full
            // output (as a thread would), equal the whole product
            let mut y = vec![f32::NAN; mm * n];
            for (n0, n1) in [(0, 16), (16, 29), (29, 37)] {
                f(
                    &mut y[n0..],
                    &x[..mm * k],
                    &w[n0 * k..n1 * k],
                    Some(&b[n0..n1]),
                    LinearShape { m: mm, n: n1 - n0, k, y_stride: n },
                );
            }
            tol.check(&y, &want[..mm * n], Some(&magnitude[..mm * n]))
                .unwrap_or_else(|e| panic!("linear/{name} m={mm} column blocks: {e}"));
        }
    }
}

#[test]
fn linear_propagates_nan_and_inf_by_row() {
    let (m, n, k) = (4usize, 19usize, 33usize);
    let mut rng = registry::rng(13);
    let mut x = registry::uniform(&mut rng, m * k, 1.0);
    let w: Vec<f32> =
        registry::uniform(&mut rng, n * k, 1.0).iter().map(|v| v.abs() + 0.1).collect();
    x[k + 5] = f32::NAN; // row 1: all NaN
    x[2 * k + 7] = f32::INFINITY; // row 2: all +inf (w > 0)
    x[3 * k + 2] = 1e30; // row 3: large but finite
    for (name, f) in linear_variants() {
        let mut y = vec![0.0f32; m * n];
        f(&mut y, &x, &w, None, LinearShape::new(m, n, k));
        assert!(y[..n].iter().all(|v| v.is_finite()), "linear/{name} row 0");
        assert!(y[n..2 * n].iter().all(|v| v.is_nan()), "linear/{name} row 1: {:?}", &y[n..2 * n]);
        assert!(y[2 * n..3 * n].iter().all(|&v| v == f32::INFINITY), "linear/{name} row 2");
        assert!(y[3 * n..].iter().all(|v| v.is_finite() && *v > 1e28), "linear/{name} row 3");
    }
}

#[test]
fn rope_matches_closed_form_angles() {
    let (d, heads, kv_heads, base) = (8usize, 2usize, 1usize, 10_000.0f32);
    let table = RopeTable::new(base, d, 64);
    for pairing in [RopePairing::Adjacent, RopePairing::Halves] {
        for v in ["naive", "simd"] {
            let f = rope::select(v).unwrap();
            // q: unit vectors on the first element of each pair; position 0 is the identity
            let pos0 = 41;
            let mut q = vec![0.0f32; heads * d];
            let mut k = vec![0.0f32; kv_heads * d];
            let first = |i: usize| match pairing {
                RopePairing::Adjacent => (2 * i, 2 * i + 1),
                RopePairing::Halves => (i, i + d / 2),
            };
            for h in 0..heads {
                for i in 0..d / 2 {
                    q[h * d + first(i).0] = 1.0;
                }
            }
            for i in 0..d / 2 {
                k[first(i).1] = 1.0;
            }
            let s = RopeShape { n_heads: heads, n_kv_heads: kv_heads, head_dim: d, pos0, pairing };
            f(&mut q, &mut k, s, &table);
            for i in 0..d / 2 {
                let angle = pos0 as f64 * (base as f64).powf(-2.0 * i as f64 / d as f64);
                let (a, b) = first(i);
                for h in 0..heads {
                    // (1, 0) → (cos, sin)
                    assert!(
                        (q[h * d + a] as f64 - angle.cos()).abs() < 1e-6,
                        "{v} {pairing:?} q pair {i}"
                    );
                    assert!(
                        (q[h * d + b] as f64 - angle.sin()).abs() < 1e-6,
                        "{v} {pairing:?} q pair {i}"
                    );
                }
                // (0, 1) → (−sin, cos)
                assert!((k[a] as f64 + angle.sin()).abs() < 1e-6, "{v} {pairing:?} k pair {i}");
                assert!((k[b] as f64 - angle.cos()).abs() < 1e-6, "{v} {pairing:?} k pair {i}");
            }
            // position 0 leaves q unchanged; dims beyond rotary_dims pass through
            let partial = RopeTable::new(base, 4, 4);
            let mut q0: Vec<f32> = (0..d).map(|i| i as f32 + 0.5).collect();
            let mut k0: Vec<f32> = vec![];
            f(
                &mut q0,
                &mut k0,
                RopeShape { n_heads: 1, n_kv_heads: 0, head_dim: d, pos0: 0, pairing },
                &partial,
            );
            assert_eq!(q0, (0..d).map(|i| i as f32 + 0.5).collect::<Vec<_>>());
            let mut q3 = q0.clone();
            f(
                &mut q3,
                &mut k0,
                RopeShape { n_heads: 1, n_kv_heads: 0, head_dim: d, pos0: 3, pairing },
                &partial,
            );
            assert_eq!(&q3[4..], &q0[4..], "{v}: dims past rotary_dims changed");
            assert_ne!(&q3[..4], &q0[..4]);
        }
    }
}

#[test]
fn rope_special_values_agree() {
    let (d, heads, kv_heads, m) = (24usize, 3usize, 1usize, 4usize);
    let table = RopeTable::new(100_000.0, 16, 64);
    for pairing in [RopePairing::Adjacent, RopePairing::Halves] {
        let s = RopeShape { n_heads: heads, n_kv_heads: kv_heads, head_dim: d, pos0: 7, pairing };
        let q0: Vec<f32> =
            with_specials(m * heads * d, 14).iter().map(|v| v.clamp(-1e3, 1e3)).collect();
        let k0 = with_specials(m * kv_heads * d, 15);
        let (mut qw, mut kw) = (q0.clone(), k0.clone());
        rope::rope_naive(&mut qw, &mut kw, s, &table);
        let (mut qg, mut kg) = (q0.clone(), k0.clone());
        rope::rope_simd(&mut qg, &mut kg, s, &table);
        agree(&format!("rope q {pairing:?}"), Tolerance::AbsRel { abs: 1e-6, rel: 1e-6 }, &qg, &qw);
        // k holds ±inf/NaN and 1e30: agreement of the non-finite pattern, then 1e-6 relative
        agree(&format!("rope k {pairing:?}"), Tolerance::AbsRel { abs: 1e-6, rel: 1e-6 }, &kg, &kw);
    }
}

/// A wide row (the sweep's largest) must keep the simd sum as accurate as the naive one: a
/// single f32 accumulator drifted past the tolerance at this width (the case and seed are the
/// ones `gllm-bench verify --cases sweep` prepares).
#[test]
fn softmax_of_a_very_wide_row_matches_naive() {
    use gllm_kernels::registry::{self, Shape};
    let op = registry::op("softmax").expect("softmax is registered");
    let shape = Shape::new(&[("rows", 1), ("n", 262_144), ("causal", 0)]);
    let seed = 0x9e11_be4c;
    let mut want = (op.prepare)(&shape, seed);
    (registry::variant("softmax", "naive").unwrap().run)(&mut want);
    let mut got = (op.prepare)(&shape, seed);
    (registry::variant("softmax", "simd").unwrap().run)(&mut got);
    if let Err(m) = op.tolerance.check(got.output(), want.output(), None) {
        panic!("softmax simd at n=262144: {m}");
    }
}
