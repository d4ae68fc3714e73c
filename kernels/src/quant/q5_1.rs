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
//!
//! The arithmetic (dequantization, quantization, dot products) is [`super::legacy`]'s.

use super::block::{f16_field, Block};
use super::legacy::{self, Affine, Legacy};
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

impl Legacy for BlockQ5_1 {
    const LEVELS: u8 = 32;

    #[inline(always)]
    fn unpack(&self) -> [u8; 32] {
        legacy::unpack_5bit(&self.qs, self.qh)
    }

    fn pack(&mut self, q: &[u8; 32]) {
        (self.qs, self.qh) = legacy::pack_5bit(q);
    }
}

impl Affine for BlockQ5_1 {
    #[inline(always)]
    fn d_m(&self) -> (f32, f32) {
        (f16_field(self.d), f16_field(self.m))
    }

    fn set_d_m(&mut self, d: [u8; 2], m: [u8; 2]) {
        (self.d, self.m) = (d, m);
    }
}
