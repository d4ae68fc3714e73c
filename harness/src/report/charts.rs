//! Charts drawn with plotters, each as SVG and PNG: speedup per case per stage (grouped
//! horizontal bars, log scale, 95 % CI whiskers), a roofline (GFLOP/s against arithmetic
//! intensity under the measured ceilings, log-log), a size sweep per op (log x), and with an
//! anchor our speed vs ggml's per op (grouped bars, log scale).
//!
//! PNG text needs a font: an ASCII/Latin-1 subset of DejaVu Sans is embedded (see
//! `harness/assets/LICENSE-DejaVu.txt`), so charts render identically with no system fonts.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::baseline::{write_atomic, ResultFile};
use crate::error::HarnessError;
use crate::report::ops_beside::{Cell, OpsBeside};

const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans-subset.ttf");

fn register_font() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        // The embedded font is known to parse; a failure here is a build defect.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, FONT_BYTES);
    });
}

/// Stage colours, in stage order (colour-blind-safe Okabe–Ito palette).
const COLORS: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(213, 94, 0),
    RGBColor(86, 180, 233),
    RGBColor(120, 120, 120),
    RGBColor(240, 228, 66),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Draws `draw` into `DIR/NAME.svg` and `DIR/NAME.png` (each written to a temporary name
/// and renamed); returns both paths.
fn both_formats(
    dir: &Path,
    name: &str,
    size: (u32, u32),
    draw: &dyn Fn(&DrawingArea<SVGBackend, Shift>) -> DrawResult,
    draw_png: &dyn Fn(&DrawingArea<BitMapBackend, Shift>) -> DrawResult,
) -> Result<Vec<PathBuf>, HarnessError> {
    register_font();
    std::fs::create_dir_all(dir).map_err(|e| HarnessError::io(dir, "create directory", e))?;
    let chart_error =
        |e: Box<dyn std::error::Error>| HarnessError::Harness(format!("chart {name}: {e}"));
    let svg_path = dir.join(format!("{name}.svg"));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw(&root).map_err(chart_error)?;
        root.present().map_err(|e| chart_error(Box::new(e)))?;
    }
    write_atomic(&svg_path, svg.as_bytes())?;
    let png_path = dir.join(format!("{name}.png"));
    let tmp = dir.join(format!(".{name}.tmp.{}.png", std::process::id()));
    {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        draw_png(&root).map_err(chart_error)?;
        root.present().map_err(|e| chart_error(Box::new(e)))?;
    }
    std::fs::rename(&tmp, &png_path).map_err(|e| HarnessError::io(&png_path, "write", e))?;
    Ok(vec![svg_path, png_path])
}

/// One bar group of the speedup chart: a case and its speedup (with CI) per stage.
#[derive(Clone, Debug)]
pub struct SpeedupRow {
    pub label: String,
    /// `(stage index, speedup, ci lo, ci hi)`; stages without a verified result are absent.
    pub bars: Vec<(usize, f64, f64, f64)>,
}

/// One row per op: the geometric mean over the op's hot model cases of each stage's
/// speedup vs the first stage, and of the bounds of its 95 % CI (a per-case table is in the
/// report; a chart with a bar per case and stage would be unreadable).
pub fn speedup_rows(result: &ResultFile) -> Vec<SpeedupRow> {
    let mut ops: Vec<&str> = Vec::new();
    for c in &result.comparisons {
        if !ops.contains(&c.op.as_str()) {
            ops.push(&c.op);
        }
    }
    let geo = |xs: &[f64]| (xs.iter().map(|x| x.ln()).sum::<f64>() / xs.len() as f64).exp();
    let mut rows = Vec::new();
    for op in ops {
        let comps: Vec<_> = result
            .comparisons
            .iter()
            .filter(|c| c.op == op && c.cache == "hot" && c.entries.len() > 1)
            .filter(|c| c.kind == crate::baseline::CaseKind::Op)
            .filter(|c| result.case(&c.entries[0].case_id).is_some_and(|r| r.case_set == "model"))
            .collect();
        if comps.is_empty() {
            continue;
        }
        let stages = comps[0].entries.len();
        let mut bars = Vec::new();
        for s in 0..stages {
            let ratios: Vec<_> = comps
                .iter()
                .filter_map(|c| c.entries.get(s)?.speedup_vs_first)
                .filter(|r| r.ratio > 0.0 && r.ci95.lo > 0.0 && r.ci95.hi > 0.0)
                .collect();
            // Only when every case of the op has a verified result at this stage.
            if ratios.len() == comps.len() {
                let pick = |f: fn(&crate::stats::Ratio) -> f64| {
                    geo(&ratios.iter().map(f).collect::<Vec<_>>())
                };
                bars.push((s, pick(|r| r.ratio), pick(|r| r.ci95.lo), pick(|r| r.ci95.hi)));
            }
        }
        rows.push(SpeedupRow { label: format!("{op} ({} cases)", comps.len()), bars });
    }
    rows
}

