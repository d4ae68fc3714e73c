//! The row-wise ops of a prefill batch (norms, RoPE, KV-cache writes, SiLU·up, residual adds)
//! split across the pool by token rows.
//!
//! Each of these ops computes a token's row from that row alone, so tokens `t0..t1` of the
//! batch are themselves a valid call and any cut gives the same bits. A batch is cut into one
//! range of tokens per thread when the op touches at least [`MIN_SPLIT_VALUES`] values; below
//! that (decode, short prompts) the op runs on the caller, with no parallel region.

use std::ops::Range;

use gllm_kernels::ops::activations::SiluMulFn;
use gllm_kernels::ops::elementwise::AddFn;
use gllm_kernels::ops::ggml_simd::copy_round_f16;
use gllm_kernels::ops::rms_norm::RmsNormFn;
use gllm_kernels::ops::rope::{RopeFn, RopeShape, RopeTable};
use gllm_kernels::threads::ThreadPool;

use super::matmul::SharedMut;

/// Values (tokens × values per token) of a row-wise op from which it is split: 16 Ki values
/// take ~5-20 µs on one core, a few times what a parallel region costs.
pub const MIN_SPLIT_VALUES: usize = 16 * 1024;

/// `f(tokens)` over the token ranges of `0..m` (nearly equal counts), one per thread of `pool`
/// when `m · row_values ≥ MIN_SPLIT_VALUES`, else `f(0..m)` on the caller.
pub fn split_rows(
    pool: &ThreadPool,
    m: usize,
    row_values: usize,
    f: &(dyn Fn(Range<usize>) + Sync),
) {
    let parts = pool.threads().min(m);
    if parts <= 1 || m * row_values < MIN_SPLIT_VALUES {
        return f(0..m);
    }
    pool.run(parts, &|p| f(m * p / parts..m * (p + 1) / parts));
}

/// A `[rows, width]` buffer whose rows the parts of one [`split_rows`] write, each its own.
pub struct RowsMut {
    ptr: SharedMut<f32>,
    rows: usize,
    width: usize,
}

impl RowsMut {
    /// `buf` holds `rows · width` values; borrowed mutably for as long as the `RowsMut` lives.
    pub fn new(buf: &mut [f32], width: usize) -> RowsMut {
        assert!(
            width > 0 && buf.len().is_multiple_of(width),
            "RowsMut: {} values, rows of {width}",
            buf.len()
        );
        RowsMut { ptr: SharedMut(buf.as_mut_ptr()), rows: buf.len() / width, width }
    }

    /// Rows `r` of the buffer.
    ///
    /// # Safety
    /// No two live slices from one `RowsMut` overlap: the parts of a [`split_rows`] each ask
    /// for their own token range.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn rows(&self, r: Range<usize>) -> &mut [f32] {
        assert!(r.start <= r.end && r.end <= self.rows, "RowsMut: rows {r:?} of {}", self.rows);
        // SAFETY: inside the buffer (asserted); exclusive by the caller's contract.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.ptr.ptr().add(r.start * self.width),
                r.len() * self.width,
            )
        }
    }
}

/// `rms_norm(y, x, weight, eps)` over `[m, weight.len()]`, split by rows.
pub fn rms_norm(
    pool: &ThreadPool,
    f: RmsNormFn,
    y: &mut [f32],
    x: &[f32],
    weight: &[f32],
    eps: f32,
) {
    let n = weight.len();
    assert!(n > 0 && y.len() == x.len(), "rms_norm: y {}, x {}, weight {n}", y.len(), x.len());
    let ys = RowsMut::new(y, n);
    split_rows(pool, x.len() / n, n, &|r| {
        // SAFETY: each part takes its own token range.
        let y = unsafe { ys.rows(r.clone()) };
        f(y, &x[r.start * n..r.end * n], weight, eps)
    });
}

