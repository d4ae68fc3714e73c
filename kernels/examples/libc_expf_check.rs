//! `ops::libc_expf::expf_libc` against the C library's `expf` on all 2³² inputs (about a
//! minute); prints how many differ and the first few. The unit test checks a sample; this is
//! the whole claim.
//!
//! `cargo run --release -p gllm-kernels --example libc_expf_check`

use gllm_kernels::ops::libc_expf::expf_libc;

fn main() {
    let mut differ = 0u64;
    for bits in 0..=u32::MAX {
        let x = f32::from_bits(bits);
        let (ours, libc) = (expf_libc(x), x.exp());
        if ours.to_bits() != libc.to_bits() && !(ours.is_nan() && libc.is_nan()) {
            if differ < 10 {
                println!("expf({x:e}) [{bits:#010x}]: ours {ours:e}, C library {libc:e}");
            }
            differ += 1;
        }
    }
    println!("{differ} of 2^32 inputs differ from the C library's expf");
    if differ > 0 {
        std::process::exit(1);
    }
}
