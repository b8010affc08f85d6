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

/// Prefetches the cache lines of `items`, at most `max_lines` of them from its start.
#[inline(always)]
pub(crate) fn prefetch_slice<T>(items: &[T], max_lines: usize) {
    const LINE: usize = 64;
    let bytes = std::mem::size_of_val(items).min(max_lines * LINE);
    if bytes == 0 {
        return;
    }
    let base = items.as_ptr().cast::<u8>();
    // From the line holding the first byte to the one holding the last.
    let offset = base as usize % LINE;
    let first_line = base.wrapping_sub(offset);
    for line in 0..(offset + bytes).div_ceil(LINE) {
        // A prefetch never faults, whatever the address.
        prefetch(first_line.wrapping_add(line * LINE));
    }
}
