//! CPU feature detection (once, at first use) and the features this build was compiled with.
//!
//! `wide` and the compiler's auto-vectorisation use the *compiled* features; hand-written
//! `arch/` kernels are selected from the *detected* ones. Results record both.

use std::sync::OnceLock;

/// The x86 features that matter to our kernels. On other architectures every flag is false.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    pub sse4_2: bool,
    pub avx: bool,
    pub avx2: bool,
    pub fma: bool,
    pub f16c: bool,
    pub avx512f: bool,
    pub avx512bw: bool,
    pub avx512vl: bool,
    pub avx512vnni: bool,
    pub avx512bf16: bool,
    pub avxvnni: bool,
}

impl CpuFeatures {
    /// `(name, present)` for every flag, in a fixed order (used for printing and JSON).
    pub fn flags(&self) -> [(&'static str, bool); 11] {
        [
            ("sse4.2", self.sse4_2),
            ("avx", self.avx),
            ("avx2", self.avx2),
            ("fma", self.fma),
            ("f16c", self.f16c),
            ("avx512f", self.avx512f),
            ("avx512bw", self.avx512bw),
            ("avx512vl", self.avx512vl),
            ("avx512vnni", self.avx512vnni),
            ("avx512bf16", self.avx512bf16),
            ("avxvnni", self.avxvnni),
        ]
    }

    /// The names of the present flags, e.g. `["avx2", "fma", ...]`.
    pub fn names(&self) -> Vec<&'static str> {
        self.flags().iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect()
    }

    /// AVX2 + FMA: what our `avx2` kernels and an x86-64-v3 build need.
    pub fn has_avx2_fma(&self) -> bool {
        self.avx2 && self.fma
    }

    /// AVX2 + FMA + F16C: what the block-format kernels need (f16 scales by `vcvtph2ps`).
    pub fn has_avx2_f16c(&self) -> bool {
        self.has_avx2_fma() && self.f16c
    }

    /// AVX-512 F + BW + VL: what our `avx512` kernels need.
    pub fn has_avx512(&self) -> bool {
        self.avx512f && self.avx512bw && self.avx512vl
    }

    /// AVX-512 F + BW + VL + VNNI, on top of AVX2 + FMA + F16C: what the block-format `avx512`
    /// kernels need (`vpdpbusd`, and f16 scales by `vcvtph2ps`).
    pub fn has_avx512_vnni(&self) -> bool {
        self.has_avx512() && self.avx512vnni && self.has_avx2_f16c()
    }
}

/// Features detected on the running CPU (cached after the first call).
///
/// Under valgrind, CPUID reports no AVX-512, so the AVX2 paths are chosen.
pub fn detected() -> &'static CpuFeatures {
    static DETECTED: OnceLock<CpuFeatures> = OnceLock::new();
    DETECTED.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> CpuFeatures {
    CpuFeatures {
        sse4_2: is_x86_feature_detected!("sse4.2"),
        avx: is_x86_feature_detected!("avx"),
        avx2: is_x86_feature_detected!("avx2"),
        fma: is_x86_feature_detected!("fma"),
        f16c: is_x86_feature_detected!("f16c"),
        avx512f: is_x86_feature_detected!("avx512f"),
        avx512bw: is_x86_feature_detected!("avx512bw"),
        avx512vl: is_x86_feature_detected!("avx512vl"),
        avx512vnni: is_x86_feature_detected!("avx512vnni"),
        avx512bf16: is_x86_feature_detected!("avx512bf16"),
        avxvnni: is_x86_feature_detected!("avxvnni"),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> CpuFeatures {
    CpuFeatures::default()
}

/// Features this crate was compiled with (`-C target-cpu` / `target-feature`).
pub const fn compiled() -> CpuFeatures {
    CpuFeatures {
        sse4_2: cfg!(target_feature = "sse4.2"),
        avx: cfg!(target_feature = "avx"),
        avx2: cfg!(target_feature = "avx2"),
        fma: cfg!(target_feature = "fma"),
        f16c: cfg!(target_feature = "f16c"),
        avx512f: cfg!(target_feature = "avx512f"),
        avx512bw: cfg!(target_feature = "avx512bw"),
        avx512vl: cfg!(target_feature = "avx512vl"),
        avx512vnni: cfg!(target_feature = "avx512vnni"),
        avx512bf16: cfg!(target_feature = "avx512bf16"),
        avxvnni: cfg!(target_feature = "avxvnni"),
    }
}

/// The CPU's marketing name (`model name` of /proc/cpuinfo), or "unknown".
pub fn model_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_features_are_detected_features() {
        // A binary can only run if the CPU has what it was compiled for.
        let (c, d) = (compiled(), *detected());
        for ((name, want), (_, have)) in c.flags().iter().zip(d.flags().iter()) {
            assert!(!want || *have, "compiled with {name} but the CPU does not report it");
        }
    }
}
