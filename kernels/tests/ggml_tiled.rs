//! `ops::ggml_tiled`: the scalar specification gives, bit for bit, what an AVX2 build of ggml
//! (0.25.3) computes for the same inputs (`data/ggml_fa_tiled/`, made by `gen.c` there), the
//! vectorized form gives the specification's bits, and both are attention.

use gllm_kernels::ops::attention::{attention_naive, AttentionShape};
use gllm_kernels::ops::ggml_tiled::{
    attention_ggml_tiled, attention_ggml_tiled_avx2, attention_ggml_tiled_scalar,
    v_expf_avx2_build, GgmlBuild,
};
use gllm_kernels::quant::f16;
use gllm_kernels::registry::rng;
use rand::Rng;

/// The inputs `gen.c` makes: q `[m][n_heads][64]` uniform in `[-1, 1)` × `qscale·(h + 1)`,
/// then K and V `[n_kv_heads][kv_len][64]` rounded to f16, drawn in pairs (k, v).
fn generated(
    m: usize,
    pos0: usize,
    heads: usize,
    kv_heads: usize,
    qscale: f32,
    seed: u32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, AttentionShape) {
    let mut state = seed;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state >> 8) as f32 / 8_388_608.0 - 1.0
    };
    let d = 64;
    let kv_len = pos0 + m;
    let mut q = vec![0.0; m * heads * d];
    for t in 0..m {
        for h in 0..heads {
            for e in 0..d {
                q[(t * heads + h) * d + e] = next() * qscale * (h + 1) as f32;
            }
        }
    }
    let (mut k, mut v) = (vec![0.0; kv_heads * kv_len * d], vec![0.0; kv_heads * kv_len * d]);
    let half = |x: f32| f16::f16_to_f32(f16::f32_to_f16(x));
    for i in 0..k.len() {
        k[i] = half(next());
        v[i] = half(next());
    }
    let s = AttentionShape {
        m,
        kv_len,
        capacity: kv_len,
        n_heads: heads,
        n_kv_heads: kv_heads,
        head_dim: d,
    };
    (q, k, v, s)
}

fn read_f32s(name: &str) -> Vec<f32> {
    let path = format!("{}/tests/data/ggml_fa_tiled/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

/// First differing value of two outputs, as "index: got vs want".
fn first_difference(got: &[f32], want: &[f32]) -> Option<String> {
    got.iter()
        .zip(want)
        .position(|(a, b)| a.to_bits() != b.to_bits())
        .map(|i| format!("value {i} of {}: {:e} vs {:e}", got.len(), got[i], want[i]))
}

#[test]
fn scalar_form_gives_the_bits_of_ggml_built_for_avx2() {
    // (file, m, pos0, heads, kv heads, qscale, seed), as gen.c was run (see the README)
    let cases = [
        ("a.bin", 100, 50, 9, 3, 1.0, 12345),
        ("b.bin", 64, 0, 3, 1, 40.0, 777),
        ("c.bin", 70, 130, 3, 1, 8.0, 4242),
    ];
    for (file, m, pos0, heads, kv_heads, qscale, seed) in cases {
        let want = read_f32s(file);
        let (q, k, v, s) = generated(m, pos0, heads, kv_heads, qscale, seed);
        let mut got = vec![0.0; q.len()];
        attention_ggml_tiled_scalar(&mut got, &q, &k, &v, s, GgmlBuild::Avx2);
        assert_eq!(got.len(), want.len(), "{file}");
        if let Some(d) = first_difference(&got, &want) {
            panic!("{file}: differs from ggml at {d}");
        }
        // the other build's arithmetic is not the same bits here (else this test shows nothing
        // about the width-dependent steps), but the same attention
        let mut other = vec![0.0; q.len()];
        attention_ggml_tiled_scalar(&mut other, &q, &k, &v, s, GgmlBuild::Avx512);
        assert!(first_difference(&other, &want).is_some(), "{file}: builds agree");
        let worst = other.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "{file}: AVX-512 form {worst} from the AVX2 one");
    }
}

#[test]
fn avx2_build_expf_is_exp() {
    let mut x = -110.0f32;
    while x < 0.0 {
        let (e, want) = (v_expf_avx2_build(x), (x as f64).exp());
        assert!((e as f64 - want).abs() <= want * 4e-7 + 1e-44, "{x}: {e} vs {want}");
        x += 0.0137;
    }
    assert_eq!(v_expf_avx2_build(0.0), 1.0);
    assert_eq!(v_expf_avx2_build(f32::NEG_INFINITY), 0.0);
}

fn f16_values(r: &mut impl Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| f16::f16_to_f32(f16::f32_to_f16(r.gen_range(-scale..scale)))).collect()
}

