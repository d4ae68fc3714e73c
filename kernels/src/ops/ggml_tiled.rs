//! ggml's *tiled* flash attention, the path its CPU backend takes for a batch of at least
//! [`TILED_MIN_QUERIES`] query tokens (a prefill ubatch), reproduced to the bit.
//!
//! ggml (0.25.3) has two CPU flash attentions. A batch of fewer than 64 query tokens (decode,
//! short prompts) runs one query row at a time with an f16 accumulator:
//! [`attention_ggml`](super::ggml::attention_ggml). A batch of 64 or more runs tiles of 64
//! queries × 64 keys as small f32 GEMMs, and its arithmetic differs in every step:
//! - Q stays f32 (not rounded to f16); a score is one fused multiply-add chain over the head
//!   dimension in order, `s = fma(q[63], k[63], … fma(q[0], k[0], +0))`, then `· scale`.
//! - Keys go in tiles of 64 at absolute positions `64t .. 64t + 64` (a row skips a tile that
//!   holds none of its visible keys). Per tile: `M' = max(M, max of the tile's scores)`; when
//!   `M' > M` the accumulator and `S` are scaled by `ms = expf(M − M')` (the C library's
//!   `expf`); every weight is `p = v_expf(s − M')` (ggml's vector `expf`) and `S` takes their
//!   sum: per vector of the build's width, a tree sum of its lanes, added in f64, then
//!   `S = (f32)((f64)S + sum)`.
//! - The accumulator is f32: per output element one fused multiply-add chain over the tile's
//!   keys in order, `acc = fma(p_j, v_j, acc)`, continued from tile to tile.
//! - Output: `acc · (1/S)` (0 when `S` is 0).
//!
//! Per query row this depends only on that row, its keys and the tile boundaries, not on
//! which rows share a tile or thread, so any split of the batch gives the same bits. Masked
//! and padding keys add exact zeros in ggml, which change nothing (up to the sign of a zero
//! accumulator element, which no later op can see).
//!
//! Two x86 builds of ggml differ in the width-dependent steps (`v_expf`'s form, the lane sum
//! of `S`): [`GgmlBuild::Avx512`] is the arithmetic the model reproduces (the build that made
//! the project's llama.cpp reference data); [`GgmlBuild::Avx2`] is there so the scalar form
//! can be checked bit for bit against an AVX2 build of ggml run on this machine
//! (`kernels/tests/data/ggml_fa_tiled/`).

use super::attention::{check_shape, AttentionShape};
use super::ggml::{v_expf, EXP_SHIFT, LN2_HI, LN2_LO, LOG2_E, POLY};
use super::libc_expf::expf_libc;

/// Query tokens in a batch from which ggml takes the tiled path (`GGML_FA_TILE_Q`).
pub const TILED_MIN_QUERIES: usize = 64;

/// Keys per tile (`GGML_FA_TILE_KV`).
const KV_TILE: usize = 64;

/// An x86 build of ggml's CPU backend, by vector width (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgmlBuild {
    /// AVX-512 F/DQ: 16-lane `v_expf` (`vscalefps`), softmax sums of 16 lanes.
    Avx512,
    /// AVX2/FMA: 8-lane `v_expf` (`k + k·j`), softmax sums of 8 lanes.
    Avx2,
}

impl GgmlBuild {
    fn lanes(self) -> usize {
        match self {
            GgmlBuild::Avx512 => 16,
            GgmlBuild::Avx2 => 8,
        }
    }

    fn expf(self, x: f32) -> f32 {
        match self {
            GgmlBuild::Avx512 => v_expf(x),
            GgmlBuild::Avx2 => v_expf_avx2_build(x),
        }
    }
}

