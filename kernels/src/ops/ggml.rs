//! llama.cpp-compatible arithmetic: the f32 ops of ggml's CPU backend reproduced to the bit,
//! so a quantized model run with them gives llama.cpp's logits exactly.
//!
//! Why: with activations quantized to Q8 before every matrix product, a llama is chaotic
//! under rounding. Moving every embedding value of SmolLM2-135M by one ulp (6e-8 relative)
//! changes its logits by 0.24 RMS (max 1.0), as much as any other difference of arithmetic: a
//! borderline value rounds to the other Q8 level, and the change spreads. Agreeing with
//! llama.cpp "to within 0.5 of a logit" therefore means agreeing to the bit. With these ops,
//! the `quantized` stage reproduces llama.cpp's top-5 logits on its reference lines to the
//! 5 decimals they are printed with (`model/tests/forward_real.rs`).
//!
//! What llama.cpp computes (ggml's CPU backend, x86 built with AVX-512 F/DQ), and so what
//! each function here computes, in this order of operations:
//! - [`rms_norm_ggml`]: `Σ x²` in f64 with each square rounded to f32 first, one element at a
//!   time; `mean = (f32)(Σ/n)`, `scale = 1/sqrtf(mean + eps)`; `y = (x·scale)·w` (the norm,
//!   then a separate multiply by the weight).
//! - [`RopeTable::ggml`](super::rope::RopeTable::ggml) and [`rope_ggml`]: angles by the f32
//!   recurrence `θ₀ = p`, `θ_{i+1} = θ_i · base^(−2/n_dims)` (`powf`), `cosf`/`sinf`; each pair
//!   rotated as `x0' = fma(x0, c, −(x1·s))`, `x1' = fma(x0, s, x1·c)`.
//! - [`silu_mul_ggml`]: `silu(g)·u` with `silu(x) = x / (1 + e)`, `e` = ggml's vector
//!   `expf` ([`v_expf`]: a degree-5 polynomial on `b = x − n·ln2`, then `· 2ⁿ`); with AVX-512,
//!   [`silu_mul_ggml_avx512`] runs ggml's 16-lane form natively for the same bits.
//! - [`attention_ggml`]: ggml's flash attention over an f16 KV cache: K and V hold
//!   f16-representable values (the caller rounds them as they enter the cache), Q is rounded
//!   to f16, `q·k` is ggml's f16 dot (four 16-lane f32 accumulators folded pairwise, then a
//!   tree sum of the 16 lanes), the online softmax uses the C library's `expf` (glibc's,
//!   reproduced inline by [`super::libc_expf`]), and the output accumulator is itself
//!   rounded to f16 after every key. That is ggml's attention for a batch of fewer than 64
//!   queries; from 64 on it runs tiles of f32 GEMMs instead ([`super::ggml_tiled`]).
//!
//! The activation quantizers (`quant::quantize_activations`) follow ggml's x86 ones too, and
//! the quantized dot products add their blocks in ggml's order (see `arch::quant_avx2`).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::attention::{check_shape, AttentionShape};
use super::libc_expf::expf_libc;
use super::rope::{RopePairing, RopeShape, RopeTable};
use crate::quant::f16;

/// `f32 → f16 → f32`, round to nearest even.
#[inline]
fn round_f16(x: f32) -> f32 {
    f16::f16_to_f32(f16::f32_to_f16(x))
}

// ------------------------------------------------------------------------------- rms_norm

