//! llama.cpp's per-op figures from an anchor folder (`ci/llama-cpp-anchor.sh`):
//!
//! - `graph-ops.txt`: the model's ops as `test-export-graph-ops` writes them, one per line:
//!   `op type ne0 ne1 ne2 ne3 n_params params... n_src (type ne0..ne3 nb0..nb3)... name`,
//!   op and types as ggml enum numbers;
//! - `ops.sql`: `test-backend-ops perf --test-file graph-ops.txt --output sql`, one
//!   `INSERT INTO test_backend_ops (...) VALUES (...);` line per op, its shape in `op_params`
//!   (`name=X,type=f32,ne=[..],op_params=[i:v,..],sources=T[..]nb[..],..`).
//!
//! Every parse error names the file, the line and the field; a missing file is not an error
//! but a note (`AnchorOps::notes`), so a report without the ops still renders.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::HarnessError;

/// A ggml tensor type, by the name ggml prints (`ggml_type_name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    Bf16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    I32,
    I64,
    Other(String),
}

/// `(ggml enum number, ggml_type_name)` of the types the harness names; others are kept
/// by name (`ops.sql`) or as `type#N` (`graph-ops.txt`).
const TYPES: [(u32, &str, GgmlType); 17] = [
    (0, "f32", GgmlType::F32),
    (1, "f16", GgmlType::F16),
    (2, "q4_0", GgmlType::Q4_0),
    (3, "q4_1", GgmlType::Q4_1),
    (6, "q5_0", GgmlType::Q5_0),
    (7, "q5_1", GgmlType::Q5_1),
    (8, "q8_0", GgmlType::Q8_0),
    (9, "q8_1", GgmlType::Q8_1),
    (10, "q2_K", GgmlType::Q2K),
    (11, "q3_K", GgmlType::Q3K),
    (12, "q4_K", GgmlType::Q4K),
    (13, "q5_K", GgmlType::Q5K),
    (14, "q6_K", GgmlType::Q6K),
    (15, "q8_K", GgmlType::Q8K),
    (26, "i32", GgmlType::I32),
    (27, "i64", GgmlType::I64),
    (30, "bf16", GgmlType::Bf16),
];

impl GgmlType {
    pub fn from_name(name: &str) -> GgmlType {
        TYPES
            .iter()
            .find(|t| t.1 == name)
            .map(|t| t.2.clone())
            .unwrap_or_else(|| GgmlType::Other(name.to_string()))
    }

    pub fn from_number(n: u32) -> GgmlType {
        TYPES
            .iter()
            .find(|t| t.0 == n)
            .map(|t| t.2.clone())
            .unwrap_or_else(|| GgmlType::Other(format!("type#{n}")))
    }

