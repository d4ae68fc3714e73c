//! `y = x·Wᵀ` for one weight matrix, its output rows split across the model's thread pool.
//!
//! Shapes: `x: [m, k]`, `W: [n, k]`, `y: [m, n]` row-major. Each part of the pool takes a
//! contiguous range of weight rows (multiples of [`ROW_ALIGN`]), so every weight byte is read
//! by one thread. For `m = 1` (decode) the parts write disjoint ranges of `y` directly; for
//! `m > 1` (prefill) each part writes `[m, rows in part]` into its own buffer, then copies its
//! columns into `y`. Quantized matrices multiply activations quantized once per input by the
//! caller ([`Activations::prepare`]), shared by the matrices that read the same input (q, k, v;
//! gate, up).

use gllm_kernels::ops::linear::{LinearFn, LinearShape};
use gllm_kernels::ops::linear_packed::PANEL;
use gllm_kernels::quant::matmul::quantize_activations_into;
use gllm_kernels::quant::{QMatmulFn, QuantType, QuantizedActs};
use gllm_kernels::threads::ThreadPool;

use super::weights::{Matrix, MatrixData};
use crate::gguf::GgufFile;

/// Weight rows per part boundary: the f32 GEMV/GEMM and the quantized tiles work on groups of
/// 4 or 8 rows, the packed f32 matrices and the interleaved Q8_0 ones on panels of 16.
pub const ROW_ALIGN: usize = 16;
const _: () = assert!(ROW_ALIGN.is_multiple_of(gllm_kernels::quant::q8_0x16::ROWS));
const _: () = assert!(ROW_ALIGN.is_multiple_of(PANEL));

/// Rows from which a decode GEMV is cut into several parts per thread (see [`project`]).
const FINE_SPLIT_ROWS: usize = 16384;

/// A pointer that parts of a pool job may share; each part writes a disjoint set of elements.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut<T>(pub(crate) *mut T);
// SAFETY: used only to write disjoint elements from different parts of one `ThreadPool::run`.
unsafe impl<T> Sync for SharedMut<T> {}
unsafe impl<T> Send for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// A method (not a field access) so closures capture the whole `Sync` wrapper.
    pub(crate) fn ptr(&self) -> *mut T {
        self.0
    }
}

/// Rows `[start, end)` of part `p` of `parts` over `n` rows, boundaries multiples of `align`.
pub fn part_range(n: usize, parts: usize, align: usize, p: usize) -> std::ops::Range<usize> {
    let units = n.div_ceil(align);
    let start = (units * p / parts * align).min(n);
    let end = (units * (p + 1) / parts * align).min(n);
    start..end
}

/// The input of a group of matrices: f32 rows, plus their quantized form when a quantized
/// matrix reads them.
pub struct Activations {
    quantized: QuantizedActs,
    /// The type `quantized` currently holds for the current input, if any.
    holds: Option<QuantType>,
}

impl Default for Activations {
    fn default() -> Self {
        Activations { quantized: QuantizedActs::empty(QuantType::Q8_0), holds: None }
    }
}

impl Activations {
    /// Forgets the quantized input (call when `x` changes).
    pub fn reset(&mut self) {
        self.holds = None;
    }

    /// Makes sure the quantized form of `x: [m, k]` matches `w`'s activation type.
    pub fn prepare(&mut self, w: &Matrix, x: &[f32], m: usize) {
        if let Some(act) = w.activation_type() {
            if self.holds != Some(act) {
                quantize_activations_into(&mut self.quantized, act, x, m, w.cols)
                    .unwrap_or_else(|e| panic!("quantizing the input of {}: {e}", w.name));
                self.holds = Some(act);
            }
        }
    }
}

/// Per-part output buffers for `m > 1`, reused across calls.
#[derive(Default)]
pub struct PartBuffers {
    buffers: Vec<Vec<f32>>,
}

impl PartBuffers {
    fn ensure(&mut self, parts: usize, len: usize) {
        if self.buffers.len() < parts {
            self.buffers.resize_with(parts, Vec::new);
        }
        for b in &mut self.buffers[..parts] {
            if b.len() < len {
                b.resize(len, 0.0);
            }
        }
    }
}

