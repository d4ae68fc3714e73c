//! Number formatting shared by the console and markdown renderers.

use crate::stats::{Interval, Ratio};

/// `12.3 ns`, `4.56 µs`, `7.89 ms`, `1.23 s`.
pub fn time_ns(ns: f64) -> String {
    if !ns.is_finite() {
        return "-".into();
    }
    let (v, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    format!("{} {unit}", sig3(v))
}

/// Three significant digits, no exponent for ordinary magnitudes.
pub fn sig3(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a >= 0.01 {
        format!("{v:.3}")
    } else if a == 0.0 {
        "0".into()
    } else {
        format!("{v:.2e}")
    }
}

/// `1.23× [1.20, 1.26]`.
pub fn ratio(r: &Ratio) -> String {
    format!("{}× {}", sig3(r.ratio), interval(&r.ci95))
}

pub fn interval(i: &Interval) -> String {
    format!("[{}, {}]", sig3(i.lo), sig3(i.hi))
}

/// Relative half-width of an interval around a centre, as `±1.2%`.
pub fn pm_percent(centre: f64, i: &Interval) -> String {
    let half = (i.hi - i.lo) / 2.0;
    if centre > 0.0 && half.is_finite() {
        format!("±{:.1}%", 100.0 * half / centre)
    } else {
        "".into()
    }
}
