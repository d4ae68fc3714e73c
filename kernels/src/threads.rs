//! A persistent thread pool for data-parallel loops: no thread is spawned per op.
//!
//! `pool.run(parts, f)` calls `f(part)` for every `part in 0..parts`, spread over the pool's
//! threads (the calling thread takes part of the work), and returns when all calls are done.
//! Threads claim parts from a shared counter, so when a worker is descheduled (a shared,
//! oversubscribed machine) the caller simply takes its parts instead of waiting a scheduler
//! time slice for it, and `run` returns once every part is done: it waits only for parts a
//! worker has claimed, never for a worker that claimed none. The claim counter is tagged with
//! the job's generation, so a worker that wakes up late cannot claim a part of a later job
//! with an earlier job's closure. Results do not depend on which thread ran a part (each part writes its own
//! output). Workers spin briefly on the job counter before parking, because decode issues a few
//! hundred short parallel regions per token and waking a parked thread costs more (~5-20 µs)
//! than most of them take; every wait yields the CPU between short spins, so spinning never
//! starves a thread that holds work.
//!
//! With one thread, `run` is a plain loop on the caller's thread.

use std::cell::UnsafeCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker spins before it parks.
const SPIN: Duration = Duration::from_micros(100);

/// A type-erased `&(dyn Fn(usize) + Sync)` whose lifetime `run` guarantees: it waits for every
/// worker to finish the job before returning.
#[derive(Clone, Copy)]
struct Job {
    f: *const (dyn Fn(usize) + Sync),
}

// SAFETY: the closure behind `f` is `Sync`, and `run` keeps it alive until every worker has
// finished with it (see `ThreadPool::run`).
unsafe impl Send for Job {}

/// The claim word: the job's generation (high 32 bits), its part count (16 bits) and the next
/// unclaimed part (low 16 bits). A claim is a compare-and-swap of the whole word, so it
/// succeeds only for the generation the claimer read.
const PARTS_BITS: u32 = 16;
const MAX_PARTS: usize = (1 << PARTS_BITS) - 1;

fn claim_word(generation: u64, parts: usize, next: usize) -> u64 {
    (generation << (2 * PARTS_BITS)) | ((parts as u64) << PARTS_BITS) | next as u64
}

/// `(generation, parts, next)` of a claim word.
fn unpack(word: u64) -> (u64, usize, usize) {
    let mask = MAX_PARTS as u64;
    (word >> (2 * PARTS_BITS), ((word >> PARTS_BITS) & mask) as usize, (word & mask) as usize)
}

struct Shared {
    /// The current job's claim word (see [`claim_word`]); a new generation publishes a job.
    claim: AtomicU64,
    /// Parts of the current job that have finished.
    done: AtomicUsize,
    job: UnsafeCell<Option<Job>>,
    shutdown: AtomicBool,
    panicked: AtomicBool,
    /// Workers parked (or about to park) on `wake`; `run` takes the lock and notifies only
    /// when this is non-zero, so back-to-back regions with spinning workers make no system
    /// call.
    sleepers: AtomicUsize,
    /// Parked workers wait here for a new generation.
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only by `run` while no worker reads it: every part of the previous
// generation has been claimed and finished, and a worker reads `job` only after claiming a part
// of the current generation (an Acquire compare-and-swap that follows the Release store
// publishing the generation, which `run` makes after writing `job`).
unsafe impl Sync for Shared {}

/// A fixed set of worker threads plus the caller.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    threads: usize,
    /// Serializes callers: one job at a time.
    running: Mutex<()>,
}