/// ggml's `rms_norm` then `mul`: see the module docs. Rows of `weight.len()` values.
pub fn rms_norm_ggml(y: &mut [f32], x: &[f32], weight: &[f32], eps: f32) {
    let n = super::rms_norm::check(y, x, weight);
    if n == 0 {
        return;
    }
    for (yr, xr) in y.chunks_exact_mut(n).zip(x.chunks_exact(n)) {
        let mut sum = 0.0f64;
        for &v in xr {
            sum += (v * v) as f64;
        }
        let mean = (sum / n as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for ((yv, &xv), &wv) in yr.iter_mut().zip(xr).zip(weight) {
            *yv = (xv * scale) * wv;
        }
    }
}

// ----------------------------------------------------------------------------------- rope

/// Rotates every head of `q` and `k` like ggml: the table's (ggml) angles, pairs rotated
/// with the fused multiply-adds of the module docs.
pub fn rope_ggml(q: &mut [f32], k: &mut [f32], s: RopeShape, table: &RopeTable) {
    let m = super::rope::check(q, k, s, table);
    let r = table.rotary_dims();
    let h = r / 2;
    for t in 0..m {
        let (cos, sin) = table.cos_sin(s.pos0 + t);
        for (x, heads) in [(&mut *q, s.n_heads), (&mut *k, s.n_kv_heads)] {
            for head in
                x[t * heads * s.head_dim..(t + 1) * heads * s.head_dim].chunks_exact_mut(s.head_dim)
            {
                for i in 0..h {
                    let (ia, ib) = match s.pairing {
                        RopePairing::Adjacent => (2 * i, 2 * i + 1),
                        RopePairing::Halves => (i, i + h),
                    };
                    let (x0, x1, c, sn) = (head[ia], head[ib], cos[i], sin[i]);
                    head[ia] = x0.mul_add(c, -(x1 * sn));
                    head[ib] = x0.mul_add(sn, x1 * c);
                }
            }
        }
    }
}

/// ggml's angle recurrence for position `p`: `rotary_dims / 2` angles.
pub fn ggml_angles(theta_base: f32, rotary_dims: usize, p: usize) -> impl Iterator<Item = f32> {
    let step = theta_base.powf(-2.0 / rotary_dims as f32);
    let mut theta = p as f32;
    (0..rotary_dims / 2).map(move |_| {
        let t = theta;
        theta *= step;
        t
    })
}

// ------------------------------------------------------------------------------ exp, silu

pub(crate) const EXP_SHIFT: f32 = 12_582_912.0; // 0x1.8p23: adding it rounds to an integer
pub(crate) const LOG2_E: f32 = f32::from_bits(0x3fb8_aa3b); // 0x1.715476p+0
pub(crate) const LN2_HI: f32 = f32::from_bits(0x3f31_7200); // 0x1.62e4p-1
pub(crate) const LN2_LO: f32 = f32::from_bits(0x35bf_be8e); // 0x1.7f7d1cp-20
const C1: f32 = f32::from_bits(0x3f7f_fff6); // 0x1.ffffecp-1
const C2: f32 = f32::from_bits(0x3eff_fedb); // 0x1.fffdb6p-2
const C3: f32 = f32::from_bits(0x3e2a_af33); // 0x1.555e66p-3
const C4: f32 = f32::from_bits(0x3d2b_9f17); // 0x1.573e2ep-5
const C5: f32 = f32::from_bits(0x3c07_2010); // 0x1.0e4020p-7
/// The polynomial's coefficients `[C1, …, C5]` (of `b`, `b²`, … `b⁵`).
pub(crate) const POLY: [f32; 5] = [C1, C2, C3, C4, C5];

/// `j · 2ⁿ` rounded once (AVX-512 `vscalefps`), `n` an integer-valued f32; where
/// `|n| > 192` (so also for infinite `x`) ggml substitutes +∞ (`n > 0`) or 0.
#[inline]
fn scale_pow2(j: f32, n: f32) -> f32 {
    if n.abs() > 192.0 {
        return if n > 0.0 { f32::INFINITY } else { 0.0 };
    }
    if n.is_nan() || j.is_nan() {
        return f32::NAN;
    }
    // j·2ⁿ is exact in f64 for |n| ≤ 300; the conversion rounds once (to nearest even)
    (j as f64 * (n.clamp(-300.0, 300.0) as f64).exp2()) as f32
}

/// ggml's vector `expf` (AVX-512 form), one value: `exp(x)` within 1.5 ulp + 0.5; above
/// 88.38 it is +∞, below −103.97 zero.
pub fn v_expf(x: f32) -> f32 {
    let z = x.mul_add(LOG2_E, EXP_SHIFT);
    let n = z - EXP_SHIFT;
    let b = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, x));
    let u = b * b;
    let j = C5.mul_add(b, C4).mul_add(u, C3.mul_add(b, C2)).mul_add(u, C1.mul_add(b, 1.0));
    scale_pow2(j, n)
}

fn check_silu(y: &[f32], gate: &[f32], up: &[f32]) {
    assert!(
        y.len() == gate.len() && y.len() == up.len(),
        "silu_mul: y {}, gate {}, up {} values",
        y.len(),
        gate.len(),
        up.len()
    );
}

/// `silu(g)·u` with ggml's arithmetic (the specification of [`silu_mul_ggml`]).
pub fn silu_mul_ggml_scalar(y: &mut [f32], gate: &[f32], up: &[f32]) {
    check_silu(y, gate, up);
    for ((y, &g), &u) in y.iter_mut().zip(gate).zip(up) {
        *y = (g / (1.0 + v_expf(0.0 - g))) * u;
    }
}

