//! This machine: its fingerprint (what a baseline is tied to) and its measured limits (f32
//! FMA peak of one core, read and read-modify-write bandwidth at L1, L2, L3 and DRAM sizes), cached
//! per fingerprint.
//!
//! The limits feed the "% of limit" column and the roofline: an op case's attainable rate
//! is `min(peak, arithmetic intensity × bandwidth of the level its working set lives in)`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gllm_kernels::cpu;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::HarnessError;

/// Cache sizes in bytes (from sysfs; Zen 3 values when unreadable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caches {
    pub l1d: usize,
    pub l2: usize,
    pub l3: usize,
}

impl Caches {
    pub fn detect() -> Caches {
        let mut caches = Caches { l1d: 32 << 10, l2: 512 << 10, l3: 32 << 20 };
        for index in 0..8 {
            let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{index}");
            let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).ok();
            let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size"))
            else {
                continue;
            };
            let size = size.trim();
            let bytes = if let Some(k) = size.strip_suffix('K') {
                k.parse::<usize>().ok().map(|k| k << 10)
            } else if let Some(m) = size.strip_suffix('M') {
                m.parse::<usize>().ok().map(|m| m << 20)
            } else {
                size.parse().ok()
            };
            let Some(bytes) = bytes else { continue };
            match (level.trim(), kind.trim()) {
                ("1", "Data") => caches.l1d = bytes,
                ("2", _) => caches.l2 = bytes,
                ("3", _) => caches.l3 = bytes,
                _ => {}
            }
        }
        caches
    }
}

/// What identifies a machine for baselines: the CPU, its core count, caches and features.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// `<cpu-slug>-<n>cpu-<hash8>`: readable, and distinct for distinct hardware or builds.
    pub id: String,
    pub cpu_model: String,
    pub logical_cpus: usize,
    pub caches: Caches,
    pub compiled_features: Vec<String>,
    pub detected_features: Vec<String>,
}

impl Fingerprint {
    pub fn detect() -> Fingerprint {
        let cpu_model = cpu::model_name();
        let logical_cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let caches = Caches::detect();
        let compiled_features: Vec<String> =
            cpu::compiled().names().iter().map(|s| s.to_string()).collect();
        let detected_features: Vec<String> =
            cpu::detected().names().iter().map(|s| s.to_string()).collect();
        let mut hasher = Sha256::new();
        hasher.update(format!(
            "{cpu_model}|{logical_cpus}|{}|{}|{}|{}|{}",
            caches.l1d,
            caches.l2,
            caches.l3,
            compiled_features.join(","),
            detected_features.join(",")
        ));
        let hash: String =
            hasher.finalize().iter().take(4).map(|b| format!("{b:02x}")).collect::<String>();
        let mut slug: String = cpu_model
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        while slug.contains("--") {
            slug = slug.replace("--", "-");
        }
        let slug: String = slug.trim_matches('-').chars().take(32).collect();
        let slug = slug.trim_end_matches('-');
        let id = format!("{slug}-{logical_cpus}cpu-{hash}");
        Fingerprint { id, cpu_model, logical_cpus, caches, compiled_features, detected_features }
    }
}

/// Bandwidth at one working-set size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bandwidth {
    pub level: String,
    pub bytes: usize,
    /// Streaming read (sum) GB/s.
    pub read_gb_per_s: f64,
    /// Read-modify-write `y += x` GB/s (12 bytes per element: 2 loads, 1 store).
    pub update_gb_per_s: f64,
    /// The ceiling used for limits: the larger of the two (loads and stores overlap in
    /// L1/L2, so a kernel that also writes can move more bytes than a pure read).
    pub gb_per_s: f64,
}

