//! AVX2/FMA body of the `flash_avx2` attention
//! ([`crate::ops::attention::attention_flash_avx2`]): flash attention built from the `simd`
//! variant's micro-kernels ([`super::attention_avx2`]), an online softmax per 64-key tile
//! instead of a materialized score row.
//!
//! Per KV head, the queries of up to [`MAX_POSITIONS`] consecutive tokens × the head's `group`
//! query heads form one block of rows; each row keeps a running maximum `μ`, a running sum
//! `ℓ` and its output row as the accumulator. The block walks the keys in tiles of
//! [`KEY_TILE`] at absolute positions `64t .. 64t + 64`; per tile, for the rows that see any of
//! its keys:
//! 1. `S = Q·K_tileᵀ/√d` into a `rows × 64` buffer that stays in L1 (no score matrix):
//!    - prefill (`m > 1`): K transposed ([`transpose_keys`]; the whole head once when several
//!      blocks use it, else tile by tile into an L1 buffer) and the `simd` variant's 6 × 16
//!      register blocks ([`scores`]), each score one FMA chain down the dimension from +0;
//!    - decode (`m = 1`, a handful of rows): K read in place as rows, [`dot_scores`] of 3 rows
//!      × 4 keys with lanes over dimensions, so every K row is loaded once for all the query
//!      heads of the group and no transposition is paid (it costs as much as the scores when
//!      three rows use it); each score is eight lane chains summed as a tree.
//! 2. Per row over its `n` visible keys of the tile ([`softmax_step`]): `μ' = max(μ, max s)`;
//!    if `μ' > μ`, `c = e^(μ − μ')` rescales `ℓ` and (in step 3, on load) the accumulator;
//!    `p_j = e^(s_j − μ')` ([`fast_exp_sat`]), `ℓ ← ℓ + Σ p_j`.
//! 3. `O ← c·O + P·V_tile` while the tile of V is hot: [`accumulate`], 3 rows × 32 dimensions
//!    per register block, over the keys all three rows see, then each row alone over the rest
//!    of its keys (a row never multiplies a weight it may not use).
//!
//! Then `O ← O/ℓ`. Each row's arithmetic depends only on its own q, its visible keys, the
//! tile boundaries and whether the call is a decode, so any split of a prefill's queries into
//! calls of two tokens or more gives the same bits (a one-token call scores by dot products:
//! the same values to a few ulps).

use std::arch::x86_64::*;

use wide::f32x8;

use super::attention_avx2::{
    accumulate, block_rows, scores, transpose_keys, Row, Start, KEY_TILE, ROWS, T_ROWS, T_VECS,
};
use crate::ops::attention::AttentionShape;
use crate::ops::fast_math::fast_exp_sat;

/// Most query tokens per block: `MAX_POSITIONS · group` rows share each K and V tile; their
/// scores (`rows × 64 × 4` bytes, 12 KiB at 48 rows) and output rows stay in L1/L2.
const MAX_POSITIONS: usize = 16;

/// Rows per P·V call: a KV group of three query heads in one pass over V.
const PV_ROWS: usize = 3;

/// Rows and keys per [`dot_scores`] call: 12 accumulators, 3 q vectors and a K vector fill
/// the 16 registers.
const D_ROWS: usize = 3;
const D_KEYS: usize = 4;

/// The online-softmax state of a block's rows, one lane per row (rows padded to whole
/// vectors): running maximum `μ`, running sum `ℓ`, this tile's maximum and the factor
/// `c = e^(μ_old − μ_new)` that rescales the accumulator.
struct States<'a> {
    max: &'a mut [f32],
    sum: &'a mut [f32],
    tile_max: &'a mut [f32],
    c: &'a mut [f32],
}

