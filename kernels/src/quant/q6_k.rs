//! Q6_K (GGUF type 14): 256 values per 210-byte block in 16 sub-blocks of 16,
//! `x = d·sc_j·(q − 32)`, q in 0..=63 (4 low bits from ql, 2 high bits from qh), signed 8-bit
//! sub-block scales sc_j.
//!
//! ```text
//! byte  0                          128             192           208     210
//!       +--------------------------+---------------+-------------+-------+
//!       | ql[128]                  | qh[64]        | scales[16]i8| d f16 |
//!       +--------------------------+---------------+-------------+-------+
//! value i: h = i/128, r = i%128, g = r/32, l = r%32:
//!   low  = (ql[64h + 32(g%2) + l] >> 4(g/2)) & 15
//!   high = (qh[32h + l] >> 2g) & 3;     q = low | high << 4           (sub-block j = i/16)
//! ```
//! Pairs with Q8_K activations.

use super::block::{
    self, assert_dequant_len, assert_dot_len, assert_quant_len, f16_field, nearest_int, Block,
};
use super::f16::f32_to_f16;
use super::q8_k::BlockQ8K;
use super::QuantType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockQ6K {
    pub ql: [u8; 128],
    pub qh: [u8; 64],
    pub scales: [i8; 16],
    pub d: [u8; 2],
}
const _: () =
    assert!(std::mem::size_of::<BlockQ6K>() == 210 && std::mem::align_of::<BlockQ6K>() == 1);

// SAFETY: repr(C), byte arrays only, 210 bytes.
unsafe impl Block for BlockQ6K {
    const TYPE: QuantType = QuantType::Q6K;
    const ELEMS: usize = 256;
}

impl BlockQ6K {
    /// The 256 quants, offset removed (−32..=31), in value order.
    #[inline(always)]
    pub fn unpack(&self) -> [i8; 256] {
        let mut q = [0i8; 256];
        for h in 0..2 {
            for g in 0..4 {
                for l in 0..32 {
                    let low = (self.ql[64 * h + 32 * (g % 2) + l] >> (4 * (g / 2))) & 0xf;
                    let high = (self.qh[32 * h + l] >> (2 * g)) & 3;
                    q[128 * h + 32 * g + l] = (low | (high << 4)) as i8 - 32;
                }
            }
        }
        q
    }
}

/// `y = (d·sc_j)·(q − 32)`, the scale product rounded to f32 first as gguf-py does: the
/// specification.
pub fn dequantize_naive(blocks: &[BlockQ6K], y: &mut [f32]) {
    assert_dequant_len(QuantType::Q6K, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(256)) {
        let d = f16_field(b.d);
        let q = b.unpack();
        for (i, yi) in ys.iter_mut().enumerate() {
            *yi = (d * b.scales[i / 16] as f32) * q[i] as f32;
        }
    }
}

/// As naive, per sub-block with `f32x8`.
pub fn dequantize_simd(blocks: &[BlockQ6K], y: &mut [f32]) {
    assert_dequant_len(QuantType::Q6K, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(256)) {
        let d = f16_field(b.d);
        let q = b.unpack();
        for (j, (yv, qv)) in ys.chunks_exact_mut(16).zip(q.chunks_exact(16)).enumerate() {
            block::scale_i8(yv, qv, d * b.scales[j] as f32);
        }
    }
}