/// The measured limits of one core of this machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Peaks {
    pub machine_id: String,
    /// RFC 3339 time of the measurement.
    pub measured_at: String,
    /// f32 FMA peak of one core (AVX2 FMA, 12 independent accumulators), GFLOP/s.
    pub fma_gflops: f64,
    /// Which kernel measured the peak (`avx2-fma` or `scalar`).
    pub fma_kernel: String,
    /// Integer dot-product peak of one core, G int8 operations/s (a u8×i8 multiply and its
    /// add count 2, as a FLOP pair does): the ceiling of the quantized matmuls, whose work is
    /// counted in the same multiply-adds. Absent in files written before it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8_gops: Option<f64>,
    /// Which kernel measured it (`avx512-vnni`: `vpdpbusd` on 512 bits; `avx2`:
    /// `vpmaddubsw` + `vpmaddwd` + `vpaddd`, ggml's AVX2 sequence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8_kernel: Option<String>,
    /// Read bandwidth per level, smallest first: L1, L2, L3, DRAM.
    pub bandwidth: Vec<Bandwidth>,
}

impl Peaks {
    /// The limits of `threads` cores working together: the FMA peak and the private levels
    /// (L1, L2) times `threads`; the shared levels (L3, DRAM) measured now with `threads`
    /// cores reading at once (about 1 s). One thread: these peaks unchanged.
    pub fn for_threads(&self, threads: usize) -> Peaks {
        if threads <= 1 {
            return self.clone();
        }
        let t = threads as f64;
        let bandwidth = self
            .bandwidth
            .iter()
            .map(|b| {
                let (read, update) = if b.level == "L3" || b.level == "DRAM" {
                    // Shared: read measured with every core at once; the update rate is
                    // one core's (a floor).
                    let read = measure_read_bandwidth_threads(b.bytes / threads, threads);
                    (read.max(b.read_gb_per_s), b.update_gb_per_s)
                } else {
                    (b.read_gb_per_s * t, b.update_gb_per_s * t)
                };
                Bandwidth {
                    level: b.level.clone(),
                    bytes: b.bytes,
                    read_gb_per_s: read,
                    update_gb_per_s: update,
                    gb_per_s: read.max(update),
                }
            })
            .collect();
        Peaks {
            fma_gflops: self.fma_gflops * t,
            int8_gops: self.int8_gops.map(|g| g * t),
            bandwidth,
            ..self.clone()
        }
    }

    /// The compute ceiling of `integer` (int8 dot products) or f32 work, GFLOP/s or G int8
    /// operations/s, and its name for limit notes. Integer work on peaks without an int8
    /// figure falls back to the f32 FMA peak.
    pub fn compute_peak(&self, integer: bool) -> (f64, String) {
        match self.int8_gops {
            Some(g) if integer => (g, format!("int8 dot peak {g:.0} GOP/s")),
            _ => (self.fma_gflops, format!("FMA peak {:.1} GFLOP/s", self.fma_gflops)),
        }
    }

    /// The bandwidth ceiling (GB/s) of the smallest level holding `bytes`. Each level was
    /// measured at half (L1, L2) or a quarter (L3) of its capacity, so a working set of up
    /// to twice the measured size is taken to live there.
    pub fn bandwidth_for(&self, bytes: f64) -> f64 {
        self.bandwidth
            .iter()
            .find(|b| bytes <= 2.0 * b.bytes as f64 || b.level == "DRAM")
            .or(self.bandwidth.last())
            .map(|b| b.gb_per_s)
            .unwrap_or(f64::NAN)
    }

    pub fn dram_gb_per_s(&self) -> f64 {
        self.bandwidth.iter().find(|b| b.level == "DRAM").map(|b| b.gb_per_s).unwrap_or(f64::NAN)
    }

