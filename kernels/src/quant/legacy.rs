//! The arithmetic of the four 32-value legacy formats, written once.
//!
//! | format | bits | value | activations |
//! |---|---|---|---|
//! | Q4_0 | 4 | `d·(q − 8)` | Q8_0 |
//! | Q5_0 | 5 | `d·(q − 16)` | Q8_0 |
//! | Q4_1 | 4 | `d·q + m` | Q8_1 (`+ m_w·s_a` per block) |
//! | Q5_1 | 5 | `d·q + m` | Q8_1 |
//!
//! A format's file holds its block layout and how its quants are packed ([`Legacy`]); the
//! functions here are generic over that: dequantization (naive and simd), ggml's reference
//! quantization, and the dot products with the activation format (naive and simd).

use super::block::{self, assert_dequant_len, assert_dot_len, assert_quant_len, f16_field, Block};
use super::f16::f32_to_f16;
use super::q8_0::BlockQ8_0;
use super::q8_1::BlockQ8_1;
use super::QuantType;

/// A 32-value block with 16 or 32 quant levels.
pub trait Legacy: Block {
    /// 16 (4 bits) or 32 (5 bits).
    const LEVELS: u8;
    /// The 32 quants (`0..LEVELS`) in value order.
    fn unpack(&self) -> [u8; 32];
    /// Stores 32 quants (`0..LEVELS`) given in value order.
    fn pack(&mut self, q: &[u8; 32]);
}

/// `x = d·(q − LEVELS/2)` (Q4_0, Q5_0).
pub trait Symmetric: Legacy {
    fn d(&self) -> f32;
    fn set_d(&mut self, d: [u8; 2]);
}

/// `x = d·q + m` (Q4_1, Q5_1).
pub trait Affine: Legacy {
    fn d_m(&self) -> (f32, f32);
    fn set_d_m(&mut self, d: [u8; 2], m: [u8; 2]);
}

/// The 4-bit packing: `qs[j] = q[j] | q[j+16] << 4` (low nibbles values 0..16, high 16..32).
#[inline(always)]
pub fn unpack_nibbles(qs: &[u8; 16]) -> [u8; 32] {
    std::array::from_fn(|i| if i < 16 { qs[i] & 0x0f } else { qs[i - 16] >> 4 })
}

/// Inverse of [`unpack_nibbles`] (only the low 4 bits of each quant are kept).
#[inline(always)]
pub fn pack_nibbles(q: &[u8; 32]) -> [u8; 16] {
    std::array::from_fn(|j| (q[j] & 0x0f) | (q[j + 16] << 4))
}

/// The 5-bit packing: the low 4 bits as [`unpack_nibbles`], bit 4 of value `i` in bit `i` of
/// the little-endian `qh`.
#[inline(always)]
pub fn unpack_5bit(qs: &[u8; 16], qh: [u8; 4]) -> [u8; 32] {
    let qh = u32::from_le_bytes(qh);
    let mut q = unpack_nibbles(qs);
    for (i, q) in q.iter_mut().enumerate() {
        *q |= (((qh >> i) & 1) << 4) as u8;
    }
    q
}

/// Inverse of [`unpack_5bit`]: `(qs, qh)`.
#[inline(always)]
pub fn pack_5bit(q: &[u8; 32]) -> ([u8; 16], [u8; 4]) {
    let qh = q.iter().enumerate().fold(0u32, |h, (i, &q)| h | (((q >> 4) & 1) as u32) << i);
    (pack_nibbles(q), qh.to_le_bytes())
}

fn half<B: Legacy>() -> i32 {
    i32::from(B::LEVELS / 2)
}

/// `y = d·(q − LEVELS/2)`, one value at a time: the specification.
pub fn dequantize_symmetric_naive<B: Symmetric>(blocks: &[B], y: &mut [f32]) {
    assert_dequant_len(B::TYPE, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(32)) {
        let d = b.d();
        for (y, &q) in ys.iter_mut().zip(&b.unpack()) {
            *y = d * (q as i32 - half::<B>()) as f32;
        }
    }
}

/// [`dequantize_symmetric_naive`] with `f32x8` (one rounding: bit-identical).
pub fn dequantize_symmetric_simd<B: Symmetric>(blocks: &[B], y: &mut [f32]) {
    assert_dequant_len(B::TYPE, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(32)) {
        let q = b.unpack().map(|q| (q as i32 - half::<B>()) as i8);
        block::scale_i8(ys, &q, b.d());
    }
}

