//! AVX2+FMA kernels of `ops::linear_packed`: W in panels of 16 rows, transposed
//! (`panel[t·16 + c] = W[16p + c, t]`), so one step `t` of 16 outputs is a broadcast of
//! `x[t]` and two 8-lane FMAs against the panel's 16 values of step `t`.
//!
//! Both the GEMM and the GEMV compute every output as ONE FMA chain over `t = 0 .. k` in
//! order from 0.0, then add the bias: the chain's partial sums are kept in registers or
//! stored to `y` and reloaded unchanged between k slices, so an output's bits do not depend
//! on `m`, on its tile, or on which panels a thread takes.

use std::arch::x86_64::*;

use crate::ops::linear_packed::PANEL;

/// Rows of x per GEMM tile: 6 rows × 2 vectors = 12 accumulators, 2 panel loads and 6
/// broadcasts per 12 FMAs.
const TILE_ROWS: usize = 6;
/// Longest k slice of the GEMM: the panel's slice (16 KiB) and a tile's 6 x rows (6 KiB)
/// stay in L1 while the tile runs.
const KC_MAX: usize = 256;
/// Bytes of x per block of rows of the GEMM: the block stays in L2 (512 KiB on Zen 3) while
/// every panel passes over it, and W is read from memory once per block. 400 KiB holds a
/// 64-token prefill's whole input of the down projection (64 × 1536 × 4 B = 384 KiB), so W
/// passes once instead of three times (192 KiB): `prefill_profile` flash, 64 tokens, down
/// 40–45 ms against 42–59 ms, interleaved; at 512 tokens no change beyond the noise.
const X_BLOCK_BYTES: usize = 400 << 10;
/// Panels the GEMV reads side by side: 8 independent FMA chains hide the FMA latency, and
/// the 4 panels are 4 sequential streams for the prefetchers.
const GEMV_PANELS: usize = 4;

/// Up to 16 values at `p` (`nr` of them; the rest read as 0.0) as two vectors.
#[inline(always)]
unsafe fn load16(p: *const f32, nr: usize) -> [__m256; 2] {
    if nr == PANEL {
        return [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))];
    }
    let mut tmp = [0.0f32; PANEL];
    std::ptr::copy_nonoverlapping(p, tmp.as_mut_ptr(), nr);
    [_mm256_loadu_ps(tmp.as_ptr()), _mm256_loadu_ps(tmp.as_ptr().add(8))]
}

/// Stores the first `nr` of the 16 values of `v` at `p`.
#[inline(always)]
unsafe fn store16(p: *mut f32, v: [__m256; 2], nr: usize) {
    if nr == PANEL {
        _mm256_storeu_ps(p, v[0]);
        _mm256_storeu_ps(p.add(8), v[1]);
        return;
    }
    let mut tmp = [0.0f32; PANEL];
    _mm256_storeu_ps(tmp.as_mut_ptr(), v[0]);
    _mm256_storeu_ps(tmp.as_mut_ptr().add(8), v[1]);
    std::ptr::copy_nonoverlapping(tmp.as_ptr(), p, nr);
}

/// The finished chain `acc` (+ the bias at `bias`, `nr` values) into `y[..nr]`.
#[inline(always)]
unsafe fn finish(y: *mut f32, acc: [__m256; 2], bias: Option<*const f32>, nr: usize) {
    let out = match bias {
        Some(b) => {
            let b = load16(b, nr);
            [_mm256_add_ps(acc[0], b[0]), _mm256_add_ps(acc[1], b[1])]
        }
        None => acc,
    };
    store16(y, out, nr);
}

/// One GEMM tile: x rows `x + r·ldx` (`r < MR`) times the panel slice `panel` over `kc`
/// steps, continuing the chains held in `y` rows `y + r·ldy` (`first`: from 0.0) and, on the
/// `last` slice, adding the bias. `nr` of the 16 columns are real.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const MR: usize>(
    (x, ldx): (*const f32, usize),
    panel: *const f32,
    kc: usize,
    (y, ldy): (*mut f32, usize),
    nr: usize,
    bias: Option<*const f32>,
    (first, last): (bool, bool),
) {
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    if !first {
        for (r, a) in acc.iter_mut().enumerate() {
            *a = load16(y.add(r * ldy), nr);
        }
    }
    for t in 0..kc {
        let w = panel.add(t * PANEL);
        let (w0, w1) = (_mm256_loadu_ps(w), _mm256_loadu_ps(w.add(8)));
        for (r, a) in acc.iter_mut().enumerate() {
            let xv = _mm256_broadcast_ss(&*x.add(r * ldx + t));
            a[0] = _mm256_fmadd_ps(xv, w0, a[0]);
            a[1] = _mm256_fmadd_ps(xv, w1, a[1]);
        }
    }
    for (r, a) in acc.iter().enumerate() {
        if last {
            finish(y.add(r * ldy), *a, bias, nr);
        } else {
            store16(y.add(r * ldy), *a, nr);
        }
    }
}