    /// Roofline: attainable GFLOP/s at `flops / bytes` intensity with the data at `level_bytes`.
    pub fn attainable_gflops(&self, flops: f64, bytes: f64, working_set: f64, cold: bool) -> f64 {
        let bw = if cold { self.dram_gb_per_s() } else { self.bandwidth_for(working_set) };
        if bytes <= 0.0 {
            return self.fma_gflops;
        }
        self.fma_gflops.min(flops / bytes * bw)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Independent accumulators: Zen 3 has 2 FMA pipes of latency 4, so ≥ 8 are needed to
    /// keep both busy; 12 leaves slack.
    pub const ACCUMULATORS: usize = 12;

    /// `iters` × 12 × 8 fused multiply-adds (2 FLOP each). Returns a value depending on all.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma_loop(iters: u64, a: f32, b: f32) -> f32 {
        let va = _mm256_set1_ps(a);
        let vb = _mm256_set1_ps(b);
        let mut acc = [_mm256_setzero_ps(); ACCUMULATORS];
        for (i, x) in acc.iter_mut().enumerate() {
            *x = _mm256_set1_ps(i as f32 * 1e-3);
        }
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, va, vb);
            }
        }
        let mut sum = _mm256_setzero_ps();
        for x in acc {
            sum = _mm256_add_ps(sum, x);
        }
        let mut out = [0.0f32; 8];
        _mm256_storeu_ps(out.as_mut_ptr(), sum);
        out.iter().sum()
    }

    /// `iters` × [`ACCUMULATORS`] × (32 u8×i8 products summed in pairs by `vpmaddubsw`,
    /// the pairs widened and summed by `vpmaddwd`, added by `vpaddd`): 64 int8 operations per
    /// accumulator and step. Returns a value depending on all.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn int8_loop(iters: u64, a: i32, b: i32) -> i32 {
        let (va, vb, ones) = (_mm256_set1_epi32(a), _mm256_set1_epi32(b), _mm256_set1_epi16(1));
        let mut acc = [_mm256_setzero_si256(); ACCUMULATORS];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                let pairs = _mm256_maddubs_epi16(va, vb);
                *x = _mm256_add_epi32(*x, _mm256_madd_epi16(pairs, ones));
            }
        }
        let mut sum = _mm256_setzero_si256();
        for x in acc {
            sum = _mm256_add_epi32(sum, x);
        }
        _mm256_extract_epi32::<0>(sum) ^ _mm256_extract_epi32::<7>(sum)
    }

    /// `iters` × [`ACCUMULATORS`] `vpdpbusd` on 512 bits (64 u8×i8 products added into 16
    /// i32 lanes): 128 int8 operations per accumulator and step.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and VNNI.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn vnni_loop(iters: u64, a: i32, b: i32) -> i32 {
        let (va, vb) = (_mm512_set1_epi32(a), _mm512_set1_epi32(b));
        let mut acc = [_mm512_setzero_si512(); ACCUMULATORS];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm512_dpbusd_epi32(*x, va, vb);
            }
        }
        let mut sum = _mm512_setzero_si512();
        for x in acc {
            sum = _mm512_add_epi32(sum, x);
        }
        _mm512_reduce_add_epi32(sum)
    }

    /// `y += x` with 4 vectors per step.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn update(y: &mut [f32], x: &[f32]) {
        for (yc, xc) in y.chunks_exact_mut(32).zip(x.chunks_exact(32)) {
            for k in 0..4 {
                // SAFETY: both chunks have 32 elements; k * 8 + 8 <= 32.
                unsafe {
                    let a = _mm256_loadu_ps(yc.as_ptr().add(k * 8));
                    let b = _mm256_loadu_ps(xc.as_ptr().add(k * 8));
                    _mm256_storeu_ps(yc.as_mut_ptr().add(k * 8), _mm256_add_ps(a, b));
                }
            }
        }
    }

    /// Sums `data` with 8 independent vector accumulators (two loads per cycle need them).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn read_sum(data: &[f32]) -> f32 {
        let mut acc = [_mm256_setzero_ps(); 8];
        let chunks = data.chunks_exact(64);
        let tail: f32 = chunks.remainder().iter().sum();
        for chunk in chunks {
            for (k, x) in acc.iter_mut().enumerate() {
                // SAFETY: chunk has 64 elements; k * 8 + 8 <= 64.
                let v = unsafe { _mm256_loadu_ps(chunk.as_ptr().add(k * 8)) };
                *x = _mm256_add_ps(*x, v);
            }
        }
        sum_lanes(acc) + tail
    }

    /// The sum of every lane of `acc`.
    #[target_feature(enable = "avx2")]
    fn sum_lanes(acc: [__m256; 8]) -> f32 {
        let mut sum = _mm256_setzero_ps();
        for x in acc {
            sum = _mm256_add_ps(sum, x);
        }
        let mut out = [0.0f32; 8];
        // SAFETY: out holds 8 values.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sum) };
        out.iter().sum()
    }

    /// Far-apart parts read side by side by [`read_sum_streams`].
    pub const STREAMS: usize = 8;

    /// Sums `data` as [`STREAMS`] equal parts read side by side, one 64-byte line of each per
    /// step: the access pattern of a GEMV over several rows, which keeps more DRAM lines in
    /// flight than one stream does (on the 2-core Zen 4 development VM 27-29 GB/s against
    /// 22-26 from one stream).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn read_sum_streams(data: &[f32]) -> f32 {
        let part = data.len() / STREAMS / 16 * 16;
        let mut acc = [_mm256_setzero_ps(); STREAMS];
        for i in (0..part).step_by(16) {
            for (s, x) in acc.iter_mut().enumerate() {
                // SAFETY: s * part + i + 16 <= STREAMS * part <= data.len().
                unsafe {
                    let p = data.as_ptr().add(s * part + i);
                    let pair = _mm256_add_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)));
                    *x = _mm256_add_ps(*x, pair);
                }
            }
        }
        let tail: f32 = data[STREAMS * part..].iter().sum();
        sum_lanes(acc) + tail
    }
}

