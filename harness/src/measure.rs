//! Timing only: warm-up, iteration counts sized against the timer, samples within a time
//! cap, and interleaved measurement of several routines on the same case.
//!
//! A *routine* is anything that can run `iters` iterations of one measured unit of work
//! ([`Routine`]); op cases and (later) end-to-end model cases implement it. Statistics live
//! in [`crate::stats`]; this module only produces raw samples in nanoseconds per iteration.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Something measurable: `run(iters)` performs `iters` back-to-back iterations.
///
/// Implementations must pass their inputs and outputs through [`black_box`] so the work is
/// not optimized away, and must be numerically stationary over many iterations.
pub trait Routine {
    fn run(&mut self, iters: u64);
}

impl<F: FnMut(u64)> Routine for F {
    fn run(&mut self, iters: u64) {
        self(iters)
    }
}

/// How long and how often to measure.
#[derive(Clone, Debug, PartialEq)]
pub struct MeasureConfig {
    /// Warm-up per routine before any sample (also estimates the time of one iteration).
    pub warmup: Duration,
    /// Minimum duration of one sample; raised to 100× the timer resolution if that is more.
    pub min_sample: Duration,
    /// Samples per routine wanted.
    pub samples: usize,
    /// Samples per routine guaranteed even past the time cap (statistics need a few).
    pub min_samples: usize,
    /// Wall-time cap for all rounds of one interleaved group (warm-up excluded).
    pub time_cap: Duration,
}

impl MeasureConfig {
    /// Defaults for `run`/`compare`: 50 samples of ≥ 1 ms per variant, at most 1 s of rounds
    /// per case group.
    pub fn standard() -> Self {
        MeasureConfig {
            warmup: Duration::from_millis(30),
            min_sample: Duration::from_millis(1),
            samples: 50,
            min_samples: 5,
            time_cap: Duration::from_millis(1000),
        }
    }

    /// `--quick`: 15 samples, at most 0.15 s of rounds per case group.
    pub fn quick() -> Self {
        MeasureConfig {
            warmup: Duration::from_millis(5),
            min_sample: Duration::from_millis(1),
            samples: 15,
            min_samples: 5,
            time_cap: Duration::from_millis(150),
        }
    }

    /// The sample duration actually targeted: max(min_sample, 100 × timer resolution).
    pub fn sample_target(&self) -> Duration {
        self.min_sample.max(timer_resolution() * 100)
    }
}

/// Raw samples of one routine: nanoseconds per iteration, in measurement order.
#[derive(Clone, Debug, PartialEq)]
pub struct Samples {
    pub ns_per_iter: Vec<f64>,
    pub iters_per_sample: u64,
}

/// The smallest non-zero step of [`Instant`] observed (cached after the first call).
pub fn timer_resolution() -> Duration {
    use std::sync::OnceLock;
    static RESOLUTION: OnceLock<Duration> = OnceLock::new();
    *RESOLUTION.get_or_init(|| {
        let mut best = Duration::from_secs(1);
        for _ in 0..200 {
            let start = Instant::now();
            let mut now = Instant::now();
            while now == start {
                now = Instant::now();
            }
            best = best.min(now - start);
        }
        best.max(Duration::from_nanos(1))
    })
}

/// Runs `routine` with doubling iteration counts until `warmup` has elapsed; returns the
/// estimated time of one iteration in nanoseconds: the fastest batch long enough to time
/// reliably (a batch slowed by a neighbour would overestimate it and make samples short).
pub fn warm_up(routine: &mut dyn Routine, warmup: Duration) -> f64 {
    let reliable = (timer_resolution() * 1000).max(Duration::from_micros(10));
    let start = Instant::now();
    let mut iters = 1u64;
    let mut best = f64::INFINITY;
    loop {
        let t = Instant::now();
        routine.run(iters);
        let elapsed = t.elapsed();
        let per_iter = elapsed.as_nanos() as f64 / iters as f64;
        if elapsed >= reliable {
            best = best.min(per_iter);
        }
        if start.elapsed() >= warmup {
            let estimate = if best.is_finite() { best } else { per_iter };
            return estimate.max(0.01);
        }
        // Never let one batch overshoot the remaining warm-up by much.
        if elapsed < warmup / 4 {
            iters = iters.saturating_mul(2);
        }
    }
}

/// Iterations so one sample lasts at least `target`.
pub fn iterations_for(target: Duration, ns_per_iter: f64) -> u64 {
    (target.as_nanos() as f64 / ns_per_iter).ceil().max(1.0) as u64
}

/// Measures `routines` interleaved: each round runs one sample of every routine, in
/// forward order on even rounds and reverse order on odd ones, so drift and neighbour
/// effects hit all of them alike. Stops after `config.samples` rounds or when the time cap
/// is reached (but not before `config.min_samples` rounds). `on_round` is called after each
/// round with (rounds done, rounds wanted), for progress bars.
pub fn measure_interleaved(
    routines: &mut [&mut dyn Routine],
    config: &MeasureConfig,
    on_round: &mut dyn FnMut(usize, usize),
) -> Vec<Samples> {
    let target = config.sample_target();
    let iters: Vec<u64> = routines
        .iter_mut()
        .map(|r| iterations_for(target, warm_up(&mut **r, config.warmup)))
        .collect();
    let mut samples: Vec<Samples> = iters
        .iter()
        .map(|&n| Samples { ns_per_iter: Vec::with_capacity(config.samples), iters_per_sample: n })
        .collect();
    let start = Instant::now();
    let wanted = config.samples.max(config.min_samples);
    for round in 0..wanted {
        if round >= config.min_samples && start.elapsed() >= config.time_cap {
            break;
        }
        let count = routines.len();
        for k in 0..count {
            let i = if round % 2 == 0 { k } else { count - 1 - k };
            let t = Instant::now();
            routines[i].run(iters[i]);
            let ns = t.elapsed().as_nanos() as f64;
            samples[i].ns_per_iter.push(ns / iters[i] as f64);
        }
        on_round(round + 1, wanted);
    }
    samples
}

