//! Seeded random blocks for test cases and benchmarks: what a real tensor of each format
//! looks like, without a model file.
//!
//! Formats with a reference quantizer get quantized uniform values (so Q8_0 never holds
//! −128, exactly like real data); the other K-quants get random bytes with finite, small f16
//! super-block scales (as gguf-py's fixtures do), which exercises every bit pattern of their
//! packed quants and sub-block scales.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::f16::f32_to_f16;
use super::{quantize_row, QuantType};

/// `n` values uniform in `[-1, 1)`, each block of 32 scaled by its own factor in `[0.05, 2)`
/// so blocks differ in range as real rows do.
pub fn values(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    let mut x = Vec::with_capacity(n);
    while x.len() < n {
        let scale: f32 = rng.gen_range(0.05..2.0);
        for _ in 0..32.min(n - x.len()) {
            x.push(rng.gen_range(-1.0f32..1.0) * scale);
        }
    }
    x
}

/// `n_blocks` random blocks of `t` (for F16/BF16/F32: `n_blocks` values).
pub fn blocks(t: QuantType, n_blocks: usize, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let n = n_blocks * t.block_elems();
    let mut out = vec![0u8; n_blocks * t.block_bytes()];
    let random_bytes = matches!(
        t,
        QuantType::Q2K | QuantType::Q3K | QuantType::Q4K | QuantType::Q5K | QuantType::Q6K
    );
    if t == QuantType::F32 {
        for (b, v) in out.chunks_exact_mut(4).zip(values(rng, n)) {
            b.copy_from_slice(&v.to_le_bytes());
        }
    } else if !random_bytes {
        quantize_row(t, &values(rng, n), &mut out).expect("a format with a quantizer");
    } else {
        rng.fill(&mut out[..]);
        let bb = t.block_bytes();
        // (offset of d, offset of dmin if any)
        let (d_at, dmin_at) = match t {
            QuantType::Q2K => (80, Some(82)),
            QuantType::Q3K => (108, None),
            QuantType::Q4K | QuantType::Q5K => (0, Some(2)),
            _ => (208, None),
        };
        for block in out.chunks_exact_mut(bb) {
            let d: f32 = rng.gen_range(0.0005..0.005) * if rng.gen_bool(0.5) { 1.0 } else { -1.0 };
            block[d_at..d_at + 2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
            if let Some(at) = dmin_at {
                let dmin: f32 = rng.gen_range(0.0005..0.005);
                block[at..at + 2].copy_from_slice(&f32_to_f16(dmin).to_le_bytes());
            }
        }
    }
    out
}
