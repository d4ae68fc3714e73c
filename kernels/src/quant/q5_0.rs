//! Q5_0 (GGUF type 6): 32 values per 22-byte block, `x = d·(q − 16)`, q in 0..=31.
//!
//! ```text
//! byte  0      2           6                                   22
//!       +------+-----------+-----------------------------------+
//!       | d f16| qh u32 LE | qs[16]                            |
//!       +------+-----------+-----------------------------------+
//! q[j]    = (qs[j] & 15) | bit j      of qh << 4     (j = 0..16)
//! q[j+16] = (qs[j] >> 4) | bit j + 16 of qh << 4
//! ```
//! Pairs with Q8_0 activations.

use super::block::{self, assert_dequant_len, assert_dot_len, assert_quant_len, f16_field, Block};
use super::f16::f32_to_f16;
use super::q8_0::BlockQ8_0;
use super::QuantType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockQ5_0 {
    pub d: [u8; 2],
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}
const _: () =
    assert!(std::mem::size_of::<BlockQ5_0>() == 22 && std::mem::align_of::<BlockQ5_0>() == 1);

// SAFETY: repr(C), byte arrays only, 22 bytes.
unsafe impl Block for BlockQ5_0 {
    const TYPE: QuantType = QuantType::Q5_0;
    const ELEMS: usize = 32;
}

impl BlockQ5_0 {
    /// The 32 quants (0..=31) in value order.
    #[inline(always)]
    pub fn unpack(&self) -> [u8; 32] {
        let qh = u32::from_le_bytes(self.qh);
        let mut q = [0u8; 32];
        for j in 0..16 {
            q[j] = (self.qs[j] & 0x0f) | (((qh >> j) & 1) << 4) as u8;
            q[j + 16] = (self.qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4) as u8;
        }
        q
    }
}

/// `y = d·(q − 16)`: the specification.
pub fn dequantize_naive(blocks: &[BlockQ5_0], y: &mut [f32]) {
    assert_dequant_len(QuantType::Q5_0, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(32)) {
        let d = f16_field(b.d);
        for (j, &q) in b.unpack().iter().enumerate() {
            ys[j] = d * (q as i32 - 16) as f32;
        }
    }
}

/// `y = d·(q − 16)` with `f32x8`.
pub fn dequantize_simd(blocks: &[BlockQ5_0], y: &mut [f32]) {
    assert_dequant_len(QuantType::Q5_0, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(32)) {
        let q = b.unpack().map(|q| q as i8 - 16);
        block::scale_i8(ys, &q, f16_field(b.d));
    }
}

/// ggml's reference quantization (`quantize_row_q5_0_ref`): `d = max/−16` (`max` the value of
/// largest magnitude), `q = min(31, trunc(x/d + 16.5))`.
pub fn quantize(x: &[f32], blocks: &mut [BlockQ5_0]) {
    assert_quant_len(QuantType::Q5_0, x, blocks.len());
    for (xs, b) in x.chunks_exact(32).zip(blocks.iter_mut()) {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in xs {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f32_to_f16(d).to_le_bytes();
        let mut qh = 0u32;
        for j in 0..16 {
            let q0 = ((xs[j] * id + 16.5) as i8).min(31) as u8;
            let q1 = ((xs[j + 16] * id + 16.5) as i8).min(31) as u8;
            b.qs[j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
            qh |= (((q0 & 0x10) >> 4) as u32) << j;
            qh |= (((q1 & 0x10) >> 4) as u32) << (j + 16);
        }
        b.qh = qh.to_le_bytes();
    }
}

/// `Σ_blocks d_w·d_a·Σ (q_w − 16)·q_a`, integer sums per block, f64 across blocks.
pub fn vec_dot_q5_0_q8_0_naive(w: &[BlockQ5_0], a: &[BlockQ8_0]) -> f32 {
    assert_dot_len(QuantType::Q5_0, w.len(), QuantType::Q8_0, a.len());
    let mut sum = 0.0f64;
    for (bw, ba) in w.iter().zip(a) {
        let q = bw.unpack();
        let isum: i32 = (0..32).map(|j| (q[j] as i32 - 16) * ba.qs[j] as i32).sum();
        sum += (f16_field(bw.d) * f16_field(ba.d)) as f64 * isum as f64;
    }
    sum as f32
}

/// As naive, block dots with `wide`, f32 accumulation.
pub fn vec_dot_q5_0_q8_0_simd(w: &[BlockQ5_0], a: &[BlockQ8_0]) -> f32 {
    assert_dot_len(QuantType::Q5_0, w.len(), QuantType::Q8_0, a.len());
    let mut sum = 0.0f32;
    for (bw, ba) in w.iter().zip(a) {
        let q = bw.unpack().map(|q| q as i8 - 16);
        sum += (f16_field(bw.d) * f16_field(ba.d)) * block::dot_i8_32(&q, &ba.qs) as f32;
    }
    sum
}