impl ThreadPool {
    /// A pool of `threads` threads in total (the caller counts as one; `threads - 1` are
    /// spawned). `threads == 0` is treated as 1. Returns once every worker is running: a
    /// thread's start-up (its stack guard, its name, its allocations) then never falls into
    /// the first parallel regions, where it would be timed or counted as theirs.
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            claim: AtomicU64::new(0),
            done: AtomicUsize::new(0),
            job: UnsafeCell::new(None),
            shutdown: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let started = Arc::new(AtomicUsize::new(0));
        let workers = (1..threads)
            .map(|index| {
                let shared = Arc::clone(&shared);
                let started = Arc::clone(&started);
                std::thread::Builder::new()
                    .name(format!("gllm-worker-{index}"))
                    .spawn(move || {
                        started.fetch_add(1, Ordering::Release);
                        worker(shared)
                    })
                    .expect("spawning a pool worker thread")
            })
            .collect();
        let mut spins = 0u32;
        while started.load(Ordering::Acquire) != threads - 1 {
            backoff(&mut spins);
        }
        ThreadPool { shared, workers, threads, running: Mutex::new(()) }
    }

    /// Threads in the pool, the caller included.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Calls `f(part)` for every part in `0..parts` across the pool and waits for all of them.
    ///
    /// Panics (after all parts have finished) if any call panicked.
    pub fn run(&self, parts: usize, f: &(dyn Fn(usize) + Sync)) {
        if self.threads == 1 || parts <= 1 || parts > MAX_PARTS {
            (0..parts).for_each(f);
            return;
        }
        let _one_job_at_a_time = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let shared = &*self.shared;
        // SAFETY: erase the closure's lifetime; we do not return before every part has
        // finished, and no thread calls `f` except for a part it claimed.
        let f_static: *const (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(f) };
        // SAFETY: no worker reads `job` now: every part of the previous generation was claimed
        // and finished, and the new generation is published below (see `Shared`).
        unsafe { *shared.job.get() = Some(Job { f: f_static }) };
        shared.done.store(0, Ordering::Relaxed);
        let (generation, _, _) = unpack(shared.claim.load(Ordering::Relaxed));
        let generation = (generation + 1) & (u64::MAX >> (2 * PARTS_BITS));
        // SeqCst pairs with the worker's SeqCst `sleepers` increment and `claim` load (see
        // `worker`): either this load sees the sleeper, or the sleeper sees the new generation
        // before it waits. A sleeper holds the lock from its increment until it waits, so the
        // notification below cannot fall between its check and its wait.
        shared.claim.store(claim_word(generation, parts, 0), Ordering::SeqCst);
        if shared.sleepers.load(Ordering::SeqCst) != 0 {
            let _guard = shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            shared.wake.notify_all();
        }
        let mut own_panic = None;
        while let Some(part) = claim_part(shared, generation) {
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| f(part))) {
                own_panic.get_or_insert(payload);
            }
            shared.done.fetch_add(1, Ordering::Release);
        }
        let mut spins = 0u32;
        while shared.done.load(Ordering::Acquire) != parts {
            backoff(&mut spins);
        }
        if let Some(payload) = own_panic {
            shared.panicked.store(false, Ordering::Relaxed);
            panic::resume_unwind(payload);
        }
        if shared.panicked.swap(false, Ordering::Relaxed) {
            panic!("a thread-pool worker panicked while running a job");
        }
    }

    /// Splits `0..len` into at most `threads` contiguous ranges whose starts are multiples of
    /// `align` (except that the last range ends at `len`), and runs `f(range)` on each.
    pub fn for_ranges(
        &self,
        len: usize,
        align: usize,
        f: &(dyn Fn(std::ops::Range<usize>) + Sync),
    ) {
        let ranges = split_ranges(len, self.threads, align);
        self.run(ranges.len(), &|i| f(ranges[i].clone()));
    }
}

/// `0..len` cut into at most `parts` contiguous, non-empty ranges of nearly equal size whose
/// boundaries are multiples of `align`.
pub fn split_ranges(len: usize, parts: usize, align: usize) -> Vec<std::ops::Range<usize>> {
    let align = align.max(1);
    let units = len.div_ceil(align);
    let parts = parts.max(1).min(units.max(1));
    let mut ranges = Vec::with_capacity(parts);
    let mut start = 0;
    for p in 0..parts {
        let end_units = units * (p + 1) / parts;
        let end = (end_units * align).min(len);
        if end > start {
            ranges.push(start..end);
        }
        start = end;
    }
    ranges
}

/// Claims the next part of job `generation`, if that job is still current and has one left.
fn claim_part(shared: &Shared, generation: u64) -> Option<usize> {
    let mut word = shared.claim.load(Ordering::Relaxed);
    loop {
        let (g, parts, next) = unpack(word);
        if g != generation || next >= parts {
            return None;
        }
        match shared.claim.compare_exchange_weak(
            word,
            word + 1,
            Ordering::Acquire,
            Ordering::Relaxed,
        ) {
            Ok(_) => return Some(next),
            Err(now) => word = now,
        }
    }
}

