//! The tokenizer on tiny hand-built vocabularies written with the GGUF writer (no model file).

use gllm_model::gguf::{GgufFile, GgufWriter, Value, ValueType};
use gllm_model::tokenizer::{Tokenizer, TokenizerError};

const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

struct Vocab {
    tokens: Vec<String>,
    types: Vec<i32>,
    merges: Vec<String>,
    pre: &'static str,
}

fn byte_char(b: u8) -> char {
    let printable = |b: u32| {
        (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b)
    };
    if printable(b as u32) {
        return b as char;
    }
    let n = (0..b as u32).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + n).unwrap()
}

impl Vocab {
    fn new(pre: &'static str, merges: &[&str]) -> Self {
        let mut v = Vocab { tokens: vec![], types: vec![], merges: vec![], pre };
        for (t, ty) in [
            ("<|endoftext|>", CONTROL),
            ("<|im_start|>", CONTROL),
            ("<|im_end|>", CONTROL),
            ("<|im", CONTROL),
            ("<tool>", USER_DEFINED),
        ] {
            v.tokens.push(t.into());
            v.types.push(ty);
        }
        for b in 0..=255u8 {
            v.tokens.push(byte_char(b).to_string());
            v.types.push(1);
        }
        for m in merges {
            v.merges.push(m.to_string());
            let merged = m.replace(' ', "");
            if !v.tokens.contains(&merged) {
                v.tokens.push(merged);
                v.types.push(1);
            }
        }
        v
    }

    fn writer(&self) -> GgufWriter {
        let strings = |xs: &[String]| {
            Value::Array(ValueType::String, xs.iter().map(|s| Value::String(s.clone())).collect())
        };
        let mut w = GgufWriter::new();
        w.add("tokenizer.ggml.model", Value::String("gpt2".into()));
        w.add("tokenizer.ggml.pre", Value::String(self.pre.into()));
        w.add("tokenizer.ggml.tokens", strings(&self.tokens));
        w.add(
            "tokenizer.ggml.token_type",
            Value::Array(ValueType::I32, self.types.iter().map(|&t| Value::I32(t)).collect()),
        );
        w.add("tokenizer.ggml.merges", strings(&self.merges));
        w.add("tokenizer.ggml.bos_token_id", Value::U32(1));
        w.add("tokenizer.ggml.eos_token_id", Value::U32(2));
        w
    }

    fn build(&self) -> Tokenizer {
        Tokenizer::from_gguf(&file(&self.writer())).unwrap()
    }
}

fn file(w: &GgufWriter) -> GgufFile {
    GgufFile::from_bytes(w.to_bytes().unwrap(), "tiny.gguf").unwrap()
}

fn texts(tok: &Tokenizer, ids: &[u32]) -> Vec<String> {
    ids.iter().map(|&id| tok.token_text(id).unwrap().to_string()).collect()
}

#[test]
fn merges_apply_by_rank_and_ties_go_left_to_right() {
    let tok = Vocab::new("gpt2", &["l l", "h e", "he ll", "hell o", "a a"]).build();
    assert_eq!(texts(&tok, &tok.encode("hello", false)), ["hello"]);
    // "e l" is not a merge, so "hel" stays he + l
    assert_eq!(texts(&tok, &tok.encode("hel", false)), ["he", "l"]);
    assert_eq!(texts(&tok, &tok.encode("aaa", false)), ["aa", "a"]);
    assert_eq!(texts(&tok, &tok.encode("aaaaa", false)), ["aa", "aa", "a"]);
    // a space is the byte character Ġ; with no "Ġ h" merge it stays alone
    assert_eq!(texts(&tok, &tok.encode("hello hello", false)), ["hello", "Ġ", "hello"]);
}

#[test]
fn encode_prompt_adds_bos_only_when_the_file_says_so() {
    let v = Vocab::new("gpt2", &[]);
    let tok = v.build();
    assert!(!tok.add_bos());
    assert_eq!(tok.encode_prompt("a", false), tok.encode("a", false));
    let mut w = v.writer();
    w.add("tokenizer.ggml.add_bos_token", Value::Bool(true));
    let tok = Tokenizer::from_gguf(&file(&w)).unwrap();
    assert_eq!(tok.encode_prompt("a", false), [vec![1], tok.encode("a", false)].concat());
}