/// Runs a closure over rotating owned states: iteration `i` uses `states[i % len]`. With one
/// state this is a "hot" routine; with enough states to exceed the last-level cache, "cold".
pub struct Rotating<S, F: FnMut(&mut S)> {
    states: Vec<S>,
    next: usize,
    body: F,
}

impl<S, F: FnMut(&mut S)> Rotating<S, F> {
    pub fn new(states: Vec<S>, body: F) -> Self {
        assert!(!states.is_empty(), "a rotating routine needs at least one state");
        Rotating { states, next: 0, body }
    }

    pub fn states(&self) -> &[S] {
        &self.states
    }
}

impl<S, F: FnMut(&mut S)> Routine for Rotating<S, F> {
    fn run(&mut self, iters: u64) {
        let len = self.states.len();
        for _ in 0..iters {
            let state = black_box(&mut self.states[self.next]);
            (self.body)(state);
            black_box(state);
            self.next += 1;
            if self.next == len {
                self.next = 0;
            }
        }
    }
}

/// Copies of a working set of `bytes` needed so rotating over them touches more than
/// `2 × last_level_cache` bytes: every iteration then finds its data evicted.
pub fn cold_copies(bytes: usize, last_level_cache: usize) -> usize {
    if bytes == 0 {
        return 1;
    }
    (2 * last_level_cache).div_ceil(bytes).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin(ns: u64) {
        let t = Instant::now();
        while t.elapsed() < Duration::from_nanos(ns) {
            black_box(0);
        }
    }

    #[test]
    fn samples_last_at_least_the_target_and_have_the_right_scale() {
        let config = MeasureConfig {
            warmup: Duration::from_millis(5),
            min_sample: Duration::from_millis(1),
            samples: 6,
            min_samples: 3,
            time_cap: Duration::from_secs(2),
        };
        let mut fast = |iters: u64| (0..iters).for_each(|_| spin(2_000));
        let mut slow = |iters: u64| (0..iters).for_each(|_| spin(8_000));
        let out = measure_interleaved(&mut [&mut fast, &mut slow], &config, &mut |_, _| {});
        assert_eq!(out.len(), 2);
        for s in &out {
            assert_eq!(s.ns_per_iter.len(), 6);
            // Iterations are sized from the warm-up estimate; a load spike during warm-up makes
            // that estimate (and so the sample) longer or shorter by a small factor, whereas a
            // sizing bug is off by orders of magnitude (one 2 µs iteration for a 1 ms target).
            // So: the longest sample must reach half the target.
            let longest = s.ns_per_iter.iter().copied().fold(0.0, f64::max);
            let sample_ns = s.iters_per_sample as f64 * longest;
            assert!(sample_ns >= 0.5e6, "the longest sample lasted {sample_ns} ns");
        }
        // Spinning lasts at least as long as asked, and load only makes it longer: the per-iteration
        // times are bounded below by each routine's spin (this checks the ns-per-iteration scale).
        let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(min(&out[0].ns_per_iter) >= 2_000.0);
        assert!(min(&out[1].ns_per_iter) >= 8_000.0);
    }

    #[test]
    fn order_alternates_each_round() {
        let log = std::cell::RefCell::new(Vec::new());
        let config = MeasureConfig {
            warmup: Duration::ZERO,
            min_sample: Duration::from_micros(1),
            samples: 4,
            min_samples: 4,
            time_cap: Duration::from_secs(5),
        };
        let mut a = |_: u64| log.borrow_mut().push('a');
        let mut b = |_: u64| log.borrow_mut().push('b');
        measure_interleaved(&mut [&mut a, &mut b], &config, &mut |_, _| {});
        let text: String = log.borrow().iter().collect();
        // Warm-up runs one batch each ("a", "b"), then rounds ab, ba, ab, ba.
        assert!(text.ends_with("abbaabba"), "{text}");
    }

    #[test]
    fn time_cap_stops_rounds_but_keeps_the_minimum() {
        let config = MeasureConfig {
            warmup: Duration::ZERO,
            min_sample: Duration::from_millis(1),
            samples: 1000,
            min_samples: 3,
            time_cap: Duration::from_millis(20),
        };
        let mut r = |iters: u64| (0..iters).for_each(|_| spin(10_000));
        let out = measure_interleaved(&mut [&mut r], &config, &mut |_, _| {});
        let n = out[0].ns_per_iter.len();
        assert!((3..100).contains(&n), "{n} samples");
    }

    #[test]
    fn rotation_visits_every_state_in_turn() {
        let mut r = Rotating::new(vec![0u32; 3], |s: &mut u32| *s += 1);
        r.run(7);
        assert_eq!(r.states(), &[3, 2, 2]);
        assert_eq!(cold_copies(1 << 20, 32 << 20), 64);
        assert_eq!(cold_copies(100 << 20, 32 << 20), 1);
        assert_eq!(cold_copies(0, 32 << 20), 1);
    }
}