    pub fn name(&self) -> &str {
        match self {
            GgmlType::Other(s) => s,
            t => TYPES.iter().find(|x| &x.2 == t).map(|x| x.1).unwrap_or("?"),
        }
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A ggml op, by the name test-backend-ops prints (the GLU op by its kind, e.g. `SWIGLU`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Mul,
    RmsNorm,
    MulMat,
    Scale,
    Cpy,
    Cont,
    GetRows,
    SetRows,
    SoftMax,
    Rope,
    FlashAttnExt,
    Swiglu,
    Other(String),
}

/// `(ggml_op number in ggml 0.25.3, name)` of the ops a llama graph holds; `GGML_OP_GLU` (100)
/// is named by its kind (`op_params[0]`), see [`OpKind::from_graph`].
const OPS: [(u32, &str, OpKind); 12] = [
    (2, "ADD", OpKind::Add),
    (7, "MUL", OpKind::Mul),
    (25, "RMS_NORM", OpKind::RmsNorm),
    (29, "MUL_MAT", OpKind::MulMat),
    (32, "SCALE", OpKind::Scale),
    (34, "CPY", OpKind::Cpy),
    (35, "CONT", OpKind::Cont),
    (40, "GET_ROWS", OpKind::GetRows),
    (42, "SET_ROWS", OpKind::SetRows),
    (46, "SOFT_MAX", OpKind::SoftMax),
    (48, "ROPE", OpKind::Rope),
    (74, "FLASH_ATTN_EXT", OpKind::FlashAttnExt),
];
const GGML_OP_GLU: u32 = 100;
const GLU_KINDS: [&str; 7] =
    ["REGLU", "GEGLU", "SWIGLU", "SWIGLU_OAI", "GEGLU_ERF", "GEGLU_QUICK", "SWIGLU_CLAMP"];

impl OpKind {
    pub fn from_name(name: &str) -> OpKind {
        if name == "SWIGLU" {
            return OpKind::Swiglu;
        }
        OPS.iter()
            .find(|o| o.1 == name)
            .map(|o| o.2.clone())
            .unwrap_or_else(|| OpKind::Other(name.to_string()))
    }

    /// From `graph-ops.txt`'s op number (ggml 0.25.3's `enum ggml_op`) and op params.
    pub fn from_graph(number: u32, op_params: &[i32]) -> OpKind {
        if number == GGML_OP_GLU {
            let kind = op_params.first().copied().unwrap_or(-1);
            return match usize::try_from(kind).ok().and_then(|k| GLU_KINDS.get(k)) {
                Some(name) => OpKind::from_name(name),
                None => OpKind::Other(format!("GLU#{kind}")),
            };
        }
        OPS.iter()
            .find(|o| o.0 == number)
            .map(|o| o.2.clone())
            .unwrap_or_else(|| OpKind::Other(format!("op#{number}")))
    }

    pub fn name(&self) -> &str {
        match self {
            OpKind::Other(s) => s,
            OpKind::Swiglu => "SWIGLU",
            k => OPS.iter().find(|o| &o.2 == k).map(|o| o.1).unwrap_or("?"),
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tensor's type and `ne` (elements per dimension, innermost first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tensor {
    pub ty: GgmlType,
    pub ne: [u64; 4],
}

impl Tensor {
    pub fn elements(&self) -> u64 {
        self.ne.iter().product()
    }
}

impl fmt::Display for Tensor {
    /// `q4_1[576x1536]`: trailing dimensions of 1 dropped (two kept), as `anchor.md` shows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut dims: Vec<u64> = self.ne.to_vec();
        while dims.len() > 2 && dims.last() == Some(&1) {
            dims.pop();
        }
        let dims: Vec<String> = dims.iter().map(u64::to_string).collect();
        write!(f, "{}[{}]", self.ty, dims.join("x"))
    }
}

/// Tokens an op processes: 1 in the decode graph, the batch in a prefill graph; 0 when the op
/// does not show it. The token dimension depends on the op: the KV-cache write's output is the
/// cache (its rows written count), and the transposed V cache (written without flash
/// attention) takes one value per row, so its rows are tokens × the V width, not known here.
pub fn tokens(kind: &OpKind, out: &Tensor, sources: &[Tensor]) -> u64 {
    let src = |i: usize, d: usize| sources.get(i).map_or(1, |s| s.ne[d]);
    match kind {
        OpKind::MulMat => src(1, 1),
        OpKind::Rope | OpKind::FlashAttnExt => out.ne[2],
        OpKind::SetRows if src(0, 0) == 1 && out.ne[0] == 1 => 0,
        OpKind::SetRows => src(0, 1),
        _ => out.ne[1],
    }
}

/// One op test-backend-ops measured (a perf row of `ops.sql`).
#[derive(Clone, Debug, PartialEq)]
pub struct MeasuredOp {
    pub kind: OpKind,
    /// The graph tensor's name (`ffn_gate-0`), empty when the test had none.
    pub name: String,
    pub out: Tensor,
    /// The non-zero op params, `(index, value)`.
    pub op_params: Vec<(usize, i64)>,
    pub sources: Vec<Tensor>,
    /// Mean time per run; `None` when the backend does not support the op.
    pub time_us: Option<f64>,
    /// test-backend-ops' own bandwidth figure (its byte count).
    pub bandwidth_gb_s: f64,
    pub n_runs: u64,
    /// 1-based line in `ops.sql`.
    pub line: usize,
}

impl MeasuredOp {
    pub fn param(&self, index: usize) -> i64 {
        self.op_params.iter().find(|p| p.0 == index).map_or(0, |p| p.1)
    }

    /// Tokens the op processes (see [`tokens`]).
    pub fn tokens(&self) -> u64 {
        tokens(&self.kind, &self.out, &self.sources)
    }

    /// `MUL_MAT ffn_gate-0 q4_1[576x1536] · f32[576x1]`-style description of the inputs.
    pub fn inputs(&self) -> String {
        self.sources.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
    }

    /// The key matching a `graph-ops.txt` line: name (its first word), output and source shapes.
    fn key(&self) -> (String, [u64; 4], Vec<[u64; 4]>) {
        let name = self.name.split_whitespace().next().unwrap_or("").to_string();
        (name, self.out.ne, self.sources.iter().map(|s| s.ne).collect())
    }
}

/// One line of `graph-ops.txt`.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphOp {
    pub kind: OpKind,
    pub name: String,
    pub out: Tensor,
    pub op_params: Vec<i32>,
    pub sources: Vec<Tensor>,
    pub line: usize,
}

impl GraphOp {
    /// Tokens the op processes (see [`tokens`]).
    pub fn tokens(&self) -> u64 {
        tokens(&self.kind, &self.out, &self.sources)
    }

    fn key(&self) -> (String, [u64; 4], Vec<[u64; 4]>) {
        (self.name.clone(), self.out.ne, self.sources.iter().map(|s| s.ne).collect())
    }
}

/// The ops of an anchor folder.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnchorOps {
    /// `ops.sql`'s perf rows (supported or not), in file order.
    pub measured: Vec<MeasuredOp>,
    /// `graph-ops.txt` lines no perf row matches (test-backend-ops skipped or lost them).
    pub unmeasured: Vec<GraphOp>,
    /// Why something is missing (a file absent), for the report to say.
    pub notes: Vec<String>,
}

fn corrupt(path: &Path, line: usize, field: &str, message: impl Into<String>) -> HarnessError {
    HarnessError::Corrupt {
        path: path.to_path_buf(),
        field: format!("line {line}, {field}"),
        message: message.into(),
    }
}

impl AnchorOps {
    /// Reads `DIR/ops.sql` and `DIR/graph-ops.txt`; a malformed file is an error naming it,
    /// its line and field; a missing one becomes a note.
    pub fn load(dir: &Path) -> Result<AnchorOps, HarnessError> {
        let read = |name: &str| -> Result<Option<(PathBuf, String)>, HarnessError> {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(Some((path, text))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(HarnessError::io(&path, "read", e)),
            }
        };
        let mut ops = AnchorOps::default();
        let sql = read("ops.sql")?;
        let graph = read("graph-ops.txt")?;
        match &sql {
            Some((path, text)) => ops.measured = parse_ops_sql(path, text)?,
            None => ops.notes.push(format!(
                "{} has no `ops.sql` (anchor measured with `--bench-only`?): no per-op figures",
                dir.display()
            )),
        }
        match &graph {
            Some((path, text)) => {
                let listed = parse_graph_ops(path, text)?;
                if sql.is_some() {
                    let keys: Vec<_> = ops.measured.iter().map(MeasuredOp::key).collect();
                    ops.unmeasured =
                        listed.into_iter().filter(|g| !keys.contains(&g.key())).collect();
                }
            }
            None if sql.is_some() => ops.notes.push(format!(
                "{} has no `graph-ops.txt`: ops of the model's graphs that test-backend-ops \
                 did not measure cannot be listed",
                dir.display()
            )),
            None => {}
        }
        Ok(ops)
    }
}

/// The values of one SQL tuple: `'text'` (with `''` for a quote) or bare tokens (`NULL`, `1`).
fn sql_values(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        value.push('\'');
                    }
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated string after `{value}`")),
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_string();
            if value.is_empty() {
                return Err(format!("empty value after {} values", out.len()));
            }
        }
        out.push(value);
        match chars.next() {
            None => return Ok(out),
            Some(',') => continue,
            Some(c) => return Err(format!("expected `,` after value {}, found `{c}`", out.len())),
        }
    }
}

