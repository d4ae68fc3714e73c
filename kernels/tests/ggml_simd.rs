//! `ops::ggml_simd`: the vector forms give the bits of llama.cpp's scalar specifications
//! (`ops::ggml`) on awkward row counts, lengths and values.

use gllm_kernels::ops::ggml::{rms_norm_ggml, rope_ggml};
use gllm_kernels::ops::ggml_simd::{copy_round_f16, rms_norm_ggml_simd, rope_ggml_simd};
use gllm_kernels::ops::rope::{RopePairing, RopeShape, RopeTable};
use gllm_kernels::ops::TEST_LENGTHS;
use gllm_kernels::quant::f16;
use gllm_kernels::registry::rng;
use rand::Rng;

/// The first index where `got` and `want` differ in bits (NaNs of any payload agree), with
/// both values.
fn first_difference(got: &[f32], want: &[f32]) -> Option<String> {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .position(|(a, b)| a.to_bits() != b.to_bits() && !(a.is_nan() && b.is_nan()))
        .map(|i| format!("index {i}: got {:e}, want {:e}", got[i], want[i]))
}

#[test]
fn rms_norm_rows_in_lanes_give_the_scalar_bits() {
    let mut r = rng(31);
    // rows below, at and between groups of 8 and 16; every test length and the model's 576
    let rows_list = [1, 7, 8, 9, 15, 16, 17, 24, 33];
    for n in TEST_LENGTHS.iter().copied().chain([576]) {
        for rows in rows_list {
            let mut x: Vec<f32> = (0..rows * n).map(|_| r.gen_range(-3.0f32..3.0)).collect();
            let w: Vec<f32> = (0..n).map(|_| r.gen_range(-2.0f32..2.0)).collect();
            // magnitudes far apart (f64 rounding in the sum), tiny and huge rows
            for (row, xr) in x.chunks_mut(n.max(1)).enumerate() {
                for (i, v) in xr.iter_mut().enumerate() {
                    match row % 5 {
                        1 => *v *= 1e-4f32.powi((i % 3) as i32),
                        2 => *v *= 1e-20,
                        3 => *v *= 1e18,
                        _ => {}
                    }
                }
            }
            let (mut fast, mut spec) = (vec![f32::NAN; x.len()], vec![f32::NAN; x.len()]);
            rms_norm_ggml_simd(&mut fast, &x, &w, 1e-5);
            rms_norm_ggml(&mut spec, &x, &w, 1e-5);
            if let Some(d) = first_difference(&fast, &spec) {
                panic!("rows {rows}, n {n}: {d}");
            }
        }
    }
}

#[test]
fn rms_norm_rows_in_lanes_keep_special_values_per_row() {
    let (rows, n) = (19, 40);
    let mut r = rng(32);
    let mut x: Vec<f32> = (0..rows * n).map(|_| r.gen_range(-3.0f32..3.0)).collect();
    x[n + 3] = f32::NAN;
    x[2 * n + 39] = f32::INFINITY;
    x[3 * n + 8] = f32::NEG_INFINITY;
    x[4 * n..5 * n].fill(0.0);
    x[5 * n + 1] = -0.0;
    x[6 * n + 5] = 1e-40;
    x[7 * n + 2] = f32::MAX;
    x[17 * n + 33] = f32::NAN;
    let w: Vec<f32> = (0..n).map(|_| r.gen_range(-2.0f32..2.0)).collect();
    let (mut fast, mut spec) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    rms_norm_ggml_simd(&mut fast, &x, &w, 1e-5);
    rms_norm_ggml(&mut spec, &x, &w, 1e-5);
    if let Some(d) = first_difference(&fast, &spec) {
        panic!("{d}");
    }
    // each row only sees its own values: the rows after a NaN row are finite
    assert!(fast[8 * n..9 * n].iter().all(|v| v.is_finite()));
}

#[test]
fn rope_vector_form_gives_the_scalar_bits() {
    let mut r = rng(33);
    // (m, n_heads, n_kv_heads, head_dim, rotary_dims, pos0): the model's heads, rotary widths
    // that leave 2, 4 or 6 values past the last vector, a partial rotation, one wider than the
    // vector form takes, position 0 (sin 0)
    let shapes = [
        (1, 9, 3, 64, 64, 0),
        (17, 9, 3, 64, 64, 200),
        (5, 3, 1, 2, 2, 7),
        (3, 2, 2, 6, 6, 40),
        (4, 3, 1, 12, 12, 3),
        (7, 2, 1, 14, 14, 90),
        (6, 2, 1, 66, 66, 100),
        (2, 2, 1, 260, 258, 9),
        (9, 4, 2, 64, 32, 300),
        (0, 9, 3, 64, 64, 5),
    ];
    for (m, n_heads, n_kv_heads, d, rot, pos0) in shapes {
        let table = RopeTable::ggml(100_000.0, rot, pos0 + m.max(1));
        for pairing in [RopePairing::Adjacent, RopePairing::Halves] {
            let s = RopeShape { n_heads, n_kv_heads, head_dim: d, pos0, pairing };
            let mut q: Vec<f32> = (0..m * n_heads * d).map(|_| r.gen_range(-4.0..4.0)).collect();
            let mut k: Vec<f32> = (0..m * n_kv_heads * d).map(|_| r.gen_range(-4.0..4.0)).collect();
            if !q.is_empty() {
                q[0] = -0.0;
                q[1] = 0.0;
                k[1] = f32::NAN;
                k[2] = f32::INFINITY;
            }
            let (mut q_spec, mut k_spec) = (q.clone(), k.clone());
            rope_ggml_simd(&mut q, &mut k, s, &table);
            rope_ggml(&mut q_spec, &mut k_spec, s, &table);
            for (got, want, what) in [(&q, &q_spec, "q"), (&k, &k_spec, "k")] {
                if let Some(diff) = first_difference(got, want) {
                    panic!("{s:?}, m {m}, rot {rot}: {what} {diff}");
                }
            }
        }
    }
}

#[test]
fn copy_round_f16_is_the_f16_round_trip() {
    let mut r = rng(34);
    let mut src: Vec<f32> = (0..4099).map(|_| r.gen_range(-70_000.0f32..70_000.0)).collect();
    // halfway cases both ways, subnormal and underflowing f16, overflow, ±0, ±inf, NaN
    let special = [
        1.0 + 2f32.powi(-11),
        1.0 + 3.0 * 2f32.powi(-11),
        6e-8,
        3e-8,
        2.9e-8,
        1e-6,
        65_504.0,
        65_520.0,
        -65_519.0,
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::from_bits(0x7f80_0001),
        1e-40,
    ];
    src[..special.len()].copy_from_slice(&special);
    for (i, v) in src.iter_mut().enumerate().skip(special.len()) {
        *v *= 10f32.powi(-((i % 9) as i32));
    }
    for n in TEST_LENGTHS {
        let mut got = vec![0.5f32; n];
        copy_round_f16(&mut got, &src[..n]);
        let want: Vec<f32> =
            src[..n].iter().map(|&v| f16::f16_to_f32(f16::f32_to_f16(v))).collect();
        let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "n {n}: {:?}", first_difference(&got, &want));
    }
}
