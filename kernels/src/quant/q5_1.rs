//! Q5_1 (GGUF type 7): 32 values per 24-byte block, `x = d·q + m`, q in 0..=31.
//!
//! ```text
//! byte  0      2      4           8                                   24
//!       +------+------+-----------+-----------------------------------+
//!       | d f16| m f16| qh u32 LE | qs[16]                            |
//!       +------+------+-----------+-----------------------------------+
//! q[j]    = (qs[j] & 15) | bit j      of qh << 4     (j = 0..16)
//! q[j+16] = (qs[j] >> 4) | bit j + 16 of qh << 4
//! ```
//! Pairs with Q8_1 activations (`+ m_w·s_a` per block).

use super::block::{self, assert_dequant_len, assert_dot_len, assert_quant_len, f16_field, Block};
use super::f16::f32_to_f16;
use super::q8_1::BlockQ8_1;
use super::QuantType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockQ5_1 {
    pub d: [u8; 2],
    pub m: [u8; 2],
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}
const _: () =
    assert!(std::mem::size_of::<BlockQ5_1>() == 24 && std::mem::align_of::<BlockQ5_1>() == 1);

// SAFETY: repr(C), byte arrays only, 24 bytes.
unsafe impl Block for BlockQ5_1 {
    const TYPE: QuantType = QuantType::Q5_1;
    const ELEMS: usize = 32;
}

impl BlockQ5_1 {
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

/// `y = d·q + m` (never fused): the specification.
pub fn dequantize_naive(blocks: &[BlockQ5_1], y: &mut [f32]) {
    assert_dequant_len(QuantType::Q5_1, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(32)) {
        let (d, m) = (f16_field(b.d), f16_field(b.m));
        for (j, &q) in b.unpack().iter().enumerate() {
            ys[j] = d * q as f32 + m;
        }
    }
}

/// `y = d·q + m` with `f32x8`.
pub fn dequantize_simd(blocks: &[BlockQ5_1], y: &mut [f32]) {
    assert_dequant_len(QuantType::Q5_1, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(32)) {
        block::scale_u8_add(ys, &b.unpack(), f16_field(b.d), f16_field(b.m));
    }
}

/// ggml's reference quantization (`quantize_row_q5_1_ref`): `d = (max − min)/31`, `m = min`,
/// `q = min(31, trunc((x − min)/d + 0.5))`.
pub fn quantize(x: &[f32], blocks: &mut [BlockQ5_1]) {
    assert_quant_len(QuantType::Q5_1, x, blocks.len());
    for (xs, b) in x.chunks_exact(32).zip(blocks.iter_mut()) {
        let (mut min, mut max) = (f32::MAX, -f32::MAX);
        for &v in xs {
            min = if v < min { v } else { min };
            max = if v > max { v } else { max };
        }
        let d = (max - min) / 31.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f32_to_f16(d).to_le_bytes();
        b.m = f32_to_f16(min).to_le_bytes();
        let mut qh = 0u32;
        for j in 0..16 {
            let q0 = (((xs[j] - min) * id + 0.5) as i8).min(31) as u8;
            let q1 = (((xs[j + 16] - min) * id + 0.5) as i8).min(31) as u8;
            b.qs[j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
            qh |= (((q0 & 0x10) >> 4) as u32) << j;
            qh |= (((q1 & 0x10) >> 4) as u32) << (j + 16);
        }
        b.qh = qh.to_le_bytes();
    }
}

/// `Σ_blocks (d_w·d_a·Σ q_w·q_a + m_w·s_a)`, integer sums per block, f64 across blocks.
pub fn vec_dot_q5_1_q8_1_naive(w: &[BlockQ5_1], a: &[BlockQ8_1]) -> f32 {
    assert_dot_len(QuantType::Q5_1, w.len(), QuantType::Q8_1, a.len());
    let mut sum = 0.0f64;
    for (bw, ba) in w.iter().zip(a) {
        let q = bw.unpack();
        let isum: i32 = (0..32).map(|j| q[j] as i32 * ba.qs[j] as i32).sum();
        sum += (f16_field(bw.d) * f16_field(ba.d)) as f64 * isum as f64;
        sum += f16_field(bw.m) as f64 * f16_field(ba.s) as f64;
    }
    sum as f32
}

/// As naive, block dots with `wide`, f32 accumulation.
pub fn vec_dot_q5_1_q8_1_simd(w: &[BlockQ5_1], a: &[BlockQ8_1]) -> f32 {
    assert_dot_len(QuantType::Q5_1, w.len(), QuantType::Q8_1, a.len());
    let mut sum = 0.0f32;
    for (bw, ba) in w.iter().zip(a) {
        let q = bw.unpack().map(|q| q as i8);
        sum += (f16_field(bw.d) * f16_field(ba.d)) * block::dot_i8_32(&q, &ba.qs) as f32;
        sum += f16_field(bw.m) * f16_field(ba.s);
    }
    sum
}
