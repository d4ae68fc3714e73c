//! Wall time of each part of the forward pass, measured inside the model's own loop.
//!
//! Off by default: a [`Stopwatch`] that is not running reads no clock, so the forward pass
//! pays one untaken branch per part. When on, the calling thread reads the clock after each
//! part (about 20 ns a read, ~12 reads per layer), so a part that runs on the thread pool is
//! timed from its start on the caller to the end of its region.

use std::time::{Duration, Instant};

/// The parts of a forward pass that [`PartTimes`] tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Token embedding rows (dequantized into the residual stream).
    Embed,
    /// The two RMS norms of every layer (norm and weight).
    Norm,
    /// The seven projections of every layer, quantizing their activations included.
    Matmul,
    /// RoPE of q and k.
    Rope,
    /// K and V into the cache (rounded to f16 when the cache is f16).
    KvCache,
    Attention,
    /// `silu(gate)·up` (decode does it inside the gate/up matmul, counted there).
    SiluMul,
    /// The two residual additions of every layer.
    Add,
    /// The final norm and the output projection.
    Logits,
}

impl Part {
    pub const ALL: [Part; 9] = [
        Part::Embed,
        Part::Norm,
        Part::Matmul,
        Part::Rope,
        Part::KvCache,
        Part::Attention,
        Part::SiluMul,
        Part::Add,
        Part::Logits,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Part::Embed => "embed",
            Part::Norm => "rms_norm",
            Part::Matmul => "matmuls",
            Part::Rope => "rope",
            Part::KvCache => "kv cache",
            Part::Attention => "attention",
            Part::SiluMul => "silu_mul",
            Part::Add => "add",
            Part::Logits => "logits",
        }
    }
}

/// Time spent in each [`Part`], summed over the forward passes since the last reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartTimes([Duration; Part::ALL.len()]);

impl PartTimes {
    pub fn get(&self, part: Part) -> Duration {
        self.0[part as usize]
    }

    /// The sum of every part.
    pub fn total(&self) -> Duration {
        self.0.iter().sum()
    }

    /// Each part's smaller time of `self` and `other` (for a best-of-N per part).
    pub fn min(&self, other: &PartTimes) -> PartTimes {
        PartTimes(std::array::from_fn(|i| self.0[i].min(other.0[i])))
    }

    fn add(&mut self, other: &PartTimes) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a += *b;
        }
    }
}

/// Laps of the forward pass: each [`Stopwatch::lap`] adds the time since the previous lap to
/// a part. Does nothing unless started with `on`.
pub(crate) struct Stopwatch {
    last: Option<Instant>,
    times: PartTimes,
}

impl Stopwatch {
    pub(crate) fn start(on: bool) -> Stopwatch {
        Stopwatch { last: on.then(Instant::now), times: PartTimes::default() }
    }

    /// Charges the time since the previous lap (or the start) to `part`.
    #[inline]
    pub(crate) fn lap(&mut self, part: Part) {
        if let Some(last) = self.last {
            let now = Instant::now();
            self.times.0[part as usize] += now - last;
            self.last = Some(now);
        }
    }

    /// Adds the laps to `into`, if running.
    pub(crate) fn finish(self, into: &mut Option<PartTimes>) {
        if let (Some(_), Some(into)) = (self.last, into.as_mut()) {
            into.add(&self.times);
        }
    }
}