/// A KV head's keys for [`block`].
enum Keys<'a> {
    /// Transposed by [`transpose_keys`] for the whole head.
    Transposed(&'a [f32]),
    /// Rows `[kv_len][d]` and a buffer into which each tile is transposed just before use.
    Tiles(&'a [f32], &'a mut [f32]),
    /// Rows `[kv_len][d]`, scored in place by [`dot_scores`].
    Rows(&'a [f32]),
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
    let positions = MAX_POSITIONS.min(m);
    let rows_max = positions * group;
    let whole_head = m > positions;
    let kt_len = match (m, whole_head) {
        (1, _) => 0,
        (_, true) => d * kv_len.next_multiple_of(KEY_TILE),
        (_, false) => d * KEY_TILE,
    };
    // score tile and transposed K: every value is written before it is read
    let mut scratch = SCRATCH.take();
    let lanes = rows_max.next_multiple_of(8);
    // + 16: room to start at a 64-byte boundary (a vector store split across two cache lines
    // costs twice)
    let len = rows_max * KEY_TILE + kt_len + 4 * lanes + 16;
    if scratch.len() < len {
        scratch.resize(len, 0.0);
    }
    let skip = scratch.as_ptr().align_offset(64).min(15);
    let (scores, rest) = scratch[skip..].split_at_mut(rows_max * KEY_TILE);
    let (kt, rest) = rest.split_at_mut(kt_len);
    let (max, rest) = rest[..4 * lanes].split_at_mut(lanes);
    let (sum, rest) = rest.split_at_mut(lanes);
    let (tile_max, c) = rest.split_at_mut(lanes);
    let mut states = States { max, sum, tile_max, c };
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
            let mut keys = match (m, whole_head) {
                (1, _) => Keys::Rows(kg),
                (_, true) => Keys::Transposed(kt),
                (_, false) => Keys::Tiles(kg, &mut kt[..]),
            };
            block(&rows, &mut keys, vg, d, scale, scores, &mut states);
        }
    }
    SCRATCH.set(scratch);
    rows.clear();
    ROWS.set(rows);
}