/// ggml's vector `expf` as its AVX2 build computes it, one lane: the same reduction and
/// polynomial as [`v_expf`] without the constant term, then `k + k·j` with `k = 2ⁿ` built in
/// the exponent bits; lanes with `|n| > 126` rescale in two steps, `|n| > 192` saturate.
pub fn v_expf_avx2_build(x: f32) -> f32 {
    let [c1, c2, c3, c4, c5] = POLY;
    let z = x.mul_add(LOG2_E, EXP_SHIFT);
    let n = z - EXP_SHIFT;
    let b = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, x));
    let e = z.to_bits() << 23;
    let k = f32::from_bits(e.wrapping_add(1.0f32.to_bits()));
    let u = b * b;
    let j = c5.mul_add(b, c4).mul_add(u, c3.mul_add(b, c2)).mul_add(u, c1 * b);
    // a NaN compares false, as in the vector compares (_CMP_GT_OQ): the usual path
    if n.abs() <= 126.0 || n.is_nan() {
        return j.mul_add(k, k);
    }
    let g: u32 = if n <= 0.0 { 0x8200_0000 } else { 0 };
    let s1 = f32::from_bits(g.wrapping_add(0x7f00_0000));
    let s2 = f32::from_bits(e.wrapping_sub(g));
    if n.abs() > 192.0 {
        s1 * s1
    } else {
        s2.mul_add(j, s2) * s1
    }
}

/// The tree sum of `lanes` values as ggml's reduction of one vector does it: the upper half
/// added to the lower half down to 4 lanes, then `(l0 + l2) + (l1 + l3)`.
fn tree_sum(x: &[f32]) -> f32 {
    let mut t = x.to_vec();
    while t.len() > 4 {
        let h = t.len() / 2;
        t = (0..h).map(|i| t[i + h] + t[i]).collect();
    }
    (t[0] + t[2]) + (t[1] + t[3])
}

/// Online-softmax state of one query row.
#[derive(Clone, Copy)]
struct RowState {
    max: f32,
    sum: f32,
}

impl RowState {
    const FRESH: RowState = RowState { max: f32::NEG_INFINITY, sum: 0.0 };

    /// Takes a tile's largest score; returns the factor to scale the accumulator by, if the
    /// maximum rose.
    #[inline]
    fn raise(&mut self, tile_max: f32) -> Option<f32> {
        let new = self.max.max(tile_max);
        let ms = (new > self.max).then(|| expf_libc(self.max - new));
        if let Some(ms) = ms {
            self.sum *= ms;
        }
        self.max = new;
        ms
    }

    /// Adds a tile's weights, summed as the build sums them (`sum` in f64 of lane sums).
    #[inline]
    fn add(&mut self, sum: f64) {
        self.sum = (self.sum as f64 + sum) as f32;
    }

    fn inverse(&self) -> f32 {
        if self.sum == 0.0 {
            0.0
        } else {
            1.0 / self.sum
        }
    }
}

