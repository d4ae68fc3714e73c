//! f32 ops, one file per op. Each file exposes its variants as functions with one
//! signature over slices, a `pub type XxxFn` and `select(variant) -> Option<XxxFn>` for the
//! model (gathered in [`KernelSet`]), plus `op_infos()` and `variants()` for the registry.

pub mod activations;
pub mod attention;
pub mod elementwise;
pub mod fast_math;
pub mod ggml;
pub mod ggml_simd;
pub mod ggml_tiled;
pub mod kernel_set;
pub mod layer_norm;
pub mod libc_expf;
pub mod linear;
pub mod linear_packed;
pub mod rms_norm;
pub mod rope;
pub mod softmax;

pub use kernel_set::KernelSet;

use crate::registry::{OpInfo, Variant};

/// Sizes for correctness tests of 1-D ops (CONVENTIONS.md 9).
pub const TEST_LENGTHS: [usize; 20] =
    [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 127, 129, 255, 1023, 4097];

/// Every f32 op, in the order tables print them.
pub fn op_infos() -> Vec<OpInfo> {
    let mut ops = linear::op_infos();
    ops.extend(linear_packed::op_infos());
    ops.extend(elementwise::op_infos());
    ops.extend(activations::op_infos());
    ops.extend(rms_norm::op_infos());
    ops.extend(layer_norm::op_infos());
    ops.extend(rope::op_infos());
    ops.extend(softmax::op_infos());
    ops.extend(attention::op_infos());
    ops
}

/// Every f32 (op, variant).
pub fn variants() -> Vec<Variant> {
    let mut v = linear::variants();
    v.extend(linear_packed::variants());
    v.extend(elementwise::variants());
    v.extend(activations::variants());
    v.extend(rms_norm::variants());
    v.extend(layer_norm::variants());
    v.extend(rope::variants());
    v.extend(softmax::variants());
    v.extend(attention::variants());
    v
}

/// The f32 variants a built-in stage chooses: `(op, candidates in order of preference)`;
/// the first candidate available on this CPU wins.
///
/// - `matrixmultiply`: linear through `matrixmultiply::sgemm`;
/// - `simd`: every f32 op's fastest variants (hand-written AVX-512 or AVX2 first, then
///   portable `wide`); attention is the naive algorithm vectorized (scores materialized,
///   softmax, `P·V`), so the step to `flash` measures the flash algorithm itself;
/// - `flash`: attention by online softmax over KV tiles (with AVX2/FMA `flash_avx2`, the
///   `simd` variant's register blocks around the online softmax, so the step measures the
///   algorithm, not other micro-kernels);
/// - `quantized`: rms_norm, silu_mul and rope with llama.cpp's arithmetic ([`ggml`]; silu_mul
///   in ggml's AVX-512 form where the CPU has it, the same bits).
pub fn stage_overrides(stage: &str) -> Vec<(&'static str, &'static [&'static str])> {
    const SIMD: &[&str] = &["simd"];
    match stage {
        "matrixmultiply" => vec![("linear", &["matrixmultiply"])],
        "simd" => vec![
            ("linear", &["avx2", "simd"]),
            ("linear_packed", &["avx2"]),
            ("rms_norm", SIMD),
            ("layer_norm", SIMD),
            ("add", SIMD),
            ("mul", SIMD),
            ("scale", SIMD),
            ("sigmoid", SIMD),
            ("silu", SIMD),
            ("silu_inplace", SIMD),
            ("silu_mul", &["avx512", "simd"]),
            ("gelu", SIMD),
            ("rope", SIMD),
            ("softmax", SIMD),
            ("attention", &["simd", "naive"]),
        ],
        "flash" => vec![("attention", &["flash_avx2", "flash"])],
        // llama.cpp's arithmetic for the ops around the quantized matmuls (see `ggml`): with
        // Q8 activations only bit-identical arithmetic gives llama.cpp's logits
        "quantized" => {
            vec![
                ("rms_norm", &["ggml"]),
                ("silu_mul", &["ggml_avx512", "ggml"]),
                ("rope", &["ggml"]),
            ]
        }
        _ => Vec::new(),
    }
}
