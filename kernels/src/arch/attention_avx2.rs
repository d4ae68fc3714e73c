//! AVX2/FMA body of the `simd` attention ([`crate::ops::attention::attention_simd`]): the
//! standard algorithm, `S = Q·Kᵀ/√d` materialized, a max-subtracted softmax per row, then
//! `O = P·V / ℓ`, blocked so that the query rows sharing a KV head share every K and V load.
//!
//! Per KV head, the queries of up to [`MAX_POSITIONS`] consecutive tokens × the head's `group`
//! query heads form one block of rows. For the block:
//! 1. `S = Q·Kᵀ/√d` into a `rows × visible` f32 matrix (at most [`SCORE_BYTES`], so it stays
//!    in L2 between the passes). K is transposed once per call into tiles `[dim][KEY_TILE
//!    keys]` (8×8 blocks in registers), so a call computes [`T_ROWS`] rows × `8·T_VECS` keys
//!    with lanes over keys, one broadcast of `q[e]` per dimension and no horizontal sum; a
//!    tile stays in L1 while every row of the block uses it. Each score is one FMA chain
//!    down the dimension from `e = 0`, whatever the call; a group of rows stops at the last
//!    key any of them sees.
//! 2. Per row over its visible keys: `p_j = e^(s_j − max s)` ([`fast_exp_sat`]), `ℓ = Σ p_j`,
//!    zeros over the keys it may not see (its call in step 3 may cover them).
//! 3. `O = P·V`, V in the same tiles, [`PV_ROWS`] rows × `8·VECS` dims per call (8
//!    accumulators in registers over the tile's keys), then `O ← O/ℓ`.
//!
//! Each row's arithmetic depends only on its own q, its visible keys and the tile
//! boundaries, so any split of the queries across threads gives the same bits.

use std::arch::x86_64::*;

use wide::f32x8;

use crate::ops::attention::AttentionShape;
use crate::ops::fast_math::fast_exp_sat;

/// Keys per tile: `KEY_TILE · head_dim · 4` bytes of K (or V), 16 KiB at head_dim 64, stay
/// in L1 while every row of the block uses them.
pub(super) const KEY_TILE: usize = 64;

/// Most query tokens per block: `MAX_POSITIONS · group` rows share each K and V tile.
const MAX_POSITIONS: usize = 16;

/// Bytes a block's score matrix may take (L2 holds it between the passes): fewer tokens per
/// block over long caches.
const SCORE_BYTES: usize = 128 * 1024;

/// Rows and vectors of keys per scores call: 12 accumulators, 2 K vectors and a broadcast
/// fill the 16 registers.
pub(super) const T_ROWS: usize = 6;
pub(super) const T_VECS: usize = 2;
const _: () = assert!(KEY_TILE.is_multiple_of(8 * T_VECS), "a tile is a whole number of calls");

/// Rows and vectors of dimensions per P·V call: 8 accumulators.
const PV_ROWS: usize = 2;
const VECS: usize = 4;

/// A query row of a block: the keys it sees (`0..visible`), its q and output rows.
#[derive(Clone, Copy)]
pub(super) struct Row {
    pub(super) visible: usize,
    pub(super) q: *const f32,
    pub(super) out: *mut f32,
}

