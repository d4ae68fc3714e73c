//! `ci/thresholds.toml`: per-case regression thresholds (regex → relative change, first
//! match wins, then the default), separately for wall time and instruction counts, plus
//! the gate's noise rules.
//!
//! ```toml
//! [wall]
//! default = 0.05                 # a case regresses only if slower by more than 5 % ...
//! noise_k = 2.0                  # ... and by more than 2 × its measured same-code noise
//! max_noise = 0.05               # same-code noise above 5 %: the case is inconclusive
//! max_steal = 0.05               # steal time above 5 % of CPU time: inconclusive
//! max_calibration_spread = 0.10  # control kernel's relative spread above 10 %: inconclusive
//! [[wall.case]]
//! pattern = "^softmax"
//! threshold = 0.08
//! [instructions]
//! default = 0.01
//! ```

use std::path::Path;

use regex::Regex;
use serde::Deserialize;

use crate::error::HarnessError;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    wall: Option<RawMode>,
    instructions: Option<RawMode>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMode {
    default: Option<f64>,
    noise_k: Option<f64>,
    max_noise: Option<f64>,
    max_steal: Option<f64>,
    max_calibration_spread: Option<f64>,
    #[serde(default)]
    case: Vec<RawCase>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    pattern: String,
    threshold: f64,
}

/// The rules of one measurement mode.
#[derive(Clone, Debug)]
pub struct ModeRules {
    pub default: f64,
    pub noise_k: f64,
    /// A case whose same-code noise exceeds this is inconclusive (it resolves nothing).
    pub max_noise: f64,
    pub max_steal: f64,
    pub max_calibration_spread: f64,
    pub cases: Vec<(Regex, f64)>,
}

impl ModeRules {
    /// The threshold of `id` and the rule that gave it.
    pub fn threshold(&self, id: &str) -> (f64, String) {
        for (re, t) in &self.cases {
            if re.is_match(id) {
                return (*t, re.as_str().to_string());
            }
        }
        (self.default, "default".into())
    }
}

#[derive(Clone, Debug)]
pub struct Thresholds {
    pub wall: ModeRules,
    pub instructions: ModeRules,
    /// Where they came from (`built-in defaults` or a path).
    pub source: String,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            wall: ModeRules {
                default: 0.05,
                noise_k: 2.0,
                max_noise: 0.05,
                max_steal: 0.05,
                max_calibration_spread: 0.10,
                cases: Vec::new(),
            },
            instructions: ModeRules {
                default: 0.01,
                noise_k: 3.0,
                max_noise: 0.002,
                max_steal: 1.0,
                max_calibration_spread: f64::INFINITY,
                cases: Vec::new(),
            },
            source: "built-in defaults".into(),
        }
    }
}

fn corrupt(path: &Path, field: impl Into<String>, message: impl Into<String>) -> HarnessError {
    HarnessError::Corrupt { path: path.to_path_buf(), field: field.into(), message: message.into() }
}

fn check_fraction(path: &Path, field: &str, v: f64) -> Result<f64, HarnessError> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(corrupt(path, field, format!("must be a non-negative number, found {v}")))
    }
}

fn merge(
    path: &Path,
    name: &str,
    raw: Option<RawMode>,
    base: ModeRules,
) -> Result<ModeRules, HarnessError> {
    let Some(raw) = raw else { return Ok(base) };
    let f = |field: &str, v: Option<f64>, d: f64| -> Result<f64, HarnessError> {
        v.map(|v| check_fraction(path, &format!("{name}.{field}"), v))
            .transpose()
            .map(|v| v.unwrap_or(d))
    };
    let mut cases = Vec::new();
    for (i, c) in raw.case.into_iter().enumerate() {
        let re = Regex::new(&c.pattern).map_err(|e| {
            corrupt(path, format!("{name}.case[{i}].pattern"), format!("not a valid regex: {e}"))
        })?;
        cases
            .push((re, check_fraction(path, &format!("{name}.case[{i}].threshold"), c.threshold)?));
    }
    Ok(ModeRules {
        default: f("default", raw.default, base.default)?,
        noise_k: f("noise_k", raw.noise_k, base.noise_k)?,
        max_noise: f("max_noise", raw.max_noise, base.max_noise)?,
        max_steal: f("max_steal", raw.max_steal, base.max_steal)?,
        max_calibration_spread: f(
            "max_calibration_spread",
            raw.max_calibration_spread,
            base.max_calibration_spread,
        )?,
        cases,
    })
}

impl Thresholds {
    pub fn parse(path: &Path, text: &str) -> Result<Thresholds, HarnessError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let field = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].lines().count().max(1);
                    format!("line {line}")
                })
                .unwrap_or_else(|| "-".into());
            corrupt(path, field, e.message().to_string())
        })?;
        let d = Thresholds::default();
        Ok(Thresholds {
            wall: merge(path, "wall", raw.wall, d.wall)?,
            instructions: merge(path, "instructions", raw.instructions, d.instructions)?,
            source: path.display().to_string(),
        })
    }

    pub fn load(path: &Path) -> Result<Thresholds, HarnessError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| HarnessError::io(path, "read thresholds from", e))?;
        Thresholds::parse(path, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_match_wins_then_default() {
        let t = Thresholds::parse(
            Path::new("t.toml"),
            "[wall]\ndefault = 0.04\n[[wall.case]]\npattern = \"^add\"\nthreshold = 0.1\n\
             [[wall.case]]\npattern = \"a\"\nthreshold = 0.2\n[instructions]\ndefault = 0.005\n",
        )
        .unwrap();
        assert_eq!(t.wall.threshold("add(n=1)").0, 0.1);
        assert_eq!(t.wall.threshold("matmul(n=1)").0, 0.2);
        assert_eq!(t.wall.threshold("rms(n=1)"), (0.04, "default".to_string()));
        assert_eq!(t.wall.noise_k, 2.0);
        assert_eq!(t.instructions.default, 0.005);
    }

    #[test]
    fn errors_name_the_field() {
        let e = Thresholds::parse(Path::new("t.toml"), "[wall]\ndefault = -1\n").unwrap_err();
        assert!(e.to_string().contains("wall.default"), "{e}");
        let e = Thresholds::parse(
            Path::new("t.toml"),
            "[[wall.case]]\npattern = \"(\"\nthreshold = 0.1\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("wall.case[0].pattern"), "{e}");
        let e = Thresholds::parse(Path::new("t.toml"), "[wall]\ndefualt = 0.1\n").unwrap_err();
        assert!(e.to_string().contains("t.toml"), "{e}");
    }
}
