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
//!
//! The arithmetic (dequantization, quantization, dot products) is [`super::legacy`]'s.

use super::block::{f16_field, Block};
use super::legacy::{self, Legacy, Symmetric};
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

impl Legacy for BlockQ5_0 {
    const LEVELS: u8 = 32;

    #[inline(always)]
    fn unpack(&self) -> [u8; 32] {
        legacy::unpack_5bit(&self.qs, self.qh)
    }

    fn pack(&mut self, q: &[u8; 32]) {
        (self.qs, self.qh) = legacy::pack_5bit(q);
    }
}

impl Symmetric for BlockQ5_0 {
    #[inline(always)]
    fn d(&self) -> f32 {
        f16_field(self.d)
    }

    fn set_d(&mut self, d: [u8; 2]) {
        self.d = d;
    }
}
