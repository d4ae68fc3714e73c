//! The AVX-512 SwiGLU kernels (`arch::activations_avx512`): `ggml_avx512` gives the bits of
//! the `ggml` variant and of its scalar specification on every class of input, and NaN where
//! they give NaN (which NaN is not fixed: Rust, like LLVM, leaves a NaN result's sign and
//! payload unspecified, and the compiler may swap the operands of a multiply); `avx512` stays
//! within its stated error of the f64 SiLU. The registry tests add
//! every variant against `naive` on the awkward lengths with guard zones; these run only where
//! the CPU has AVX-512 and report SKIPPED elsewhere.

use gllm_kernels::ops::activations::silu_mul_avx512;
use gllm_kernels::ops::ggml::{silu_mul_ggml, silu_mul_ggml_avx512, silu_mul_ggml_scalar};
use gllm_kernels::ops::TEST_LENGTHS;
use gllm_kernels::registry::rng;
use rand::Rng;

fn skip(test: &str) -> bool {
    let missing = !gllm_kernels::cpu::detected().has_avx512();
    if missing {
        eprintln!("SKIPPED {test}: CPU lacks AVX-512");
    }
    missing
}

/// The same bits, or both NaN.
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Buffers for [`Checker::check`], reused across chunks.
#[derive(Default)]
struct Checker {
    ones: Vec<f32>,
    native: Vec<f32>,
    avx2: Vec<f32>,
    spec: Vec<f32>,
}

impl Checker {
    /// `silu(g)` bits of the three forms for every gate (`up = 1`, so the product is `silu(g)`
    /// itself); panics at the first difference.
    fn check(&mut self, gates: &[f32]) {
        let n = gates.len();
        for b in [&mut self.ones, &mut self.native, &mut self.avx2, &mut self.spec] {
            b.resize(n, 1.0);
        }
        silu_mul_ggml_avx512(&mut self.native, gates, &self.ones);
        silu_mul_ggml(&mut self.avx2, gates, &self.ones);
        silu_mul_ggml_scalar(&mut self.spec, gates, &self.ones);
        for (i, &g) in gates.iter().enumerate() {
            let (a, b, c) = (self.native[i], self.avx2[i], self.spec[i]);
            assert!(
                same(a, c) && same(b, c),
                "silu({g:e} = {:#010x}): ggml_avx512 {:#010x}, ggml {:#010x}, scalar {:#010x}",
                g.to_bits(),
                a.to_bits(),
                b.to_bits(),
                c.to_bits()
            );
        }
    }

    /// [`Checker::check`] on the gates of `bits`, 65536 at a time.
    fn check_bits(&mut self, bits: impl Iterator<Item = u32>) {
        let mut chunk = Vec::with_capacity(1 << 16);
        for b in bits {
            chunk.push(f32::from_bits(b));
            if chunk.len() == chunk.capacity() {
                self.check(&chunk);
                chunk.clear();
            }
        }
        self.check(&chunk);
    }
}

/// Values around which ggml's expf or the kernels change regime: overflow of `e^(−g)` (88.72),
/// its underflow to subnormals (87.34) and to 0 (103.97), the kernels' clamps (133.08 where
/// ggml substitutes ±inf/0 for `|n| > 192`, 150 where ours clamps), the end of the `0x1.8p23`
/// rounding trick (2^22·ln 2), the SiLU's own: ±0, ±inf, ±f32::MAX, subnormals.
const EDGES: [f32; 16] = [
    0.0,
    87.33654,
    88.72283,
    88.72284,
    89.0,
    103.27893,
    103.97208,
    104.0,
    133.08,
    133.1,
    150.0,
    192.0,
    2_907_270.0,
    1e30,
    f32::MAX,
    f32::MIN_POSITIVE,
];

#[test]
fn ggml_avx512_gives_ggmls_bits_on_every_input_class() {
    if skip("ggml_avx512_gives_ggmls_bits_on_every_input_class") {
        return;
    }
    // each edge of either sign with its 300 neighbours on both sides
    let mut gates = Vec::new();
    for e in EDGES {
        for s in [e, -e] {
            let b = s.to_bits() as i64;
            gates.extend((b - 300..=b + 300).map(|v| f32::from_bits(v as u32)));
        }
    }
    // infinities, NaNs (quiet, signalling, negative, with payloads), subnormals
    gates.extend([f32::INFINITY, f32::NEG_INFINITY]);
    gates.extend(
        [0x7fc0_0000u32, 0xffc0_0000, 0x7f80_0001, 0xff80_0001, 0x7fbf_ffff, 0x7fc0_dead, u32::MAX]
            .map(f32::from_bits),
    );
    gates.extend(
        (1..=2000u32).flat_map(|i| [i, i | 0x8000_0000, 0x007f_ffff - i]).map(f32::from_bits),
    );
    let mut checker = Checker::default();
    checker.check(&gates);
    // every 257th bit pattern (16.7 million values: every binade, both signs), then every
    // 61st where a SwiGLU's gates lie, |g| ≤ 20 (36 million)
    checker.check_bits((0..=u32::MAX).step_by(257));
    let end = 20.0f32.to_bits();
    checker.check_bits((0..end).step_by(61).flat_map(|b| [b, b | 0x8000_0000]));
}

