//! Errors of the GGUF reader and writer. Every format error names the file, the byte offset
//! and the field being read.

use std::path::PathBuf;

use thiserror::Error;

/// What was wrong with the bytes at a given offset.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FormatError {
    #[error("file truncated: need {needed} bytes, only {available} left")]
    Truncated { needed: u64, available: u64 },
    #[error("bad magic {found:#010x} (expected \"GGUF\")")]
    BadMagic { found: u32 },
    #[error("unsupported version {found} (supported: 2, 3){hint}")]
    UnsupportedVersion { found: u32, hint: &'static str },
    #[error("unknown metadata value type {id}")]
    UnknownValueType { id: u32 },
    #[error("unknown tensor type id {id}")]
    UnknownTensorType { id: u32 },
    #[error("string is not valid UTF-8 (at byte {valid_up_to} of the string)")]
    InvalidUtf8 { valid_up_to: usize },
    #[error("{what} {value} is too large: at most {limit} fit in the rest of the file")]
    CountTooLarge { what: &'static str, value: u64, limit: u64 },
    #[error("arrays nested deeper than {limit} levels")]
    NestingTooDeep { limit: usize },
    #[error("duplicate {what} `{name}`")]
    Duplicate { what: &'static str, name: String },
    #[error("general.alignment must be a power of two of type UINT32, found {found}")]
    BadAlignment { found: String },
    #[error("{n_dims} dimensions (at most {limit} supported)")]
    TooManyDims { n_dims: u32, limit: u32 },
    #[error("shape {dims:?} has an invalid element count: {reason}")]
    BadShape { dims: Vec<u64>, reason: String },
    #[error("offset {offset} is not a multiple of the alignment {alignment}")]
    Misaligned { offset: u64, alignment: u64 },
    #[error(
        "data [{start}, {end}) lies outside the file's tensor data (which ends at {data_end})"
    )]
    OutOfBounds { start: u64, end: u64, data_end: u64 },
    #[error("data [{start}, {end}) overlaps tensor `{other}` [{other_start}, {other_end})")]
    Overlap { start: u64, end: u64, other: String, other_start: u64, other_end: u64 },
}

#[derive(Debug, Error)]
pub enum GgufError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: at offset {offset}, {field}: {kind}", path.display())]
    Format { path: PathBuf, offset: u64, field: String, kind: FormatError },
    #[error("{}: metadata key `{key}` is missing", path.display())]
    MissingKey { path: PathBuf, key: String },
    #[error("{}: metadata key `{key}` has type {found}, expected {expected}", path.display())]
    WrongType { path: PathBuf, key: String, expected: String, found: String },
    #[error("{}: metadata key `{key}`: {message}", path.display())]
    BadValue { path: PathBuf, key: String, message: String },
    #[error("{}: no tensor named `{name}`", path.display())]
    MissingTensor { path: PathBuf, name: String },
    #[error("{}: cannot write: {message}", path.display())]
    Write { path: PathBuf, message: String },
}

impl GgufError {
    /// The format error, if this is one (tests match on the kind).
    pub fn format_kind(&self) -> Option<&FormatError> {
        match self {
            GgufError::Format { kind, .. } => Some(kind),
            _ => None,
        }
    }
}
