//! Where a prefill's time goes: the whole prefill of N tokens timed through the model; then
//! the same prefill with the model timing each of its parts in its own loop
//! (`Model::time_parts`: embedding rows, norms, matmuls, RoPE, KV-cache writes, attention,
//! SiLU·up, residual adds, logits); then the large parts again one by one through the same
//! code paths and thread pool on random inputs (`project` for the matmuls of every layer by
//! kind, quantizing activations apart, `attend` for attention (llama.cpp's over an f16 cache
//! on stages that run its arithmetic, as the model does), the logits of the last token), whose
//! "remainder" is the whole prefill less those: the other parts plus whatever the parts take
//! more or less in the model than on random inputs (at 512 tokens it read ~150 ms where the
//! model's own timing finds ~50). Every figure is the best of REPS runs (the least
//! disturbed on a shared machine); in the model's table each part's best, so its sum can be
//! a little below the whole.
//!
//! Usage: prefill_profile MODEL.gguf [TOKENS [THREADS [STAGE [REPS [total|parts]]]]]
//! (default 64 1 quantized 5; `total` prints the whole prefill only, `parts` also the model's
//! table, for interleaved A/B runs)
use std::time::Instant;

use gllm_kernels::ops::attention::AttentionShape;
use gllm_kernels::quant::f16::{f16_to_f32, f32_to_f16};
use gllm_kernels::quant::matmul::quantize_activations_into;
use gllm_kernels::quant::QuantizedActs;
use gllm_kernels::threads::ThreadPool;
use gllm_model::llama::attention::attend;
use gllm_model::llama::matmul::{project, Activations, PartBuffers};
use gllm_model::llama::model::LLAMA_UBATCH;
use gllm_model::llama::timing::{Part, PartTimes};
use gllm_model::llama::weights::Matrix;
use gllm_model::{Model, ModelOptions};

