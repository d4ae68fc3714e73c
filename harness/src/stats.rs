//! Statistics over raw samples: pure functions, no I/O, seeded resampling.
//!
//! Medians rather than means (timings are right-skewed), the median absolute deviation as
//! the spread, percentile-bootstrap 95 % confidence intervals of the median and of ratios of
//! medians, and Tukey's fences to flag (never drop) outliers.

use serde::{Deserialize, Serialize};

/// Resamples drawn for every bootstrap interval.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// A small seeded generator (SplitMix64): bootstrap intervals are reproducible.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by the multiply-shift method.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn sorted(xs: &[f64]) -> Vec<f64> {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// Linear-interpolated quantile (type 7, as R and NumPy default) of sorted data.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "quantile of no data");
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// The median; NaN for no data.
pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    quantile_sorted(&sorted(xs), 0.5)
}

/// The median absolute deviation from the median (unscaled; × 1.4826 estimates σ of a
/// normal distribution).
pub fn mad(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let m = median(xs);
    let deviations: Vec<f64> = xs.iter().map(|x| (x - m).abs()).collect();
    median(&deviations)
}

pub fn min(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::NAN, f64::min)
}

pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// A two-sided confidence interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }

    /// The interval of `f(x)` for a decreasing `f` (e.g. time → throughput).
    pub fn map_decreasing(self, f: impl Fn(f64) -> f64) -> Interval {
        Interval { lo: f(self.hi), hi: f(self.lo) }
    }
}

fn percentile_interval(mut estimates: Vec<f64>, level: f64) -> Interval {
    estimates.sort_by(f64::total_cmp);
    let alpha = (1.0 - level) / 2.0;
    Interval {
        lo: quantile_sorted(&estimates, alpha),
        hi: quantile_sorted(&estimates, 1.0 - alpha),
    }
}

fn resample_median(xs: &[f64], rng: &mut SplitMix64, buf: &mut Vec<f64>) -> f64 {
    buf.clear();
    buf.extend((0..xs.len()).map(|_| xs[rng.below(xs.len())]));
    buf.sort_by(f64::total_cmp);
    quantile_sorted(buf, 0.5)
}

/// Percentile-bootstrap 95 % CI of the median.
pub fn median_ci(xs: &[f64], seed: u64) -> Interval {
    if xs.is_empty() {
        return Interval { lo: f64::NAN, hi: f64::NAN };
    }
    let mut rng = SplitMix64::new(seed);
    let mut buf = Vec::with_capacity(xs.len());
    let estimates =
        (0..BOOTSTRAP_RESAMPLES).map(|_| resample_median(xs, &mut rng, &mut buf)).collect();
    percentile_interval(estimates, 0.95)
}

/// A ratio of medians `median(num) / median(den)` with its bootstrap 95 % CI.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    pub ratio: f64,
    pub ci95: Interval,
}

/// Bootstrap CI of `median(num) / median(den)` for independent sample sets: each is
/// resampled on its own.
pub fn ratio_ci(num: &[f64], den: &[f64], seed: u64) -> Ratio {
    let ratio = median(num) / median(den);
    if num.is_empty() || den.is_empty() {
        return Ratio { ratio, ci95: Interval { lo: f64::NAN, hi: f64::NAN } };
    }
    let mut rng = SplitMix64::new(seed);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let estimates = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| resample_median(num, &mut rng, &mut a) / resample_median(den, &mut rng, &mut b))
        .collect();
    Ratio { ratio, ci95: percentile_interval(estimates, 0.95) }
}

