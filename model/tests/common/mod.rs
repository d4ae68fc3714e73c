//! Helpers shared by the model crate's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

pub const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The real SmolLM2 file: `$GLLM_MODEL`, else `models/<file>` in the workspace or in a folder
/// above it (git worktrees share one copy). Prints a visible SKIP line to stderr, past the test
/// harness's capture, and returns `None` when absent.
pub fn real_model(test: &str) -> Option<PathBuf> {
    use std::io::Write;
    if let Some(p) = std::env::var_os("GLLM_MODEL") {
        let p = PathBuf::from(p);
        if p.exists() {
            return Some(p);
        }
        let _ =
            writeln!(std::io::stderr(), "SKIP: {test}: GLLM_MODEL={} does not exist", p.display());
        return None;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let found =
        workspace.ancestors().map(|d| d.join("models").join(MODEL_FILE)).find(|p| p.exists());
    if found.is_none() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIP: {test}: {MODEL_FILE} not found in <workspace>/models (run ci/fetch-model.sh or set GLLM_MODEL)"
        );
    }
    found
}

/// IEEE binary16 → f32 (test-only reference; subnormals, inf and NaN included).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f32::from(h & 0x3ff);
    match exp {
        0 => sign * frac * 2f32.powi(-24),
        31 if frac == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f32.powi(e - 15),
    }
}
