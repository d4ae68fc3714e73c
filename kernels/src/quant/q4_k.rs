//! Q4_K (GGUF type 12): 256 values per 144-byte block in 8 sub-blocks of 32,
//! `x = d·sc_j·q − dmin·m_j`, q in 0..=15, 6-bit sub-block scales sc_j and mins m_j.
//!
//! ```text
//! byte  0       2        4             16                                144
//!       +-------+--------+-------------+----------------------------------+
//!       | d f16 |dmin f16| scales[12]  | qs[128]                          |
//!       +-------+--------+-------------+----------------------------------+
//! scales (6-bit sc_j, m_j packed in 12 bytes, ggml's get_scale_min_k4):
//!   j < 4: sc = s[j] & 63,                       m = s[j+4] & 63
//!   j ≥ 4: sc = (s[j+4] & 15) | (s[j−4] >> 6) << 4, m = (s[j+4] >> 4) | (s[j] >> 6) << 4
//! value i: c = i/64 (32 bytes of qs each), r = i%64:
//!   q = r < 32 ? qs[32c + r] & 15 : qs[32c + r − 32] >> 4        (sub-block j = i/32)
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
pub struct BlockQ4K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; 12],
    pub qs: [u8; 128],
}
const _: () =
    assert!(std::mem::size_of::<BlockQ4K>() == 144 && std::mem::align_of::<BlockQ4K>() == 1);

// SAFETY: repr(C), byte arrays only, 144 bytes.
unsafe impl Block for BlockQ4K {
    const TYPE: QuantType = QuantType::Q4K;
    const ELEMS: usize = 256;
}