/// Best wall time of `reps` runs of `f`, in seconds.
fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect(
        "usage: prefill_profile MODEL.gguf [TOKENS [THREADS [STAGE [REPS [total|parts]]]]]",
    );
    let n: usize = args.next().map_or(64, |s| s.parse().expect("TOKENS"));
    let threads: usize = args.next().map_or(1, |s| s.parse().expect("THREADS"));
    let stage = args.next().unwrap_or_else(|| "quantized".into());
    let reps: usize = args.next().map_or(5, |s| s.parse().expect("REPS"));
    let mode = args.next().unwrap_or_default();
    let options = ModelOptions { threads, max_positions: Some(n.max(2)), ..Default::default() };
    let mut model = Model::load(&path, &stage, &options).unwrap();
    let tokens: Vec<u32> = (0..n as u32).map(|i| 100 + (i * 37) % 5000).collect();
    let total = best(reps, || {
        model.reset();
        model.prefill(&tokens).unwrap();
    });
    println!(
        "{stage}, {threads} thread(s): prefill of {n} tokens {:.1} ms = {:.1} tokens/s (best of {reps})",
        total * 1e3,
        n as f64 / total
    );
    if mode == "total" {
        return;
    }

    // the parts as the model times them in its own loop
    let mut parts_best: Option<PartTimes> = None;
    for _ in 0..reps {
        model.reset();
        model.time_parts(true);
        model.prefill(&tokens).unwrap();
        let t = model.part_times().expect("timing is on");
        parts_best = Some(parts_best.map_or(t, |b| b.min(&t)));
    }
    model.time_parts(false);
    let parts_best = parts_best.unwrap_or_default();
    println!("inside the model (each part's best of {reps}):");
    println!("{:<10} {:>10} {:>8}", "part", "ms", "% total");
    for part in Part::ALL {
        let ms = parts_best.get(part).as_secs_f64() * 1e3;
        println!("{:<10} {ms:>10.2} {:>7.1}%", part.name(), 100.0 * ms / 1e3 / total);
    }
    let rest: f64 = Part::ALL
        .iter()
        .filter(|p| !matches!(p, Part::Matmul | Part::Attention | Part::Logits))
        .map(|&p| parts_best.get(p).as_secs_f64())
        .sum();
    println!("{:<10} {:>10.2} {:>7.1}%", "the rest", rest * 1e3, 100.0 * rest / total);
    let sum = parts_best.total().as_secs_f64();
    println!("{:<10} {:>10.2} {:>7.1}%", "sum", sum * 1e3, 100.0 * sum / total);
    if mode == "parts" {
        return;
    }
    println!("apart, on random inputs:");

    let cfg = model.config().clone();
    let (e, hd) = (cfg.n_embd, cfg.head_dim);
    let (qd, ff) = (cfg.n_heads * hd, cfg.n_ff);
    let batch = options.max_batch.min(n);
    let batches: Vec<(usize, usize)> =
        (0..n).step_by(batch).map(|p| (p, batch.min(n - p))).collect();
    let pool = ThreadPool::new(threads);
    let kernels = model.kernels();
    let weights = model.weights();
    let file = weights.file.as_ref();
    let mut rng_state = 12345u64;
    let mut random = |len: usize| -> Vec<f32> {
        (0..len)
            .map(|_| {
                rng_state =
                    rng_state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((rng_state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    };
    let x_e = random(batch * e);
    let x_qd = random(batch * qd);
    let x_ff = random(batch * ff);
    let mut y = vec![0.0f32; batch * ff.max(qd).max(e)];
    let mut acts = Activations::default();
    let mut parts = PartBuffers::default();

    // matmuls by kind, summed over layers and batches: (label, matrices of a layer, input)
    type Pick = fn(&gllm_model::llama::weights::LayerWeights) -> Vec<&Matrix>;
    let kinds: [(&str, Pick, &[f32], usize); 4] = [
        ("q, k, v", |l| vec![&l.wq, &l.wk, &l.wv], &x_e, e),
        ("o", |l| vec![&l.wo], &x_qd, qd),
        ("gate, up", |l| vec![&l.gate, &l.up], &x_e, e),
        ("down", |l| vec![&l.down], &x_ff, ff),
    ];
    let mut matmul_total = 0.0;
    let mut flops_total = 0.0;
    println!("{:<10} {:>10} {:>8} {:>10}", "part", "ms", "% total", "GFLOP/s");
    let line = |label: &str, s: f64, flops: f64| {
        let rate = if flops > 0.0 { format!("{:>10.1}", flops / s / 1e9) } else { String::new() };
        println!("{label:<10} {:>10.2} {:>7.1}% {rate}", s * 1e3, 100.0 * s / total);
    };
    for (label, pick, x, k) in kinds {
        let mut s = 0.0;
        let mut flops = 0.0;
        for &(_, m) in &batches {
            s += best(reps, || {
                for layer in &weights.layers {
                    acts.reset();
                    for w in pick(layer) {
                        project(
                            &pool,
                            kernels.linear,
                            file,
                            w,
                            &x[..m * k],
                            &mut acts,
                            m,
                            &mut y,
                            &mut parts,
                        );
                    }
                }
            });
            flops += weights
                .layers
                .iter()
                .flat_map(pick)
                .map(|w| 2.0 * (m * w.rows * w.cols) as f64)
                .sum::<f64>();
        }
        line(label, s, flops);
        matmul_total += s;
        flops_total += flops;
    }
    line("matmuls", matmul_total, flops_total);

    // of which activation quantization (on the calling thread, once per matrix group)
    let mut quantize = 0.0;
    for &(_, m) in &batches {
        let w = &weights.layers[0];
        let mut q = QuantizedActs::empty(gllm_kernels::quant::QuantType::Q8_0);
        let groups =
            [(&w.wq, &x_e, e), (&w.wo, &x_qd, qd), (&w.gate, &x_e, e), (&w.down, &x_ff, ff)];
        for (w, x, k) in groups {
            if let Some(act) = w.activation_type() {
                quantize += best(reps, || {
                    for _ in 0..cfg.n_layers {
                        quantize_activations_into(&mut q, act, &x[..m * k], m, k).unwrap();
                    }
                });
            }
        }
    }
    line(" quantize", quantize, 0.0);

    // attention of every layer and batch (one layer's cache, random K and V), the one the
    // model runs: with llama.cpp's arithmetic, the one ggml picks for the prompt's ubatch
    let attention_fn = model.attention_for(n.min(LLAMA_UBATCH));
    let to_f16 =
        |v: Vec<f32>| -> Vec<f32> { v.into_iter().map(|x| f16_to_f32(f32_to_f16(x))).collect() };
    let cap = n.max(2);
    let kc = to_f16(random(cfg.n_kv_heads * cap * hd));
    let vc = to_f16(random(cfg.n_kv_heads * cap * hd));
    let q = random(batch * qd);
    let mut att = vec![0.0f32; batch * qd];
    let mut attention = 0.0;
    let mut att_flops = 0.0;
    for &(pos0, m) in &batches {
        let shape = AttentionShape {
            m,
            kv_len: pos0 + m,
            capacity: cap,
            n_heads: cfg.n_heads,
            n_kv_heads: cfg.n_kv_heads,
            head_dim: hd,
        };
        attention += best(reps, || {
            for _ in 0..cfg.n_layers {
                attend(&pool, attention_fn, &mut att[..m * qd], &q[..m * qd], &kc, &vc, shape);
            }
        });
        // QKᵀ and PV over the causal keys: 4·head_dim flops per (query head, key)
        let keys: usize = (0..m).map(|t| pos0 + t + 1).sum();
        att_flops += (4 * hd * cfg.n_heads * keys * cfg.n_layers) as f64;
    }
    line("attention", attention, att_flops);

    // the last token's logits
    let out = weights.logits_matrix();
    let mut logits = vec![0.0f32; out.rows];
    let logit_s = best(reps, || {
        acts.reset();
        project(&pool, kernels.linear, file, out, &x_e[..e], &mut acts, 1, &mut logits, &mut parts);
    });
    line("logits", logit_s, 2.0 * (out.rows * out.cols) as f64);
    line("remainder", total - matmul_total - attention - logit_s, 0.0);
}
