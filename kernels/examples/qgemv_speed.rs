//! Decode GEMV (one token) timing of the quantized matmuls at SmolLM2-135M's shapes: each matrix
//! hot (weights in cache, one matrix called again and again) and a cold sweep of one decode
//! token's matrices (30 layers of distinct Q4_1 weights plus the 49152×576 Q8_0 vocabulary
//! projection, ~96 MB: every byte comes from DRAM, as in the model), at 1 and 2 threads, in
//! turn in each storage: GGUF rows (`qmatvec_q4_1`, `qmatvec_q8_0` avx2), Q4_1 interleaved by
//! 8 rows (`qmatvec_q4_1x8` avx2), and where the CPU has AVX-512 VNNI the `avx512` kernels
//! (`qmatvec_q4_1x8` avx512, the vocabulary interleaved by 16 rows: `qmatvec_q8_0x16`).
//!
//! `cargo run --release -p gllm-kernels --example qgemv_speed [-- SECONDS]`
//!
//! Prints the fastest and the median batch (the machine is shared: the fastest batch is the one
//! least disturbed). Run two builds alternately to compare them.

use std::time::{Duration, Instant};

use gllm_kernels::quant::{
    q4_1x8, q8_0x16, quantize_activations, random, select_qmatmul, QMatmulFn, QuantType,
};
use gllm_kernels::threads::{split_ranges, ThreadPool};

const LAYERS: usize = 30;

struct Matrix {
    ty: QuantType,
    rows: usize,
    k: usize,
    bytes: Vec<u8>,
    /// The same matrix interleaved: by 8 rows (Q4_1), by 16 (Q8_0, with AVX-512 VNNI).
    x8: Vec<u8>,
}

/// A storage and the kernel that reads it.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// GGUF rows, `qmatvec_<type>` avx2.
    Rows,
    /// Q4_1 interleaved by 8 rows, `qmatvec_q4_1x8` avx2 (Q8_0 in rows).
    X8Avx2,
    /// The `avx512` kernels: `qmatvec_q4_1x8`, and `qmatvec_q8_0x16` on Q8_0.
    Avx512,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::Rows => "rows avx2",
            Layout::X8Avx2 => "x8 avx2",
            Layout::Avx512 => "x8/x16 avx512",
        }
    }

    /// The layouts this CPU runs.
    fn available() -> Vec<Layout> {
        let mut v = vec![Layout::Rows, Layout::X8Avx2];
        if q8_0x16::select("avx512").is_some() {
            v.push(Layout::Avx512);
        }
        v
    }
}

impl Matrix {
    fn random(ty: QuantType, rows: usize, k: usize, seed: u64) -> Matrix {
        let mut rng = gllm_kernels::registry::rng(seed);
        let bytes = random::blocks(ty, rows * k / ty.block_elems(), &mut rng);
        let mut x8 = Vec::new();
        if ty == QuantType::Q4_1 {
            x8 = vec![0; bytes.len()];
            q4_1x8::interleave(&bytes, rows, k, &mut x8);
        } else if ty == QuantType::Q8_0 && q8_0x16::select("avx512").is_some() {
            x8 = vec![0; bytes.len()];
            q8_0x16::interleave(&bytes, rows, k, &mut x8);
        }
        Matrix { ty, rows, k, bytes, x8 }
    }
}

