//! Hand-written x86 intrinsics behind runtime detection (see `crate::cpu`).
//!
//! Each function is `unsafe` with `#[target_feature]`; the safe public kernels in `ops/` and
//! `quant/` check availability once and call in. f32 kernels and block-format kernels live in
//! separate files so the two can evolve independently. There is no AVX-512 file: the machines
//! this project is developed and tested on expose AVX2 only, and untested kernels are not
//! shipped (`registry::needs_avx512*` are ready for when one is added with its tests).

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
