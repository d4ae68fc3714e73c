//! A synthetic llama GGUF for benchmarks and tests without a download: any llama shape,
//! seeded random weights stored like the real SmolLM2 file (Q4_1 matrices, a tied Q8_0 token
//! embedding, f32 norms), and a small byte-level BPE vocabulary (3 ChatML specials, the 256
//! byte tokens, a few English merges, padded with unused tokens to `vocab_size`), so
//! tokenize → forward → sample → decode all work.
//!
//! Scales keep activations finite and ordinary through every layer: matrix entries are
//! uniform with standard deviation `1/√k` (so `x·Wᵀ` keeps the scale of `x`), norms are 1,
//! the embedding's entries have standard deviation 0.05 (SmolLM2's is ~0.04), giving logits
//! of standard deviation ~1.

use std::path::{Path, PathBuf};

use gllm_kernels::quant::{quantize_row, QuantType};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::gguf::{GgufError, GgufWriter, Value, ValueType};

/// The shape and storage of a synthetic model.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticConfig {
    pub n_layers: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    /// Tokens in the vocabulary (at least the 259 base tokens plus the merges).
    pub vocab_size: usize,
    pub context_length: usize,
    pub rope_freq_base: f32,
    pub rms_norm_eps: f32,
    /// Type of every layer matrix.
    pub matrix_type: QuantType,
    /// Type of the token embedding (tied to the output projection).
    pub embedding_type: QuantType,
    pub seed: u64,
}

impl Default for SyntheticConfig {
    /// SmolLM2-135M's shapes and storage.
    fn default() -> Self {
        SyntheticConfig {
            n_layers: 30,
            n_embd: 576,
            n_ff: 1536,
            n_heads: 9,
            n_kv_heads: 3,
            vocab_size: 49152,
            context_length: 8192,
            rope_freq_base: 100_000.0,
            rms_norm_eps: 1e-5,
            matrix_type: QuantType::Q4_1,
            embedding_type: QuantType::Q8_0,
            seed: 0x5eed,
        }
    }
}

impl SyntheticConfig {
    /// A 2-layer model with small dimensions for fast tests (head size 16, 4 query heads
    /// sharing 2 KV heads).
    pub fn tiny() -> Self {
        SyntheticConfig {
            n_layers: 2,
            n_embd: 64,
            n_ff: 128,
            n_heads: 4,
            n_kv_heads: 2,
            vocab_size: 320,
            context_length: 256,
            ..SyntheticConfig::default()
        }
    }

    /// A file name that identifies the config (for caching built files).
    pub fn file_name(&self) -> String {
        format!(
            "gllm-synthetic-l{}-e{}-f{}-h{}-kv{}-v{}-c{}-{}-{}-s{:x}.gguf",
            self.n_layers,
            self.n_embd,
            self.n_ff,
            self.n_heads,
            self.n_kv_heads,
            self.vocab_size,
            self.context_length,
            self.matrix_type.name(),
            self.embedding_type.name(),
            self.seed
        )
    }
}

const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// Merges in rank order (byte-level text: `Ġ` is a space).
const MERGES: [(&str, &str); 24] = [
    ("Ġ", "t"),
    ("h", "e"),
    ("Ġt", "he"),
    ("i", "n"),
    ("e", "r"),
    ("a", "n"),
    ("o", "n"),
    ("Ġ", "a"),
    ("r", "e"),
    ("Ġ", "s"),
    ("e", "n"),
    ("a", "t"),
    ("o", "r"),
    ("Ġ", "o"),
    ("Ġ", "w"),
    ("e", "s"),
    ("Ġ", "c"),
    ("i", "s"),
    ("Ġ", "i"),
    ("Ġo", "f"),
    ("Ġa", "nd"),
    ("n", "d"),
    ("Ġ", "p"),
    ("in", "g"),
];

const CHAT_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a synthetic test model<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// GPT-2's printable stand-in for each byte.
fn byte_chars() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..256u32 {
        let printable = (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || b >= 0xae;
        table[b as usize] = if printable {
            char::from_u32(b).expect("latin-1")
        } else {
            let c = char::from_u32(next).expect("valid");
            next += 1;
            c
        };
    }
    table
}