/// Rows `r` of `w` against `x: [m, k]` (or its quantized form `acts`) into `out`, row stride
/// `stride`.
#[allow(clippy::too_many_arguments)]
fn compute_rows(
    linear: LinearFn,
    file: &GgufFile,
    w: &Matrix,
    x: &[f32],
    acts: &QuantizedActs,
    m: usize,
    r: std::ops::Range<usize>,
    out: &mut [f32],
    stride: usize,
) {
    let k = w.cols;
    match &w.data {
        MatrixData::F32(wv) => {
            let shape = LinearShape { m, n: r.len(), k, y_stride: stride };
            linear(out, &x[..m * k], &wv[r.start * k..r.end * k], None, shape)
        }
        MatrixData::F32Packed(wv, packed_linear) => {
            // `r` starts on a panel (ROW_ALIGN); its last panel may be padded past `r.end`
            let panels = r.start * k..(r.start + r.len().next_multiple_of(PANEL)) * k;
            let shape = LinearShape { m, n: r.len(), k, y_stride: stride };
            packed_linear(out, &x[..m * k], &wv[panels], None, shape)
        }
        MatrixData::Q4_1x8 { bytes, qmatmul } | MatrixData::Q8_0x16 { bytes, qmatmul } => {
            // the same bytes per row as GGUF rows, and `r` starts on a panel (ROW_ALIGN)
            quantized_rows(bytes, *qmatmul, w, acts, r, out, stride)
        }
        MatrixData::Blocks { info, qmatmul, .. } => {
            quantized_rows(file.tensor_data(info), *qmatmul, w, acts, r, out, stride)
        }
    }
}

/// Rows `r` of a quantized matrix stored as `bytes` (`w.rows` rows of equal size).
fn quantized_rows(
    bytes: &[u8],
    qmatmul: QMatmulFn,
    w: &Matrix,
    acts: &QuantizedActs,
    r: std::ops::Range<usize>,
    out: &mut [f32],
    stride: usize,
) {
    let row_bytes = bytes.len() / w.rows.max(1);
    let rows = &bytes[r.start * row_bytes..r.end * row_bytes];
    qmatmul(rows, w.file_type, r.len(), w.cols, acts, out, stride)
}

/// `y[..m·n] = x·Wᵀ` over the pool (see the module docs).
#[allow(clippy::too_many_arguments)]
pub fn project(
    pool: &ThreadPool,
    linear: LinearFn,
    file: &GgufFile,
    w: &Matrix,
    x: &[f32],
    acts: &mut Activations,
    m: usize,
    y: &mut [f32],
    parts_buf: &mut PartBuffers,
) {
    let (n, k) = (w.rows, w.cols);
    assert!(x.len() >= m * k && y.len() >= m * n, "project {}: buffers too short", w.name);
    let x = &x[..m * k];
    acts.prepare(w, x, m);
    let acts = &acts.quantized;
    // A decode GEMV over many rows (the vocabulary) is cut finer than one part per thread:
    // parts are claimed dynamically, so a thread that the shared machine deschedules mid-way
    // leaves its unclaimed parts to the other instead of making it wait.
    let fine = m == 1 && n >= FINE_SPLIT_ROWS && pool.threads() > 1;
    let per_thread = if fine { 8 } else { 1 };
    let parts = (pool.threads() * per_thread).min(n.div_ceil(ROW_ALIGN)).max(1);
    let compute = |r: std::ops::Range<usize>, out: &mut [f32], stride: usize| {
        compute_rows(linear, file, w, x, acts, m, r, out, stride)
    };
    if m == 1 {
        let y_ptr = SharedMut(y.as_mut_ptr());
        pool.run(parts, &|p| {
            let r = part_range(n, parts, ROW_ALIGN, p);
            if r.is_empty() {
                return;
            }
            // SAFETY: the parts' row ranges are disjoint and inside `y[..n]`.
            let out = unsafe { std::slice::from_raw_parts_mut(y_ptr.ptr().add(r.start), r.len()) };
            compute(r, out, n);
        });
    } else if parts == 1 {
        compute(0..n, &mut y[..m * n], n);
    } else {
        let widest = (0..parts).map(|p| part_range(n, parts, ROW_ALIGN, p).len()).max();
        parts_buf.ensure(parts, m * widest.unwrap_or(0));
        let bufs = SharedMut(parts_buf.buffers.as_mut_ptr());
        let y_ptr = SharedMut(y.as_mut_ptr());
        pool.run(parts, &|p| {
            let r = part_range(n, parts, ROW_ALIGN, p);
            if r.is_empty() {
                return;
            }
            let width = r.len();
            // SAFETY: part `p` is the only user of buffer `p` during this job.
            let buf = unsafe { &mut *bufs.ptr().add(p) };
            let out = &mut buf[..m * width];
            compute(r.clone(), out, width);
            for t in 0..m {
                // SAFETY: row `t`, columns `r` of `y` are written by this part only; in bounds
                // because `y.len() >= m·n` was asserted.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        out.as_ptr().add(t * width),
                        y_ptr.ptr().add(t * n + r.start),
                        width,
                    )
                };
            }
        });
    }
}

