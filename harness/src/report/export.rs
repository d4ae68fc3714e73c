//! Exports for other tools: Bencher Metric Format, github-action-benchmark arrays, and a
//! criterion-compatible directory tree (what critcmp reads).

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::baseline::{write_atomic, CaseRecord, ResultFile, Timing};
use crate::error::HarnessError;

fn timed(result: &ResultFile) -> impl Iterator<Item = (&CaseRecord, &Timing)> {
    result.cases.iter().filter_map(|c| c.timing.as_ref().map(|t| (c, t)))
}

/// Bencher Metric Format: `{case id: {"latency": {value, lower_value, upper_value} (ns),
/// "throughput": {...} (the case's unit)}}`; bounds are the 95 % CI.
pub fn bmf(result: &ResultFile) -> Value {
    let mut out = Map::new();
    for (c, t) in timed(result) {
        out.insert(
            c.id.clone(),
            json!({
                "latency": {"value": t.median_ns, "lower_value": t.ci95_ns.lo, "upper_value": t.ci95_ns.hi},
                "throughput": {"value": t.throughput, "lower_value": t.throughput_ci95.lo, "upper_value": t.throughput_ci95.hi},
            }),
        );
    }
    Value::Object(out)
}

/// github-action-benchmark's `customSmallerIsBetter` (ns per iteration) or, with `bigger`,
/// `customBiggerIsBetter` (throughput) array.
pub fn github_action_benchmark(result: &ResultFile, bigger: bool) -> Value {
    let items: Vec<Value> = timed(result)
        .map(|(c, t)| {
            let extra = format!(
                "{} samples x {} iterations; 95% CI of median {:.1}..{:.1} ns; {:.1}% of limit ({}); machine {}",
                t.samples_ns.len(),
                t.iterations_per_sample,
                t.ci95_ns.lo,
                t.ci95_ns.hi,
                t.percent_of_limit,
                t.limit_basis,
                result.machine.id
            );
            if bigger {
                json!({
                    "name": c.id,
                    "unit": c.unit,
                    "value": t.throughput,
                    "range": format!("±{:.4}", (t.throughput_ci95.hi - t.throughput_ci95.lo) / 2.0),
                    "extra": extra,
                })
            } else {
                json!({
                    "name": c.id,
                    "unit": "ns/iter",
                    "value": t.median_ns,
                    "range": format!("±{:.4}", (t.ci95_ns.hi - t.ci95_ns.lo) / 2.0),
                    "extra": extra,
                })
            }
        })
        .collect();
    Value::Array(items)
}

pub fn write_json(path: &Path, value: &Value) -> Result<usize, HarnessError> {
    let text = serde_json::to_string_pretty(value).expect("json");
    write_atomic(path, text.as_bytes())?;
    Ok(1)
}

/// A path component criterion would produce: unsafe characters become `_`.
pub fn directory_name(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_.=,".contains(c) { c } else { '_' })
        .collect()
}

fn stat(point: f64, lo: f64, hi: f64, standard_error: f64) -> Value {
    json!({
        "confidence_interval": {"confidence_level": 0.95, "lower_bound": lo, "upper_bound": hi},
        "point_estimate": point,
        "standard_error": standard_error,
    })
}

/// The files of one case in criterion's layout: `(relative dir, benchmark.json, estimates.json)`.
/// group = op, function = variant, value = the rest of the id (shape and cache).
pub fn criterion_case(c: &CaseRecord, t: &Timing) -> (String, Value, Value) {
    let value_str = format!("{},cache={}", c.shape, c.cache).trim_start_matches(',').to_string();
    let full_id = format!("{}/{}/{}", c.op, c.variant, value_str);
    let dir = format!(
        "{}/{}/{}",
        directory_name(&c.op),
        directory_name(&c.variant),
        directory_name(&value_str)
    );
    let throughput = if c.unit == "GB/s" {
        json!({"Bytes": c.bytes_per_iter.round() as u64})
    } else {
        json!({"Elements": c.flops_per_iter.round() as u64})
    };
    let benchmark = json!({
        "group_id": c.op,
        "function_id": c.variant,
        "value_str": value_str,
        "throughput": throughput,
        "full_id": full_id,
        "directory_name": dir,
        "title": full_id,
    });
    let n = t.samples_ns.len().max(1) as f64;
    let std_dev = {
        let m = t.mean_ns;
        (t.samples_ns.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt()
    };
    // Standard errors: σ/√n for the mean; the CI's half-width / 1.96 for the median.
    let se_median = (t.ci95_ns.hi - t.ci95_ns.lo) / (2.0 * 1.96);
    let estimates = json!({
        "mean": stat(t.mean_ns, t.mean_ns - 1.96 * std_dev / n.sqrt(), t.mean_ns + 1.96 * std_dev / n.sqrt(), std_dev / n.sqrt()),
        "median": stat(t.median_ns, t.ci95_ns.lo, t.ci95_ns.hi, se_median),
        "median_abs_dev": stat(t.mad_ns * 1.4826, t.mad_ns * 1.4826, t.mad_ns * 1.4826, 0.0),
        "slope": Value::Null,
        "std_dev": stat(std_dev, std_dev, std_dev, 0.0),
    });
    (dir, benchmark, estimates)
}

/// Writes `<out>/<op>/<variant>/<shape,cache>/new/{benchmark,estimates}.json` per case.
pub fn write_criterion(out: &Path, result: &ResultFile) -> Result<usize, HarnessError> {
    let mut count = 0;
    for (c, t) in timed(result) {
        let (dir, benchmark, estimates) = criterion_case(c, t);
        let base = out.join(dir).join("new");
        write_json(&base.join("benchmark.json"), &benchmark)?;
        write_json(&base.join("estimates.json"), &estimates)?;
        count += 2;
    }
    Ok(count)
}