/// ggml's `get_scale_min_k4`: the 6-bit scales and mins of the 8 sub-blocks of Q4_K/Q5_K.
#[inline(always)]
pub fn scales_mins_k4(s: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut m = [0u8; 8];
    for j in 0..8 {
        if j < 4 {
            sc[j] = s[j] & 63;
            m[j] = s[j + 4] & 63;
        } else {
            sc[j] = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
            m[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        }
    }
    (sc, m)
}

/// Packs 8 six-bit scales and mins into ggml's 12-byte layout (inverse of [`scales_mins_k4`]).
pub fn pack_scales_mins_k4(sc: &[u8; 8], m: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..8 {
        if j < 4 {
            s[j] = sc[j];
            s[j + 4] = m[j];
        } else {
            s[j + 4] = (sc[j] & 0xf) | ((m[j] & 0xf) << 4);
            s[j - 4] |= (sc[j] >> 4) << 6;
            s[j] |= (m[j] >> 4) << 6;
        }
    }
    s
}

/// The 256-value formats of 8 sub-blocks of 32 with 6-bit scales and minimums packed as
/// [`scales_mins_k4`] reads them, `x = d·sc_j·q − dmin·m_j`: Q4_K and Q5_K. They differ only in
/// how the quants are packed; the dequantizers and dot products below are written once for
/// both.
pub trait ScaleMinBlock: Block {
    /// `(d, dmin)` as f32.
    fn d_dmin(&self) -> (f32, f32);
    /// The 12 packed scale and minimum bytes.
    fn scales(&self) -> &[u8; 12];
    /// The 256 quants in value order.
    fn unpack(&self) -> [u8; 256];
}

impl ScaleMinBlock for BlockQ4K {
    fn d_dmin(&self) -> (f32, f32) {
        (f16_field(self.d), f16_field(self.dmin))
    }

    fn scales(&self) -> &[u8; 12] {
        &self.scales
    }

    /// The 256 quants (0..=15) in value order.
    #[inline(always)]
    fn unpack(&self) -> [u8; 256] {
        let mut q = [0u8; 256];
        for c in 0..4 {
            for l in 0..32 {
                q[64 * c + l] = self.qs[32 * c + l] & 0xf;
                q[64 * c + 32 + l] = self.qs[32 * c + l] >> 4;
            }
        }
        q
    }
}

/// `y = (d·sc_j)·q − (dmin·m_j)`, each product rounded to f32 as gguf-py does: the
/// specification.
pub fn dequantize_naive<B: ScaleMinBlock>(blocks: &[B], y: &mut [f32]) {
    assert_dequant_len(B::TYPE, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(256)) {
        let (d, dmin) = b.d_dmin();
        let (sc, m) = scales_mins_k4(b.scales());
        let q = b.unpack();
        for (i, yi) in ys.iter_mut().enumerate() {
            let (dl, ml) = (d * sc[i / 32] as f32, dmin * m[i / 32] as f32);
            *yi = dl * q[i] as f32 - ml;
        }
    }
}

/// As naive, per sub-block with `f32x8`.
pub fn dequantize_simd<B: ScaleMinBlock>(blocks: &[B], y: &mut [f32]) {
    assert_dequant_len(B::TYPE, blocks.len(), y);
    for (b, ys) in blocks.iter().zip(y.chunks_exact_mut(256)) {
        let (d, dmin) = b.d_dmin();
        let (sc, m) = scales_mins_k4(b.scales());
        let q = b.unpack();
        for (j, (yv, qv)) in ys.chunks_exact_mut(32).zip(q.chunks_exact(32)).enumerate() {
            block::scale_u8_sub(yv, qv, d * sc[j] as f32, dmin * m[j] as f32);
        }
    }
}

/// ggml's `make_qkx2_quants`: scale and (negated) minimum of an affine quantization of `x` to
/// 0..=nmax minimizing the `weights`-weighted squared error, searched over `nstep + 1`
/// candidate scales around `nmax/(max − min)`, each refined by weighted least squares.
pub(crate) fn make_qkx2_quants(
    x: &[f32],
    weights: &[f32],
    nmax: i32,
    l_out: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
) -> (f32, f32) {
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let (mut sum_w, mut sum_x) = (weights[0], weights[0] * x[0]);
    for i in 1..n {
        min = if x[i] < min { x[i] } else { min };
        max = if x[i] > max { x[i] } else { max };
        sum_w += weights[i];
        sum_x += weights[i] * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out.fill(0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l_out[i] = l as u8;
        let diff = scale * l as f32 + min - x[i];
        best_error += weights[i] * diff * diff;
    }
    let mut laux = vec![0u8; n];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = l as u8;
            let (w, lf) = (weights[i], l as f32);
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                cur_error += weights[i] * diff * diff;
            }
            if cur_error < best_error {
                l_out.copy_from_slice(&laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// The per-sub-block scales and mins of Q4_K/Q5_K (ggml's `quantize_row_q4_K_ref` step 1):
/// [`make_qkx2_quants`] with weights `sqrt(mean x²) + |x|`, 20 steps of 0.1 from −1.
pub(crate) fn sub_block_scales_mins(xs: &[f32], nmax: i32) -> ([f32; 8], [f32; 8]) {
    let mut scales = [0.0f32; 8];
    let mut mins = [0.0f32; 8];
    let mut l = [0u8; 32];
    for j in 0..8 {
        let x = &xs[32 * j..32 * j + 32];
        let sum_x2: f32 = x.iter().map(|v| v * v).sum();
        let av_x = (sum_x2 / 32.0).sqrt();
        let weights: [f32; 32] = std::array::from_fn(|i| av_x + x[i].abs());
        (scales[j], mins[j]) = make_qkx2_quants(x, &weights, nmax, &mut l, -1.0, 0.1, 20);
    }
    (scales, mins)
}

/// The 6-bit scales/mins and the f16 `d`/`dmin` for the sub-block scales and mins
/// (ggml: `d = max_scale/63`, `dmin = max_min/63`).
pub(crate) fn quantize_scales_mins(
    scales: &[f32; 8],
    mins: &[f32; 8],
) -> ([u8; 12], [u8; 2], [u8; 2]) {
    let max_scale = scales.iter().fold(0.0f32, |a, &s| if s > a { s } else { a });
    let max_min = mins.iter().fold(0.0f32, |a, &m| if m > a { m } else { a });
    let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let ls: [u8; 8] = std::array::from_fn(|j| nearest_int(inv_scale * scales[j]).min(63) as u8);
    let lm: [u8; 8] = std::array::from_fn(|j| nearest_int(inv_min * mins[j]).min(63) as u8);
    (
        pack_scales_mins_k4(&ls, &lm),
        f32_to_f16(max_scale / 63.0).to_le_bytes(),
        f32_to_f16(max_min / 63.0).to_le_bytes(),
    )
}

/// ggml's reference quantization (`quantize_row_q4_K_ref`): per-sub-block affine fits, the
/// scales and mins quantized to 6 bits, then each value re-rounded against its final scale
/// and min: `q = clamp(round((x + dmin·m_j)/(d·sc_j)), 0, 15)`.
pub fn quantize(x: &[f32], blocks: &mut [BlockQ4K]) {
    assert_quant_len(QuantType::Q4K, x, blocks.len());
    for (xs, b) in x.chunks_exact(256).zip(blocks.iter_mut()) {
        let (scales, mins) = sub_block_scales_mins(xs, 15);
        (b.scales, b.d, b.dmin) = quantize_scales_mins(&scales, &mins);
        let (d_all, dmin_all) = (f16_field(b.d), f16_field(b.dmin));
        let (sc, m) = scales_mins_k4(&b.scales);
        let mut l = [0u8; 256];
        for j in 0..8 {
            let d = d_all * sc[j] as f32;
            if d == 0.0 {
                continue;
            }
            let dm = dmin_all * m[j] as f32;
            for i in 32 * j..32 * j + 32 {
                l[i] = nearest_int((xs[i] + dm) / d).clamp(0, 15) as u8;
            }
        }
        for c in 0..4 {
            for k in 0..32 {
                b.qs[32 * c + k] = l[64 * c + k] | (l[64 * c + 32 + k] << 4);
            }
        }
    }
}

/// `Σ_blocks d_a·(d_w·Σ_j sc_j·Σ q·q_a − dmin_w·Σ_j m_j·Σ q_a)`, integer sums per block, f64
/// across blocks.
pub fn vec_dot_q8_k_naive<B: ScaleMinBlock>(w: &[B], a: &[BlockQ8K]) -> f32 {
    assert_dot_len(B::TYPE, w.len(), QuantType::Q8K, a.len());
    let mut sum = 0.0f64;
    for (bw, ba) in w.iter().zip(a) {
        let (sc, m) = scales_mins_k4(bw.scales());
        let q = bw.unpack();
        let (mut isum, mut msum) = (0i32, 0i32);
        for j in 0..8 {
            let (dot, asum) = (32 * j..32 * j + 32).fold((0i32, 0i32), |(d, s), i| {
                (d + q[i] as i32 * ba.qs[i] as i32, s + ba.qs[i] as i32)
            });
            isum += sc[j] as i32 * dot;
            msum += m[j] as i32 * asum;
        }
        let (d, dmin) = bw.d_dmin();
        sum += (ba.d() * d) as f64 * isum as f64;
        sum -= (ba.d() * dmin) as f64 * msum as f64;
    }
    sum as f32
}

/// As naive, sub-block dots with `wide`, minimums from the activation block sums, f32
/// accumulation.
pub fn vec_dot_q8_k_simd<B: ScaleMinBlock>(w: &[B], a: &[BlockQ8K]) -> f32 {
    assert_dot_len(B::TYPE, w.len(), QuantType::Q8K, a.len());
    let mut sum = 0.0f32;
    for (bw, ba) in w.iter().zip(a) {
        let (sc, m) = scales_mins_k4(bw.scales());
        let q = bw.unpack().map(|q| q as i8);
        let (mut isum, mut msum) = (0i32, 0i32);
        for j in 0..8 {
            isum += sc[j] as i32 * block::dot_i8_32(&q[32 * j..], &ba.qs[32 * j..]);
            msum += m[j] as i32 * (ba.bsum(2 * j) as i32 + ba.bsum(2 * j + 1) as i32);
        }
        let (d, dmin) = bw.d_dmin();
        sum += ba.d() * d * isum as f32 - ba.d() * dmin * msum as f32;
    }
    sum
}