/// Bootstrap CI of `median(num) / median(den)` for samples paired by round (interleaved
/// measurement): rounds are resampled together, so drift shared by a round cancels.
/// Falls back to [`ratio_ci`] when the lengths differ.
pub fn paired_ratio_ci(num: &[f64], den: &[f64], seed: u64) -> Ratio {
    if num.len() != den.len() || num.is_empty() {
        return ratio_ci(num, den, seed);
    }
    let ratio = median(num) / median(den);
    let mut rng = SplitMix64::new(seed);
    let n = num.len();
    let (mut a, mut b) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let estimates = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            a.clear();
            b.clear();
            for _ in 0..n {
                let i = rng.below(n);
                a.push(num[i]);
                b.push(den[i]);
            }
            a.sort_by(f64::total_cmp);
            b.sort_by(f64::total_cmp);
            quantile_sorted(&a, 0.5) / quantile_sorted(&b, 0.5)
        })
        .collect();
    Ratio { ratio, ci95: percentile_interval(estimates, 0.95) }
}

/// Tukey's fences: samples beyond Q1 − 1.5·IQR / Q3 + 1.5·IQR are mild outliers, beyond
/// 3·IQR severe. Outliers are flagged and counted, never removed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Outliers {
    pub low_severe: usize,
    pub low_mild: usize,
    pub high_mild: usize,
    pub high_severe: usize,
    /// Indices (into the samples) of every flagged sample.
    pub indices: Vec<usize>,
}

impl Outliers {
    pub fn total(&self) -> usize {
        self.low_severe + self.low_mild + self.high_mild + self.high_severe
    }
}

pub fn tukey_outliers(xs: &[f64]) -> Outliers {
    let mut out = Outliers::default();
    if xs.len() < 4 {
        return out;
    }
    let s = sorted(xs);
    let (q1, q3) = (quantile_sorted(&s, 0.25), quantile_sorted(&s, 0.75));
    let iqr = q3 - q1;
    for (i, &x) in xs.iter().enumerate() {
        let flagged = if x < q1 - 3.0 * iqr {
            out.low_severe += 1;
            true
        } else if x < q1 - 1.5 * iqr {
            out.low_mild += 1;
            true
        } else if x > q3 + 3.0 * iqr {
            out.high_severe += 1;
            true
        } else if x > q3 + 1.5 * iqr {
            out.high_mild += 1;
            true
        } else {
            false
        };
        if flagged {
            out.indices.push(i);
        }
    }
    out
}

/// Everything reported about one sample set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub median: f64,
    pub mad: f64,
    pub min: f64,
    pub mean: f64,
    pub ci95: Interval,
    pub outliers: Outliers,
}

pub fn summarize(xs: &[f64], seed: u64) -> Summary {
    Summary {
        median: median(xs),
        mad: mad(xs),
        min: min(xs),
        mean: mean(xs),
        ci95: median_ci(xs, seed),
        outliers: tukey_outliers(xs),
    }
}