/// [`silu_mul_ggml_scalar`], 8 values at a time with AVX2 when the CPU has it: the same
/// operations lane by lane, so the same bits.
pub fn silu_mul_ggml(y: &mut [f32], gate: &[f32], up: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::detected().has_avx2_fma() {
        check_silu(y, gate, up);
        let n8 = y.len() / 8 * 8;
        // SAFETY: AVX2 and FMA are present; every pointer offset is below n8 ≤ each length.
        unsafe { silu_mul_avx2(&mut y[..n8], &gate[..n8], &up[..n8]) };
        return silu_mul_ggml_scalar(&mut y[n8..], &gate[n8..], &up[n8..]);
    }
    silu_mul_ggml_scalar(y, gate, up)
}

/// [`silu_mul_ggml_scalar`]'s bits with ggml's own AVX-512 form (16 lanes, `vscalefps`; see
/// `arch::activations_avx512`), every length (a masked last vector). Panics if the CPU lacks
/// AVX-512 (the registry marks the `ggml_avx512` variant unavailable there).
#[cfg(target_arch = "x86_64")]
pub fn silu_mul_ggml_avx512(y: &mut [f32], gate: &[f32], up: &[f32]) {
    assert!(crate::cpu::detected().has_avx512(), "silu_mul_ggml_avx512: this CPU lacks AVX-512");
    check_silu(y, gate, up);
    // SAFETY: AVX-512 F is present (asserted); the three lengths are equal (checked).
    unsafe { crate::arch::activations_avx512::silu_mul_ggml(y, gate, up) }
}

/// [`v_expf`] on 8 lanes. Lanes whose `|n| > 126` (where `2ⁿ` is not a normal f32) go
/// through the scalar form.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) unsafe fn v_expf_avx2(x: __m256) -> __m256 {
    let shift = _mm256_set1_ps(EXP_SHIFT);
    let z = _mm256_fmadd_ps(x, _mm256_set1_ps(LOG2_E), shift);
    let n = _mm256_sub_ps(z, shift);
    let b =
        _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x));
    let u = _mm256_mul_ps(b, b);
    let f = |a: f32, c: f32| _mm256_fmadd_ps(_mm256_set1_ps(a), b, _mm256_set1_ps(c));
    let j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(f(C5, C4), u, f(C3, C2)),
        u,
        _mm256_fmadd_ps(_mm256_set1_ps(C1), b, _mm256_set1_ps(1.0)),
    );
    let abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0), n);
    // NaN compares false here and is caught by the scalar path's NaN check below
    let normal = _mm256_cmp_ps::<_CMP_LE_OQ>(abs_n, _mm256_set1_ps(126.0));
    if _mm256_movemask_ps(normal) == 0xff {
        let pow2 = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        return _mm256_mul_ps(j, _mm256_castsi256_ps(pow2));
    }
    let (mut js, mut ns) = ([0.0f32; 8], [0.0f32; 8]);
    _mm256_storeu_ps(js.as_mut_ptr(), j);
    _mm256_storeu_ps(ns.as_mut_ptr(), n);
    let r: [f32; 8] = std::array::from_fn(|i| scale_pow2(js[i], ns[i]));
    _mm256_loadu_ps(r.as_ptr())
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn silu_mul_avx2(y: &mut [f32], gate: &[f32], up: &[f32]) {
    let one = _mm256_set1_ps(1.0);
    for i in (0..y.len()).step_by(8) {
        let g = _mm256_loadu_ps(gate.as_ptr().add(i));
        let e = v_expf_avx2(_mm256_sub_ps(_mm256_setzero_ps(), g));
        let s = _mm256_div_ps(g, _mm256_add_ps(one, e));
        _mm256_storeu_ps(
            y.as_mut_ptr().add(i),
            _mm256_mul_ps(s, _mm256_loadu_ps(up.as_ptr().add(i))),
        );
    }
}

// ------------------------------------------------------------------------------ attention