/// ggml's reference quantization (`quantize_row_q4_0_ref`, `…q5_0_ref`): `max` is the value
/// of largest magnitude (the first on ties), `d = max/−(LEVELS/2)`,
/// `q = min(LEVELS − 1, trunc(x/d + LEVELS/2 + 0.5))`.
pub fn quantize_symmetric<B: Symmetric>(x: &[f32], blocks: &mut [B]) {
    assert_quant_len(B::TYPE, x, blocks.len());
    let bias = half::<B>() as f32 + 0.5;
    for (xs, b) in x.chunks_exact(32).zip(blocks.iter_mut()) {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in xs {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -(half::<B>() as f32);
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.set_d(f32_to_f16(d).to_le_bytes());
        b.pack(&std::array::from_fn(|j| {
            ((xs[j] * id + bias) as i8).min(B::LEVELS as i8 - 1) as u8
        }));
    }
}

/// `y = d·q + m` (two roundings, never fused): the specification.
pub fn dequantize_affine_naive<B: Affine>(blocks: &[B], y: &mut [f32]) {
    assert_dequant_len(B::TYPE, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(32)) {
        let (d, m) = b.d_m();
        for (y, &q) in ys.iter_mut().zip(&b.unpack()) {
            *y = d * q as f32 + m;
        }
    }
}

/// [`dequantize_affine_naive`] with `f32x8`, multiply then add (bit-identical).
pub fn dequantize_affine_simd<B: Affine>(blocks: &[B], y: &mut [f32]) {
    assert_dequant_len(B::TYPE, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(32)) {
        let (d, m) = b.d_m();
        block::scale_u8_add(ys, &b.unpack(), d, m);
    }
}

/// ggml's reference quantization (`quantize_row_q4_1_ref`, `…q5_1_ref`):
/// `d = (max − min)/(LEVELS − 1)`, `m = min`, `q = min(LEVELS − 1, trunc((x − min)/d + 0.5))`.
pub fn quantize_affine<B: Affine>(x: &[f32], blocks: &mut [B]) {
    assert_quant_len(B::TYPE, x, blocks.len());
    for (xs, b) in x.chunks_exact(32).zip(blocks.iter_mut()) {
        let (mut min, mut max) = (f32::MAX, -f32::MAX);
        for &v in xs {
            min = if v < min { v } else { min };
            max = if v > max { v } else { max };
        }
        let d = (max - min) / f32::from(B::LEVELS - 1);
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.set_d_m(f32_to_f16(d).to_le_bytes(), f32_to_f16(min).to_le_bytes());
        b.pack(&std::array::from_fn(|j| {
            (((xs[j] - min) * id + 0.5) as i8).min(B::LEVELS as i8 - 1) as u8
        }));
    }
}

/// `Σ_blocks d_w·d_a·Σ (q_w − LEVELS/2)·q_a`, integer sums per block, f64 across blocks.
pub fn vec_dot_symmetric_naive<B: Symmetric>(w: &[B], a: &[BlockQ8_0]) -> f32 {
    assert_dot_len(B::TYPE, w.len(), QuantType::Q8_0, a.len());
    let mut sum = 0.0f64;
    for (bw, ba) in w.iter().zip(a) {
        let q = bw.unpack();
        let isum: i32 = (0..32).map(|j| (q[j] as i32 - half::<B>()) * ba.qs[j] as i32).sum();
        sum += (bw.d() * f16_field(ba.d)) as f64 * isum as f64;
    }
    sum as f32
}

/// As [`vec_dot_symmetric_naive`], the block's integer dot with `wide` (i16 multiply-add),
/// f32 accumulation.
pub fn vec_dot_symmetric_simd<B: Symmetric>(w: &[B], a: &[BlockQ8_0]) -> f32 {
    assert_dot_len(B::TYPE, w.len(), QuantType::Q8_0, a.len());
    let mut sum = 0.0f32;
    for (bw, ba) in w.iter().zip(a) {
        let q = bw.unpack().map(|q| (q as i32 - half::<B>()) as i8);
        sum += (bw.d() * f16_field(ba.d)) * block::dot_i8_32(&q, &ba.qs) as f32;
    }
    sum
}

/// `Σ_blocks (d_w·d_a·Σ q_w·q_a + m_w·s_a)`, integer sums per block, f64 across blocks.
pub fn vec_dot_affine_naive<B: Affine>(w: &[B], a: &[BlockQ8_1]) -> f32 {
    assert_dot_len(B::TYPE, w.len(), QuantType::Q8_1, a.len());
    let mut sum = 0.0f64;
    for (bw, ba) in w.iter().zip(a) {
        let q = bw.unpack();
        let (d, m) = bw.d_m();
        let isum: i32 = (0..32).map(|j| q[j] as i32 * ba.qs[j] as i32).sum();
        sum += (d * f16_field(ba.d)) as f64 * isum as f64;
        sum += m as f64 * f16_field(ba.s) as f64;
    }
    sum as f32
}

/// As [`vec_dot_affine_naive`], block dots with `wide`, f32 accumulation.
pub fn vec_dot_affine_simd<B: Affine>(w: &[B], a: &[BlockQ8_1]) -> f32 {
    assert_dot_len(B::TYPE, w.len(), QuantType::Q8_1, a.len());
    let mut sum = 0.0f32;
    for (bw, ba) in w.iter().zip(a) {
        let q = bw.unpack().map(|q| q as i8);
        let (d, m) = bw.d_m();
        sum += (d * f16_field(ba.d)) * block::dot_i8_32(&q, &ba.qs) as f32;
        sum += m * f16_field(ba.s);
    }
    sum
}
