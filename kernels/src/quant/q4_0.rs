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
//!
//! The arithmetic (dequantization, quantization, dot products) is [`super::legacy`]'s.

use super::block::{f16_field, Block};
use super::legacy::{self, Legacy, Symmetric};
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

impl Legacy for BlockQ4_0 {
    const LEVELS: u8 = 16;

    #[inline(always)]
    fn unpack(&self) -> [u8; 32] {
        legacy::unpack_nibbles(&self.qs)
    }

    fn pack(&mut self, q: &[u8; 32]) {
        self.qs = legacy::pack_nibbles(q);
    }
}

impl Symmetric for BlockQ4_0 {
    #[inline(always)]
    fn d(&self) -> f32 {
        f16_field(self.d)
    }

    fn set_d(&mut self, d: [u8; 2]) {
        self.d = d;
    }
}
