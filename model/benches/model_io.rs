//! Model I/O throughput: GGUF parsing and tokenizer load/encode/decode on the real SmolLM2
//! file (skipped with a visible message when absent), and GGUF parsing of the fixture.

use std::io::Write;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gllm_model::gguf::GgufFile;
use gllm_model::tokenizer::Tokenizer;

fn real_model() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GLLM_MODEL") {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .ancestors()
        .map(|d| d.join("models/SmolLM2-135M-Instruct.Q4_1.gguf"))
        .find(|p| p.exists())
}

/// ~100 KB of mixed text: the reference prompts repeated (prose, code, CJK, emoji, digits).
fn corpus() -> String {
    let prompts = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/prompts.txt"),
    )
    .expect("prompts.txt");
    let text: String = prompts
        .lines()
        .map(|l| l.split_once('\t').map_or(l, |(_, t)| t).replace("\\n", "\n") + "\n")
        .collect();
    text.repeat(100_000 / text.len() + 1)
}

fn bench(c: &mut Criterion) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/all-types.gguf");
    c.bench_function("gguf_open(all-types.gguf)", |b| b.iter(|| GgufFile::open(&fixture).unwrap()));
    let Some(path) = real_model() else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIP: model_io benches on the real model: SmolLM2-135M-Instruct.Q4_1.gguf not found (ci/fetch-model.sh or GLLM_MODEL)"
        );
        return;
    };
    c.bench_function("gguf_open(SmolLM2)", |b| b.iter(|| GgufFile::open(&path).unwrap()));
    let file = GgufFile::open(&path).unwrap();
    c.bench_function("tokenizer_from_gguf(SmolLM2)", |b| {
        b.iter(|| Tokenizer::from_gguf(&file).unwrap())
    });
    let tok = Tokenizer::from_gguf(&file).unwrap();
    let text = corpus();
    let ids = tok.encode(&text, false);
    let mut group = c.benchmark_group("tokenizer");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("encode_100KB", |b| b.iter(|| tok.encode(&text, false)));
    group.bench_function("decode_100KB", |b| b.iter(|| tok.decode(&ids, false).unwrap()));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
