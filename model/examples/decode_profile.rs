//! Times one decode step of a model and its parts (matmuls by matrix, the ggml-exact
//! attention and RMSNorm) at the given threads (default 1): where a token's time goes.
//!
//! Usage: decode_profile MODEL.gguf [STAGE [THREADS]]
//!
//! The machine may be shared: every figure is the fastest and the median of many batches
//! (the fastest batch is the one least disturbed). Decode batches restart at the same
//! position, so each batch sees the same context lengths (5..=36).
use std::time::Instant;

use gllm_kernels::ops::attention::AttentionShape;
use gllm_kernels::ops::ggml::{attention_ggml, rms_norm_ggml};
use gllm_kernels::quant::{q4_1x8, q8_0x16, qmatmul, quantize_activations, QMatmulFn, QuantType};
use gllm_kernels::threads::ThreadPool;
use gllm_model::gguf::GgufFile;
use gllm_model::llama::matmul::{part_range, ROW_ALIGN};
use gllm_model::llama::weights::{interleaved_q8_0_qmatmul, interleaved_qmatmul};
use gllm_model::{Model, ModelOptions};

/// Fastest and median seconds per call of `f` over `batches` batches of `per_batch` calls.
fn time(batches: usize, per_batch: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let mut samples: Vec<f64> = (0..batches)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            t.elapsed().as_secs_f64() / per_batch as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    (samples[0], samples[samples.len() / 2])
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: decode_profile MODEL.gguf [STAGE]");
    let stage = std::env::args().nth(2).unwrap_or_else(|| "quantized".into());
    let threads: usize = std::env::args().nth(3).map_or(1, |t| t.parse().expect("threads"));
    let options = ModelOptions { threads, max_positions: Some(512), ..Default::default() };
    let mut model = Model::load(&path, &stage, &options).unwrap();
    let prompt = [1, 2, 3, 4];
    let n = 32;
    let (best, median) = time(12, 1, || {
        model.truncate(0);
        model.prefill(&prompt).unwrap();
        let t = Instant::now();
        for i in 0..n {
            model.decode(100 + i).unwrap();
        }
        std::hint::black_box(t.elapsed());
    });
    // the batch includes a 4-token prefill; time it alone and take it out
    let (prefill, _) = time(12, 1, || {
        model.truncate(0);
        model.prefill(&prompt).unwrap();
    });
    let per_token = |s: f64| (s - prefill) / n as f64;
    println!(
        "{stage}, {threads} thread(s): decode {:.3} ms/token = {:.1} tokens/s best, {:.1} median",
        per_token(best) * 1e3,
        1.0 / per_token(best),
        1.0 / per_token(median)
    );
    for op in [
        "qmatvec_q4_1",
        "qmatvec_q4_1x8",
        "qmatvec_q8_0",
        "qmatvec_q8_0x16",
        "attention",
        "rms_norm",
        "linear",
    ] {
        println!("  {op} = {}", model.stage().variant(op).name);
    }

    let file = GgufFile::open(&path).unwrap();
    let pool = ThreadPool::new(threads);
    println!("parts: fastest / median µs per call, weights hot except the vocabulary");
    for name in [
        "blk.0.attn_q.weight",
        "blk.0.attn_k.weight",
        "blk.0.ffn_up.weight",
        "blk.0.ffn_down.weight",
        "token_embd.weight",
    ] {
        let info = file.tensor(name).unwrap();
        let (k, rows) = (info.dims[0] as usize, info.dims[1] as usize);
        let x: Vec<f32> = (0..k).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
        let act = info.ty.activation_type().unwrap();
        let acts = quantize_activations(act, &x, 1, k);
        let (q_us, _) = time(20, 100, || {
            std::hint::black_box(quantize_activations(act, &x, 1, k));
        });
        let mut y = vec![0.0f32; rows];
        // the storage the model chose: Q4_1 interleaved by 8 rows, Q8_0 by 16, when its stage
        // says so
        let x8 = interleaved_qmatmul(model.stage())
            .filter(|_| info.ty == QuantType::Q4_1 && q4_1x8::fits(rows, k));
        let x16 = interleaved_q8_0_qmatmul(model.stage())
            .filter(|_| info.ty == QuantType::Q8_0 && q8_0x16::fits(rows, k));
        let interleaved;
        let (bytes, qmatmul): (&[u8], QMatmulFn) = match (x8, x16) {
            (Some(f), _) | (None, Some(f)) => {
                let src = file.tensor_data(info);
                let mut b = vec![0u8; src.len()];
                if x8.is_some() {
                    q4_1x8::interleave(src, rows, k, &mut b);
                } else {
                    q8_0x16::interleave(src, rows, k, &mut b);
                }
                interleaved = b;
                (&interleaved, f)
            }
            (None, None) => (file.tensor_data(info), qmatmul),
        };
        let row_bytes = bytes.len() / rows;
        let y_addr = y.as_mut_ptr() as usize;
        let one = |pool: &ThreadPool| {
            let parts = pool.threads();
            pool.run(parts, &|p| {
                let r = part_range(rows, parts, ROW_ALIGN, p);
                // SAFETY: the parts' row ranges are disjoint and inside `y[..rows]`.
                let out = unsafe {
                    std::slice::from_raw_parts_mut((y_addr as *mut f32).add(r.start), r.len())
                };
                let w = &bytes[r.start * row_bytes..r.end * row_bytes];
                qmatmul(w, info.ty, r.len(), k, &acts, out, rows);
            })
        };
        let per_batch = if rows > 10000 { 2 } else { 200 };
        let one_thread = ThreadPool::new(1);
        let (b1, m1) = time(20, per_batch, || one(&one_thread));
        let (bn, mn) = time(20, per_batch, || one(&pool));
        println!(
            "{name} {rows}x{k} {}: 1 thread {:.1} / {:.1} µs ({:.1} GB/s), {threads} thread(s) {:.1} / {:.1} µs; quantize acts {:.2} µs",
            info.ty,
            b1 * 1e6,
            m1 * 1e6,
            info.n_bytes as f64 / b1 / 1e9,
            bn * 1e6,
            mn * 1e6,
            q_us * 1e6,
        );
    }

    // decode's parallel regions: q/k/v, o, gate/up, down per layer, then the vocabulary
    let regions = 4 * model.config().n_layers + 1;
    let (b, m) = time(20, 2000, || {
        pool.run(threads, &|p| {
            std::hint::black_box(p);
        })
    });
    println!(
        "empty parallel region, {threads} thread(s): {:.3} / {:.3} µs, ×{regions} per token",
        b * 1e6,
        m * 1e6
    );

    let cfg = model.config().clone();
    let (e, hd) = (cfg.n_embd, cfg.head_dim);
    let x: Vec<f32> = (0..e).map(|i| ((i * 5) % 11) as f32 - 5.0).collect();
    let mut h = vec![0.0f32; e];
    let (b, m) = time(20, 2000, || rms_norm_ggml(&mut h, &x, &x, 1e-5));
    println!(
        "rms_norm_ggml n={e}: {:.3} / {:.3} µs, ×{} per token",
        b * 1e6,
        m * 1e6,
        2 * cfg.n_layers + 1
    );
    for kv_len in [36, 256] {
        let shape = AttentionShape {
            m: 1,
            kv_len,
            capacity: 512,
            n_heads: cfg.n_heads,
            n_kv_heads: cfg.n_kv_heads,
            head_dim: hd,
        };
        // f16-representable values, as in the f16 KV cache
        let cache: Vec<f32> =
            (0..cfg.n_kv_heads * 512 * hd).map(|i| ((i * 13) % 29) as f32 / 16.0 - 0.9).collect();
        let q: Vec<f32> =
            (0..cfg.n_heads * hd).map(|i| ((i * 3) % 17) as f32 / 8.0 - 1.0).collect();
        let mut out = vec![0.0f32; cfg.n_heads * hd];
        let (b, m) = time(20, 200, || attention_ggml(&mut out, &q, &cache, &cache, shape));
        println!(
            "attention_ggml kv_len={kv_len} ({} heads, {} KV heads): {:.2} / {:.2} µs, ×{} per token",
            cfg.n_heads,
            cfg.n_kv_heads,
            b * 1e6,
            m * 1e6,
            cfg.n_layers
        );
    }
}
