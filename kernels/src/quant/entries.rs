//! Registry entries of the block formats: `dequant_<fmt>` per format (GB/s of output),
//! `vec_dot_<w>_<a>` per weight format (GFLOP/s, 2k flops), `qmatvec_<w>` per weight format
//! (activation quantization + quantized matmul, GFLOP/s, 2·m·n·k flops).

use std::sync::OnceLock;

use crate::registry::{self, Availability, Buffer, Case, CaseSet, OpInfo, Shape, Unit, Variant};
use crate::tolerance::Tolerance;

use super::{
    dequantize_row_variant, quantize_activations, quantize_row, random, select_qmatmul, vec_dot,
    QuantType, DEQUANT_TYPES, WEIGHT_TYPES,
};

/// Dot-product bound for every quantized dot: `|Δ| ≤ 64·ε·Σ|w_i·a_i|` over the dequantized
/// values (f32 accumulation over up to ~50 blocks in the fast variants vs f64 in naive, and
/// the cancellation between a K-quant's scale and minimum terms).
const DOT_TOLERANCE: Tolerance = Tolerance::DotBound { c: 64.0 };

const VARIANT_NAMES: [&str; 3] = ["naive", "simd", "avx2"];

/// The formats whose dequantization has an `avx2` variant.
const HAS_AVX2_DEQUANT: [QuantType; 7] = [
    QuantType::F16,
    QuantType::Q4_0,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q5_1,
    QuantType::Q8_0,
    QuantType::Q8_1,
];

fn ty<const T: u32>() -> QuantType {
    QuantType::from_id(T).expect("registered with a valid id")
}

fn needs_avx2_f16c() -> Availability {
    let cpu = crate::cpu::detected();
    if cpu.has_avx2_f16c() {
        Availability::Available
    } else {
        Availability::Unavailable("CPU lacks AVX2+FMA+F16C".into())
    }
}

/// Lower-case op-name fragment: `q4_1`, `q3_k`, `f16`.
fn fragment(t: QuantType) -> String {
    t.name().to_lowercase()
}

