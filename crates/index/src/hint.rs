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

/// `n` zeros in a new vector: a large one is fresh memory from the kernel, each page
/// faulted in (and zeroed) on its first write, and pages never written (an array
/// allocated at an upper bound) never touched.
///
/// The build's large output arrays are written once, in a process that usually builds
/// once, so they are left on the system's default pages: they are not advised for
/// transparent huge pages. Huge pages cut the number of faults 512-fold, but on the
/// virtual machines this project is measured on a huge page the process has not just
/// freed costs 1.5-3.0 s a GiB to touch first, against 0.35-0.74 s a GiB in 4 KiB pages
/// (`scripts/bench/page_touch.c` on a Zen 4, a Zen 5 and a Xeon), and on the Zen 4 the
/// topical 1M build took 3.4-4.6 s advised against 2.6-3.6 s not (BENCHMARKS.md, "Session
/// 31"); advising only paid where a second build in the same process reused the first
/// one's freed pages.
pub(crate) fn zeroed<T: ZeroBits>(n: usize) -> Vec<T> {
    vec![T::ZERO; n]
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

    /// Zeroed vectors hold zeros, small or large, and a large one is not advised for huge
    /// pages (its mapping lacks the `hg` flag; see [`zeroed`]). Checked where the kernel has
    /// transparent huge pages, unless glibc is told to advise its own large allocations
    /// (`GLIBC_TUNABLES=glibc.malloc.hugetlb=...`, which sets the flag without us).
    #[test]
    fn zeroed_vectors_are_zero_and_left_on_default_pages() {
        for n in [0, 1, 1000, (1 << 20) - 1, 1 << 20] {
            let v = zeroed::<u32>(n);
            assert_eq!(v.len(), n);
            assert!(v.iter().all(|&x| x == 0));
        }
        let v = zeroed::<f32>(3 << 20);
        assert!(v.iter().all(|&x| x.to_bits() == 0));
        #[cfg(target_os = "linux")]
        if std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists()
            && !std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("hugetlb"))
        {
            let middle = v.as_ptr() as usize + std::mem::size_of_val(v.as_slice()) / 2;
            let flags = mapping_flags(middle).expect("the vector's mapping in smaps");
            assert!(!flags.split(' ').any(|f| f == "hg"), "flags {flags}");
        }
    }
}
