//! GGUF block formats: one file per format (layout drawn in a comment, reference
//! quantization, dequantization, quantized dot products), the quantized matmul driver, and
//! their registry entries.
//!
//! The typed API the model calls:
//! - [`dequantize_row`] (fastest variant) / [`dequantize_row_variant`]: blocks → f32.
//! - [`quantize_row`]: f32 → blocks (ggml's reference quantizers).
//! - [`QuantType::activation_type`]: the activation format each weight format pairs with.
//! - [`quantize_activations`] then [`qmatmul`] (or [`select_qmatmul`] once, then call the
//!   [`QMatmulFn`]): `y[t, r] = Σ_k w[r, k]·x[t, k]` on the blocks, no dequantization.
//! - [`f16`]: exact f16/bf16 ↔ f32 conversions.
//!
//! A stage picks the qmatmul variant once: `stage.variant(qmatvec_op(wtype)).name` (e.g.
//! `"avx2"` in the `quantized` stage) → [`select_qmatmul`] → a [`QMatmulFn`] to call per layer.
//!
//! [`q4_1x8`] is a load-time layout of Q4_1 matrices (8 rows interleaved, same bytes) with its
//! own op, `qmatvec_q4_1x8`: the model uses it when the stage picks a fast variant of it
//! (`avx512` where the CPU has AVX-512 VNNI, else `avx2`). [`q8_0x16`] is the same for Q8_0
//! (16 rows interleaved, op `qmatvec_q8_0x16`), used where its `avx512` variant runs.

// Block layouts are defined by index formulas (value i lives at byte f(i)); the loops say so.
#![allow(clippy::needless_range_loop)]

pub mod block;
mod entries;
pub mod f16;
pub mod legacy;
pub mod matmul;
pub mod q2_k;
pub mod q3_k;
pub mod q4_0;
pub mod q4_1;
pub mod q4_1x8;
pub mod q4_k;
pub mod q5_0;
pub mod q5_1;
pub mod q5_k;
pub mod q6_k;
pub mod q8_0;
pub mod q8_0x16;
pub mod q8_1;
pub mod q8_k;
pub mod random;
mod types;

use std::fmt;

pub use block::{as_blocks, as_blocks_mut, blocks_as_bytes, Block};
pub use entries::{
    dequant_op, dot_op, op_infos, qmatvec_op, stage_overrides, variants, QMATVEC_Q4_1X8,
    QMATVEC_Q8_0X16,
};
pub use matmul::{
    best_qmatmul_variant, gemm_min_m, qmatmul, qmatmul_variants, quantize_activations,
    quantize_activations_into, quantize_q8_ggml, select_qmatmul, try_quantize_activations,
    QMatmulFn, QuantizedActs,
};
pub use types::{QuantType, ALL_TYPES};

/// The weight formats with a quantized dot product, in id order.
pub const WEIGHT_TYPES: [QuantType; 10] = [
    QuantType::Q4_0,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q5_1,
    QuantType::Q8_0,
    QuantType::Q2K,
    QuantType::Q3K,
    QuantType::Q4K,
    QuantType::Q5K,
    QuantType::Q6K,
];

/// The formats [`dequantize_row`] handles, in id order.
pub const DEQUANT_TYPES: [QuantType; 14] = [
    QuantType::F16,
    QuantType::Q4_0,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q5_1,
    QuantType::Q8_0,
    QuantType::Q8_1,
    QuantType::Q2K,
    QuantType::Q3K,
    QuantType::Q4K,
    QuantType::Q5K,
    QuantType::Q6K,
    QuantType::Q8K,
    QuantType::BF16,
];

/// The formats [`quantize_row`] can produce.
pub const QUANTIZE_TYPES: [QuantType; 12] = [
    QuantType::F16,
    QuantType::Q4_0,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q5_1,
    QuantType::Q8_0,
    QuantType::Q8_1,
    QuantType::Q3K,
    QuantType::Q4K,
    QuantType::Q6K,
    QuantType::Q8K,
    QuantType::BF16,
];

