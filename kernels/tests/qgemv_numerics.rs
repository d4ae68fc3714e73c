//! The block-walk qmatmul (`arch::quant_avx2::qmatmul`, the decode GEMV) of the 32-value
//! formats reproduces ggml's AVX2 `vec_dot` arithmetic bit for bit: per output, 8 f32 lanes each
//! get `fma(d_w·d_a, float(Σ of 4 integer products), lane)` block after block, then
//! `((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))`, then for Q4_1/Q5_1 `+ Σ_b m_w·s_a` summed in f32
//! in block order. The emulation below is that order, written plainly.

use gllm_kernels::quant::f16::f16_to_f32;
use gllm_kernels::quant::{quantize_activations, random, QuantType, QuantizedActs};

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// A weight block's integer quants in element order, `d` and `m` (0 if the format has none).
fn int_quants(t: QuantType, b: &[u8]) -> ([i32; 32], f32, f32) {
    let mut q = [0i32; 32];
    let nibble = |qs: &[u8], i: usize| i32::from(if i < 16 { qs[i] & 15 } else { qs[i - 16] >> 4 });
    let high = |qh: &[u8], i: usize| {
        let bits = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
        ((bits >> i) & 1) as i32
    };
    for (i, v) in q.iter_mut().enumerate() {
        *v = match t {
            QuantType::Q4_0 => nibble(&b[2..], i) - 8,
            QuantType::Q4_1 => nibble(&b[4..], i),
            QuantType::Q5_0 => (nibble(&b[6..], i) | (high(&b[2..], i) << 4)) - 16,
            QuantType::Q5_1 => nibble(&b[8..], i) | (high(&b[4..], i) << 4),
            QuantType::Q8_0 => i32::from(b[2 + i] as i8),
            other => unreachable!("{other}"),
        };
    }
    let has_min = matches!(t, QuantType::Q4_1 | QuantType::Q5_1);
    (q, f16_at(b, 0), if has_min { f16_at(b, 2) } else { 0.0 })
}

/// ggml's AVX2 order for one weight row against one activation row.
fn ggml_dot(t: QuantType, w: &[u8], a: &[u8]) -> f32 {
    let act = t.activation_type().unwrap();
    let (wb, ab) = (t.block_bytes(), act.block_bytes());
    let a_qs = if act == QuantType::Q8_1 { 4 } else { 2 };
    let mut lanes = [0.0f32; 8];
    let mut summs = 0.0f32;
    for (wblock, ablock) in w.chunks_exact(wb).zip(a.chunks_exact(ab)) {
        let (q, dw, mw) = int_quants(t, wblock);
        let da = f16_at(ablock, 0);
        let dd = dw * da;
        for (j, lane) in lanes.iter_mut().enumerate() {
            let sum: i32 =
                (4 * j..4 * j + 4).map(|i| q[i] * i32::from(ablock[a_qs + i] as i8)).sum();
            *lane = dd.mul_add(sum as f32, *lane);
        }
        if act == QuantType::Q8_1 {
            summs += mw * f16_at(ablock, 2);
        }
    }
    let l = lanes;
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7])) + summs
}

fn gemv(
    w: &[u8],
    t: QuantType,
    n: usize,
    k: usize,
    acts: &QuantizedActs,
    y: &mut [f32],
    stride: usize,
) {
    gllm_kernels::quant::matmul::check_qmatmul(w, t, n, k, acts, y, stride);
    // SAFETY: AVX2/FMA/F16C checked by the caller; every length checked just above.
    unsafe { gllm_kernels::arch::quant_avx2::qmatmul(w, t, n, k, acts, y, stride) }
}

fn check(t: QuantType, n: usize, nb: usize, m: usize, w: &[u8], x: &[f32]) {
    let k = 32 * nb;
    let acts = quantize_activations(t.activation_type().unwrap(), x, m, k);
    let stride = n + 3;
    let mut y = vec![f32::NAN; m * stride];
    gemv(w, t, n, k, &acts, &mut y, stride);
    let row_bytes = nb * t.block_bytes();
    for tok in 0..m {
        for r in 0..n {
            let want = ggml_dot(t, &w[r * row_bytes..(r + 1) * row_bytes], acts.row(tok));
            let got = y[tok * stride + r];
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{t} n={n} k={k} m={m}: token {tok} row {r}: got {got:e}, want {want:e}"
            );
        }
        assert!(
            y[tok * stride + n..tok * stride + stride].iter().all(|v| v.is_nan()),
            "{t}: wrote past n={n}"
        );
    }
}

const FORMATS: [QuantType; 5] =
    [QuantType::Q4_0, QuantType::Q4_1, QuantType::Q5_0, QuantType::Q5_1, QuantType::Q8_0];

#[test]
fn gemv_matches_ggml_order_bit_for_bit() {
    let cpu = gllm_kernels::cpu::detected();
    if !(cpu.has_avx2_fma() && cpu.f16c) {
        eprintln!("SKIP: no AVX2/FMA/F16C");
        return;
    }
    // (rows, blocks per row): SmolLM2's q/o, k/v, gate/up, down, then odd shapes that leave
    // every pass width's tail
    let shapes = [
        (576, 18),
        (192, 18),
        (1536, 18),
        (576, 48),
        (1, 1),
        (3, 2),
        (5, 3),
        (7, 1),
        (9, 5),
        (13, 18),
        (17, 7),
        (33, 4),
    ];
    for t in FORMATS {
        for (i, &(n, nb)) in shapes.iter().enumerate() {
            for m in [1, 2, 3, 5, 8, 64] {
                // the big shapes at m = 64 add time, not coverage
                if m == 64 && n * nb > 4000 {
                    continue;
                }
                let mut rng = gllm_kernels::registry::rng(
                    1000 + 97 * i as u64 + m as u64 + 7 * t.id() as u64,
                );
                let w = random::blocks(t, n * nb, &mut rng);
                let x = random::values(&mut rng, m * 32 * nb);
                check(t, n, nb, m, &w, &x);
            }
        }
    }
}

/// Largest quants against ±127 activations: the widest integer lane sums and `vpmaddubsw`
/// pairs the formats allow, with the scales of real blocks.
#[test]
fn gemv_extreme_quants_match_ggml_order() {
    let cpu = gllm_kernels::cpu::detected();
    if !(cpu.has_avx2_fma() && cpu.f16c) {
        eprintln!("SKIP: no AVX2/FMA/F16C");
        return;
    }
    for t in FORMATS {
        let (n, nb, m) = (11, 3, 2);
        let mut rng = gllm_kernels::registry::rng(77 + t.id() as u64);
        let mut w = random::blocks(t, n * nb, &mut rng);
        let (qs_at, qs_len) = match t {
            QuantType::Q4_0 => (2, 16),
            QuantType::Q4_1 => (4, 16),
            QuantType::Q5_0 => (2, 20),
            QuantType::Q5_1 => (4, 20),
            _ => (2, 32),
        };
        for (i, b) in w.chunks_exact_mut(t.block_bytes()).enumerate() {
            // all bits set (the top of the u8 range; −1 for Q8_0) or, every other block, the
            // most negative quant Q4_0/Q5_0 can hold and 127 for Q8_0
            let fill = match (t, i % 2) {
                (_, 0) => 0xff,
                (QuantType::Q8_0, _) => 0x7f,
                _ => 0x00,
            };
            b[qs_at..qs_at + qs_len].fill(fill);
        }
        let x: Vec<f32> = (0..m * 32 * nb).map(|i| if i % 3 == 0 { -1.0 } else { 1.0 }).collect();
        check(t, n, nb, m, &w, &x);
    }
}
