//! quant_avx2: x86 kernels (filled in by the op files that need them).
