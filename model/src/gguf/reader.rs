//! GGUF v2/v3 reader: header, metadata, tensor infos, memory-mapped tensor data.
//!
//! Layout (little-endian; v2 and v3 are identical on disk, v3 only adds big-endian files,
//! which are refused):
//! ```text
//! 0   magic "GGUF"            u32
//! 4   version                 u32
//! 8   tensor_count            u64
//! 16  metadata_kv_count       u64
//! 24  metadata kv × count     key: string, type: u32, value
//!     tensor info × count     name: string, n_dims: u32, dims: u64 × n_dims, type: u32, offset: u64
//!     padding to general.alignment (default 32)
//!     tensor data             each tensor at data_start + offset (offset a multiple of alignment)
//! string = len: u64, bytes (UTF-8); array = elem_type: u32, count: u64, values
//! ```
//! Nothing is allocated from an untrusted length before checking it against the bytes left.
//!
//! Long top-level arrays (a vocabulary, its merges and token types: ~150 000 items in
//! SmolLM2) are validated when the file is opened but not kept as [`Value`]s, which cost
//! 32 bytes plus a heap allocation per string (~10 MiB resident for SmolLM2): the typed
//! accessors ([`GgufFile::get_str_array`], [`GgufFile::get_int_array`],
//! [`GgufFile::array_len`]) read them from the file's bytes on each call, strings borrowed
//! from the mapping; [`GgufFile::get`] and [`GgufFile::metadata`] build the `Value`s on first
//! use and keep them.

use std::collections::HashMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use gllm_kernels::quant::QuantType;
use memmap2::Mmap;

use super::error::{FormatError, GgufError};
use super::value::{Value, ValueType};

/// "GGUF" read as a little-endian u32.
pub const GGUF_MAGIC: u32 = 0x4655_4747;
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: u32 = 4;
/// Arrays of arrays deeper than this are refused (bounded recursion).
pub const MAX_ARRAY_NESTING: usize = 8;
/// Top-level arrays of strings or numbers with at least this many items stay in the file's
/// bytes until asked for (see the module docs).
const DEFERRED_ARRAY_MIN: u64 = 256;

/// One metadata value: parsed, or a long array read from the file's bytes when asked for.
enum Slot {
    Parsed(Value),
    Deferred {
        elem: ValueType,
        count: u64,
        /// File offset of the first item.
        items_at: usize,
        /// The `Value` form, built by the first [`GgufFile::get`].
        value: OnceLock<Value>,
    },
}

/// One tensor's description. `offset` is relative to the start of the tensor data section.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the contiguous (row) dimension.
    pub dims: Vec<u64>,
    pub ty: QuantType,
    pub offset: u64,
    pub n_elements: u64,
    pub n_bytes: u64,
}

