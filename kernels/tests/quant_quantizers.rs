//! The quantizers beyond the gguf-py fixtures: the activation formats' invariants (Q8_0,
//! Q8_1, Q8_K), and the reference-quality K-quant quantizers (Q3_K, Q4_K, Q6_K) held to error
//! bounds on smooth random data, with zero and constant blocks exact.

use gllm_kernels::quant::{self, as_blocks, q8_1::BlockQ8_1, q8_k::BlockQ8K, QuantType};
use rand::Rng;

/// Roughly Gaussian values (sum of four uniforms), σ ≈ 0.02·scale like LLM weights.
fn gaussian(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut rng = gllm_kernels::registry::rng(seed);
    (0..n)
        .map(|_| (0..4).map(|_| rng.gen_range(-1.0f32..1.0)).sum::<f32>() * 0.02 * scale)
        .collect()
}

fn round_trip(t: QuantType, x: &[f32]) -> (Vec<u8>, Vec<f32>) {
    let mut blocks = vec![0u8; t.row_bytes(x.len()).unwrap()];
    quant::quantize_row(t, x, &mut blocks).unwrap();
    let mut y = vec![0.0f32; x.len()];
    quant::dequantize_row(t, &blocks, &mut y);
    (blocks, y)
}

fn nmse(x: &[f32], y: &[f32]) -> f64 {
    let err: f64 = x.iter().zip(y).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
    err / x.iter().map(|a| (*a as f64).powi(2)).sum::<f64>()
}

#[test]
fn k_quant_quantizers_meet_their_error_bounds() {
    // (type, bound on normalized MSE): a 3/4/6-bit quantizer of Gaussian data has an NMSE
    // around 2^(-2·bits)·c; the bounds are ~2x what ggml's reference achieves.
    for (t, bound) in [
        (QuantType::Q3K, 0.045),
        (QuantType::Q4K, 0.012),
        (QuantType::Q6K, 8e-4),
        (QuantType::Q4_0, 0.02),
        (QuantType::Q4_1, 0.012),
        (QuantType::Q5_0, 0.005),
        (QuantType::Q5_1, 0.003),
        (QuantType::Q8_0, 5e-5),
    ] {
        let x = gaussian(t.id() as u64, 64 * 256, 1.0);
        let (_, y) = round_trip(t, &x);
        let e = nmse(&x, &y);
        eprintln!("{t}: nmse {e:.3e} (bound {bound:e})");
        assert!(e <= bound, "{t}: normalized MSE {e:e} > {bound:e}");
        // a second pass over the dequantized values loses at most a little more
        let (_, z) = round_trip(t, &y);
        assert!(nmse(&x, &z) <= 1.5 * bound, "{t}: requantizing drifts");
    }
}

#[test]
fn zero_and_constant_blocks_are_exact() {
    for t in quant::QUANTIZE_TYPES {
        let n = t.block_elems().max(32);
        let (_, y) = round_trip(t, &vec![0.0; n]);
        assert!(y.iter().all(|v| *v == 0.0), "{t}: zeros");
        // A constant is exact where the block stores it as a minimum or as d·(−8)/d·(−16);
        // elsewhere it is off by the f16 (or 6-bit) rounding of the block scale.
        let (_, y) = round_trip(t, &vec![0.75; n]);
        let tolerance = match t {
            QuantType::Q4_0 | QuantType::Q4_1 | QuantType::Q5_0 | QuantType::Q5_1 => 0.0,
            QuantType::F16 | QuantType::BF16 => 0.0,
            QuantType::Q8_0 | QuantType::Q8_1 | QuantType::Q8K => 0.75 * 2f32.powi(-10),
            _ => 0.75 / 32.0,
        };
        assert!(
            y.iter().all(|v| (v - 0.75).abs() <= tolerance),
            "{t}: constant 0.75 gave {:?} (tolerance {tolerance:e})",
            &y[..4]
        );
    }
}

