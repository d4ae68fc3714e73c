//! Attention of a prefill batch split across the pool by query tokens.
//!
//! Query rows of `q` and `out` (`[m, n_heads, head_dim]`) are contiguous per token, and a
//! token range `t0..t1` of the batch is itself a valid call: `m' = t1 − t0` queries with
//! `kv_len' = pos0 + t1` (query `i` still sees keys `0 ..= pos0 + t0 + i`). Causal work grows
//! with the position (token `t` scores `pos0 + t + 1` keys), so the ranges are cut where the
//! cumulative work reaches equal shares.
//!
//! Decode (`m = 1`) splits the query heads instead: heads `h0..h1` that share one KV head are
//! themselves a valid call (`n_heads' = h1 − h0`, `n_kv_heads' = 1`, that KV head's cache
//! slice), and every head's arithmetic is independent of the others, so the output bits do not
//! depend on the split. Decode attention too small to repay a parallel region, and small
//! prefill batches, run on the caller.

use gllm_kernels::ops::attention::{AttentionFn, AttentionShape};
use gllm_kernels::threads::ThreadPool;

use super::matmul::SharedMut;

/// Work (keys scored) of tokens `0..t` after `pos0` cached positions.
fn work_before(t: usize, pos0: usize) -> usize {
    t * pos0 + t * (t + 1) / 2
}

/// First token of part `p` of `parts` over `m` tokens.
fn boundary(p: usize, parts: usize, m: usize, pos0: usize) -> usize {
    if p >= parts {
        return m;
    }
    let target = work_before(m, pos0) * p / parts;
    (0..=m).find(|&t| work_before(t, pos0) >= target).unwrap_or(m)
}

/// `attention(out, q, k, v, s)` with the batch's query tokens split across `pool`.
pub fn attend(
    pool: &ThreadPool,
    attention: AttentionFn,
    out: &mut [f32],
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    s: AttentionShape,
) {
    let parts = pool.threads();
    if parts > 1 && s.m == 1 && s.n_heads * s.kv_len * s.head_dim >= MIN_SPLIT_DECODE_WORK {
        return attend_decode_by_heads(pool, attention, out, q, k_cache, v_cache, s);
    }
    if parts == 1 || s.m < 4 * parts {
        return attention(out, q, k_cache, v_cache, s);
    }
    let row = s.n_heads * s.head_dim;
    assert!(out.len() >= s.m * row && q.len() >= s.m * row, "attend: q/out shorter than m rows");
    let pos0 = s.kv_len - s.m;
    let out_ptr = SharedMut(out.as_mut_ptr());
    pool.run(parts, &|p| {
        let (t0, t1) = (boundary(p, parts, s.m, pos0), boundary(p + 1, parts, s.m, pos0));
        if t0 >= t1 {
            return;
        }
        let sub = AttentionShape { m: t1 - t0, kv_len: pos0 + t1, ..s };
        // SAFETY: token ranges of different parts are disjoint, inside `out[..m·row]`.
        let o =
            unsafe { std::slice::from_raw_parts_mut(out_ptr.ptr().add(t0 * row), (t1 - t0) * row) };
        attention(o, &q[t0 * row..t1 * row], k_cache, v_cache, sub);
    });
}

/// Decode attention work (query heads × cached positions × head_dim) below which splitting
/// costs more than it saves: about 2 µs of work on one core, a few times a region's cost.
const MIN_SPLIT_DECODE_WORK: usize = 8192;

/// The query heads of part `p` of `parts` (nearly equal counts).
fn head_range(n_heads: usize, parts: usize, p: usize) -> std::ops::Range<usize> {
    n_heads * p / parts..n_heads * (p + 1) / parts
}

/// Runs of consecutive heads in `heads` that share a KV head (`group` query heads per KV head):
/// `(kv_head, heads)`.
fn kv_runs(
    heads: std::ops::Range<usize>,
    group: usize,
) -> impl Iterator<Item = (usize, std::ops::Range<usize>)> {
    let mut h = heads.start;
    std::iter::from_fn(move || {
        if h >= heads.end {
            return None;
        }
        let g = h / group;
        let end = heads.end.min((g + 1) * group);
        let run = h..end;
        h = end;
        Some((g, run))
    })
}

