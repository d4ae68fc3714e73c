//! Q8_K (GGUF type 15): 256 values per 292-byte block, `x = d·q`, with the sums of each 16
//! quants precomputed (the K-quant dots use them for their sub-block minimums).
//!
//! ```text
//! byte  0        4                                   260                 292
//!       +--------+-----------------------------------+-------------------+
//!       | d f32  | qs[256] i8, value order           | bsums[16] i16 LE  |
//!       +--------+-----------------------------------+-------------------+
//! bsums[j] = Σ qs[16j .. 16j+16]
//! ```
//! Activations for every K-quant weight format. Not a storage format of model files.

use wide::f32x8;

use super::block::{self, assert_dequant_len, assert_quant_len, Block};
use super::QuantType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockQ8K {
    pub d: [u8; 4],
    pub qs: [i8; 256],
    pub bsums: [[u8; 2]; 16],
}
const _: () =
    assert!(std::mem::size_of::<BlockQ8K>() == 292 && std::mem::align_of::<BlockQ8K>() == 1);

// SAFETY: repr(C), byte arrays only, 292 bytes.
unsafe impl Block for BlockQ8K {
    const TYPE: QuantType = QuantType::Q8K;
    const ELEMS: usize = 256;
}

impl BlockQ8K {
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f32::from_le_bytes(self.d)
    }

    #[inline(always)]
    pub fn bsum(&self, j: usize) -> i16 {
        i16::from_le_bytes(self.bsums[j])
    }
}

/// `y = d·q`: the specification.
pub fn dequantize_naive(blocks: &[BlockQ8K], y: &mut [f32]) {
    assert_dequant_len(QuantType::Q8K, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(256)) {
        let d = b.d();
        for (yj, &q) in ys.iter_mut().zip(&b.qs) {
            *yj = d * q as f32;
        }
    }
}

/// `y = d·q` with `f32x8`.
pub fn dequantize_simd(blocks: &[BlockQ8K], y: &mut [f32]) {
    assert_dequant_len(QuantType::Q8K, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(256)) {
        let d = f32x8::splat(b.d());
        for (yv, qv) in ys.chunks_exact_mut(8).zip(b.qs.chunks_exact(8)) {
            let q: [f32; 8] = std::array::from_fn(|i| qv[i] as f32);
            yv.copy_from_slice((d * f32x8::from(q)).as_array());
        }
    }
}

/// ggml's reference quantization (`quantize_row_q8_K_ref`): `max` the value of largest
/// magnitude, `q = min(127, nearest_even(−127/max · x))`, `d = 1/(−127/max)`; the block sums.
pub fn quantize(x: &[f32], blocks: &mut [BlockQ8K]) {
    assert_quant_len(QuantType::Q8K, x, blocks.len());
    for (xs, b) in x.chunks_exact(256).zip(blocks.iter_mut()) {
        // the first value of the largest magnitude, keeping its sign
        let amax = block::abs_max(xs);
        let max = xs.iter().copied().find(|v| v.abs() == amax).unwrap_or(0.0);
        if amax == 0.0 {
            *b = BlockQ8K { d: [0; 4], qs: [0; 256], bsums: [[0; 2]; 16] };
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in b.qs.iter_mut().zip(xs) {
            // ggml: min(127, nearest_int(iscale·x)); the clamp below −127 (and NaN → 0) only
            // acts when −127/max overflows (blocks of subnormal values)
            *q = (iscale * v).round_ties_even().clamp(-127.0, 127.0) as i8;
        }
        for (j, s) in b.bsums.iter_mut().enumerate() {
            let sum: i32 = b.qs[16 * j..16 * j + 16].iter().map(|&q| q as i32).sum();
            *s = (sum as i16).to_le_bytes();
        }
        b.d = (1.0 / iscale).to_le_bytes();
    }
}