#[test]
fn activation_quantizers_keep_their_invariants() {
    let x = gaussian(42, 32 * 256, 50.0);
    // Q8_K: q = nearest(x·(−127/max)) in −127..=127, d = max/−127, bsums are the sums of 16
    let (b, y) = round_trip(QuantType::Q8K, &x);
    for (i, blk) in as_blocks::<BlockQ8K>(&b).iter().enumerate() {
        let xs = &x[256 * i..256 * (i + 1)];
        let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(blk.qs.iter().all(|&q| q != -128) && blk.qs.iter().any(|&q| q.abs() == 127));
        assert!((blk.d().abs() - amax / 127.0).abs() <= amax * 1e-6);
        for j in 0..16 {
            let s: i32 = blk.qs[16 * j..16 * j + 16].iter().map(|&q| q as i32).sum();
            assert_eq!(blk.bsum(j) as i32, s, "block {i} bsum {j}");
        }
        for (xv, yv) in xs.iter().zip(&y[256 * i..]) {
            assert!((xv - yv).abs() <= 0.5 * blk.d().abs() * (1.0 + 1e-5), "{xv} -> {yv}");
        }
    }
    // Q8_1: s is d·Σq rounded to f16 (computed in f32 from the f32 d, as ggml does)
    let (b, y) = round_trip(QuantType::Q8_1, &x);
    for (i, blk) in as_blocks::<BlockQ8_1>(&b).iter().enumerate() {
        let xs = &x[32 * i..32 * (i + 1)];
        let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let sum: i32 = blk.qs.iter().map(|&q| q as i32).sum();
        assert_eq!(
            u16::from_le_bytes(blk.s),
            quant::f16::f32_to_f16(d * sum as f32),
            "block {i} s"
        );
        for (xv, yv) in xs.iter().zip(&y[32 * i..]) {
            // rounding to the f32 d, then d itself rounded to f16 (relative 2^-11)
            assert!((xv - yv).abs() <= 0.5 * d + 127.0 * d * 2f32.powi(-11), "{xv} -> {yv}");
        }
    }
    // Q8_0 equals Q8_1 without s
    let (b0, _) = round_trip(QuantType::Q8_0, &x);
    for (b0, b1) in b0.chunks_exact(34).zip(b.chunks_exact(36)) {
        assert_eq!(b0[..2], b1[..2]);
        assert_eq!(b0[2..], b1[4..]);
    }
}

/// `quantize_activations` (the AVX2 quantizers where the CPU has them) writes exactly the
/// bytes of the scalar ones (ggml's x86 quantizer for Q8_0/Q8_1, the reference for Q8_K),
/// ties and extreme magnitudes included.
#[test]
fn fast_activation_quantizers_are_bit_identical_to_the_reference() {
    let mut rng = gllm_kernels::registry::rng(77);
    let mut x: Vec<f32> = Vec::new();
    // exact ties: with max 127 the scale is 1 and every j + 0.5 lands on a half
    for j in 0..256 {
        x.push(if j % 32 == 0 { 127.0 } else { (j % 127) as f32 - 63.5 });
    }
    // negative maximum, ties after scaling by a non-power-of-two
    for j in 0..256 {
        x.push(if j == 5 { -2.54 } else { (j as f32 - 128.0) * 0.01 + 0.005 });
    }
    x.extend((0..256).map(|j| if j < 128 { 0.0 } else { 1e-40 * j as f32 }));
    x.extend((0..256).map(|j| (j as f32 - 100.0) * 1e30));
    // zeros beside subnormals: 1/d overflows and 0·inf is NaN
    x.extend((0..256).map(|j| if j % 2 == 0 { 0.0 } else { -1e-41 * j as f32 }));
    x.extend(gaussian(3, 4096, 3.0));
    x.extend((0..4096).map(|_| rng.gen_range(-1.0f32..1.0) * 10f32.powi(rng.gen_range(-6..6))));
    let k = 256;
    let m = x.len() / k;
    for act in [QuantType::Q8_0, QuantType::Q8_1, QuantType::Q8K] {
        let fast = quant::quantize_activations(act, &x, m, k);
        let mut reference = vec![0u8; m * act.row_bytes(k).unwrap()];
        match act {
            QuantType::Q8_0 => quant::quantize_q8_ggml(&x, &mut reference, false),
            QuantType::Q8_1 => quant::quantize_q8_ggml(&x, &mut reference, true),
            _ => quant::quantize_row(act, &x, &mut reference).unwrap(),
        }
        let bb = act.block_bytes();
        for (i, (a, b)) in
            fast.blocks().chunks_exact(bb).zip(reference.chunks_exact(bb)).enumerate()
        {
            assert_eq!(a, b, "{act} block {i}: fast quantizer differs from the reference");
        }
    }
}
