//! Q8_0 (GGUF type 8): 32 values per 34-byte block, `x = d·q`, q in −127..=127 (the
//! quantizer never writes −128; the AVX2 kernels rely on that, as ggml's do).
//!
//! ```text
//! byte  0      2                                                   34
//!       +------+---------------------------------------------------+
//!       | d f16| qs[32] i8, value order                            |
//!       +------+---------------------------------------------------+
//! ```
//! Weights (the SmolLM2 embedding) and activations for Q4_0, Q5_0 and Q8_0 weights.

use super::block::{
    self, assert_dequant_len, assert_dot_len, assert_quant_len, f16_field, round_half_away, Block,
};
use super::f16::f32_to_f16;
use super::QuantType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockQ8_0 {
    pub d: [u8; 2],
    pub qs: [i8; 32],
}
const _: () =
    assert!(std::mem::size_of::<BlockQ8_0>() == 34 && std::mem::align_of::<BlockQ8_0>() == 1);

// SAFETY: repr(C), byte arrays only, 34 bytes.
unsafe impl Block for BlockQ8_0 {
    const TYPE: QuantType = QuantType::Q8_0;
    const ELEMS: usize = 32;
}

/// `y = d·q`: the specification.
pub fn dequantize_naive(blocks: &[BlockQ8_0], y: &mut [f32]) {
    assert_dequant_len(QuantType::Q8_0, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(32)) {
        let d = f16_field(b.d);
        for (yj, &q) in ys.iter_mut().zip(&b.qs) {
            *yj = d * q as f32;
        }
    }
}

/// `y = d·q` with `f32x8`.
pub fn dequantize_simd(blocks: &[BlockQ8_0], y: &mut [f32]) {
    assert_dequant_len(QuantType::Q8_0, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(32)) {
        block::scale_i8(ys, &b.qs, f16_field(b.d));
    }
}

/// ggml's reference quantization (`quantize_row_q8_0_ref`): `d = amax/127`,
/// `q = round(x/d)` half away from zero; also returns nothing else.
pub fn quantize(x: &[f32], blocks: &mut [BlockQ8_0]) {
    assert_quant_len(QuantType::Q8_0, x, blocks.len());
    for (xs, b) in x.chunks_exact(32).zip(blocks.iter_mut()) {
        let amax = block::abs_max(xs);
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f32_to_f16(d).to_le_bytes();
        for (q, &v) in b.qs.iter_mut().zip(xs) {
            // the clamp only acts when 1/d overflows (blocks of subnormal values)
            *q = round_half_away(v * id).clamp(-127.0, 127.0) as i8;
        }
    }
}

/// `Σ_blocks d_w·d_a·Σ q_w·q_a`, integer sums per block, f64 across blocks.
pub fn vec_dot_q8_0_q8_0_naive(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    assert_dot_len(QuantType::Q8_0, w.len(), QuantType::Q8_0, a.len());
    let mut sum = 0.0f64;
    for (bw, ba) in w.iter().zip(a) {
        let isum: i32 = bw.qs.iter().zip(&ba.qs).map(|(&x, &y)| x as i32 * y as i32).sum();
        sum += (f16_field(bw.d) * f16_field(ba.d)) as f64 * isum as f64;
    }
    sum as f32
}

/// As naive, block dots with `wide`, f32 accumulation.
pub fn vec_dot_q8_0_q8_0_simd(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    assert_dot_len(QuantType::Q8_0, w.len(), QuantType::Q8_0, a.len());
    let mut sum = 0.0f32;
    for (bw, ba) in w.iter().zip(a) {
        sum += (f16_field(bw.d) * f16_field(ba.d)) * block::dot_i8_32(&bw.qs, &ba.qs) as f32;
    }
    sum
}
