//! Cache hints shared by the search and the build (no effect on results).

/// Hints the CPU to fetch the cache line holding `p` (no effect on results).
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults, whatever the address.
    #[allow(unused_unsafe)]
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Prefetches the cache lines of `items`, at most `max_lines` of them.
#[inline(always)]
pub(crate) fn prefetch_slice<T>(items: &[T], max_lines: usize) {
    const LINE: usize = 64;
    let bytes = std::mem::size_of_val(items).min(max_lines * LINE);
    let base = items.as_ptr().cast::<u8>();
    for offset in (0..bytes).step_by(LINE) {
        // In bounds: `offset < bytes <= size_of_val(items)`.
        prefetch(base.wrapping_add(offset));
    }
}
