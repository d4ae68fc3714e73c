//! Attention: every variant against naive on decode and prefill with a non-empty cache and on
//! shapes that cut the faster variants' blocks and tiles awkwardly, a case whose answer is
//! known in closed form (proves the causal mask's offset), prefill = the same tokens decoded
//! one at a time, and rows with extreme or NaN scores.

use gllm_kernels::ops::attention::{self, AttentionFn, AttentionShape};
use gllm_kernels::registry;

fn variants() -> Vec<(&'static str, AttentionFn)> {
    registry::variants_of("attention")
        .filter(|v| (v.available)().is_available())
        .map(|v| (v.name, attention::select(v.name).unwrap()))
        .collect()
}

/// A head-major cache `[kv_heads][capacity][d]` with `kv_len` random positions per head and
/// NaN in the spare capacity (reading it would poison the output).
fn cache(s: AttentionShape, seed: u64) -> Vec<f32> {
    let mut rng = registry::rng(seed);
    let mut c = vec![f32::NAN; s.n_kv_heads * s.capacity * s.head_dim];
    for g in 0..s.n_kv_heads {
        let filled = registry::uniform(&mut rng, s.kv_len * s.head_dim, 2.0);
        c[g * s.capacity * s.head_dim..][..s.kv_len * s.head_dim].copy_from_slice(&filled);
    }
    c
}

#[test]
fn flash_matches_naive_on_decode_and_prefill_with_a_cache() {
    let tol = registry::op("attention").unwrap().tolerance;
    // (m, kv_len): decode after 300 tokens, prefill of 7 and of 40 after 300, prefill of 33
    // into an empty cache; tiles of 32 keys end inside and at the edge of the visible range
    for (m, kv_len) in [(1, 301), (7, 307), (40, 340), (33, 33), (1, 32), (1, 33), (2, 64)] {
        let s = AttentionShape {
            m,
            kv_len,
            capacity: kv_len + 29,
            n_heads: 9,
            n_kv_heads: 3,
            head_dim: 64,
        };
        let q = registry::uniform(&mut registry::rng(m as u64), m * 9 * 64, 2.0);
        let (k, v) = (cache(s, 1), cache(s, 2));
        let mut want = vec![f32::NAN; q.len()];
        attention::attention_naive(&mut want, &q, &k, &v, s);
        for (name, f) in variants() {
            let mut got = vec![f32::NAN; q.len()];
            f(&mut got, &q, &k, &v, s);
            tol.check(&got, &want, None)
                .unwrap_or_else(|e| panic!("{name} m={m} kv_len={kv_len}: {e}"));
        }
    }
}

/// Shapes at the edges of the blocking of the faster variants: cache lengths on and next to
/// multiples of the 32- and 64-key tiles, query counts around the `simd` variant's K
/// transposition threshold (4) and its 16-token blocks (40 = 16 + 16 + 8; over 1500 cached
/// positions its score budget cuts blocks to 7 tokens), GQA groups of 1, 3, 5 and 8 (rows per
/// block not a multiple of its 6-row scores or 2-row P·V calls), and head dimensions that
/// leave 8-wide and scalar tails (40 = 32 + 8, 19, 5) or none (96). A fully masked row cannot
/// occur: query `i` always sees keys `0 ..= kv_len − m + i`.
#[test]
fn variants_match_naive_on_awkward_blockings() {
    let tol = registry::op("attention").unwrap().tolerance;
    let mut cases = Vec::new();
    for (m, kv_len) in [
        (1, 64),
        (1, 65),
        (3, 64),
        (4, 4),
        (4, 63),
        (5, 64),
        (5, 129),
        (6, 128),
        (16, 16),
        (17, 130),
        (40, 40),
        (40, 191),
        (37, 1500),
    ] {
        cases.push((m, kv_len, 9, 3, 64));
    }
    for (heads, kv_heads) in [(4, 4), (10, 2), (8, 1)] {
        for (m, kv_len) in [(1, 70), (5, 70), (23, 100)] {
            cases.push((m, kv_len, heads, kv_heads, 64));
        }
    }
    for d in [96, 40, 19, 5] {
        for (m, kv_len) in [(1, 33), (7, 70), (20, 20)] {
            cases.push((m, kv_len, 6, 2, d));
        }
    }
    for (m, kv_len, n_heads, n_kv_heads, head_dim) in cases {
        let s = AttentionShape { m, kv_len, capacity: kv_len + 5, n_heads, n_kv_heads, head_dim };
        let q = registry::uniform(&mut registry::rng(kv_len as u64), m * n_heads * head_dim, 2.0);
        let (k, v) = (cache(s, 7), cache(s, 8));
        let mut want = vec![f32::NAN; q.len()];
        attention::attention_naive(&mut want, &q, &k, &v, s);
        for (name, f) in variants() {
            let mut got = vec![f32::NAN; q.len()];
            f(&mut got, &q, &k, &v, s);
            tol.check(&got, &want, None).unwrap_or_else(|e| panic!("{name} {s:?}: {e}"));
        }
    }
}

