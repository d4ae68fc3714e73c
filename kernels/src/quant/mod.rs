//! GGUF block formats: one file per format (layout, quantize, dequantize, vec_dot).

use crate::registry::{OpInfo, Variant};

/// Every block-format op (dequantization per format, dot products, quantized matvec).
pub fn op_infos() -> Vec<OpInfo> {
    Vec::new()
}

/// Every block-format (op, variant).
pub fn variants() -> Vec<Variant> {
    Vec::new()
}
