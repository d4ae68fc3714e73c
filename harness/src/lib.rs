//! gllm-bench as a library: measurement, statistics, baselines and reports, reused by the
//! `gllm-bench` binary and the CI gate.
//!
//! - [`measure`]: timing only (warm-up, sample sizing, interleaved rounds, hot/cold).
//! - [`stats`]: pure statistics (median, MAD, bootstrap CIs of medians and ratios, outliers).
//! - [`cases`]: benchmark cases drawn from the kernel registry, their verification.
//! - [`runner`]: verify + measure a plan of cases under one or several stages.
//! - [`machine`]: fingerprint and measured peaks (FMA, bandwidth), cached.
//! - [`baseline`]: the versioned JSON result format, atomic I/O, the baseline store.
//! - [`schema`]: a small JSON Schema validator for result files.

pub mod baseline;
pub mod cases;
pub mod e2e;
pub mod error;
pub mod gate;
pub mod machine;
pub mod measure;
pub mod report;
pub mod runner;
pub mod schema;
pub mod stats;
