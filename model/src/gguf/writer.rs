//! GGUF v3 writer: metadata of every type, tensors of any `QuantType` given as raw bytes,
//! alignment; files are written to a temporary path next to the target and renamed into place.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use gllm_kernels::quant::QuantType;

use super::error::GgufError;
use super::reader::{DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_ARRAY_NESTING, MAX_DIMS};
use super::value::Value;

struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    ty: QuantType,
    data: Vec<u8>,
}

/// Collects metadata and tensors, then writes one GGUF v3 file.
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    tensors: Vec<PendingTensor>,
    alignment: u64,
}

impl std::fmt::Debug for GgufWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufWriter")
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("alignment", &self.alignment)
            .finish()
    }
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

fn invalid(message: String) -> GgufError {
    GgufError::Write { path: PathBuf::from("<gguf writer>"), message }
}

fn check_value(key: &str, value: &Value, depth: usize) -> Result<(), GgufError> {
    if let Value::Array(elem, items) = value {
        if depth >= MAX_ARRAY_NESTING {
            return Err(invalid(format!(
                "`{key}`: arrays nested deeper than {MAX_ARRAY_NESTING} levels"
            )));
        }
        for item in items {
            if item.value_type() != *elem {
                return Err(invalid(format!(
                    "`{key}`: array of {elem} holds a {}",
                    item.type_description()
                )));
            }
            check_value(key, item, depth + 1)?;
        }
    }
    Ok(())
}

impl GgufWriter {
    pub fn new() -> Self {
        GgufWriter { metadata: Vec::new(), tensors: Vec::new(), alignment: DEFAULT_ALIGNMENT }
    }

    /// Set `key` (replacing an earlier value of the same key, keeping its position).
    pub fn add(&mut self, key: impl Into<String>, value: Value) -> &mut Self {
        let key = key.into();
        if key == "general.alignment" {
            if let Value::U32(a) = value {
                if a.is_power_of_two() {
                    self.alignment = u64::from(a);
                }
            }
        }
        match self.metadata.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.metadata.push((key, value)),
        }
        self
    }

    /// Align tensor data to `alignment` bytes (a power of two); writes `general.alignment`.
    pub fn set_alignment(&mut self, alignment: u32) -> Result<&mut Self, GgufError> {
        if !alignment.is_power_of_two() {
            return Err(invalid(format!("alignment {alignment} is not a power of two")));
        }
        self.add("general.alignment", Value::U32(alignment));
        Ok(self)
    }

    /// Add a tensor of type `ty` with ggml-order `dims` (`dims[0]` contiguous) whose raw bytes
    /// (blocks exactly as in GGUF) are `data`.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dims: &[u64],
        ty: QuantType,
        data: impl Into<Vec<u8>>,
    ) -> Result<&mut Self, GgufError> {
        let name = name.into();
        let data = data.into();
        if dims.len() > MAX_DIMS as usize {
            return Err(invalid(format!(
                "tensor `{name}`: {} dimensions (at most {MAX_DIMS})",
                dims.len()
            )));
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(invalid(format!("duplicate tensor name `{name}`")));
        }
        let n_elements = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        let row = dims.first().copied().unwrap_or(1);
        let expected =
            n_elements.filter(|_| row % ty.block_elems() as u64 == 0).and_then(|n| ty.bytes_for(n));
        match expected {
            Some(n) if n == data.len() as u64 => {}
            Some(n) => {
                return Err(invalid(format!(
                    "tensor `{name}` {dims:?} {ty}: {} bytes given, {n} expected",
                    data.len()
                )))
            }
            None => {
                return Err(invalid(format!(
                    "tensor `{name}`: shape {dims:?} does not fit whole {ty} blocks of {}",
                    ty.block_elems()
                )))
            }
        }
        self.tensors.push(PendingTensor { name, dims: dims.to_vec(), ty, data });
        Ok(self)
    }

    fn check(&self) -> Result<(), GgufError> {
        for (key, value) in &self.metadata {
            check_value(key, value, 0)?;
        }
        if let Some((_, v)) = self.metadata.iter().find(|(k, _)| k == "general.alignment") {
            if !matches!(v, Value::U32(a) if a.is_power_of_two()) {
                return Err(invalid(format!(
                    "general.alignment must be a power-of-two UINT32, is {} {v}",
                    v.type_description()
                )));
            }
        }
        Ok(())
    }

    /// Serialize to `out`.
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut buf = Vec::new();
        buf.extend_from_slice(&GGUF_MAGIC.to_le_bytes());
        buf.extend_from_slice(&3u32.to_le_bytes());
        buf.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        buf.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            encode_string(&mut buf, key);
            buf.extend_from_slice(&value.value_type().id().to_le_bytes());
            encode_value(&mut buf, value);
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            encode_string(&mut buf, &t.name);
            buf.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                buf.extend_from_slice(&d.to_le_bytes());
            }
            buf.extend_from_slice(&t.ty.id().to_le_bytes());
            buf.extend_from_slice(&offset.to_le_bytes());
            offset = align(offset + t.data.len() as u64, self.alignment);
        }
        let zeros = vec![0u8; self.alignment as usize];
        let pad = |p: u64| (align(p, self.alignment) - p) as usize;
        buf.extend_from_slice(&zeros[..pad(buf.len() as u64)]);
        out.write_all(&buf)?;
        for t in &self.tensors {
            out.write_all(&t.data)?;
            out.write_all(&zeros[..pad(t.data.len() as u64)])?;
        }
        Ok(())
    }

    /// The whole file in memory.
    pub fn to_bytes(&self) -> Result<Vec<u8>, GgufError> {
        self.check()?;
        let mut out = Vec::new();
        self.write_to(&mut out).map_err(|e| invalid(format!("serializing: {e}")))?;
        Ok(out)
    }

    /// Write to `path` atomically: a temporary file in the same folder, synced, then renamed.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), GgufError> {
        let path = path.as_ref();
        self.check().map_err(|e| match e {
            GgufError::Write { message, .. } => {
                GgufError::Write { path: path.to_path_buf(), message }
            }
            other => other,
        })?;
        write_atomically(path, |file| {
            let mut w = BufWriter::new(file);
            self.write_to(&mut w)?;
            w.flush()
        })
        .map_err(|source| GgufError::Io { path: path.to_path_buf(), source })
    }
}

fn align(x: u64, alignment: u64) -> u64 {
    x.div_ceil(alignment) * alignment
}

fn encode_string(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn encode_value(buf: &mut Vec<u8>, value: &Value) {
    match value {
        Value::U8(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::I8(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::U16(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::I16(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::U32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::I32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::U64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::I64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::F32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::F64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::Bool(v) => buf.push(u8::from(*v)),
        Value::String(s) => encode_string(buf, s),
        Value::Array(elem, items) => {
            buf.extend_from_slice(&elem.id().to_le_bytes());
            buf.extend_from_slice(&(items.len() as u64).to_le_bytes());
            // A nested array item encodes as its own element type, count and values.
            for item in items {
                encode_value(buf, item);
            }
        }
    }
}

/// Create `path` by writing a sibling temporary file with `fill`, syncing it and renaming it
/// over `path`; on any error the temporary file is removed and `path` is untouched.
pub fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name")
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        file_name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        fill(&mut file)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