/// ggml's `make_qx_quants(n, nmax, x, L, rmse_type=1)`: a symmetric scale and quants `L`
/// (offset by `nmax`) minimizing the x²-weighted squared error over 19 candidate scales.
fn make_qx_quants(x: &[f32], nmax: i32, l_out: &mut [i8]) -> f32 {
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
    let fit = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for &v in x {
            let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    let store = |iscale: f32, l_out: &mut [i8]| {
        for (l, &v) in l_out.iter_mut().zip(x) {
            *l = (nearest_int(iscale * v).clamp(-nmax, nmax - 1) + nmax) as i8;
        }
    };
    let iscale = -(nmax as f32) / max;
    let (sumlx, suml2) = fit(iscale);
    store(iscale, l_out);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        let iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = fit(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            store(iscale, l_out);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml's reference quantization (`quantize_row_q6_K_ref`): per-sub-block scales by
/// [`make_qx_quants`], quantized to i8 against the largest (`d = max_scale/−128`), then each
/// value re-rounded against its final scale: `q = clamp(round(x/(d·sc_j)), −32, 31) + 32`.
pub fn quantize(x: &[f32], blocks: &mut [BlockQ6K]) {
    assert_quant_len(QuantType::Q6K, x, blocks.len());
    for (xs, b) in x.chunks_exact(256).zip(blocks.iter_mut()) {
        let mut l = [0i8; 256];
        let mut scales = [0.0f32; 16];
        let (mut max_abs, mut max_scale) = (0.0f32, 0.0f32);
        for j in 0..16 {
            scales[j] = make_qx_quants(&xs[16 * j..16 * j + 16], 32, &mut l[16 * j..16 * j + 16]);
            if scales[j].abs() > max_abs {
                max_abs = scales[j].abs();
                max_scale = scales[j];
            }
        }
        if max_abs < 1e-15 {
            *b = BlockQ6K { ql: [0; 128], qh: [0; 64], scales: [0; 16], d: [0; 2] };
            continue;
        }
        let iscale = -128.0 / max_scale;
        b.d = f32_to_f16(1.0 / iscale).to_le_bytes();
        for j in 0..16 {
            b.scales[j] = nearest_int(iscale * scales[j]).min(127) as i8;
        }
        let d_all = f16_field(b.d);
        for j in 0..16 {
            let d = d_all * b.scales[j] as f32;
            if d == 0.0 {
                continue;
            }
            for i in 16 * j..16 * j + 16 {
                l[i] = (nearest_int(xs[i] / d).clamp(-32, 31) + 32) as i8;
            }
        }
        for h in 0..2 {
            for k in 0..32 {
                let at = |g: usize| l[128 * h + 32 * g + k] as u8;
                b.ql[64 * h + k] = (at(0) & 0xf) | ((at(2) & 0xf) << 4);
                b.ql[64 * h + 32 + k] = (at(1) & 0xf) | ((at(3) & 0xf) << 4);
                b.qh[32 * h + k] =
                    (at(0) >> 4) | ((at(1) >> 4) << 2) | ((at(2) >> 4) << 4) | ((at(3) >> 4) << 6);
            }
        }
    }
}

/// `Σ_blocks d_w·d_a·Σ_j sc_j·Σ (q − 32)·q_a`, integer sums per block, f64 across blocks.
pub fn vec_dot_q6_k_q8_k_naive(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
    assert_dot_len(QuantType::Q6K, w.len(), QuantType::Q8K, a.len());
    let mut sum = 0.0f64;
    for (bw, ba) in w.iter().zip(a) {
        let q = bw.unpack();
        let mut isum = 0i32;
        for j in 0..16 {
            let dot: i32 = (16 * j..16 * j + 16).map(|i| q[i] as i32 * ba.qs[i] as i32).sum();
            isum += bw.scales[j] as i32 * dot;
        }
        sum += (f16_field(bw.d) * ba.d()) as f64 * isum as f64;
    }
    sum as f32
}

/// As naive, sub-block dots with `wide`, f32 accumulation.
pub fn vec_dot_q6_k_q8_k_simd(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
    assert_dot_len(QuantType::Q6K, w.len(), QuantType::Q8K, a.len());
    let mut sum = 0.0f32;
    for (bw, ba) in w.iter().zip(a) {
        let q = bw.unpack();
        let mut isum = 0i32;
        for j in 0..16 {
            isum += bw.scales[j] as i32 * block::dot_i8_16(&q[16 * j..], &ba.qs[16 * j..]);
        }
        sum += f16_field(bw.d) * ba.d() * isum as f32;
    }
    sum
}