/// The model splits a prefill's queries across threads by token ranges (a range `t0..t1` is
/// the call `m = t1 − t0`, `kv_len = pos0 + t1`); each row's output must not depend on the
/// split, bit for bit. `tiled` and `flash_avx2` are held to it only for parts of two tokens or
/// more: a single query runs `flash`, or scores by dot products (the same values to a few ulps).
#[test]
fn query_splits_give_the_same_bits() {
    for (m, kv_len) in [(13usize, 40usize), (40, 300), (9, 9)] {
        let (heads, d) = (9usize, 64usize);
        let s = AttentionShape {
            m,
            kv_len,
            capacity: kv_len,
            n_heads: heads,
            n_kv_heads: 3,
            head_dim: d,
        };
        let q = registry::uniform(&mut registry::rng(12), m * heads * d, 2.0);
        let (k, v) = (cache(s, 13), cache(s, 14));
        let row = heads * d;
        for (name, f) in variants() {
            let mut whole = vec![f32::NAN; q.len()];
            f(&mut whole, &q, &k, &v, s);
            for cut in 1..m {
                if ["tiled", "flash_avx2"].contains(&name) && (cut == 1 || cut == m - 1) {
                    continue;
                }
                let mut parts = vec![f32::NAN; q.len()];
                let (lo, hi) = parts.split_at_mut(cut * row);
                let pos0 = kv_len - m;
                f(lo, &q[..cut * row], &k, &v, AttentionShape { m: cut, kv_len: pos0 + cut, ..s });
                f(hi, &q[cut * row..], &k, &v, AttentionShape { m: m - cut, ..s });
                let same = parts.iter().zip(&whole).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{name} m={m} kv_len={kv_len}: split at {cut} changes bits");
            }
        }
    }
}

/// Scores spread over hundreds (q scaled by 60: the softmax is nearly one-hot and most weights
/// underflow) agree with naive; a NaN in one query row makes that row's output NaN and no
/// other's. An f32 score is off by about `ε·Σ|q_e·k_e|/√d` (≈ 500·6e-8 = 3e-5 here), which
/// is the relative error of its weight, so the bound is `|Δ| ≤ 1e-4 + 1e-4·|want|`.
#[test]
fn extreme_and_nan_scores() {
    let tol = gllm_kernels::tolerance::Tolerance::AbsRel { abs: 1e-4, rel: 1e-4 };
    let (m, kv_len, d) = (12usize, 80usize, 64usize);
    let s = AttentionShape { m, kv_len, capacity: 80, n_heads: 9, n_kv_heads: 3, head_dim: d };
    let (k, v) = (cache(s, 9), cache(s, 10));
    let mut q = registry::uniform(&mut registry::rng(11), m * 9 * d, 2.0);
    q.iter_mut().for_each(|x| *x *= 60.0);
    let mut want = vec![f32::NAN; q.len()];
    attention::attention_naive(&mut want, &q, &k, &v, s);
    for (name, f) in variants() {
        let mut got = vec![f32::NAN; q.len()];
        f(&mut got, &q, &k, &v, s);
        tol.check(&got, &want, None).unwrap_or_else(|e| panic!("{name} large scores: {e}"));
    }
    let nan_row = 5 * 9 + 4; // token 5, head 4
    q[nan_row * d + 17] = f32::NAN;
    for (name, f) in variants() {
        let mut got = vec![0.0f32; q.len()];
        f(&mut got, &q, &k, &v, s);
        for (r, row) in got.chunks_exact(d).enumerate() {
            if r == nan_row {
                assert!(row.iter().all(|x| x.is_nan()), "{name}: row {r} not all NaN: {row:?}");
            } else {
                assert!(row.iter().all(|x| x.is_finite()), "{name}: row {r} not finite");
            }
        }
    }
}

