//! Q3_K (GGUF type 11): 256 values per 110-byte block in 16 sub-blocks of 16,
//! `x = d·(sc_j − 32)·q`, q in −4..=3 (2 low bits from qs, 1 high bit from hmask, a *clear*
//! high bit subtracting 4), 6-bit sub-block scales sc_j.
//!
//! ```text
//! byte  0            32                         96            108     110
//!       +------------+--------------------------+-------------+-------+
//!       | hmask[32]  | qs[64]                   | scales[12]  | d f16 |
//!       +------------+--------------------------+-------------+-------+
//! value i: h = i/128, r = i%128, g = r/32, l = r%32:
//!   low  = (qs[32h + l] >> 2g) & 3
//!   high = (hmask[l] >> (4h + g)) & 1            (bit i/32 of hmask[i%32])
//!   q    = low − (high ? 0 : 4)
//! scale j (6 bits): low 4 = j < 8 ? scales[j] & 15 : scales[j−8] >> 4
//!                   high 2 = (scales[8 + j%4] >> 2·(j/4)) & 3
//! ```
//! Pairs with Q8_K activations.

use super::block::{
    self, assert_dequant_len, assert_dot_len, assert_quant_len, f16_field, nearest_int, Block,
};
use super::f16::{f16_to_f32, f32_to_f16};
use super::q8_k::BlockQ8K;
use super::QuantType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockQ3K {
    pub hmask: [u8; 32],
    pub qs: [u8; 64],
    pub scales: [u8; 12],
    pub d: [u8; 2],
}
const _: () =
    assert!(std::mem::size_of::<BlockQ3K>() == 110 && std::mem::align_of::<BlockQ3K>() == 1);

// SAFETY: repr(C), byte arrays only, 110 bytes.
unsafe impl Block for BlockQ3K {
    const TYPE: QuantType = QuantType::Q3K;
    const ELEMS: usize = 256;
}

impl BlockQ3K {
    /// The 16 signed sub-block scales `sc_j − 32` (−32..=31).
    #[inline(always)]
    pub fn scales(&self) -> [i8; 16] {
        let s = &self.scales;
        std::array::from_fn(|j| {
            let low = if j < 8 { s[j] & 0xf } else { s[j - 8] >> 4 };
            let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
            (low | (high << 4)) as i8 - 32
        })
    }

    /// The 256 quants (−4..=3) in value order.
    #[inline(always)]
    pub fn unpack(&self) -> [i8; 256] {
        let mut q = [0i8; 256];
        for h in 0..2 {
            for g in 0..4 {
                for l in 0..32 {
                    let low = ((self.qs[32 * h + l] >> (2 * g)) & 3) as i8;
                    let high = (self.hmask[l] >> (4 * h + g)) & 1;
                    q[128 * h + 32 * g + l] = low - if high == 1 { 0 } else { 4 };
                }
            }
        }
        q
    }
}

/// `y = (d·(sc_j − 32))·q`, the scale product rounded to f32 first as gguf-py does: the
/// specification.
pub fn dequantize_naive(blocks: &[BlockQ3K], y: &mut [f32]) {
    assert_dequant_len(QuantType::Q3K, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(256)) {
        let d = f16_field(b.d);
        let (sc, q) = (b.scales(), b.unpack());
        for (i, yi) in ys.iter_mut().enumerate() {
            *yi = (d * sc[i / 16] as f32) * q[i] as f32;
        }
    }
}

/// As naive, per sub-block with `f32x8`.
pub fn dequantize_simd(blocks: &[BlockQ3K], y: &mut [f32]) {
    assert_dequant_len(QuantType::Q3K, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(256)) {
        let d = f16_field(b.d);
        let (sc, q) = (b.scales(), b.unpack());
        for (j, (yv, qv)) in ys.chunks_exact_mut(16).zip(q.chunks_exact(16)).enumerate() {
            block::scale_i8(yv, qv, d * sc[j] as f32);
        }
    }
}

/// ggml's `make_q3_quants(n, nmax, x, L, do_rmse=true)`: a scale for a sub-block and its
/// quants `L` (offset by `nmax`), refined by coordinate descent on the x²-weighted error.
fn make_q3_quants(x: &[f32], nmax: i32, l_out: &mut [i8]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < 1e-15 {
        l_out.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (l, &v) in l_out.iter_mut().zip(x) {
        let q = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        *l = q as i8;
        let w = v * v;
        sumlx += w * v * q as f32;
        suml2 += w * (q * q) as f32;
    }
    for _ in 0..5 {
        let mut changed = 0;
        for (i, &v) in x.iter().enumerate() {
            let w = v * v;
            let li = l_out[i] as f32;
            let mut slx = sumlx - w * v * li;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * li * li;
                let new_l = nearest_int(v * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != l_out[i] as i32 {
                    slx += w * v * new_l as f32;
                    sl2 += w * (new_l * new_l) as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l_out[i] = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        changed += 1;
                    }
                }
            }
        }
        if changed == 0 {
            break;
        }
    }
    for l in l_out.iter_mut() {
        *l += nmax as i8;
    }
    sumlx / suml2
}