/// How the horizontal-bars chart labels its values.
struct BarAxis {
    x_desc: String,
    /// Appended to tick and bar values (`×`, or empty for absolute values).
    suffix: &'static str,
    /// A vertical line at 1 (speedups); the axis then always spans 0.5..2.
    unit_line: bool,
    /// Factor of empty axis past the longest bar, for the legend (log scale).
    legend_room: f64,
    /// Write every bar's value (else, with `unit_line`, only those that differ from the bar
    /// of the series before it, and never the first series', which is 1 by definition).
    every_value: bool,
}

/// `rows` of bars, one per series (`(name, colour index)`, e.g. stages in their colours).
fn draw_speedup<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[SpeedupRow],
    stages: &[(String, usize)],
    title: &str,
    axis: &BarAxis,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let n = rows.len().max(1);
    let values = rows.iter().flat_map(|r| r.bars.iter().flat_map(|b| [b.1, b.2, b.3]));
    let (mut lo, mut hi) =
        if axis.unit_line { (0.5f64, 2.0f64) } else { (f64::INFINITY, f64::NEG_INFINITY) };
    for v in values.filter(|v| v.is_finite() && *v > 0.0) {
        lo = lo.min(v * 0.8);
        hi = hi.max(v * 1.25);
    }
    if !lo.is_finite() || !hi.is_finite() {
        (lo, hi) = (0.5, 2.0);
    }
    // Room on the right for the legend, clear of the longest bar.
    let hi = hi * axis.legend_room;
    let label_width =
        rows.iter().map(|r| r.label.len()).max().unwrap_or(10).clamp(10, 48) as u32 * 8 + 20;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 24))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(label_width)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..n as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc(axis.x_desc.clone())
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 14))
        .x_label_formatter(&|x| {
            if axis.suffix.is_empty() {
                super::format::sig3(*x)
            } else {
                format!("{x:.2}{}", axis.suffix)
            }
        })
        .draw()?;
    let stage_count = stages.len().max(1) as f64;
    let slot = 0.8 / stage_count;
    for (s, (stage, colour)) in stages.iter().enumerate() {
        let bars: Vec<(f64, f64, f64, f64)> = rows
            .iter()
            .enumerate()
            .filter_map(|(row_i, row)| {
                row.bars.iter().find(|b| b.0 == s).map(|b| {
                    // Row 0 at the top.
                    let top = n as f64 - row_i as f64 - 0.1 - slot * s as f64;
                    (top, b.1, b.2, b.3)
                })
            })
            .collect();
        let c = color(*colour);
        chart
            .draw_series(
                bars.iter().map(|&(top, v, _, _)| {
                    Rectangle::new([(lo, top - slot), (v, top)], c.filled())
                }),
            )?
            .label(stage.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
        chart.draw_series(bars.iter().filter(|b| b.2.is_finite() && b.3.is_finite()).map(
            |&(top, _, l, h)| {
                PathElement::new(
                    vec![(l, top - slot / 2.0), (h, top - slot / 2.0)],
                    BLACK.stroke_width(2),
                )
            },
        ))?;
    }
    if axis.unit_line {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(1.0, 0.0), (1.0, n as f64)],
            BLACK.mix(0.6).stroke_width(1),
        )))?;
    }
    // The value at the end of each bar that differs from the stage before it.
    let value_style =
        TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (row_i, row) in rows.iter().enumerate() {
        let mut previous: Option<f64> = None;
        for &(s, v, _, h) in &row.bars {
            let changed = previous.is_none_or(|p| (p - v).abs() > 1e-9 * v.abs());
            previous = Some(v);
            if axis.unit_line && !axis.every_value && (!changed || s == 0) {
                continue;
            }
            let centre = n as f64 - row_i as f64 - 0.1 - slot * s as f64 - slot / 2.0;
            let x = if h.is_finite() { v.max(h) } else { v };
            let (px, py) = chart.backend_coord(&(x, centre));
            let text = format!("{}{}", super::format::sig3(v), axis.suffix);
            root.draw_text(&text, &value_style, (px + 6, py))?;
        }
    }
    for (row_i, row) in rows.iter().enumerate() {
        let y = n as f64 - row_i as f64 - 0.5;
        let (px, py) = chart.backend_coord(&(lo, y));
        let style =
            TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
        root.draw_text(&row.label, &style, (px - 8, py))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 15))
        .draw()?;
    Ok(())
}