#[test]
fn pre_tokenizer_follows_tokenizer_ggml_pre() {
    let gpt2 = Vocab::new("gpt2", &["Ġ 1", "1 2"]).build();
    let smollm = Vocab::new("smollm", &["Ġ 1", "1 2"]).build();
    assert_eq!(texts(&gpt2, &gpt2.encode("a 12", false)), ["a", "Ġ1", "2"]);
    assert_eq!(texts(&smollm, &smollm.encode("a 12", false)), ["a", "Ġ", "1", "2"]);
    assert_eq!(texts(&gpt2, &gpt2.encode("12", false)), ["12"]);
}

#[test]
fn special_tokens_longest_first_only_when_asked_user_defined_always() {
    let tok = Vocab::new("gpt2", &[]).build();
    let text = "<|im_start|>x<tool><|im";
    let with = tok.encode(text, true);
    assert_eq!(texts(&tok, &with), ["<|im_start|>", "x", "<tool>", "<|im"]);
    let without = tok.encode(text, false);
    assert!(without.contains(&4), "user-defined <tool> is parsed even without special");
    assert!(!without.contains(&1) && !without.contains(&3));
    assert_eq!(tok.decode(&without, false).unwrap(), text);
    assert_eq!(tok.decode(&with, true).unwrap(), text);
    // control tokens are silent unless decoding with special
    assert_eq!(tok.decode(&with, false).unwrap(), "x<tool>");
    assert!(tok.encode("", true).is_empty());
}

#[test]
fn bytes_round_trip_and_missing_byte_tokens_are_dropped() {
    let tok = Vocab::new("smollm", &[]).build();
    let all: String = (1..128u8).map(char::from).collect::<String>() + "ünï🦀";
    let ids = tok.encode(&all, false);
    assert_eq!(tok.decode(&ids, false).unwrap(), all);
    let mut v = Vocab::new("gpt2", &[]);
    let nul = v.tokens.iter().position(|t| t == "Ā").unwrap();
    v.tokens[nul] = "unused".into();
    let tok = v.build();
    assert_eq!(tok.decode(&tok.encode("\0x\0", false), false).unwrap(), "x");
}

#[test]
fn stream_decoder_holds_split_characters() {
    let tok = Vocab::new("gpt2", &[]).build();
    let ids = tok.encode("é🦀", false);
    assert_eq!(ids.len(), 6);
    let mut s = tok.stream_decoder(false);
    let parts: Vec<String> = ids.iter().map(|&id| s.push(id).unwrap()).collect();
    assert_eq!(parts, ["", "é", "", "", "", "🦀"]);
    assert_eq!(s.finish(), "");
}