/// ggml's f16 dot (AVX-512 build) of `k` (f16 values) and `q` (f16 values): per 64 values,
/// four 16-lane accumulators of fused multiply-adds; then `a0 += a2, a1 += a3, a0 += a1` and
/// a tree sum of `a0`'s 16 lanes (upper 8 + lower 8, upper 4 + lower 4, then
/// `(l0 + l2) + (l1 + l3)`); a tail that is not a multiple of 64 adds in f64.
fn dot_f16_scalar(k: &[f32], q: &[f32]) -> f32 {
    let n = k.len();
    let np = n / 64 * 64;
    let mut acc = [[0.0f32; 16]; 4];
    for i in (0..np).step_by(64) {
        for (j, a) in acc.iter_mut().enumerate() {
            for (l, al) in a.iter_mut().enumerate() {
                let e = i + 16 * j + l;
                *al = k[e].mul_add(q[e], *al);
            }
        }
    }
    let mut a0 = [0.0f32; 16];
    for l in 0..16 {
        a0[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    }
    let t: [f32; 8] = std::array::from_fn(|i| a0[i + 8] + a0[i]);
    let u: [f32; 4] = std::array::from_fn(|i| t[i + 4] + t[i]);
    let mut sum = ((u[0] + u[2]) + (u[1] + u[3])) as f64;
    for e in np..n {
        sum += (k[e] * q[e]) as f64;
    }
    sum as f32
}

/// Online-softmax state of one query row.
#[derive(Clone, Copy)]
struct Online {
    max: f32,
    sum: f32,
}

impl Online {
    /// Takes score `s`; returns `(ms, vs)`: the accumulator is to be scaled by `ms` when the
    /// maximum rose (`ms` is then not 1), and the key's value added with weight `vs`.
    #[inline]
    fn step(&mut self, s: f32) -> (Option<f32>, f32) {
        let (ms, vs) = if s > self.max {
            let old = self.max;
            self.max = s;
            (Some(expf_libc(old - s)), 1.0)
        } else {
            (None, expf_libc(s - self.max))
        };
        self.sum = self.sum.mul_add(ms.unwrap_or(1.0), vs);
        (ms, vs)
    }
}

/// [`attention_ggml`] one value at a time: the specification.
pub fn attention_ggml_scalar(out: &mut [f32], q: &[f32], k: &[f32], v: &[f32], s: AttentionShape) {
    check_shape(out, q, k, v, s);
    let AttentionShape { m, kv_len, capacity, n_heads, n_kv_heads, head_dim: d } = s;
    let group = n_heads / n_kv_heads;
    let scale = 1.0 / (d as f32).sqrt();
    let mut qh = vec![0.0f32; d];
    let mut acc = vec![0.0f32; d];
    for i in 0..m {
        let visible = kv_len - m + i + 1;
        for h in 0..n_heads {
            let g = h / group;
            for (a, &b) in qh.iter_mut().zip(&q[(i * n_heads + h) * d..][..d]) {
                *a = round_f16(b);
            }
            acc.fill(0.0);
            let mut online = Online { max: f32::NEG_INFINITY, sum: 0.0 };
            for j in 0..visible {
                let row = (g * capacity + j) * d;
                let score = dot_f16_scalar(&k[row..row + d], &qh) * scale;
                let (ms, vs) = online.step(score);
                if let Some(ms) = ms {
                    acc.iter_mut().for_each(|a| *a = round_f16(*a * ms));
                }
                for (a, &x) in acc.iter_mut().zip(&v[row..row + d]) {
                    *a = round_f16(x.mul_add(vs, *a));
                }
            }
            let inv = if online.sum == 0.0 { 0.0 } else { 1.0 / online.sum };
            for (o, a) in out[(i * n_heads + h) * d..][..d].iter_mut().zip(&acc) {
                *o = a * inv;
            }
        }
    }
}

/// ggml's flash attention over an f16-valued KV cache (see the module docs); same layout and
/// shapes as [`super::attention::attention_naive`]. K and V must hold f16-representable
/// values. With AVX2/FMA/F16C and `head_dim` 64 or 128 it runs vectorized, otherwise
/// [`attention_ggml_scalar`]; both give the same bits.
pub fn attention_ggml(out: &mut [f32], q: &[f32], k: &[f32], v: &[f32], s: AttentionShape) {
    #[cfg(target_arch = "x86_64")]
    {
        let cpu = crate::cpu::detected();
        if cpu.has_avx2_f16c() && matches!(s.head_dim, 64 | 128) {
            check_shape(out, q, k, v, s);
            // SAFETY: AVX2/FMA/F16C present; shapes checked, head_dim = 64·C.
            return unsafe {
                if s.head_dim == 64 {
                    attention_ggml_avx2::<1>(out, q, k, v, s)
                } else {
                    attention_ggml_avx2::<2>(out, q, k, v, s)
                }
            };
        }
    }
    attention_ggml_scalar(out, q, k, v, s)
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn round_f16_ps(x: __m256) -> __m256 {
    _mm256_cvtph_ps(_mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x))
}

/// The 8-lane sum in the order of [`dot_f16_scalar`]'s last steps: `(hi + lo)`, then
/// `(hi + lo)` of 4, then `(l0 + l2) + (l1 + l3)`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn tree_sum(t: __m256) -> f32 {
    let u = _mm_add_ps(_mm256_extractf128_ps::<1>(t), _mm256_castps256_ps128(t));
    let w = _mm_add_ps(u, _mm_movehl_ps(u, u));
    _mm_cvtss_f32(_mm_add_ss(w, _mm_movehdup_ps(w)))
}