/// `speedup.{svg,png}`; None when no case was measured under two or more stages.
pub fn speedup_chart(
    dir: &Path,
    result: &ResultFile,
) -> Result<Option<Vec<PathBuf>>, HarnessError> {
    let rows = speedup_rows(result);
    if rows.is_empty() || result.stages.len() < 2 {
        return Ok(None);
    }
    let stages: Vec<(String, usize)> =
        result.stages.iter().enumerate().map(|(i, s)| (s.name.clone(), i)).collect();
    let height = (160 + rows.len() as u32 * (14 + 12 * stages.len() as u32)).clamp(400, 6000);
    let title = format!(
        "Speedup per op and stage: geometric mean over hot model cases, {}",
        result.machine.cpu_model
    );
    let axis = BarAxis {
        x_desc: format!(
            "speedup vs the first stage ({}), × (log scale; > 1 is faster; whiskers: 95% CI)",
            stages[0].0
        ),
        suffix: "×",
        unit_line: true,
        legend_room: 1.8,
        every_value: false,
    };
    let draw_svg =
        |root: &DrawingArea<SVGBackend, Shift>| draw_speedup(root, &rows, &stages, &title, &axis);
    let draw_png = |root: &DrawingArea<BitMapBackend, Shift>| {
        draw_speedup(root, &rows, &stages, &title, &axis)
    };
    both_formats(dir, "speedup", (1400, height), &draw_svg, &draw_png).map(Some)
}

/// One row per end-to-end comparison (prefill, decode): each stage's tokens/s and its 95 % CI.
pub fn tokens_rows(result: &ResultFile) -> Vec<SpeedupRow> {
    let mut rows = Vec::new();
    for c in result.comparisons.iter().filter(|c| c.kind == crate::baseline::CaseKind::EndToEnd) {
        let mut bars = Vec::new();
        for (s, e) in c.entries.iter().enumerate() {
            let Some(t) = result.case(&e.case_id).and_then(|r| r.timing.as_ref()) else {
                continue;
            };
            bars.push((s, t.throughput, t.throughput_ci95.lo, t.throughput_ci95.hi));
        }
        if !bars.is_empty() {
            let label = c.group.replace("e2e_", "").replace("(model=", " (");
            rows.push(SpeedupRow { label, bars });
        }
    }
    rows
}

/// `tokens.{svg,png}`: prefill and decode tokens/s per stage; None without end-to-end cases.
pub fn tokens_chart(dir: &Path, result: &ResultFile) -> Result<Option<Vec<PathBuf>>, HarnessError> {
    let rows = tokens_rows(result);
    if rows.is_empty() {
        return Ok(None);
    }
    let stages: Vec<(String, usize)> =
        result.stages.iter().enumerate().map(|(i, s)| (s.name.clone(), i)).collect();
    let height = (200 + rows.len() as u32 * (30 + 28 * stages.len() as u32)).clamp(400, 3000);
    let title = format!("End to end: tokens/s per stage, {}", result.machine.cpu_model);
    let axis = BarAxis {
        x_desc: "tokens/s (log scale; longer is faster; whiskers: 95% CI of the median)".into(),
        suffix: "",
        unit_line: false,
        legend_room: 5.0,
        every_value: false,
    };
    let draw_svg =
        |root: &DrawingArea<SVGBackend, Shift>| draw_speedup(root, &rows, &stages, &title, &axis);
    let draw_png = |root: &DrawingArea<BitMapBackend, Shift>| {
        draw_speedup(root, &rows, &stages, &title, &axis)
    };
    both_formats(dir, "tokens", (1400, height), &draw_svg, &draw_png).map(Some)
}

/// File name of the ops-beside-ggml chart's PNG (the SVG beside it).
pub const OPS_CHART_PNG: &str = "ops-vs-ggml.png";