fn error(w: &GgufWriter) -> String {
    match Tokenizer::from_gguf(&file(w)) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_tokenizer_metadata_gives_errors_naming_the_key() {
    let v = Vocab::new("gpt2", &["h e"]);
    let mut w = v.writer();
    w.add("tokenizer.ggml.model", Value::String("llama".into()));
    let e = error(&w);
    assert!(
        e.contains("tokenizer.ggml.model") && e.contains("llama") && e.contains("tiny.gguf"),
        "{e}"
    );
    let mut w = v.writer();
    w.add("tokenizer.ggml.pre", Value::String("qwen2".into()));
    let e = error(&w);
    assert!(e.contains("tokenizer.ggml.pre") && e.contains("qwen2") && e.contains("smollm"), "{e}");
    let mut w = v.writer();
    w.add(
        "tokenizer.ggml.merges",
        Value::Array(ValueType::String, vec![Value::String("he".into())]),
    );
    assert!(error(&w).contains("merge 0 \"he\""), "{}", error(&w));
    let mut w = v.writer();
    w.add("tokenizer.ggml.token_type", Value::Array(ValueType::I32, vec![Value::I32(1)]));
    assert!(error(&w).contains("1 types for"), "{}", error(&w));
    let mut w = v.writer();
    w.add(
        "tokenizer.ggml.token_type",
        Value::Array(ValueType::I32, vec![Value::I32(9); v.tokens.len()]),
    );
    assert!(error(&w).contains("unknown type 9"), "{}", error(&w));
    let mut w = v.writer();
    w.add("tokenizer.ggml.eos_token_id", Value::U32(1_000_000));
    assert!(error(&w).contains("tokenizer.ggml.eos_token_id"), "{}", error(&w));
    let mut w = v.writer();
    w.add("tokenizer.ggml.tokens", Value::Array(ValueType::I32, vec![]));
    assert!(error(&w).contains("ARRAY[INT32]"), "{}", error(&w));
    let mut w = GgufWriter::new();
    w.add("tokenizer.ggml.model", Value::String("gpt2".into()));
    assert!(error(&w).contains("tokenizer.ggml.pre` is missing"), "{}", error(&w));
    let tok = v.build();
    assert!(matches!(tok.decode(&[u32::MAX], false), Err(TokenizerError::UnknownId { .. })));
    assert!(tok.chat_template().unwrap_err().to_string().contains("no chat template"));
}

/// The heap-based merge against a plain reference (repeatedly merge the adjacent pair of
/// lowest rank, leftmost first) on random vocabularies and random strings; and
/// decode(encode(x)) == x.
#[test]
fn heap_merge_equals_the_plain_algorithm_on_random_vocabularies() {
    use gllm_model::tokenizer::{PreTokenizer, PreTokenizerKind};
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;

    let alphabet: Vec<char> = "ab c\n1é🦀".chars().collect();
    for seed in 0..20u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        // random merges of existing tokens (byte characters and earlier merges)
        let mut v = Vocab::new(if seed % 2 == 0 { "gpt2" } else { "smollm" }, &[]);
        let mut pool: Vec<String> =
            "ab c\n1é🦀".bytes().map(|b| byte_char(b).to_string()).collect();
        for _ in 0..60 {
            let l = pool[rng.gen_range(0..pool.len())].clone();
            let r = pool[rng.gen_range(0..pool.len())].clone();
            let merged = format!("{l}{r}");
            if v.tokens.contains(&merged) || v.merges.contains(&format!("{l} {r}")) {
                continue;
            }
            v.merges.push(format!("{l} {r}"));
            v.tokens.push(merged.clone());
            v.types.push(1);
            pool.push(merged);
        }
        let tok = v.build();
        let rank: HashMap<(String, String), usize> = v
            .merges
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let (l, r) = m.split_once(' ').unwrap();
                ((l.to_string(), r.to_string()), i)
            })
            .collect();
        let pre = PreTokenizer::new(tok.pre_tokenizer());
        assert!(matches!(tok.pre_tokenizer(), PreTokenizerKind::Gpt2 | PreTokenizerKind::SmolLm));
        for _ in 0..50 {
            let len = rng.gen_range(0..60);
            let text: String =
                (0..len).map(|_| alphabet[rng.gen_range(0..alphabet.len())]).collect();
            let mut want = Vec::new();
            pre.split(&text, &mut |piece| {
                let mut symbols: Vec<String> =
                    piece.bytes().map(|b| byte_char(b).to_string()).collect();
                loop {
                    let best = (0..symbols.len().saturating_sub(1))
                        .filter_map(|i| {
                            rank.get(&(symbols[i].clone(), symbols[i + 1].clone())).map(|&r| (r, i))
                        })
                        .min();
                    let Some((_, i)) = best else { break };
                    let right = symbols.remove(i + 1);
                    symbols[i].push_str(&right);
                }
                want.extend(symbols.iter().map(|s| tok.token_id(s).unwrap()));
            });
            let got = tok.encode(&text, false);
            assert_eq!(got, want, "seed {seed}: {text:?}");
            assert_eq!(tok.decode(&got, false).unwrap(), text);
        }
    }
}