/// Equal keys give equal scores, so query `i` averages the V rows it may see. With V row
/// `j` = one-hot position code `e_j` (plus the head index in the last column), the output is
/// `1/visible` on columns `0..visible` and 0 after: it shows exactly which positions each
/// query attended to, `visible = kv_len − m + i + 1`.
#[test]
fn mask_offset_in_closed_form() {
    let (m, kv_len, d) = (4usize, 11usize, 16usize);
    let (n_heads, n_kv_heads) = (6usize, 2usize);
    let s = AttentionShape { m, kv_len, capacity: 13, n_heads, n_kv_heads, head_dim: d };
    let mut k = vec![f32::NAN; n_kv_heads * s.capacity * d];
    let mut v = vec![f32::NAN; n_kv_heads * s.capacity * d];
    for g in 0..n_kv_heads {
        for j in 0..kv_len {
            let row = (g * s.capacity + j) * d;
            k[row..row + d].fill(0.25);
            v[row..row + d].fill(0.0);
            v[row + j] = 1.0;
            v[row + d - 1] = g as f32; // which KV head was read
        }
    }
    let q = registry::uniform(&mut registry::rng(3), m * n_heads * d, 1.0);
    for (name, f) in variants() {
        let mut out = vec![f32::NAN; q.len()];
        f(&mut out, &q, &k, &v, s);
        for i in 0..m {
            let visible = kv_len - m + i + 1;
            for h in 0..n_heads {
                let o = &out[(i * n_heads + h) * d..][..d];
                for (c, &got) in o[..d - 1].iter().enumerate() {
                    let want = if c < visible { 1.0 / visible as f32 } else { 0.0 };
                    assert!(
                        (got - want).abs() < 1e-6,
                        "{name}: token {i} head {h} column {c}: got {got}, want {want} (visible {visible})"
                    );
                }
                let g = h / (n_heads / n_kv_heads);
                assert!(
                    (o[d - 1] - g as f32).abs() < 1e-6,
                    "{name}: head {h} read KV head {}",
                    o[d - 1]
                );
            }
        }
    }
}

/// Prefilling m tokens gives, for token i, what decoding it alone over the first
/// `kv_len − m + i + 1` positions gives.
#[test]
fn prefill_equals_token_by_token_decode() {
    let tol = registry::op("attention").unwrap().tolerance;
    let (m, kv_len, d) = (9usize, 50usize, 64usize);
    let s = AttentionShape { m, kv_len, capacity: 64, n_heads: 9, n_kv_heads: 3, head_dim: d };
    let q = registry::uniform(&mut registry::rng(4), m * 9 * d, 2.0);
    let (k, v) = (cache(s, 5), cache(s, 6));
    for (name, f) in variants() {
        let mut prefill = vec![f32::NAN; q.len()];
        f(&mut prefill, &q, &k, &v, s);
        for i in 0..m {
            let step = AttentionShape { m: 1, kv_len: kv_len - m + i + 1, ..s };
            let mut one = vec![f32::NAN; 9 * d];
            f(&mut one, &q[i * 9 * d..(i + 1) * 9 * d], &k, &v, step);
            tol.check(&one, &prefill[i * 9 * d..(i + 1) * 9 * d], None)
                .unwrap_or_else(|e| panic!("{name}: token {i}: {e}"));
        }
    }
}

#[test]
#[should_panic(expected = "m 3 ≤ kv_len 2")]
fn more_queries_than_cached_positions_is_a_contract_violation() {
    let s = AttentionShape { m: 3, kv_len: 2, capacity: 4, n_heads: 1, n_kv_heads: 1, head_dim: 4 };
    let mut out = vec![0.0; 12];
    attention::attention_flash(&mut out, &[0.0; 12], &[0.0; 16], &[0.0; 16], s);
}
