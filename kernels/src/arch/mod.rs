//! Hand-written x86 intrinsics behind runtime detection (see `crate::cpu`).
//!
//! Each function is `unsafe` with `#[target_feature]`; the safe public kernels in `ops/` and
//! `quant/` check availability once and call in. f32 kernels and block-format kernels live in
//! separate files so the two can evolve independently. AVX-512 kernels (`*_avx512`) are
//! compiled with `#[target_feature(enable = "avx512f,...")]` on top of the x86-64-v3 build and
//! chosen only where the CPU reports those features. They sit beside the AVX2 kernels and never
//! replace them: valgrind (the CI gate's instruction counts) cannot run AVX-512 and its CPUID
//! reports none, so every op keeps a path without it.

#[cfg(target_arch = "x86_64")]
pub mod activations_avx512;
#[cfg(target_arch = "x86_64")]
pub(crate) mod attention_avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod attention_flash_avx2;
#[cfg(target_arch = "x86_64")]
pub mod f32_avx2;
#[cfg(target_arch = "x86_64")]
pub mod f32_packed_avx2;
#[cfg(target_arch = "x86_64")]
pub mod q4_1x8_avx2;
#[cfg(target_arch = "x86_64")]
pub mod q4_1x8_avx512;
#[cfg(target_arch = "x86_64")]
pub mod q8_0x16_avx512;
#[cfg(target_arch = "x86_64")]
mod qgemv_avx2;
#[cfg(target_arch = "x86_64")]
pub mod quant_avx2;