/// Tokens, their types (1 normal, 3 control, 5 unused) and the merges.
fn vocabulary(vocab_size: usize) -> (Vec<String>, Vec<i32>, Vec<String>) {
    let mut tokens: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
    let mut types = vec![3; SPECIALS.len()];
    for c in byte_chars() {
        tokens.push(c.to_string());
        types.push(1);
    }
    let mut merges = Vec::new();
    for (a, b) in MERGES {
        merges.push(format!("{a} {b}"));
        let joined = format!("{a}{b}");
        if !tokens.contains(&joined) {
            tokens.push(joined);
            types.push(1);
        }
    }
    let mut n = 0;
    while tokens.len() < vocab_size {
        tokens.push(format!("<|unused_{n}|>"));
        types.push(5);
        n += 1;
    }
    (tokens, types, merges)
}

/// The smallest vocabulary [`build`] accepts.
pub fn base_vocab_size() -> usize {
    vocabulary(0).0.len()
}

fn strings(v: &[String]) -> Value {
    Value::Array(ValueType::String, v.iter().map(|s| Value::String(s.clone())).collect())
}

/// `rows × cols` uniform values with standard deviation `std` (times `row_scale(row)`),
/// quantized to `ty` row by row.
fn random_matrix(
    rng: &mut ChaCha8Rng,
    rows: usize,
    cols: usize,
    std: f32,
    ty: QuantType,
    row_scale: impl Fn(usize) -> f32,
) -> Vec<u8> {
    let row_bytes = ty.row_bytes(cols).expect("whole blocks (checked by build)");
    let mut out = vec![0u8; rows * row_bytes];
    let mut row = vec![0.0f32; cols];
    for (r, dst) in out.chunks_exact_mut(row_bytes).enumerate() {
        let half_width = std * row_scale(r) * 3f32.sqrt();
        for v in row.iter_mut() {
            *v = rng.gen_range(-half_width..=half_width);
        }
        quantize_row(ty, &row, dst).expect("a quantizable type (checked by build)");
    }
    out
}

fn ones(n: usize) -> Vec<u8> {
    std::iter::repeat_n(1.0f32.to_le_bytes(), n).flatten().collect()
}