thread_local! {
    /// Scratch of [`attention`], kept per thread and grown as needed.
    static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The tiles of one block of rows (module docs); `v` at key 0 of the KV head, `s` room for
/// `rows.len()` score rows of [`KEY_TILE`].
#[target_feature(enable = "avx2,fma")]
unsafe fn block(
    rows: &[Row],
    keys: &mut Keys,
    v: *const f32,
    d: usize,
    scale: f32,
    s: &mut [f32],
    st: &mut States,
) {
    assert!(s.len() >= rows.len() * KEY_TILE, "block: score buffer too short");
    let lanes = rows.len().next_multiple_of(8);
    assert!(st.max.len() >= lanes && st.sum.len() >= lanes, "block: state too short");
    assert!(st.tile_max.len() >= lanes && st.c.len() >= lanes, "block: state too short");
    st.max[..lanes].fill(f32::NEG_INFINITY);
    st.sum[..lanes].fill(0.0);
    st.tile_max[..lanes].fill(f32::NEG_INFINITY);
    // the rows are in token order: the last sees the most keys
    let width = rows.last().map_or(0, |r| r.visible);
    let sp = s.as_mut_ptr();
    for j0 in (0..width).step_by(KEY_TILE) {
        let j1 = width.min(j0 + KEY_TILE);
        // rows that see none of the tile's keys are a prefix (finished)
        let first = rows.partition_point(|r| r.visible <= j0);
        let live = &rows[first..];
        let seen = |r: &Row| r.visible.min(j1) - j0;
        // SAFETY (every use): live row i's scores are s[i·KEY_TILE ..][..KEY_TILE].
        let srow = |i: usize| sp.add(i * KEY_TILE);

        // 1. S = Q·K_tileᵀ·scale
        match keys {
            Keys::Rows(k) => {
                for (i0, group) in live.chunks(D_ROWS).enumerate().map(|(c, g)| (c * D_ROWS, g)) {
                    let n = group.iter().map(seen).max().unwrap_or(0);
                    let kt = k.as_ptr().add(j0 * d);
                    match group.len() {
                        D_ROWS => dot_tile::<D_ROWS>(group, kt, d, n, scale, |i| srow(i0 + i)),
                        2 => dot_tile::<2>(group, kt, d, n, scale, |i| srow(i0 + i)),
                        _ => dot_tile::<1>(group, kt, d, n, scale, |i| srow(i0 + i)),
                    }
                }
            }
            Keys::Transposed(kt) => {
                transposed_tile(live, kt.as_ptr().add(j0 * d), d, j1 - j0, j0, scale, srow)
            }
            Keys::Tiles(k, buffer) => {
                transpose_keys(&k[j0 * d..j1 * d], d, buffer);
                transposed_tile(live, buffer.as_ptr(), d, j1 - j0, j0, scale, srow);
            }
        }
        // 2. online softmax: each row's maximum over its keys of the tile; then eight rows at
        // a time μ' = max(μ, tile max), c = e^(μ − μ'), ℓ ← c·ℓ; then each row's weights
        for (i, row) in live.iter().enumerate() {
            st.tile_max[first + i] = tile_max(srow(i), seen(row));
        }
        raise_max(st, first..rows.len());
        for (i, row) in live.iter().enumerate() {
            st.sum[first + i] += weights(srow(i), seen(row), st.max[first + i]);
        }

        // 3. O ← c·O + P·V_tile: the keys a group's rows all see together, then each row's rest
        let vt = v.add(j0 * d);
        for (i0, group) in live.chunks(PV_ROWS).enumerate().map(|(c, g)| (c * PV_ROWS, g)) {
            let both = group.iter().map(seen).min().unwrap_or(0);
            let p = |i: usize| srow(i0 + i) as *const f32;
            let o = |i: usize| group[i].out;
            let start = |i: usize| {
                if j0 == 0 {
                    Start::Zero
                } else {
                    Start::Scale(st.c[first + i0 + i])
                }
            };
            use std::array::from_fn;
            match group.len() {
                PV_ROWS => {
                    accumulate::<PV_ROWS>(from_fn(p), vt, d, 0..both, from_fn(o), from_fn(start))
                }
                2 => accumulate::<2>(from_fn(p), vt, d, 0..both, from_fn(o), from_fn(start)),
                _ => accumulate::<1>([p(0)], vt, d, 0..both, [o(0)], [start(0)]),
            }
            for (i, row) in group.iter().enumerate() {
                let n = seen(row);
                if n > both {
                    accumulate::<1>([p(i)], vt, d, both..n, [row.out], [Start::Load]);
                }
            }
        }
    }

    // 4. O ← O/ℓ
    let d8 = d / 8 * 8;
    for (row, sum) in rows.iter().zip(st.sum.iter()) {
        let inv = 1.0 / sum;
        let iv = _mm256_set1_ps(inv);
        for e in (0..d8).step_by(8) {
            let o = row.out.add(e);
            _mm256_storeu_ps(o, _mm256_mul_ps(_mm256_loadu_ps(o), iv));
        }
        for e in d8..d {
            *row.out.add(e) *= inv;
        }
    }
}

/// Scores of `rows` over one tile of transposed K (`kt` at the tile's first key, `n ≤ 64` keys
/// from absolute key `j0`), [`T_ROWS`] rows × 16 keys per call; a group of rows stops at the
/// last key any of them sees (the tile is zero-padded to whole calls).
#[inline(always)]
unsafe fn transposed_tile(
    rows: &[Row],
    kt: *const f32,
    d: usize,
    n: usize,
    j0: usize,
    scale: f32,
    srow: impl Fn(usize) -> *mut f32,
) {
    for (i0, group) in rows.chunks(T_ROWS).enumerate().map(|(c, g)| (c * T_ROWS, g)) {
        let end = group.iter().map(|r| r.visible.min(j0 + n) - j0).max().unwrap_or(0);
        for c0 in (0..end).step_by(8 * T_VECS) {
            let out = |i: usize| srow(i0 + i).add(c0);
            let q = |i: usize| group[i].q;
            let kc = kt.add(c0);
            use std::array::from_fn;
            match group.len() {
                T_ROWS => scores::<T_ROWS>(from_fn(q), kc, d, scale, from_fn(out)),
                5 => scores::<5>(from_fn(q), kc, d, scale, from_fn(out)),
                4 => scores::<4>(from_fn(q), kc, d, scale, from_fn(out)),
                3 => scores::<3>(from_fn(q), kc, d, scale, from_fn(out)),
                2 => scores::<2>(from_fn(q), kc, d, scale, from_fn(out)),
                _ => scores::<1>([q(0)], kc, d, scale, [out(0)]),
            }
        }
    }
}

/// Scores of `R` rows over the first `n` keys of a tile of K rows (`k` at the tile's first
/// key, stride `d`): [`D_KEYS`] keys per call, then one at a time.
#[inline(always)]
unsafe fn dot_tile<const R: usize>(
    rows: &[Row],
    k: *const f32,
    d: usize,
    n: usize,
    scale: f32,
    srow: impl Fn(usize) -> *mut f32,
) {
    let q: [*const f32; R] = std::array::from_fn(|i| rows[i].q);
    let n4 = n / D_KEYS * D_KEYS;
    for j in (0..n4).step_by(D_KEYS) {
        dot_scores::<R, D_KEYS>(q, k.add(j * d), d, scale, std::array::from_fn(|i| srow(i).add(j)));
    }
    for j in n4..n {
        dot_scores::<R, 1>(q, k.add(j * d), d, scale, std::array::from_fn(|i| srow(i).add(j)));
    }
}

/// `s_r[t] = (q_r · k_t)·scale` for `KB` keys (`k` at the first, stride `d`) and `R` rows,
/// lanes over dimensions: per (row, key) eight lane chains `a_l = fma(q[8c+l], k[8c+l], ·)`
/// over `c` from +0, summed `((a₀+a₁)+(a₂+a₃)) + ((a₄+a₅)+(a₆+a₇))` (the same tree whatever
/// `KB`), then the dimensions `8⌊d/8⌋..d` as a scalar FMA chain on that sum, then `· scale`.
// register blocks: `acc[r][c]` indexed by two constants the compiler unrolls
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn dot_scores<const R: usize, const KB: usize>(
    q: [*const f32; R],
    k: *const f32,
    d: usize,
    scale: f32,
    s: [*mut f32; R],
) {
    let d8 = d / 8 * 8;
    let mut acc = [[_mm256_setzero_ps(); KB]; R];
    for c in (0..d8).step_by(8) {
        let qv: [__m256; R] = std::array::from_fn(|r| _mm256_loadu_ps(q[r].add(c)));
        for t in 0..KB {
            let kv = _mm256_loadu_ps(k.add(t * d + c));
            for r in 0..R {
                acc[r][t] = _mm256_fmadd_ps(qv[r], kv, acc[r][t]);
            }
        }
    }
    for r in 0..R {
        let mut sums = [0.0f32; KB];
        if KB == 4 {
            // hadd within 128-bit halves: [Σ lanes 0..4 of a_t | Σ lanes 4..8 of a_t], t = 0..4
            let h01 = _mm256_hadd_ps(acc[r][0], acc[r][1]);
            let h23 = _mm256_hadd_ps(acc[r][2], acc[r][3]);
            let h = _mm256_hadd_ps(h01, h23);
            let lo_hi = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
            _mm_storeu_ps(sums.as_mut_ptr(), lo_hi);
        } else {
            for (t, a) in acc[r].iter().enumerate() {
                let h = _mm256_hadd_ps(*a, *a);
                let h = _mm256_hadd_ps(h, h);
                let lo_hi = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
                sums[t] = _mm_cvtss_f32(lo_hi);
            }
        }
        for (t, x) in sums.iter().enumerate() {
            let mut x = *x;
            for e in d8..d {
                x = (*q[r].add(e)).mul_add(*k.add(t * d + e), x);
            }
            *s[r].add(t) = x * scale;
        }
    }
}

/// The largest of `p[..n]` (`0 < n ≤ 64`), NaN skipped (`maxps` returns its second operand
/// when the first is NaN), `-inf` if every value is NaN.
#[inline(always)]
unsafe fn tile_max(p: *const f32, n: usize) -> f32 {
    let (n8, n16) = (n / 8 * 8, n / 16 * 16);
    let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
    // two accumulators as named values (an array indexed by the loop counter lives on the
    // stack, a store-to-load chain per vector)
    let (mut mx0, mut mx1) = (ninf, ninf);
    for c in (0..n16).step_by(16) {
        mx0 = _mm256_max_ps(_mm256_loadu_ps(p.add(c)), mx0);
        mx1 = _mm256_max_ps(_mm256_loadu_ps(p.add(c + 8)), mx1);
    }
    if n16 < n8 {
        mx0 = _mm256_max_ps(_mm256_loadu_ps(p.add(n16)), mx0);
    }
    if n8 < n {
        let x = _mm256_blendv_ps(ninf, _mm256_loadu_ps(p.add(n8)), tail_mask(n - n8));
        mx1 = _mm256_max_ps(x, mx1);
    }
    // halves, then pairs, then neighbours
    let m = _mm256_max_ps(mx0, mx1);
    let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)))
}

