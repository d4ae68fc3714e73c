//! gllm-bench as a library: measurement, statistics, baselines and reports, reused by the
//! `gllm-bench` binary and the CI gate.

pub mod measure;
pub mod stats;
