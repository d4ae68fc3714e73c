//! The numerics contract of the fast quantized matmuls for the 32-value formats: every output
//! (weight row r, token t) is bit-identical to ggml's AVX2 `ggml_vec_dot_q4_1_q8_1` /
//! `ggml_vec_dot_q8_0_q8_0` (and the Q4_0/Q5_0/Q5_1 dots, which share their shape):
//!
//! ```text
//! acc = 8 f32 lanes of 0
//! for each block b, in order:
//!     lane j gets the exact integer Σ of the products of elements 4j..4j+3;
//!     acc_j = fma(d_w·d_a, float(lane j), acc_j)            (d_w·d_a rounded to f32 first)
//! result = ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))
//! Q4_1/Q5_1: result += Σ_b m_w·s_a, summed in f32 in block order from 0
//! ```
//!
//! `emulate` below is that order in plain scalar code; the kernels must match it with `==` on
//! the bits, at the model's shapes and odd ones, for m = 1, 2, 3, 5, 8, 64 tokens, both the
//! dispatching `avx2` variant (tile walk for few tokens, GEMM from `gemm_min_m` tokens on) and the
//! GEMM itself at every m; for Q4_1 also the `qmatvec_q4_1x8` variants on the same rows
//! interleaved (`avx2`, and `avx512` where the CPU has AVX-512 VNNI), for Q8_0 the
//! `qmatvec_q8_0x16` `avx512` variant likewise.

use gllm_kernels::quant::f16::{f16_to_f32, f32_to_f16};
use gllm_kernels::quant::{
    q4_1x8, q8_0x16, quantize_activations, random, select_qmatmul, QuantType, QuantizedActs,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

const FORMATS: [QuantType; 5] =
    [QuantType::Q4_0, QuantType::Q4_1, QuantType::Q5_0, QuantType::Q5_1, QuantType::Q8_0];

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// One weight block: its 32 integer quants (offset applied), scale and minimum (0 if none).
fn weight_block(t: QuantType, b: &[u8]) -> ([i32; 32], f32, f32) {
    let nibble = |qs: &[u8], i: usize| {
        if i < 16 {
            (qs[i] & 15) as i32
        } else {
            (qs[i - 16] >> 4) as i32
        }
    };
    let high_bit =
        |qh: &[u8], i: usize| ((u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]) >> i) & 1) as i32;
    let quants = |f: &dyn Fn(usize) -> i32| -> [i32; 32] { std::array::from_fn(f) };
    match t {
        QuantType::Q4_0 => (quants(&|i| nibble(&b[2..], i) - 8), f16_at(b, 0), 0.0),
        QuantType::Q4_1 => (quants(&|i| nibble(&b[4..], i)), f16_at(b, 0), f16_at(b, 2)),
        QuantType::Q5_0 => {
            (quants(&|i| (nibble(&b[6..], i) | high_bit(&b[2..], i) << 4) - 16), f16_at(b, 0), 0.0)
        }
        QuantType::Q5_1 => (
            quants(&|i| nibble(&b[8..], i) | high_bit(&b[4..], i) << 4),
            f16_at(b, 0),
            f16_at(b, 2),
        ),
        QuantType::Q8_0 => (quants(&|i| b[2 + i] as i8 as i32), f16_at(b, 0), 0.0),
        other => unreachable!("{other} is not a 32-value weight format"),
    }
}

/// ggml's AVX2 order for one weight row and one activation row (Q8_0 or Q8_1 blocks).
fn emulate(t: QuantType, w: &[u8], a: &[u8]) -> f32 {
    let (wb, with_min) = (t.block_bytes(), matches!(t, QuantType::Q4_1 | QuantType::Q5_1));
    let (ab, a_qs) = if with_min { (36, 4) } else { (34, 2) };
    let mut acc = [0.0f32; 8];
    let mut summs = 0.0f32;
    for (wblock, ablock) in w.chunks_exact(wb).zip(a.chunks_exact(ab)) {
        let (q, dw, mw) = weight_block(t, wblock);
        let da = f16_at(ablock, 0);
        let dd = dw * da;
        for (j, lane) in acc.iter_mut().enumerate() {
            let sum: i32 = (4 * j..4 * j + 4).map(|i| q[i] * ablock[a_qs + i] as i8 as i32).sum();
            *lane = dd.mul_add(sum as f32, *lane);
        }
        if with_min {
            summs += mw * f16_at(ablock, 2);
        }
    }
    let l = acc;
    let hsum = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
    if with_min {
        hsum + summs
    } else {
        hsum
    }
}