thread_local! {
    /// The rows of [`attention`]'s and `attention_flash_avx2`'s blocks, kept per thread and
    /// empty between calls (a decode step would otherwise allocate them in every layer).
    pub(super) static ROWS: std::cell::Cell<Vec<Row>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Sets `rows` to the block of KV head `g` and query tokens `tokens`: per token in order, the
/// group's query heads (the last row sees the most keys).
///
/// # Safety
/// `out, q` match `s` (`check_shape`), `g < s.n_kv_heads`, `tokens.end ≤ s.m`.
pub(super) unsafe fn block_rows(
    rows: &mut Vec<Row>,
    q: &[f32],
    out: &mut [f32],
    s: AttentionShape,
    g: usize,
    tokens: std::ops::Range<usize>,
) {
    let group = s.n_heads / s.n_kv_heads;
    rows.clear();
    for p in tokens {
        for h in g * group..(g + 1) * group {
            let at = (p * s.n_heads + h) * s.head_dim;
            rows.push(Row {
                visible: s.kv_len - s.m + p + 1,
                q: q.as_ptr().add(at),
                out: out.as_mut_ptr().add(at),
            });
        }
    }
}

/// # Safety
/// AVX2 and FMA present; `out, q, k, v` match `s` (`check_shape`).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn attention(out: &mut [f32], q: &[f32], k: &[f32], v: &[f32], s: AttentionShape) {
    let AttentionShape { m, kv_len, capacity, n_heads, n_kv_heads, head_dim: d } = s;
    if m == 0 || d == 0 {
        return;
    }
    let group = n_heads / n_kv_heads;
    let scale = 1.0 / (d as f32).sqrt();
    let stride_max = kv_len.next_multiple_of(KEY_TILE);
    let positions = (SCORE_BYTES / (4 * group * stride_max)).clamp(1, MAX_POSITIONS);
    let rows_max = positions * group;
    // K transposed: the whole head once when several blocks use it, else tile by tile into
    // an L1-sized buffer just before use (a decode: the transposition is then as costly as
    // the scores, and its stores stay in L1)
    let whole_head = m > positions;
    let kt_len = if whole_head { d * stride_max } else { d * KEY_TILE };
    // scores, transposed K, 1/ℓ per row: every value is written before it is read
    let mut scratch = SCRATCH.take();
    if scratch.len() < rows_max * stride_max + kt_len + rows_max {
        scratch.resize(rows_max * stride_max + kt_len + rows_max, 0.0);
    }
    let (scores, rest) = scratch.split_at_mut(rows_max * stride_max);
    let (kt, inv) = rest.split_at_mut(kt_len);
    let mut rows = ROWS.take();
    rows.reserve(rows_max);
    for g in 0..n_kv_heads {
        let kg = &k[g * capacity * d..][..kv_len * d];
        if whole_head {
            transpose_keys(kg, d, kt);
        }
        // SAFETY: g < n_kv_heads, so head g's first kv_len rows are inside v.
        let vg = v.as_ptr().add(g * capacity * d);
        for p0 in (0..m).step_by(positions) {
            block_rows(&mut rows, q, out, s, g, p0..m.min(p0 + positions));
            let keys = if whole_head { Keys::Transposed(kt) } else { Keys::Rows(kg, kt) };
            block(&rows, keys, vg, d, scale, scores, inv);
        }
    }
    SCRATCH.set(scratch);
    rows.clear();
    ROWS.set(rows);
}

thread_local! {
    /// Scratch of [`attention`], kept per thread and grown as needed: a fresh zeroed
    /// allocation per call cost about 5 % at the prefill shapes.
    static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// `kt[t][e][j] = K[t·KEY_TILE + j][e]` for the `k.len() / d` keys of `k` (`[keys][d]`), 8×8
/// blocks in registers; the rest of the last tile zeros (scores of keys no row sees). `kt`
/// holds whole tiles.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn transpose_keys(k: &[f32], d: usize, kt: &mut [f32]) {
    let n = k.len() / d;
    assert!(kt.len() >= n.next_multiple_of(KEY_TILE) * d, "transpose_keys: kt too short");
    let at = |j: usize, e: usize| (j / KEY_TILE * d + e) * KEY_TILE + j % KEY_TILE;
    let (n8, d8) = (n / 8 * 8, d / 8 * 8);
    let (kp, ktp) = (k.as_ptr(), kt.as_mut_ptr());
    for j in (0..n8).step_by(8) {
        // SAFETY: keys j..j+8 are inside k, and 8 keys from j (a multiple of 8) stay in j's
        // tile, whose d rows of KEY_TILE are inside kt (asserted above).
        let (src, dst) = (kp.add(j * d), ktp.add(at(j, 0)));
        for e in (0..d8).step_by(8) {
            let rows: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(src.add(i * d + e)));
            for (i, col) in transpose8(rows).iter().enumerate() {
                _mm256_storeu_ps(dst.add((e + i) * KEY_TILE), *col);
            }
        }
    }
    if d8 < d || n8 < n || !n.is_multiple_of(KEY_TILE) {
        transpose_tails(k, d, kt);
    }
}

/// The parts of [`transpose_keys`] outside its 8×8 blocks, one value at a time.
#[cold]
fn transpose_tails(k: &[f32], d: usize, kt: &mut [f32]) {
    let n = k.len() / d;
    let at = |j: usize, e: usize| (j / KEY_TILE * d + e) * KEY_TILE + j % KEY_TILE;
    let (n8, d8) = (n / 8 * 8, d / 8 * 8);
    for (j, key) in k.chunks_exact(d).enumerate() {
        let dims = if j < n8 { d8 } else { 0 };
        for (e, &x) in key.iter().enumerate().skip(dims) {
            kt[at(j, e)] = x;
        }
    }
    if !n.is_multiple_of(KEY_TILE) {
        for e in 0..d {
            kt[at(n, e)..][..KEY_TILE - n % KEY_TILE].fill(0.0);
        }
    }
}

