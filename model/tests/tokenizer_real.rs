//! The tokenizer of the real SmolLM2 file against llama.cpp's answers
//! (`llama-cpp-reference.jsonl`). Skipped visibly when the model file is absent.

mod common;

use gllm_model::gguf::GgufFile;
use gllm_model::tokenizer::{PreTokenizerKind, Tokenizer};

fn reference() -> Vec<serde_json::Value> {
    std::fs::read_to_string(common::data("llama-cpp-reference.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn load(test: &str) -> Option<Tokenizer> {
    let path = common::real_model(test)?;
    let file = GgufFile::open(path).unwrap();
    Some(Tokenizer::from_gguf(&file).unwrap())
}

#[test]
fn every_tokenize_line_matches_llama_cpp() {
    let Some(tok) = load("every_tokenize_line_matches_llama_cpp") else { return };
    assert_eq!(tok.pre_tokenizer(), PreTokenizerKind::SmolLm);
    let mut checked = 0;
    for line in reference().iter().filter(|l| l["kind"] == "tokenize") {
        let text = line["text"].as_str().unwrap();
        let special = line["special"].as_bool().unwrap();
        let want = ids(&line["ids"]);
        let got = tok.encode(text, special);
        assert_eq!(got, want, "text {text:?} special={special}");
        checked += 1;
    }
    assert_eq!(checked, 15);
}

#[test]
fn every_greedy_prompt_tokenizes_to_llama_cpp_prompt_ids() {
    let Some(tok) = load("every_greedy_prompt_tokenizes_to_llama_cpp_prompt_ids") else { return };
    let mut checked = 0;
    for line in reference().iter().filter(|l| l["kind"] == "greedy") {
        let prompt = line["prompt"].as_str().unwrap();
        assert_eq!(tok.encode(prompt, true), ids(&line["prompt_ids"]), "{prompt:?}");
        // and llama.cpp's continuation decodes to its text
        let text = tok.decode(&ids(&line["ids"]), false).unwrap();
        assert_eq!(text, line["text"].as_str().unwrap(), "{prompt:?}");
        checked += 1;
    }
    assert_eq!(checked, 3);
}

#[test]
fn chat_template_reproduces_the_greedy_chat_prompts() {
    let Some(tok) = load("chat_template_reproduces_the_greedy_chat_prompts") else { return };
    let template = tok.chat_template().unwrap();
    assert_eq!(
        template.default_system_prompt(),
        Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face")
    );
    let prompts: Vec<String> = reference()
        .iter()
        .filter(|l| l["kind"] == "greedy")
        .map(|l| l["prompt"].as_str().unwrap().to_string())
        .collect();
    assert!(prompts.contains(&template.user_prompt("What is the capital of France?")));
    assert!(prompts.contains(&template.user_prompt("Write a short poem about the sea.")));
}

#[test]
fn decode_inverts_encode_and_streams_split_characters() {
    let Some(tok) = load("decode_inverts_encode_and_streams_split_characters") else { return };
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_id(), Some(2));
    assert!(tok.is_end_of_generation(2));
    assert!(tok.is_end_of_generation(tok.token_id("<|endoftext|>").unwrap()));
    assert!(!tok.is_end_of_generation(tok.token_id("Hello").unwrap()));
    for line in reference() {
        let text = line.get("text").and_then(|t| t.as_str()).unwrap_or_default();
        let prompt = line.get("prompt").and_then(|t| t.as_str()).unwrap_or_default();
        for s in [text, prompt] {
            for special in [false, true] {
                let ids = tok.encode(s, special);
                assert_eq!(tok.decode(&ids, special).unwrap(), s, "{s:?} special={special}");
                let mut stream = tok.stream_decoder(special);
                let mut streamed = String::new();
                for &id in &ids {
                    let part = stream.push(id).unwrap();
                    assert!(!part.contains('\u{fffd}'), "{s:?}: replacement in stream");
                    streamed.push_str(&part);
                }
                streamed.push_str(&stream.finish());
                assert_eq!(streamed, s);
            }
        }
    }
    // control tokens vanish unless asked for
    let ids = tok.encode("<|im_start|>user", true);
    assert_eq!(ids[0], 1);
    assert_eq!(tok.decode(&ids, false).unwrap(), "user");
    assert_eq!(tok.decode(&ids, true).unwrap(), "<|im_start|>user");
    assert!(tok.decode(&[49152], false).is_err());
}

#[test]
fn long_inputs_tokenize_in_linear_time_shape() {
    // Not a timing assertion: a 200 KB word with no pre-token boundary and a 200 KB run of
    // spaces must finish (an O(n²) merge would take minutes here).
    let Some(tok) = load("long_inputs_tokenize_in_linear_time_shape") else { return };
    let word = "ab".repeat(100_000);
    let ids = tok.encode(&word, false);
    assert_eq!(tok.decode(&ids, false).unwrap(), word);
    let spaces = " ".repeat(200_000) + "x";
    let ids = tok.encode(&spaces, false);
    assert_eq!(tok.decode(&ids, false).unwrap(), spaces);
}

/// 1000 random strings (ASCII, whitespace runs, contractions, digits, CJK, emoji, combining
/// marks, other-number characters, control tokens) tokenized by Hugging Face `tokenizers`
/// built from this file's vocabulary and merges (digits split, then byte-level GPT-2 regex),
/// special tokens parsed: a second outside reference beyond llama.cpp's 15 lines.
#[test]
fn random_strings_match_hugging_face_tokenizers() {
    let Some(tok) = load("random_strings_match_hugging_face_tokenizers") else { return };
    let text = std::fs::read_to_string(common::data("hf-tokenizers-reference.jsonl")).unwrap();
    let mut n = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let s = v["text"].as_str().unwrap();
        assert_eq!(tok.encode(s, true), ids(&v["ids"]), "{s:?}");
        n += 1;
    }
    assert_eq!(n, 1000);
}
