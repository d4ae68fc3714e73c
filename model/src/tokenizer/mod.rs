//! Byte-level BPE tokenizer built from GGUF metadata (`tokenizer.ggml.model` = `gpt2`):
//! special-token partitioning, the pre-tokenizer named by `tokenizer.ggml.pre`, BPE merges by
//! rank, decoding back to bytes, and the file's chat template.

mod bpe;
mod bytes;
mod chat;
mod pre;
mod vocab;

use std::path::PathBuf;

use thiserror::Error;

use crate::gguf::{GgufError, GgufFile};
pub use bytes::Utf8Stream;
pub use chat::{ChatMessage, ChatTemplate};
pub use pre::{PreTokenizer, PreTokenizerKind};

#[derive(Debug, Error)]
pub enum TokenizerError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("{}: `{key}` is {found:?}; supported: {supported}", path.display())]
    Unsupported { path: PathBuf, key: &'static str, found: String, supported: &'static str },
    #[error("{}: `{key}`: {message}", path.display())]
    Invalid { path: PathBuf, key: &'static str, message: String },
    #[error("token id {id} is outside the vocabulary of {vocab_size}")]
    UnknownId { id: u32, vocab_size: usize },
    #[error("{}: `tokenizer.chat_template`: {message}", path.display())]
    ChatTemplate { path: PathBuf, message: String },
}

/// GGUF token types (`tokenizer.ggml.token_type`, llama.cpp's `llama_token_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    Undefined,
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    pub fn from_id(id: i64) -> Option<Self> {
        Some(match id {
            0 => TokenType::Undefined,
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => return None,
        })
    }
}

/// Token texts that end a turn when marked as control tokens (llama.cpp's end-of-generation
/// heuristics use the same names).
const END_OF_GENERATION_TEXTS: [&str; 5] =
    ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>", "<|end|>"];

pub struct Tokenizer {
    path: PathBuf,
    tokens: vocab::Vocab,
    types: Vec<TokenType>,
    /// Bytes of each token's decoded text, concatenated; `decoded_at[i]..decoded_at[i + 1]`.
    decoded: Vec<u8>,
    decoded_at: Vec<u32>,
    merges: bpe::MergeTable,
    byte_ids: [u32; 256],
    pre: PreTokenizer,
    /// Control/unknown/user-defined tokens, longest text first.
    specials: Vec<u32>,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    unk: Option<u32>,
    add_bos: bool,
    chat_template: Option<String>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("path", &self.path)
            .field("vocab", &self.tokens.len())
            .field("merges", &self.merges.len())
            .field("pre", &self.pre.kind())
            .finish()
    }
}

enum Fragment {
    Text(usize, usize),
    Token(u32),
}

