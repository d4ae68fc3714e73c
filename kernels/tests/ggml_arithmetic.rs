//! `ops::ggml`: the vectorized forms give the bits of the scalar specifications, and the
//! specifications are what they claim (an expf within its stated error, the C library's expf
//! reproduced, an attention that is attention, ggml's RoPE angles).

use gllm_kernels::ops::attention::{attention_naive, AttentionShape};
use gllm_kernels::ops::ggml::{
    attention_ggml, attention_ggml_scalar, silu_mul_ggml, silu_mul_ggml_scalar, v_expf,
};
use gllm_kernels::ops::libc_expf::expf_libc;
use gllm_kernels::ops::rope::RopeTable;
use gllm_kernels::quant::f16;
use gllm_kernels::registry::rng;
use rand::Rng;

fn ulps(a: f32, b: f64) -> f64 {
    let b32 = b as f32;
    let ulp = (f32::from_bits(b32.abs().to_bits() + 1) - b32.abs()) as f64;
    (a as f64 - b).abs() / ulp
}

#[test]
fn v_expf_is_within_its_stated_error_and_saturates_like_ggml() {
    let mut worst: f64 = 0.0;
    let mut x = -103.0f32;
    while x < 88.3 {
        let e = v_expf(x);
        let want = (x as f64).exp();
        if want > f32::MIN_POSITIVE as f64 {
            worst = worst.max(ulps(e, want));
        }
        x += 0.00173;
    }
    // ggml states 1.45 ulp plus 0.5 for rounding; counted in ulps of the result's binade
    // (half as large just below a power of two) that reads 2.2 at most
    assert!(worst <= 2.5, "v_expf off by {worst} ulp");
    assert_eq!(v_expf(0.0), 1.0);
    assert_eq!(v_expf(89.0), f32::INFINITY);
    assert_eq!(v_expf(-110.0), 0.0);
    assert!(v_expf(f32::NAN).is_nan());
}

/// Bits equal, NaN equal to NaN.
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn expf_libc_gives_the_c_librarys_bits() {
    // glibc's ifunc runs this form where FMA and AVX2 are both usable (another variant
    // otherwise); other C libraries compute their own bits, which llama.cpp on x86-64 Linux
    // does not see
    let glibc_fma = cfg!(all(target_os = "linux", target_env = "gnu"))
        && gllm_kernels::cpu::detected().has_avx2_fma();
    if !glibc_fma {
        eprintln!(
            "SKIPPED expf_libc_gives_the_c_librarys_bits: needs glibc on a CPU with FMA and AVX2"
        );
        return;
    }
    let edges = [
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        88.0,
        88.72283,
        88.72284,
        -88.0,
        -103.27892,
        -103.27893,
        -103.97207,
        -103.97208,
        f32::MAX,
        f32::MIN,
    ];
    for x in edges {
        assert!(same(expf_libc(x), x.exp()), "expf({x:e}): {:e} vs {:e}", expf_libc(x), x.exp());
    }
    // every 257th bit pattern (16.7 million inputs, every binade and sign), then densely where
    // the softmax's arguments lie
    let dense = (0..4_000_000u32).map(|i| -(i as f32) * 2.5e-6);
    for x in (0..u32::MAX).step_by(257).map(f32::from_bits).chain(dense) {
        assert!(same(expf_libc(x), x.exp()), "expf({x:e}): {:e} vs {:e}", expf_libc(x), x.exp());
    }
}

#[test]
fn silu_mul_vector_form_gives_the_scalar_bits() {
    let mut r = rng(5);
    let mut gate: Vec<f32> = (0..4099).map(|_| r.gen_range(-12.0f32..12.0)).collect();
    // lanes on the slow path (2ⁿ not a normal f32), infinities, NaN, zeros, subnormals
    gate[3] = -95.0;
    gate[8] = 130.0;
    gate[9] = -200.0;
    gate[17] = f32::INFINITY;
    gate[18] = f32::NEG_INFINITY;
    gate[19] = f32::NAN;
    gate[20] = 0.0;
    gate[21] = -0.0;
    gate[22] = 1e-40;
    let up: Vec<f32> = (0..gate.len()).map(|_| r.gen_range(-3.0f32..3.0)).collect();
    for n in [0, 1, 7, 8, 9, 64, 1536, 4099] {
        let (mut fast, mut spec) = (vec![0.0; n], vec![0.0; n]);
        silu_mul_ggml(&mut fast, &gate[..n], &up[..n]);
        silu_mul_ggml_scalar(&mut spec, &gate[..n], &up[..n]);
        for i in 0..n {
            assert!(
                fast[i].to_bits() == spec[i].to_bits() || (fast[i].is_nan() && spec[i].is_nan()),
                "n {n} i {i}: gate {} → {} vs {}",
                gate[i],
                fast[i],
                spec[i]
            );
        }
    }
}

fn f16_values(r: &mut impl Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| f16::f16_to_f32(f16::f32_to_f16(r.gen_range(-scale..scale)))).collect()
}

