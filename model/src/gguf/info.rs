//! `gguf info`: a summary of a GGUF file as text or JSON.

use std::fmt::Write as _;

use super::reader::GgufFile;
use super::value::Value;

/// Arrays longer than this are shown as their first items and a count in text output.
const TEXT_ARRAY_PREVIEW: usize = 8;
/// Strings longer than this are cut in text output.
const TEXT_STRING_PREVIEW: usize = 120;

fn preview(value: &Value) -> String {
    match value {
        Value::Array(elem, items) if items.len() > TEXT_ARRAY_PREVIEW => {
            let head: Vec<String> = items[..TEXT_ARRAY_PREVIEW].iter().map(preview).collect();
            format!("[{}, ...] ({} {elem} items)", head.join(", "), items.len())
        }
        Value::Array(_, items) => {
            let all: Vec<String> = items.iter().map(preview).collect();
            format!("[{}]", all.join(", "))
        }
        Value::String(s) if s.chars().count() > TEXT_STRING_PREVIEW => {
            let cut: String = s.chars().take(TEXT_STRING_PREVIEW).collect();
            format!("{cut:?}... ({} bytes)", s.len())
        }
        other => other.to_string(),
    }
}

/// Human-readable summary: header, every metadata key (long arrays and strings shortened),
/// every tensor with type, shape, offset and size.
pub fn info_text(file: &GgufFile) -> String {
    let mut out = String::new();
    let total: u64 = file.tensors().iter().map(|t| t.n_bytes).sum();
    let params: u64 = file.tensors().iter().map(|t| t.n_elements).sum();
    let _ = writeln!(out, "file:        {}", file.path().display());
    let _ = writeln!(out, "version:     {}", file.version());
    let _ = writeln!(out, "file size:   {} bytes", file.file_size());
    let _ = writeln!(out, "alignment:   {}", file.alignment());
    let _ = writeln!(out, "data offset: {}", file.data_offset());
    let _ =
        writeln!(out, "tensors:     {} ({params} elements, {total} bytes)", file.tensors().len());
    let _ = writeln!(out, "metadata:    {} keys", file.metadata().len());
    for (key, value) in file.metadata() {
        let _ = writeln!(out, "  {key} ({}) = {}", value.type_description(), preview(value));
    }
    let _ = writeln!(out, "tensors:");
    for t in file.tensors() {
        let _ = writeln!(
            out,
            "  {:<32} {:<5} {:?} offset {} bytes {}",
            t.name, t.ty, t.dims, t.offset, t.n_bytes
        );
    }
    out
}

/// The same summary as JSON. Each metadata entry is `{"type", "value"}`, arrays add `"len"`;
/// with `array_limit = Some(n)`, arrays longer than `n` keep only their first `n` items in
/// `"value"` (and `"truncated": true`), so a 49 152-token vocabulary need not be printed.
pub fn info_json(file: &GgufFile, array_limit: Option<usize>) -> serde_json::Value {
    let metadata: serde_json::Map<String, serde_json::Value> = file
        .metadata()
        .iter()
        .map(|(k, v)| {
            let mut entry = serde_json::json!({"type": v.type_description()});
            match v {
                Value::Array(_, items) => {
                    let keep = array_limit.map_or(items.len(), |n| n.min(items.len()));
                    let head: Vec<serde_json::Value> =
                        items[..keep].iter().map(Value::to_json).collect();
                    entry["len"] = items.len().into();
                    entry["value"] = head.into();
                    if keep < items.len() {
                        entry["truncated"] = true.into();
                    }
                }
                other => entry["value"] = other.to_json(),
            }
            (k.clone(), entry)
        })
        .collect();
    let tensors: Vec<serde_json::Value> = file
        .tensors()
        .iter()
        .map(|t| {
            serde_json::json!({
                "name": t.name,
                "type": t.ty.name(),
                "type_id": t.ty.id(),
                "dims": t.dims,
                "n_elements": t.n_elements,
                "offset": t.offset,
                "n_bytes": t.n_bytes,
            })
        })
        .collect();
    serde_json::json!({
        "path": file.path().display().to_string(),
        "version": file.version(),
        "file_size": file.file_size(),
        "alignment": file.alignment(),
        "data_offset": file.data_offset(),
        "metadata": metadata,
        "tensors": tensors,
    })
}
