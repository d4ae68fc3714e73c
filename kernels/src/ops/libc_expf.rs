//! The C library's `expf` as llama.cpp's CPU attention calls it, reproduced to the bit:
//! glibc's x86-64 `expf` in the form its `ifunc` picks on CPUs with FMA and AVX2.
//!
//! Why: ggml's flash attention takes one `expf` per query and key for its online softmax,
//! and the `quantized` stage must give llama.cpp's bits ([`super::ggml`]). A call into the
//! shared C library per (query, key) cannot be inlined; this one can, and it made the
//! attention's prefill about 10 % faster with the same bits.
//!
//! The method (glibc's, from its `e_expf.c`; every step in f64, `N` = 32):
//! ```text
//! z  = fma(N/ln2, x, 0x1.8p52)          k = low bits of z (round(x·N/ln2))
//! kd = z − 0x1.8p52                     r = fma(N/ln2, x, −kd)        (|r| ≤ 1/2)
//! s  = bits(T[k mod N] + (k << 47))     (= 2^(k/N): see [`TABLE`])
//! y  = fma(fma(r, C0, C1), r·r, fma(r, C2, 1)) · s
//! expf(x) = (f32) y
//! ```
//! Inputs with `|x| ≥ 88` that leave this path: `−∞ → +0`, `x < −103.972… → +0`,
//! `x < −103.279… →` the least subnormal (glibc's "may underflow" value), `x > 88.7228… →
//! +∞`, NaN and `+∞` → `x + x`.
//!
//! `tests/ggml_arithmetic.rs` checks it against the C library's `expf` on a sample of every
//! f32 range; `examples/libc_expf_check.rs` checks all 2³² inputs (equal on every one with
//! glibc 2.36 here).

/// `N / ln 2`, `N` = 32.
const INV_LN2_N: f64 = f64::from_bits(0x4047_1547_652b_82fe);
/// `1.5 · 2^52`: adding it rounds to an integer held in the low bits.
const SHIFT: f64 = f64::from_bits(0x4338_0000_0000_0000);
/// The polynomial's coefficients, `2^r` on `r·ln2/N`, scaled (glibc's `poly_scaled`).
const C0: f64 = f64::from_bits(0x3ebc_6af8_4b91_2394);
const C1: f64 = f64::from_bits(0x3f2e_bfce_50fa_c4f3);
const C2: f64 = f64::from_bits(0x3f96_2e42_ff0c_52d6);
/// `T[i]` = the bits of `2^(i/32)` minus `i << 47` (so that adding `k << 47` for any `k`
/// with `k mod 32 = i` gives `2^(k/32)`).
const TABLE: [u64; 32] = [
    0x3ff0000000000000,
    0x3fefd9b0d3158574,
    0x3fefb5586cf9890f,
    0x3fef9301d0125b51,
    0x3fef72b83c7d517b,
    0x3fef54873168b9aa,
    0x3fef387a6e756238,
    0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715,
    0x3feef1a7373aa9cb,
    0x3feedea64c123422,
    0x3feece086061892d,
    0x3feebfdad5362a27,
    0x3feeb42b569d4f82,
    0x3feeab07dd485429,
    0x3feea47eb03a5585,
    0x3feea09e667f3bcd,
    0x3fee9f75e8ec5f74,
    0x3feea11473eb0187,
    0x3feea589994cce13,
    0x3feeace5422aa0db,
    0x3feeb737b0cdc5e5,
    0x3feec49182a3f090,
    0x3feed503b23e255d,
    0x3feee89f995ad3ad,
    0x3feeff76f2fb5e47,
    0x3fef199bdd85529c,
    0x3fef3720dcef9069,
    0x3fef5818dcfba487,
    0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da,
    0x3fefd0765b6e4540,
];
/// Above this, `+∞`.
const OVERFLOW: f32 = f32::from_bits(0x42b1_7217);
/// Below this, `+0`.
const UNDERFLOW: f32 = f32::from_bits(0xc2cf_f1b4);
/// Below this (and not below [`UNDERFLOW`]), the least subnormal.
const MAY_UNDERFLOW: f32 = f32::from_bits(0xc2ce_8ecf);

/// glibc's `expf` (FMA form), one value: see the module docs.
pub fn expf_libc(x: f32) -> f32 {
    // |x| ≥ 88 (or NaN): the edges
    if (x.to_bits() >> 20) & 0x7ff > 0x42a {
        if x.is_nan() || x == f32::INFINITY {
            return x + x;
        }
        if x > OVERFLOW {
            return f32::INFINITY;
        }
        if x < UNDERFLOW {
            return 0.0;
        }
        if x < MAY_UNDERFLOW {
            return f32::from_bits(1);
        }
    }
    let xd = x as f64;
    let z = INV_LN2_N.mul_add(xd, SHIFT);
    let k = z.to_bits();
    let kd = z - SHIFT;
    let r = INV_LN2_N.mul_add(xd, -kd);
    let s = f64::from_bits(TABLE[(k % 32) as usize].wrapping_add(k << 47));
    let y = r.mul_add(C0, C1).mul_add(r * r, r.mul_add(C2, 1.0));
    (y * s) as f32
}
