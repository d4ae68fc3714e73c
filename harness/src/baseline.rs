//! Result files and baselines: versioned JSON (serde), validated against the shipped JSON
//! Schema on load, written atomically, stored per machine under `baselines/<machine-id>/`.
//!
//! One format serves `run -o`, `compare --json`, `baseline save` and the inputs of `report`
//! and `export`: a [`ResultFile`] with the build, the machine, its measured peaks, the
//! resolved stages, every measured case (raw samples kept) and the stage comparisons.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::HarnessError;
use crate::machine::{Fingerprint, Peaks};
use crate::schema;
use crate::stats::{Interval, Outliers, Ratio};

/// The version written and the only one read. Bump on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// The JSON Schema of [`ResultFile`], shipped as `harness/schema/baseline.schema.json`.
pub const SCHEMA_JSON: &str = include_str!("../schema/baseline.schema.json");

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultFile {
    pub schema_version: u32,
    /// RFC 3339, UTC.
    pub created: String,
    /// The command line that produced the file.
    pub command: String,
    /// The baseline name given to `--save` / `baseline save`, if any.
    pub name: Option<String>,
    pub git: GitInfo,
    pub rustc: String,
    /// Cargo profile of the measuring binary (`release` is the only one worth comparing).
    pub profile: String,
    pub machine: Fingerprint,
    pub peaks: Peaks,
    /// Threads requested (`--threads`); op kernels are single-threaded.
    pub threads: usize,
    pub settings: Settings,
    pub stages: Vec<StageRecord>,
    pub cases: Vec<CaseRecord>,
    pub comparisons: Vec<Comparison>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GitInfo {
    /// `None` outside a git checkout.
    pub sha: Option<String>,
    /// Tracked files modified since `sha`.
    pub dirty: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub quick: bool,
    pub samples: usize,
    pub min_samples: usize,
    pub warmup_ms: f64,
    pub min_sample_ms: f64,
    pub time_cap_ms: f64,
    pub timer_resolution_ns: f64,
    /// `model`, `sweep` or `all`.
    pub case_set: String,
    /// `auto`, `hot`, `cold` or `both`.
    pub cache: String,
    pub filter: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    pub name: String,
    pub summary: String,
    /// Root first, this stage last.
    pub chain: Vec<String>,
    /// op → chosen variant.
    pub choices: BTreeMap<String, String>,
}

/// What kind of case a record is. End-to-end model cases (tokens/s) will be another kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseKind {
    Op,
    EndToEnd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationStatus {
    /// Agrees with naive within the op's tolerance, guard zones intact.
    Passed,
    Failed,
    /// The naive variant itself: the reference.
    Reference,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub status: VerificationStatus,
    /// The tolerance metric, e.g. `ulp<=4`.
    pub metric: String,
    pub worst_error: Option<f64>,
    /// Why it failed (index, got, want, or the guard offset).
    pub detail: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseRecord {
    /// `op(variant=v,k=v,...,cache=hot)`.
    pub id: String,
    pub kind: CaseKind,
    pub op: String,
    pub variant: String,
    /// The stages (of this file) that choose this variant for this op.
    pub stages: Vec<String>,
    /// `n=576,rows=1`, dimensions in the op's order.
    pub shape: String,
    pub dims: BTreeMap<String, u64>,
    /// `hot` (one buffer reused) or `cold` (rotation over > 2 × L3).
    pub cache: String,
    /// `model` or `sweep`.
    pub case_set: String,
    /// `GFLOP/s`, `GB/s` or `tokens/s`.
    pub unit: String,
    pub flops_per_iter: f64,
    pub bytes_per_iter: f64,
    /// Bytes of one prepared case (inputs and output), for the cache level it lives in.
    pub working_set_bytes: f64,
    pub verification: Verification,
    /// Absent when verification failed: no speed is reported for a wrong variant.
    pub timing: Option<Timing>,
    /// End-to-end cases: the model file, its hash and configuration (absent for op cases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<crate::e2e::ModelRecord>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub iterations_per_sample: u64,
    /// Raw samples, nanoseconds per iteration, in measurement order.
    pub samples_ns: Vec<f64>,
    pub median_ns: f64,
    pub mad_ns: f64,
    pub min_ns: f64,
    pub mean_ns: f64,
    pub ci95_ns: Interval,
    pub outliers: Outliers,
    /// In `unit`, from the median time.
    pub throughput: f64,
    pub throughput_ci95: Interval,
    /// The roofline limit in `unit` for this case on this machine.
    pub limit: f64,
    /// `100 × limit time / median time`.
    pub percent_of_limit: f64,
    /// How the limit was derived, e.g. `DRAM 24.1 GB/s`.
    pub limit_basis: String,
}

/// One case measured under every stage of a comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The case id without the variant: `add(n=576,cache=hot)`.
    pub group: String,
    pub kind: CaseKind,
    pub op: String,
    pub shape: String,
    pub cache: String,
    pub unit: String,
    pub entries: Vec<StageEntry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageEntry {
    pub stage: String,
    pub variant: String,
    pub case_id: String,
    /// False when the variant failed verification: no numbers then.
    pub verified: bool,
    pub median_ns: Option<f64>,
    pub throughput: Option<f64>,
    pub percent_of_limit: Option<f64>,
    /// `time(first stage) / time(this stage)`, paired bootstrap CI: > 1 is faster.
    pub speedup_vs_first: Option<Ratio>,
    pub speedup_vs_previous: Option<Ratio>,
}

impl ResultFile {
    pub fn case(&self, id: &str) -> Option<&CaseRecord> {
        self.cases.iter().find(|c| c.id == id)
    }
}

/// RFC 3339 UTC time of now, to the second: `2026-11-24T14:30:00Z`.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    rfc3339(secs)
}

/// Formats seconds since the Unix epoch (days-from-civil inverse, Hinnant's algorithm).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The checkout's HEAD and whether tracked files differ from it (None outside git).
pub fn git_info() -> GitInfo {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let sha = run(&["rev-parse", "HEAD"]);
    let dirty = sha
        .as_ref()
        .and_then(|_| run(&["status", "--porcelain", "--untracked-files=no"]))
        .map(|s| !s.is_empty());
    GitInfo { sha, dirty }
}

/// The rustc that built this binary (recorded by build.rs).
pub fn rustc_version() -> &'static str {
    env!("GLLM_BENCH_RUSTC")
}

