//! Quantized dot products: every variant against naive, and every variant against the f64
//! dot of the dequantized values within the format's error budget, on random blocks and
//! awkward block counts.

use gllm_kernels::quant::{
    self, as_blocks, block::f16_field, q2_k::BlockQ2K, q4_k, q5_k::BlockQ5K, random, QuantType,
    WEIGHT_TYPES,
};

const VARIANTS: [&str; 4] = ["naive", "simd", "avx2", "avx512"];

fn available(variant: &str) -> bool {
    match variant {
        "naive" | "simd" => true,
        other => quant::select_qmatmul(other).is_some(),
    }
}

/// `Σ (|w_i| + |min_i|)·|a_i|` in f64, where `min_i` is the minimum term a format subtracts
/// (or adds) at value i: the magnitude the fast variants' roundings are relative to.
fn magnitude(t: QuantType, w: &[u8], a: &[f32]) -> f64 {
    let mut wf = vec![0.0f32; a.len()];
    quant::dequantize_row_variant(t, "naive", w, &mut wf);
    let mins: Vec<f32> = match t {
        QuantType::Q4_1 | QuantType::Q5_1 => w
            .chunks_exact(t.block_bytes())
            .flat_map(|b| std::iter::repeat_n(f16_field([b[2], b[3]]), 32))
            .collect(),
        QuantType::Q2K => as_blocks::<BlockQ2K>(w)
            .iter()
            .flat_map(|b| (0..256).map(|i| f16_field(b.dmin) * (b.scales[i / 16] >> 4) as f32))
            .collect(),
        QuantType::Q4K => as_blocks::<q4_k::BlockQ4K>(w)
            .iter()
            .flat_map(|b| {
                let (_, m) = q4_k::scales_mins_k4(&b.scales);
                (0..256).map(move |i| f16_field(b.dmin) * m[i / 32] as f32)
            })
            .collect(),
        QuantType::Q5K => as_blocks::<BlockQ5K>(w)
            .iter()
            .flat_map(|b| {
                let (_, m) = q4_k::scales_mins_k4(&b.scales);
                (0..256).map(move |i| f16_field(b.dmin) * m[i / 32] as f32)
            })
            .collect(),
        _ => vec![0.0; a.len()],
    };
    wf.iter()
        .zip(&mins)
        .zip(a)
        .map(|((w, m), a)| (w.abs() as f64 + m.abs() as f64) * a.abs() as f64)
        .sum()
}

#[test]
fn dot_variants_agree_and_match_the_dequantized_f64_dot() {
    for (i, skipped) in VARIANTS.iter().enumerate() {
        if !available(skipped) {
            eprintln!("SKIP {skipped}: not available on this CPU/build (listed variants: {VARIANTS:?}, index {i})");
        }
    }
    let mut checked = 0;
    for t in WEIGHT_TYPES {
        let act = t.activation_type().unwrap();
        for (case, nb) in [1usize, 2, 3, 7, 9, 1, 3, 9].into_iter().enumerate() {
            let mut rng = gllm_kernels::registry::rng(7000 + 31 * case as u64 + t.id() as u64);
            let k = nb * t.block_elems();
            let w = random::blocks(t, nb, &mut rng);
            let x = random::values(&mut rng, k);
            let mut a = vec![0u8; act.row_bytes(k).unwrap()];
            quant::quantize_row(act, &x, &mut a).unwrap();
            let mut af = vec![0.0f32; k];
            quant::dequantize_row_variant(act, "naive", &a, &mut af);
            let mut wf = vec![0.0f32; k];
            quant::dequantize_row_variant(t, "naive", &w, &mut wf);
            let reference: f64 = wf.iter().zip(&af).map(|(x, y)| *x as f64 * *y as f64).sum();
            let mag = magnitude(t, &w, &af);
            // Q8_1 stores s = d·Σq rounded to f16: the Q4_1/Q5_1 minimum term carries that.
            let s_error: f64 = if act == QuantType::Q8_1 {
                w.chunks_exact(t.block_bytes())
                    .zip(a.chunks_exact(36))
                    .map(|(bw, ba)| {
                        (f16_field([bw[2], bw[3]]) as f64 * f16_field([ba[2], ba[3]]) as f64).abs()
                            * 2f64.powi(-11)
                    })
                    .sum()
            } else {
                0.0
            };
            let eps = f32::EPSILON as f64;
            let naive = quant::vec_dot(t, "naive", &w, &a) as f64;
            for variant in VARIANTS.into_iter().filter(|v| available(v)) {
                let got = quant::vec_dot(t, variant, &w, &a) as f64;
                let vs_naive = (got - naive).abs();
                assert!(
                    vs_naive <= 1e-6 * mag,
                    "{t} x {act} {variant}, {nb} blocks: {got} vs naive {naive} (|d| {vs_naive:e} > 1e-6·{mag:e})"
                );
                let budget = 8.0 * eps * mag + s_error;
                let vs_ref = (got - reference).abs();
                assert!(
                    vs_ref <= budget,
                    "{t} x {act} {variant}, {nb} blocks: {got} vs dequantized f64 dot {reference} (|d| {vs_ref:e} > budget {budget:e})"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= WEIGHT_TYPES.len() * 8 * 2);
}

#[test]
fn dot_rows_of_different_lengths_are_rejected() {
    let w = vec![0u8; 2 * QuantType::Q4_1.block_bytes()];
    let a = vec![0u8; 3 * QuantType::Q8_1.block_bytes()];
    let err = std::panic::catch_unwind(|| quant::vec_dot(QuantType::Q4_1, "naive", &w, &a))
        .expect_err("mismatched rows must panic");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("40") && msg.contains("108"), "message names the lengths: {msg}");
}