/// Random blocks of every bit pattern the format allows (the quantizer's blocks do not hit
/// every nibble evenly): random quant bytes with finite scales of either sign; Q8_0 without
/// −128, which ggml's quantizer never writes (the `maddubs` sign trick relies on it).
fn random_bytes(t: QuantType, n_blocks: usize, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let bb = t.block_bytes();
    let mut out = vec![0u8; n_blocks * bb];
    rng.fill(&mut out[..]);
    for b in out.chunks_exact_mut(bb) {
        let d: f32 = rng.gen_range(0.001..0.05) * if rng.gen_bool(0.5) { 1.0 } else { -1.0 };
        b[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
        if matches!(t, QuantType::Q4_1 | QuantType::Q5_1) {
            let m: f32 = rng.gen_range(-0.5..0.5);
            b[2..4].copy_from_slice(&f32_to_f16(m).to_le_bytes());
        }
        if t == QuantType::Q8_0 {
            for q in &mut b[2..] {
                if *q == 0x80 {
                    *q = 0x81;
                }
            }
        }
    }
    out
}

type Gemm = unsafe fn(&[u8], QuantType, usize, usize, &QuantizedActs, &mut [f32], usize);

/// Runs `f` into an output with stride `n + 3` and NaN guard columns, checks the guards, and
/// compares every output's bits with the emulation.
fn check(
    label: &str,
    t: QuantType,
    w: &[u8],
    n: usize,
    k: usize,
    acts: &QuantizedActs,
    f: &dyn Fn(&mut [f32], usize),
) {
    let m = acts.m();
    let row_bytes = t.row_bytes(k).unwrap();
    let stride = n + 3;
    let mut y = vec![f32::NAN; m * stride];
    f(&mut y, stride);
    for tok in 0..m {
        for r in 0..n {
            let want = emulate(t, &w[r * row_bytes..(r + 1) * row_bytes], acts.row(tok));
            let got = y[tok * stride + r];
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{label} {t} n={n} k={k} m={m}: token {tok} row {r}: got {got:e} want {want:e}"
            );
        }
        for r in n..stride {
            assert!(
                y[tok * stride + r].is_nan(),
                "{label} {t} m={m}: wrote column {r} beyond n={n}"
            );
        }
    }
}