/// The 8×8 transpose of `r` (`out[i]` lane `l` = `r[l]` lane `i`); AVX present.
#[inline(always)]
pub(crate) unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    // pairs of rows interleaved, then pairs of pairs, then the 128-bit halves exchanged
    let t: [__m256; 8] = std::array::from_fn(|i| {
        let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
        if i % 2 == 0 {
            _mm256_unpacklo_ps(a, b)
        } else {
            _mm256_unpackhi_ps(a, b)
        }
    });
    // u[4h + c]: columns c of rows 4h..4h+4 (per 128-bit half)
    let u: [__m256; 8] = std::array::from_fn(|i| {
        let (h, c) = (i / 4, i % 4);
        let (a, b) = (t[4 * h + c / 2], t[4 * h + 2 + c / 2]);
        if c % 2 == 0 {
            _mm256_shuffle_ps::<0x44>(a, b)
        } else {
            _mm256_shuffle_ps::<0xee>(a, b)
        }
    });
    std::array::from_fn(|i| {
        let c = i % 4;
        if i < 4 {
            _mm256_permute2f128_ps::<0x20>(u[c], u[4 + c])
        } else {
            _mm256_permute2f128_ps::<0x31>(u[c], u[4 + c])
        }
    })
}

/// A KV head's keys for [`block`]: transposed by [`transpose_keys`], or its rows
/// `[kv_len][d]` and a buffer for one transposed tile.
enum Keys<'a> {
    Transposed(&'a [f32]),
    Rows(&'a [f32], &'a mut [f32]),
}

/// The three passes over one block of rows (module docs); `v` at key 0 of the KV head.
#[target_feature(enable = "avx2,fma")]
unsafe fn block(
    rows: &[Row],
    mut keys: Keys,
    v: *const f32,
    d: usize,
    scale: f32,
    s: &mut [f32],
    inv: &mut [f32],
) {
    // the rows are in token order: the last sees the most keys
    let width = rows.last().map_or(0, |r| r.visible);
    let stride = width.next_multiple_of(KEY_TILE);
    let s = &mut s[..rows.len() * stride];
    let sp = s.as_mut_ptr();
    let groups = |n: usize| {
        rows.chunks(n).enumerate().map(move |(i, pair)| {
            let end = pair.iter().map(|r| r.visible).max().unwrap_or(0);
            (i * n, pair, end)
        })
    };

    // 1. S = Q·Kᵀ·scale
    for j0 in (0..width).step_by(KEY_TILE) {
        let j1 = width.min(j0 + KEY_TILE);
        let tile = match &mut keys {
            Keys::Transposed(kt) => kt.as_ptr().add(j0 * d),
            Keys::Rows(k, buffer) => {
                transpose_keys(&k[j0 * d..j1 * d], d, buffer);
                buffer.as_ptr()
            }
        };
        for (r0, group, end) in groups(T_ROWS) {
            let n = j1.min(end).saturating_sub(j0);
            for c0 in (0..n).step_by(8 * T_VECS) {
                let out = |i: usize| sp.add((r0 + i) * stride + j0 + c0);
                let q = |i: usize| group[i].q;
                let kc = tile.add(c0);
                match group.len() {
                    T_ROWS => scores::<T_ROWS>(
                        std::array::from_fn(q),
                        kc,
                        d,
                        scale,
                        std::array::from_fn(out),
                    ),
                    5 => {
                        scores::<5>(std::array::from_fn(q), kc, d, scale, std::array::from_fn(out))
                    }
                    4 => {
                        scores::<4>(std::array::from_fn(q), kc, d, scale, std::array::from_fn(out))
                    }
                    3 => {
                        scores::<3>(std::array::from_fn(q), kc, d, scale, std::array::from_fn(out))
                    }
                    2 => {
                        scores::<2>(std::array::from_fn(q), kc, d, scale, std::array::from_fn(out))
                    }
                    _ => scores::<1>([q(0)], kc, d, scale, [out(0)]),
                }
            }
        }
    }

    // 2. P = e^(S − max) per row over its visible keys, 0 past them; ℓ kept for step 4
    let inv = &mut inv[..rows.len()];
    for ((row, p), inv) in rows.iter().zip(s.chunks_exact_mut(stride)).zip(inv.iter_mut()) {
        let (seen, hidden) = p.split_at_mut(row.visible);
        *inv = 1.0 / exp_row(seen);
        hidden.fill(0.0);
    }

    // 3. O = P·V (every row sees key 0, so the first tile starts every accumulator)
    for j0 in (0..width).step_by(KEY_TILE) {
        let j1 = width.min(j0 + KEY_TILE);
        for (r0, pair, end) in groups(PV_ROWS) {
            let keys = j0..j1.min(end);
            if keys.is_empty() {
                continue;
            }
            let p = |i: usize| sp.add((r0 + i) * stride) as *const f32;
            if pair.len() == PV_ROWS {
                let outs = std::array::from_fn(|i| pair[i].out);
                let start = [if j0 == 0 { Start::Zero } else { Start::Load }; PV_ROWS];
                accumulate::<PV_ROWS>(std::array::from_fn(p), v, d, keys, outs, start);
            } else {
                for (i, row) in pair.iter().enumerate() {
                    let start = if j0 == 0 { Start::Zero } else { Start::Load };
                    accumulate::<1>([p(i)], v, d, keys.clone(), [row.out], [start]);
                }
            }
        }
    }

    // 4. O ← O/ℓ
    for (row, &inv) in rows.iter().zip(inv.iter()) {
        let iv = _mm256_set1_ps(inv);
        let d8 = d / 8 * 8;
        for e in (0..d8).step_by(8) {
            let o = row.out.add(e);
            _mm256_storeu_ps(o, _mm256_mul_ps(_mm256_loadu_ps(o), iv));
        }
        for e in d8..d {
            *row.out.add(e) *= inv;
        }
    }
}