/// `ops.sql`: every `INSERT INTO test_backend_ops` line; rows of another test mode than
/// `perf` are skipped (a perf run writes none).
pub fn parse_ops_sql(path: &Path, text: &str) -> Result<Vec<MeasuredOp>, HarnessError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        let Some(rest) = l.strip_prefix("INSERT INTO ") else { continue };
        let err = |field: &str, m: String| corrupt(path, line, field, m);
        let (_table, rest) =
            rest.split_once('(').ok_or_else(|| err("INSERT", "no column list `(...)`".into()))?;
        let (columns, rest) = rest
            .split_once(") VALUES (")
            .ok_or_else(|| err("INSERT", "no `) VALUES (` after the column list".into()))?;
        let values = rest
            .trim_end()
            .strip_suffix(");")
            .ok_or_else(|| err("VALUES", "the line does not end with `);`".into()))?;
        let columns: Vec<&str> = columns.split(',').map(str::trim).collect();
        let values = sql_values(values).map_err(|m| err("VALUES", m))?;
        if values.len() != columns.len() {
            return Err(err(
                "VALUES",
                format!("{} values for {} columns", values.len(), columns.len()),
            ));
        }
        let get = |name: &str| -> Result<&str, HarnessError> {
            columns
                .iter()
                .position(|c| *c == name)
                .map(|i| values[i].as_str())
                .ok_or_else(|| err(name, "no such column".into()))
        };
        let number = |name: &str| -> Result<f64, HarnessError> {
            let v = get(name)?;
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| err(name, format!("`{v}` is not a number")))
        };
        if get("test_mode")? != "perf" {
            continue;
        }
        let supported = number("supported")? != 0.0;
        let time_us = number("time_us")?;
        if supported && time_us <= 0.0 {
            return Err(err("time_us", format!("{time_us}: a supported op with no time")));
        }
        let n_runs = number("n_runs")?;
        let shape = parse_vars(get("op_params")?).map_err(|m| err("op_params", m))?;
        out.push(MeasuredOp {
            kind: OpKind::from_name(get("op_name")?),
            name: shape.name,
            out: shape.out,
            op_params: shape.op_params,
            sources: shape.sources,
            time_us: supported.then_some(time_us),
            bandwidth_gb_s: number("bandwidth_gb_s")?,
            n_runs: n_runs.max(0.0) as u64,
            line,
        });
    }
    Ok(out)
}

