//! Choosing the next token from logits: greedy, or seeded sampling with repetition penalty,
//! top-k, top-p and temperature.
//!
//! Order (as llama.cpp's default chain): repetition penalty → top-k → top-p (nucleus, on the
//! softmax at temperature 1) → temperature → draw. Temperature 0 means greedy (argmax after
//! the penalty). Randomness is ChaCha8 seeded by `seed`, so a run is reproducible.

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum SamplerError {
    #[error("{name} = {value} is invalid: {rule}")]
    BadParameter { name: &'static str, value: f64, rule: &'static str },
    #[error("no finite logit among {n} to choose from")]
    NoCandidate { n: usize },
}

#[derive(Clone, Debug, PartialEq)]
pub struct SamplerConfig {
    /// 0 = greedy; otherwise logits are divided by it before the draw.
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens; 0 = all.
    pub top_k: usize,
    /// Keep the fewest most likely tokens whose probability sums to at least `top_p`; 1 = all.
    pub top_p: f32,
    /// CTRL-style penalty on tokens among the last `repeat_last_n`: positive logits are
    /// divided by it, negative ones multiplied; 1 = off.
    pub repetition_penalty: f32,
    pub repeat_last_n: usize,
    pub seed: u64,
}

impl SamplerConfig {
    pub fn greedy() -> Self {
        SamplerConfig {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }

    fn validate(&self) -> Result<(), SamplerError> {
        let bad = |name, value: f32, rule| {
            Err(SamplerError::BadParameter { name, value: f64::from(value), rule })
        };
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad("temperature", self.temperature, "must be finite and ≥ 0");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", self.top_p, "must be in (0, 1]");
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return bad("repetition_penalty", self.repetition_penalty, "must be finite and > 0");
        }
        Ok(())
    }
}

/// Index of the largest logit; ties go to the lowest index, NaN never wins.
pub fn argmax(logits: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &x) in logits.iter().enumerate() {
        if x.is_nan() || x == f32::NEG_INFINITY {
            continue;
        }
        if best.is_none_or(|(_, b)| x > b) {
            best = Some((i, x));
        }
    }
    best.map(|(i, _)| i as u32)
}

/// Apply the CTRL repetition penalty to the logits of `recent` tokens (each once).
pub fn apply_repetition_penalty(logits: &mut [f32], recent: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = std::collections::HashSet::with_capacity(recent.len());
    for &id in recent {
        if let Some(x) = logits.get_mut(id as usize) {
            if seen.insert(id) {
                *x = if *x > 0.0 { *x / penalty } else { *x * penalty };
            }
        }
    }
}

