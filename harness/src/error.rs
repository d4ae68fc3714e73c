//! Harness errors: every one names the file, field or flag involved, and maps to exit code 3.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug)]
pub enum HarnessError {
    /// Bad command-line input that clap could not catch (bad regex, unknown stage, ...).
    Usage(String),
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    /// A JSON file that does not parse or lacks a field; `field` is a JSON path.
    Corrupt {
        path: PathBuf,
        field: String,
        message: String,
    },
    /// A baseline written by another schema version.
    SchemaVersion {
        path: PathBuf,
        found: String,
        supported: u32,
    },
    /// Something the harness itself could not do (e.g. nothing measurable).
    Harness(String),
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarnessError::Usage(m) => write!(f, "usage: {m}"),
            HarnessError::Io { path, action, source } => {
                write!(f, "{}: cannot {action}: {source}", path.display())
            }
            HarnessError::Corrupt { path, field, message } => {
                write!(f, "{}: field `{field}`: {message}", path.display())
            }
            HarnessError::SchemaVersion { path, found, supported } => write!(
                f,
                "{}: field `schema_version`: found {found}, this gllm-bench reads version \
                 {supported} (re-create the file with this version, or use the gllm-bench that wrote it)",
                path.display()
            ),
            HarnessError::Harness(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for HarnessError {}

impl HarnessError {
    pub fn io(path: impl Into<PathBuf>, action: &'static str, source: std::io::Error) -> Self {
        HarnessError::Io { path: path.into(), action, source }
    }
}
