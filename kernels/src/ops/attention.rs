//! Causal multi-head attention with grouped KV heads over a KV cache.
//!
//! `out[i, h] = Σ_{j ≤ kv_len − m + i} softmax_j(q[i, h] · K[g, j] / √head_dim) · V[g, j]`
//! with `g = h / (n_heads / n_kv_heads)` (grouped-query attention).
//!
//! Shapes ([`AttentionShape`]):
//! - `q, out: [m, n_heads, head_dim]` row-major (token-major, as `linear` produces them);
//! - **KV cache layout**, K and V alike: head-major `[n_kv_heads][capacity][head_dim]`, the
//!   first `kv_len` positions of each head filled (`m ≤ kv_len ≤ capacity`). Head `g`'s keys
//!   are one contiguous `[capacity, head_dim]` block, so flash attention streams them in tiles.
//!   Positions `kv_len..capacity` are never read.
//! - The `m` new tokens are at positions `kv_len − m .. kv_len − 1` (their K and V already
//!   written to the cache); query `i` sees keys `0 ..= kv_len − m + i`. Decode is `m = 1`,
//!   prefill `m > 1` (with or without earlier tokens in the cache).
//!
//! **Splitting across threads** by KV head: for decode (`m = 1`) the query heads of KV head
//! `g` are the contiguous slice `q[g·group·head_dim .. (g+1)·group·head_dim]` (same for
//! `out`, `group = n_heads / n_kv_heads`) and its cache is `k[g·capacity·head_dim ..]` of
//! length `capacity·head_dim`: call with `n_heads = group, n_kv_heads = 1` on those slices.
//!
//! Variants: `naive` (f64 scores materialized per query, softmax, then `P·V`), `simd` (the
//! same algorithm in f32 with AVX2, blocked so the queries sharing a KV head share each K and
//! V load: [`attention_simd`]), `flash` (online softmax over tiles of [`FLASH_TILE`] keys, no
//! score matrix, `f32x8` dot products and [`fast_exp`]; the query heads sharing a KV head
//! walk each tile together) and `tiled` ([`attention_tiled`]: a prefill batch through 64-key
//! tiles as small GEMMs).

use wide::f32x8;

use super::fast_math::fast_exp;
use crate::registry::{self, always, Buffer, Case, CaseSet, OpInfo, Shape, Unit, Variant};
use crate::tolerance::Tolerance;

/// Dimensions of one call (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    /// New tokens (queries).
    pub m: usize,
    /// Filled cache positions, the new tokens included.
    pub kv_len: usize,
    /// Positions the cache holds per KV head (its row stride is `capacity · head_dim`).
    pub capacity: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

/// `(out, q, k_cache, v_cache, shape)`; see the module docs.
pub type AttentionFn = fn(&mut [f32], &[f32], &[f32], &[f32], AttentionShape);

/// Keys per flash tile: a tile of K and of V (32 × 64 × 4 B = 8 KiB each) stays in L1 while
/// every query head of the group uses it.
pub const FLASH_TILE: usize = 32;

/// Panics with the numbers if the slices do not match `s`.
pub fn check_shape(out: &[f32], q: &[f32], k: &[f32], v: &[f32], s: AttentionShape) {
    let AttentionShape { m, kv_len, capacity, n_heads, n_kv_heads, head_dim } = s;
    assert!(
        n_kv_heads > 0 && n_heads % n_kv_heads == 0,
        "attention: n_heads {n_heads} is not a multiple of n_kv_heads {n_kv_heads}"
    );
    assert!(
        m <= kv_len && kv_len <= capacity,
        "attention: need m {m} ≤ kv_len {kv_len} ≤ capacity {capacity}"
    );
    let qn = m * n_heads * head_dim;
    assert_eq!(q.len(), qn, "attention: q has {} values, want m·n_heads·head_dim = {qn}", q.len());
    assert_eq!(out.len(), qn, "attention: out has {} values, want {qn}", out.len());
    let cn = n_kv_heads * capacity * head_dim;
    assert_eq!(
        k.len(),
        cn,
        "attention: k cache has {} values, want n_kv_heads·capacity·head_dim = {cn}",
        k.len()
    );
    assert_eq!(v.len(), cn, "attention: v cache has {} values, want {cn}", v.len());
}

