//! `linear_packed`'s order of the sums: every fast variant gives the bits of the scalar FMA
//! chain, and row `i` of a GEMM equals the GEMV of `x[i]` and any panel-aligned column block,
//! so a prefill's last row equals a one-token decode bit for bit.

use gllm_kernels::ops::linear::LinearShape;
use gllm_kernels::ops::linear_packed::{self, pack, packed_len, unpack_row, PANEL};
use gllm_kernels::registry;

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

struct Problem {
    x: Vec<f32>,
    w: Vec<f32>,
    packed: Vec<f32>,
    bias: Vec<f32>,
}

fn problem(m: usize, n: usize, k: usize, seed: u64) -> Problem {
    let mut rng = registry::rng(seed);
    let x = registry::uniform(&mut rng, m * k, 1.0);
    let w = registry::uniform(&mut rng, n * k, 0.1);
    let bias = registry::uniform(&mut rng, n, 0.5);
    let mut packed = vec![f32::NAN; packed_len(n, k)];
    pack(&w, n, k, &mut packed);
    Problem { x, w, packed, bias }
}

const SHAPES: [(usize, usize, usize); 12] = [
    (2, 1, 1),
    (7, 15, 9),
    (6, 16, 16),
    (13, 17, 31),
    (5, 33, 255),
    (12, 48, 257),
    (19, 40, 600),
    (150, 20, 30),
    (64, 192, 576),
    (9, 576, 1536),
    (3, 49, 1100),
    (17, 100, 513),
];

#[test]
fn pack_and_unpack_round_trip() {
    for (n, k) in [(1, 1), (15, 3), (16, 7), (17, 5), (49, 33)] {
        let p = problem(0, n, k, 3);
        let mut row = vec![0.0; k];
        for j in 0..n {
            unpack_row(&p.packed, k, j, &mut row);
            assert_eq!(row, &p.w[j * k..(j + 1) * k], "n={n} k={k} row {j}");
        }
        // the rows that pad the last panel are zeros
        let pad = &p.packed[n / PANEL * PANEL * k..];
        for t in 0..k {
            for c in n % PANEL..PANEL {
                if n % PANEL != 0 {
                    assert_eq!(pad[t * PANEL + c], 0.0, "n={n} k={k} t={t} c={c}");
                }
            }
        }
    }
}

#[test]
fn fast_variants_give_the_bits_of_the_scalar_chain_and_gemm_rows_equal_gemv() {
    let scalar = linear_packed::select("scalar").unwrap();
    let fast: Vec<_> = registry::variants_of("linear_packed")
        .filter(|v| v.name != "naive" && (v.available)().is_available())
        .map(|v| (v.name, linear_packed::select(v.name).unwrap()))
        .collect();
    assert!(!fast.is_empty());
    for (s, &(m, n, k)) in SHAPES.iter().enumerate() {
        let p = problem(m, n, k, 50 + s as u64);
        for bias in [None, Some(&p.bias[..])] {
            let mut want = vec![f32::NAN; m * n];
            scalar(&mut want, &p.x, &p.packed, bias, LinearShape::new(m, n, k));
            for &(name, f) in &fast {
                let mut got = vec![f32::NAN; m * n];
                f(&mut got, &p.x, &p.packed, bias, LinearShape::new(m, n, k));
                assert_eq!(bits(&got), bits(&want), "{name} m={m} n={n} k={k} vs scalar");
                for i in 0..m {
                    // the GEMV of one row, and the same row in a GEMM of the rows i..
                    let mut row = vec![f32::NAN; n];
                    f(
                        &mut row,
                        &p.x[i * k..(i + 1) * k],
                        &p.packed,
                        bias,
                        LinearShape::new(1, n, k),
                    );
                    assert_eq!(
                        bits(&row),
                        bits(&got[i * n..(i + 1) * n]),
                        "{name} m={m} n={n} k={k} GEMV row {i}"
                    );
                    let rest = m - i;
                    let mut tail = vec![f32::NAN; rest * n];
                    f(&mut tail, &p.x[i * k..], &p.packed, bias, LinearShape::new(rest, n, k));
                    assert_eq!(
                        bits(&tail[..n]),
                        bits(&row),
                        "{name} m={m} n={n} k={k} GEMM of rows {i}.."
                    );
                }
            }
        }
    }
}

#[test]
fn panel_aligned_column_blocks_give_the_same_bits() {
    for (name, f) in registry::variants_of("linear_packed")
        .filter(|v| (v.available)().is_available())
        .map(|v| (v.name, linear_packed::select(v.name).unwrap()))
    {
        for &(m, n, k) in &[(1, 49, 40), (7, 49, 40), (6, 576, 64)] {
            let p = problem(m, n, k, 9);
            let mut whole = vec![f32::NAN; m * n];
            f(&mut whole, &p.x, &p.packed, Some(&p.bias), LinearShape::new(m, n, k));
            let mut blocked = vec![f32::NAN; m * n];
            let cut = (n / 2).next_multiple_of(PANEL);
            for (j0, j1) in [(0, cut), (cut, n)] {
                let w = &p.packed[j0 * k..(j0 + (j1 - j0).next_multiple_of(PANEL)) * k];
                let shape = LinearShape { m, n: j1 - j0, k, y_stride: n };
                f(&mut blocked[j0..], &p.x, w, Some(&p.bias[j0..j1]), shape);
            }
            assert_eq!(bits(&blocked), bits(&whole), "{name} m={m} n={n} k={k}");
        }
    }
}
