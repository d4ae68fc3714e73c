//! Attention: flash against naive on decode and prefill with a non-empty cache, a case whose
//! answer is known in closed form (proves the causal mask's offset), and prefill = the same
//! tokens decoded one at a time.

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