/// A misuse of the block-format API caught at its boundary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuantError {
    /// A row of `elems` values is not a whole number of `block_elems`-value blocks.
    NotWholeBlocks { ty: QuantType, elems: usize, block_elems: usize },
    /// A byte buffer is not the size the element count implies.
    ByteLength { ty: QuantType, what: &'static str, expected: usize, got: usize },
    /// An f32 buffer is not the length the block count implies.
    ValueLength { ty: QuantType, what: &'static str, expected: usize, got: usize },
    /// The type has no such operation here.
    Unsupported { ty: QuantType, what: &'static str },
}

impl fmt::Display for QuantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuantError::NotWholeBlocks { ty, elems, block_elems } => write!(
                f,
                "{ty}: a row of {elems} values is not a whole number of {block_elems}-value blocks"
            ),
            QuantError::ByteLength { ty, what, expected, got } => {
                write!(f, "{ty}: {what} has {got} bytes, expected {expected}")
            }
            QuantError::ValueLength { ty, what, expected, got } => {
                write!(f, "{ty}: {what} has {got} values, expected {expected}")
            }
            QuantError::Unsupported { ty, what } => write!(f, "{ty}: no {what} for this type"),
        }
    }
}

impl std::error::Error for QuantError {}

/// Checks that `src` holds whole blocks of `t` and that `dst` has their values.
pub fn check_dequant(t: QuantType, src: &[u8], dst: &[f32]) -> Result<(), QuantError> {
    if !DEQUANT_TYPES.contains(&t) && t != QuantType::F32 {
        return Err(QuantError::Unsupported { ty: t, what: "dequantization" });
    }
    if !src.len().is_multiple_of(t.block_bytes()) {
        return Err(QuantError::ByteLength {
            ty: t,
            what: "the source (not whole blocks)",
            expected: src.len() / t.block_bytes() * t.block_bytes(),
            got: src.len(),
        });
    }
    let values = src.len() / t.block_bytes() * t.block_elems();
    if dst.len() != values {
        return Err(QuantError::ValueLength {
            ty: t,
            what: "the output",
            expected: values,
            got: dst.len(),
        });
    }
    Ok(())
}

/// A dequantizer over bytes: `(src blocks, dst values)`.
pub type DequantFn = fn(&[u8], &mut [f32]);

