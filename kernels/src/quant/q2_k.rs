//! Q2_K (GGUF type 10): 256 values per 84-byte block in 16 sub-blocks of 16,
//! `x = d·sc_j·q − dmin·m_j`, q in 0..=3, 4-bit sub-block scale sc_j and min m_j.
//!
//! ```text
//! byte  0            16                         80      82      84
//!       +------------+--------------------------+-------+-------+
//!       | scales[16] | qs[64]                   | d f16 |dmin f16|
//!       +------------+--------------------------+-------+-------+
//! scales[j] = sc_j | m_j << 4                    (sub-block j = values 16j .. 16j+16)
//! value i: h = i/128, r = i%128, g = r/32, l = r%32:  q = (qs[32h + l] >> 2g) & 3
//! ```
//! Pairs with Q8_K activations.

use super::block::{self, assert_dequant_len, assert_dot_len, f16_field, Block};
use super::q8_k::BlockQ8K;
use super::QuantType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockQ2K {
    pub scales: [u8; 16],
    pub qs: [u8; 64],
    pub d: [u8; 2],
    pub dmin: [u8; 2],
}
const _: () =
    assert!(std::mem::size_of::<BlockQ2K>() == 84 && std::mem::align_of::<BlockQ2K>() == 1);

// SAFETY: repr(C), byte arrays only, 84 bytes.
unsafe impl Block for BlockQ2K {
    const TYPE: QuantType = QuantType::Q2K;
    const ELEMS: usize = 256;
}

impl BlockQ2K {
    /// The 256 quants (0..=3) in value order.
    #[inline(always)]
    pub fn unpack(&self) -> [u8; 256] {
        let mut q = [0u8; 256];
        for h in 0..2 {
            for g in 0..4 {
                for l in 0..32 {
                    q[128 * h + 32 * g + l] = (self.qs[32 * h + l] >> (2 * g)) & 3;
                }
            }
        }
        q
    }
}

/// `y = (d·sc_j)·q − (dmin·m_j)`, each product rounded to f32 as gguf-py does: the
/// specification.
pub fn dequantize_naive(blocks: &[BlockQ2K], y: &mut [f32]) {
    assert_dequant_len(QuantType::Q2K, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(256)) {
        let (d, dmin) = (f16_field(b.d), f16_field(b.dmin));
        let q = b.unpack();
        for (i, yi) in ys.iter_mut().enumerate() {
            let s = b.scales[i / 16];
            let (dl, ml) = (d * (s & 0xf) as f32, dmin * (s >> 4) as f32);
            *yi = dl * q[i] as f32 - ml;
        }
    }
}

/// As naive, per sub-block with `f32x8`.
pub fn dequantize_simd(blocks: &[BlockQ2K], y: &mut [f32]) {
    assert_dequant_len(QuantType::Q2K, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(256)) {
        let (d, dmin) = (f16_field(b.d), f16_field(b.dmin));
        let q = b.unpack();
        for (j, (yv, qv)) in ys.chunks_exact_mut(16).zip(q.chunks_exact(16)).enumerate() {
            let s = b.scales[j];
            block::scale_u8_sub(yv, qv, d * (s & 0xf) as f32, dmin * (s >> 4) as f32);
        }
    }
}

/// `Σ_blocks d_a·(d_w·Σ_j sc_j·Σ q·q_a − dmin_w·Σ_j m_j·Σ q_a)`, integer sums per block, f64
/// across blocks.
pub fn vec_dot_q2_k_q8_k_naive(w: &[BlockQ2K], a: &[BlockQ8K]) -> f32 {
    assert_dot_len(QuantType::Q2K, w.len(), QuantType::Q8K, a.len());
    let mut sum = 0.0f64;
    for (bw, ba) in w.iter().zip(a) {
        let q = bw.unpack();
        let (mut isum, mut msum) = (0i32, 0i32);
        for j in 0..16 {
            let s = bw.scales[j] as i32;
            let (dot, asum) = (16 * j..16 * j + 16).fold((0i32, 0i32), |(d, s), i| {
                (d + q[i] as i32 * ba.qs[i] as i32, s + ba.qs[i] as i32)
            });
            isum += (s & 0xf) * dot;
            msum += (s >> 4) * asum;
        }
        sum += (ba.d() * f16_field(bw.d)) as f64 * isum as f64;
        sum -= (ba.d() * f16_field(bw.dmin)) as f64 * msum as f64;
    }
    sum as f32
}

/// As naive, sub-block dots with `wide`, minimums from the activation block sums, f32
/// accumulation.
pub fn vec_dot_q2_k_q8_k_simd(w: &[BlockQ2K], a: &[BlockQ8K]) -> f32 {
    assert_dot_len(QuantType::Q2K, w.len(), QuantType::Q8K, a.len());
    let mut sum = 0.0f32;
    for (bw, ba) in w.iter().zip(a) {
        let q = bw.unpack().map(|q| q as i8);
        let (mut isum, mut msum) = (0i32, 0i32);
        for j in 0..16 {
            let s = bw.scales[j] as i32;
            isum += (s & 0xf) * block::dot_i8_16(&q[16 * j..], &ba.qs[16 * j..]);
            msum += (s >> 4) * ba.bsum(j) as i32;
        }
        sum += ba.d() * f16_field(bw.d) * isum as f32 - ba.d() * f16_field(bw.dmin) * msum as f32;
    }
    sum
}
