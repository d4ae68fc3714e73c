//! Q4_0 (GGUF type 2): 32 values per 18-byte block, `x = d·(q − 8)`, q in 0..=15.
//!
//! ```text
//! byte  0      2                                   18
//!       +------+-----------------------------------+
//!       | d f16| qs[16]                            |
//!       +------+-----------------------------------+
//! qs[j] = q[j] | q[j+16] << 4      (j = 0..16: low nibbles are values 0..15, high 16..31)
//! ```
//! Pairs with Q8_0 activations.

use super::block::{self, assert_dequant_len, assert_dot_len, assert_quant_len, f16_field, Block};
use super::f16::f32_to_f16;
use super::q8_0::BlockQ8_0;
use super::QuantType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockQ4_0 {
    pub d: [u8; 2],
    pub qs: [u8; 16],
}
const _: () =
    assert!(std::mem::size_of::<BlockQ4_0>() == 18 && std::mem::align_of::<BlockQ4_0>() == 1);

// SAFETY: repr(C), byte arrays only, 18 bytes.
unsafe impl Block for BlockQ4_0 {
    const TYPE: QuantType = QuantType::Q4_0;
    const ELEMS: usize = 32;
}

impl BlockQ4_0 {
    /// The 32 quants, offset-free (0..=15), in value order.
    #[inline(always)]
    pub fn unpack(&self) -> [u8; 32] {
        let mut q = [0u8; 32];
        for j in 0..16 {
            q[j] = self.qs[j] & 0x0f;
            q[j + 16] = self.qs[j] >> 4;
        }
        q
    }
}

/// `y = d·(q − 8)`, one value at a time: the specification.
pub fn dequantize_naive(blocks: &[BlockQ4_0], y: &mut [f32]) {
    assert_dequant_len(QuantType::Q4_0, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(32)) {
        let d = f16_field(b.d);
        for (j, &q) in b.unpack().iter().enumerate() {
            ys[j] = d * (q as i32 - 8) as f32;
        }
    }
}

/// `y = d·(q − 8)` with `f32x8` (one rounding, bit-identical to naive).
pub fn dequantize_simd(blocks: &[BlockQ4_0], y: &mut [f32]) {
    assert_dequant_len(QuantType::Q4_0, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(32)) {
        let q = b.unpack().map(|q| q as i8 - 8);
        block::scale_i8(ys, &q, f16_field(b.d));
    }
}

/// ggml's reference quantization (`quantize_row_q4_0_ref`): `d = max/−8` where `max` is the
/// value of largest magnitude (first one on ties), `q = min(15, trunc(x/d + 8.5))`.
pub fn quantize(x: &[f32], blocks: &mut [BlockQ4_0]) {
    assert_quant_len(QuantType::Q4_0, x, blocks.len());
    for (xs, b) in x.chunks_exact(32).zip(blocks.iter_mut()) {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in xs {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f32_to_f16(d).to_le_bytes();
        for j in 0..16 {
            let q0 = ((xs[j] * id + 8.5) as i8).min(15) as u8;
            let q1 = ((xs[j + 16] * id + 8.5) as i8).min(15) as u8;
            b.qs[j] = q0 | (q1 << 4);
        }
    }
}

/// `Σ_blocks d_w·d_a·Σ (q_w − 8)·q_a`, integer sums per block, f64 across blocks.
pub fn vec_dot_q4_0_q8_0_naive(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
    assert_dot_len(QuantType::Q4_0, w.len(), QuantType::Q8_0, a.len());
    let mut sum = 0.0f64;
    for (bw, ba) in w.iter().zip(a) {
        let q = bw.unpack();
        let isum: i32 = (0..32).map(|j| (q[j] as i32 - 8) * ba.qs[j] as i32).sum();
        sum += (f16_field(bw.d) * f16_field(ba.d)) as f64 * isum as f64;
    }
    sum as f32
}

/// As [`vec_dot_q4_0_q8_0_naive`], the block's integer dot with `wide` (i16 multiply-add),
/// f32 accumulation.
pub fn vec_dot_q4_0_q8_0_simd(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
    assert_dot_len(QuantType::Q4_0, w.len(), QuantType::Q8_0, a.len());
    let mut sum = 0.0f32;
    for (bw, ba) in w.iter().zip(a) {
        let q = bw.unpack().map(|q| q as i8 - 8);
        sum += (f16_field(bw.d) * f16_field(ba.d)) * block::dot_i8_32(&q, &ba.qs) as f32;
    }
    sum
}
