//! Q8_1 (GGUF type 9): 32 values per 36-byte block, `x = d·q`, plus `s = d·Σq` so a dot with a
//! weight format that has a minimum (`x_w = d_w·q_w + m_w`) needs no second pass.
//!
//! ```text
//! byte  0      2      4                                            36
//!       +------+------+--------------------------------------------+
//!       | d f16| s f16| qs[32] i8, value order                     |
//!       +------+------+--------------------------------------------+
//! ```
//! Activations for Q4_1 and Q5_1 weights.

use super::block::{self, assert_dequant_len, assert_quant_len, f16_field, round_half_away, Block};
use super::f16::f32_to_f16;
use super::QuantType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockQ8_1 {
    pub d: [u8; 2],
    pub s: [u8; 2],
    pub qs: [i8; 32],
}
const _: () =
    assert!(std::mem::size_of::<BlockQ8_1>() == 36 && std::mem::align_of::<BlockQ8_1>() == 1);

// SAFETY: repr(C), byte arrays only, 36 bytes.
unsafe impl Block for BlockQ8_1 {
    const TYPE: QuantType = QuantType::Q8_1;
    const ELEMS: usize = 32;
}

/// `y = d·q`: the specification.
pub fn dequantize_naive(blocks: &[BlockQ8_1], y: &mut [f32]) {
    assert_dequant_len(QuantType::Q8_1, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(32)) {
        let d = f16_field(b.d);
        for (yj, &q) in ys.iter_mut().zip(&b.qs) {
            *yj = d * q as f32;
        }
    }
}

/// `y = d·q` with `f32x8`.
pub fn dequantize_simd(blocks: &[BlockQ8_1], y: &mut [f32]) {
    assert_dequant_len(QuantType::Q8_1, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(32)) {
        block::scale_i8(ys, &b.qs, f16_field(b.d));
    }
}

/// ggml's reference quantization (`quantize_row_q8_1_ref`): `d = amax/127`,
/// `q = round(x/d)` half away from zero, `s = d·Σq` (computed in f32, stored as f16).
pub fn quantize(x: &[f32], blocks: &mut [BlockQ8_1]) {
    assert_quant_len(QuantType::Q8_1, x, blocks.len());
    for (xs, b) in x.chunks_exact(32).zip(blocks.iter_mut()) {
        let amax = block::abs_max(xs);
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for (q, &v) in b.qs.iter_mut().zip(xs) {
            // the clamp only acts when 1/d overflows (blocks of subnormal values)
            *q = round_half_away(v * id).clamp(-127.0, 127.0) as i8;
            sum += *q as i32;
        }
        b.d = f32_to_f16(d).to_le_bytes();
        b.s = f32_to_f16(d * sum as f32).to_le_bytes();
    }
}