/// A stable seed for a case id (FNV-1a), so every case's intervals are reproducible.
pub fn seed_for(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(rng: &mut SplitMix64, mu: f64, sigma: f64) -> f64 {
        // Box–Muller.
        let u1 = rng.unit().max(1e-300);
        let u2 = rng.unit();
        mu + sigma * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    #[test]
    fn exact_values_on_small_sets() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(mad(&[1.0, 1.0, 2.0, 2.0, 4.0, 6.0, 9.0]), 1.0);
        assert_eq!(min(&[3.0, -1.0, 2.0]), -1.0);
        assert!(median(&[]).is_nan());
        assert_eq!(quantile_sorted(&[0.0, 10.0], 0.25), 2.5);
    }

    #[test]
    fn normal_distribution_median_and_mad() {
        let mut rng = SplitMix64::new(1);
        let xs: Vec<f64> = (0..20_001).map(|_| normal(&mut rng, 100.0, 5.0)).collect();
        assert!((median(&xs) - 100.0).abs() < 0.15, "median {}", median(&xs));
        // MAD of N(μ, σ) is σ·Φ⁻¹(3/4) = 0.67449 σ.
        let expected = 5.0 * 0.674_49;
        assert!((mad(&xs) - expected).abs() / expected < 0.03, "mad {}", mad(&xs));
    }

    #[test]
    fn uniform_and_exponential_medians() {
        let mut rng = SplitMix64::new(2);
        let uniform: Vec<f64> = (0..20_001).map(|_| rng.unit()).collect();
        assert!((median(&uniform) - 0.5).abs() < 0.01);
        assert!((mad(&uniform) - 0.25).abs() < 0.01);
        let exponential: Vec<f64> = (0..20_001).map(|_| -(1.0 - rng.unit()).ln()).collect();
        assert!((median(&exponential) - std::f64::consts::LN_2).abs() < 0.02);
    }

    #[test]
    fn median_ci_covers_the_true_median_about_95_percent_of_the_time() {
        let mut rng = SplitMix64::new(3);
        let trials = 200;
        let mut covered = 0;
        for t in 0..trials {
            // Lognormal timings: right-skewed like real ones; true median e^μ = e^0 = 1.
            let xs: Vec<f64> = (0..41).map(|_| normal(&mut rng, 0.0, 0.3).exp()).collect();
            if median_ci(&xs, t).contains(1.0) {
                covered += 1;
            }
        }
        let rate = covered as f64 / trials as f64;
        assert!((0.88..=0.995).contains(&rate), "coverage {rate}");
    }

    #[test]
    fn ratio_ci_covers_the_true_ratio_and_excludes_a_wrong_one() {
        let mut rng = SplitMix64::new(4);
        let mut covered = 0;
        for t in 0..100 {
            let a: Vec<f64> = (0..40).map(|_| normal(&mut rng, 12.0, 0.6)).collect();
            let b: Vec<f64> = (0..40).map(|_| normal(&mut rng, 10.0, 0.5)).collect();
            let r = ratio_ci(&a, &b, t);
            assert!(!r.ci95.contains(1.0), "{r:?}");
            if r.ci95.contains(1.2) {
                covered += 1;
            }
        }
        assert!(covered >= 88, "covered {covered} of 100");
    }

    #[test]
    fn pairing_cancels_shared_drift() {
        // Both series share a large round-to-round drift; B is 5 % slower than A.
        let mut rng = SplitMix64::new(5);
        let drift: Vec<f64> = (0..30).map(|i| 1.0 + 0.3 * ((i as f64) * 0.7).sin()).collect();
        let a: Vec<f64> = drift.iter().map(|d| 10.0 * d * normal(&mut rng, 1.0, 0.005)).collect();
        let b: Vec<f64> = drift.iter().map(|d| 10.5 * d * normal(&mut rng, 1.0, 0.005)).collect();
        let paired = paired_ratio_ci(&b, &a, 7);
        let independent = ratio_ci(&b, &a, 7);
        assert!(paired.ci95.lo > 1.0, "{paired:?}");
        let width = |r: Ratio| r.ci95.hi - r.ci95.lo;
        assert!(width(paired) < width(independent), "{paired:?} vs {independent:?}");
    }

    #[test]
    fn bootstrap_is_reproducible_with_a_seed() {
        let xs: Vec<f64> = (0..25).map(|i| (i * 37 % 11) as f64).collect();
        assert_eq!(median_ci(&xs, 9), median_ci(&xs, 9));
    }

    #[test]
    fn tukey_flags_and_keeps_outliers() {
        let mut xs: Vec<f64> = (0..20).map(|i| 10.0 + (i % 5) as f64 * 0.1).collect();
        xs.push(10.9); // mild: above Q3 + 1.5 IQR (IQR = 0.2)
        xs.push(50.0); // severe
        xs.push(0.0); // severe low
        let o = tukey_outliers(&xs);
        assert_eq!((o.low_severe, o.low_mild, o.high_mild, o.high_severe), (1, 0, 1, 1));
        assert_eq!(o.indices, vec![20, 21, 22]);
        assert_eq!(xs.len(), 23, "outliers are kept");
        let s = summarize(&xs, 1);
        assert_eq!(s.outliers.total(), 3);
        assert!(s.ci95.lo <= s.median && s.median <= s.ci95.hi);
    }
}
