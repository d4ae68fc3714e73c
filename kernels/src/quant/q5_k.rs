//! Q5_K (GGUF type 13): 256 values per 176-byte block in 8 sub-blocks of 32,
//! `x = d·sc_j·q − dmin·m_j`, q in 0..=31 (4 low bits from qs as in Q4_K, the 5th from qh).
//!
//! ```text
//! byte  0       2        4             16          48                         176
//!       +-------+--------+-------------+-----------+---------------------------+
//!       | d f16 |dmin f16| scales[12]  | qh[32]    | qs[128]                   |
//!       +-------+--------+-------------+-----------+---------------------------+
//! scales: as Q4_K (get_scale_min_k4)
//! value i: c = i/64, r = i%64:
//!   low  = r < 32 ? qs[32c + r] & 15 : qs[32c + r − 32] >> 4
//!   high = (qh[i%32] >> (i/32)) & 1;    q = low | high << 4          (sub-block j = i/32)
//! ```
//! Pairs with Q8_K activations.

use super::block::{self, assert_dequant_len, assert_dot_len, f16_field, Block};
use super::q4_k::scales_mins_k4;
use super::q8_k::BlockQ8K;
use super::QuantType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockQ5K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; 12],
    pub qh: [u8; 32],
    pub qs: [u8; 128],
}
const _: () =
    assert!(std::mem::size_of::<BlockQ5K>() == 176 && std::mem::align_of::<BlockQ5K>() == 1);

// SAFETY: repr(C), byte arrays only, 176 bytes.
unsafe impl Block for BlockQ5K {
    const TYPE: QuantType = QuantType::Q5K;
    const ELEMS: usize = 256;
}

impl BlockQ5K {
    /// The 256 quants (0..=31) in value order.
    #[inline(always)]
    pub fn unpack(&self) -> [u8; 256] {
        let mut q = [0u8; 256];
        for c in 0..4 {
            for l in 0..32 {
                // value 64c + l has its 5th bit at bit 2c of qh[l], value 64c + 32 + l at 2c + 1
                q[64 * c + l] = (self.qs[32 * c + l] & 0xf) | (((self.qh[l] >> (2 * c)) & 1) << 4);
                q[64 * c + 32 + l] =
                    (self.qs[32 * c + l] >> 4) | (((self.qh[l] >> (2 * c + 1)) & 1) << 4);
            }
        }
        q
    }
}

/// `y = (d·sc_j)·q − (dmin·m_j)`, each product rounded to f32 as gguf-py does: the
/// specification.
pub fn dequantize_naive(blocks: &[BlockQ5K], y: &mut [f32]) {
    assert_dequant_len(QuantType::Q5K, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(256)) {
        let (d, dmin) = (f16_field(b.d), f16_field(b.dmin));
        let (sc, m) = scales_mins_k4(&b.scales);
        let q = b.unpack();
        for (i, yi) in ys.iter_mut().enumerate() {
            let (dl, ml) = (d * sc[i / 32] as f32, dmin * m[i / 32] as f32);
            *yi = dl * q[i] as f32 - ml;
        }
    }
}

/// As naive, per sub-block with `f32x8`.
pub fn dequantize_simd(blocks: &[BlockQ5K], y: &mut [f32]) {
    assert_dequant_len(QuantType::Q5K, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(256)) {
        let (d, dmin) = (f16_field(b.d), f16_field(b.dmin));
        let (sc, m) = scales_mins_k4(&b.scales);
        let q = b.unpack();
        for (j, (yv, qv)) in ys.chunks_exact_mut(32).zip(q.chunks_exact(32)).enumerate() {
            block::scale_u8_sub(yv, qv, d * sc[j] as f32, dmin * m[j] as f32);
        }
    }
}

/// `Σ_blocks d_a·(d_w·Σ_j sc_j·Σ q·q_a − dmin_w·Σ_j m_j·Σ q_a)`, integer sums per block, f64
/// across blocks.
pub fn vec_dot_q5_k_q8_k_naive(w: &[BlockQ5K], a: &[BlockQ8K]) -> f32 {
    assert_dot_len(QuantType::Q5K, w.len(), QuantType::Q8K, a.len());
    let mut sum = 0.0f64;
    for (bw, ba) in w.iter().zip(a) {
        let (sc, m) = scales_mins_k4(&bw.scales);
        let q = bw.unpack();
        let (mut isum, mut msum) = (0i32, 0i32);
        for j in 0..8 {
            let (dot, asum) = (32 * j..32 * j + 32).fold((0i32, 0i32), |(d, s), i| {
                (d + q[i] as i32 * ba.qs[i] as i32, s + ba.qs[i] as i32)
            });
            isum += sc[j] as i32 * dot;
            msum += m[j] as i32 * asum;
        }
        sum += (ba.d() * f16_field(bw.d)) as f64 * isum as f64;
        sum -= (ba.d() * f16_field(bw.dmin)) as f64 * msum as f64;
    }
    sum as f32
}

/// As naive, sub-block dots with `wide`, minimums from the activation block sums, f32
/// accumulation.
pub fn vec_dot_q5_k_q8_k_simd(w: &[BlockQ5K], a: &[BlockQ8K]) -> f32 {
    assert_dot_len(QuantType::Q5K, w.len(), QuantType::Q8K, a.len());
    let mut sum = 0.0f32;
    for (bw, ba) in w.iter().zip(a) {
        let (sc, m) = scales_mins_k4(&bw.scales);
        let q = bw.unpack().map(|q| q as i8);
        let (mut isum, mut msum) = (0i32, 0i32);
        for j in 0..8 {
            isum += sc[j] as i32 * block::dot_i8_32(&q[32 * j..], &ba.qs[32 * j..]);
            msum += m[j] as i32 * (ba.bsum(2 * j) as i32 + ba.bsum(2 * j + 1) as i32);
        }
        sum += ba.d() * f16_field(bw.d) * isum as f32 - ba.d() * f16_field(bw.dmin) * msum as f32;
    }
    sum
}
