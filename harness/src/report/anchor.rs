//! llama.cpp measured on the same machine (`ci/llama-cpp-anchor.sh`), beside the end-to-end
//! results: the report quotes each stage's tokens/s with llama-bench's figure for the same
//! model, phase and thread count, and the ratio between them.
//!
//! The anchor folder holds `build.txt` (what was built and measured: version, flags, CPU,
//! model SHA-256), `llama-bench.json` (llama-bench `-o json`), `anchor.md` (its tables,
//! copied next to the report), and the per-op files `ops.sql` and `graph-ops.txt`
//! ([`super::ggml_ops`], paired with our cases by [`super::ops_beside`]).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::baseline::{CaseKind, ResultFile};
use crate::error::HarnessError;
use crate::report::ggml_ops::AnchorOps;
use crate::report::markdown::{cut_tokens, tokens_of};

/// One llama-bench test: `pp<n_prompt>` (prefill) or `tg<n_gen>` (decode) at `n_threads`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct BenchRun {
    pub n_threads: usize,
    pub n_prompt: usize,
    pub n_gen: usize,
    pub avg_ts: f64,
    pub stddev_ts: f64,
}

/// A loaded anchor folder.
#[derive(Clone, Debug)]
pub struct Anchor {
    pub dir: PathBuf,
    /// `build.txt`, line by line.
    pub description: Vec<String>,
    /// The model the anchor measured (from `build.txt`), to refuse comparing another model.
    pub model_sha256: Option<String>,
    pub runs: Vec<BenchRun>,
    /// `anchor.md`, copied next to the report as `llama-cpp.md`.
    pub tables: Option<String>,
    /// test-backend-ops' figures per op (missing files are notes in it, not errors).
    pub ops: AnchorOps,
}

fn read(path: &Path) -> Result<String, HarnessError> {
    std::fs::read_to_string(path).map_err(|e| HarnessError::io(path, "read", e))
}

impl Anchor {
    /// Reads an anchor folder; every missing or malformed file is an error naming it.
    pub fn load(dir: &Path) -> Result<Anchor, HarnessError> {
        let description: Vec<String> = read(&dir.join("build.txt"))?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        let model_sha256 = description.iter().find_map(|l| {
            let rest = l.strip_prefix("model: ")?;
            let sha = rest.split("sha256 ").nth(1)?;
            Some(sha.trim_end_matches(')').trim().to_string())
        });
        let bench_path = dir.join("llama-bench.json");
        let runs: Vec<BenchRun> =
            serde_json::from_str(&read(&bench_path)?).map_err(|e| HarnessError::Corrupt {
                path: bench_path.clone(),
                field: format!("line {}, column {}", e.line(), e.column()),
                message: format!("not a llama-bench -o json array: {e}"),
            })?;
        if let Some((i, r)) = runs
            .iter()
            .enumerate()
            .find(|(_, r)| !(r.avg_ts.is_finite() && r.avg_ts > 0.0) || r.n_threads == 0)
        {
            return Err(HarnessError::Corrupt {
                path: bench_path,
                field: format!("[{i}]"),
                message: format!(
                    "avg_ts {} at {} threads: not a measured tokens/s figure",
                    r.avg_ts, r.n_threads
                ),
            });
        }
        let tables_path = dir.join("anchor.md");
        let tables = tables_path.exists().then(|| read(&tables_path)).transpose()?;
        let ops = AnchorOps::load(dir)?;
        Ok(Anchor { dir: dir.to_path_buf(), description, model_sha256, runs, tables, ops })
    }

    /// llama-bench's run for a prefill of `tokens` (`pp<tokens>`) or a decode (`tg*`, the
    /// longest) at `threads`.
    pub fn run_for(&self, prefill: Option<usize>, threads: usize) -> Option<&BenchRun> {
        let at = self.runs.iter().filter(|r| r.n_threads == threads);
        match prefill {
            Some(t) => at.filter(|r| r.n_gen == 0).find(|r| r.n_prompt == t),
            None => at.filter(|r| r.n_prompt == 0 && r.n_gen > 0).max_by_key(|r| r.n_gen),
        }
    }
}