#[test]
fn vector_form_gives_the_scalar_bits_and_is_attention() {
    let mut r = rng(21);
    // (m, pos0, n_heads, n_kv_heads, head_dim, query scale): batches below, at and above a
    // block of positions and a tile of keys, caches filled before the batch (tiles that start
    // mid-batch), odd rows per block, groups of 1, 3 and 4, scores from mild to ones whose
    // weights underflow (the slow lanes of expf)
    let shapes = [
        (1, 0, 1, 1, 64, 1.0),
        (3, 5, 9, 3, 64, 1.0),
        (64, 0, 9, 3, 64, 1.0),
        (100, 50, 9, 3, 64, 3.0),
        (70, 130, 3, 1, 64, 30.0),
        (17, 200, 4, 1, 64, 8.0),
        (33, 31, 6, 2, 128, 2.0),
        (65, 63, 2, 2, 32, 60.0),
    ];
    for (m, pos0, n_heads, n_kv_heads, d, qs) in shapes {
        let kv_len = pos0 + m;
        let capacity = kv_len + 7;
        let s = AttentionShape { m, kv_len, capacity, n_heads, n_kv_heads, head_dim: d };
        let q: Vec<f32> = (0..m * n_heads * d).map(|_| r.gen_range(-qs..qs)).collect();
        let k = f16_values(&mut r, n_kv_heads * capacity * d, 1.0);
        let v = f16_values(&mut r, n_kv_heads * capacity * d, 2.0);
        let (mut fast, mut spec, mut exact) =
            (vec![f32::NAN; q.len()], vec![0.0; q.len()], vec![0.0; q.len()]);
        attention_ggml_tiled(&mut fast, &q, &k, &v, s);
        attention_ggml_tiled_scalar(&mut spec, &q, &k, &v, s, GgmlBuild::Avx512);
        attention_naive(&mut exact, &q, &k, &v, s);
        if let Some(d) = first_difference(&fast, &spec) {
            panic!("{s:?}: vector form differs from the scalar at {d}");
        }
        // the AVX2 path too, where the CPU would take the AVX-512 VL one
        if gllm_kernels::cpu::detected().has_avx2_fma() {
            let mut avx2 = vec![f32::NAN; q.len()];
            attention_ggml_tiled_avx2(&mut avx2, &q, &k, &v, s);
            if let Some(d) = first_difference(&avx2, &spec) {
                panic!("{s:?}: AVX2 path differs from the scalar at {d}");
            }
        }
        let worst = spec.iter().zip(&exact).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        // f32 throughout: a few ulps of the largest |v| (2)
        assert!(worst <= 4e-5, "{s:?}: {worst} from exact attention");
    }
}

#[test]
fn a_split_batch_gives_the_same_bits() {
    // rows depend only on their own keys: any cut of the batch (threads) is the same output
    let mut r = rng(22);
    let (m, pos0, n_heads, n_kv_heads, d) = (90, 20, 9, 3, 64);
    let kv_len = pos0 + m;
    let s = AttentionShape { m, kv_len, capacity: kv_len, n_heads, n_kv_heads, head_dim: d };
    let q: Vec<f32> = (0..m * n_heads * d).map(|_| r.gen_range(-3.0..3.0)).collect();
    let k = f16_values(&mut r, n_kv_heads * kv_len * d, 1.0);
    let v = f16_values(&mut r, n_kv_heads * kv_len * d, 1.0);
    let mut whole = vec![0.0; q.len()];
    attention_ggml_tiled(&mut whole, &q, &k, &v, s);
    let row = n_heads * d;
    let mut parts = vec![0.0; q.len()];
    for (t0, t1) in [(0, 7), (7, 50), (50, 90)] {
        let sub = AttentionShape { m: t1 - t0, kv_len: pos0 + t1, ..s };
        attention_ggml_tiled(&mut parts[t0 * row..t1 * row], &q[t0 * row..t1 * row], &k, &v, sub);
    }
    assert!(first_difference(&parts, &whole).is_none());
}