/// Materialized f64 scores, softmax, then `P·V`: the specification.
pub fn attention_naive(out: &mut [f32], q: &[f32], k: &[f32], v: &[f32], s: AttentionShape) {
    check_shape(out, q, k, v, s);
    let AttentionShape { m, kv_len, capacity, n_heads, n_kv_heads, head_dim: d } = s;
    let group = n_heads / n_kv_heads;
    let scale = 1.0 / (d as f64).sqrt();
    let mut scores = vec![0.0f64; kv_len];
    let mut acc = vec![0.0f64; d];
    for i in 0..m {
        let visible = kv_len - m + i + 1;
        for h in 0..n_heads {
            let g = h / group;
            let qh = &q[(i * n_heads + h) * d..][..d];
            for (j, sj) in scores[..visible].iter_mut().enumerate() {
                let kj = &k[(g * capacity + j) * d..][..d];
                *sj = qh.iter().zip(kj).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() * scale;
            }
            let max = scores[..visible].iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            let mut sum = 0.0;
            for sj in &mut scores[..visible] {
                *sj = (*sj - max).exp();
                sum += *sj;
            }
            acc.fill(0.0);
            for (j, pj) in scores[..visible].iter().enumerate() {
                let vj = &v[(g * capacity + j) * d..][..d];
                for (a, b) in acc.iter_mut().zip(vj) {
                    *a += pj * *b as f64;
                }
            }
            for (o, a) in out[(i * n_heads + h) * d..][..d].iter_mut().zip(&acc) {
                *o = (a / sum) as f32;
            }
        }
    }
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let d8 = a.len() / 8 * 8;
    let mut acc = [f32x8::ZERO; 2];
    let mut i = 0;
    while i + 16 <= d8 {
        acc[0] = f32x8::from(&a[i..i + 8]).mul_add(f32x8::from(&b[i..i + 8]), acc[0]);
        acc[1] = f32x8::from(&a[i + 8..i + 16]).mul_add(f32x8::from(&b[i + 8..i + 16]), acc[1]);
        i += 16;
    }
    if i < d8 {
        acc[0] = f32x8::from(&a[i..i + 8]).mul_add(f32x8::from(&b[i..i + 8]), acc[0]);
    }
    let mut s = (acc[0] + acc[1]).reduce_add();
    for t in d8..a.len() {
        s = a[t].mul_add(b[t], s);
    }
    s
}

/// `s_j = (q · k_j) · scale` for the `s.len()` keys of a tile (`k_tile: [s.len(), d]`).
/// Eight keys at a time: one accumulator per key (each q chunk is loaded once for the eight
/// keys), then an 8×8 transpose turns the eight accumulators into one vector of eight sums.
#[inline(always)]
fn scores(s: &mut [f32], q: &[f32], k_tile: &[f32], scale: f32) {
    let d = q.len();
    let d8 = d / 8 * 8;
    let n8 = s.len() / 8 * 8;
    let sv = f32x8::splat(scale);
    for j0 in (0..n8).step_by(8) {
        let keys: [&[f32]; 8] = std::array::from_fn(|t| &k_tile[(j0 + t) * d..(j0 + t + 1) * d]);
        let mut acc = [f32x8::ZERO; 8];
        for c in (0..d8).step_by(8) {
            let qv = f32x8::from(&q[c..c + 8]);
            for t in 0..8 {
                acc[t] = qv.mul_add(f32x8::from(&keys[t][c..c + 8]), acc[t]);
            }
        }
        let tr = f32x8::transpose(acc);
        let sum = ((tr[0] + tr[1]) + (tr[2] + tr[3])) + ((tr[4] + tr[5]) + (tr[6] + tr[7]));
        let mut out = (sum * sv).to_array();
        if d8 < d {
            for (t, o) in out.iter_mut().enumerate() {
                let tail: f32 = q[d8..].iter().zip(&keys[t][d8..]).map(|(a, b)| a * b).sum();
                *o += tail * scale;
            }
        }
        s[j0..j0 + 8].copy_from_slice(&out);
    }
    for (j, sj) in s.iter_mut().enumerate().skip(n8) {
        *sj = dot(q, &k_tile[j * d..(j + 1) * d]) * scale;
    }
}

