//! `gllm-bench generate / tokenize / gguf` end to end on the tiny synthetic model: outputs,
//! the atomic f32 dump, and exit code 3 with a clear message on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gllm_model::synthetic::{self, SyntheticConfig};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gllm-bench"))
}

fn tiny(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.gguf");
    synthetic::write(&SyntheticConfig::tiny(), &path).unwrap();
    path
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn generate_json_reports_ids_text_and_rates() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path());
    let m = model.to_str().unwrap();
    let o = run(&[
        "generate",
        "--model",
        m,
        "--chat",
        "hi there",
        "-n",
        "6",
        "--ignore-eos",
        "--json",
        "--threads",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ids"].as_array().unwrap().len(), 6);
    assert_eq!(v["stage"], "quantized");
    assert_eq!(v["threads"], 2);
    assert_eq!(v["decode_tokens"], 5);
    assert!(v["prefill_tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(v["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
    // The chat template wraps the text: <|im_start|> (id 1) starts the prompt.
    assert_eq!(v["prompt_ids"][0], 1);
    // Greedy is the default and deterministic; every stage runs.
    for stage in ["naive", "simd", "flash"] {
        let o2 = run(&[
            "generate", "--model", m, "--prompt", "the cat", "-n", "4", "--json", "--stage", stage,
        ]);
        assert!(o2.status.success(), "{stage}: {}", stderr(&o2));
    }
    // Streaming text mode prints the rates.
    let o = run(&[
        "generate",
        "--model",
        m,
        "--prompt",
        "the cat",
        "-n",
        "4",
        "--temperature",
        "0.7",
        "--seed",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("prefill:") && text.contains("decode:") && text.contains("tokens/s"));
}

#[test]
fn tokenize_and_gguf_commands() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path());
    let m = model.to_str().unwrap();
    let o = run(&["tokenize", "--model", m, "--json", "--special", "<|im_start|>the"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ids"][0], 1, "special token parsed");
    let o = run(&["gguf", "info", m, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.to_string().contains("blk.1.ffn_down.weight"));
    let out = dir.path().join("norm.f32");
    let o = run(&["gguf", "dequant", m, "blk.0.attn_norm.weight", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(bytes.len(), 64 * 4);
    assert!(bytes.chunks_exact(4).all(|b| f32::from_le_bytes(b.try_into().unwrap()) == 1.0));
    let out = dir.path().join("q.f32");
    let o = run(&["gguf", "dequant", m, "blk.0.attn_q.weight", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap().len(), 64 * 64 * 4);
}

#[test]
fn bad_input_exits_3_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path());
    let m = model.to_str().unwrap();
    let garbage = dir.path().join("garbage.gguf");
    std::fs::write(&garbage, b"not a gguf file at all").unwrap();
    let g = garbage.to_str().unwrap();
    let out = dir.path().join("never.f32");
    let o_path = out.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["generate", "--model", "/no/such.gguf", "--prompt", "x"], "no such model file"),
        (vec!["generate", "--model", g, "--prompt", "x"], "garbage.gguf"),
        (vec!["generate", "--model", m, "--prompt", "x", "--stage", "bogus"], "unknown stage"),
        (vec!["generate", "--model", m, "--prompt", "x", "--threads", "0"], "--threads"),
        (
            vec!["generate", "--model", m, "--prompt", "x", "--temperature", "1", "--top-p", "2"],
            "top_p",
        ),
        (vec!["generate", "--model", m, "--prompt", "x", "-n", "100000"], "KV cache"),
        (vec!["generate", "--model", m], "--prompt"),
        (vec!["tokenize", "--model", "/no/such.gguf", "x"], "no such model file"),
        (vec!["gguf", "info", g], "garbage.gguf"),
        (vec!["gguf", "dequant", m, "no.such.tensor", "-o", o_path], "no.such.tensor"),
    ];
    for (args, needle) in cases {
        let o = run(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: message {err:?} lacks {needle:?}");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    }
    assert!(!out.exists(), "no partial output file");
}