/// The cargo profile of this binary (recorded by build.rs).
pub fn profile() -> &'static str {
    env!("GLLM_BENCH_PROFILE")
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it over `path`:
/// readers see the old file or the new one, never a partial one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), HarnessError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| HarnessError::io(&dir, "create directory", e))?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(HarnessError::io(path, "write", e));
    }
    Ok(())
}

pub fn save(path: &Path, result: &ResultFile) -> Result<(), HarnessError> {
    let text = serde_json::to_string_pretty(result).expect("result files serialize");
    write_atomic(path, text.as_bytes())
}

/// Reads a result file: JSON syntax, then `schema_version`, then the JSON Schema (errors
/// name the field by its JSON path), then the typed structure.
pub fn load(path: &Path) -> Result<ResultFile, HarnessError> {
    let text = std::fs::read_to_string(path).map_err(|e| HarnessError::io(path, "read", e))?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> Result<ResultFile, HarnessError> {
    let corrupt = |field: &str, message: String| HarnessError::Corrupt {
        path: path.to_path_buf(),
        field: field.to_string(),
        message,
    };
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        corrupt(
            "(document)",
            format!("not valid JSON at line {} column {}: {e}", e.line(), e.column()),
        )
    })?;
    match value.get("schema_version") {
        None => {
            return Err(corrupt("schema_version", "missing: not a gllm-bench result file".into()))
        }
        Some(v) if v.as_u64() == Some(SCHEMA_VERSION as u64) => {}
        Some(v) => {
            return Err(HarnessError::SchemaVersion {
                path: path.to_path_buf(),
                found: v.to_string(),
                supported: SCHEMA_VERSION,
            })
        }
    }
    let schema: serde_json::Value =
        serde_json::from_str(SCHEMA_JSON).expect("the shipped schema is valid JSON");
    if let Some(err) = schema::validate(&schema, &value).into_iter().next() {
        return Err(corrupt(&err.path, err.message));
    }
    serde_json::from_value(value).map_err(|e| corrupt("(document)", e.to_string()))
}

/// The folder of committed baselines: `$GLLM_BASELINES_DIR`, else `baselines/` in the
/// nearest ancestor of the current directory that is the workspace root, else `./baselines`.
pub fn baselines_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("GLLM_BASELINES_DIR") {
        return PathBuf::from(dir);
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    for dir in cwd.ancestors() {
        if dir.join("Cargo.toml").is_file() && dir.join("harness").is_dir() {
            return dir.join("baselines");
        }
    }
    cwd.join("baselines")
}

/// Baseline names are file stems: letters, digits, `-`, `_`, `.`.
pub fn check_name(name: &str) -> Result<(), HarnessError> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(HarnessError::Usage(format!(
            "baseline name `{name}`: use letters, digits, `-`, `_` and `.` only"
        )))
    }
}

pub fn baseline_path(root: &Path, machine_id: &str, name: &str) -> PathBuf {
    root.join(machine_id).join(format!("{name}.json"))
}

/// `(machine id, name, path)` of every stored baseline, sorted.
pub fn list_baselines(root: &Path) -> Vec<(String, String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(machines) = std::fs::read_dir(root) else { return out };
    for m in machines.flatten().filter(|e| e.path().is_dir()) {
        let Ok(files) = std::fs::read_dir(m.path()) else { continue };
        for f in files.flatten() {
            let p = f.path();
            if p.extension().is_some_and(|e| e == "json") {
                let name = p.file_stem().unwrap_or_default().to_string_lossy().to_string();
                out.push((m.file_name().to_string_lossy().to_string(), name, p));
            }
        }
    }
    out.sort();
    out
}

/// Finds a baseline by name (for this machine first) or takes `name` as a path.
pub fn resolve(root: &Path, machine_id: &str, name: &str) -> Result<PathBuf, HarnessError> {
    let as_path = Path::new(name);
    if name.ends_with(".json") || name.contains('/') {
        if as_path.is_file() {
            return Ok(as_path.to_path_buf());
        }
        return Err(HarnessError::io(
            as_path,
            "read",
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        ));
    }
    let mine = baseline_path(root, machine_id, name);
    if mine.is_file() {
        return Ok(mine);
    }
    let others: Vec<PathBuf> =
        list_baselines(root).into_iter().filter(|(_, n, _)| n == name).map(|(_, _, p)| p).collect();
    match others.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(HarnessError::Usage(format!(
            "no baseline `{name}` in {} (looked for {})",
            root.display(),
            mine.display()
        ))),
        many => Err(HarnessError::Usage(format!(
            "baseline `{name}` exists for several machines, give a path: {}",
            many.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("main-2026.11").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn atomic_write_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub").join("x.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        let leftovers: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }
}