/// Lanes `0..t` set (`0 < t < 8`).
#[inline(always)]
unsafe fn tail_mask(t: usize) -> __m256 {
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(t as i32), lane))
}

/// For the block's rows `rows` (their tile maxima set), eight at a time: `μ' = max(μ, tile
/// max)`, `c = e^(μ − μ')` ([`fast_exp_sat`]: exactly 1 when the maximum did not rise, about
/// 1e-38 on the first tile, where `μ = −inf`), `ℓ ← c·ℓ`, `μ ← μ'`. Lanes past the block's
/// rows compute on their own lanes only.
#[inline(always)]
unsafe fn raise_max(st: &mut States, rows: std::ops::Range<usize>) {
    let end = rows.end.next_multiple_of(8);
    assert!(st.max.len() >= end && st.sum.len() >= end, "raise_max: state too short");
    assert!(st.tile_max.len() >= end && st.c.len() >= end, "raise_max: state too short");
    for r in (rows.start..end).step_by(8) {
        let old = _mm256_loadu_ps(st.max.as_ptr().add(r));
        let new = _mm256_max_ps(_mm256_loadu_ps(st.tile_max.as_ptr().add(r)), old);
        let c: __m256 = wide::bytemuck::cast(fast_exp_sat(wide::bytemuck::cast::<__m256, f32x8>(
            _mm256_sub_ps(old, new),
        )));
        _mm256_storeu_ps(st.c.as_mut_ptr().add(r), c);
        let sum = st.sum.as_mut_ptr().add(r);
        _mm256_storeu_ps(sum, _mm256_mul_ps(_mm256_loadu_ps(sum), c));
        _mm256_storeu_ps(st.max.as_mut_ptr().add(r), new);
    }
}