/// Every one of the 2^32 gate values (about a minute in release): run with `--ignored`.
#[test]
#[ignore]
fn ggml_avx512_gives_ggmls_bits_on_all_2_to_the_32_gates() {
    if skip("ggml_avx512_gives_ggmls_bits_on_all_2_to_the_32_gates") {
        return;
    }
    Checker::default().check_bits(0..=u32::MAX);
}

/// `y` with NaN guards of 16 values on both sides; returns `(guarded buffer, range of y)`.
fn guarded(n: usize) -> (Vec<f32>, std::ops::Range<usize>) {
    (vec![f32::from_bits(0x7fc0_dead); n + 32], 16..16 + n)
}

fn assert_guards(buf: &[f32], r: &std::ops::Range<usize>, id: &str) {
    for (i, v) in buf.iter().enumerate() {
        if !r.contains(&i) {
            assert_eq!(v.to_bits(), 0x7fc0_dead, "{id}: wrote outside y at {i}");
        }
    }
}

#[test]
fn ggml_avx512_matches_ggml_with_up_at_every_awkward_length() {
    if skip("ggml_avx512_matches_ggml_with_up_at_every_awkward_length") {
        return;
    }
    let mut r = rng(11);
    let n_max = 4097 + 64;
    let mut gate: Vec<f32> = (0..n_max).map(|_| r.gen_range(-30.0f32..30.0)).collect();
    let mut up: Vec<f32> = (0..n_max).map(|_| r.gen_range(-4.0f32..4.0)).collect();
    let specials = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1e30, -1e30, 1e-40];
    for i in (0..n_max).step_by(7) {
        gate[i] = specials[(i / 7) % specials.len()];
        up[(i * 3) % n_max] = specials[(i / 5) % specials.len()];
    }
    // offsets 0..3 so loads and stores start off 64-byte alignment too
    for n in TEST_LENGTHS.into_iter().chain([1536, 4096]) {
        for offset in 0..3 {
            let (g, u) = (&gate[offset..offset + n], &up[offset..offset + n]);
            let (mut buf, range) = guarded(n);
            silu_mul_ggml_avx512(&mut buf[range.clone()], g, u);
            assert_guards(&buf, &range, &format!("ggml_avx512 n={n}"));
            let mut want = vec![0.0; n];
            silu_mul_ggml(&mut want, g, u);
            for (i, (a, b)) in buf[range.clone()].iter().zip(&want).enumerate() {
                assert!(
                    same(*a, *b),
                    "n {n} offset {offset} i {i}: gate {:e} up {:e}: {a:e} vs {b:e}",
                    g[i],
                    u[i]
                );
            }
        }
    }
}

#[test]
fn avx512_silu_mul_is_within_its_stated_error() {
    if skip("avx512_silu_mul_is_within_its_stated_error") {
        return;
    }
    // gates over the whole range where silu is neither 0 nor the gate, ups of both signs
    let n = 4_000_003;
    let gate: Vec<f32> = (0..n).map(|i| -90.0 + 110.0 * i as f32 / n as f32).collect();
    let up: Vec<f32> = (0..n).map(|i| if i % 2 == 0 { 1.7 } else { -0.3 }).collect();
    let mut y = vec![0.0f32; n];
    silu_mul_avx512(&mut y, &gate, &up);
    let mut worst = 0.0f64;
    for i in 0..n {
        let (g, u) = (gate[i] as f64, up[i] as f64);
        let want = g / (1.0 + (-g).exp()) * u;
        let err = (y[i] as f64 - want).abs();
        // below e^-88.7 the kernel returns −0 (documented); the absolute floor covers it
        if want.abs() > 1e-30 {
            worst = worst.max(err / want.abs());
        } else {
            assert!(err <= 1e-30, "gate {g}: {} vs {want:e}", y[i]);
        }
    }
    eprintln!("avx512 silu_mul: worst relative error {worst:.3e}");
    assert!(worst <= 2.6e-7, "worst relative error {worst:e}");
    // the limits: silu(−inf) = −0, silu(+inf) = +inf, NaN stays NaN, large gates pass through
    let g = [f32::NEG_INFINITY, f32::INFINITY, f32::NAN, -1e30, 1e30, 0.0, -0.0, 200.0, -200.0];
    let mut y = [0.0f32; 9];
    silu_mul_avx512(&mut y, &g, &[1.0; 9]);
    assert_eq!(y[0].to_bits(), (-0.0f32).to_bits());
    assert_eq!(y[1], f32::INFINITY);
    assert!(y[2].is_nan());
    assert_eq!((y[3].to_bits(), y[4]), ((-0.0f32).to_bits(), 1e30));
    assert_eq!((y[5].to_bits(), y[6].to_bits()), (0, (-0.0f32).to_bits()));
    assert_eq!((y[7], y[8].to_bits()), (200.0, (-0.0f32).to_bits()));
}