/// [`attention_ggml_tiled`] one value at a time, for either build: the specification.
pub fn attention_ggml_tiled_scalar(
    out: &mut [f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    s: AttentionShape,
    build: GgmlBuild,
) {
    check_shape(out, q, k, v, s);
    let AttentionShape { m, kv_len, capacity, n_heads, n_kv_heads, head_dim: d } = s;
    let group = n_heads / n_kv_heads;
    let scale = 1.0 / (d as f32).sqrt();
    let mut acc = vec![0.0f32; d];
    let mut p = [0.0f32; KV_TILE];
    for i in 0..m {
        let visible = kv_len - m + i + 1;
        for h in 0..n_heads {
            let g = h / group;
            let qr = &q[(i * n_heads + h) * d..][..d];
            let key = |j: usize| &k[(g * capacity + j) * d..][..d];
            let value = |j: usize| &v[(g * capacity + j) * d..][..d];
            acc.fill(0.0);
            let mut row = RowState::FRESH;
            for j0 in (0..visible).step_by(KV_TILE) {
                let n = KV_TILE.min(visible - j0);
                let scores: Vec<f32> = (0..n)
                    .map(|j| {
                        let dot =
                            qr.iter().zip(key(j0 + j)).fold(0.0f32, |a, (&x, &y)| x.mul_add(y, a));
                        dot * scale
                    })
                    .collect();
                let tile_max =
                    scores.iter().fold(f32::NEG_INFINITY, |a, &x| if a > x { a } else { x });
                if let Some(ms) = row.raise(tile_max) {
                    acc.iter_mut().for_each(|a| *a *= ms);
                }
                p.fill(0.0);
                for (pj, &sj) in p.iter_mut().zip(&scores) {
                    *pj = build.expf(sj - row.max);
                }
                row.add(p.chunks(build.lanes()).fold(0.0f64, |a, c| a + tree_sum(c) as f64));
                for (j, &pj) in p[..n].iter().enumerate() {
                    for (a, &x) in acc.iter_mut().zip(value(j0 + j)) {
                        *a = pj.mul_add(x, *a);
                    }
                }
            }
            let inv = row.inverse();
            for (o, a) in out[(i * n_heads + h) * d..][..d].iter_mut().zip(&acc) {
                *o = a * inv;
            }
        }
    }
}

/// ggml's tiled flash attention ([`GgmlBuild::Avx512`] arithmetic) over an f16-valued KV
/// cache; same layout and shapes as [`super::attention::attention_naive`]. Vectorized with
/// AVX2/FMA when the CPU has them and `head_dim` is a multiple of 32 (with AVX-512 F/VL, its
/// 32 vector registers hold twice the rows per pass), else [`attention_ggml_tiled_scalar`];
/// all give the same bits.
pub fn attention_ggml_tiled(out: &mut [f32], q: &[f32], k: &[f32], v: &[f32], s: AttentionShape) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::detected().has_avx2_fma() && s.head_dim.is_multiple_of(32) && s.head_dim > 0 {
        check_shape(out, q, k, v, s);
        let cpu = crate::cpu::detected();
        // SAFETY: AVX2 and FMA (and AVX-512 F/VL where taken) present; shapes checked;
        // head_dim a multiple of 32.
        return unsafe {
            if cpu.avx512f && cpu.avx512vl {
                avx2::attention_avx512vl(out, q, k, v, s)
            } else {
                avx2::attention(out, q, k, v, s)
            }
        };
    }
    attention_ggml_tiled_scalar(out, q, k, v, s, GgmlBuild::Avx512)
}