fn has_avx2_fma() -> bool {
    cpu::detected().has_avx2_fma()
}

/// Best-of-`repeats` rate of `body(iters)` that does `work_per_iter` units per iteration,
/// each timed batch lasting about `batch`.
fn best_rate(
    batch: Duration,
    repeats: usize,
    work_per_iter: f64,
    body: &mut dyn FnMut(u64),
) -> f64 {
    let mut routine = |iters: u64| body(iters);
    let per_iter = crate::measure::warm_up(&mut routine, Duration::from_millis(20));
    let iters = crate::measure::iterations_for(batch, per_iter);
    let mut rates = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t = Instant::now();
        body(iters);
        rates.push(work_per_iter * iters as f64 / t.elapsed().as_nanos() as f64);
    }
    // The best run is the one least disturbed by neighbours: a limit, not a typical value.
    rates.iter().copied().fold(f64::NAN, f64::max)
}

/// f32 FMA GFLOP/s of one core, and the kernel that measured it.
pub fn measure_fma_peak() -> (f64, &'static str) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        let flops_per_iter = (avx2::ACCUMULATORS * 8 * 2) as f64;
        let mut body = |iters: u64| {
            // SAFETY: AVX2 and FMA were detected above.
            let r = unsafe { avx2::fma_loop(black_box(iters), black_box(0.999), black_box(1e-4)) };
            black_box(r);
        };
        return (best_rate(Duration::from_millis(20), 15, flops_per_iter, &mut body), "avx2-fma");
    }
    let mut body = |iters: u64| {
        let mut acc = [0.0f32; 8];
        for _ in 0..iters {
            for (i, a) in acc.iter_mut().enumerate() {
                *a = a.mul_add(black_box(0.999), i as f32);
            }
        }
        black_box(acc);
    };
    (best_rate(Duration::from_millis(20), 15, 16.0, &mut body), "scalar")
}

const HUGE_PAGE: usize = 2 << 20;

/// `n` f32 set to `fill(i)`, starting on a 2 MiB boundary and advised onto transparent huge
/// pages, as the model's weight arena is (`gllm_model::llama::weights`): streaming through 4 KiB
/// pages costs a TLB miss and a stopped prefetch stream per page, so a ceiling measured on them
/// sits below what the model's kernels draw.
struct Buffer {
    map: memmap2::MmapMut,
    start: usize,
    n: usize,
}

impl Buffer {
    fn new(n: usize, fill: impl Fn(usize) -> f32) -> Buffer {
        let map = memmap2::MmapMut::map_anon(4 * n + HUGE_PAGE)
            .unwrap_or_else(|e| panic!("machine: cannot map {} MiB: {e}", (4 * n) >> 20));
        let start = map.as_ptr().align_offset(HUGE_PAGE);
        #[cfg(target_os = "linux")]
        if 4 * n >= HUGE_PAGE {
            // advice only: without transparent huge pages the buffer stays on 4 KiB pages
            let _ = map.advise_range(memmap2::Advice::HugePage, start, 4 * n);
        }
        let mut b = Buffer { map, start, n };
        for (i, x) in b.data_mut().iter_mut().enumerate() {
            *x = fill(i);
        }
        b
    }