fn check_all(t: QuantType, w: &[u8], n: usize, k: usize, acts: &QuantizedActs) {
    if let Some(f) = select_qmatmul("avx2") {
        check("qmatmul avx2", t, w, n, k, acts, &|y, s| f(w, t, n, k, acts, y, s));
    }
    if t == QuantType::Q4_1 && q4_1x8::fits(n, k) {
        // the same rows interleaved by 8 at load: every fast variant of qmatvec_q4_1x8
        let mut x8 = vec![0u8; w.len()];
        q4_1x8::interleave(w, n, k, &mut x8);
        for v in ["avx2", "avx512"] {
            match q4_1x8::select(v) {
                Some(f) => check(&format!("q4_1x8 {v}"), t, w, n, k, acts, &|y, s| {
                    f(&x8, t, n, k, acts, y, s)
                }),
                None => eprintln!("SKIP q4_1x8 {v}: not available on this CPU"),
            }
        }
    }
    if t == QuantType::Q8_0 && q8_0x16::fits(n, k) {
        // the same rows interleaved by 16 at load: qmatvec_q8_0x16
        let mut x16 = vec![0u8; w.len()];
        q8_0x16::interleave(w, n, k, &mut x16);
        match q8_0x16::select("avx512") {
            Some(f) => {
                check("q8_0x16 avx512", t, w, n, k, acts, &|y, s| f(&x16, t, n, k, acts, y, s))
            }
            None => eprintln!("SKIP q8_0x16 avx512: not available on this CPU"),
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        let cpu = gllm_kernels::cpu::detected();
        if cpu.has_avx2_fma() && cpu.f16c {
            let g: Gemm = gllm_kernels::arch::quant_avx2::qgemm;
            // SAFETY: AVX2/FMA/F16C detected; shapes consistent by construction.
            check("qgemm", t, w, n, k, acts, &|y, s| unsafe { g(w, t, n, k, acts, y, s) });
        } else {
            eprintln!("SKIP qgemm: the CPU lacks AVX2/FMA/F16C");
        }
    }
}

const TOKENS: [usize; 6] = [1, 2, 3, 5, 8, 64];

#[test]
fn quantized_matmuls_match_ggml_order_bit_for_bit_at_model_shapes() {
    // (n, k): q/o, k/v, gate/up, down of SmolLM2-135M
    for (n, k) in [(576, 576), (192, 576), (1536, 576), (576, 1536)] {
        for t in FORMATS {
            let act = t.activation_type().unwrap();
            for m in TOKENS {
                let mut rng =
                    gllm_kernels::registry::rng((n * 31 + k + m) as u64 + 1000 * t.id() as u64);
                let w = random::blocks(t, n * k / 32, &mut rng);
                let acts = quantize_activations(act, &random::values(&mut rng, m * k), m, k);
                check_all(t, &w, n, k, &acts);
            }
        }
    }
}

#[test]
fn quantized_matmuls_match_ggml_order_bit_for_bit_at_odd_shapes() {
    for t in FORMATS {
        let act = t.activation_type().unwrap();
        for n in [1, 2, 3, 7, 8, 9, 13, 16, 17, 24, 40, 48] {
            for nb in [1, 2, 3, 5] {
                let k = nb * 32;
                for m in TOKENS {
                    let mut rng = gllm_kernels::registry::rng(
                        (n * 131 + nb * 7 + m) as u64 + 100_000 * t.id() as u64,
                    );
                    let w = random_bytes(t, n * nb, &mut rng);
                    let acts = quantize_activations(act, &random::values(&mut rng, m * k), m, k);
                    check_all(t, &w, n, k, &acts);
                }
            }
        }
    }
}

/// The largest products the formats allow (quants at their extremes against ±127
/// activations) must not saturate any 16-bit step.
#[test]
fn extreme_quants_do_not_saturate() {
    // (rows, tokens): a GEMM row tail, whole panels (the interleaved Q4_1 and Q8_0), the GEMV
    let shapes = [(9, 6), (24, 6), (32, 5), (32, 1)];
    for (t, (n, m)) in FORMATS.into_iter().flat_map(|t| shapes.map(|s| (t, s))) {
        let act = t.activation_type().unwrap();
        let nb = 3;
        let k = nb * 32;
        let mut rng = gllm_kernels::registry::rng(77 + t.id() as u64);
        let mut w = random_bytes(t, n * nb, &mut rng);
        let bb = t.block_bytes();
        let qs_at = bb - if t == QuantType::Q8_0 { 32 } else { 16 };
        for (i, b) in w.chunks_exact_mut(bb).enumerate() {
            // alternate blocks of the largest and the smallest quants (and all high bits set)
            let fill = match (t, i % 2) {
                (QuantType::Q8_0, 0) => 0x7f,
                (QuantType::Q8_0, _) => 0x81,
                (_, 0) => 0xff,
                _ => 0x00,
            };
            b[qs_at..].fill(fill);
            if matches!(t, QuantType::Q5_0 | QuantType::Q5_1) {
                let qh_at = if t == QuantType::Q5_0 { 2 } else { 4 };
                b[qh_at..qh_at + 4].fill(if i % 2 == 0 { 0xff } else { 0x00 });
            }
        }
        // activations of ±1 in each block quantize to ±127
        let x: Vec<f32> = (0..m * k).map(|i| if (i / 7) % 2 == 0 { 1.0 } else { -1.0 }).collect();
        let acts = quantize_activations(act, &x, m, k);
        check_all(t, &w, n, k, &acts);
    }
}

/// The interleaved Q8_0 kernel flips the weights' sign bit instead of ggml's sign trick, so it
/// is exact for every weight byte, −128 included (which ggml's quantizer never writes and the
/// AVX2 kernels cannot take).
#[test]
fn q8_0x16_takes_every_weight_byte() {
    let Some(f) = q8_0x16::select("avx512") else {
        eprintln!("SKIP q8_0x16 avx512: not available on this CPU");
        return;
    };
    let t = QuantType::Q8_0;
    let (n, nb) = (32, 3);
    let k = nb * 32;
    for m in [1, 2, 3] {
        let mut rng = gllm_kernels::registry::rng(500 + m as u64);
        let mut w = random_bytes(t, n * nb, &mut rng);
        for (i, b) in w.chunks_exact_mut(34).enumerate() {
            // −128 everywhere in some blocks, scattered in the others
            if i % 3 == 0 {
                b[2..].fill(0x80);
            } else {
                b[2 + i % 32] = 0x80;
            }
        }
        let acts = quantize_activations(t, &random::values(&mut rng, m * k), m, k);
        let mut x16 = vec![0u8; w.len()];
        q8_0x16::interleave(&w, n, k, &mut x16);
        check("q8_0x16 avx512", t, &w, n, k, &acts, &|y, s| f(&x16, t, n, k, &acts, y, s));
    }
}