#[test]
fn attention_vector_form_gives_the_scalar_bits_and_is_attention() {
    let mut r = rng(11);
    for (m, kv_len, n_heads, n_kv_heads, d) in
        [(1, 1, 1, 1, 64), (1, 37, 9, 3, 64), (5, 40, 9, 3, 64), (3, 9, 4, 2, 128), (2, 6, 2, 1, 8)]
    {
        let capacity = kv_len + 3;
        let s = AttentionShape { m, kv_len, capacity, n_heads, n_kv_heads, head_dim: d };
        let q: Vec<f32> = (0..m * n_heads * d).map(|_| r.gen_range(-4.0f32..4.0)).collect();
        let k = f16_values(&mut r, n_kv_heads * capacity * d, 4.0);
        let v = f16_values(&mut r, n_kv_heads * capacity * d, 2.0);
        let (mut fast, mut spec, mut exact) =
            (vec![0.0; q.len()], vec![0.0; q.len()], vec![0.0; q.len()]);
        attention_ggml(&mut fast, &q, &k, &v, s);
        attention_ggml_scalar(&mut spec, &q, &k, &v, s);
        attention_naive(&mut exact, &q, &k, &v, s);
        for i in 0..q.len() {
            assert_eq!(fast[i].to_bits(), spec[i].to_bits(), "{s:?} value {i}");
            // f16 query and f16 accumulator: a few f16 ulps of the largest |v|
            assert!(
                (spec[i] - exact[i]).abs() <= 8e-3,
                "{s:?} value {i}: {} vs {}",
                spec[i],
                exact[i]
            );
        }
    }
}

/// `attention_ggml` against `attention_ggml_scalar`, bit for bit, on K and V of `f16_values`
/// whose rows are scaled by `key_scale(j)` (so the scores can rise with the key, and the
/// running maximum with them).
fn check_attention_bits(r: &mut impl Rng, s: AttentionShape, key_scale: impl Fn(usize) -> f32) {
    let AttentionShape { m, capacity, n_heads, n_kv_heads, head_dim: d, .. } = s;
    let q: Vec<f32> = (0..m * n_heads * d).map(|_| r.gen_range(-2.0f32..2.0)).collect();
    let mut k = f16_values(r, n_kv_heads * capacity * d, 1.0);
    for (e, x) in k.iter_mut().enumerate() {
        *x = f16::f16_to_f32(f16::f32_to_f16(*x * key_scale(e / d % capacity)));
    }
    let v = f16_values(r, n_kv_heads * capacity * d, 2.0);
    let (mut fast, mut spec) = (vec![f32::NAN; q.len()], vec![0.0; q.len()]);
    attention_ggml(&mut fast, &q, &k, &v, s);
    attention_ggml_scalar(&mut spec, &q, &k, &v, s);
    for i in 0..q.len() {
        assert_eq!(fast[i].to_bits(), spec[i].to_bits(), "{s:?} value {i}");
    }
}

#[test]
fn attention_tiles_give_the_scalar_bits_at_every_batch_shape() {
    let mut r = rng(12);
    // (m, pos0, n_heads, n_kv_heads, head_dim): single queries and batches smaller and larger
    // than a tile, odd cache lengths, a filled cache before the batch, groups of 1 and 3
    let shapes = [
        (1, 0, 9, 3, 64),
        (1, 511, 9, 3, 64),
        (2, 0, 9, 3, 64),
        (3, 30, 9, 3, 64),
        (5, 0, 9, 3, 64),
        (5, 28, 4, 4, 64),
        (8, 57, 9, 3, 64),
        (64, 0, 9, 3, 64),
        (64, 33, 9, 3, 64),
        (37, 0, 3, 3, 64),
        (13, 70, 2, 1, 64),
        (7, 40, 6, 2, 128),
        (3, 0, 8, 8, 8),
    ];
    for (m, pos0, n_heads, n_kv_heads, head_dim) in shapes {
        let kv_len = pos0 + m;
        for capacity in [kv_len, kv_len + 5] {
            let s = AttentionShape { m, kv_len, capacity, n_heads, n_kv_heads, head_dim };
            check_attention_bits(&mut r, s, |_| 1.0);
            // scores that grow with the key: the maximum rises again and again
            check_attention_bits(&mut r, s, |j| 0.25 + 4.0 * j as f32 / kv_len as f32);
            // a maximum that rises late, after many keys have accumulated
            check_attention_bits(&mut r, s, |j| if 3 * j >= 2 * kv_len { 6.0 } else { 0.5 });
        }
    }
}

#[test]
fn ggml_rope_angles_follow_the_f32_recurrence() {
    let (base, dims) = (100_000.0f32, 64);
    let ggml = RopeTable::ggml(base, dims, 512);
    let exact = RopeTable::new(base, dims, 512);
    let step = base.powf(-2.0 / dims as f32);
    for p in [0usize, 1, 37, 511] {
        let (c, s) = ggml.cos_sin(p);
        let mut theta = p as f32;
        for i in 0..dims / 2 {
            assert_eq!((c[i], s[i]), (theta.cos(), theta.sin()), "p {p} pair {i}");
            theta *= step;
        }
        // the recurrence drifts from the exact angles by f32 rounding only
        let (ce, se) = exact.cos_sin(p);
        for i in 0..dims / 2 {
            assert!((c[i] - ce[i]).abs() < 1e-4 && (s[i] - se[i]).abs() < 1e-4, "p {p} pair {i}");
        }
    }
}