fn f32_copy(src: &[u8], dst: &mut [f32]) {
    for (y, b) in dst.iter_mut().zip(src.chunks_exact(4)) {
        *y = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

macro_rules! dequant_fn {
    ($module:ident, $func:ident) => {
        |src: &[u8], dst: &mut [f32]| $module::$func(as_blocks(src), dst)
    };
}

/// The dequantizer of `t` named `variant` (`naive`, `simd`, `avx2` where one exists), if it
/// exists and runs on this CPU.
pub fn dequant_fn(t: QuantType, variant: &str) -> Option<DequantFn> {
    let cpu = crate::cpu::detected();
    let avx2 = cpu.has_avx2_f16c();
    let f: DequantFn = match (t, variant) {
        (QuantType::F32, "naive" | "simd") => f32_copy,
        (QuantType::F16, "naive") => f16::dequantize_f16_naive,
        (QuantType::F16, "simd") => f16::dequantize_f16_simd,
        (QuantType::F16, "avx2") if avx2 => f16::dequantize_f16_avx2,
        (QuantType::Q4_0, "avx2") if avx2 => {
            |s: &[u8], d: &mut [f32]| dequant_avx2(QuantType::Q4_0, s, d)
        }
        (QuantType::Q4_1, "avx2") if avx2 => {
            |s: &[u8], d: &mut [f32]| dequant_avx2(QuantType::Q4_1, s, d)
        }
        (QuantType::Q5_0, "avx2") if avx2 => {
            |s: &[u8], d: &mut [f32]| dequant_avx2(QuantType::Q5_0, s, d)
        }
        (QuantType::Q5_1, "avx2") if avx2 => {
            |s: &[u8], d: &mut [f32]| dequant_avx2(QuantType::Q5_1, s, d)
        }
        (QuantType::Q8_0, "avx2") if avx2 => {
            |s: &[u8], d: &mut [f32]| dequant_avx2(QuantType::Q8_0, s, d)
        }
        (QuantType::Q8_1, "avx2") if avx2 => {
            |s: &[u8], d: &mut [f32]| dequant_avx2(QuantType::Q8_1, s, d)
        }
        (QuantType::BF16, "naive") => f16::dequantize_bf16_naive,
        (QuantType::BF16, "simd") => f16::dequantize_bf16_simd,
        (QuantType::Q4_0, "naive") => {
            |s, y| legacy::dequantize_symmetric_naive::<q4_0::BlockQ4_0>(as_blocks(s), y)
        }
        (QuantType::Q4_0, "simd") => {
            |s, y| legacy::dequantize_symmetric_simd::<q4_0::BlockQ4_0>(as_blocks(s), y)
        }
        (QuantType::Q4_1, "naive") => {
            |s, y| legacy::dequantize_affine_naive::<q4_1::BlockQ4_1>(as_blocks(s), y)
        }
        (QuantType::Q4_1, "simd") => {
            |s, y| legacy::dequantize_affine_simd::<q4_1::BlockQ4_1>(as_blocks(s), y)
        }
        (QuantType::Q5_0, "naive") => {
            |s, y| legacy::dequantize_symmetric_naive::<q5_0::BlockQ5_0>(as_blocks(s), y)
        }
        (QuantType::Q5_0, "simd") => {
            |s, y| legacy::dequantize_symmetric_simd::<q5_0::BlockQ5_0>(as_blocks(s), y)
        }
        (QuantType::Q5_1, "naive") => {
            |s, y| legacy::dequantize_affine_naive::<q5_1::BlockQ5_1>(as_blocks(s), y)
        }
        (QuantType::Q5_1, "simd") => {
            |s, y| legacy::dequantize_affine_simd::<q5_1::BlockQ5_1>(as_blocks(s), y)
        }
        (QuantType::Q8_0, "naive") => dequant_fn!(q8_0, dequantize_naive),
        (QuantType::Q8_0, "simd") => dequant_fn!(q8_0, dequantize_simd),
        (QuantType::Q8_1, "naive") => dequant_fn!(q8_1, dequantize_naive),
        (QuantType::Q8_1, "simd") => dequant_fn!(q8_1, dequantize_simd),
        (QuantType::Q2K, "naive") => dequant_fn!(q2_k, dequantize_naive),
        (QuantType::Q2K, "simd") => dequant_fn!(q2_k, dequantize_simd),
        (QuantType::Q3K, "naive") => dequant_fn!(q3_k, dequantize_naive),
        (QuantType::Q3K, "simd") => dequant_fn!(q3_k, dequantize_simd),
        (QuantType::Q4K, "naive") => {
            |s, y| q4_k::dequantize_naive::<q4_k::BlockQ4K>(as_blocks(s), y)
        }
        (QuantType::Q4K, "simd") => |s, y| q4_k::dequantize_simd::<q4_k::BlockQ4K>(as_blocks(s), y),
        (QuantType::Q5K, "naive") => {
            |s, y| q4_k::dequantize_naive::<q5_k::BlockQ5K>(as_blocks(s), y)
        }
        (QuantType::Q5K, "simd") => |s, y| q4_k::dequantize_simd::<q5_k::BlockQ5K>(as_blocks(s), y),
        (QuantType::Q6K, "naive") => dequant_fn!(q6_k, dequantize_naive),
        (QuantType::Q6K, "simd") => dequant_fn!(q6_k, dequantize_simd),
        (QuantType::Q8K, "naive") => dequant_fn!(q8_k, dequantize_naive),
        (QuantType::Q8K, "simd") => dequant_fn!(q8_k, dequantize_simd),
        _ => return None,
    };
    Some(f)
}

/// The 32-value formats with AVX2 (`check_dequant` has been applied by every caller).
fn dequant_avx2(t: QuantType, src: &[u8], dst: &mut [f32]) {
    let cpu = crate::cpu::detected();
    assert!(cpu.has_avx2_f16c(), "dequantize avx2: the CPU lacks AVX2/FMA/F16C");
    assert_eq!(dst.len(), src.len() / t.block_bytes() * 32, "dequantize {t}: output length");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX2/FMA/F16C present (asserted); lengths asserted above.
    unsafe {
        crate::arch::quant_avx2::dequantize_32(t, src, dst)
    }
}

/// The fastest dequantizer of `t` available here (`avx2` where one exists, else `simd`).
pub fn best_dequant_fn(t: QuantType) -> Option<DequantFn> {
    dequant_fn(t, "avx2").or_else(|| dequant_fn(t, "simd"))
}

/// Dequantizes a row of blocks of type `t` (as they sit in a GGUF tensor, any alignment) into
/// `dst`, with the fastest variant available on this CPU.
///
/// Panics, naming the type and the lengths, if `src` is not whole blocks, `dst` is not their
/// value count, or `t` cannot be dequantized (see [`try_dequantize_row`] for a `Result`).
pub fn dequantize_row(t: QuantType, src: &[u8], dst: &mut [f32]) {
    try_dequantize_row(t, src, dst).unwrap_or_else(|e| panic!("dequantize_row: {e}"));
}

/// [`dequantize_row`] returning the contract violation as an error.
pub fn try_dequantize_row(t: QuantType, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    check_dequant(t, src, dst)?;
    let f = best_dequant_fn(t).ok_or(QuantError::Unsupported { ty: t, what: "dequantization" })?;
    f(src, dst);
    Ok(())
}

/// [`dequantize_row`] with a named variant (`naive`, `simd`, `avx2`); panics if that variant
/// does not exist for `t` or cannot run here.
pub fn dequantize_row_variant(t: QuantType, variant: &str, src: &[u8], dst: &mut [f32]) {
    check_dequant(t, src, dst).unwrap_or_else(|e| panic!("dequantize_row: {e}"));
    let f = dequant_fn(t, variant)
        .unwrap_or_else(|| panic!("dequantize_row: {t} has no variant `{variant}` available here"));
    f(src, dst);
}

/// Quantizes `src` into blocks of `t` in `dst` with ggml's reference quantizer (Q4_0, Q4_1,
/// Q5_0, Q5_1, Q8_0, Q8_1, Q8_K) or a reference-quality one (Q3_K, Q4_K, Q6_K; ggml's
/// `*_ref` algorithms), or converts to F16/BF16.
pub fn quantize_row(t: QuantType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    let bytes = t.row_bytes(src.len())?;
    if dst.len() != bytes {
        return Err(QuantError::ByteLength {
            ty: t,
            what: "the output",
            expected: bytes,
            got: dst.len(),
        });
    }
    match t {
        QuantType::F16 => f16::quantize_f16(src, dst),
        QuantType::BF16 => f16::quantize_bf16(src, dst),
        QuantType::Q4_0 => legacy::quantize_symmetric::<q4_0::BlockQ4_0>(src, as_blocks_mut(dst)),
        QuantType::Q4_1 => legacy::quantize_affine::<q4_1::BlockQ4_1>(src, as_blocks_mut(dst)),
        QuantType::Q5_0 => legacy::quantize_symmetric::<q5_0::BlockQ5_0>(src, as_blocks_mut(dst)),
        QuantType::Q5_1 => legacy::quantize_affine::<q5_1::BlockQ5_1>(src, as_blocks_mut(dst)),
        QuantType::Q8_0 => q8_0::quantize(src, as_blocks_mut(dst)),
        QuantType::Q8_1 => q8_1::quantize(src, as_blocks_mut(dst)),
        QuantType::Q3K => q3_k::quantize(src, as_blocks_mut(dst)),
        QuantType::Q4K => q4_k::quantize(src, as_blocks_mut(dst)),
        QuantType::Q6K => q6_k::quantize(src, as_blocks_mut(dst)),
        QuantType::Q8K => q8_k::quantize(src, as_blocks_mut(dst)),
        _ => return Err(QuantError::Unsupported { ty: t, what: "quantizer" }),
    }
    Ok(())
}

/// A quantized dot product over bytes: `(weight blocks, activation blocks) → Σ w·a`.
pub type DotFn = fn(&[u8], &[u8]) -> f32;

macro_rules! dot_fn {
    ($module:ident, $func:ident) => {
        |w: &[u8], a: &[u8]| $module::$func(as_blocks(w), as_blocks(a))
    };
}

/// The `naive` or `simd` dot product of weight format `w` with its activation format.
pub fn dot_fn(w: QuantType, variant: &str) -> Option<DotFn> {
    let f: DotFn = match (w, variant) {
        (QuantType::Q4_0, "naive") => {
            |w, a| legacy::vec_dot_symmetric_naive::<q4_0::BlockQ4_0>(as_blocks(w), as_blocks(a))
        }
        (QuantType::Q4_0, "simd") => {
            |w, a| legacy::vec_dot_symmetric_simd::<q4_0::BlockQ4_0>(as_blocks(w), as_blocks(a))
        }
        (QuantType::Q4_1, "naive") => {
            |w, a| legacy::vec_dot_affine_naive::<q4_1::BlockQ4_1>(as_blocks(w), as_blocks(a))
        }
        (QuantType::Q4_1, "simd") => {
            |w, a| legacy::vec_dot_affine_simd::<q4_1::BlockQ4_1>(as_blocks(w), as_blocks(a))
        }
        (QuantType::Q5_0, "naive") => {
            |w, a| legacy::vec_dot_symmetric_naive::<q5_0::BlockQ5_0>(as_blocks(w), as_blocks(a))
        }
        (QuantType::Q5_0, "simd") => {
            |w, a| legacy::vec_dot_symmetric_simd::<q5_0::BlockQ5_0>(as_blocks(w), as_blocks(a))
        }
        (QuantType::Q5_1, "naive") => {
            |w, a| legacy::vec_dot_affine_naive::<q5_1::BlockQ5_1>(as_blocks(w), as_blocks(a))
        }
        (QuantType::Q5_1, "simd") => {
            |w, a| legacy::vec_dot_affine_simd::<q5_1::BlockQ5_1>(as_blocks(w), as_blocks(a))
        }
        (QuantType::Q8_0, "naive") => dot_fn!(q8_0, vec_dot_q8_0_q8_0_naive),
        (QuantType::Q8_0, "simd") => dot_fn!(q8_0, vec_dot_q8_0_q8_0_simd),
        (QuantType::Q2K, "naive") => dot_fn!(q2_k, vec_dot_q2_k_q8_k_naive),
        (QuantType::Q2K, "simd") => dot_fn!(q2_k, vec_dot_q2_k_q8_k_simd),
        (QuantType::Q3K, "naive") => dot_fn!(q3_k, vec_dot_q3_k_q8_k_naive),
        (QuantType::Q3K, "simd") => dot_fn!(q3_k, vec_dot_q3_k_q8_k_simd),
        (QuantType::Q4K, "naive") => {
            |w, a| q4_k::vec_dot_q8_k_naive::<q4_k::BlockQ4K>(as_blocks(w), as_blocks(a))
        }
        (QuantType::Q4K, "simd") => {
            |w, a| q4_k::vec_dot_q8_k_simd::<q4_k::BlockQ4K>(as_blocks(w), as_blocks(a))
        }
        (QuantType::Q5K, "naive") => {
            |w, a| q4_k::vec_dot_q8_k_naive::<q5_k::BlockQ5K>(as_blocks(w), as_blocks(a))
        }
        (QuantType::Q5K, "simd") => {
            |w, a| q4_k::vec_dot_q8_k_simd::<q5_k::BlockQ5K>(as_blocks(w), as_blocks(a))
        }
        (QuantType::Q6K, "naive") => dot_fn!(q6_k, vec_dot_q6_k_q8_k_naive),
        (QuantType::Q6K, "simd") => dot_fn!(q6_k, vec_dot_q6_k_q8_k_simd),
        _ => return None,
    };
    Some(f)
}

/// One quantized dot product `Σ w_i·a_i` of a weight row (blocks of `w`) and an activation
/// row (blocks of `w.activation_type()`), with a named variant (`naive`, `simd`, `avx2`,
/// `avx512`). Panics naming the lengths if the rows disagree, or if the variant does not
/// exist or cannot run here.
pub fn vec_dot(w: QuantType, variant: &str, weights: &[u8], acts: &[u8]) -> f32 {
    let a =
        w.activation_type().unwrap_or_else(|| panic!("vec_dot: {w} has no quantized dot product"));
    let nb = weights.len() / w.block_bytes();
    assert!(
        weights.len().is_multiple_of(w.block_bytes()) && acts.len() == nb * a.block_bytes(),
        "vec_dot {w} x {a}: {} weight bytes and {} activation bytes are not the same whole number of blocks",
        weights.len(),
        acts.len()
    );
    match variant {
        "naive" | "simd" => {
            dot_fn(w, variant).expect("every weight type has naive and simd")(weights, acts)
        }
        "avx2" => {
            assert!(
                select_qmatmul("avx2").is_some(),
                "vec_dot: variant `avx2` is not available on this CPU"
            );
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX2/FMA/F16C are present (checked) and the block counts agree (asserted).
            return unsafe { crate::arch::quant_avx2::vec_dot(w, weights, acts) };
            #[cfg(not(target_arch = "x86_64"))]
            unreachable!()
        }
        _ => panic!("vec_dot: unknown variant `{variant}`"),
    }
}