impl Tokenizer {
    /// Build the tokenizer of a GGUF file.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, TokenizerError> {
        let path = file.path().to_path_buf();
        let invalid = |key: &'static str, message: String| TokenizerError::Invalid {
            path: path.clone(),
            key,
            message,
        };
        let model = file.get_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(TokenizerError::Unsupported {
                path: path.clone(),
                key: "tokenizer.ggml.model",
                found: model.to_string(),
                supported: "gpt2 (byte-level BPE)",
            });
        }
        let pre_name = file.get_str("tokenizer.ggml.pre")?;
        let pre_kind =
            PreTokenizerKind::from_name(pre_name).ok_or_else(|| TokenizerError::Unsupported {
                path: path.clone(),
                key: "tokenizer.ggml.pre",
                found: pre_name.to_string(),
                supported: PreTokenizerKind::SUPPORTED,
            })?;

        let texts = file.get_str_array("tokenizer.ggml.tokens")?;
        // u32 offsets into the concatenated texts and u32 ids
        let total_bytes: usize = texts.iter().map(|t| t.len()).sum();
        if texts.is_empty() || texts.len() >= u32::MAX as usize || total_bytes > u32::MAX as usize {
            return Err(invalid(
                "tokenizer.ggml.tokens",
                format!("{} tokens of {total_bytes} bytes", texts.len()),
            ));
        }
        let tokens = vocab::Vocab::new(&texts);
        drop(texts);
        let n = tokens.len();
        let types = match file.contains("tokenizer.ggml.token_type") {
            false => vec![TokenType::Normal; n],
            true => {
                let ids = file.get_int_array("tokenizer.ggml.token_type")?;
                if ids.len() != n {
                    return Err(invalid(
                        "tokenizer.ggml.token_type",
                        format!("{} types for {n} tokens", ids.len()),
                    ));
                }
                ids.iter()
                    .enumerate()
                    .map(|(i, &t)| {
                        TokenType::from_id(t).ok_or_else(|| {
                            invalid(
                                "tokenizer.ggml.token_type",
                                format!("token {i} has unknown type {t}"),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?
            }
        };

        // Byte-level vocabularies need not hold all 256 byte characters (SmolLM2 lacks a few
        // control bytes); a byte without a token is dropped when encoding, as in llama.cpp.
        let alphabet = bytes::byte_to_char_table();
        let mut byte_ids = [bpe::NO_TOKEN; 256];
        for (b, c) in alphabet.iter().enumerate() {
            if let Some(id) = tokens.id(c.to_string().as_str()) {
                byte_ids[b] = id;
            }
        }

        let merge_texts = file.get_str_array("tokenizer.ggml.merges")?;
        let mut merges =
            bpe::MergeTable::with_capacity_and_hasher(merge_texts.len(), Default::default());
        let mut joined = String::new();
        for (rank, m) in merge_texts.iter().enumerate() {
            // Split at the first space after the first character (a pair's left side is never
            // empty; the byte alphabet has no space character).
            let split =
                m.char_indices().skip(1).find(|&(_, c)| c == ' ').map(|(i, _)| i).ok_or_else(
                    || {
                        invalid(
                            "tokenizer.ggml.merges",
                            format!("merge {rank} {m:?} is not two tokens separated by a space"),
                        )
                    },
                )?;
            let (left, right) = (&m[..split], &m[split + 1..]);
            joined.clear();
            joined.push_str(left);
            joined.push_str(right);
            // Pairs whose sides or result are not tokens can never apply.
            if let (Some(l), Some(r), Some(merged)) =
                (tokens.id(left), tokens.id(right), tokens.id(joined.as_str()))
            {
                merges.entry(bpe::pair(l, r)).or_insert((rank as u32, merged));
            }
        }

        let optional_id = |key: &'static str| -> Result<Option<u32>, TokenizerError> {
            match file.get(key) {
                None => Ok(None),
                Some(_) => {
                    let id = file.get_uint(key)?;
                    if id >= n as u64 {
                        return Err(invalid(key, format!("id {id} outside the {n} tokens")));
                    }
                    Ok(Some(id as u32))
                }
            }
        };
        let bos = optional_id("tokenizer.ggml.bos_token_id")?;
        let eos = optional_id("tokenizer.ggml.eos_token_id")?;
        let eot = optional_id("tokenizer.ggml.eot_token_id")?;
        let unk = optional_id("tokenizer.ggml.unknown_token_id")?;
        let add_bos = match file.get("tokenizer.ggml.add_bos_token") {
            None => false,
            Some(_) => file.get_bool("tokenizer.ggml.add_bos_token")?,
        };
        let chat_template = match file.get("tokenizer.chat_template") {
            None => None,
            Some(_) => Some(file.get_str("tokenizer.chat_template")?.to_string()),
        };

        let mut decoded = Vec::new();
        let mut decoded_at = Vec::with_capacity(n + 1);
        for (t, ty) in tokens.texts().zip(&types) {
            // decoded text is never longer than the text (≤ u32::MAX bytes, checked above)
            decoded_at.push(decoded.len() as u32);
            match ty {
                TokenType::Control | TokenType::UserDefined | TokenType::Unknown => {
                    decoded.extend_from_slice(t.as_bytes())
                }
                _ => bytes::decode_token_text(t, &mut decoded),
            }
        }
        decoded_at.push(decoded.len() as u32);

        let mut specials: Vec<u32> = (0..n as u32)
            .filter(|&i| {
                matches!(
                    types[i as usize],
                    TokenType::Control | TokenType::UserDefined | TokenType::Unknown
                ) && !tokens.text(i).is_empty()
            })
            .collect();
        specials.sort_by_key(|&i| (std::cmp::Reverse(tokens.text(i).len()), i));

        Ok(Tokenizer {
            path,
            tokens,
            types,
            decoded,
            decoded_at,
            merges,
            byte_ids,
            pre: PreTokenizer::new(pre_kind),
            specials,
            bos,
            eos,
            eot,
            unk,
            add_bos,
            chat_template,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }
    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }
    pub fn unknown_id(&self) -> Option<u32> {
        self.unk
    }
    /// `tokenizer.ggml.add_bos_token` (false when absent).
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }
    pub fn pre_tokenizer(&self) -> PreTokenizerKind {
        self.pre.kind()
    }
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id)
    }
    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.types.get(id as usize).copied()
    }
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.tokens.id(text)
    }

    /// Does `id` end a generation: the EOS or EOT token, or a control token named like an
    /// end of turn (`<|im_end|>`, `<|endoftext|>`, …)?
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        Some(id) == self.eos
            || Some(id) == self.eot
            || (self.token_type(id) == Some(TokenType::Control)
                && END_OF_GENERATION_TEXTS.contains(&self.tokens.text(id)))
    }

    /// Token ids of `text` (no BOS added). With `parse_special`, control tokens written in the
    /// text (`<|im_start|>`) become single tokens; user-defined tokens always do (as in
    /// llama.cpp).
    pub fn encode(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        let mut ids = Vec::new();
        let mut scratch = bpe::Scratch::default();
        for fragment in self.partition_specials(text, parse_special) {
            match fragment {
                Fragment::Token(id) => out.push(id),
                Fragment::Text(start, end) => {
                    self.pre.split(&text[start..end], &mut |piece| {
                        ids.clear();
                        ids.extend(piece.bytes().map(|b| self.byte_ids[b as usize]));
                        bpe::merge(&ids, &self.merges, &mut scratch, &mut out);
                    });
                }
            }
        }
        out
    }

    /// What a model is fed for `text`: [`Tokenizer::encode`], preceded by the BOS token when
    /// the file asks for one (`tokenizer.ggml.add_bos_token`), as llama.cpp's
    /// `llama_tokenize(…, add_special = true, …)`.
    pub fn encode_prompt(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let mut ids = Vec::new();
        if let (true, Some(bos)) = (self.add_bos, self.bos) {
            ids.push(bos);
        }
        ids.extend(self.encode(text, parse_special));
        ids
    }

    /// Split `text` at every occurrence of a special token, longest tokens first (each token
    /// splits the text fragments the longer ones left), as llama.cpp's partitioning does.
    fn partition_specials(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
        let mut fragments = vec![Fragment::Text(0, text.len())];
        if text.is_empty() {
            return Vec::new();
        }
        for &id in &self.specials {
            if !parse_special && self.types[id as usize] != TokenType::UserDefined {
                continue;
            }
            let needle = self.tokens.text(id);
            if !text.contains(needle) {
                continue;
            }
            let mut next = Vec::with_capacity(fragments.len() + 2);
            for f in fragments {
                match f {
                    Fragment::Text(start, end) => {
                        let mut pos = start;
                        while let Some(found) = text[pos..end].find(needle) {
                            let at = pos + found;
                            if at > pos {
                                next.push(Fragment::Text(pos, at));
                            }
                            next.push(Fragment::Token(id));
                            pos = at + needle.len();
                        }
                        if pos < end {
                            next.push(Fragment::Text(pos, end));
                        }
                    }
                    token => next.push(token),
                }
            }
            fragments = next;
        }
        fragments
    }

    /// The bytes `id` decodes to. Control and unknown tokens give their text only when
    /// `special` (otherwise nothing), as llama.cpp's `token_to_piece`.
    pub fn token_bytes(&self, id: u32, special: bool) -> Result<&[u8], TokenizerError> {
        let ty = self
            .token_type(id)
            .ok_or(TokenizerError::UnknownId { id, vocab_size: self.tokens.len() })?;
        if !special && matches!(ty, TokenType::Control | TokenType::Unknown) {
            return Ok(&[]);
        }
        let i = id as usize;
        Ok(&self.decoded[self.decoded_at[i] as usize..self.decoded_at[i + 1] as usize])
    }

    /// Decode `ids` to text (invalid UTF-8 becomes U+FFFD).
    pub fn decode(&self, ids: &[u32], special: bool) -> Result<String, TokenizerError> {
        let mut bytes = Vec::new();
        for &id in ids {
            bytes.extend_from_slice(self.token_bytes(id, special)?);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A decoder for tokens arriving one at a time (characters split across tokens wait).
    pub fn stream_decoder(&self, special: bool) -> StreamDecoder<'_> {
        StreamDecoder { tokenizer: self, special, utf8: Utf8Stream::new() }
    }

    /// The file's chat template (ChatML only).
    pub fn chat_template(&self) -> Result<ChatTemplate, TokenizerError> {
        let source = self.chat_template.as_deref().ok_or_else(|| TokenizerError::ChatTemplate {
            path: self.path.clone(),
            message: "the file has no chat template".into(),
        })?;
        ChatTemplate::from_jinja(source)
            .map_err(|message| TokenizerError::ChatTemplate { path: self.path.clone(), message })
    }
}