/// `acc[..8·NV] = acc · c + Σ_j p_j · v_j[..8·NV]`, the NV accumulator vectors held in
/// registers across every key of the tile.
#[inline(always)]
fn pv_block<const NV: usize>(
    acc: &mut [f32],
    c: f32,
    p: &[f32],
    v_tile: &[f32],
    d: usize,
    off: usize,
) {
    let cv = f32x8::splat(c);
    let mut regs: [f32x8; NV] =
        std::array::from_fn(|t| f32x8::from(&acc[off + 8 * t..off + 8 * t + 8]) * cv);
    for (j, pj) in p.iter().enumerate() {
        let pv = f32x8::splat(*pj);
        let vj = &v_tile[j * d + off..j * d + off + 8 * NV];
        for t in 0..NV {
            regs[t] = f32x8::from(&vj[8 * t..8 * t + 8]).mul_add(pv, regs[t]);
        }
    }
    for t in 0..NV {
        acc[off + 8 * t..off + 8 * t + 8].copy_from_slice(regs[t].as_array());
    }
}

/// `acc = acc · c + Σ_j p_j · v_j` over the rows of one tile: 64 dimensions at a time in
/// registers, then single vectors, then the scalar tail.
#[inline(always)]
fn rescale_accumulate(acc: &mut [f32], c: f32, p: &[f32], v_tile: &[f32]) {
    let d = acc.len();
    let mut off = 0;
    while off + 64 <= d {
        pv_block::<8>(acc, c, p, v_tile, d, off);
        off += 64;
    }
    while off + 8 <= d {
        pv_block::<1>(acc, c, p, v_tile, d, off);
        off += 8;
    }
    for t in off..d {
        let mut a = acc[t] * c;
        for (j, pj) in p.iter().enumerate() {
            a = v_tile[j * d + t].mul_add(*pj, a);
        }
        acc[t] = a;
    }
}

