//! `cargo run --release -p gllm-model --example gguf_info -- FILE [--json]`: the summary the
//! CLI's `gguf info` prints, for trying the reader on any file.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.iter().find(|a| !a.starts_with("--")) else {
        eprintln!("usage: gguf_info FILE [--json]");
        return ExitCode::from(3);
    };
    match gllm_model::gguf::GgufFile::open(path) {
        Ok(file) => {
            if args.iter().any(|a| a == "--json") {
                let json = gllm_model::gguf::info_json(&file, Some(16));
                println!("{}", serde_json::to_string_pretty(&json).expect("JSON values"));
            } else {
                print!("{}", gllm_model::gguf::info_text(&file));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
    }
}
