//! GGUF block formats: one file per format (layout, quantize, dequantize, vec_dot).

mod types;

pub use types::{QuantType, ALL_TYPES};

use crate::registry::{OpInfo, Variant};

/// Every block-format op (dequantization per format, dot products, quantized matvec).
pub fn op_infos() -> Vec<OpInfo> {
    Vec::new()
}

/// Every block-format (op, variant).
pub fn variants() -> Vec<Variant> {
    Vec::new()
}

/// The block-format variants a built-in stage chooses (see [`crate::ops::stage_overrides`]).
pub fn stage_overrides(_stage: &str) -> Vec<(&'static str, &'static [&'static str])> {
    Vec::new()
}