/// ggml's reference quantization (`quantize_row_q3_K_ref`): per sub-block scales by
/// [`make_q3_quants`], the scales themselves quantized to 6 bits against the largest, then
/// every value re-rounded against its final (f16 · 6-bit) scale.
pub fn quantize(x: &[f32], blocks: &mut [BlockQ3K]) {
    assert_quant_len(QuantType::Q3K, x, blocks.len());
    for (xs, b) in x.chunks_exact(256).zip(blocks.iter_mut()) {
        let mut l = [0i8; 256];
        let mut scales = [0.0f32; 16];
        let (mut amax, mut max_scale) = (0.0f32, 0.0f32);
        for j in 0..16 {
            scales[j] = make_q3_quants(&xs[16 * j..16 * j + 16], 4, &mut l[16 * j..16 * j + 16]);
            if scales[j].abs() > amax {
                amax = scales[j].abs();
                max_scale = scales[j];
            }
        }
        b.scales = [0; 12];
        if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            for (j, &s) in scales.iter().enumerate() {
                let q = (nearest_int(iscale * s).clamp(-32, 31) + 32) as u8;
                if j < 8 {
                    b.scales[j] = q & 0xf;
                } else {
                    b.scales[j - 8] |= (q & 0xf) << 4;
                }
                b.scales[8 + j % 4] |= (q >> 4) << (2 * (j / 4));
            }
            b.d = f32_to_f16(1.0 / iscale).to_le_bytes();
        } else {
            b.d = [0; 2];
        }
        let d_all = f16_to_f32(u16::from_le_bytes(b.d));
        let sc = b.scales();
        for j in 0..16 {
            let d = d_all * sc[j] as f32;
            if d == 0.0 {
                continue;
            }
            for i in 16 * j..16 * j + 16 {
                l[i] = (nearest_int(xs[i] / d).clamp(-4, 3) + 4) as i8;
            }
        }
        b.hmask = [0; 32];
        for (i, li) in l.iter_mut().enumerate() {
            if *li > 3 {
                b.hmask[i % 32] |= 1 << (i / 32);
                *li -= 4;
            }
        }
        for h in 0..2 {
            for k in 0..32 {
                let at = |g: usize| (l[128 * h + 32 * g + k] as u8) << (2 * g);
                b.qs[32 * h + k] = at(0) | at(1) | at(2) | at(3);
            }
        }
    }
}

/// `Σ_blocks d_w·d_a·Σ_j (sc_j − 32)·Σ q·q_a`, integer sums per block, f64 across blocks.
pub fn vec_dot_q3_k_q8_k_naive(w: &[BlockQ3K], a: &[BlockQ8K]) -> f32 {
    assert_dot_len(QuantType::Q3K, w.len(), QuantType::Q8K, a.len());
    let mut sum = 0.0f64;
    for (bw, ba) in w.iter().zip(a) {
        let (sc, q) = (bw.scales(), bw.unpack());
        let mut isum = 0i32;
        for j in 0..16 {
            let dot: i32 = (16 * j..16 * j + 16).map(|i| q[i] as i32 * ba.qs[i] as i32).sum();
            isum += sc[j] as i32 * dot;
        }
        sum += (f16_field(bw.d) * ba.d()) as f64 * isum as f64;
    }
    sum as f32
}

/// As naive, sub-block dots with `wide`, f32 accumulation.
pub fn vec_dot_q3_k_q8_k_simd(w: &[BlockQ3K], a: &[BlockQ8K]) -> f32 {
    assert_dot_len(QuantType::Q3K, w.len(), QuantType::Q8K, a.len());
    let mut sum = 0.0f32;
    for (bw, ba) in w.iter().zip(a) {
        let (sc, q) = (bw.scales(), bw.unpack());
        let mut isum = 0i32;
        for j in 0..16 {
            isum += sc[j] as i32 * block::dot_i8_16(&q[16 * j..], &ba.qs[16 * j..]);
        }
        sum += f16_field(bw.d) * ba.d() * isum as f32;
    }
    sum
}