struct Vars {
    name: String,
    out: Tensor,
    op_params: Vec<(usize, i64)>,
    sources: Vec<Tensor>,
}

/// `[a,b,c,d]` as four numbers.
fn dims4(s: &str) -> Result<[u64; 4], String> {
    let inner = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(|| format!("`{s}` is not `[n,n,n,n]`"))?;
    let v: Vec<u64> = inner
        .split(',')
        .map(|x| x.trim().parse::<u64>().map_err(|_| format!("`{x}` in `{s}` is not a count")))
        .collect::<Result<_, _>>()?;
    v.try_into().map_err(|v: Vec<u64>| format!("`{s}` has {} dimensions, not 4", v.len()))
}

/// test-backend-ops' description of a graph-op test (`test_generic_op::vars`):
/// `name=X,type=T,ne=[..],op_params=[i:v,..],sources=T[..]nb[..],T[..]`.
fn parse_vars(s: &str) -> Result<Vars, String> {
    let (head, sources) = s
        .split_once("sources=")
        .ok_or_else(|| "no `sources=` (not a test-backend-ops --test-file op)".to_string())?;
    let mut name = String::new();
    let (mut ty, mut ne, mut op_params) = (None, None, None);
    let mut depth = 0;
    let mut start = 0;
    let head = head.trim_end_matches(',');
    let mut parts = Vec::new();
    for (i, c) in head.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&head[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&head[start..]);
    for part in parts.into_iter().filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| format!("`{part}` is not key=value"))?;
        match k {
            "name" => name = v.to_string(),
            "type" => ty = Some(GgmlType::from_name(v)),
            "ne" => ne = Some(dims4(v)?),
            "op_params" => {
                let inner = v
                    .strip_prefix('[')
                    .and_then(|s| s.strip_suffix(']'))
                    .ok_or_else(|| format!("op_params `{v}` is not `[i:v,..]`"))?;
                let mut params = Vec::new();
                for p in inner.split(',').filter(|p| !p.is_empty()) {
                    let parsed = p
                        .split_once(':')
                        .and_then(|(i, x)| Some((i.parse().ok()?, x.parse().ok()?)));
                    params.push(parsed.ok_or_else(|| format!("op param `{p}` is not i:v"))?);
                }
                op_params = Some(params);
            }
            other => return Err(format!("unknown key `{other}`")),
        }
    }
    let out = Tensor { ty: ty.ok_or("no `type=`")?, ne: ne.ok_or("no `ne=`")? };
    let op_params = op_params.ok_or("no `op_params=`")?;
    // sources: T[ne]nb[..]? separated by commas
    let mut list = Vec::new();
    let mut rest = sources.trim();
    while !rest.is_empty() {
        let open = rest.find('[').ok_or_else(|| format!("source `{rest}` has no `[`"))?;
        let close = rest.find(']').ok_or_else(|| format!("source `{rest}` has no `]`"))?;
        if close < open {
            return Err(format!("source `{rest}` is not T[..]"));
        }
        let ty = &rest[..open];
        if ty.is_empty() || !ty.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("source type `{ty}` is not a type name"));
        }
        list.push(Tensor { ty: GgmlType::from_name(ty), ne: dims4(&rest[open..=close])? });
        rest = &rest[close + 1..];
        if let Some(after) = rest.strip_prefix("nb[") {
            let end = after.find(']').ok_or_else(|| "unterminated `nb[`".to_string())?;
            rest = &after[end + 1..];
        }
        rest = match rest.strip_prefix(',') {
            Some(r) => r,
            None if rest.is_empty() => rest,
            None => return Err(format!("`{rest}` after a source")),
        };
    }
    Ok(Vars { name, out, op_params, sources: list })
}