/// Keys per block of [`attention_ggml_avx2`]: a block of K and of V (32 × 64 × 4 B = 8 KiB
/// each at `head_dim` 64) stays in L1 while every row of the tile goes through it.
#[cfg(target_arch = "x86_64")]
const GGML_KEYS: usize = 32;

/// Query rows per tile of [`attention_ggml_avx2`] (at most; whole KV groups of heads).
#[cfg(target_arch = "x86_64")]
const GGML_ROWS: usize = 12;

/// ggml's f16 dot of the K row at `kp` and a query (see [`dot_f16_scalar`]), `head_dim` = 64·C,
/// up to the last tree sum: its 16 lanes folded to 8 ([`tree_sum`] finishes it).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dot_f16_lanes<const C: usize>(kp: *const f32, qh: &[[__m256; 8]; C]) -> __m256 {
    // 16-lane accumulator a_j = registers (2j, 2j + 1) of 8 lanes
    let mut a = [_mm256_setzero_ps(); 8];
    for (c, qc) in qh.iter().enumerate() {
        for (r, ar) in a.iter_mut().enumerate() {
            *ar = _mm256_fmadd_ps(_mm256_loadu_ps(kp.add(64 * c + 8 * r)), qc[r], *ar);
        }
    }
    // a0 += a2, a1 += a3, a0 += a1 (lower and upper 8 lanes alike)
    let lo = _mm256_add_ps(_mm256_add_ps(a[0], a[4]), _mm256_add_ps(a[2], a[6]));
    let hi = _mm256_add_ps(_mm256_add_ps(a[1], a[5]), _mm256_add_ps(a[3], a[7]));
    _mm256_add_ps(hi, lo)
}

/// [`tree_sum`] of eight vectors at once, lane `i` of the result the sum of `t[i]`: the same
/// additions, transposed so that each instruction does them for several vectors.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tree_sum8(t: &[__m256; 8]) -> __m256 {
    // u = hi + lo: [u(t_k) | u(t_{k+4})]
    let u: [__m256; 4] = std::array::from_fn(|k| {
        let lo = _mm256_permute2f128_ps::<0x20>(t[k], t[k + 4]);
        _mm256_add_ps(_mm256_permute2f128_ps::<0x31>(t[k], t[k + 4]), lo)
    });
    // w = (u0 + u2, u1 + u3): [w(t_k), w(t_{k+1}) | w(t_{k+4}), w(t_{k+5})] for k = 0, 2
    let w: [__m256; 2] = std::array::from_fn(|h| {
        let (a, b) = (u[2 * h], u[2 * h + 1]);
        let low = _mm256_shuffle_ps::<0b01_00_01_00>(a, b);
        _mm256_add_ps(low, _mm256_shuffle_ps::<0b11_10_11_10>(a, b))
    });
    // w0 + w1, in order t0..t3 | t4..t7
    let w0 = _mm256_shuffle_ps::<0b10_00_10_00>(w[0], w[1]);
    _mm256_add_ps(w0, _mm256_shuffle_ps::<0b11_01_11_01>(w[0], w[1]))
}

/// Per-row state of a tile of [`attention_ggml_avx2`]: the f16 query, the f16 accumulator,
/// the online softmax.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct GgmlRow<const C: usize> {
    q: [[__m256; 8]; C],
    acc: [[__m256; 8]; C],
    online: Online,
}

