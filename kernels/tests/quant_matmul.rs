//! The typed API the model calls: quantize activations once, `qmatmul` over any contiguous
//! range of weight rows into a strided output, every variant; contract violations are clear
//! errors naming the lengths.

use gllm_kernels::quant::{
    self, quantize_activations, random, select_qmatmul, QuantError, QuantType, QuantizedActs,
    WEIGHT_TYPES,
};

fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let err = std::panic::catch_unwind(f).expect_err("expected a panic");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn activation_types_pair_as_in_ggml() {
    use QuantType::*;
    let pairs = [
        (Q4_0, Q8_0),
        (Q4_1, Q8_1),
        (Q5_0, Q8_0),
        (Q5_1, Q8_1),
        (Q8_0, Q8_0),
        (Q2K, Q8K),
        (Q3K, Q8K),
        (Q4K, Q8K),
        (Q5K, Q8K),
        (Q6K, Q8K),
    ];
    for (w, a) in pairs {
        assert_eq!(w.activation_type(), Some(a), "{w}");
    }
    for t in [F32, F16, BF16, Q8_1, Q8K, I8] {
        assert_eq!(t.activation_type(), None, "{t}");
    }
}

/// Every variant, m tokens, row ranges split as threads would: identical to one whole call
/// (bit for bit) and within the dot bound of per-row naive dots.
#[test]
fn qmatmul_over_row_ranges_and_tokens_matches_naive_dots() {
    let variants: Vec<&str> = ["naive", "simd", "avx2", "avx512"]
        .into_iter()
        .filter(|v| select_qmatmul(v).is_some())
        .collect();
    for v in ["avx2", "avx512"] {
        if select_qmatmul(v).is_none() {
            eprintln!("SKIP qmatmul/{v}: not available on this CPU");
        }
    }
    for t in WEIGHT_TYPES {
        let act = t.activation_type().unwrap();
        for (m, n, nb) in [(1, 9, 2), (2, 6, 1), (3, 5, 3), (4, 13, 2), (7, 4, 1)] {
            let k = nb * t.block_elems();
            let mut rng = gllm_kernels::registry::rng(900 + (m * n + nb) as u64 + t.id() as u64);
            let w = random::blocks(t, n * nb, &mut rng);
            let x = random::values(&mut rng, m * k);
            let acts = quantize_activations(act, &x, m, k);
            let row_bytes = t.row_bytes(k).unwrap();
            // want[tok, r] by the naive dot, one row and one token at a time
            let want: Vec<f32> = (0..m * n)
                .map(|i| {
                    let (tok, r) = (i / n, i % n);
                    quant::vec_dot(
                        t,
                        "naive",
                        &w[r * row_bytes..(r + 1) * row_bytes],
                        acts.row(tok),
                    )
                })
                .collect();
            for &variant in &variants {
                let f = select_qmatmul(variant).unwrap();
                // output with a wider stride and a guard column: y[tok * stride + r]
                let stride = n + 3;
                let mut whole = vec![f32::NAN; m * stride];
                f(&w, t, n, k, &acts, &mut whole, stride);
                // the same rows split in two ranges, as two threads would call it
                let split = n / 2 + 1;
                let mut parts = vec![f32::NAN; m * stride];
                f(&w[..split * row_bytes], t, split, k, &acts, &mut parts, stride);
                f(&w[split * row_bytes..], t, n - split, k, &acts, &mut parts[split..], stride);
                for tok in 0..m {
                    for r in 0..n {
                        let (a, b) = (whole[tok * stride + r], parts[tok * stride + r]);
                        assert_eq!(
                            a.to_bits(),
                            b.to_bits(),
                            "{t}/{variant} m={m} tok {tok} row {r}: split differs"
                        );
                        let w_ = want[tok * n + r];
                        assert!(
                            (a - w_).abs() <= 1e-5 * (1.0 + w_.abs()),
                            "{t}/{variant} m={m} n={n} k={k} tok {tok} row {r}: got {a} want {w_}"
                        );
                    }
                    for r in n..stride {
                        assert!(
                            whole[tok * stride + r].is_nan(),
                            "{t}/{variant}: wrote column {r} beyond n={n}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn activations_are_quantized_once_and_reusable() {
    let k = 512;
    let mut rng = gllm_kernels::registry::rng(5);
    let x = random::values(&mut rng, 2 * k);
    let acts = quantize_activations(QuantType::Q8K, &x, 2, k);
    assert_eq!((acts.ty(), acts.m(), acts.k()), (QuantType::Q8K, 2, k));
    assert_eq!(acts.blocks().len(), 2 * 2 * 292);
    assert_eq!(acts.scales().len(), 4);
    // the same holder refilled with a different shape and type
    let mut reused = QuantizedActs::empty(QuantType::Q8_0);
    quant::matmul::quantize_activations_into(&mut reused, QuantType::Q8_1, &x[..k], 1, k).unwrap();
    assert_eq!(reused, quantize_activations(QuantType::Q8_1, &x[..k], 1, k));
    assert_eq!(reused.sums().len(), k / 32);
    // q, k and v projections share one quantized input: three weight matrices, one acts
    let t = QuantType::Q4K;
    let acts = quantize_activations(t.activation_type().unwrap(), &x[..k], 1, k);
    for seed in 0..3 {
        let w = random::blocks(t, 8 * 2, &mut gllm_kernels::registry::rng(seed));
        let mut y = vec![0.0f32; 8];
        quant::qmatmul(&w, t, 8, k, &acts, &mut y, 8);
        assert!(y.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn bad_lengths_are_clear_errors() {
    // activations: k not whole blocks
    let x = vec![0.0f32; 2 * 100];
    let e = quant::try_quantize_activations(QuantType::Q8_0, &x, 2, 100).unwrap_err();
    assert_eq!(e, QuantError::NotWholeBlocks { ty: QuantType::Q8_0, elems: 100, block_elems: 32 });
    assert_eq!(e.to_string(), "q8_0: a row of 100 values is not a whole number of 32-value blocks");
    let msg = panic_message(|| {
        quantize_activations(QuantType::Q8K, &vec![0.0; 576], 1, 576);
    });
    assert!(msg.contains("576") && msg.contains("256"), "{msg}");
    // activations: x not m·k
    let e = quant::try_quantize_activations(QuantType::Q8_0, &x, 3, 64).unwrap_err();
    assert!(e.to_string().contains("192") && e.to_string().contains("200"), "{e}");
    // row bytes
    assert_eq!(QuantType::Q4_1.row_bytes(576), Ok(360));
    assert!(QuantType::Q4K.row_bytes(576).unwrap_err().to_string().contains("576"));
    // dequantize: source not whole blocks, output of the wrong length
    let e = quant::try_dequantize_row(QuantType::Q4_1, &[0u8; 30], &mut [0.0; 32]).unwrap_err();
    assert!(e.to_string().contains("30"), "{e}");
    let e = quant::try_dequantize_row(QuantType::Q4_1, &[0u8; 40], &mut [0.0; 63]).unwrap_err();
    assert!(e.to_string().contains("64") && e.to_string().contains("63"), "{e}");
    let msg = panic_message(|| quant::dequantize_row(QuantType::Q6K, &[0u8; 211], &mut [0.0; 256]));
    assert!(msg.contains("211"), "{msg}");
    // quantize_row
    let e = quant::quantize_row(QuantType::Q4_0, &[0.0; 33], &mut [0u8; 18]).unwrap_err();
    assert!(e.to_string().contains("33"), "{e}");
    assert!(matches!(
        quant::quantize_row(QuantType::Q5K, &[0.0; 256], &mut [0u8; 176]),
        Err(QuantError::Unsupported { .. })
    ));
    // qmatmul: wrong activation type, wrong k, short output
    let w = vec![0u8; 2 * 20];
    let acts = quantize_activations(QuantType::Q8_0, &[0.0; 32], 1, 32);
    let msg = panic_message(|| quant::qmatmul(&w, QuantType::Q4_1, 2, 32, &acts, &mut [0.0; 2], 2));
    assert!(msg.contains("q8_1") && msg.contains("q8_0"), "{msg}");
    let acts = quantize_activations(QuantType::Q8_1, &[0.0; 64], 1, 64);
    let msg = panic_message(|| quant::qmatmul(&w, QuantType::Q4_1, 2, 32, &acts, &mut [0.0; 2], 2));
    assert!(msg.contains("32") && msg.contains("64"), "{msg}");
    let acts = quantize_activations(QuantType::Q8_1, &[0.0; 32], 1, 32);
    let msg = panic_message(|| quant::qmatmul(&w, QuantType::Q4_1, 2, 32, &acts, &mut [0.0; 1], 2));
    assert!(msg.contains("y has 1"), "{msg}");
    let msg =
        panic_message(|| quant::qmatmul(&w[..39], QuantType::Q4_1, 2, 32, &acts, &mut [0.0; 2], 2));
    assert!(msg.contains("40") && msg.contains("39"), "{msg}");
    // variants
    assert!(select_qmatmul("no_such_variant").is_none());
    assert!(select_qmatmul("naive").is_some() && select_qmatmul("simd").is_some());
}

#[test]
fn stages_pick_the_fastest_available_block_variants() {
    use gllm_kernels::stage;
    let stages = stage::builtin();
    let quantized = stage::resolve_with_force(&stages, "quantized", None).unwrap();
    assert!(quantized.quantized_weights);
    for t in WEIGHT_TYPES {
        let qmv = quantized.variant(quant::qmatvec_op(t)).name;
        assert_eq!(qmv, quant::best_qmatmul_variant(), "{t}");
        assert!(select_qmatmul(qmv).is_some());
        assert_eq!(quantized.variant(quant::dot_op(t)).name, qmv, "{t}");
    }
    let simd = stage::resolve_with_force(&stages, "simd", None).unwrap();
    for t in quant::DEQUANT_TYPES {
        let v = simd.variant(quant::dequant_op(t)).name;
        assert_eq!(
            Some(v),
            ["avx2", "simd"].into_iter().find(|v| quant::dequant_fn(t, v).is_some()),
            "{t}"
        );
    }
    let naive = stage::resolve_with_force(&stages, "naive", None).unwrap();
    assert_eq!(naive.variant("qmatvec_q4_1").name, "naive");
}