/// Fastest and median seconds per call of `f`, batches of `per_batch` calls for `budget`.
fn time(budget: Duration, per_batch: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < budget || samples.len() < 5 {
        let t = Instant::now();
        for _ in 0..per_batch {
            f();
        }
        samples.push(t.elapsed().as_secs_f64() / per_batch as f64);
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    (samples[0], samples[samples.len() / 2])
}

/// `y = W·x` for one token, rows split across `pool` in multiples of 16, in `layout`.
fn gemv(
    pool: &ThreadPool,
    w: &Matrix,
    acts: &gllm_kernels::quant::QuantizedActs,
    y: &mut [f32],
    layout: Layout,
) {
    let (f, x8): (Option<QMatmulFn>, bool) = match (layout, w.ty) {
        (Layout::X8Avx2, QuantType::Q4_1) => (q4_1x8::select("avx2"), true),
        (Layout::Avx512, QuantType::Q4_1) => (q4_1x8::select("avx512"), true),
        (Layout::Avx512, QuantType::Q8_0) => (q8_0x16::select("avx512"), true),
        _ => (select_qmatmul("avx2"), false),
    };
    let f = f.expect("this example needs AVX2/FMA/F16C (and AVX-512 VNNI for its layout)");
    let bytes = if x8 { &w.x8 } else { &w.bytes };
    let row_bytes = w.bytes.len() / w.rows;
    let ranges = split_ranges(w.rows, pool.threads(), 16);
    let y_ptr = y.as_mut_ptr() as usize;
    pool.run(ranges.len(), &|p| {
        let r = ranges[p].clone();
        // SAFETY: the ranges are disjoint and inside `y[..rows]`.
        let out =
            unsafe { std::slice::from_raw_parts_mut((y_ptr as *mut f32).add(r.start), r.len()) };
        f(&bytes[r.start * row_bytes..r.end * row_bytes], w.ty, r.len(), w.k, acts, out, w.rows);
    });
}

/// `qgemv_speed count`: a fixed amount of work (1000 hot GEMVs at 576×576 in Q4_1 and in Q8_0)
/// for `valgrind --tool=callgrind`, whose instruction counts compare two builds exactly.
fn count() {
    let pool = ThreadPool::new(1);
    let mut rng = gllm_kernels::registry::rng(7);
    let x = random::values(&mut rng, 576);
    let mut y = vec![0.0f32; 576];
    for ty in [QuantType::Q4_1, QuantType::Q8_0] {
        let w = Matrix::random(ty, 576, 576, 11);
        let a = quantize_activations(ty.activation_type().unwrap(), &x, 1, 576);
        for _ in 0..1000 {
            gemv(&pool, &w, &a, &mut y, Layout::Rows);
        }
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("count") {
        return count();
    }
    let seconds: f64 = std::env::args().nth(1).map_or(2.0, |s| s.parse().expect("SECONDS"));
    let budget = Duration::from_secs_f64(seconds);
    let (e, ff, kv, vocab) = (576, 1536, 192, 49152);
    // (name, rows, k) of one layer: q, k, v, o, gate, up, down
    let layer = [
        ("q", e, e),
        ("k", kv, e),
        ("v", kv, e),
        ("o", e, e),
        ("gate", ff, e),
        ("up", ff, e),
        ("down", e, ff),
    ];
    let mut rng = gllm_kernels::registry::rng(7);
    let x_e = random::values(&mut rng, e);
    let x_ff = random::values(&mut rng, ff);
    let acts = |ty: QuantType, k: usize| {
        let act = ty.activation_type().unwrap();
        quantize_activations(act, if k == e { &x_e } else { &x_ff }, 1, k)
    };
    let one = ThreadPool::new(1);
    let mut y = vec![0.0f32; vocab];

    println!("hot (weights in cache), 1 thread: fastest / median µs per call");
    for (name, rows, k) in [("q 576x576", e, e), ("k 192x576", kv, e), ("up 1536x576", ff, e)]
        .into_iter()
        .chain([("down 576x1536", e, ff)])
    {
        let w = Matrix::random(QuantType::Q4_1, rows, k, rows as u64 * 3 + k as u64);
        let a = acts(w.ty, k);
        for layout in Layout::available() {
            let (best, median) = time(budget, 200, || gemv(&one, &w, &a, &mut y, layout));
            let layout = layout.name();
            println!("  {name:<14} q4_1 {layout:<13} {:>8.2} {:>8.2}", best * 1e6, median * 1e6);
        }
    }

    let layers: Vec<Vec<Matrix>> = (0..LAYERS)
        .map(|l| {
            layer
                .iter()
                .enumerate()
                .map(|(i, &(_, rows, k))| {
                    Matrix::random(QuantType::Q4_1, rows, k, (l * 16 + i) as u64)
                })
                .collect()
        })
        .collect();
    let output = Matrix::random(QuantType::Q8_0, vocab, e, 99);
    // three copies (85 MB, past the 32 MiB L3) called in turn: each call reads DRAM
    let outputs: Vec<Matrix> = (0..3)
        .map(|_| Matrix { bytes: output.bytes.clone(), x8: output.x8.clone(), ..output })
        .collect();
    let a41 = [acts(QuantType::Q4_1, e), acts(QuantType::Q4_1, ff)];
    let a80 = acts(QuantType::Q8_0, e);
    for threads in [1, 2] {
        let pool = ThreadPool::new(threads);
        for layout in Layout::available().into_iter().filter(|&l| l != Layout::X8Avx2) {
            let mut turn = 0;
            let (best, median) = time(budget, 1, || {
                turn = (turn + 1) % outputs.len();
                gemv(&pool, &outputs[turn], &a80, &mut y, layout)
            });
            println!(
                "{threads} thread(s): vocabulary 49152x576 q8_0 {} from DRAM: {:.3} / {:.3} ms ({:.1} GB/s best)",
                layout.name(),
                best * 1e3,
                median * 1e3,
                output.bytes.len() as f64 / best / 1e9
            );
        }
        let layouts = Layout::available();
        for layout in layouts.iter().chain(&layouts).copied() {
            let mut sweep = || {
                for l in &layers {
                    for w in l {
                        gemv(&pool, w, &a41[usize::from(w.k != e)], &mut y, layout);
                    }
                }
                gemv(&pool, &outputs[0], &a80, &mut y, layout);
            };
            let (best, median) = time(budget, 1, &mut sweep);
            println!(
                "{threads} thread(s): cold sweep (30 layers q4_1 + vocabulary, {}): {:.3} / {:.3} ms",
                layout.name(),
                best * 1e3,
                median * 1e3
            );
        }
    }
}