/// The candidates left after top-k and top-p, as (id, probability at temperature 1),
/// most likely first; probabilities are renormalized over the survivors.
pub fn filtered_candidates(logits: &[f32], top_k: usize, top_p: f32) -> Vec<(u32, f64)> {
    let mut c: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .filter(|(_, x)| !x.is_nan() && **x != f32::NEG_INFINITY)
        .map(|(i, &x)| (i as u32, x))
        .collect();
    // stable sort: equal logits keep index order
    c.sort_by(|a, b| b.1.total_cmp(&a.1));
    if top_k > 0 && top_k < c.len() {
        c.truncate(top_k);
    }
    let Some(&(_, max)) = c.first() else {
        return Vec::new();
    };
    let weights: Vec<f64> = c.iter().map(|&(_, x)| f64::from(x - max).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut out: Vec<(u32, f64)> =
        c.iter().zip(&weights).map(|(&(id, _), &w)| (id, w / total)).collect();
    if top_p < 1.0 {
        let mut sum = 0.0;
        let mut keep = out.len();
        for (i, &(_, p)) in out.iter().enumerate() {
            sum += p;
            if sum >= f64::from(top_p) {
                keep = i + 1;
                break;
            }
        }
        out.truncate(keep.max(1));
        let total: f64 = out.iter().map(|&(_, p)| p).sum();
        for c in &mut out {
            c.1 /= total;
        }
    }
    out
}

/// Probabilities after temperature: p_i ∝ q_i^(1/T) for the filtered probabilities q.
pub fn apply_temperature(candidates: &mut [(u32, f64)], temperature: f32) {
    let inv = 1.0 / f64::from(temperature);
    let max_log = candidates.iter().map(|&(_, p)| p.ln()).fold(f64::NEG_INFINITY, f64::max);
    let mut total = 0.0;
    for c in candidates.iter_mut() {
        c.1 = ((c.1.ln() - max_log) * inv).exp();
        total += c.1;
    }
    for c in candidates.iter_mut() {
        c.1 /= total;
    }
}

/// A stateful sampler: keeps the recent tokens for the repetition penalty and the RNG.
pub struct Sampler {
    config: SamplerConfig,
    rng: ChaCha8Rng,
    recent: VecDeque<u32>,
    scratch: Vec<f32>,
}

impl Sampler {
    pub fn new(config: SamplerConfig) -> Result<Self, SamplerError> {
        config.validate()?;
        Ok(Sampler {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            recent: VecDeque::with_capacity(config.repeat_last_n),
            scratch: Vec::new(),
            config,
        })
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    /// Record a token (prompt or generated) for the repetition penalty.
    pub fn accept(&mut self, id: u32) {
        if self.config.repeat_last_n == 0 {
            return;
        }
        if self.recent.len() == self.config.repeat_last_n {
            self.recent.pop_front();
        }
        self.recent.push_back(id);
    }

    /// Choose the next token from `logits` and record it.
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32, SamplerError> {
        let c = &self.config;
        let logits = if c.repetition_penalty != 1.0 && !self.recent.is_empty() {
            self.scratch.clear();
            self.scratch.extend_from_slice(logits);
            let recent: Vec<u32> = self.recent.iter().copied().collect();
            apply_repetition_penalty(&mut self.scratch, &recent, c.repetition_penalty);
            &self.scratch[..]
        } else {
            logits
        };
        let id = if c.temperature == 0.0 {
            argmax(logits).ok_or(SamplerError::NoCandidate { n: logits.len() })?
        } else {
            let mut candidates = filtered_candidates(logits, c.top_k, c.top_p);
            if candidates.is_empty() {
                return Err(SamplerError::NoCandidate { n: logits.len() });
            }
            apply_temperature(&mut candidates, c.temperature);
            let u: f64 = self.rng.gen::<f64>();
            let mut cumulative = 0.0;
            let mut chosen = candidates[candidates.len() - 1].0;
            for &(id, p) in &candidates {
                cumulative += p;
                if u < cumulative {
                    chosen = id;
                    break;
                }
            }
            chosen
        };
        self.accept(id);
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(temperature: f32, top_k: usize, top_p: f32, seed: u64) -> Sampler {
        Sampler::new(SamplerConfig {
            temperature,
            top_k,
            top_p,
            repetition_penalty: 1.0,
            repeat_last_n: 0,
            seed,
        })
        .unwrap()
    }

    /// Frequencies of `n` draws from `logits`.
    fn frequencies(s: &mut Sampler, logits: &[f32], n: usize) -> Vec<f64> {
        let mut counts = vec![0usize; logits.len()];
        for _ in 0..n {
            counts[s.sample(logits).unwrap() as usize] += 1;
        }
        counts.iter().map(|&c| c as f64 / n as f64).collect()
    }

    /// Each frequency within 5 standard deviations of its probability.
    fn assert_close(freq: &[f64], want: &[f64], n: usize) {
        for (i, (&f, &p)) in freq.iter().zip(want).enumerate() {
            let sigma = (p * (1.0 - p) / n as f64).sqrt().max(1e-9);
            assert!(
                (f - p).abs() <= 5.0 * sigma + 1e-12,
                "token {i}: freq {f}, want {p} (σ {sigma}); all {freq:?}"
            );
        }
    }

    fn ln(ps: &[f64]) -> Vec<f32> {
        ps.iter().map(|p| p.ln() as f32).collect()
    }

    #[test]
    fn greedy_is_argmax_with_ties_low_and_nan_ignored() {
        let mut s = Sampler::new(SamplerConfig::greedy()).unwrap();
        assert_eq!(s.sample(&[0.1, 3.0, -1.0, 3.0]).unwrap(), 1);
        assert_eq!(s.sample(&[f32::NAN, -5.0, f32::NAN]).unwrap(), 1);
        assert_eq!(s.sample(&[f32::NAN]), Err(SamplerError::NoCandidate { n: 1 }));
        assert_eq!(s.sample(&[]), Err(SamplerError::NoCandidate { n: 0 }));
        assert_eq!(argmax(&[f32::NEG_INFINITY, f32::INFINITY]), Some(1));
    }

    #[test]
    fn temperature_one_draws_the_softmax_distribution() {
        let p = [0.1, 0.2, 0.3, 0.4];
        let n = 200_000;
        let f = frequencies(&mut sampler(1.0, 0, 1.0, 1), &ln(&p), n);
        assert_close(&f, &p, n);
    }

    #[test]
    fn temperature_sharpens_and_flattens() {
        let p = [0.1, 0.2, 0.3, 0.4];
        let n = 100_000;
        for t in [0.5f64, 2.0] {
            let w: Vec<f64> = p.iter().map(|q: &f64| q.powf(1.0 / t)).collect();
            let total: f64 = w.iter().sum();
            let want: Vec<f64> = w.iter().map(|x| x / total).collect();
            let f = frequencies(&mut sampler(t as f32, 0, 1.0, 2), &ln(&p), n);
            assert_close(&f, &want, n);
        }
    }

    #[test]
    fn top_k_and_top_p_keep_the_right_candidates() {
        let p = [0.1, 0.2, 0.3, 0.4];
        let n = 100_000;
        let f = frequencies(&mut sampler(1.0, 2, 1.0, 3), &ln(&p), n);
        assert_close(&f, &[0.0, 0.0, 3.0 / 7.0, 4.0 / 7.0], n);
        // top-p 0.5: 0.4 alone is below 0.5, 0.4 + 0.3 reaches it
        let f = frequencies(&mut sampler(1.0, 0, 0.5, 4), &ln(&p), n);
        assert_close(&f, &[0.0, 0.0, 3.0 / 7.0, 4.0 / 7.0], n);
        // top-p 0.39 keeps only the first (cumulative 0.4 ≥ p)
        let f = frequencies(&mut sampler(1.0, 0, 0.39, 5), &ln(&p), 1000);
        assert_eq!(f, vec![0.0, 0.0, 0.0, 1.0]);
        let c = filtered_candidates(&ln(&p), 3, 0.6);
        let ids: Vec<u32> = c.iter().map(|x| x.0).collect();
        assert_eq!(ids, vec![3, 2]);
        assert!((c[0].1 - 4.0 / 7.0).abs() < 1e-6);
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative() {
        let mut logits = [2.0, -2.0, 1.0, 0.5];
        apply_repetition_penalty(&mut logits, &[0, 1, 0, 9], 2.0);
        assert_eq!(logits, [1.0, -4.0, 1.0, 0.5]);
        // in the sampler: after token 0 is accepted, greedy moves to the next best
        let mut s =
            Sampler::new(SamplerConfig { repetition_penalty: 3.0, ..SamplerConfig::greedy() })
                .unwrap();
        assert_eq!(s.sample(&[2.0, 1.0]).unwrap(), 0);
        assert_eq!(s.sample(&[2.0, 1.0]).unwrap(), 1);
    }

    #[test]
    fn seeded_runs_repeat_and_seeds_differ() {
        let logits = ln(&[0.25; 4]);
        let run = |seed| {
            let mut s = sampler(1.0, 0, 1.0, seed);
            (0..64).map(|_| s.sample(&logits).unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn bad_parameters_are_refused() {
        for cfg in [
            SamplerConfig { temperature: -1.0, ..SamplerConfig::greedy() },
            SamplerConfig { temperature: f32::NAN, ..SamplerConfig::greedy() },
            SamplerConfig { top_p: 0.0, ..SamplerConfig::greedy() },
            SamplerConfig { top_p: 1.5, ..SamplerConfig::greedy() },
            SamplerConfig { repetition_penalty: 0.0, ..SamplerConfig::greedy() },
        ] {
            let e = Sampler::new(cfg).err().unwrap();
            assert!(matches!(e, SamplerError::BadParameter { .. }), "{e}");
        }
    }
}
