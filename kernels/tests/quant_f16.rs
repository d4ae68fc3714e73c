//! F16/BF16 ↔ f32: every f16 bit pattern against the CPU's own F16C conversion, f32 → f16
//! against F16C's round-to-nearest-even on random and special values, BF16 against ggml's rule
//! on hand-picked cases (ties, NaN, overflow, subnormals), and the fast row variants against
//! naive on every bit pattern.

use gllm_kernels::quant::{
    self,
    f16::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16},
    QuantType,
};
use rand::Rng;

/// The CPU's own conversions (F16C), when it has them.
type Conversions = (fn(u16) -> f32, fn(f32) -> u16);

#[cfg(target_arch = "x86_64")]
fn hardware_f16c() -> Option<Conversions> {
    use std::arch::x86_64::*;
    if !is_x86_feature_detected!("f16c") {
        return None;
    }
    fn to_f32(h: u16) -> f32 {
        // SAFETY: F16C was detected above.
        unsafe { _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32))) }
    }
    fn to_f16(x: f32) -> u16 {
        // SAFETY: F16C was detected above.
        unsafe {
            _mm_extract_epi16::<0>(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(x))) as u16
        }
    }
    Some((to_f32, to_f16))
}

#[cfg(not(target_arch = "x86_64"))]
fn hardware_f16c() -> Option<Conversions> {
    None
}

#[test]
fn every_f16_pattern_converts_like_f16c_and_round_trips() {
    let hw = hardware_f16c();
    if hw.is_none() {
        eprintln!("SKIP hardware comparison: no F16C on this CPU");
    }
    for h in 0..=u16::MAX {
        let x = f16_to_f32(h);
        if let Some((to_f32, _)) = hw {
            assert_eq!(x.to_bits(), to_f32(h).to_bits(), "f16 {h:#06x}");
        }
        let back = f32_to_f16(x);
        if x.is_nan() {
            assert!(
                f16_to_f32(back).is_nan() && back & 0x0200 != 0,
                "{h:#06x}: NaN stays a quiet NaN"
            );
        } else {
            assert_eq!(back, h, "{h:#06x} round trip");
        }
    }
    assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24), "smallest subnormal");
    assert_eq!(f16_to_f32(0x7bff), 65504.0, "largest finite");
    assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
    assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
}

#[test]
fn f32_to_f16_rounds_like_f16c() {
    let specials = [
        0.0f32,
        -0.0,
        1.0,
        -1.0,
        65504.0,
        65519.99,
        65520.0,
        1e30,
        -1e30,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        2f32.powi(-24),
        2f32.powi(-25),
        1.5 * 2f32.powi(-25),
        2f32.powi(-26),
        2f32.powi(-14),
        2f32.powi(-14) * (1.0 - 2f32.powi(-11)),
        1.0 + 2f32.powi(-11),
        1.0 + 3.0 * 2f32.powi(-11),
        f32::MIN_POSITIVE,
        1e-30,
        f32::from_bits(0x7f80_0001),
        f32::from_bits(0xffc1_2345),
    ];
    // Hand-checked IEEE results, independent of the hardware.
    assert_eq!(f32_to_f16(65520.0), 0x7c00, "65520 rounds to inf");
    assert_eq!(f32_to_f16(65519.99), 0x7bff);
    assert_eq!(f32_to_f16(2f32.powi(-25)), 0x0000, "half the smallest subnormal ties to even 0");
    assert_eq!(f32_to_f16(1.5 * 2f32.powi(-25)), 0x0001);
    assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3c00, "tie to even");
    assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02, "tie to even (up)");
    assert_eq!(f32_to_f16(-0.0), 0x8000);
    let Some((_, to_f16)) = hardware_f16c() else {
        eprintln!("SKIP hardware comparison: no F16C on this CPU");
        return;
    };
    let mut rng = gllm_kernels::registry::rng(16);
    let randoms = (0..1_000_000).map(|_| f32::from_bits(rng.gen()));
    // Values near the f16 range, where all the rounding happens.
    let near = (0..1_000_000).map(|i| f32::from_bits(0x3000_0000 + i * 997 % 0x1800_0000));
    for x in specials.into_iter().chain(randoms).chain(near) {
        let (ours, hw) = (f32_to_f16(x), to_f16(x));
        assert_eq!(ours, hw, "f32 {:#010x} ({x:e}): ours {ours:#06x} F16C {hw:#06x}", x.to_bits());
    }
}

#[test]
fn bf16_follows_ggml() {
    assert_eq!(f32_to_bf16(1.0), 0x3f80);
    assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80, "tie to even (down)");
    assert_eq!(f32_to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82, "tie to even (up)");
    assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
    assert_eq!(f32_to_bf16(f32::from_bits(0x7f80_0001)), 0x7fc0, "signalling NaN made quiet");
    assert_eq!(f32_to_bf16(f32::from_bits(0xffc0_0000)), 0xffc0);
    assert_eq!(f32_to_bf16(f32::INFINITY), 0x7f80);
    assert_eq!(f32_to_bf16(f32::from_bits(0x7f7f_ffff)), 0x7f80, "max f32 rounds to inf");
    assert_eq!(f32_to_bf16(f32::from_bits(0x0000_8000)), 0x0000, "subnormal tie to even");
    assert_eq!(f32_to_bf16(f32::from_bits(0x0001_8000)), 0x0002);
    assert_eq!(f32_to_bf16(-0.0), 0x8000);
    for h in 0..=u16::MAX {
        let x = bf16_to_f32(h);
        assert_eq!(x.to_bits(), (h as u32) << 16);
        if !x.is_nan() {
            assert_eq!(f32_to_bf16(x), h, "{h:#06x} round trip");
        }
    }
}

#[test]
fn fast_row_conversions_match_naive_on_every_pattern() {
    let src: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
    for t in [QuantType::F16, QuantType::BF16] {
        let mut want = vec![0.0f32; 65536];
        quant::dequantize_row_variant(t, "naive", &src, &mut want);
        for variant in ["simd", "avx2"] {
            if quant::dequant_fn(t, variant).is_none() {
                continue;
            }
            // odd lengths exercise the tails
            for n in [65536usize, 65535, 7, 1, 0] {
                let mut got = vec![1.0f32; n];
                quant::dequantize_row_variant(t, variant, &src[..2 * n], &mut got);
                for i in 0..n {
                    assert_eq!(
                        got[i].to_bits(),
                        want[i].to_bits(),
                        "{t}/{variant} pattern {i:#06x}"
                    );
                }
            }
        }
    }
}
