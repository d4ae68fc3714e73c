//! What every block format shares: the `Block` trait (a block's type and size), viewing a byte
//! slice as blocks without copying, and reading the little-endian f16 scale fields.
//!
//! Every block struct is `#[repr(C)]` with only byte-array fields, so its alignment is 1: a
//! block can be read straight out of a GGUF mmap or a `Vec<u8>` at any offset.

use super::f16::f16_to_f32;
use super::QuantType;

/// A GGUF block: `#[repr(C)]`, alignment 1, `TYPE.block_bytes()` bytes, every bit pattern valid.
///
/// # Safety
/// Implementors must be `#[repr(C)]` structs of `u8`/`i8` arrays only (alignment 1, no
/// padding, any bit pattern valid) whose size is `TYPE.block_bytes()`.
pub unsafe trait Block: Copy + 'static {
    const TYPE: QuantType;
    /// Values per block.
    const ELEMS: usize;
}

/// Views `bytes` as blocks of `B`. Panics, naming the lengths, if `bytes` is not a whole
/// number of blocks.
pub fn as_blocks<B: Block>(bytes: &[u8]) -> &[B] {
    let size = std::mem::size_of::<B>();
    assert!(
        bytes.len().is_multiple_of(size),
        "{}: {} bytes is not a whole number of {size}-byte blocks",
        B::TYPE,
        bytes.len()
    );
    // SAFETY: B has alignment 1, no padding and every bit pattern valid (Block contract), and
    // the slice covers exactly `bytes.len() / size` blocks.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<B>(), bytes.len() / size) }
}

/// Mutable form of [`as_blocks`].
pub fn as_blocks_mut<B: Block>(bytes: &mut [u8]) -> &mut [B] {
    let size = std::mem::size_of::<B>();
    assert!(
        bytes.len().is_multiple_of(size),
        "{}: {} bytes is not a whole number of {size}-byte blocks",
        B::TYPE,
        bytes.len()
    );
    // SAFETY: as in `as_blocks`; the borrow is unique.
    unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<B>(), bytes.len() / size) }
}

/// The bytes of a block slice (for writing blocks into a GGUF tensor or a `Vec<u8>`).
pub fn blocks_as_bytes<B: Block>(blocks: &[B]) -> &[u8] {
    // SAFETY: B is plain bytes with alignment 1 (Block contract).
    unsafe {
        std::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), std::mem::size_of_val(blocks))
    }
}

/// A little-endian f16 field.
#[inline(always)]
pub fn f16_field(bytes: [u8; 2]) -> f32 {
    f16_to_f32(u16::from_le_bytes(bytes))
}

/// Asserts the contract of a dequantizer: `y` holds exactly the blocks' values.
#[inline]
pub fn assert_dequant_len(t: QuantType, n_blocks: usize, y: &[f32]) {
    assert_eq!(
        y.len(),
        n_blocks * t.block_elems(),
        "dequantize {t}: {n_blocks} blocks hold {} values but the output has {}",
        n_blocks * t.block_elems(),
        y.len()
    );
}

/// Asserts the contract of a quantizer: `x` fills exactly the blocks.
#[inline]
pub fn assert_quant_len(t: QuantType, x: &[f32], n_blocks: usize) {
    assert_eq!(
        x.len(),
        n_blocks * t.block_elems(),
        "quantize {t}: {} values do not fill {n_blocks} blocks of {} (need {})",
        x.len(),
        t.block_elems(),
        n_blocks * t.block_elems()
    );
}

/// Asserts that a weight row and an activation row have the same number of blocks.
#[inline]
pub fn assert_dot_len(w: QuantType, nw: usize, a: QuantType, na: usize) {
    assert_eq!(nw, na, "vec_dot {w} x {a}: {nw} weight blocks but {na} activation blocks");
}

/// ggml's `roundf`-style rounding, half away from zero (what `np_roundf` in gguf-py does).
#[inline(always)]
pub fn round_half_away(x: f32) -> f32 {
    x.round()
}