/// Work a part of [`project_group_decode`] does on its own rows once they are computed:
/// `then(rows, outs)` gets the part's row range and every output's values in that range (a
/// group with an epilogue has matrices of equal row counts, so they share the range).
pub type GroupEpilogue<'a, const N: usize> =
    &'a (dyn Fn(std::ops::Range<usize>, [&[f32]; N]) + Sync);

/// One decode token (`x: [k]`) through `N` matrices that read the same input (q, k, v; gate,
/// up) in ONE parallel region: each part takes its row range of every matrix, so a token
/// pays one pool synchronization per group instead of one per matrix; then each part runs
/// `then` on its rows (an elementwise op on the outputs, e.g. SiLU·up), which gives the bits
/// of running it once over all rows because part boundaries are multiples of [`ROW_ALIGN`].
/// Falls back to [`project`] per matrix when the matrices need different activation formats.
#[allow(clippy::too_many_arguments)]
pub fn project_group_decode<const N: usize>(
    pool: &ThreadPool,
    linear: LinearFn,
    file: &GgufFile,
    mats: [&Matrix; N],
    x: &[f32],
    acts: &mut Activations,
    outs: [&mut [f32]; N],
    parts_buf: &mut PartBuffers,
    then: Option<GroupEpilogue<'_, N>>,
) {
    let rows = mats[0].rows;
    assert!(
        then.is_none() || mats.iter().all(|w| w.rows == rows),
        "project_group_decode: an epilogue needs matrices of equal row counts"
    );
    let act = mats[0].activation_type();
    if mats.iter().any(|w| w.activation_type() != act || w.cols != mats[0].cols) {
        let mut done: [&[f32]; N] = [&[]; N];
        for ((w, y), d) in mats.into_iter().zip(outs).zip(&mut done) {
            project(pool, linear, file, w, x, acts, 1, y, parts_buf);
            *d = &y[..w.rows];
        }
        if let Some(then) = then {
            then(0..rows, done);
        }
        return;
    }
    let k = mats[0].cols;
    let x = &x[..k];
    acts.prepare(mats[0], x, 1);
    let acts = &acts.quantized;
    let mut ptrs: [SharedMut<f32>; N] = [SharedMut(std::ptr::null_mut()); N];
    for i in 0..N {
        assert!(outs[i].len() >= mats[i].rows, "project {}: output too short", mats[i].name);
        ptrs[i] = SharedMut(outs[i].as_mut_ptr());
    }
    let parts = pool.threads();
    pool.run(parts, &|p| {
        for (w, y) in mats.iter().zip(&ptrs) {
            let r = part_range(w.rows, parts, ROW_ALIGN, p);
            if r.is_empty() {
                continue;
            }
            // SAFETY: the parts' row ranges are disjoint and inside the output (asserted
            // length); `outs` stays exclusively borrowed and unused until the job ends.
            let out = unsafe { std::slice::from_raw_parts_mut(y.ptr().add(r.start), r.len()) };
            compute_rows(linear, file, w, x, acts, 1, r, out, w.rows);
        }
        if let Some(then) = then {
            let r = part_range(rows, parts, ROW_ALIGN, p);
            let done = std::array::from_fn(|i| {
                // SAFETY: every matrix has `rows` rows (asserted), so this part wrote exactly
                // range `r` of every output above, and no other part touches it.
                unsafe {
                    std::slice::from_raw_parts(ptrs[i].ptr().add(r.start).cast_const(), r.len())
                }
            });
            then(r, done);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_ranges_cover_rows_in_aligned_pieces() {
        for n in [1, 7, 8, 9, 64, 192, 576, 1536, 49152] {
            for parts in 1..=4 {
                let mut next = 0;
                for p in 0..parts {
                    let r = part_range(n, parts, ROW_ALIGN, p);
                    assert_eq!(r.start, next);
                    assert!(r.start.is_multiple_of(ROW_ALIGN) || r.is_empty());
                    next = r.end;
                }
                assert_eq!(next, n);
            }
        }
    }
}