/// One row per paired op with a measured case: each shown stage's speed vs ggml (ggml's
/// time / ours) and the same for the bounds of our median's 95 % CI.
pub fn ops_rows(beside: &OpsBeside<'_>) -> Vec<SpeedupRow> {
    let mut rows = Vec::new();
    for r in &beside.rows {
        let bars: Vec<(usize, f64, f64, f64)> = beside
            .shown
            .iter()
            .enumerate()
            .filter_map(|(j, &s)| match &r.cells[s] {
                Cell::Measured { ratio, ci, .. } if ratio.is_finite() && *ratio > 0.0 => {
                    let (lo, hi) = ci
                        .filter(|(l, h)| *l > 0.0 && *h > 0.0)
                        .map_or((f64::NAN, f64::NAN), |(l, h)| (r.ggml_ns / h, r.ggml_ns / l));
                    Some((j, *ratio, lo, hi))
                }
                _ => None,
            })
            .collect();
        if !bars.is_empty() {
            rows.push(SpeedupRow { label: r.chart_label(), bars });
        }
    }
    rows
}

/// `ops-vs-ggml.{svg,png}`: our speed vs ggml's per paired op, a bar per shown stage (in
/// the stage colours of the other charts); None when no row has a measured case.
pub fn ops_chart(
    dir: &Path,
    beside: &OpsBeside<'_>,
    result: &ResultFile,
) -> Result<Option<Vec<PathBuf>>, HarnessError> {
    let rows = ops_rows(beside);
    if rows.is_empty() {
        return Ok(None);
    }
    let stages: Vec<(String, usize)> =
        beside.shown.iter().map(|&s| (beside.stages[s].clone(), s)).collect();
    let height = (160 + rows.len() as u32 * (14 + 12 * stages.len() as u32)).clamp(400, 6000);
    let title = format!(
        "Ops beside ggml: speed vs llama.cpp's test-backend-ops (1 thread), {}",
        result.machine.cpu_model
    );
    let axis = BarAxis {
        x_desc:
            "ggml's time / ours, × (log scale; > 1: ours faster; whiskers: 95% CI of our median)"
                .into(),
        suffix: "×",
        unit_line: true,
        legend_room: 1.8,
        every_value: true,
    };
    let draw_svg =
        |root: &DrawingArea<SVGBackend, Shift>| draw_speedup(root, &rows, &stages, &title, &axis);
    let draw_png = |root: &DrawingArea<BitMapBackend, Shift>| {
        draw_speedup(root, &rows, &stages, &title, &axis)
    };
    let name = OPS_CHART_PNG.trim_end_matches(".png");
    both_formats(dir, name, (1400, height), &draw_svg, &draw_png).map(Some)
}

/// A roofline point: `(stage index, arithmetic intensity FLOP/byte, GFLOP/s, label, cold)`.
pub type RooflinePoint = (usize, f64, f64, String, bool);

pub fn roofline_points(result: &ResultFile) -> Vec<RooflinePoint> {
    let mut out = Vec::new();
    for c in &result.cases {
        let Some(t) = &c.timing else { continue };
        if c.flops_per_iter <= 0.0
            || c.bytes_per_iter <= 0.0
            || c.case_set != "model"
            || c.kind == crate::baseline::CaseKind::EndToEnd
        {
            continue;
        }
        let gflops = c.flops_per_iter / t.median_ns;
        for s in &c.stages {
            if let Some(i) = result.stages.iter().position(|x| &x.name == s) {
                let intensity = c.flops_per_iter / c.bytes_per_iter;
                out.push((i, intensity, gflops, c.op.clone(), c.cache == "cold"));
                break;
            }
        }
    }
    out
}