/// One step of a wait: a short busy spin, and every 64th step a yield of the time slice, so a
/// waiting thread never holds a core that the thread it waits for needs.
fn backoff(spins: &mut u32) {
    *spins = spins.wrapping_add(1);
    if (*spins).is_multiple_of(64) {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

fn worker(shared: Arc<Shared>) {
    let mut seen = 0u64;
    loop {
        // Wait for a new generation: spin first, then park.
        let spin_until = Instant::now() + SPIN;
        let mut generation = unpack(shared.claim.load(Ordering::Relaxed)).0;
        let mut spins = 0u32;
        while generation == seen && Instant::now() < spin_until {
            backoff(&mut spins);
            generation = unpack(shared.claim.load(Ordering::Relaxed)).0;
        }
        if generation == seen {
            let mut guard = shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            shared.sleepers.fetch_add(1, Ordering::SeqCst);
            loop {
                generation = unpack(shared.claim.load(Ordering::SeqCst)).0;
                if generation != seen || shared.shutdown.load(Ordering::Acquire) {
                    break;
                }
                guard = shared.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
            shared.sleepers.fetch_sub(1, Ordering::Relaxed);
        }
        if shared.shutdown.load(Ordering::Acquire) {
            return;
        }
        seen = generation;
        while let Some(part) = claim_part(&shared, generation) {
            // SAFETY: this worker holds an unfinished part of job `generation`, so `run` has
            // published that job (the claim's Acquire follows its Release) and neither
            // returns nor rewrites `job` before the part is done.
            let job = unsafe { (*shared.job.get()).expect("a published job") };
            // SAFETY: as above, `run` keeps the closure alive until the part is done.
            let f = unsafe { &*job.f };
            if panic::catch_unwind(AssertUnwindSafe(|| f(part))).is_err() {
                shared.panicked.store(true, Ordering::Relaxed);
            }
            shared.done.fetch_add(1, Ordering::Release);
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        {
            let _guard = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.shutdown.store(true, Ordering::Release);
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_part_runs_exactly_once() {
        for threads in 1..=4 {
            let pool = ThreadPool::new(threads);
            for parts in [0, 1, 2, 3, 7, 64] {
                let hits: Vec<AtomicU64> = (0..parts).map(|_| AtomicU64::new(0)).collect();
                for _ in 0..50 {
                    pool.run(parts, &|p| {
                        hits[p].fetch_add(1, Ordering::Relaxed);
                    });
                }
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 50), "{threads} {parts}");
            }
        }
    }

    #[test]
    fn back_to_back_jobs_see_only_their_own_parts() {
        // Workers that wake up late must neither run an earlier job's closure on a later job's
        // parts nor make `run` wait for them.
        let pool = ThreadPool::new(3);
        for job in 0..20_000u64 {
            let parts = 1 + (job % 5) as usize;
            let hits: Vec<AtomicU64> = (0..parts).map(|_| AtomicU64::new(0)).collect();
            pool.run(parts, &|p| {
                hits[p].fetch_add(job + 1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == job + 1), "job {job}");
        }
    }

    #[test]
    fn more_parts_than_a_claim_word_holds_run_on_the_caller() {
        let pool = ThreadPool::new(2);
        let count = AtomicU64::new(0);
        pool.run(MAX_PARTS + 2, &|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), MAX_PARTS as u64 + 2);
    }

    #[test]
    fn parked_workers_wake_up() {
        let pool = ThreadPool::new(2);
        std::thread::sleep(Duration::from_millis(5)); // past the spin window: workers park
        let sum = AtomicU64::new(0);
        pool.run(8, &|p| {
            sum.fetch_add(p as u64, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 28);
    }

    #[test]
    fn a_panicking_part_panics_the_caller_and_the_pool_survives() {
        let pool = ThreadPool::new(2);
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.run(4, &|p| assert!(p != 1, "part 1 fails"));
        }));
        assert!(result.is_err());
        let count = AtomicU64::new(0);
        pool.run(4, &|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn ranges_cover_and_respect_alignment() {
        for len in [0, 1, 5, 31, 32, 33, 576, 1536, 49152] {
            for parts in 1..=5 {
                let ranges = split_ranges(len, parts, 8);
                assert!(ranges.len() <= parts);
                let mut next = 0;
                for r in &ranges {
                    assert_eq!(r.start, next);
                    assert!(r.start % 8 == 0 && r.end > r.start);
                    next = r.end;
                }
                assert_eq!(next, len);
            }
        }
    }
}
