//! IEEE half precision (F16, GGUF type 1) and bfloat16 (BF16, GGUF type 30) to and from f32.
//!
//! ```text
//! f16:  s eeeee mmmmmmmmmm        bias 15; e=0: subnormal m·2^-24; e=31: inf (m=0) / NaN
//! bf16: s eeeeeeee mmmmmmm        the top 16 bits of an f32
//! ```
//! f16 → f32 and bf16 → f32 are exact (an f16 NaN becomes a quiet f32 NaN with the same
//! payload, as F16C does). f32 → f16 rounds to nearest, ties to even, overflow to
//! ±inf, and a NaN stays a NaN with the quiet bit set and the top mantissa bits kept (what
//! F16C's `vcvtps2ph` does, which ggml uses on x86). f32 → bf16 is ggml's/gguf-py's rule:
//! round to nearest even on the dropped 16 bits; a NaN keeps its top bits and is forced quiet.

use super::QuantType;

/// Exact f16 → f32.
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let magnitude = match exp {
        // ±0 and subnormals m·2^-24: exact in f32 (m < 2^10)
        0 => (man as f32 * (1.0 / 16_777_216.0)).to_bits(),
        // inf; a NaN keeps its payload and is made quiet, as F16C's vcvtph2ps does
        31 if man == 0 => 0x7f80_0000,
        31 => 0x7fc0_0000 | (man << 13),
        _ => ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(sign | magnitude)
}

/// f32 → f16, round to nearest even (see the module docs for NaN and overflow).
#[inline]
pub fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let man = bits & 0x7f_ffff;
    if exp == 0xff {
        return if man == 0 { sign | 0x7c00 } else { sign | 0x7e00 | (man >> 13) as u16 };
    }
    // the f16 biased exponent
    let e = exp - 127 + 15;
    if e >= 31 {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // Subnormal result in units of 2^-24: the 24-bit significand shifted right by 14 - e.
        let shift = (14 - e) as u32;
        if shift > 24 {
            return sign;
        }
        let m = man | 0x80_0000;
        let (q, rem, half) = (m >> shift, m & ((1 << shift) - 1), 1u32 << (shift - 1));
        let r = if rem > half || (rem == half && q & 1 == 1) { q + 1 } else { q };
        return sign | r as u16;
    }
    let q = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    // A carry out of the mantissa bumps the exponent; out of e=30 it gives 0x7c00 = inf.
    let r = if rem > 0x1000 || (rem == 0x1000 && q & 1 == 1) { q + 1 } else { q };
    sign | r as u16
}

/// Exact bf16 → f32.
#[inline]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// f32 → bf16, ggml's rule (round to nearest even; NaN forced quiet).
#[inline]
pub fn f32_to_bf16(x: f32) -> u16 {
    let u = x.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    ((u + (0x7fff + ((u >> 16) & 1))) >> 16) as u16
}

fn assert_row(t: QuantType, src: &[u8], dst: &[f32]) {
    assert!(
        src.len().is_multiple_of(2),
        "dequantize {t}: {} bytes is not a whole number of 2-byte values",
        src.len()
    );
    assert_eq!(
        src.len() / 2,
        dst.len(),
        "dequantize {t}: {} values in {} bytes but the output has {}",
        src.len() / 2,
        src.len(),
        dst.len()
    );
}

/// F16 row → f32, one value at a time: the specification.
pub fn dequantize_f16_naive(src: &[u8], dst: &mut [f32]) {
    assert_row(QuantType::F16, src, dst);
    for (y, h) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *y = f16_to_f32(u16::from_le_bytes([h[0], h[1]]));
    }
}

/// F16 row → f32, branchless over chunks of 8 (the compiler vectorizes it): the magnitude
/// bits shifted into place and scaled by 2^112 (exact for normals and subnormals alike), then
/// the exponent forced to 255 for inf/NaN, then the sign.
pub fn dequantize_f16_simd(src: &[u8], dst: &mut [f32]) {
    assert_row(QuantType::F16, src, dst);
    let body = dst.len() / 8 * 8;
    for (ys, hs) in dst[..body].chunks_exact_mut(8).zip(src[..2 * body].chunks_exact(16)) {
        let h: [u32; 8] =
            std::array::from_fn(|i| u16::from_le_bytes([hs[2 * i], hs[2 * i + 1]]) as u32);
        let mut out = [0u32; 8];
        for i in 0..8 {
            let scaled = f32::from_bits((h[i] & 0x7fff) << 13) * f32::from_bits(0x7780_0000);
            let special = (h[i] & 0x7c00 == 0x7c00) as u32;
            let nan = special & (h[i] & 0x3ff != 0) as u32;
            out[i] =
                scaled.to_bits() | (special * 0x7f80_0000) | (nan << 22) | ((h[i] & 0x8000) << 16);
        }
        for (y, o) in ys.iter_mut().zip(out) {
            *y = f32::from_bits(o);
        }
    }
    dequantize_f16_naive(&src[2 * body..], &mut dst[body..]);
}

/// F16 row → f32 with F16C `vcvtph2ps`, 8 values per instruction.
pub fn dequantize_f16_avx2(src: &[u8], dst: &mut [f32]) {
    assert_row(QuantType::F16, src, dst);
    #[cfg(target_arch = "x86_64")]
    {
        assert!(crate::cpu::detected().has_avx2_f16c());
        // SAFETY: the CPU has F16C/AVX2 (asserted); lengths were checked above.
        unsafe { crate::arch::quant_avx2::f16_to_f32_row(src, dst) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    dequantize_f16_naive(src, dst);
}

/// BF16 row → f32: the specification.
pub fn dequantize_bf16_naive(src: &[u8], dst: &mut [f32]) {
    assert_row(QuantType::BF16, src, dst);
    for (y, h) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *y = bf16_to_f32(u16::from_le_bytes([h[0], h[1]]));
    }
}

/// BF16 row → f32 over chunks of 8 (a shift; the compiler vectorizes it).
pub fn dequantize_bf16_simd(src: &[u8], dst: &mut [f32]) {
    assert_row(QuantType::BF16, src, dst);
    let body = dst.len() / 8 * 8;
    for (ys, hs) in dst[..body].chunks_exact_mut(8).zip(src[..2 * body].chunks_exact(16)) {
        for (y, h) in ys.iter_mut().zip(hs.chunks_exact(2)) {
            *y = f32::from_bits((u16::from_le_bytes([h[0], h[1]]) as u32) << 16);
        }
    }
    dequantize_bf16_naive(&src[2 * body..], &mut dst[body..]);
}

/// f32 → F16 row (little-endian bytes).
pub fn quantize_f16(src: &[f32], dst: &mut [u8]) {
    assert_eq!(
        dst.len(),
        2 * src.len(),
        "quantize f16: {} values need {} bytes, got {}",
        src.len(),
        2 * src.len(),
        dst.len()
    );
    for (x, h) in src.iter().zip(dst.chunks_exact_mut(2)) {
        h.copy_from_slice(&f32_to_f16(*x).to_le_bytes());
    }
}

/// f32 → BF16 row (little-endian bytes).
pub fn quantize_bf16(src: &[f32], dst: &mut [u8]) {
    assert_eq!(
        dst.len(),
        2 * src.len(),
        "quantize bf16: {} values need {} bytes, got {}",
        src.len(),
        2 * src.len(),
        dst.len()
    );
    for (x, h) in src.iter().zip(dst.chunks_exact_mut(2)) {
        h.copy_from_slice(&f32_to_bf16(*x).to_le_bytes());
    }
}