/// `rope(q, k, s, table)` over a batch's tokens, split by tokens (a range starts at position
/// `s.pos0 + t0`).
pub fn rope(
    pool: &ThreadPool,
    f: RopeFn,
    q: &mut [f32],
    k: &mut [f32],
    s: RopeShape,
    table: &RopeTable,
) {
    let (qw, kw) = (s.n_heads * s.head_dim, s.n_kv_heads * s.head_dim);
    assert!(qw > 0 && q.len().is_multiple_of(qw), "rope: q has {} values, rows of {qw}", q.len());
    let m = q.len() / qw;
    assert_eq!(k.len(), m * kw, "rope: k has {} values for {m} tokens of {kw}", k.len());
    let (qs, ks) = (RowsMut::new(q, qw), RowsMut::new(k, kw.max(1)));
    split_rows(pool, m, qw + kw, &|r| {
        // SAFETY: each part takes its own token range.
        let (q, k) = unsafe { (qs.rows(r.clone()), ks.rows(r.clone())) };
        f(q, k, RopeShape { pos0: s.pos0 + r.start, ..s }, table)
    });
}

/// `silu_mul(y, gate, up)` over `[m, width]`, split by rows.
pub fn silu_mul(
    pool: &ThreadPool,
    f: SiluMulFn,
    y: &mut [f32],
    gate: &[f32],
    up: &[f32],
    width: usize,
) {
    assert!(
        y.len() == gate.len() && y.len() == up.len(),
        "silu_mul: y {}, gate {}, up {}",
        y.len(),
        gate.len(),
        up.len()
    );
    let ys = RowsMut::new(y, width);
    split_rows(pool, gate.len() / width, width, &|r| {
        // SAFETY: each part takes its own token range.
        let y = unsafe { ys.rows(r.clone()) };
        let values = r.start * width..r.end * width;
        f(y, &gate[values.clone()], &up[values])
    });
}

/// `add(y, x)` (`y += x`) over `[m, width]`, split by rows.
pub fn add(pool: &ThreadPool, f: AddFn, y: &mut [f32], x: &[f32], width: usize) {
    assert_eq!(y.len(), x.len(), "add: y {}, x {}", y.len(), x.len());
    let ys = RowsMut::new(y, width);
    split_rows(pool, x.len() / width, width, &|r| {
        // SAFETY: each part takes its own token range.
        let y = unsafe { ys.rows(r.clone()) };
        f(y, &x[r.start * width..r.end * width])
    });
}

/// Where a batch's K and V go in one layer's cache: `[n_kv_heads][capacity][head_dim]`, the
/// batch's tokens at positions `pos0 ..`.
#[derive(Clone, Copy, Debug)]
pub struct KvLayout {
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub capacity: usize,
    pub pos0: usize,
}

/// K and V of a batch (`[m, n_kv_heads · head_dim]`) into one layer's caches, rounded to f16
/// values when `f16` (the f16 KV cache), split by tokens.
pub fn write_kv(
    pool: &ThreadPool,
    k_cache: &mut [f32],
    v_cache: &mut [f32],
    k: &[f32],
    v: &[f32],
    c: KvLayout,
    f16: bool,
) {
    let (hd, kvd) = (c.head_dim, c.n_kv_heads * c.head_dim);
    assert!(
        kvd > 0 && k.len() == v.len() && k.len().is_multiple_of(kvd),
        "write_kv: k {}, v {}, rows of {kvd}",
        k.len(),
        v.len()
    );
    let m = k.len() / kvd;
    let layer = c.n_kv_heads * c.capacity * hd;
    assert!(
        c.pos0 + m <= c.capacity && k_cache.len() >= layer && v_cache.len() >= layer,
        "write_kv: positions {}..{} of {}, caches {} and {} values for {layer}",
        c.pos0,
        c.pos0 + m,
        c.capacity,
        k_cache.len(),
        v_cache.len()
    );
    // one row of head_dim per (KV head, position)
    let (kc, vc) =
        (RowsMut::new(&mut k_cache[..layer], hd), RowsMut::new(&mut v_cache[..layer], hd));
    split_rows(pool, m, 2 * kvd, &|r| {
        for t in r {
            for g in 0..c.n_kv_heads {
                let src = t * kvd + g * hd..t * kvd + (g + 1) * hd;
                let row = g * c.capacity + c.pos0 + t;
                // SAFETY: row (g, pos0 + t) belongs to token t alone, and each part takes its
                // own tokens.
                let (kd, vd) = unsafe { (kc.rows(row..row + 1), vc.rows(row..row + 1)) };
                if f16 {
                    copy_round_f16(kd, &k[src.clone()]);
                    copy_round_f16(vd, &v[src]);
                } else {
                    kd.copy_from_slice(&k[src.clone()]);
                    vd.copy_from_slice(&v[src]);
                }
            }
        }
    });
}