    fn data(&self) -> &[f32] {
        let bytes = &self.map[self.start..self.start + 4 * self.n];
        // SAFETY: the bytes start 2 MiB-aligned (so f32-aligned) and hold n f32; any bits are
        // a valid f32.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast(), self.n) }
    }

    fn data_mut(&mut self) -> &mut [f32] {
        let bytes = &mut self.map[self.start..self.start + 4 * self.n];
        // SAFETY: as in `data`, and borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast(), self.n) }
    }
}

/// Integer dot-product G int8 operations/s of one core, and the kernel that measured it
/// (`None` without AVX2).
pub fn measure_int8_peak() -> Option<(f64, &'static str)> {
    #[cfg(target_arch = "x86_64")]
    {
        let cpu = cpu::detected();
        let vnni = cpu.has_avx512_vnni();
        if !vnni && !cpu.has_avx2_fma() {
            return None;
        }
        let ops_per_iter = (avx2::ACCUMULATORS * if vnni { 128 } else { 64 }) as f64;
        let mut body = |iters: u64| {
            let (a, b) = (black_box(0x0102_0304), black_box(0x0101_0101));
            // SAFETY: AVX-512 VNNI, or AVX2, was detected above.
            let r = unsafe {
                if vnni {
                    avx2::vnni_loop(black_box(iters), a, b)
                } else {
                    avx2::int8_loop(black_box(iters), a, b)
                }
            };
            black_box(r);
        };
        let rate = best_rate(Duration::from_millis(20), 15, ops_per_iter, &mut body);
        Some((rate, if vnni { "avx512-vnni" } else { "avx2" }))
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// A buffer of `bytes / 4` non-zero f32 to read.
struct ReadBuffer(Buffer);

impl ReadBuffer {
    fn new(bytes: usize) -> ReadBuffer {
        ReadBuffer(Buffer::new(bytes / 4, |i| (i % 7) as f32))
    }

    fn data(&self) -> &[f32] {
        self.0.data()
    }
}

/// How a read pass walks its buffer.
#[derive(Clone, Copy)]
enum Walk {
    /// Front to back.
    OneStream,
    /// As [`avx2::STREAMS`] far-apart parts side by side (a GEMV over several rows).
    Streams,
}

/// Reads every value of `d` once (a sum the optimizer cannot drop).
fn read_once(d: &[f32], walk: Walk) {
    let d = black_box(d);
    #[cfg(target_arch = "x86_64")]
    let s = if has_avx2_fma() {
        // SAFETY: AVX2 was detected.
        unsafe {
            match walk {
                Walk::OneStream => avx2::read_sum(d),
                Walk::Streams => avx2::read_sum_streams(d),
            }
        }
    } else {
        let _ = walk;
        d.iter().sum()
    };
    #[cfg(not(target_arch = "x86_64"))]
    let s: f32 = d.iter().sum();
    black_box(s);
}

/// Read GB/s over a buffer of `bytes`: the better of one stream and [`avx2::STREAMS`]
/// streams side by side (kernels read both ways; from DRAM the streams draw more).
pub fn measure_read_bandwidth(bytes: usize) -> f64 {
    let buffer = ReadBuffer::new(bytes);
    let repeats = if bytes > 16 << 20 { 5 } else { 25 };
    [Walk::OneStream, Walk::Streams]
        .into_iter()
        .map(|walk| {
            let mut body = |iters: u64| {
                for _ in 0..iters {
                    read_once(buffer.data(), walk);
                }
            };
            best_rate(Duration::from_millis(20), repeats, bytes as f64, &mut body)
        })
        .fold(f64::NAN, f64::max)
}

/// Read GB/s of `threads` threads each streaming its own buffer of `bytes` at the same time:
/// what a multi-threaded kernel can draw from a level the cores share (L3, DRAM). Timed from
/// the moment all threads are released until the last one finishes; best of 5 per walk, the
/// better walk.
pub fn measure_read_bandwidth_threads(bytes: usize, threads: usize) -> f64 {
    if threads <= 1 {
        return measure_read_bandwidth(bytes);
    }
    let buffers: Vec<ReadBuffer> = (0..threads).map(|_| ReadBuffer::new(bytes)).collect();
    // Each thread reads its buffer this often per run: about 20 ms at one core's DRAM rate.
    let passes = (400 << 20) / bytes.max(1) + 1;
    let mut best = 0.0f64;
    for walk in [Walk::OneStream, Walk::Streams].into_iter().flat_map(|w| [w; 5]) {
        let start = std::sync::Barrier::new(threads + 1);
        let t0 = std::thread::scope(|scope| {
            for b in &buffers {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    for _ in 0..passes {
                        read_once(b.data(), walk);
                    }
                });
            }
            start.wait();
            Instant::now()
        });
        let ns = t0.elapsed().as_nanos() as f64;
        best = best.max((threads * passes * bytes) as f64 / ns);
    }
    best
}