/// [`attention_ggml_tiled`] on its AVX2 path even where AVX-512 is present (to test and time
/// one path against the other). Panics without AVX2/FMA or unless `head_dim` is a multiple
/// of 32.
pub fn attention_ggml_tiled_avx2(
    out: &mut [f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    s: AttentionShape,
) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::detected().has_avx2_fma() && s.head_dim.is_multiple_of(32) && s.head_dim > 0 {
        check_shape(out, q, k, v, s);
        // SAFETY: AVX2 and FMA present; shapes checked; head_dim a multiple of 32.
        return unsafe { avx2::attention(out, q, k, v, s) };
    }
    panic!(
        "attention_ggml_tiled_avx2: needs AVX2/FMA and head_dim a multiple of 32 (got {})",
        s.head_dim
    )
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! Per KV head: K transposed once into tiles `[tile][dim][64 keys]`, then blocks of
    //! [`POSITIONS`] query positions (× the KV head's query heads) go through the tiles
    //! together. Scores: [`ROWS`] rows × [`PASS`] keys per pass, lanes over keys, one FMA
    //! chain per score down the head dimension. Weights: [`v_expf_avx2`], the 16-lane sums of
    //! the AVX-512 build as two 8-lane vectors added then [`tree_sum`]. Accumulators: [`ROWS`]
    //! rows × [`PASS`] dims per pass, lanes over dims, one FMA chain per element down the
    //! tile's keys.

    use std::arch::x86_64::*;

    use super::{AttentionShape, RowState, KV_TILE};
    use crate::ops::ggml::{tree_sum, v_expf_avx2};

    /// Query positions per block: their rows' accumulators and weights stay in L1/L2 while
    /// each K and V tile is used by all of them.
    const POSITIONS: usize = 16;

    /// Vectors per pass of the row kernels, and the dims (or keys) they hold.
    const VECS: usize = 4;
    const PASS: usize = 8 * VECS;

    /// Rows per pass of the row kernels: with [`VECS`], 8 accumulators (three rows or more
    /// spill registers and measured slower; 4 rows × 2 vectors no faster).
    const ROWS: usize = 2;

    /// Rows per pass with AVX-512 VL: 16 accumulators of 8 lanes in its 32 registers, which
    /// read each K or V vector for four rows.
    const ROWS_AVX512VL: usize = 4;

    /// A query row of a block: its position's visible key count, its q, output and state.
    struct Row {
        visible: usize,
        q: *const f32,
        out: *mut f32,
        state: RowState,
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn attention(
        out: &mut [f32],
        q: &[f32],
        k: &[f32],
        v: &[f32],
        s: AttentionShape,
    ) {
        attention_rows::<ROWS>(out, q, k, v, s)
    }

    /// [`attention`] compiled with AVX-512 F/VL (the same 8-lane instructions, 32 registers),
    /// [`ROWS_AVX512VL`] rows per pass.
    #[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
    pub(super) unsafe fn attention_avx512vl(
        out: &mut [f32],
        q: &[f32],
        k: &[f32],
        v: &[f32],
        s: AttentionShape,
    ) {
        attention_rows::<ROWS_AVX512VL>(out, q, k, v, s)
    }

    /// The body of [`attention`], `R` rows per pass of the row kernels.
    #[inline(always)]
    unsafe fn attention_rows<const R: usize>(
        out: &mut [f32],
        q: &[f32],
        k: &[f32],
        v: &[f32],
        s: AttentionShape,
    ) {
        let AttentionShape { m, kv_len, capacity, n_heads, n_kv_heads, head_dim: d } = s;
        let group = n_heads / n_kv_heads;
        let scale = 1.0 / (d as f32).sqrt();
        let tiles = kv_len.div_ceil(KV_TILE);
        let mut kt = vec![0.0f32; tiles * d * KV_TILE];
        let rows_max = POSITIONS * group;
        let mut acc = vec![0.0f32; rows_max * d];
        let mut p = vec![0.0f32; rows_max * KV_TILE];
        let mut rows: Vec<Row> = Vec::with_capacity(rows_max);
        for g in 0..n_kv_heads {
            let (kg, vg) =
                (&k[g * capacity * d..][..kv_len * d], &v[g * capacity * d..][..kv_len * d]);
            // K transposed by tile: kt[t][e][j] = K[64t + j][e] (zeros past kv_len)
            for (j, key) in kg.chunks_exact(d).enumerate() {
                let (t, jj) = (j / KV_TILE, j % KV_TILE);
                for (e, &x) in key.iter().enumerate() {
                    kt[(t * d + e) * KV_TILE + jj] = x;
                }
            }
            for i0 in (0..m).step_by(POSITIONS) {
                let np = POSITIONS.min(m - i0);
                rows.clear();
                for pi in 0..np {
                    for hh in 0..group {
                        let at = ((i0 + pi) * n_heads + g * group + hh) * d;
                        rows.push(Row {
                            visible: kv_len - m + i0 + pi + 1,
                            q: q.as_ptr().add(at),
                            out: out.as_mut_ptr().add(at),
                            state: RowState::FRESH,
                        });
                    }
                }
                let acc = &mut acc[..rows.len() * d];
                acc.fill(0.0);
                let last_visible = rows.last().map_or(0, |r| r.visible);
                for t in 0..last_visible.div_ceil(KV_TILE) {
                    let j0 = t * KV_TILE;
                    let n_of = |r: &Row| KV_TILE.min(r.visible.saturating_sub(j0));
                    let ktile = kt.as_ptr().add(t * d * KV_TILE);
                    // scores into p, R rows at a time (a row seeing no key of the tile
                    // is computed but not used)
                    let pp = p.as_mut_ptr();
                    for r0 in (0..rows.len()).step_by(R) {
                        let group = &rows[r0..(r0 + R).min(rows.len())];
                        let keys = group.iter().map(n_of).max().unwrap_or(0);
                        for c0 in (0..keys).step_by(PASS) {
                            let kt = ktile.add(c0);
                            let out = |r: usize| pp.add(r * KV_TILE + c0);
                            if group.len() == R {
                                let qs = std::array::from_fn(|i| group[i].q);
                                scores::<R, VECS>(
                                    qs,
                                    kt,
                                    d,
                                    scale,
                                    std::array::from_fn(|i| out(r0 + i)),
                                );
                            } else {
                                for (i, row) in group.iter().enumerate() {
                                    scores::<1, VECS>([row.q], kt, d, scale, [out(r0 + i)]);
                                }
                            }
                        }
                    }
                    // softmax steps
                    for (r, row) in rows.iter_mut().enumerate() {
                        let n = n_of(row);
                        if n > 0 {
                            weights(
                                &mut row.state,
                                &mut p[r * KV_TILE..][..KV_TILE],
                                n,
                                &mut acc[r * d..][..d],
                            );
                        }
                    }
                    // accumulators, R rows at a time over the keys they all see, then each
                    // row alone over the rest of its keys
                    let vtile = vg.as_ptr().add(j0 * d);
                    let (pp, accp) = (p.as_ptr(), acc.as_mut_ptr());
                    for r0 in (0..rows.len()).step_by(R) {
                        let group = &rows[r0..(r0 + R).min(rows.len())];
                        let both = if group.len() == R {
                            group.iter().map(n_of).min().unwrap_or(0)
                        } else {
                            0
                        };
                        for c0 in (0..d).step_by(PASS) {
                            let v0 = vtile.add(c0);
                            let ps = |i: usize| pp.add((r0 + i) * KV_TILE);
                            let accs = |i: usize| accp.add((r0 + i) * d + c0);
                            if both > 0 {
                                let (ps, accs) =
                                    (std::array::from_fn(ps), std::array::from_fn(accs));
                                accumulate::<R, VECS>(ps, v0, d, 0..both, accs);
                            }
                            for (i, row) in group.iter().enumerate() {
                                let n = n_of(row);
                                if n > both {
                                    accumulate::<1, VECS>([ps(i)], v0, d, both..n, [accs(i)]);
                                }
                            }
                        }
                    }
                }
                for (r, row) in rows.iter().enumerate() {
                    let inv = _mm256_set1_ps(row.state.inverse());
                    for e in (0..d).step_by(8) {
                        let a = _mm256_loadu_ps(acc.as_ptr().add(r * d + e));
                        _mm256_storeu_ps(row.out.add(e), _mm256_mul_ps(a, inv));
                    }
                }
            }
        }
    }

    /// Scores of 32 keys (`kt` at the first, key stride 1, dim stride [`KV_TILE`]) for `R`
    /// query rows: `fma(q[e], k[e], ·)` from `e = 0` up, from +0, then `· scale`.
    #[inline(always)]
    unsafe fn scores<const R: usize, const V: usize>(
        q: [*const f32; R],
        kt: *const f32,
        d: usize,
        scale: f32,
        out: [*mut f32; R],
    ) {
        let mut a = [[_mm256_setzero_ps(); V]; R];
        for e in 0..d {
            let ke = kt.add(e * KV_TILE);
            let k: [__m256; V] = std::array::from_fn(|c| _mm256_loadu_ps(ke.add(8 * c)));
            for (ar, qr) in a.iter_mut().zip(&q) {
                let x = _mm256_broadcast_ss(&*qr.add(e));
                for (ac, kc) in ar.iter_mut().zip(&k) {
                    *ac = _mm256_fmadd_ps(x, *kc, *ac);
                }
            }
        }
        let sv = _mm256_set1_ps(scale);
        for (ar, o) in a.iter().zip(&out) {
            for (c, ac) in ar.iter().enumerate() {
                _mm256_storeu_ps(o.add(8 * c), _mm256_mul_ps(*ac, sv));
            }
        }
    }

    /// One row's softmax step over a tile whose first `n` scores are in `p`: raises the
    /// maximum (scaling `acc` when it rose), replaces the scores by their weights (zeros past
    /// `n`) and adds their sum to the row's.
    #[inline(always)]
    unsafe fn weights(state: &mut RowState, p: &mut [f32], n: usize, acc: &mut [f32]) {
        let pp = p.as_mut_ptr();
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let valid = |c: usize| {
            let left = n as i32 - 8 * c as i32;
            _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(left), lane))
        };
        let mut mx = _mm256_set1_ps(f32::NEG_INFINITY);
        for c in 0..n.div_ceil(8) {
            let x = _mm256_blendv_ps(mx, _mm256_loadu_ps(pp.add(8 * c)), valid(c));
            mx = _mm256_max_ps(mx, x);
        }
        let h = _mm_max_ps(_mm256_extractf128_ps::<1>(mx), _mm256_castps256_ps128(mx));
        let h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        let tile_max = _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
        if let Some(ms) = state.raise(tile_max) {
            let msv = _mm256_set1_ps(ms);
            for e in (0..acc.len()).step_by(8) {
                let a = acc.as_mut_ptr().add(e);
                _mm256_storeu_ps(a, _mm256_mul_ps(_mm256_loadu_ps(a), msv));
            }
        }
        let maxv = _mm256_set1_ps(state.max);
        let mut sum = 0.0f64;
        for c2 in 0..KV_TILE / 16 {
            let mut half = [_mm256_setzero_ps(); 2];
            for (u, hv) in half.iter_mut().enumerate() {
                let c = 2 * c2 + u;
                if 8 * c < n {
                    let m = valid(c);
                    // lanes past n: argument 0 (no slow path), weight 0
                    let x = _mm256_and_ps(_mm256_sub_ps(_mm256_loadu_ps(pp.add(8 * c)), maxv), m);
                    *hv = _mm256_and_ps(v_expf_avx2(x), m);
                }
                _mm256_storeu_ps(pp.add(8 * c), *hv);
            }
            sum += tree_sum(_mm256_add_ps(half[1], half[0])) as f64;
        }
        state.add(sum);
    }

    /// `acc[e] = fma(p[j], V[j][e], acc[e])` for `j` in `keys` in order, 32 dims (`v` at the
    /// first dim of key 0, key stride `d`), `R` rows.
    #[inline(always)]
    unsafe fn accumulate<const R: usize, const V: usize>(
        p: [*const f32; R],
        v: *const f32,
        d: usize,
        keys: std::ops::Range<usize>,
        acc: [*mut f32; R],
    ) {
        let mut a: [[__m256; V]; R] =
            std::array::from_fn(|r| std::array::from_fn(|c| _mm256_loadu_ps(acc[r].add(8 * c))));
        for j in keys {
            let vj = v.add(j * d);
            let x: [__m256; V] = std::array::from_fn(|c| _mm256_loadu_ps(vj.add(8 * c)));
            for (ar, pr) in a.iter_mut().zip(&p) {
                let w = _mm256_broadcast_ss(&*pr.add(j));
                for (ac, xc) in ar.iter_mut().zip(&x) {
                    *ac = _mm256_fmadd_ps(w, *xc, *ac);
                }
            }
        }
        for (ar, o) in a.iter().zip(&acc) {
            for (c, ac) in ar.iter().enumerate() {
                _mm256_storeu_ps(o.add(8 * c), *ac);
            }
        }
    }
}