/// Online softmax over tiles of [`FLASH_TILE`] keys (no score matrix): per query head a
/// running max `μ`, sum `ℓ` and output accumulator; each tile's scores
/// `s_j = q·k_j/√d` rescale them by `e^(μ_old − μ_new)` and add `e^(s_j − μ_new)·v_j`.
pub fn attention_flash(out: &mut [f32], q: &[f32], k: &[f32], v: &[f32], s: AttentionShape) {
    check_shape(out, q, k, v, s);
    let AttentionShape { m, kv_len, capacity, n_heads, n_kv_heads, head_dim: d } = s;
    if m == 0 || d == 0 {
        return;
    }
    let group = n_heads / n_kv_heads;
    let scale = 1.0 / (d as f32).sqrt();
    // per group head: running max, running sum, accumulator [d]
    let mut max = vec![f32::NEG_INFINITY; group];
    let mut sum = vec![0.0f32; group];
    let mut acc = vec![0.0f32; group * d];
    let mut p = [0.0f32; FLASH_TILE];
    for g in 0..n_kv_heads {
        let k_head = &k[g * capacity * d..][..kv_len * d];
        let v_head = &v[g * capacity * d..][..kv_len * d];
        for i in 0..m {
            let visible = kv_len - m + i + 1;
            max.fill(f32::NEG_INFINITY);
            sum.fill(0.0);
            acc.fill(0.0);
            for t0 in (0..visible).step_by(FLASH_TILE) {
                let tn = FLASH_TILE.min(visible - t0);
                let k_tile = &k_head[t0 * d..(t0 + tn) * d];
                let v_tile = &v_head[t0 * d..(t0 + tn) * d];
                for hg in 0..group {
                    let h = g * group + hg;
                    let qh = &q[(i * n_heads + h) * d..][..d];
                    let p = &mut p[..tn];
                    scores(p, qh, k_tile, scale);
                    let tile_max = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let new_max = max[hg].max(tile_max);
                    let correction = super::fast_math::fast_exp_scalar(max[hg] - new_max);
                    let nm = f32x8::splat(new_max);
                    let t8 = tn / 8 * 8;
                    let mut tile_sum = f32x8::ZERO;
                    for c in p[..t8].chunks_exact_mut(8) {
                        let e = fast_exp(f32x8::from(&c[..]) - nm);
                        tile_sum += e;
                        c.copy_from_slice(e.as_array());
                    }
                    let mut ts = tile_sum.reduce_add();
                    for pj in &mut p[t8..] {
                        *pj = super::fast_math::fast_exp_scalar(*pj - new_max);
                        ts += *pj;
                    }
                    sum[hg] = sum[hg] * correction + ts;
                    max[hg] = new_max;
                    rescale_accumulate(&mut acc[hg * d..(hg + 1) * d], correction, p, v_tile);
                }
            }
            for hg in 0..group {
                let h = g * group + hg;
                let inv = 1.0 / sum[hg];
                for (o, a) in
                    out[(i * n_heads + h) * d..][..d].iter_mut().zip(&acc[hg * d..(hg + 1) * d])
                {
                    *o = a * inv;
                }
            }
        }
    }
}

/// The standard algorithm of [`attention_naive`] in f32 with AVX2/FMA
/// (`arch/attention_avx2.rs`): per block of query rows that share a KV head (up to 16
/// tokens × the group's heads), the scores `S = Q·Kᵀ/√d` materialized (K transposed, 6 rows ×
/// 16 keys per register block), a softmax per row over its visible keys (`e^(s − max)` by
/// [`fast_exp_sat`](super::fast_math::fast_exp_sat), the sum `ℓ` kept), then `O = P·V / ℓ`
/// (2 rows × 32 dimensions per register block). K and V go in tiles of 64 keys that every
/// row of the block uses while they are in L1; the block's scores stay in L2 between the
/// passes. No online softmax and no tiling of the softmax: that is what `flash` and `tiled`
/// add. A row's bits do not depend on the other queries of the call (nor on a split of them).
/// Without AVX2/FMA (another architecture) it runs [`attention_naive`].
pub fn attention_simd(out: &mut [f32], q: &[f32], k: &[f32], v: &[f32], s: AttentionShape) {
    check_shape(out, q, k, v, s);
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::detected().has_avx2_fma() {
        // SAFETY: AVX2 and FMA present; the slices match `s` (checked above).
        return unsafe { crate::arch::attention_avx2::attention(out, q, k, v, s) };
    }
    attention_naive(out, q, k, v, s)
}

/// Flash attention from the `simd` variant's micro-kernels (`arch/attention_flash_avx2.rs`):
/// per block of query rows that share a KV head (up to 16 tokens × the group's heads) and per
/// tile of 64 keys, the scores `S = Q·K_tileᵀ/√d` into an L1 buffer (K transposed, 6 rows × 16
/// keys per register block; a decode scores K rows in place, 3 query heads × 4 keys), an
/// online-softmax step per row (running max `μ` and sum `ℓ`; the accumulator is rescaled by
/// `e^(μ_old − μ_new)` only when `μ` rises, as it is loaded), then `O ← c·O + P·V_tile`
/// (3 rows × 32 dimensions per register block) while the tile is hot; `O/ℓ` at the end. K and
/// V are read once per block (a decode streams them once for all the group's heads).
/// A row's bits do not depend on the other queries of the call, nor on a split of a prefill
/// into calls of two tokens or more. Without AVX2/FMA it runs [`attention_flash`].
pub fn attention_flash_avx2(out: &mut [f32], q: &[f32], k: &[f32], v: &[f32], s: AttentionShape) {
    check_shape(out, q, k, v, s);
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::detected().has_avx2_fma() {
        // SAFETY: AVX2 and FMA present; the slices match `s` (checked above).
        return unsafe { crate::arch::attention_flash_avx2::attention(out, q, k, v, s) };
    }
    attention_flash(out, q, k, v, s)
}