struct Names {
    dequant: Vec<(QuantType, &'static str)>,
    dot: Vec<(QuantType, &'static str)>,
    qmatvec: Vec<(QuantType, &'static str)>,
}

fn names() -> &'static Names {
    static NAMES: OnceLock<Names> = OnceLock::new();
    NAMES.get_or_init(|| {
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        Names {
            dequant: DEQUANT_TYPES
                .iter()
                .map(|&t| (t, leak(format!("dequant_{}", fragment(t)))))
                .collect(),
            dot: WEIGHT_TYPES
                .iter()
                .map(|&t| {
                    let a = t.activation_type().expect("weight type");
                    (t, leak(format!("vec_dot_{}_{}", fragment(t), fragment(a))))
                })
                .collect(),
            qmatvec: WEIGHT_TYPES
                .iter()
                .map(|&t| (t, leak(format!("qmatvec_{}", fragment(t)))))
                .collect(),
        }
    })
}

fn lookup(list: &[(QuantType, &'static str)], t: QuantType) -> &'static str {
    list.iter().find(|(x, _)| *x == t).map(|(_, n)| *n).expect("registered type")
}

/// The registry name of `t`'s dequantization op (`dequant_q4_1`).
pub fn dequant_op(t: QuantType) -> &'static str {
    lookup(&names().dequant, t)
}

/// The registry name of weight type `t`'s dot op (`vec_dot_q4_1_q8_1`).
pub fn dot_op(t: QuantType) -> &'static str {
    lookup(&names().dot, t)
}

/// The registry name of weight type `t`'s quantized matvec op (`qmatvec_q4_1`).
pub fn qmatvec_op(t: QuantType) -> &'static str {
    lookup(&names().qmatvec, t)
}

// ---------------------------------------------------------------- dequant_<fmt>

fn dequant_shapes<const T: u32>(set: CaseSet) -> Vec<Shape> {
    let t = ty::<T>();
    let be = t.block_elems();
    let lengths: Vec<usize> = match set {
        CaseSet::Test if be == 1 => crate::ops::TEST_LENGTHS.to_vec(),
        CaseSet::Test => [0, 1, 2, 3, 7, 9, 16, 33].iter().map(|c| c * be).collect(),
        // one attention and one FFN weight matrix of SmolLM2-135M
        CaseSet::Model => vec![576 * 576, 1536 * 576],
        CaseSet::Sweep => (0..=7).map(|p| (256usize << (2 * p)).max(be)).collect(),
    };
    lengths.into_iter().map(|n| Shape::new(&[("n", n)])).collect()
}

fn dequant_prepare<const T: u32>(shape: &Shape, seed: u64) -> Case {
    let t = ty::<T>();
    let n = shape.get("n");
    let mut rng = registry::rng(seed);
    let src = random::blocks(t, n / t.block_elems(), &mut rng);
    Case::new(shape.clone(), vec![Buffer::Bytes(src)], registry::nan_output(n))
}

fn dequant_run<const T: u32, const V: usize>(case: &mut Case) {
    let (inputs, y) = case.io();
    dequantize_row_variant(ty::<T>(), VARIANT_NAMES[V], inputs[0].bytes(), y);
}

fn dequant_info<const T: u32>() -> OpInfo {
    let t = ty::<T>();
    OpInfo {
        name: dequant_op(t),
        summary: "y = dequantize(blocks): GGUF blocks to f32, bit-exact with gguf-py; y: [n]",
        unit: Unit::GbPerS,
        tolerance: Tolerance::BitExact,
        shapes: dequant_shapes::<T>,
        prepare: dequant_prepare::<T>,
        flops: |s| s.get("n") as f64,
        // GB/s of output
        bytes: |s| 4.0 * s.get("n") as f64,
        magnitude: None,
    }
}

fn dequant_variants<const T: u32>() -> Vec<Variant> {
    let t = ty::<T>();
    let op = dequant_op(t);
    let mut v = vec![
        Variant {
            op,
            name: "naive",
            summary: "one value at a time",
            available: registry::always,
            run: dequant_run::<T, 0>,
        },
        Variant {
            op,
            name: "simd",
            summary: "unpack a block, scale with wide::f32x8 (no FMA: bit-exact)",
            available: registry::always,
            run: dequant_run::<T, 1>,
        },
    ];
    if HAS_AVX2_DEQUANT.contains(&t) {
        v.push(Variant {
            op,
            name: "avx2",
            summary: if t == QuantType::F16 {
                "F16C vcvtph2ps, 8 values per instruction"
            } else {
                "unpack a block in a ymm register, vpmovsxbd/cvtdq2ps, scale (no FMA)"
            },
            available: needs_avx2_f16c,
            run: dequant_run::<T, 2>,
        });
    }
    v
}

// ---------------------------------------------------------------- vec_dot_<w>_<a>

fn dot_shapes<const T: u32>(set: CaseSet) -> Vec<Shape> {
    let be = ty::<T>().block_elems();
    let ks: Vec<usize> = match set {
        CaseSet::Test => [0, 1, 2, 3, 7, 9, 16].iter().map(|c| c * be).collect(),
        CaseSet::Model => [576, 1536].into_iter().filter(|k| k % be == 0).collect(),
        CaseSet::Sweep => (0..=6).map(|p| 256usize << p).collect(),
    };
    ks.into_iter().map(|k| Shape::new(&[("k", k)])).collect()
}

fn dot_prepare<const T: u32>(shape: &Shape, seed: u64) -> Case {
    let t = ty::<T>();
    let act = t.activation_type().expect("weight type");
    let k = shape.get("k");
    let mut rng = registry::rng(seed);
    let w = random::blocks(t, k / t.block_elems(), &mut rng);
    let x = random::values(&mut rng, k);
    let mut a = vec![0u8; act.row_bytes(k).expect("whole blocks")];
    quantize_row(act, &x, &mut a).expect("activation quantizer");
    Case::new(shape.clone(), vec![Buffer::Bytes(w), Buffer::Bytes(a)], registry::nan_output(1))
}

fn dot_run<const T: u32, const V: usize>(case: &mut Case) {
    let (inputs, y) = case.io();
    y[0] = vec_dot(ty::<T>(), VARIANT_NAMES[V], inputs[0].bytes(), inputs[1].bytes());
}

/// `Σ |w_i|·|a_i|` of rows of dequantized weights against rows of dequantized activations,
/// plus `Σ_b |m_b·s_b|` for the formats with a minimum paired with Q8_1.
fn magnitudes(t: QuantType, w: &[u8], n: usize, a: &[u8], m: usize, k: usize) -> Vec<f64> {
    let act = t.activation_type().expect("weight type");
    let mut wf = vec![0.0f32; k];
    let mut af = vec![0.0f32; m * k];
    dequantize_row_variant(act, "naive", a, &mut af);
    let row_bytes = t.row_bytes(k).expect("whole blocks");
    let arow_bytes = act.row_bytes(k).expect("whole blocks");
    let mut out = vec![0.0f64; m * n];
    for r in 0..n {
        let wr = &w[r * row_bytes..(r + 1) * row_bytes];
        dequantize_row_variant(t, "naive", wr, &mut wf);
        for tok in 0..m {
            let ar = &af[tok * k..(tok + 1) * k];
            let mut sum: f64 = wf.iter().zip(ar).map(|(x, y)| (*x as f64 * *y as f64).abs()).sum();
            if act == QuantType::Q8_1 {
                let ab = &a[tok * arow_bytes..(tok + 1) * arow_bytes];
                for (bw, ba) in wr.chunks_exact(t.block_bytes()).zip(ab.chunks_exact(36)) {
                    let mw = super::block::f16_field([bw[2], bw[3]]) as f64;
                    let s = super::block::f16_field([ba[2], ba[3]]) as f64;
                    sum += (mw * s).abs();
                }
            }
            out[tok * n + r] = sum;
        }
    }
    out
}

fn dot_magnitude<const T: u32>(case: &Case) -> Vec<f64> {
    let k = case.shape.get("k");
    magnitudes(ty::<T>(), case.inputs[0].bytes(), 1, case.inputs[1].bytes(), 1, k)
}

fn dot_info<const T: u32>() -> OpInfo {
    let t = ty::<T>();
    OpInfo {
        name: dot_op(t),
        summary: "y = Σ w_i·a_i on blocks: one weight row · one quantized activation row; [k]",
        unit: Unit::GflopPerS,
        tolerance: DOT_TOLERANCE,
        shapes: dot_shapes::<T>,
        prepare: dot_prepare::<T>,
        flops: |s| 2.0 * s.get("k") as f64,
        bytes: |s| {
            let t = ty::<T>();
            let k = s.get("k");
            let act = t.activation_type().expect("weight type");
            (t.row_bytes(k).unwrap_or(0) + act.row_bytes(k).unwrap_or(0)) as f64
        },
        magnitude: Some(dot_magnitude::<T>),
    }
}

fn dot_variants<const T: u32>() -> Vec<Variant> {
    let op = dot_op(ty::<T>());
    vec![
        Variant {
            op,
            name: "naive",
            summary: "integer sums per (sub-)block as the format defines them, f64 across blocks",
            available: registry::always,
            run: dot_run::<T, 0>,
        },
        Variant {
            op,
            name: "simd",
            summary: "unpack to i8, wide i16x16 multiply-add per (sub-)block, f32 across blocks",
            available: registry::always,
            run: dot_run::<T, 1>,
        },
        Variant {
            op,
            name: "avx2",
            summary: "vpmaddubsw/vpmaddwd on unpacked bytes, f32x8 accumulator",
            available: needs_avx2_f16c,
            run: dot_run::<T, 2>,
        },
    ]
}

// ---------------------------------------------------------------- qmatvec_<w>

fn qmatvec_shapes<const T: u32>(set: CaseSet) -> Vec<Shape> {
    let be = ty::<T>().block_elems();
    let shape = |m: usize, n: usize, k: usize| Shape::new(&[("m", m), ("n", n), ("k", k)]);
    match set {
        CaseSet::Test => [
            (1, 1, 1),
            (1, 3, 2),
            (1, 4, 3),
            (1, 5, 7),
            (1, 9, 9),
            (2, 4, 2),
            (3, 7, 3),
            (4, 8, 1),
            (5, 17, 2),
            (7, 13, 3),
            // the avx2 GEMM path (m ≥ 5): token tail, row tail, 9 blocks (8-wide min term + 1)
            (9, 6, 9),
            (6, 4, 1),
            (2, 0, 2),
            (0, 3, 1),
        ]
        .iter()
        .map(|&(m, n, nb)| shape(m, n, nb * be))
        .collect(),
        // SmolLM2-135M: q/o (576×576), gate/up (1536×576), down (576×1536), vocab (49152×576)
        // for one token (decode), and a 64-token prefill
        CaseSet::Model => [
            (1, 576, 576),
            (1, 1536, 576),
            (1, 576, 1536),
            (1, 49152, 576),
            (64, 576, 576),
            (64, 576, 1536),
        ]
        .iter()
        .filter(|&&(_, _, k)| k % be == 0)
        .map(|&(m, n, k)| shape(m, n, k))
        .collect(),
        CaseSet::Sweep => [1, 2, 4, 8, 16, 32, 64].iter().map(|&m| shape(m, 576, 1536)).collect(),
    }
}

fn qmatvec_prepare<const T: u32>(shape: &Shape, seed: u64) -> Case {
    let t = ty::<T>();
    let (m, n, k) = (shape.get("m"), shape.get("n"), shape.get("k"));
    let mut rng = registry::rng(seed);
    let w = random::blocks(t, n * k / t.block_elems(), &mut rng);
    let x = random::values(&mut rng, m * k);
    Case::new(shape.clone(), vec![Buffer::Bytes(w), Buffer::F32(x)], registry::nan_output(m * n))
}

fn qmatvec_run<const T: u32, const V: usize>(case: &mut Case) {
    let t = ty::<T>();
    let (m, n, k) = (case.shape.get("m"), case.shape.get("n"), case.shape.get("k"));
    let (inputs, y) = case.io();
    let acts =
        quantize_activations(t.activation_type().expect("weight type"), inputs[1].f32(), m, k);
    let f =
        select_qmatmul(VARIANT_NAMES[V]).expect("the variant is available (checked by the caller)");
    f(inputs[0].bytes(), t, n, k, &acts, y, n);
}

fn qmatvec_magnitude<const T: u32>(case: &Case) -> Vec<f64> {
    let t = ty::<T>();
    let (m, n, k) = (case.shape.get("m"), case.shape.get("n"), case.shape.get("k"));
    let acts =
        quantize_activations(t.activation_type().expect("weight type"), case.inputs[1].f32(), m, k);
    magnitudes(t, case.inputs[0].bytes(), n, acts.blocks(), m, k)
}

fn qmatvec_info<const T: u32>() -> OpInfo {
    let t = ty::<T>();
    OpInfo {
        name: qmatvec_op(t),
        summary: "y[t, r] = Σ_i w[r, i]·x[t, i]: x quantized once, weights on their blocks; \
                  w: [n, k] blocks, x: [m, k], y: [m, n]",
        unit: Unit::GflopPerS,
        tolerance: DOT_TOLERANCE,
        shapes: qmatvec_shapes::<T>,
        prepare: qmatvec_prepare::<T>,
        flops: |s| 2.0 * (s.get("m") * s.get("n") * s.get("k")) as f64,
        bytes: |s| {
            let t = ty::<T>();
            let (m, n, k) = (s.get("m"), s.get("n"), s.get("k"));
            (n * t.row_bytes(k).unwrap_or(0) + 4 * m * k + 4 * m * n) as f64
        },
        magnitude: Some(qmatvec_magnitude::<T>),
    }
}

fn qmatvec_variants<const T: u32>() -> Vec<Variant> {
    let op = qmatvec_op(ty::<T>());
    vec![
        Variant {
            op,
            name: "naive",
            summary: "quantize x, then the naive dot per (row, token)",
            available: registry::always,
            run: qmatvec_run::<T, 0>,
        },
        Variant {
            op,
            name: "simd",
            summary: "quantize x, then the wide dot per row, each row reused across tokens",
            available: registry::always,
            run: qmatvec_run::<T, 1>,
        },
        Variant {
            op,
            name: "avx2",
            summary:
                "quantize x, then AVX2 tiles of 4 rows x 3 tokens (weight blocks unpacked once)",
            available: needs_avx2_f16c,
            run: qmatvec_run::<T, 2>,
        },
    ]
}

// ---------------------------------------------------------------- qmatvec_q4_1x8

/// Op name of the interleaved Q4_1 matmul ([`super::q4_1x8`]).
pub const QMATVEC_Q4_1X8: &str = "qmatvec_q4_1x8";

fn x8_shapes(set: CaseSet) -> Vec<Shape> {
    let shape = |m: usize, n: usize, k: usize| Shape::new(&[("m", m), ("n", n), ("k", k)]);
    let list: &[(usize, usize, usize)] = match set {
        // (m, n, blocks per row): the GEMV (m = 1), the GEMM with 2 and with many tokens
        CaseSet::Test => &[(1, 8, 1), (1, 16, 3), (1, 40, 9), (2, 8, 2), (3, 24, 5), (9, 16, 18)],
        // SmolLM2-135M's Q4_1 matrices: q/o (576×576), k/v (192×576), gate/up (1536×576),
        // down (576×1536) for one token; q/o and down for a 64-token prefill
        CaseSet::Model => {
            &[(1, 576, 18), (1, 192, 18), (1, 1536, 18), (1, 576, 48), (64, 576, 18), (64, 576, 48)]
        }
        CaseSet::Sweep => &[
            (1, 576, 48),
            (2, 576, 48),
            (4, 576, 48),
            (8, 576, 48),
            (16, 576, 48),
            (32, 576, 48),
            (64, 576, 48),
        ],
    };
    list.iter().map(|&(m, n, nb)| shape(m, n, 32 * nb)).collect()
}

fn x8_prepare(shape: &Shape, seed: u64) -> Case {
    let (m, n, k) = (shape.get("m"), shape.get("n"), shape.get("k"));
    let mut rng = registry::rng(seed);
    let rows = random::blocks(QuantType::Q4_1, n * k / 32, &mut rng);
    let mut w = vec![0u8; rows.len()];
    super::q4_1x8::interleave(&rows, n, k, &mut w);
    let x = random::values(&mut rng, m * k);
    Case::new(shape.clone(), vec![Buffer::Bytes(w), Buffer::F32(x)], registry::nan_output(m * n))
}

fn x8_run<const V: usize>(case: &mut Case) {
    let (m, n, k) = (case.shape.get("m"), case.shape.get("n"), case.shape.get("k"));
    let (inputs, y) = case.io();
    let acts = quantize_activations(QuantType::Q8_1, inputs[1].f32(), m, k);
    let f = super::q4_1x8::select(super::q4_1x8::variants()[V])
        .expect("the variant is available (checked by the caller)");
    f(inputs[0].bytes(), QuantType::Q4_1, n, k, &acts, y, n);
}

fn x8_magnitude(case: &Case) -> Vec<f64> {
    let (m, n, k) = (case.shape.get("m"), case.shape.get("n"), case.shape.get("k"));
    let mut rows = vec![0u8; case.inputs[0].bytes().len()];
    super::q4_1x8::deinterleave(case.inputs[0].bytes(), n, k, &mut rows);
    let acts = quantize_activations(QuantType::Q8_1, case.inputs[1].f32(), m, k);
    magnitudes(QuantType::Q4_1, &rows, n, acts.blocks(), m, k)
}

fn x8_info() -> OpInfo {
    OpInfo {
        name: QMATVEC_Q4_1X8,
        summary: "qmatvec_q4_1 on weights interleaved by 8 rows at load (same bytes, reordered: \
                  one load holds 4 quants of 8 rows); w: [n, k] (n a multiple of 8), x: [m, k]",
        unit: Unit::GflopPerS,
        tolerance: DOT_TOLERANCE,
        shapes: x8_shapes,
        prepare: x8_prepare,
        flops: |s| 2.0 * (s.get("m") * s.get("n") * s.get("k")) as f64,
        bytes: |s| {
            let (m, n, k) = (s.get("m"), s.get("n"), s.get("k"));
            (n * k / 32 * 20 + 4 * m * k + 4 * m * n) as f64
        },
        magnitude: Some(x8_magnitude),
    }
}

fn x8_variants() -> Vec<Variant> {
    vec![
        Variant {
            op: QMATVEC_Q4_1X8,
            name: "naive",
            summary: "each 8-row panel de-interleaved to GGUF rows, then the naive qmatvec",
            available: registry::always,
            run: x8_run::<0>,
        },
        Variant {
            op: QMATVEC_Q4_1X8,
            name: "avx2",
            summary:
                "one token: 8 rows per vector, maddubs on 4 quants x 8 rows; more: the 8-row GEMM",
            available: needs_avx2_f16c,
            run: x8_run::<1>,
        },
        Variant {
            op: QMATVEC_Q4_1X8,
            name: "avx512",
            summary: "AVX-512 VNNI: vpdpbusd per 4 quants x 8 rows (one token); \
                      16-row zmm GEMM, one weight load per 2 tokens",
            available: registry::needs_avx512_vnni,
            run: x8_run::<2>,
        },
    ]
}

// ---------------------------------------------------------------- qmatvec_q8_0x16

/// Op name of the interleaved Q8_0 matmul ([`super::q8_0x16`]).
pub const QMATVEC_Q8_0X16: &str = "qmatvec_q8_0x16";

fn x16_shapes(set: CaseSet) -> Vec<Shape> {
    let shape = |m: usize, n: usize, k: usize| Shape::new(&[("m", m), ("n", n), ("k", k)]);
    let list: &[(usize, usize, usize)] = match set {
        // (m, n, blocks per row): the GEMV (m = 1), a token pair plus one, many tokens
        CaseSet::Test => &[(1, 16, 1), (1, 48, 9), (2, 16, 2), (3, 32, 5), (9, 16, 18)],
        // SmolLM2-135M's vocabulary projection (token_embd, Q8_0): decode, and all 64 logits
        CaseSet::Model => &[(1, 49152, 18), (64, 576, 18)],
        CaseSet::Sweep => &[(1, 49152, 18), (2, 49152, 18), (4, 49152, 18), (8, 49152, 18)],
    };
    list.iter().map(|&(m, n, nb)| shape(m, n, 32 * nb)).collect()
}

fn x16_prepare(shape: &Shape, seed: u64) -> Case {
    let (m, n, k) = (shape.get("m"), shape.get("n"), shape.get("k"));
    let mut rng = registry::rng(seed);
    let rows = random::blocks(QuantType::Q8_0, n * k / 32, &mut rng);
    let mut w = vec![0u8; rows.len()];
    super::q8_0x16::interleave(&rows, n, k, &mut w);
    let x = random::values(&mut rng, m * k);
    Case::new(shape.clone(), vec![Buffer::Bytes(w), Buffer::F32(x)], registry::nan_output(m * n))
}

fn x16_run<const V: usize>(case: &mut Case) {
    let (m, n, k) = (case.shape.get("m"), case.shape.get("n"), case.shape.get("k"));
    let (inputs, y) = case.io();
    let acts = quantize_activations(QuantType::Q8_0, inputs[1].f32(), m, k);
    let f = super::q8_0x16::select(super::q8_0x16::variants()[V])
        .expect("the variant is available (checked by the caller)");
    f(inputs[0].bytes(), QuantType::Q8_0, n, k, &acts, y, n);
}

fn x16_magnitude(case: &Case) -> Vec<f64> {
    let (m, n, k) = (case.shape.get("m"), case.shape.get("n"), case.shape.get("k"));
    let mut rows = vec![0u8; case.inputs[0].bytes().len()];
    super::q8_0x16::deinterleave(case.inputs[0].bytes(), n, k, &mut rows);
    let acts = quantize_activations(QuantType::Q8_0, case.inputs[1].f32(), m, k);
    magnitudes(QuantType::Q8_0, &rows, n, acts.blocks(), m, k)
}

fn x16_info() -> OpInfo {
    OpInfo {
        name: QMATVEC_Q8_0X16,
        summary: "qmatvec_q8_0 on weights interleaved by 16 rows at load (same bytes, reordered: \
                  one 64-byte load holds 4 quants of 16 rows); w: [n, k] (n a multiple of 16), \
                  x: [m, k]",
        unit: Unit::GflopPerS,
        tolerance: DOT_TOLERANCE,
        shapes: x16_shapes,
        prepare: x16_prepare,
        flops: |s| 2.0 * (s.get("m") * s.get("n") * s.get("k")) as f64,
        bytes: |s| {
            let (m, n, k) = (s.get("m"), s.get("n"), s.get("k"));
            (n * k / 32 * 34 + 4 * m * k + 4 * m * n) as f64
        },
        magnitude: Some(x16_magnitude),
    }
}

fn x16_variants() -> Vec<Variant> {
    vec![
        Variant {
            op: QMATVEC_Q8_0X16,
            name: "naive",
            summary: "each 16-row panel de-interleaved to GGUF rows, then the naive qmatvec",
            available: registry::always,
            run: x16_run::<0>,
        },
        Variant {
            op: QMATVEC_Q8_0X16,
            name: "avx512",
            summary: "AVX-512 VNNI: vpdpbusd on 4 quants x 16 rows (weights' sign bit flipped, \
                      the token's sum subtracted), tokens in pairs",
            available: registry::needs_avx512_vnni,
            run: x16_run::<1>,
        },
    ]
}

// ---------------------------------------------------------------- tables

macro_rules! per_type {
    ($f:ident, [$($id:expr),*]) => {{
        let mut v = Vec::new();
        $( v.extend($f::<{ $id }>()); )*
        v
    }};
}

/// Every block-format op: dequantization per format, then dots, then quantized matvecs.
pub fn op_infos() -> Vec<OpInfo> {
    let mut ops = Vec::new();
    ops.extend(per_type!(dequant_info_vec, [1, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 30]));
    ops.extend(per_type!(dot_info_vec, [2, 3, 6, 7, 8, 10, 11, 12, 13, 14]));
    ops.extend(per_type!(qmatvec_info_vec, [2, 3, 6, 7, 8, 10, 11, 12, 13, 14]));
    ops.push(x8_info());
    ops.push(x16_info());
    ops
}

fn dequant_info_vec<const T: u32>() -> Vec<OpInfo> {
    vec![dequant_info::<T>()]
}
fn dot_info_vec<const T: u32>() -> Vec<OpInfo> {
    vec![dot_info::<T>()]
}
fn qmatvec_info_vec<const T: u32>() -> Vec<OpInfo> {
    vec![qmatvec_info::<T>()]
}

/// Every block-format (op, variant).
pub fn variants() -> Vec<Variant> {
    let mut v = Vec::new();
    v.extend(per_type!(dequant_variants, [1, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 30]));
    v.extend(per_type!(dot_variants, [2, 3, 6, 7, 8, 10, 11, 12, 13, 14]));
    v.extend(per_type!(qmatvec_variants, [2, 3, 6, 7, 8, 10, 11, 12, 13, 14]));
    v.extend(x8_variants());
    v.extend(x16_variants());
    v
}

/// `simd`: every dequantization's fastest candidate; `quantized`: every dot and quantized
/// matvec's (the first available wins).
pub fn stage_overrides(stage: &str) -> Vec<(&'static str, &'static [&'static str])> {
    const FAST: &[&str] = &["avx2", "simd"];
    const SIMD: &[&str] = &["simd"];
    match stage {
        "simd" => DEQUANT_TYPES
            .iter()
            .map(|&t| (dequant_op(t), if HAS_AVX2_DEQUANT.contains(&t) { FAST } else { SIMD }))
            .collect(),
        "quantized" => {
            let mut v: Vec<_> = WEIGHT_TYPES
                .iter()
                .flat_map(|&t| [(dot_op(t), FAST), (qmatvec_op(t), FAST)])
                .collect();
            // without AVX2 the model keeps Q4_1 in GGUF rows (it interleaves for a fast
            // variant only)
            v.push((QMATVEC_Q4_1X8, &["avx512", "avx2", "naive"]));
            // without AVX-512 VNNI the model keeps Q8_0 in GGUF rows (qmatvec_q8_0 avx2)
            v.push((QMATVEC_Q8_0X16, &["avx512", "naive"]));
            v
        }
        _ => Vec::new(),
    }
}
