//! How close a variant's output must be to the naive one: one metric per op, named.
//!
//! Non-finite values are compared first: where the reference is NaN the variant must be NaN,
//! where it is ±inf the variant must be the same infinity, and a variant may not produce a
//! non-finite value where the reference is finite. Only then is the number compared.

use std::fmt;

/// The metric and bound an op's outputs are held to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tolerance {
    /// Identical bits (±0 distinguished).
    BitExact,
    /// At most this many units in the last place apart.
    Ulp(u32),
    /// `|got - want| <= abs + rel * |want|`, element by element.
    AbsRel { abs: f32, rel: f32 },
    /// Normalized mean squared error over the whole output: `Σ(got-want)² / Σ want² <= bound`
    /// (with `Σ want² = 0`, the absolute `Σ(got-want)²` is bounded instead).
    NormalizedMse(f64),
    /// Dot-product bound `|got - want| <= c · ε · Σ|aᵢbᵢ|` with ε = f32::EPSILON; the op
    /// supplies `Σ|aᵢbᵢ|` per output element (see `OpInfo::magnitude`).
    DotBound { c: f64 },
}

/// The first element that broke the bound.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    pub metric: String,
    pub index: usize,
    pub got: f32,
    pub want: f32,
    /// The error measured and the bound it exceeded, in the metric's unit.
    pub error: f64,
    pub bound: f64,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: index {} got {:e} want {:e} (error {:e} > bound {:e})",
            self.metric, self.index, self.got, self.want, self.error, self.bound
        )
    }
}

/// What a passing check measured (the worst error seen, in the metric's unit).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Agreement {
    pub worst_error: f64,
}

/// Distance in units in the last place between two finite f32 values.
pub fn ulp_distance(a: f32, b: f32) -> u64 {
    fn ordered(x: f32) -> i64 {
        let bits = x.to_bits() as i32;
        // Map the sign-magnitude bit patterns onto a monotonic integer line; ±0 both map to 0.
        if bits < 0 {
            -((bits & 0x7fff_ffff) as i64)
        } else {
            bits as i64
        }
    }
    ordered(a).abs_diff(ordered(b))
}

impl Tolerance {
    /// The metric's name as printed in tables and failure messages.
    pub fn metric(&self) -> String {
        match self {
            Tolerance::BitExact => "bit-exact".into(),
            Tolerance::Ulp(n) => format!("ulp<={n}"),
            Tolerance::AbsRel { abs, rel } => format!("|d|<={abs:e}+{rel:e}|want|"),
            Tolerance::NormalizedMse(b) => format!("nmse<={b:e}"),
            Tolerance::DotBound { c } => format!("|d|<={c}*eps*sum|ab|"),
        }
    }

