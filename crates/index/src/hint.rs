//! Cache and memory hints shared by the search and the build (no effect on results).

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

/// Allocations of at least this many bytes are offered to the kernel for huge pages
/// ([`zeroed`]); numpy draws the same line for its arrays.
const HUGE_PAGES_FROM_BYTES: usize = 4 << 20;

/// Element types whose zero is all zero bits: a vector of them is allocated zeroed
/// (`calloc`), so a large one is fresh memory no one has touched yet.
pub(crate) trait ZeroBits: Copy {
    /// Zero.
    const ZERO: Self;
}

macro_rules! zero_bits {
    ($($t:ty),*) => {$(
        impl ZeroBits for $t {
            const ZERO: Self = 0 as $t;
        }
    )*};
}
zero_bits!(u8, u16, u32, f32);

/// `n` zeros in a new vector. A large one (at least [`HUGE_PAGES_FROM_BYTES`]) is advised
/// to the kernel for transparent huge pages before anything touches it (Linux,
/// `madvise(MADV_HUGEPAGE)`; honoured where transparent huge pages are in `madvise` or
/// `always` mode, ignored elsewhere): each 2 MiB page then costs one fault on its first
/// write instead of 512. The build's large output arrays are written exactly once, so the
/// faults were a large part of its system time (BENCHMARKS.md, "Session 26").
pub(crate) fn zeroed<T: ZeroBits>(n: usize) -> Vec<T> {
    let v = vec![T::ZERO; n];
    advise_huge_pages(v.as_ptr().cast(), std::mem::size_of_val(v.as_slice()));
    v
}

/// Advises the kernel to back the whole pages inside `bytes` bytes from `start` with huge
/// pages, when they are at least [`HUGE_PAGES_FROM_BYTES`]. Only advice: the contents
/// stay as they are, and a refusal changes nothing.
fn advise_huge_pages(start: *const u8, bytes: usize) {
    if bytes < HUGE_PAGES_FROM_BYTES {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sysconf reads a constant of the system.
        let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            p if p > 0 => p as usize,
            _ => return,
        };
        let first = (start as usize).next_multiple_of(page);
        let end = (start as usize + bytes) / page * page;
        if end > first {
            // SAFETY: the range lies inside one live allocation of ours, and
            // MADV_HUGEPAGE changes only how its pages are backed, never its contents.
            unsafe {
                libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The address range and flags (`VmFlags`) of the mapping of this process holding
    /// `addr`, from `/proc/self/smaps`.
    #[cfg(target_os = "linux")]
    fn mapping_flags(addr: usize) -> Option<String> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((lo, hi)) = range.split_once('-') {
                    if let (Ok(lo), Ok(hi)) =
                        (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                    {
                        inside = (lo..hi).contains(&addr);
                        continue;
                    }
                }
            }
            if inside {
                if let Some(flags) = line.strip_prefix("VmFlags:") {
                    return Some(flags.trim().to_string());
                }
            }
        }
        None
    }

    /// Zeroed vectors hold zeros, small or large; a large one's pages are advised for huge
    /// pages (the mapping carries the `hg` flag) wherever the kernel has transparent huge
    /// pages.
    #[test]
    fn zeroed_vectors_are_zero_and_large_ones_advised() {
        for n in [
            0,
            1,
            1000,
            HUGE_PAGES_FROM_BYTES / 4 - 1,
            HUGE_PAGES_FROM_BYTES,
        ] {
            let v = zeroed::<u32>(n);
            assert_eq!(v.len(), n);
            assert!(v.iter().all(|&x| x == 0));
        }
        let v = zeroed::<f32>(3 * HUGE_PAGES_FROM_BYTES / 4);
        assert!(v.iter().all(|&x| x.to_bits() == 0));
        #[cfg(target_os = "linux")]
        if std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
            let middle = v.as_ptr() as usize + std::mem::size_of_val(v.as_slice()) / 2;
            let flags = mapping_flags(middle).expect("the vector's mapping in smaps");
            assert!(flags.split(' ').any(|f| f == "hg"), "flags {flags}");
        }
    }
}