/// ggml's `nearest_int`: round half to even (valid for |x| < 2^22, all we use it for).
#[inline(always)]
pub fn nearest_int(x: f32) -> i32 {
    x.round_ties_even() as i32
}

/// `Σ a_i·b_i` over 32 signed bytes with `wide`: widen to i16x16, `pmaddwd`-style pairwise
/// products summed into i32x8, then a horizontal add. Exact (|sum| ≤ 32·128·128).
#[inline(always)]
pub fn dot_i8_32(a: &[i8], b: &[i8]) -> i32 {
    (dot_i8_16_lanes(&a[..16], &b[..16]) + dot_i8_16_lanes(&a[16..32], &b[16..32])).reduce_add()
}

/// `Σ a_i·b_i` over 16 signed bytes, as eight i32 partial sums.
#[inline(always)]
pub fn dot_i8_16_lanes(a: &[i8], b: &[i8]) -> wide::i32x8 {
    let a: [i8; 16] = a[..16].try_into().expect("16 values");
    let b: [i8; 16] = b[..16].try_into().expect("16 values");
    let a = wide::i16x16::from_i8x16(wide::i8x16::new(a));
    let b = wide::i16x16::from_i8x16(wide::i8x16::new(b));
    a.dot(b)
}

/// `Σ a_i·b_i` over 16 signed bytes.
#[inline(always)]
pub fn dot_i8_16(a: &[i8], b: &[i8]) -> i32 {
    dot_i8_16_lanes(a, b).reduce_add()
}

/// `y_i = d·q_i` over whole chunks of 8 with `f32x8` (`y.len() == q.len()`, a multiple of 8).
#[inline(always)]
pub fn scale_i8(y: &mut [f32], q: &[i8], d: f32) {
    let d = wide::f32x8::splat(d);
    for (yv, qv) in y.chunks_exact_mut(8).zip(q.chunks_exact(8)) {
        let q = wide::f32x8::new(std::array::from_fn(|i| qv[i] as f32));
        yv.copy_from_slice((d * q).as_array());
    }
}

/// `y_i = d·q_i + m` (multiply, then add: never fused) over whole chunks of 8.
#[inline(always)]
pub fn scale_u8_add(y: &mut [f32], q: &[u8], d: f32, m: f32) {
    let (d, m) = (wide::f32x8::splat(d), wide::f32x8::splat(m));
    for (yv, qv) in y.chunks_exact_mut(8).zip(q.chunks_exact(8)) {
        let q = wide::f32x8::new(std::array::from_fn(|i| qv[i] as f32));
        yv.copy_from_slice((d * q + m).as_array());
    }
}

/// `y_i = d·q_i − m` (multiply, then subtract: never fused) over whole chunks of 8.
#[inline(always)]
pub fn scale_u8_sub(y: &mut [f32], q: &[u8], d: f32, m: f32) {
    let (d, m) = (wide::f32x8::splat(d), wide::f32x8::splat(m));
    for (yv, qv) in y.chunks_exact_mut(8).zip(q.chunks_exact(8)) {
        let q = wide::f32x8::new(std::array::from_fn(|i| qv[i] as f32));
        yv.copy_from_slice((d * q - m).as_array());
    }
}

/// `max |x_i|` (0 for an empty slice), with 8 independent running maxima so the compiler
/// vectorizes it; max is exact, so the result does not depend on the order.
#[inline(always)]
pub fn abs_max(xs: &[f32]) -> f32 {
    let mut m = [0.0f32; 8];
    let body = xs.len() / 8 * 8;
    for c in xs[..body].chunks_exact(8) {
        for i in 0..8 {
            m[i] = m[i].max(c[i].abs());
        }
    }
    let tail = xs[body..].iter().fold(0.0f32, |a, v| a.max(v.abs()));
    m.iter().fold(tail, |a, &v| a.max(v))
}
