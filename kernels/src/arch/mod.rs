//! Hand-written x86 intrinsics behind runtime detection (see `crate::cpu`).
//!
//! Each function is `unsafe` with `#[target_feature]`; the safe public kernels in `ops/` and
//! `quant/` check availability once and call in. f32 kernels and block-format kernels live in
//! separate files so the two can evolve independently. AVX-512 kernels sit beside the AVX2 ones
//! and never replace them: valgrind (the CI gate's instruction counts) cannot run AVX-512, so
//! every op keeps a path without it.

#[cfg(target_arch = "x86_64")]
pub mod activations_avx512;
#[cfg(target_arch = "x86_64")]
pub(crate) mod attention_avx2;
#[cfg(target_arch = "x86_64")]
pub mod f32_avx2;
#[cfg(target_arch = "x86_64")]
pub mod f32_packed_avx2;
#[cfg(target_arch = "x86_64")]
pub mod q4_1x8_avx2;
#[cfg(target_arch = "x86_64")]
mod qgemv_avx2;
#[cfg(target_arch = "x86_64")]
pub mod quant_avx2;
