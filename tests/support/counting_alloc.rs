//! A counting global allocator for the fuzz tests of several crates (included with
//! `#[path]`): it records live heap bytes and their peak, so a test can bound what one case
//! allocates (a corrupted length field must not make a reader allocate beyond its input).
//! The including test binary declares `#[global_allocator] static A: Counting = Counting;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Forwards to the system allocator and counts.
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only adds counters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            if new_size >= layout.size() {
                let grow = new_size - layout.size();
                let now = LIVE.fetch_add(grow, Ordering::Relaxed) + grow;
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

/// Measurements must not overlap: the test harness runs tests on several threads.
static MEASURING: Mutex<()> = Mutex::new(());

/// Held by each test case of a binary that measures: see [`alone`].
static CASES: Mutex<()> = Mutex::new(());

/// Runs the caller's test case alone among the cases that hold this guard. The counters
/// are global, so what another test allocates while a measurement runs would count in its
/// peak (a large build beside a small file's read failed the bound now and then): every
/// test of a binary that calls [`peak_of`] takes this guard for its whole case.
pub fn alone() -> std::sync::MutexGuard<'static, ()> {
    CASES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` and returns its result with the peak of heap bytes it added (allocations of
/// threads outside [`alone`] can only add to it: the bound a test checks is an upper one).
pub fn peak_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let _guard = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let r = f();
    (r, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}