/// `graph-ops.txt` (see the module docs); empty lines are skipped.
pub fn parse_graph_ops(path: &Path, text: &str) -> Result<Vec<GraphOp>, HarnessError> {
    const MAX_PARAMS: usize = 64;
    const MAX_SOURCES: usize = 10;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let mut words = raw.split_whitespace();
        let mut next = |field: &str| -> Result<&str, HarnessError> {
            words.next().ok_or_else(|| corrupt(path, line, field, "the line ends before it"))
        };
        fn num<T: std::str::FromStr>(
            path: &Path,
            line: usize,
            field: &str,
            w: &str,
        ) -> Result<T, HarnessError> {
            w.parse().map_err(|_| corrupt(path, line, field, format!("`{w}` is not a number")))
        }
        let op: u32 = num(path, line, "op", next("op")?)?;
        let ty: u32 = num(path, line, "type", next("type")?)?;
        let mut ne = [0u64; 4];
        for (d, v) in ne.iter_mut().enumerate() {
            let f = format!("ne[{d}]");
            *v = num(path, line, &f, next(&f)?)?;
        }
        let n_params: usize = num(path, line, "op_params count", next("op_params count")?)?;
        if n_params > MAX_PARAMS {
            return Err(corrupt(path, line, "op_params count", format!("{n_params} > 64")));
        }
        let mut op_params = Vec::with_capacity(n_params);
        for p in 0..n_params {
            let f = format!("op_params[{p}]");
            op_params.push(num::<i32>(path, line, &f, next(&f)?)?);
        }
        let n_src: usize = num(path, line, "source count", next("source count")?)?;
        if n_src > MAX_SOURCES {
            return Err(corrupt(path, line, "source count", format!("{n_src} > 10")));
        }
        let mut sources = Vec::with_capacity(n_src);
        for s in 0..n_src {
            let f = format!("source {s} type");
            let ty: u32 = num(path, line, &f, next(&f)?)?;
            let mut ne = [0u64; 4];
            for (d, v) in ne.iter_mut().enumerate() {
                let f = format!("source {s} ne[{d}]");
                *v = num(path, line, &f, next(&f)?)?;
            }
            for d in 0..4 {
                let f = format!("source {s} nb[{d}]");
                num::<u64>(path, line, &f, next(&f)?)?;
            }
            sources.push(Tensor { ty: GgmlType::from_number(ty), ne });
        }
        let name = next("name")?;
        out.push(GraphOp {
            kind: OpKind::from_graph(op, &op_params),
            name: if name == "-" { String::new() } else { name.to_string() },
            out: Tensor { ty: GgmlType::from_number(ty), ne },
            op_params,
            sources,
            line,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "CREATE TABLE IF NOT EXISTS test_backend_ops (\n  test_time TEXT,\n  op_name TEXT\n);\n\n";
    const COLUMNS: &str = "test_time, build_commit, backend_name, op_name, op_params, test_mode, \
        supported, passed, error_message, time_us, flops, bandwidth_gb_s, memory_kb, n_runs, \
        device_description, backend_reg_name";

    fn insert(op: &str, params: &str, mode: &str, supported: &str, time: &str) -> String {
        format!(
            "INSERT INTO test_backend_ops ({COLUMNS}) VALUES ('2026-12-06T05:30:20Z', \
             'unknown', 'CPU', '{op}', '{params}', '{mode}', '{supported}', '1', '', '{time}', \
             '0.000000', '69.693796', '6', '10829824', '', '');\n"
        )
    }

    fn sql_error(text: &str) -> String {
        parse_ops_sql(Path::new("a/ops.sql"), text).unwrap_err().to_string()
    }

    #[test]
    fn ops_sql_rows_parse_with_their_shapes() {
        let text = format!(
            "{HEADER}{}{}{}{}",
            insert(
                "MUL_MAT",
                "name=ffn_gate-0,type=f32,ne=[1536,1,1,1],op_params=[],sources=q4_1[576,1536,1,1],f32[576,1,1,1]",
                "perf",
                "1",
                "48.028931"
            ),
            insert(
                "FLASH_ATTN_EXT",
                "name=node_21,type=f32,ne=[64,9,512,1],op_params=[0:1040187392,3:10],sources=f32[64,512,9,1]nb[4,2304,256,1179648],f16[64,512,3,1]nb[2,384,128,196608],f16[64,512,3,1]nb[2,384,128,196608],f16[512,512,1,1]",
                "perf",
                "1",
                "14019.850877"
            ),
            insert("ADD", "type=f32,ne=[4,1,1,1],op_params=[],sources=f32[4,1,1,1]", "eval", "1", "1"),
            insert("CPY", "name=it''s,type=f16,ne=[4,1,1,1],op_params=[],sources=f32[4,1,1,1]", "perf", "0", "0"),
        );
        let ops = parse_ops_sql(Path::new("ops.sql"), &text).unwrap();
        assert_eq!(ops.len(), 3, "the eval row is skipped");
        let mm = &ops[0];
        assert_eq!((mm.kind.clone(), mm.name.as_str()), (OpKind::MulMat, "ffn_gate-0"));
        assert_eq!(mm.out, Tensor { ty: GgmlType::F32, ne: [1536, 1, 1, 1] });
        assert_eq!(mm.sources[0], Tensor { ty: GgmlType::Q4_1, ne: [576, 1536, 1, 1] });
        assert_eq!(mm.time_us, Some(48.028931));
        assert_eq!((mm.n_runs, mm.line, mm.tokens()), (10829824, 6, 1));
        assert_eq!(mm.inputs(), "q4_1[576x1536], f32[576x1]");
        let fa = &ops[1];
        assert_eq!(fa.kind, OpKind::FlashAttnExt);
        assert_eq!(fa.sources.len(), 4);
        assert_eq!(fa.sources[1].ne, [64, 512, 3, 1]);
        assert_eq!((fa.param(0), fa.param(3), fa.param(1)), (1040187392, 10, 0));
        assert_eq!(fa.tokens(), 512);
        let cpy = &ops[2];
        assert_eq!((cpy.name.as_str(), cpy.time_us), ("it's", None), "quotes unescaped");
    }

    #[test]
    fn malformed_ops_sql_names_the_file_line_and_field() {
        let good = "name=x,type=f32,ne=[4,1,1,1],op_params=[],sources=f32[4,1,1,1]";
        let cases = [
            (insert("ADD", good, "perf", "1", "abc"), "time_us", "not a number"),
            (insert("ADD", good, "perf", "1", "0"), "time_us", "no time"),
            (
                insert(
                    "ADD",
                    "name=x,type=f32,ne=[4,1,1],op_params=[],sources=f32[4,1,1,1]",
                    "perf",
                    "1",
                    "1",
                ),
                "op_params",
                "3 dimensions",
            ),
            (
                insert(
                    "ADD",
                    "name=x,type=f32,ne=[4,1,1,1],op_params=[],sources=f32[4,1,1,1",
                    "perf",
                    "1",
                    "1",
                ),
                "op_params",
                "no `]`",
            ),
            (
                insert(
                    "ADD",
                    "name=x,type=f32,ne=[4,1,1,1],op_params=[1],sources=f32[4,1,1,1]",
                    "perf",
                    "1",
                    "1",
                ),
                "op_params",
                "not i:v",
            ),
            (
                insert("ADD", "name=x,ne=[4,1,1,1],op_params=[]", "perf", "1", "1"),
                "op_params",
                "sources=",
            ),
            (
                insert("ADD", good, "perf", "1", "1").replace(", '');", ");"),
                "VALUES",
                "15 values for 16 columns",
            ),
            (insert("ADD", good, "perf", "1", "1").replace(");", ")"), "VALUES", "`);`"),
            (insert("ADD", good, "perf", "1", "1").replace("'CPU'", "'CPU"), "VALUES", ""),
            (
                insert("ADD", good, "perf", "1", "1").replace("time_us", "time"),
                "time_us",
                "no such column",
            ),
        ];
        for (line, field, message) in cases {
            let e = sql_error(&format!("{HEADER}{line}"));
            assert!(
                e.contains("a/ops.sql")
                    && e.contains(&format!("line 6, {field}"))
                    && e.contains(message),
                "{e}"
            );
        }
    }

    const GRAPH: &str = "\
2 0 576 512 1 1 16 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 2 0 576 512 1 1 4 2304 1179648 1179648 0 576 512 1 1 4 2304 1179648 1179648 ffn_inp-0

42 1 192 512 1 1 16 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 3 0 192 1 1 1 4 768 768 768 27 1 1 1 1 8 8 8 8 1 192 512 1 1 2 384 196608 196608 cache_k_l0 (view)
100 0 1536 1 1 1 16 2 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 2 0 1536 1 1 1 4 6144 6144 6144 0 1536 1 1 1 4 6144 6144 6144 ffn_swiglu-0
29 0 49152 1 1 1 0 2 8 576 49152 1 1 34 612 30081024 30081024 0 576 1 1 1 4 2304 2304 2304 -
";

    #[test]
    fn graph_ops_lines_parse() {
        let ops = parse_graph_ops(Path::new("graph-ops.txt"), GRAPH).unwrap();
        assert_eq!(ops.len(), 4, "the empty line is skipped");
        assert_eq!(
            (ops[0].kind.clone(), ops[0].name.as_str(), ops[0].line),
            (OpKind::Add, "ffn_inp-0", 1)
        );
        assert_eq!(ops[0].tokens(), 512);
        let set = &ops[1];
        assert_eq!(
            (set.kind.clone(), set.name.as_str(), set.line),
            (OpKind::SetRows, "cache_k_l0", 3)
        );
        assert_eq!(set.out.ty, GgmlType::F16);
        assert_eq!(
            set.sources.iter().map(|s| s.ty.name()).collect::<Vec<_>>(),
            ["f32", "i64", "f16"]
        );
        assert_eq!(set.tokens(), 1);
        assert_eq!(ops[2].kind, OpKind::Swiglu, "GGML_OP_GLU named by its kind");
        assert_eq!(ops[3].kind, OpKind::MulMat);
        assert_eq!((ops[3].name.as_str(), ops[3].sources[0].ty.clone()), ("", GgmlType::Q8_0));
        assert!(ops[3].op_params.is_empty());
        // the transposed V cache (no flash attention): one value per row, tokens not shown
        let v = "42 1 1 98304 1 1 0 3 0 1 192 1 1 4 4 768 768 27 192 1 1 1 8 1536 1536 1536 1 1 \
                 98304 1 1 2 2 196608 196608 cache_v_l0 (reshaped) (view)";
        let v = parse_graph_ops(Path::new("g"), v).unwrap().remove(0);
        assert_eq!((v.name.as_str(), v.tokens()), ("cache_v_l0", 0));
        assert_eq!(OpKind::from_graph(9999, &[]).name(), "op#9999");
        assert_eq!(OpKind::from_graph(100, &[42]).name(), "GLU#42");
    }

    #[test]
    fn malformed_graph_ops_name_the_file_line_and_field() {
        let bad = [
            ("2 0 576 1 1", "line 1, ne[3]", "ends before"),
            ("2 0 576 1 x 1 0 0 n", "line 1, ne[2]", "`x` is not a number"),
            ("2 0 576 1 1 1 99 0", "line 1, op_params count", "99 > 64"),
            (
                "2 0 576 1 1 1 1 5 2 0 576 1 1 1 4 2304 2304",
                "line 1, source 0 nb[3]",
                "ends before",
            ),
            ("2 0 576 1 1 1 0 1 0 576 1 1 1 4 2304 2304 2304", "line 1, name", "ends before"),
            ("2 0 576 1 1 1 0 11", "line 1, source count", "11 > 10"),
        ];
        for (text, field, message) in bad {
            let e = parse_graph_ops(Path::new("d/graph-ops.txt"), &format!("{text}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("d/graph-ops.txt") && e.contains(field) && e.contains(message),
                "{e}"
            );
        }
        let e =
            parse_graph_ops(Path::new("g"), &format!("{GRAPH}7 0 x\n")).unwrap_err().to_string();
        assert!(e.contains("line 6, ne[0]"), "{e}");
    }

    #[test]
    fn missing_files_are_notes_and_unmeasured_graph_ops_are_found() {
        let dir = std::env::temp_dir().join(format!("gllm-ggml-ops-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ops = AnchorOps::load(&dir).unwrap();
        assert!(ops.measured.is_empty() && ops.unmeasured.is_empty());
        assert!(ops.notes.len() == 1 && ops.notes[0].contains("no `ops.sql`"), "{:?}", ops.notes);
        let sql = format!(
            "{HEADER}{}",
            insert(
                "ADD",
                "name=ffn_inp-0,type=f32,ne=[576,512,1,1],op_params=[],sources=f32[576,512,1,1],f32[576,512,1,1]",
                "perf",
                "1",
                "42.0"
            )
        );
        std::fs::write(dir.join("ops.sql"), &sql).unwrap();
        let ops = AnchorOps::load(&dir).unwrap();
        assert_eq!(ops.measured.len(), 1);
        assert!(
            ops.notes.len() == 1 && ops.notes[0].contains("no `graph-ops.txt`"),
            "{:?}",
            ops.notes
        );
        std::fs::write(dir.join("graph-ops.txt"), GRAPH).unwrap();
        let ops = AnchorOps::load(&dir).unwrap();
        assert!(ops.notes.is_empty(), "{:?}", ops.notes);
        let names: Vec<&str> = ops.unmeasured.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["cache_k_l0", "ffn_swiglu-0", ""], "ffn_inp-0 has its perf row");
        std::fs::write(dir.join("graph-ops.txt"), "1 2\n").unwrap();
        let e = AnchorOps::load(&dir).unwrap_err().to_string();
        assert!(e.contains("graph-ops.txt") && e.contains("line 1"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