fn fmt_ts(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The markdown section: per result file with end-to-end cases, per stage, tokens/s beside
/// llama.cpp's. Errors when a result measured another model than the anchor.
pub fn section(anchor: &Anchor, results: &[ResultFile]) -> Result<String, HarnessError> {
    let mut md = String::from("## Beside llama.cpp on this machine\n\n");
    md.push_str(
        "llama.cpp measured on this machine with `ci/llama-cpp-anchor.sh` \
         ([its tables](llama-cpp.md)):\n\n",
    );
    for line in &anchor.description {
        md.push_str(&format!("- {line}\n"));
    }
    md.push_str(
        "\nllama.cpp runs the file's Q4_1 weights with Q8 activations (what the `quantized` stage \
         computes, to the bit); the f32 stages run dequantized weights and are listed for scale. \
         Ratio = ours / llama.cpp's tokens/s (> 1: faster). llama-bench's prefill `ppN` is one \
         batch of N tokens, its decode `tgN` N single-token steps; both are means of its \
         repetitions, ours are medians.\n\n",
    );
    md.push_str("| threads | phase | llama.cpp tokens/s | stage | ours tokens/s | ratio |\n");
    md.push_str("|---:|---|---:|---|---:|---:|\n");
    let mut rows = 0;
    // results of another model (e.g. a size sweep run with the synthetic one) are skipped; if
    // none measured the anchor's model, comparing makes no sense: an error naming both
    let same_model = |r: &ResultFile| {
        let model = r.cases.iter().find_map(|x| x.model.as_ref());
        match (&anchor.model_sha256, model) {
            (Some(want), Some(m)) => m.sha256.eq_ignore_ascii_case(want),
            _ => true,
        }
    };
    let with_e2e: Vec<&ResultFile> = results
        .iter()
        .filter(|r| r.comparisons.iter().any(|c| c.kind == CaseKind::EndToEnd))
        .collect();
    if let (Some(want), Some(other)) = (&anchor.model_sha256, with_e2e.first()) {
        if !with_e2e.iter().any(|r| same_model(r)) {
            let model = other.cases.iter().find_map(|x| x.model.as_ref());
            return Err(HarnessError::Usage(format!(
                "--anchor {}: it measured the model with SHA-256 {want}, the results measured \
                 `{}` (SHA-256 {}): compare the same file",
                anchor.dir.display(),
                model.map_or("?", |m| m.path.as_str()),
                model.map_or("?", |m| m.sha256.as_str())
            )));
        }
    }
    let mut skipped = Vec::new();
    for r in with_e2e {
        if !same_model(r) {
            if let Some(m) = r.cases.iter().find_map(|x| x.model.as_ref()) {
                skipped.push(format!("`{}` ({} thread(s))", m.name, r.threads));
            }
            continue;
        }
        for c in r.comparisons.iter().filter(|c| c.kind == CaseKind::EndToEnd) {
            let prefill = (c.op == "e2e_prefill").then(|| tokens_of(&c.shape)).flatten();
            let (phase, theirs) = match anchor.run_for(prefill, r.threads) {
                Some(b) if prefill.is_some() => (format!("prefill {} tokens", b.n_prompt), b),
                Some(b) => (format!("decode (llama.cpp tg{})", b.n_gen), b),
                None => continue,
            };
            for e in c.entries.iter().filter(|e| e.verified) {
                let Some(ours) = e.throughput else { continue };
                let cut = cut_tokens(c, e).map(|n| format!(" ({n} tokens)")).unwrap_or_default();
                md.push_str(&format!(
                    "| {} | {phase} | {} ± {} | `{}` | {}{cut} | {:.2}× |\n",
                    r.threads,
                    fmt_ts(theirs.avg_ts),
                    fmt_ts(theirs.stddev_ts),
                    e.stage,
                    fmt_ts(ours),
                    ours / theirs.avg_ts
                ));
                rows += 1;
            }
        }
    }
    if rows == 0 {
        md.push_str(
            "| | no end-to-end result at a thread count and phase the anchor measured | | | | |\n",
        );
    }
    if !skipped.is_empty() {
        skipped.dedup();
        md.push_str(&format!(
            "\nNot compared (another model than the anchor's): {}.\n",
            skipped.join(", ")
        ));
    }
    md.push('\n');
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchor(runs: Vec<BenchRun>) -> Anchor {
        Anchor {
            dir: PathBuf::from("a"),
            description: vec![],
            model_sha256: None,
            runs,
            tables: None,
            ops: AnchorOps::default(),
        }
    }

    fn run(n_threads: usize, n_prompt: usize, n_gen: usize, avg_ts: f64) -> BenchRun {
        BenchRun { n_threads, n_prompt, n_gen, avg_ts, stddev_ts: 1.0 }
    }

    #[test]
    fn runs_are_matched_by_phase_tokens_and_threads() {
        let a = anchor(vec![
            run(1, 64, 0, 170.0),
            run(1, 512, 0, 160.0),
            run(1, 0, 128, 90.0),
            run(2, 64, 0, 290.0),
            run(2, 0, 128, 140.0),
        ]);
        assert_eq!(a.run_for(Some(64), 1).map(|r| r.avg_ts), Some(170.0));
        assert_eq!(a.run_for(Some(512), 1).map(|r| r.avg_ts), Some(160.0));
        assert_eq!(a.run_for(None, 2).map(|r| r.avg_ts), Some(140.0));
        assert_eq!(a.run_for(Some(32), 1), None);
        assert_eq!(a.run_for(None, 4), None);
    }

    #[test]
    fn a_folder_without_files_or_with_bad_json_is_an_error_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("gllm-anchor-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = Anchor::load(&dir).unwrap_err().to_string();
        assert!(e.contains("build.txt"), "{e}");
        std::fs::write(dir.join("build.txt"), "model: m.gguf (sha256 abc)\n").unwrap();
        std::fs::write(dir.join("llama-bench.json"), "[{\"n_threads\": 1}").unwrap();
        let e = Anchor::load(&dir).unwrap_err().to_string();
        assert!(e.contains("llama-bench.json"), "{e}");
        std::fs::write(
            dir.join("llama-bench.json"),
            r#"[{"n_threads":1,"n_prompt":64,"n_gen":0,"avg_ts":0.0,"stddev_ts":0.0}]"#,
        )
        .unwrap();
        let e = Anchor::load(&dir).unwrap_err().to_string();
        assert!(e.contains("[0]") && e.contains("avg_ts"), "{e}");
        std::fs::write(
            dir.join("llama-bench.json"),
            r#"[{"n_threads":1,"n_prompt":64,"n_gen":0,"avg_ts":171.5,"stddev_ts":2.0,"x":1}]"#,
        )
        .unwrap();
        let a = Anchor::load(&dir).unwrap();
        assert_eq!(a.model_sha256.as_deref(), Some("abc"));
        assert_eq!(a.runs.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