/// A batch of queries (prefill) as ggml's tiled flash attention does it,
/// [`attention_ggml_tiled`](super::ggml_tiled::attention_ggml_tiled): blocks of queries
/// through 64-key tiles as small FMA GEMMs, K transposed once per call (AVX2/FMA; accurate to
/// a few f32 ulps on any f32 K and V, not only f16 values). A single query (decode) has no
/// GEMM to make and would pay the transpose for one row: it runs [`attention_flash`].
pub fn attention_tiled(out: &mut [f32], q: &[f32], k: &[f32], v: &[f32], s: AttentionShape) {
    if s.m <= 1 {
        attention_flash(out, q, k, v, s)
    } else {
        super::ggml_tiled::attention_ggml_tiled(out, q, k, v, s)
    }
}

/// The `attention` variant named `variant` (`naive`, `simd`, `flash`, `tiled`).
pub fn select(variant: &str) -> Option<AttentionFn> {
    match variant {
        "naive" => Some(attention_naive),
        "simd" => Some(attention_simd),
        "flash" => Some(attention_flash),
        "tiled" => Some(attention_tiled),
        "flash_avx2" => Some(attention_flash_avx2),
        _ => None,
    }
}

fn shapes(set: CaseSet) -> Vec<Shape> {
    // (m, kv, heads, kv_heads, d)
    let dims: Vec<[usize; 5]> = match set {
        // SmolLM2: 9 query heads, 3 KV heads of 64; decode over 128/512/2048 cached positions,
        // prefill of 64 tokens into an empty cache and after 448 cached tokens
        CaseSet::Model => vec![
            [1, 128, 9, 3, 64],
            [1, 512, 9, 3, 64],
            [1, 2048, 9, 3, 64],
            [64, 64, 9, 3, 64],
            [64, 512, 9, 3, 64],
        ],
        CaseSet::Sweep => (6..=12).map(|p| [1, 1 << p, 9, 3, 64]).collect(),
        CaseSet::Test => {
            let mut v = Vec::new();
            for [heads, kv_heads] in [[9, 3], [2, 1], [4, 4]] {
                for d in [64, 8, 5, 19] {
                    for [m, kv] in [
                        [0, 0],
                        [0, 5],
                        [1, 1],
                        [1, 2],
                        [1, 17],
                        [1, 100],
                        [3, 3],
                        [3, 40],
                        [5, 70],
                        [17, 17],
                        [8, 130],
                    ] {
                        v.push([m, kv, heads, kv_heads, d]);
                    }
                }
            }
            v
        }
    };
    dims.into_iter()
        .map(|[m, kv, heads, kv_heads, d]| {
            Shape::new(&[("m", m), ("kv", kv), ("heads", heads), ("kv_heads", kv_heads), ("d", d)])
        })
        .collect()
}

/// Spare cache positions beyond `kv_len` in the cases: filled with NaN, so a variant that
/// reads past the filled part is caught.
const SPARE: usize = 3;

fn attention_shape(shape: &Shape) -> AttentionShape {
    AttentionShape {
        m: shape.get("m"),
        kv_len: shape.get("kv"),
        capacity: shape.get("kv") + SPARE,
        n_heads: shape.get("heads"),
        n_kv_heads: shape.get("kv_heads"),
        head_dim: shape.get("d"),
    }
}