enum Storage {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Deref for Storage {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// A parsed GGUF file whose tensor data stays in the memory-mapped file.
pub struct GgufFile {
    path: PathBuf,
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, Slot)>,
    /// Every key and value in `Value` form, built by the first [`GgufFile::metadata`].
    all_metadata: OnceLock<Vec<(String, Value)>>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    storage: Storage,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn error(&self, offset: usize, field: &dyn Fn() -> String, kind: FormatError) -> GgufError {
        GgufError::Format {
            path: self.path.to_path_buf(),
            offset: offset as u64,
            field: field(),
            kind,
        }
    }

    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, field: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(self.error(
                self.pos,
                field,
                FormatError::Truncated { needed: n, available: self.remaining() },
            ));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    fn array<const N: usize>(&mut self, field: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        let bytes = self.take(N as u64, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u32(&mut self, field: &dyn Fn() -> String) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &dyn Fn() -> String) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    /// A count of items each at least `min_size` bytes long, checked against the bytes left.
    fn count(
        &mut self,
        what: &'static str,
        min_size: u64,
        field: &dyn Fn() -> String,
    ) -> Result<u64, GgufError> {
        let at = self.pos;
        let value = self.u64(field)?;
        let limit = self.remaining() / min_size.max(1);
        if value > limit {
            return Err(self.error(at, field, FormatError::CountTooLarge { what, value, limit }));
        }
        Ok(value)
    }

    fn string(&mut self, field: &dyn Fn() -> String) -> Result<String, GgufError> {
        self.str_ref(field).map(str::to_owned)
    }

    /// A string borrowed from the file's bytes.
    fn str_ref(&mut self, field: &dyn Fn() -> String) -> Result<&'a str, GgufError> {
        let at = self.pos;
        let len = self.count("string length", 1, field)?;
        let bytes = self.take(len, field)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s),
            Err(e) => Err(self.error(
                at,
                field,
                FormatError::InvalidUtf8 { valid_up_to: e.valid_up_to() },
            )),
        }
    }

    fn value_type(&mut self, field: &dyn Fn() -> String) -> Result<ValueType, GgufError> {
        let at = self.pos;
        let id = self.u32(field)?;
        ValueType::from_id(id)
            .ok_or_else(|| self.error(at, field, FormatError::UnknownValueType { id }))
    }

    fn value(
        &mut self,
        ty: ValueType,
        depth: usize,
        field: &dyn Fn() -> String,
    ) -> Result<Value, GgufError> {
        Ok(match ty {
            ValueType::U8 => Value::U8(u8::from_le_bytes(self.array(field)?)),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array(field)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(field)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(field)?)),
            ValueType::U32 => Value::U32(u32::from_le_bytes(self.array(field)?)),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(field)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(field)?)),
            ValueType::U64 => Value::U64(u64::from_le_bytes(self.array(field)?)),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(field)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(field)?)),
            ValueType::Bool => {
                // gguf stores bools as one byte; anything but 0 counts as true (as ggml reads it).
                let [b] = self.array(field)?;
                Value::Bool(b != 0)
            }
            ValueType::String => Value::String(self.string(field)?),
            ValueType::Array => {
                if depth >= MAX_ARRAY_NESTING {
                    return Err(self.error(
                        self.pos,
                        field,
                        FormatError::NestingTooDeep { limit: MAX_ARRAY_NESTING },
                    ));
                }
                let elem = self.value_type(field)?;
                let count = self.count("array length", elem.min_encoded_size(), field)?;
                // `count` is bounded by the bytes left; still grow as elements actually parse.
                let mut items = Vec::with_capacity(count.min(1 << 16) as usize);
                for i in 0..count {
                    let item_field = || format!("{}[{i}]", field());
                    items.push(self.value(elem, depth + 1, &item_field)?);
                }
                Value::Array(elem, items)
            }
        })
    }
}

impl<'a> Cursor<'a> {
    /// A top-level value of type `ty`: long arrays of strings or numbers are validated and
    /// skipped ([`Slot::Deferred`]), everything else parsed.
    fn slot(&mut self, ty: ValueType, field: &dyn Fn() -> String) -> Result<Slot, GgufError> {
        let start = self.pos;
        if ty == ValueType::Array {
            let elem = self.value_type(field)?;
            let count = self.count("array length", elem.min_encoded_size(), field)?;
            if elem != ValueType::Array && count >= DEFERRED_ARRAY_MIN {
                let items_at = self.pos;
                for i in 0..count {
                    let item_field = || format!("{}[{i}]", field());
                    match elem {
                        ValueType::String => {
                            self.str_ref(&item_field)?;
                        }
                        // fixed-size numbers and bools: nothing to allocate
                        _ => {
                            self.value(elem, 1, &item_field)?;
                        }
                    }
                }
                return Ok(Slot::Deferred { elem, count, items_at, value: OnceLock::new() });
            }
            self.pos = start;
        }
        Ok(Slot::Parsed(self.value(ty, 0, field)?))
    }
}

fn align_up(x: u64, alignment: u64) -> Option<u64> {
    x.checked_add(alignment - 1).map(|v| v / alignment * alignment)
}