/// Streaming detokenizer: `push` returns the text completed by each token.
pub struct StreamDecoder<'a> {
    tokenizer: &'a Tokenizer,
    special: bool,
    utf8: Utf8Stream,
}

impl StreamDecoder<'_> {
    pub fn push(&mut self, id: u32) -> Result<String, TokenizerError> {
        let bytes = self.tokenizer.token_bytes(id, self.special)?;
        Ok(self.utf8.push(bytes))
    }

    /// Flush what is left at the end of the stream.
    pub fn finish(&mut self) -> String {
        self.utf8.finish()
    }
}

/// `tokenize --json`: `{"ids": [...]}`.
pub fn tokenize_json(tokenizer: &Tokenizer, text: &str, parse_special: bool) -> serde_json::Value {
    serde_json::json!({ "ids": tokenizer.encode(text, parse_special) })
}

/// `tokenize` as text: one line per token, `id<TAB>piece` with the piece's text escaped.
pub fn tokenize_text(tokenizer: &Tokenizer, text: &str, parse_special: bool) -> String {
    let mut out = String::new();
    for id in tokenizer.encode(text, parse_special) {
        let piece = tokenizer.token_bytes(id, true).unwrap_or(&[]);
        out.push_str(&format!("{id}\t{:?}\n", String::from_utf8_lossy(piece)));
    }
    out
}
