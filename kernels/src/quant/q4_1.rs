//! Q4_1 (GGUF type 3): 32 values per 20-byte block, `x = d·q + m`, q in 0..=15.
//!
//! ```text
//! byte  0      2      4                                   20
//!       +------+------+-----------------------------------+
//!       | d f16| m f16| qs[16]                            |
//!       +------+------+-----------------------------------+
//! qs[j] = q[j] | q[j+16] << 4      (j = 0..16: low nibbles are values 0..15, high 16..31)
//! ```
//! The SmolLM2 file's weight format. Pairs with Q8_1 activations:
//! `Σ x_w·x_a = d_w·d_a·Σ q_w·q_a + m_w·s_a` per block.
//!
//! The arithmetic (dequantization, quantization, dot products) is [`super::legacy`]'s.

use super::block::{f16_field, Block};
use super::legacy::{self, Affine, Legacy};
use super::QuantType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockQ4_1 {
    pub d: [u8; 2],
    pub m: [u8; 2],
    pub qs: [u8; 16],
}
const _: () =
    assert!(std::mem::size_of::<BlockQ4_1>() == 20 && std::mem::align_of::<BlockQ4_1>() == 1);

// SAFETY: repr(C), byte arrays only, 20 bytes.
unsafe impl Block for BlockQ4_1 {
    const TYPE: QuantType = QuantType::Q4_1;
    const ELEMS: usize = 32;
}

impl Legacy for BlockQ4_1 {
    const LEVELS: u8 = 16;

    #[inline(always)]
    fn unpack(&self) -> [u8; 32] {
        legacy::unpack_nibbles(&self.qs)
    }

    fn pack(&mut self, q: &[u8; 32]) {
        self.qs = legacy::pack_nibbles(q);
    }
}

impl Affine for BlockQ4_1 {
    #[inline(always)]
    fn d_m(&self) -> (f32, f32) {
        (f16_field(self.d), f16_field(self.m))
    }

    fn set_d_m(&mut self, d: [u8; 2], m: [u8; 2]) {
        (self.d, self.m) = (d, m);
    }
}