/// Read-modify-write GB/s of `y += x` over two buffers totalling `bytes`.
pub fn measure_update_bandwidth(bytes: usize) -> f64 {
    let n = (bytes / 8).max(32) / 32 * 32;
    // Non-zero fills: a zeroed allocation maps every page to the one shared zero page.
    let (mut ys, xs) = (Buffer::new(n, |_| 1.0), Buffer::new(n, |_| 1e-3));
    let x = xs.data();
    let mut body = |iters: u64| {
        let y = ys.data_mut();
        for _ in 0..iters {
            #[cfg(target_arch = "x86_64")]
            if has_avx2_fma() {
                // SAFETY: AVX2 was detected.
                unsafe { avx2::update(black_box(&mut *y), black_box(x)) };
                continue;
            }
            for (a, b) in y.iter_mut().zip(x) {
                *a += *b;
            }
            black_box(&mut *y);
        }
    };
    let repeats = if bytes > 16 << 20 { 5 } else { 25 };
    best_rate(Duration::from_millis(20), repeats, 12.0 * n as f64, &mut body)
}

/// Measures every limit (about 3 s).
pub fn measure(fingerprint: &Fingerprint) -> Peaks {
    let (fma_gflops, kernel) = measure_fma_peak();
    let int8 = measure_int8_peak();
    let c = fingerprint.caches;
    let levels = [
        ("L1", c.l1d / 2),
        ("L2", c.l2 / 2),
        ("L3", (c.l3 / 4).max(c.l2 * 2)),
        ("DRAM", (c.l3 * 4).max(128 << 20)),
    ];
    let bandwidth = levels
        .iter()
        .map(|&(level, bytes)| {
            let read = measure_read_bandwidth(bytes);
            let update = measure_update_bandwidth(bytes);
            Bandwidth {
                level: level.to_string(),
                bytes,
                read_gb_per_s: read,
                update_gb_per_s: update,
                gb_per_s: read.max(update),
            }
        })
        .collect();
    Peaks {
        machine_id: fingerprint.id.clone(),
        measured_at: crate::baseline::now_rfc3339(),
        fma_gflops,
        fma_kernel: kernel.to_string(),
        int8_gops: int8.map(|(g, _)| g),
        int8_kernel: int8.map(|(_, k)| k.to_string()),
        bandwidth,
    }
}

/// Where measured peaks are cached: `$GLLM_BENCH_CACHE`, else `$XDG_CACHE_HOME/gllm-bench`,
/// else `~/.cache/gllm-bench`, else `target/gllm-bench`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GLLM_BENCH_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("gllm-bench");
    }
    if let Some(home) = std::env::var_os("HOME") {
        return PathBuf::from(home).join(".cache").join("gllm-bench");
    }
    PathBuf::from("target").join("gllm-bench")
}

pub fn cache_path(dir: &Path, fingerprint: &Fingerprint) -> PathBuf {
    // `-v2`: buffers on huge pages, DRAM read measured with several streams too (figures
    // cached before are low)
    dir.join(format!("machine-{}-v2.json", fingerprint.id))
}

