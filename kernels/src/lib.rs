//! gllm-kernels: CPU kernels for LLM inference.
//!
//! Every op lives in one file under [`ops`] (f32) or [`quant`] (GGUF block formats) and
//! exposes its variants as functions with one signature: `naive` (the specification:
//! plain loops, f64 accumulation) and faster ones (`matrixmultiply`, `simd`, `avx2`,
//! `avx512`, `flash`). The [`registry`] lists every (op, variant) with its availability,
//! a run function over a prepared [`registry::Case`], and `flops`/`bytes` per shape; tests,
//! benchmarks and the `gllm-bench` CLI all walk it. A [`stage::Stage`] is a named,
//! cumulative choice of variant per op.

pub mod arch;
pub mod cpu;
pub mod ops;
pub mod quant;
pub mod registry;
pub mod stage;
pub mod threads;
pub mod tolerance;
