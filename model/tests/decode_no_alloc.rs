//! The model's decode loop allocates nothing: every scratch buffer is made at load (or by the
//! first forward of a given size). Counted by a global allocator wrapper, on the tiny synthetic
//! model, for every stage at 1 and 2 threads.
//!
//! What remains is inside the ops crate's kernels, measured here: the attention kernels
//! allocate their per-call scratch (the portable `flash`: 3 vectors, `naive`: 2, per layer and
//! token; the AVX2 `simd` and `flash_avx2` keep theirs per thread, so with AVX2 the `simd` and
//! `flash` stages must allocate nothing) and
//! `matrixmultiply::sgemm` allocates packing buffers per call. The bound below allows exactly
//! the attention kernels' share, so an allocation added to the model's own loop fails it;
//! the `matrixmultiply` stage is reported, not bounded.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use gllm_model::synthetic::{self, SyntheticConfig};
use gllm_model::{Model, ModelOptions};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn decode_steps_do_not_allocate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    synthetic::write(&SyntheticConfig::tiny(), &path).unwrap();
    for stage in ["naive", "matrixmultiply", "simd", "flash", "quantized"] {
        for threads in [1, 2] {
            let options = ModelOptions { threads, ..Default::default() };
            let mut model = Model::load(&path, stage, &options).unwrap();
            model.prefill(&[5, 6, 7, 8]).unwrap();
            model.decode(9).unwrap(); // first decode: buffers at their decode size
            ALLOCATIONS.store(0, Ordering::Relaxed);
            COUNTING.store(true, Ordering::Relaxed);
            for t in 10..40 {
                model.decode(t).unwrap();
            }
            COUNTING.store(false, Ordering::Relaxed);
            let n = ALLOCATIONS.load(Ordering::Relaxed);
            eprintln!("{stage} threads={threads}: {n} allocations in 30 decode steps");
            // the AVX2 attentions of `simd` and `flash` keep their scratch per thread
            let avx2 = gllm_kernels::cpu::detected().has_avx2_fma();
            if avx2 && ["simd", "flash"].contains(&stage) {
                assert_eq!(n, 0, "{stage} threads={threads}: {n} allocations in 30 decode steps");
            } else if stage != "matrixmultiply" {
                let attention_share = 30 * model.config().n_layers * 3;
                assert!(
                    n <= attention_share,
                    "{stage} threads={threads}: {n} allocations in 30 decode steps (attention kernels account for at most {attention_share})"
                );
            }
        }
    }
}