fn draw_roofline<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    result: &ResultFile,
    points: &[RooflinePoint],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let peak = result.peaks.fma_gflops;
    let (mut x0, mut x1) = (0.01f64, 100.0f64);
    let (mut y0, mut y1) = (0.1f64, result.peaks.int8_gops.unwrap_or(peak).max(peak) * 2.0);
    for p in points {
        x0 = x0.min(p.1 / 2.0);
        x1 = x1.max(p.1 * 2.0);
        y0 = y0.min(p.2 / 2.0);
        y1 = y1.max(p.2 * 2.0);
    }
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!(
                "Roofline: measured kernels under this machine's ceilings (1 core), {}",
                result.machine.cpu_model
            ),
            (FONT, 22),
        )
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(80)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?;
    chart
        .configure_mesh()
        .x_desc(
            "arithmetic intensity, FLOP per byte moved (log scale); filled: hot cache, hollow: cold (DRAM)",
        )
        .y_desc("achieved GFLOP/s (log scale)")
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 14))
        .x_label_formatter(&|x| format!("{x}"))
        .y_label_formatter(&|y| format!("{y}"))
        .draw()?;
    // Ceilings: the FMA peak, and AI × bandwidth for each measured level.
    let grey = RGBColor(90, 90, 90);
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(x0, peak), (x1, peak)],
        grey.stroke_width(2),
    )))?;
    let label_style = TextStyle::from((FONT, 14).into_font()).color(&grey);
    chart.draw_series(std::iter::once(Text::new(
        format!("f32 FMA peak {peak:.0} GFLOP/s"),
        (x0 * 1.3, peak * 1.12),
        label_style.clone(),
    )))?;
    if let Some(int8) = result.peaks.int8_gops {
        // quantized matmuls and block dot products count their int8 multiply-adds as FLOP
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x0, int8), (x1, int8)],
            grey.mix(0.6).stroke_width(1),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("int8 dot peak {int8:.0} GOP/s (quantized matmuls)"),
            (x0 * 1.3, int8 * 1.12),
            label_style.clone(),
        )))?;
    }
    for b in &result.peaks.bandwidth {
        let ridge = peak / b.gb_per_s;
        let start_x = (y0 / b.gb_per_s).max(x0);
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(start_x, start_x * b.gb_per_s), (ridge.min(x1), ridge.min(x1) * b.gb_per_s)],
            grey.mix(0.8).stroke_width(1),
        )))?;
        // Labels at the left end of each diagonal (parallel lines: distinct heights).
        let lx = start_x * 1.15;
        chart.draw_series(std::iter::once(Text::new(
            format!("{} {:.0} GB/s", b.level, b.gb_per_s),
            (lx, lx * b.gb_per_s * 1.08),
            label_style.clone(),
        )))?;
    }
    for (s, stage) in result.stages.iter().enumerate() {
        let c = color(s);
        let pts: Vec<&RooflinePoint> = points.iter().filter(|p| p.0 == s).collect();
        if pts.is_empty() {
            continue;
        }
        chart
            .draw_series(pts.iter().map(|p| {
                // Hot cases filled, cold (from DRAM) hollow.
                let style = if p.4 { c.stroke_width(2) } else { c.filled() };
                Circle::new((p.1, p.2), 6, style)
            }))?
            .label(format!("variants introduced by stage {}", stage.name))
            .legend(move |(x, y)| Circle::new((x + 7, y), 6, c.filled()));
    }
    // One label per op, at its fastest point, so labels do not pile up.
    let text = TextStyle::from((FONT, 13).into_font()).color(&BLACK);
    let mut labelled: Vec<&RooflinePoint> = Vec::new();
    for p in points {
        match labelled.iter_mut().find(|q| q.3 == p.3) {
            Some(q) if q.2 < p.2 => *q = p,
            Some(_) => {}
            None => labelled.push(p),
        }
    }
    chart.draw_series(
        labelled.iter().map(|p| Text::new(p.3.clone(), (p.1 * 1.15, p.2 * 1.05), text.clone())),
    )?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 15))
        .draw()?;
    Ok(())
}

/// `roofline.{svg,png}`; None when no case has both FLOPs and bytes.
pub fn roofline_chart(
    dir: &Path,
    result: &ResultFile,
) -> Result<Option<Vec<PathBuf>>, HarnessError> {
    let points = roofline_points(result);
    if points.is_empty() {
        return Ok(None);
    }
    let draw_svg = |root: &DrawingArea<SVGBackend, Shift>| draw_roofline(root, result, &points);
    let draw_png = |root: &DrawingArea<BitMapBackend, Shift>| draw_roofline(root, result, &points);
    both_formats(dir, "roofline", (1400, 900), &draw_svg, &draw_png).map(Some)
}

/// One sweep line: a variant's `(working set bytes, throughput)` points, sorted by size.
pub type SweepLine = (String, Vec<(f64, f64)>);

