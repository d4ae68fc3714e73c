//! Attention of a prefill batch split across the pool by query tokens.
//!
//! Query rows of `q` and `out` (`[m, n_heads, head_dim]`) are contiguous per token, and a
//! token range `t0..t1` of the batch is itself a valid call: `m' = t1 − t0` queries with
//! `kv_len' = pos0 + t1` (query `i` still sees keys `0 ..= pos0 + t0 + i`). Causal work grows
//! with the position (token `t` scores `pos0 + t + 1` keys), so the ranges are cut where the
//! cumulative work reaches equal shares. Decode (`m = 1`) and small batches run on the caller.

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

#[cfg(test)]
mod tests {
    use super::*;

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