/// `s_r[j] = (q_r · k_j) · scale` for `8·T_VECS` keys and `R` rows on transposed K (`kt` at
/// the first key, key stride 1, dimension stride [`KEY_TILE`]): lanes over keys, one
/// broadcast of `q_r[e]` per dimension, `fma(q[e], k[e], ·)` from `e = 0` up from +0.
#[inline(always)]
pub(super) unsafe fn scores<const R: usize>(
    q: [*const f32; R],
    kt: *const f32,
    d: usize,
    scale: f32,
    s: [*mut f32; R],
) {
    let mut acc = [[_mm256_setzero_ps(); T_VECS]; R];
    for e in 0..d {
        let ke = kt.add(e * KEY_TILE);
        let k: [__m256; T_VECS] = std::array::from_fn(|c| _mm256_loadu_ps(ke.add(8 * c)));
        for r in 0..R {
            let x = _mm256_broadcast_ss(&*q[r].add(e));
            for c in 0..T_VECS {
                acc[r][c] = _mm256_fmadd_ps(x, k[c], acc[r][c]);
            }
        }
    }
    let sv = _mm256_set1_ps(scale);
    for (ar, sr) in acc.iter().zip(&s) {
        for (c, a) in ar.iter().enumerate() {
            _mm256_storeu_ps(sr.add(8 * c), _mm256_mul_ps(*a, sv));
        }
    }
}