/// The cached peaks of this machine, measuring (and caching) them when absent, unreadable
/// or when `remeasure` is set. Returns the peaks and whether they came from the cache.
pub fn peaks(fingerprint: &Fingerprint, remeasure: bool) -> Result<(Peaks, bool), HarnessError> {
    let path = cache_path(&cache_dir(), fingerprint);
    if !remeasure {
        if let Ok(text) = std::fs::read_to_string(&path) {
            match serde_json::from_str::<Peaks>(&text) {
                Ok(p) if p.machine_id == fingerprint.id && p.fma_gflops.is_finite() => {
                    return Ok((p, true))
                }
                // A stale or corrupt cache is simply measured again.
                _ => {}
            }
        }
    }
    let p = measure(fingerprint);
    let text = serde_json::to_string_pretty(&p).expect("peaks serialize");
    crate::baseline::write_atomic(&path, text.as_bytes())?;
    Ok((p, false))
}

/// One line describing the peaks, for the console.
pub fn summary_line(p: &Peaks) -> String {
    let bw: Vec<String> =
        p.bandwidth.iter().map(|b| format!("{} {:.1} GB/s", b.level, b.gb_per_s)).collect();
    let int8 = match (p.int8_gops, &p.int8_kernel) {
        (Some(g), Some(k)) => format!(", int8 dot peak {g:.0} GOP/s ({k})"),
        _ => String::new(),
    };
    format!(
        "FMA peak {:.1} GFLOP/s ({}){int8}; bandwidth {}",
        p.fma_gflops,
        p.fma_kernel,
        bw.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable_and_readable() {
        let a = Fingerprint::detect();
        let b = Fingerprint::detect();
        assert_eq!(a, b);
        assert!(a.id.ends_with(&a.id[a.id.len() - 8..]));
        assert!(a.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{}", a.id);
        assert!(a.caches.l1d > 0 && a.caches.l2 > a.caches.l1d);
    }

    #[test]
    fn roofline_takes_the_lower_ceiling() {
        let bw = |level: &str, bytes: usize, gb: f64| Bandwidth {
            level: level.into(),
            bytes,
            read_gb_per_s: gb,
            update_gb_per_s: gb / 2.0,
            gb_per_s: gb,
        };
        let p = Peaks {
            machine_id: "m".into(),
            measured_at: String::new(),
            fma_gflops: 100.0,
            fma_kernel: "avx2-fma".into(),
            int8_gops: None,
            int8_kernel: None,
            bandwidth: vec![
                bw("L1", 16 << 10, 200.0),
                bw("L2", 256 << 10, 100.0),
                bw("DRAM", 128 << 20, 20.0),
            ],
        };
        // 0.25 FLOP/byte from L1: 50 GFLOP/s; from DRAM (cold): 5.
        assert_eq!(p.attainable_gflops(1.0, 4.0, 1024.0, false), 50.0);
        assert_eq!(p.attainable_gflops(1.0, 4.0, 1024.0, true), 5.0);
        // 100 KiB lives in L2, 32 KiB in L1, 1 GiB in DRAM.
        assert_eq!(p.bandwidth_for(100.0 * 1024.0), 100.0);
        assert_eq!(p.bandwidth_for(32.0 * 1024.0), 200.0);
        assert_eq!(p.bandwidth_for(1e9), 20.0);
        // High intensity is compute-bound.
        assert_eq!(p.attainable_gflops(1000.0, 1.0, 1024.0, false), 100.0);

        // Two cores: twice the FMA peak and the private levels; the shared level measured
        // with both cores reading, and never below one core's rate.
        assert_eq!(p.for_threads(1), p);
        let two = p.for_threads(2);
        assert_eq!(two.fma_gflops, 200.0);
        assert_eq!(two.bandwidth_for(32.0 * 1024.0), 400.0);
        assert_eq!(two.bandwidth_for(100.0 * 1024.0), 200.0);
        assert!(two.dram_gb_per_s() >= 20.0, "{}", two.dram_gb_per_s());
        assert_eq!(two.machine_id, "m");
    }
}