/// `q, k, v` uniform in [-2, 2) (scores spread over several units, so the softmax is neither
/// flat nor one-hot); cache positions past `kv_len` are NaN.
fn prepare(shape: &Shape, seed: u64) -> Case {
    let s = attention_shape(shape);
    let mut rng = registry::rng(seed);
    let q = registry::uniform(&mut rng, s.m * s.n_heads * s.head_dim, 2.0);
    let mut cache = || {
        let mut c = vec![f32::NAN; s.n_kv_heads * s.capacity * s.head_dim];
        for g in 0..s.n_kv_heads {
            let filled = registry::uniform(&mut rng, s.kv_len * s.head_dim, 2.0);
            c[g * s.capacity * s.head_dim..][..s.kv_len * s.head_dim].copy_from_slice(&filled);
        }
        c
    };
    let (k, v) = (cache(), cache());
    Case::new(
        shape.clone(),
        vec![Buffer::F32(q), Buffer::F32(k), Buffer::F32(v)],
        registry::nan_output(s.m * s.n_heads * s.head_dim),
    )
}

fn run(variant: AttentionFn, case: &mut Case) {
    let s = attention_shape(&case.shape);
    let (inputs, out) = case.io();
    variant(out, inputs[0].f32(), inputs[1].f32(), inputs[2].f32(), s);
}

/// Multiply-adds of `q·k` and `p·v` over the visible keys of every query and head.
fn flops(shape: &Shape) -> f64 {
    let s = attention_shape(shape);
    let visible: usize = (0..s.m).map(|i| s.kv_len - s.m + i + 1).sum();
    4.0 * (visible * s.n_heads * s.head_dim) as f64
}

fn bytes(shape: &Shape) -> f64 {
    let s = attention_shape(shape);
    4.0 * (2 * s.m * s.n_heads * s.head_dim + 2 * s.n_kv_heads * s.kv_len * s.head_dim) as f64
}

pub fn op_infos() -> Vec<OpInfo> {
    vec![OpInfo {
        name: "attention",
        summary: "causal GQA attention of q [m,heads,d] over a head-major KV cache [kv_heads][capacity][d] of kv_len positions",
        unit: Unit::GflopPerS,
        // f32 scores (|s| ≲ 16, error ~ √d·ε·Σ|qk|/√d ≈ 1e-6 absolute) enter e^s: a relative
        // error ~1e-6 on the weights; the output is a convex combination of V (|v| < 2).
        // Worst seen over the test and model shapes: 1.1e-6.
        tolerance: Tolerance::AbsRel { abs: 4e-6, rel: 4e-6 },
        shapes,
        prepare,
        flops,
        bytes,
        magnitude: None,
    }]
}

pub fn variants() -> Vec<Variant> {
    vec![
        Variant {
            op: "attention",
            name: "naive",
            summary: "f64 scores materialized per query, softmax, then P·V",
            available: always,
            run: |c| run(attention_naive, c),
        },
        Variant {
            op: "attention",
            name: "simd",
            summary: "f32 scores materialized per block of queries sharing a KV head (AVX2, K \
                      transposed, 64-key tiles), fast_exp softmax, then P·V",
            available: registry::needs_avx2,
            run: |c| run(attention_simd, c),
        },
        Variant {
            op: "attention",
            name: "flash",
            summary: "online softmax over 32-key tiles, f32x8 dots and fast_exp, no score matrix",
            available: always,
            run: |c| run(attention_flash, c),
        },
        Variant {
            op: "attention",
            name: "tiled",
            summary:
                "query blocks × 64-key tiles as FMA GEMMs (ggml's tiled path); decode as flash",
            available: registry::needs_avx2,
            run: |c| run(attention_tiled, c),
        },
        Variant {
            op: "attention",
            name: "flash_avx2",
            summary: "online softmax over 64-key tiles with the simd variant's register blocks \
                      (6x16 scores on transposed K, 3x32 P·V; decode: dot products, K and V \
                      streamed once), rescale only when the max rises",
            available: registry::needs_avx2,
            run: |c| run(attention_flash_avx2, c),
        },
    ]
}
