//! GGUF files: reading (v2, v3; memory-mapped), writing (v3), and a summary for `gguf info`.

mod error;
mod info;
mod reader;
mod value;
pub mod writer;

pub use error::{FormatError, GgufError};
pub use info::{info_json, info_text};
pub use reader::{
    GgufFile, TensorInfo, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_ARRAY_NESTING, MAX_DIMS,
};
pub use value::{Value, ValueType};
pub use writer::GgufWriter;