/// `p_j ← e^(p_j − max p)` in place; returns `Σ p_j` (f32 lanes within blocks of 256 values,
/// f64 across them, as `softmax_row_simd` sums).
///
/// The arguments are `≤ 0`, so [`fast_exp_sat`] (no saturation blends) serves: below
/// `FAST_EXP_MIN_X` it gives `e^−87.3 ≈ 1.2e-38` instead of 0, a weight no sum `≥ 1` (the
/// maximum's own weight is 1) can see. A NaN score is skipped by the maximum (`maxps`
/// returns its second operand when the first is NaN) and makes its own weight, so the sum
/// and the row's output, NaN, as in the naive variant.
#[inline(always)]
fn exp_row(p: &mut [f32]) -> f32 {
    let n8 = p.len() / 8 * 8;
    let mut mx = [f32x8::splat(f32::NEG_INFINITY); 4];
    let mut quads = p[..n8].chunks_exact(32);
    for c in &mut quads {
        for (m, x) in mx.iter_mut().zip(c.chunks_exact(8)) {
            *m = f32x8::from(x).fast_max(*m);
        }
    }
    for x in quads.remainder().chunks_exact(8) {
        mx[0] = f32x8::from(x).fast_max(mx[0]);
    }
    let mx = (mx[0].fast_max(mx[1])).fast_max(mx[2].fast_max(mx[3]));
    let max = mx.to_array().into_iter().chain(p[n8..].iter().copied());
    let max = max.fold(f32::NEG_INFINITY, f32::max);
    let mv = f32x8::splat(max);
    let mut sum = 0.0f64;
    for block in p[..n8].chunks_mut(256) {
        let mut acc = f32x8::ZERO;
        for c in block.chunks_exact_mut(8) {
            let e = fast_exp_sat(f32x8::from(&c[..]) - mv);
            acc += e;
            c.copy_from_slice(e.as_array());
        }
        sum += acc.reduce_add() as f64;
    }
    for x in &mut p[n8..] {
        *x = fast_exp_sat(f32x8::splat(*x - max)).to_array()[0];
        sum += *x as f64;
    }
    sum as f32
}

/// How [`accumulate`] starts a row's accumulator: from zero (its first keys), from the output
/// row as it is, or from the output row scaled (flash attention's `e^(μ_old − μ_new)` when a
/// row's running maximum rose).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Start {
    Zero,
    Load,
    Scale(f32),
}

/// `o_r[e] = start_r(o_r[e]) + Σ_{j ∈ keys} p_r[j] · V[j][e]` for every dimension `e`, `R`
/// rows, each element one FMA chain over the keys in order: 32 dimensions per pass in `R × 4`
/// register accumulators over all the keys, then 8, then scalar.
#[inline(always)]
pub(super) unsafe fn accumulate<const R: usize>(
    p: [*const f32; R],
    v: *const f32,
    d: usize,
    keys: std::ops::Range<usize>,
    o: [*mut f32; R],
    start: [Start; R],
) {
    let mut e = 0;
    while e + 8 * VECS <= d {
        let oe = o.map(|o| o.add(e));
        accumulate_dims::<R, VECS>(p, v.add(e), d, keys.clone(), oe, start);
        e += 8 * VECS;
    }
    while e + 8 <= d {
        accumulate_dims::<R, 1>(p, v.add(e), d, keys.clone(), o.map(|o| o.add(e)), start);
        e += 8;
    }
    for e in e..d {
        for r in 0..R {
            let mut a = match start[r] {
                Start::Zero => 0.0,
                Start::Load => *o[r].add(e),
                Start::Scale(c) => *o[r].add(e) * c,
            };
            for j in keys.clone() {
                a = (*p[r].add(j)).mul_add(*v.add(j * d + e), a);
            }
            *o[r].add(e) = a;
        }
    }
}

/// [`accumulate`] over `8·V` dimensions (`v` and `o` at the first of them). Per key the `R`
/// weights are broadcast first, then each V vector is loaded once for the `R` rows
/// (`R·V + R + 1` registers: 16 at 3 rows × 4 vectors).
// register blocks: `acc[r][c]` indexed by two constants the compiler unrolls
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn accumulate_dims<const R: usize, const V: usize>(
    p: [*const f32; R],
    v: *const f32,
    d: usize,
    keys: std::ops::Range<usize>,
    o: [*mut f32; R],
    start: [Start; R],
) {
    let mut acc: [[__m256; V]; R] = std::array::from_fn(|r| {
        std::array::from_fn(|c| match start[r] {
            Start::Zero => _mm256_setzero_ps(),
            Start::Load => _mm256_loadu_ps(o[r].add(8 * c)),
            Start::Scale(x) => _mm256_mul_ps(_mm256_loadu_ps(o[r].add(8 * c)), _mm256_set1_ps(x)),
        })
    });
    for j in keys {
        let vj = v.add(j * d);
        let w: [__m256; R] = std::array::from_fn(|r| _mm256_broadcast_ss(&*p[r].add(j)));
        for c in 0..V {
            let x = _mm256_loadu_ps(vj.add(8 * c));
            for r in 0..R {
                acc[r][c] = _mm256_fmadd_ps(w[r], x, acc[r][c]);
            }
        }
    }
    for (ar, or) in acc.iter().zip(&o) {
        for (c, a) in ar.iter().enumerate() {
            _mm256_storeu_ps(or.add(8 * c), *a);
        }
    }
}