pub fn sweep_lines(result: &ResultFile, op: &str) -> Vec<SweepLine> {
    let mut lines: Vec<SweepLine> = Vec::new();
    for c in result.cases.iter().filter(|c| c.op == op && c.case_set == "sweep" && c.cache == "hot")
    {
        let Some(t) = &c.timing else { continue };
        let name = c.variant.clone();
        let point = (c.working_set_bytes, t.throughput);
        match lines.iter_mut().find(|l| l.0 == name) {
            Some(l) => l.1.push(point),
            None => lines.push((name, vec![point])),
        }
    }
    for l in &mut lines {
        l.1.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    lines
}

fn draw_sweep<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    result: &ResultFile,
    op: &str,
    unit: &str,
    lines: &[SweepLine],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    // x is log2(bytes) on a linear axis, so ticks fall on powers of two (1 KiB, 4 KiB, ...).
    let pts = lines.iter().flat_map(|l| l.1.iter());
    let (mut x0, mut x1, mut y1) = (f64::MAX, 0f64, 0f64);
    for &(x, y) in pts {
        x0 = x0.min(x.log2());
        x1 = x1.max(x.log2());
        if y.is_finite() {
            y1 = y1.max(y);
        }
    }
    let (x0, x1) = ((x0 - 0.5).floor(), (x1 + 0.5).ceil());
    // Headroom above the curves for the cache labels and the legend.
    let top = y1 * 1.35;
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!(
                "{op}: throughput by working-set size (hot cache), {}",
                result.machine.cpu_model
            ),
            (FONT, 22),
        )
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, 0f64..top)?;
    chart
        .configure_mesh()
        .x_desc("working set (inputs + output), bytes (log scale)")
        .y_desc(format!("throughput, {unit}"))
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 14))
        .x_labels(((x1 - x0) as usize + 1).min(24))
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-6 && (x.round() as i64) % 2 == 0 {
                human_bytes(x.round().exp2())
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    let caches = &result.machine.caches;
    for (name, bytes) in [("L1d", caches.l1d), ("L2", caches.l2), ("L3", caches.l3)] {
        let b = (bytes as f64).log2();
        if b > x0 && b < x1 {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(b, 0.0), (b, top)],
                RGBColor(150, 150, 150).stroke_width(1),
            )))?;
            let style =
                TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Right, VPos::Top));
            chart.draw_series(std::iter::once(Text::new(
                format!("{name} {} ", human_bytes(bytes as f64)),
                (b, top * 0.98),
                style,
            )))?;
        }
    }
    for (i, (variant, points)) in lines.iter().enumerate() {
        let c = color(i);
        let log_points: Vec<(f64, f64)> = points.iter().map(|&(x, y)| (x.log2(), y)).collect();
        chart
            .draw_series(LineSeries::new(log_points.iter().copied(), c.stroke_width(2)))?
            .label(variant.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3)));
        chart.draw_series(log_points.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 15))
        .draw()?;
    Ok(())
}

pub fn human_bytes(b: f64) -> String {
    if b >= (1u64 << 30) as f64 {
        format!("{:.0} GiB", b / (1u64 << 30) as f64)
    } else if b >= (1 << 20) as f64 {
        format!("{:.0} MiB", b / (1 << 20) as f64)
    } else if b >= 1024.0 {
        format!("{:.0} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

/// `sweep-<op>.{svg,png}` for every op with sweep cases.
pub fn sweep_charts(dir: &Path, result: &ResultFile) -> Result<Vec<PathBuf>, HarnessError> {
    let mut ops: Vec<&str> =
        result.cases.iter().filter(|c| c.case_set == "sweep").map(|c| c.op.as_str()).collect();
    ops.dedup();
    let mut out = Vec::new();
    for op in ops {
        let lines = sweep_lines(result, op);
        if lines.iter().all(|l| l.1.len() < 2) {
            continue;
        }
        let unit =
            result.cases.iter().find(|c| c.op == op).map(|c| c.unit.clone()).unwrap_or_default();
        let name = format!("sweep-{}", super::export::directory_name(op));
        let draw_svg =
            |root: &DrawingArea<SVGBackend, Shift>| draw_sweep(root, result, op, &unit, &lines);
        let draw_png =
            |root: &DrawingArea<BitMapBackend, Shift>| draw_sweep(root, result, op, &unit, &lines);
        out.extend(both_formats(dir, &name, (1200, 700), &draw_svg, &draw_png)?);
    }
    Ok(out)
}