impl GgufFile {
    /// Open and parse `path`, memory-mapping it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GgufError> {
        let path = path.as_ref();
        let io = |source| GgufError::Io { path: path.to_path_buf(), source };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let storage = if len == 0 {
            // Mapping an empty file fails on some platforms; the parser reports truncation.
            Storage::Owned(Vec::new())
        } else {
            // SAFETY: the map is read-only and private to this struct. As with every mmap, a
            // concurrent writer truncating or changing the file underneath is not guarded
            // against; model files are treated as immutable while open.
            Storage::Mapped(unsafe { Mmap::map(&file) }.map_err(io)?)
        };
        Self::parse(storage, path.to_path_buf())
    }

    /// Parse an in-memory file; `label` stands for the path in errors.
    pub fn from_bytes(bytes: Vec<u8>, label: impl Into<PathBuf>) -> Result<Self, GgufError> {
        Self::parse(Storage::Owned(bytes), label.into())
    }

    fn parse(storage: Storage, path: PathBuf) -> Result<Self, GgufError> {
        let parsed = parse_layout(&storage, &path)?;
        Ok(GgufFile {
            path,
            version: parsed.version,
            alignment: parsed.alignment,
            data_offset: parsed.data_offset,
            metadata: parsed.metadata,
            all_metadata: OnceLock::new(),
            key_index: parsed.key_index,
            tensors: parsed.tensors,
            tensor_index: parsed.tensor_index,
            storage,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn version(&self) -> u32 {
        self.version
    }
    pub fn alignment(&self) -> u64 {
        self.alignment
    }
    /// Absolute file offset of the tensor data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }
    pub fn file_size(&self) -> u64 {
        self.storage.len() as u64
    }

    /// Every metadata key and value, in file order (long arrays are built as `Value`s on the
    /// first call and kept: a second copy of the vocabulary; see the module docs).
    pub fn metadata(&self) -> &[(String, Value)] {
        self.all_metadata.get_or_init(|| {
            self.metadata
                .iter()
                .map(|(k, slot)| (k.clone(), self.slot_value(slot).clone()))
                .collect()
        })
    }

    /// The value of `key` (a long array is built as `Value`s on the first call and kept; the
    /// typed array accessors avoid that).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.slot(key).map(|slot| self.slot_value(slot))
    }

    /// Whether the file has the key `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.key_index.contains_key(key)
    }

    fn slot(&self, key: &str) -> Option<&Slot> {
        self.key_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// A cursor over the file's bytes from `at`, for arrays validated when the file was opened.
    fn cursor_at(&self, at: usize) -> Cursor<'_> {
        Cursor { bytes: &self.storage, pos: at, path: &self.path }
    }

    fn slot_value<'s>(&'s self, slot: &'s Slot) -> &'s Value {
        match slot {
            Slot::Parsed(v) => v,
            Slot::Deferred { elem, count, items_at, value } => value.get_or_init(|| {
                let mut c = self.cursor_at(*items_at);
                let items = (0..*count)
                    .map(|_| c.value(*elem, 1, &String::new).expect("validated when opened"))
                    .collect();
                Value::Array(*elem, items)
            }),
        }
    }

    /// The number of items of the array `key`, without building its `Value`s.
    pub fn array_len(&self, key: &str) -> Result<usize, GgufError> {
        match self.require_slot(key)? {
            Slot::Deferred { count, .. } => Ok(*count as usize),
            Slot::Parsed(Value::Array(_, items)) => Ok(items.len()),
            Slot::Parsed(other) => Err(self.wrong_type(key, "ARRAY", other)),
        }
    }

    fn require_slot(&self, key: &str) -> Result<&Slot, GgufError> {
        self.slot(key)
            .ok_or_else(|| GgufError::MissingKey { path: self.path.clone(), key: key.to_string() })
    }

    /// The value of `key`, or an error naming the missing key.
    pub fn require(&self, key: &str) -> Result<&Value, GgufError> {
        self.get(key)
            .ok_or_else(|| GgufError::MissingKey { path: self.path.clone(), key: key.to_string() })
    }

    fn wrong_type(&self, key: &str, expected: &str, found: &Value) -> GgufError {
        GgufError::WrongType {
            path: self.path.clone(),
            key: key.to_string(),
            expected: expected.to_string(),
            found: found.type_description(),
        }
    }

    /// Any integer type whose value fits in a `u64` (converters differ in the width they write).
    pub fn get_uint(&self, key: &str) -> Result<u64, GgufError> {
        let v = self.require(key)?;
        v.as_u64_lossless().ok_or_else(|| self.wrong_type(key, "a non-negative integer", v))
    }

    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        match self.require(key)? {
            Value::String(s) => Ok(s),
            other => Err(self.wrong_type(key, "STRING", other)),
        }
    }

    /// An array's element type and items.
    pub fn get_array(&self, key: &str) -> Result<(ValueType, &[Value]), GgufError> {
        match self.require(key)? {
            Value::Array(elem, items) => Ok((*elem, items)),
            other => Err(self.wrong_type(key, "ARRAY", other)),
        }
    }

    /// An array of strings (a long one borrowed from the file's bytes).
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        if let Slot::Deferred { elem: ValueType::String, count, items_at, .. } =
            self.require_slot(key)?
        {
            let mut c = self.cursor_at(*items_at);
            return Ok((0..*count)
                .map(|_| c.str_ref(&String::new).expect("validated when opened"))
                .collect());
        }
        match self.require(key)? {
            Value::Array(ValueType::String, items) => Ok(items
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.as_str(),
                    _ => unreachable!("array elements share the declared type"),
                })
                .collect()),
            other => Err(self.wrong_type(key, "ARRAY[STRING]", other)),
        }
    }

    /// An array of any integer type, each element converted losslessly to `i64`.
    pub fn get_int_array(&self, key: &str) -> Result<Vec<i64>, GgufError> {
        let not_ints = |found: &Value| self.wrong_type(key, "ARRAY of integers", found);
        if let Slot::Deferred { elem, count, items_at, .. } = self.require_slot(key)? {
            let mut c = self.cursor_at(*items_at);
            let mut out = Vec::with_capacity(*count as usize);
            for _ in 0..*count {
                let v = c.value(*elem, 1, &String::new).expect("validated when opened");
                // a non-integer array is reported with its type, as for a parsed one
                out.push(
                    v.as_i64_lossless()
                        .ok_or_else(|| not_ints(&Value::Array(*elem, Vec::new())))?,
                );
            }
            return Ok(out);
        }
        let (_, items) = self.get_array(key)?;
        let found = self.require(key)?;
        items.iter().map(|v| v.as_i64_lossless().ok_or_else(|| not_ints(found))).collect()
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    pub fn require_tensor(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.tensor(name).ok_or_else(|| GgufError::MissingTensor {
            path: self.path.clone(),
            name: name.to_string(),
        })
    }

    /// The raw bytes of a tensor of this file (bounds were checked when parsing).
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        let start = (self.data_offset + info.offset) as usize;
        &self.storage[start..start + info.n_bytes as usize]
    }

    /// Gives the file pages that lie wholly inside `info`'s data back to the kernel: they leave
    /// this process's resident set (the page cache keeps them). For a tensor the model copied
    /// elsewhere at load. Reading the tensor afterwards is still correct (the pages fault back
    /// in from the file). Advice only: errors are ignored; no-op for an in-memory file.
    pub fn release_pages(&self, info: &TensorInfo) {
        const PAGE: usize = 4096;
        let Storage::Mapped(map) = &self.storage else { return };
        let start = (self.data_offset + info.offset) as usize;
        let (first, end) =
            (start.next_multiple_of(PAGE), (start + info.n_bytes as usize) / PAGE * PAGE);
        if end > first {
            // SAFETY: the mapping is private and read-only, so MADV_DONTNEED discards no data:
            // a later read of these pages maps them again from the unchanged file.
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, first, end - first)
            };
        }
    }

    /// The raw bytes of the tensor named `name`.
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8], GgufError> {
        let info = self.require_tensor(name)?;
        Ok(self.tensor_data(info))
    }
}