/// The vector form of [`attention_ggml_scalar`], `head_dim` = 64·C. A tile is up to
/// [`GGML_ROWS`] rows (consecutive query positions × the query heads of one KV head) that go
/// through the keys together, [`GGML_KEYS`] at a time: each block of K and V is read from
/// memory once for all of them. Within a block, a row takes its scores, then its softmax
/// steps, then its accumulator updates; every row still sees its own keys (causal: later
/// positions see more) in order, with the scalar form's arithmetic, so the bits are the same.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn attention_ggml_avx2<const C: usize>(
    out: &mut [f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    s: AttentionShape,
) {
    let AttentionShape { m, kv_len, capacity, n_heads, n_kv_heads, head_dim: d } = s;
    debug_assert_eq!(d, 64 * C);
    let group = n_heads / n_kv_heads;
    let scale = 1.0 / (d as f32).sqrt();
    let positions = (GGML_ROWS / group).max(1);
    let zero = [[_mm256_setzero_ps(); 8]; C];
    let fresh = GgmlRow { q: zero, acc: zero, online: Online { max: f32::NEG_INFINITY, sum: 0.0 } };
    let mut rows = vec![fresh; positions * group];
    let scalev = _mm256_set1_ps(scale);
    let (mut scores, mut rescale, mut weight) =
        ([0.0f32; GGML_KEYS], [1.0f32; GGML_KEYS], [0.0f32; GGML_KEYS]);
    for g in 0..n_kv_heads {
        let (kg, vg) = (k.as_ptr().add(g * capacity * d), v.as_ptr().add(g * capacity * d));
        for i0 in (0..m).step_by(positions) {
            let np = positions.min(m - i0);
            // row r: position i0 + r / group, head g·group + r % group
            let tile = &mut rows[..np * group];
            for (r, row) in tile.iter_mut().enumerate() {
                *row = fresh;
                let qp = q.as_ptr().add(((i0 + r / group) * n_heads + g * group + r % group) * d);
                for (c, qc) in row.q.iter_mut().enumerate() {
                    for (e, x) in qc.iter_mut().enumerate() {
                        *x = round_f16_ps(_mm256_loadu_ps(qp.add(64 * c + 8 * e)));
                    }
                }
            }
            // keys the tile's first position sees; the others see one more each
            let first = kv_len - m + i0 + 1;
            for j0 in (0..first + np - 1).step_by(GGML_KEYS) {
                for (r, row) in tile.iter_mut().enumerate() {
                    let visible = first + r / group;
                    if visible <= j0 {
                        continue;
                    }
                    let n = GGML_KEYS.min(visible - j0);
                    let kp = |j: usize| kg.add((j0 + j) * d);
                    // scores, eight keys at a time, then the rest one by one
                    let mut j = 0;
                    while j + 8 <= n {
                        let t = std::array::from_fn(|u| dot_f16_lanes(kp(j + u), &row.q));
                        _mm256_storeu_ps(
                            scores[j..].as_mut_ptr(),
                            _mm256_mul_ps(tree_sum8(&t), scalev),
                        );
                        j += 8;
                    }
                    for (j, sc) in scores[..n].iter_mut().enumerate().skip(j) {
                        *sc = tree_sum(dot_f16_lanes(kp(j), &row.q)) * scale;
                    }
                    // softmax steps; a rescale by 1 would leave the f16 accumulator as it is
                    let mut online = row.online;
                    for j in 0..n {
                        let (m, w) = online.step(scores[j]);
                        (rescale[j], weight[j]) = (m.unwrap_or(1.0), w);
                    }
                    row.online = online;
                    let mut acc = row.acc;
                    for j in 0..n {
                        if rescale[j] != 1.0 {
                            let msv = _mm256_set1_ps(rescale[j]);
                            acc.iter_mut().flatten().for_each(|a| {
                                *a = round_f16_ps(_mm256_mul_ps(*a, msv));
                            });
                        }
                        let vp = vg.add((j0 + j) * d);
                        let vsv = _mm256_set1_ps(weight[j]);
                        for (c, ac) in acc.iter_mut().enumerate() {
                            for (e, a) in ac.iter_mut().enumerate() {
                                let x = _mm256_loadu_ps(vp.add(64 * c + 8 * e));
                                *a = round_f16_ps(_mm256_fmadd_ps(x, vsv, *a));
                            }
                        }
                    }
                    row.acc = acc;
                }
            }
            for (r, row) in tile.iter().enumerate() {
                let sum = row.online.sum;
                let inv = _mm256_set1_ps(if sum == 0.0 { 0.0 } else { 1.0 / sum });
                let op =
                    out.as_mut_ptr().add(((i0 + r / group) * n_heads + g * group + r % group) * d);
                for (c, ac) in row.acc.iter().enumerate() {
                    for (e, a) in ac.iter().enumerate() {
                        _mm256_storeu_ps(op.add(64 * c + 8 * e), _mm256_mul_ps(*a, inv));
                    }
                }
            }
        }
    }
}