/// One decode token's attention with its query heads split across `pool` (see the module docs).
fn attend_decode_by_heads(
    pool: &ThreadPool,
    attention: AttentionFn,
    out: &mut [f32],
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    s: AttentionShape,
) {
    let (d, cap) = (s.head_dim, s.capacity);
    let row = s.n_heads * d;
    assert!(out.len() >= row && q.len() >= row, "attend: q/out shorter than one row");
    assert!(s.n_kv_heads > 0 && s.n_heads.is_multiple_of(s.n_kv_heads), "attend: bad head counts");
    let group = s.n_heads / s.n_kv_heads;
    let parts = pool.threads().min(s.n_heads);
    let out_ptr = SharedMut(out.as_mut_ptr());
    pool.run(parts, &|p| {
        for (g, heads) in kv_runs(head_range(s.n_heads, parts, p), group) {
            let sub = AttentionShape { n_heads: heads.len(), n_kv_heads: 1, ..s };
            let (a, b) = (heads.start * d, heads.end * d);
            // SAFETY: the parts' head ranges are disjoint, so their output ranges `a..b` are
            // disjoint and inside `out[..row]`.
            let o = unsafe { std::slice::from_raw_parts_mut(out_ptr.ptr().add(a), b - a) };
            let kv = g * cap * d..(g + 1) * cap * d;
            attention(o, &q[a..b], &k_cache[kv.clone()], &v_cache[kv], sub);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_runs_cover_every_head_once_within_its_kv_head() {
        for (n_heads, n_kv) in [(9, 3), (4, 2), (8, 8), (6, 1), (32, 8)] {
            let group = n_heads / n_kv;
            for parts in 1..=4 {
                let mut next = 0;
                for p in 0..parts {
                    for (g, run) in kv_runs(head_range(n_heads, parts, p), group) {
                        assert_eq!(run.start, next);
                        assert!(!run.is_empty() && run.clone().all(|h| h / group == g));
                        next = run.end;
                    }
                }
                assert_eq!(next, n_heads, "{n_heads} {n_kv} {parts}");
            }
        }
    }

    #[test]
    fn decode_split_by_heads_gives_the_same_bits() {
        use gllm_kernels::ops::ggml::attention_ggml;
        let (n_heads, n_kv, d, cap) = (9, 3, 64, 40);
        // f16-representable values, as in the f16 KV cache
        let cache: Vec<f32> =
            (0..n_kv * cap * d).map(|i| ((i * 13) % 29) as f32 / 16.0 - 0.9).collect();
        let vals: Vec<f32> =
            (0..n_kv * cap * d).map(|i| ((i * 7) % 23) as f32 / 8.0 - 1.4).collect();
        let q: Vec<f32> = (0..n_heads * d).map(|i| ((i * 3) % 17) as f32 / 8.0 - 1.0).collect();
        for kv_len in [1, 17, 40] {
            let s = AttentionShape {
                m: 1,
                kv_len,
                capacity: cap,
                n_heads,
                n_kv_heads: n_kv,
                head_dim: d,
            };
            let mut want = vec![0.0f32; n_heads * d];
            attention_ggml(&mut want, &q, &cache, &vals, s);
            for threads in 1..=4 {
                let pool = ThreadPool::new(threads);
                let mut got = vec![f32::NAN; n_heads * d];
                attend_decode_by_heads(&pool, attention_ggml, &mut got, &q, &cache, &vals, s);
                let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "kv_len {kv_len}, {threads} threads");
            }
        }
    }

    #[test]
    fn boundaries_cover_the_batch_with_balanced_work() {
        for (m, pos0) in [(8, 0), (64, 0), (512, 0), (37, 100)] {
            for parts in 1..=4 {
                let b: Vec<usize> = (0..=parts).map(|p| boundary(p, parts, m, pos0)).collect();
                assert_eq!((b[0], b[parts]), (0, m));
                assert!(b.windows(2).all(|w| w[0] <= w[1]));
                let total = work_before(m, pos0);
                for w in b.windows(2) {
                    let share = work_before(w[1], pos0) - work_before(w[0], pos0);
                    assert!(share <= total / parts + m + pos0 + 1, "{m} {pos0} {parts}: {b:?}");
                }
            }
        }
    }
}
