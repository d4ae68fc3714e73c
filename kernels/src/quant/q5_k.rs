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
//! Pairs with Q8_K activations. Its arithmetic is Q4_K's ([`super::q4_k::ScaleMinBlock`]).

use super::block::{f16_field, Block};
use super::q4_k::ScaleMinBlock;
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

impl ScaleMinBlock for BlockQ5K {
    fn d_dmin(&self) -> (f32, f32) {
        (f16_field(self.d), f16_field(self.dmin))
    }

    fn scales(&self) -> &[u8; 12] {
        &self.scales
    }

    /// The 256 quants (0..=31) in value order.
    #[inline(always)]
    fn unpack(&self) -> [u8; 256] {
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