/// `y = x·Wᵀ (+ bias)` for `m ≥ 1` rows of x: for each block of x rows (≤
/// [`X_BLOCK_BYTES`], in L2), each panel, each k slice (≤ [`KC_MAX`], equal slices; in L1),
/// every group of [`TILE_ROWS`] rows makes a tile (fewer rows at the block's end). Within a
/// block, W is read in memory order: panel after panel, each slice after the one before.
///
/// # Safety
/// AVX2 and FMA must be available; `x` holds `m·k` values, `w` the `⌈n/16⌉` packed panels
/// (`⌈n/16⌉·16·k` values), `bias` (if any) `n`, `y` `(m−1)·ldy + n` with `ldy ≥ n`; `k ≥ 1`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gemm(
    y: *mut f32,
    x: *const f32,
    w: *const f32,
    bias: Option<*const f32>,
    (m, n, k, ldy): (usize, usize, usize, usize),
) {
    let slices = k.div_ceil(KC_MAX);
    let kc_step = k.div_ceil(slices);
    let block_rows = (X_BLOCK_BYTES / (4 * k) / TILE_ROWS).max(1) * TILE_ROWS;
    for i_block in (0..m).step_by(block_rows) {
        let block_end = (i_block + block_rows).min(m);
        for p in 0..n.div_ceil(PANEL) {
            let j0 = p * PANEL;
            let nr = PANEL.min(n - j0);
            let b = bias.map(|b| b.add(j0));
            let mut k0 = 0;
            while k0 < k {
                let kc = kc_step.min(k - k0);
                let pass = (k0 == 0, k0 + kc == k);
                let panel = w.add((p * k + k0) * PANEL);
                let mut i0 = i_block;
                while i0 < block_end {
                    let rows = TILE_ROWS.min(block_end - i0);
                    let xs = (x.add(i0 * k + k0), k);
                    let ys = (y.add(i0 * ldy + j0), ldy);
                    match rows {
                        1 => tile::<1>(xs, panel, kc, ys, nr, b, pass),
                        2 => tile::<2>(xs, panel, kc, ys, nr, b, pass),
                        3 => tile::<3>(xs, panel, kc, ys, nr, b, pass),
                        4 => tile::<4>(xs, panel, kc, ys, nr, b, pass),
                        5 => tile::<5>(xs, panel, kc, ys, nr, b, pass),
                        _ => tile::<6>(xs, panel, kc, ys, nr, b, pass),
                    }
                    i0 += rows;
                }
                k0 += kc;
            }
        }
    }
}

/// Panels `p0 .. p0 + P` against the vector `x` (`k` values): `P` pairs of chains side by
/// side, each panel one sequential stream.
#[inline(always)]
unsafe fn gemv_panels<const P: usize>(
    y: *mut f32,
    x: *const f32,
    w: *const f32,
    bias: Option<*const f32>,
    (n, k): (usize, usize),
    p0: usize,
) {
    let mut acc = [[_mm256_setzero_ps(); 2]; P];
    let panels: [*const f32; P] = std::array::from_fn(|q| w.add((p0 + q) * k * PANEL));
    for t in 0..k {
        let xv = _mm256_broadcast_ss(&*x.add(t));
        for (a, panel) in acc.iter_mut().zip(&panels) {
            let wt = panel.add(t * PANEL);
            a[0] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(wt), a[0]);
            a[1] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(wt.add(8)), a[1]);
        }
    }
    for (q, a) in acc.iter().enumerate() {
        let j0 = (p0 + q) * PANEL;
        finish(y.add(j0), *a, bias.map(|b| b.add(j0)), PANEL.min(n - j0));
    }
}

/// `y = x·Wᵀ (+ bias)` for one row of x: [`GEMV_PANELS`] panels at a time, then the
/// remaining panels together.
///
/// # Safety
/// As [`gemm`] with `m = 1`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gemv(
    y: *mut f32,
    x: *const f32,
    w: *const f32,
    bias: Option<*const f32>,
    n: usize,
    k: usize,
) {
    let panels = n.div_ceil(PANEL);
    let whole = panels / GEMV_PANELS * GEMV_PANELS;
    for p0 in (0..whole).step_by(GEMV_PANELS) {
        gemv_panels::<GEMV_PANELS>(y, x, w, bias, (n, k), p0);
    }
    match panels - whole {
        0 => {}
        1 => gemv_panels::<1>(y, x, w, bias, (n, k), whole),
        2 => gemv_panels::<2>(y, x, w, bias, (n, k), whole),
        _ => gemv_panels::<3>(y, x, w, bias, (n, k), whole),
    }
}
