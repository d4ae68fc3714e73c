//! quant_avx512: x86 kernels (filled in by the op files that need them).