    /// Compares `got` to `want`; `magnitude` is required for [`Tolerance::DotBound`].
    ///
    /// Panics if the lengths differ or a dot bound has no magnitudes: both are bugs in the
    /// caller, not disagreements between variants.
    pub fn check(
        &self,
        got: &[f32],
        want: &[f32],
        magnitude: Option<&[f64]>,
    ) -> Result<Agreement, Mismatch> {
        assert_eq!(
            got.len(),
            want.len(),
            "output lengths differ: got {} want {}",
            got.len(),
            want.len()
        );
        let metric = self.metric();
        let mismatch = |index: usize, error: f64, bound: f64| Mismatch {
            metric: metric.clone(),
            index,
            got: got[index],
            want: want[index],
            error,
            bound,
        };
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let agrees = if w.is_nan() {
                g.is_nan()
            } else if w.is_infinite() {
                g == w
            } else {
                g.is_finite()
            };
            if !agrees {
                return Err(mismatch(i, f64::INFINITY, 0.0));
            }
        }
        let finite = |i: usize| want[i].is_finite();
        let mut worst = 0.0f64;
        match *self {
            Tolerance::BitExact => {
                for i in (0..got.len()).filter(|&i| finite(i)) {
                    if got[i].to_bits() != want[i].to_bits() {
                        return Err(mismatch(i, ulp_distance(got[i], want[i]) as f64, 0.0));
                    }
                }
            }
            Tolerance::Ulp(n) => {
                for i in (0..got.len()).filter(|&i| finite(i)) {
                    let d = ulp_distance(got[i], want[i]);
                    worst = worst.max(d as f64);
                    if d > n as u64 {
                        return Err(mismatch(i, d as f64, n as f64));
                    }
                }
            }
            Tolerance::AbsRel { abs, rel } => {
                for i in (0..got.len()).filter(|&i| finite(i)) {
                    let d = (got[i] as f64 - want[i] as f64).abs();
                    let bound = abs as f64 + rel as f64 * (want[i] as f64).abs();
                    worst = worst.max(d);
                    if d > bound {
                        return Err(mismatch(i, d, bound));
                    }
                }
            }
            Tolerance::NormalizedMse(bound) => {
                let (mut err, mut norm, mut worst_i, mut worst_d) = (0.0f64, 0.0f64, 0, -1.0f64);
                for i in (0..got.len()).filter(|&i| finite(i)) {
                    let d = got[i] as f64 - want[i] as f64;
                    err += d * d;
                    norm += want[i] as f64 * want[i] as f64;
                    if d.abs() > worst_d {
                        (worst_i, worst_d) = (i, d.abs());
                    }
                }
                let nmse = if norm > 0.0 { err / norm } else { err };
                worst = nmse;
                if nmse > bound {
                    return Err(mismatch(worst_i, nmse, bound));
                }
            }
            Tolerance::DotBound { c } => {
                let magnitude =
                    magnitude.expect("a DotBound tolerance needs per-output magnitudes");
                assert_eq!(magnitude.len(), got.len(), "one magnitude per output element");
                for i in (0..got.len()).filter(|&i| finite(i)) {
                    let d = (got[i] as f64 - want[i] as f64).abs();
                    // The f32 result itself is rounded once: allow half an ulp of |want| too.
                    let bound = c * f32::EPSILON as f64 * magnitude[i]
                        + 0.5 * f32::EPSILON as f64 * (want[i] as f64).abs();
                    worst = worst.max(if bound > 0.0 { d / bound } else { d });
                    if d > bound {
                        return Err(mismatch(i, d, bound));
                    }
                }
            }
        }
        Ok(Agreement { worst_error: worst })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulp_distance_crosses_zero() {
        assert_eq!(ulp_distance(0.0, -0.0), 0);
        assert_eq!(ulp_distance(1.0, f32::from_bits(1.0f32.to_bits() + 3)), 3);
        assert_eq!(ulp_distance(f32::from_bits(1), -f32::from_bits(1)), 2);
    }

    #[test]
    fn non_finite_values_must_agree_first() {
        let t = Tolerance::AbsRel { abs: 1.0, rel: 1.0 };
        assert!(t.check(&[f32::NAN], &[f32::NAN], None).is_ok());
        assert!(t.check(&[1.0], &[f32::NAN], None).is_err());
        assert!(t.check(&[f32::NAN], &[1.0], None).is_err());
        assert!(t.check(&[f32::INFINITY], &[f32::NEG_INFINITY], None).is_err());
        assert!(t.check(&[f32::INFINITY], &[1e30], None).is_err());
    }

    #[test]
    fn each_metric_rejects_what_it_should() {
        assert!(Tolerance::BitExact.check(&[0.0], &[-0.0], None).is_err());
        assert!(Tolerance::Ulp(1)
            .check(&[1.0], &[f32::from_bits(1.0f32.to_bits() + 1)], None)
            .is_ok());
        assert!(Tolerance::Ulp(1)
            .check(&[1.0], &[f32::from_bits(1.0f32.to_bits() + 2)], None)
            .is_err());
        let m = Tolerance::NormalizedMse(1e-6).check(&[1.0, 2.0], &[1.0, 2.1], None).unwrap_err();
        assert_eq!(m.index, 1);
        let dot = Tolerance::DotBound { c: 4.0 };
        assert!(dot.check(&[1.0 + 1e-7], &[1.0], Some(&[10.0])).is_ok());
        assert!(dot.check(&[1.001], &[1.0], Some(&[10.0])).is_err());
    }
}