/// `p_j ← e^(p_j − max)` for `j < n` (`0 < n ≤ 64`; the lanes of the last vector past `n`
/// become 0); returns `Σ p_j` (two vectors of f32 lanes, then their tree). The exponents are
/// `≤ 0`, so [`fast_exp_sat`] serves (its `e^−87.3 ≈ 1.2e-38` for smaller arguments is a
/// weight no sum `≥ 1` can see); a NaN score makes its weight, so `ℓ` and the row, NaN.
#[inline(always)]
unsafe fn weights(p: *mut f32, n: usize, max: f32) -> f32 {
    let (n8, n16) = (n / 8 * 8, n / 16 * 16);
    let mv = _mm256_set1_ps(max);
    let exp = |x: __m256| -> __m256 {
        wide::bytemuck::cast(fast_exp_sat(wide::bytemuck::cast::<__m256, f32x8>(x)))
    };
    let weight = |c: usize| {
        let e = exp(_mm256_sub_ps(_mm256_loadu_ps(p.add(c)), mv));
        _mm256_storeu_ps(p.add(c), e);
        e
    };
    let (mut sum0, mut sum1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for c in (0..n16).step_by(16) {
        sum0 = _mm256_add_ps(sum0, weight(c));
        sum1 = _mm256_add_ps(sum1, weight(c + 8));
    }
    if n16 < n8 {
        sum0 = _mm256_add_ps(sum0, weight(n16));
    }
    if n8 < n {
        // lanes past n: argument 0 (no NaN from what the buffer held), weight 0
        let tail = tail_mask(n - n8);
        let x = _mm256_and_ps(_mm256_sub_ps(_mm256_loadu_ps(p.add(n8)), mv), tail);
        let e = _mm256_and_ps(exp(x), tail);
        sum1 = _mm256_add_ps(sum1, e);
        _mm256_storeu_ps(p.add(n8), e);
    }
    let t = _mm256_add_ps(sum0, sum1);
    let t = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps::<1>(t));
    let t = _mm_add_ps(t, _mm_movehl_ps(t, t));
    _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)))
}
