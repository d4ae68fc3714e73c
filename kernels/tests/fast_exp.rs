//! `fast_exp` on a dense grid over the whole f32 range: the relative error bound stated in
//! its doc comment inside the accurate range, and the saturation behaviour outside it.

use gllm_kernels::ops::fast_math::{
    fast_exp_slice, FAST_EXP_MAX_REL_ERROR, FAST_EXP_MAX_X, FAST_EXP_MIN_X,
};

/// Every 61st bit pattern (≈ 70 million values, both signs, every exponent), then checks
/// each against `f64::exp`.
#[test]
fn relative_error_and_saturation_on_a_dense_grid() {
    const STRIDE: u64 = 61;
    const BATCH: usize = 1 << 16;
    let mut inputs = Vec::with_capacity(BATCH);
    let mut outputs = vec![0.0f32; BATCH];
    let (mut worst, mut worst_at, mut checked_accurate) = (0.0f64, 0.0f32, 0u64);
    let mut bits = 0u64;
    while bits <= u32::MAX as u64 {
        inputs.clear();
        while inputs.len() < BATCH && bits <= u32::MAX as u64 {
            inputs.push(f32::from_bits(bits as u32));
            bits += STRIDE;
        }
        outputs.truncate(inputs.len());
        outputs.copy_from_slice(&inputs);
        fast_exp_slice(&mut outputs);
        for (&x, &y) in inputs.iter().zip(&outputs) {
            if x.is_nan() {
                assert!(y.is_nan(), "exp({x:e}) = {y:e}, want NaN");
            } else if x < FAST_EXP_MIN_X {
                assert_eq!(y.to_bits(), 0, "exp({x:e}) = {y:e}, want +0 (saturated)");
            } else if x > FAST_EXP_MAX_X {
                assert_eq!(y, f32::INFINITY, "exp({x:e}) = {y:e}, want +inf (saturated)");
            } else {
                let want = (x as f64).exp();
                let rel = ((y as f64) - want).abs() / want;
                checked_accurate += 1;
                if rel > worst {
                    (worst, worst_at) = (rel, x);
                }
            }
        }
    }
    // Plus the edges of the accurate range and a fine grid around 0, where most calls land.
    let mut edges: Vec<f32> = vec![FAST_EXP_MIN_X, FAST_EXP_MAX_X, 0.0, -0.0];
    edges.extend((-200_000..=200_000).map(|i| i as f32 * 1e-4));
    let mut got = edges.clone();
    fast_exp_slice(&mut got);
    for (&x, &y) in edges.iter().zip(&got) {
        let want = (x as f64).exp();
        let rel = ((y as f64) - want).abs() / want;
        if rel > worst {
            (worst, worst_at) = (rel, x);
        }
    }
    eprintln!("fast_exp: worst relative error {worst:e} at x = {worst_at:e} over {checked_accurate} grid points");
    assert!(checked_accurate > 1_000_000, "the grid missed the accurate range");
    assert!(
        worst <= FAST_EXP_MAX_REL_ERROR,
        "fast_exp relative error {worst:e} at x = {worst_at:e} exceeds the stated {FAST_EXP_MAX_REL_ERROR:e}"
    );
}

#[test]
fn special_values() {
    let mut v = [f32::NEG_INFINITY, f32::INFINITY, f32::NAN, -0.0, 0.0, -1e30, 1e30, 1e-30];
    fast_exp_slice(&mut v);
    assert_eq!(v[0].to_bits(), 0);
    assert_eq!(v[1], f32::INFINITY);
    assert!(v[2].is_nan());
    assert_eq!(v[3], 1.0);
    assert_eq!(v[4], 1.0);
    assert_eq!(v[5].to_bits(), 0);
    assert_eq!(v[6], f32::INFINITY);
    assert_eq!(v[7], 1.0);
}

/// `fast_exp_sat` (the sigmoid family's blend-free form): bit-identical to `fast_exp` in the
/// accurate range, and its stated clamped behaviour outside it, on every 97th bit pattern.
#[test]
fn fast_exp_sat_matches_fast_exp_and_clamps() {
    use gllm_kernels::ops::fast_math::{fast_exp, fast_exp_sat};
    use wide::f32x8;
    let mut bits = 0u64;
    let mut checked = 0u64;
    while bits <= u32::MAX as u64 {
        let x: [f32; 8] = std::array::from_fn(|i| f32::from_bits((bits + 97 * i as u64) as u32));
        let (got, want) =
            (fast_exp_sat(f32x8::from(x)).to_array(), fast_exp(f32x8::from(x)).to_array());
        for i in 0..8 {
            let (x, g, w) = (x[i], got[i], want[i]);
            if x.is_nan() {
                assert!(g.is_nan(), "fast_exp_sat({x:e}) = {g:e}, want NaN");
            } else if x < FAST_EXP_MIN_X {
                assert!(g > 0.0 && g <= 1.2e-38, "fast_exp_sat({x:e}) = {g:e}, want ~1.2e-38");
            } else if x > FAST_EXP_MAX_X {
                assert!(g > 1e38, "fast_exp_sat({x:e}) = {g:e}, want huge or +inf");
                if x >= 88.75 {
                    assert_eq!(g, f32::INFINITY, "fast_exp_sat({x:e})");
                }
            } else {
                assert_eq!(g.to_bits(), w.to_bits(), "fast_exp_sat({x:e}) differs from fast_exp");
                checked += 1;
            }
        }
        bits += 8 * 97;
    }
    assert!(checked > 1_000_000);
}