/// Builds the GGUF of `config` in memory.
pub fn build(config: &SyntheticConfig) -> Result<GgufWriter, GgufError> {
    let invalid =
        |message: String| GgufError::Write { path: PathBuf::from("<synthetic>"), message };
    let c = config;
    if c.n_heads == 0
        || c.n_kv_heads == 0
        || !c.n_embd.is_multiple_of(c.n_heads)
        || !c.n_heads.is_multiple_of(c.n_kv_heads)
    {
        return Err(invalid(format!(
            "{} heads / {} KV heads do not fit an embedding of {}",
            c.n_heads, c.n_kv_heads, c.n_embd
        )));
    }
    for t in [c.matrix_type, c.embedding_type] {
        let block = t.block_elems();
        if !c.n_embd.is_multiple_of(block) || !c.n_ff.is_multiple_of(block) {
            return Err(invalid(format!(
                "{t} needs n_embd {} and n_ff {} to be multiples of {block}",
                c.n_embd, c.n_ff
            )));
        }
    }
    let (tokens, types, merges) = vocabulary(c.vocab_size);
    let vocab = tokens.len();
    let head_dim = c.n_embd / c.n_heads;
    let kv = c.n_kv_heads * head_dim;
    let mut w = GgufWriter::new();
    let u32v = |v: usize| Value::U32(v as u32);
    w.add("general.architecture", Value::String("llama".into()));
    w.add("general.name", Value::String("gllm synthetic llama".into()));
    w.add("llama.block_count", u32v(c.n_layers));
    w.add("llama.context_length", u32v(c.context_length));
    w.add("llama.embedding_length", u32v(c.n_embd));
    w.add("llama.feed_forward_length", u32v(c.n_ff));
    w.add("llama.attention.head_count", u32v(c.n_heads));
    w.add("llama.attention.head_count_kv", u32v(c.n_kv_heads));
    w.add("llama.rope.freq_base", Value::F32(c.rope_freq_base));
    w.add("llama.attention.layer_norm_rms_epsilon", Value::F32(c.rms_norm_eps));
    w.add("llama.rope.dimension_count", u32v(head_dim));
    w.add("llama.vocab_size", u32v(vocab));
    w.add("tokenizer.ggml.model", Value::String("gpt2".into()));
    w.add("tokenizer.ggml.pre", Value::String("smollm".into()));
    w.add("tokenizer.ggml.tokens", strings(&tokens));
    w.add(
        "tokenizer.ggml.token_type",
        Value::Array(ValueType::I32, types.iter().map(|&t| Value::I32(t)).collect()),
    );
    w.add("tokenizer.ggml.merges", strings(&merges));
    w.add("tokenizer.ggml.bos_token_id", Value::U32(1));
    w.add("tokenizer.ggml.eos_token_id", Value::U32(2));
    w.add("tokenizer.ggml.add_bos_token", Value::Bool(false));
    w.add("tokenizer.chat_template", Value::String(CHAT_TEMPLATE.into()));

    let mut rng = ChaCha8Rng::seed_from_u64(c.seed);
    let (e, f) = (c.n_embd as u64, c.n_ff as u64);
    let mt = c.matrix_type;
    // Padding tokens get rows 10× smaller: their logits stay near 0, so sampling mostly
    // picks real tokens and generated text is readable bytes (the compute is the same).
    let real = vocab - types.iter().filter(|&&t| t == 5).count();
    let embd_scale = |r: usize| if r < real { 1.0 } else { 0.1 };
    let embd = random_matrix(&mut rng, vocab, c.n_embd, 0.05, c.embedding_type, embd_scale);
    w.add_tensor("token_embd.weight", &[e, vocab as u64], c.embedding_type, embd)?;
    w.add_tensor("output_norm.weight", &[e], QuantType::F32, ones(c.n_embd))?;
    let std_e = 1.0 / (c.n_embd as f32).sqrt();
    let std_f = 1.0 / (c.n_ff as f32).sqrt();
    for l in 0..c.n_layers {
        let name = |part: &str| format!("blk.{l}.{part}.weight");
        w.add_tensor(name("attn_norm"), &[e], QuantType::F32, ones(c.n_embd))?;
        let q = random_matrix(&mut rng, c.n_embd, c.n_embd, std_e, mt, |_| 1.0);
        w.add_tensor(name("attn_q"), &[e, e], mt, q)?;
        let k = random_matrix(&mut rng, kv, c.n_embd, std_e, mt, |_| 1.0);
        w.add_tensor(name("attn_k"), &[e, kv as u64], mt, k)?;
        let v = random_matrix(&mut rng, kv, c.n_embd, std_e, mt, |_| 1.0);
        w.add_tensor(name("attn_v"), &[e, kv as u64], mt, v)?;
        let o = random_matrix(&mut rng, c.n_embd, c.n_embd, std_e, mt, |_| 1.0);
        w.add_tensor(name("attn_output"), &[e, e], mt, o)?;
        w.add_tensor(name("ffn_norm"), &[e], QuantType::F32, ones(c.n_embd))?;
        let gate = random_matrix(&mut rng, c.n_ff, c.n_embd, std_e, mt, |_| 1.0);
        w.add_tensor(name("ffn_gate"), &[e, f], mt, gate)?;
        let up = random_matrix(&mut rng, c.n_ff, c.n_embd, std_e, mt, |_| 1.0);
        w.add_tensor(name("ffn_up"), &[e, f], mt, up)?;
        let down = random_matrix(&mut rng, c.n_embd, c.n_ff, std_f, mt, |_| 1.0);
        w.add_tensor(name("ffn_down"), &[f, e], mt, down)?;
    }
    Ok(w)
}

/// Builds `config` and writes it to `path` atomically.
pub fn write(config: &SyntheticConfig, path: impl AsRef<Path>) -> Result<(), GgufError> {
    build(config)?.write(path)
}

/// The file of `config` in `dir` (default: the system temp folder), built on first use and
/// reused afterwards (its name encodes the config; the write is atomic, so a partial file is
/// never seen).
pub fn cached(config: &SyntheticConfig, dir: Option<&Path>) -> Result<PathBuf, GgufError> {
    let dir = dir.map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
    let path = dir.join(config.file_name());
    if !path.exists() {
        write(config, &path)?;
    }
    Ok(path)
}