macro_rules! typed_getters {
    ($($name:ident => $variant:ident, $ty:ty;)*) => {
        impl GgufFile {
            $(
                #[doc = concat!("The value of `key`, which must have type `", stringify!($variant), "`.")]
                pub fn $name(&self, key: &str) -> Result<$ty, GgufError> {
                    match self.require(key)? {
                        Value::$variant(v) => Ok(*v),
                        other => Err(self.wrong_type(key, ValueType::$variant.name(), other)),
                    }
                }
            )*
        }
    };
}

typed_getters! {
    get_u8 => U8, u8;
    get_i8 => I8, i8;
    get_u16 => U16, u16;
    get_i16 => I16, i16;
    get_u32 => U32, u32;
    get_i32 => I32, i32;
    get_u64 => U64, u64;
    get_i64 => I64, i64;
    get_f32 => F32, f32;
    get_f64 => F64, f64;
    get_bool => Bool, bool;
}

struct Layout {
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, Slot)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

fn parse_layout(bytes: &[u8], path: &Path) -> Result<Layout, GgufError> {
    let mut c = Cursor { bytes, pos: 0, path };
    let magic = c.u32(&|| "magic".into())?;
    if magic != GGUF_MAGIC {
        return Err(c.error(0, &|| "magic".into(), FormatError::BadMagic { found: magic }));
    }
    let version = c.u32(&|| "version".into())?;
    if version != 2 && version != 3 {
        let hint = if version.swap_bytes() == 2 || version.swap_bytes() == 3 {
            " (a big-endian file?)"
        } else if version == 1 {
            " (GGUF v1 used 32-bit lengths)"
        } else {
            ""
        };
        return Err(c.error(
            4,
            &|| "version".into(),
            FormatError::UnsupportedVersion { found: version, hint },
        ));
    }
    // Smallest tensor info: name length (8) + n_dims (4) + type (4) + offset (8).
    let tensor_count = c.count("tensor count", 24, &|| "tensor_count".into())?;
    // Smallest metadata entry: key length (8) + value type (4) + one byte of value.
    let kv_count = c.count("metadata count", 13, &|| "metadata_kv_count".into())?;

    let mut metadata = Vec::with_capacity(kv_count as usize);
    let mut key_index = HashMap::with_capacity(kv_count as usize);
    for i in 0..kv_count {
        let at = c.pos;
        let key = c.string(&|| format!("metadata[{i}] key"))?;
        let field = || format!("metadata[{i}] `{key}`");
        let ty = c.value_type(&field)?;
        let value = c.slot(ty, &field)?;
        if key_index.insert(key.clone(), metadata.len()).is_some() {
            return Err(c.error(
                at,
                &field,
                FormatError::Duplicate { what: "metadata key", name: key.clone() },
            ));
        }
        metadata.push((key, value));
    }

    let alignment = match key_index.get("general.alignment").map(|&i| &metadata[i].1) {
        None => DEFAULT_ALIGNMENT,
        Some(Slot::Parsed(Value::U32(a))) if a.is_power_of_two() => u64::from(*a),
        Some(other) => {
            let found = match other {
                Slot::Parsed(v) => format!("{} {v}", v.type_description()),
                Slot::Deferred { elem, count, .. } => format!("ARRAY[{elem}] of {count} items"),
            };
            return Err(c.error(
                24,
                &|| "metadata `general.alignment`".into(),
                FormatError::BadAlignment { found },
            ));
        }
    };

    let mut tensors = Vec::with_capacity(tensor_count as usize);
    let mut tensor_index = HashMap::with_capacity(tensor_count as usize);
    let mut info_offsets = Vec::with_capacity(tensor_count as usize);
    for i in 0..tensor_count {
        let at = c.pos;
        let name = c.string(&|| format!("tensor[{i}] name"))?;
        let label = name.clone();
        let field = |part: &'static str| {
            let label = &label;
            move || format!("tensor[{i}] `{label}` {part}")
        };
        let dims_at = c.pos;
        let n_dims = c.u32(&field("n_dims"))?;
        if n_dims > MAX_DIMS {
            return Err(c.error(
                dims_at,
                &field("n_dims"),
                FormatError::TooManyDims { n_dims, limit: MAX_DIMS },
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(c.u64(&field("dims"))?);
        }
        let type_at = c.pos;
        let type_id = c.u32(&field("type"))?;
        let ty = QuantType::from_id(type_id).ok_or_else(|| {
            c.error(type_at, &field("type"), FormatError::UnknownTensorType { id: type_id })
        })?;
        let offset_at = c.pos;
        let offset = c.u64(&field("offset"))?;

        let bad_shape = |reason: String| {
            c.error(dims_at, &field("dims"), FormatError::BadShape { dims: dims.clone(), reason })
        };
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| bad_shape("the element count overflows".into()))?;
        let row = dims.first().copied().unwrap_or(1);
        if row % ty.block_elems() as u64 != 0 {
            return Err(bad_shape(format!(
                "the row length {row} is not a multiple of the {ty} block size {}",
                ty.block_elems()
            )));
        }
        let n_bytes = ty
            .bytes_for(n_elements)
            .ok_or_else(|| bad_shape(format!("{n_elements} elements do not fit {ty} blocks")))?;
        if offset % alignment != 0 {
            return Err(c.error(
                offset_at,
                &field("offset"),
                FormatError::Misaligned { offset, alignment },
            ));
        }
        if tensor_index.insert(name.clone(), tensors.len()).is_some() {
            return Err(c.error(
                at,
                &field("name"),
                FormatError::Duplicate { what: "tensor name", name: name.clone() },
            ));
        }
        info_offsets.push(offset_at);
        tensors.push(TensorInfo { name, dims, ty, offset, n_elements, n_bytes });
    }

    let file_len = bytes.len() as u64;
    let data_offset = align_up(c.pos as u64, alignment).unwrap_or(u64::MAX);
    // Tensor extents as absolute offsets; each must lie inside the file after the padding.
    let mut extents: Vec<(u64, u64, usize)> = Vec::with_capacity(tensors.len());
    for (i, t) in tensors.iter().enumerate() {
        let start = data_offset.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(t.n_bytes));
        match (start, end) {
            (Some(start), Some(end)) if end <= file_len => extents.push((start, end, i)),
            _ => {
                return Err(c.error(
                    info_offsets[i],
                    &|| format!("tensor[{i}] `{}` offset", t.name),
                    FormatError::OutOfBounds {
                        start: start.unwrap_or(u64::MAX),
                        end: end.unwrap_or(u64::MAX),
                        data_end: file_len,
                    },
                ))
            }
        }
    }
    extents.sort_unstable();
    // Sweep in start order keeping the furthest end seen so far; zero-sized tensors occupy no
    // bytes and overlap nothing.
    let mut furthest: Option<(u64, u64, usize)> = None;
    for &(start, end, i) in &extents {
        if end == start {
            continue;
        }
        if let Some((other_start, other_end, other)) = furthest {
            if start < other_end {
                return Err(c.error(
                    info_offsets[i],
                    &|| format!("tensor[{i}] `{}` offset", tensors[i].name),
                    FormatError::Overlap {
                        start,
                        end,
                        other: tensors[other].name.clone(),
                        other_start,
                        other_end,
                    },
                ));
            }
        }
        if furthest.is_none_or(|(_, e, _)| end > e) {
            furthest = Some((start, end, i));
        }
    }

    Ok(Layout {
        version,
        alignment,
        data_offset: data_offset.min(file_len.max(c.pos as u64)),
        metadata,
        key_index,
        tensors,
        tensor_index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgufWriter;

    /// Long arrays (kept in the file's bytes) read the same through every accessor as short
    /// ones (parsed at open), and as what was written.
    #[test]
    fn deferred_arrays_read_as_written() {
        let texts: Vec<String> =
            (0..300).map(|i| format!("tok{i}·{}", "é".repeat(i % 3))).collect();
        let strings = Value::Array(
            ValueType::String,
            texts.iter().map(|s| Value::String(s.clone())).collect(),
        );
        let ints = Value::Array(ValueType::I16, (0..300).map(|i| Value::I16(i - 150)).collect());
        let floats = Value::Array(ValueType::F32, vec![Value::F32(0.5); 300]);
        let short = Value::Array(ValueType::U8, vec![Value::U8(7); 3]);
        let mut w = GgufWriter::new();
        w.add("a.strings", strings.clone())
            .add("a.ints", ints.clone())
            .add("a.floats", floats.clone())
            .add("a.short", short.clone())
            .add("a.scalar", Value::U32(5));
        let f = GgufFile::from_bytes(w.to_bytes().unwrap(), "deferred.gguf").unwrap();
        assert!(matches!(f.slot("a.strings"), Some(Slot::Deferred { count: 300, .. })));
        assert!(matches!(f.slot("a.short"), Some(Slot::Parsed(_))));
        let want: Vec<&str> = texts.iter().map(String::as_str).collect();
        assert_eq!(f.get_str_array("a.strings").unwrap(), want);
        assert_eq!(f.get_int_array("a.ints").unwrap(), (-150..150).collect::<Vec<i64>>());
        assert!(f.get_int_array("a.floats").is_err());
        assert!(f.get_str_array("a.ints").is_err());
        assert_eq!(f.get_int_array("a.short").unwrap(), vec![7, 7, 7]);
        assert_eq!(f.array_len("a.strings").unwrap(), 300);
        assert_eq!(f.array_len("a.short").unwrap(), 3);
        assert!(f.array_len("a.scalar").is_err() && f.array_len("a.none").is_err());
        assert!(f.contains("a.ints") && !f.contains("a.none"));
        assert_eq!(f.get("a.strings"), Some(&strings));
        assert_eq!(f.get("a.floats"), Some(&floats));
        let all = f.metadata();
        let keys: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a.strings", "a.ints", "a.floats", "a.short", "a.scalar"]);
        assert_eq!(all[1].1, ints);
        assert_eq!(all[3].1, short);
    }

    /// A long array with a bad string is refused when the file is opened, not when read.
    #[test]
    fn deferred_arrays_are_validated_at_open() {
        let mut w = GgufWriter::new();
        w.add("a.strings", Value::Array(ValueType::String, vec![Value::String("xyz".into()); 300]));
        let mut bytes = w.to_bytes().unwrap();
        let at = bytes.windows(3).rposition(|s| s == b"xyz").unwrap();
        bytes[at] = 0xff;
        let err = GgufFile::from_bytes(bytes, "bad.gguf").unwrap_err().to_string();
        assert!(err.contains("a.strings") && err.contains("[299]"), "{err}");
    }
}
