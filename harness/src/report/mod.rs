//! Everything that renders results: console tables, markdown, JSON exports, charts.

pub mod anchor;
pub mod charts;
pub mod console;
pub mod export;
pub mod format;
pub mod ggml_ops;
pub mod markdown;
pub mod ops_beside;

use std::path::{Path, PathBuf};

use crate::baseline::{write_atomic, ResultFile};
use crate::error::HarnessError;

/// Writes `DIR/report.md` and its charts from `results`; the first file comparing several
/// stages is the primary one (tables, speedups, roofline); sweep charts come from any file.
/// With an `anchor` (llama.cpp measured here), the end-to-end figures are quoted beside its
/// own, each op it measured stands beside our case for it ([`ops_beside`], with the chart
/// `ops-vs-ggml`), and its tables are copied to `DIR/llama-cpp.md`. Returns every path written.
pub fn write_report(
    results: &[ResultFile],
    dir: &Path,
    anchor: Option<&anchor::Anchor>,
) -> Result<Vec<PathBuf>, HarnessError> {
    if results.is_empty() {
        return Err(HarnessError::Usage("report needs at least one result file".into()));
    }
    let mut anchor_md = anchor.map(|a| anchor::section(a, results)).transpose()?;
    let primary = results.iter().position(|r| r.stages.len() > 1).unwrap_or(0);
    let r = &results[primary];
    let mut written = Vec::new();
    if let (Some(a), Some(md)) = (anchor, anchor_md.as_mut()) {
        let beside = ops_beside::pair(&a.ops, results);
        let chart = match charts::ops_chart(dir, &beside, r)? {
            Some(paths) => {
                written.extend(paths);
                Ok(charts::OPS_CHART_PNG)
            }
            None => Err("no paired op has a measured case in the inputs".to_string()),
        };
        md.push_str(&ops_beside::section(&beside, chart));
    }
    let mut charts: Vec<(String, String, Option<String>)> = Vec::new();
    match charts::speedup_chart(dir, r)? {
        Some(paths) => {
            written.extend(paths);
            charts.push(("Speedup per op and stage".into(), "speedup.png".into(), None));
        }
        None => charts.push((
            "Speedup per op and stage".into(),
            String::new(),
            Some("the input compares fewer than two stages".into()),
        )),
    }
    match charts::tokens_chart(dir, r)? {
        Some(paths) => {
            written.extend(paths);
            charts.push(("Tokens/s per stage".into(), "tokens.png".into(), None));
        }
        None => charts.push((
            "Tokens/s per stage".into(),
            String::new(),
            Some("no end-to-end results in the input (filtered out?)".into()),
        )),
    }
    match charts::roofline_chart(dir, r)? {
        Some(paths) => {
            written.extend(paths);
            charts.push(("Roofline".into(), "roofline.png".into(), None));
        }
        None => charts.push((
            "Roofline".into(),
            String::new(),
            Some("no case with FLOPs and bytes".into()),
        )),
    }
    let mut any_sweep = false;
    for input in results {
        let paths = charts::sweep_charts(dir, input)?;
        for p in &paths {
            if p.extension().is_some_and(|e| e == "png") {
                let file = p.file_name().unwrap_or_default().to_string_lossy().to_string();
                let op = file.trim_start_matches("sweep-").trim_end_matches(".png").to_string();
                charts.push((format!("Size sweep: {op}"), file, None));
                any_sweep = true;
            }
        }
        written.extend(paths);
    }
    if !any_sweep {
        charts.push((
            "Size sweeps".into(),
            String::new(),
            Some("no sweep cases in the inputs (measure them with `--cases sweep`)".into()),
        ));
    }
    if let Some(tables) = anchor.and_then(|a| a.tables.as_deref()) {
        let path = dir.join("llama-cpp.md");
        write_atomic(&path, tables.as_bytes())?;
        written.push(path);
    }
    let md = markdown::report_markdown(results, primary, &charts, anchor_md.as_deref());
    let md_path = dir.join("report.md");
    write_atomic(&md_path, md.as_bytes())?;
    written.push(md_path);
    Ok(written)
}
