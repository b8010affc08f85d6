//! The x86-64 int8 micro-kernels: AVX-512-VNNI and AVX2, over the packed layout of
//! [`super::pack`]. Both compute exact i32 sums (the AVX2 one relies on the 7-bit activations to
//! keep `vpmaddubsw`'s i16 pair sums from saturating).

use std::arch::x86_64::*;

use super::pack::PANEL;

/// Rows per VNNI micro-kernel (6 rows × 2 panels = 12 zmm accumulators).
const MR_VNNI: usize = 6;
/// Rows per AVX2 micro-kernel (4 rows × 1 panel × 2 halves = 8 ymm accumulators).
const MR_AVX2: usize = 4;

/// Four bytes of `a` at `p` as one i32 (to broadcast).
#[inline(always)]
unsafe fn load4(p: *const u8) -> i32 {
    std::ptr::read_unaligned(p as *const i32)
}

/// The VNNI kernel over `m` rows of `a` (`k4` bytes each) and `np` panels of `b`.
///
/// # Safety
/// The CPU must have AVX-512F/BW/VNNI; `a` holds `m · k4` bytes, `b` `np · k4 · 16`, `out`
/// `(m - 1) · ldc + np · 16` values.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn gemm_vnni(
    a: &[u8],
    m: usize,
    b: &[i8],
    np: usize,
    k4: usize,
    out: &mut [i32],
    ldc: usize,
) {
    let panel_len = k4 * PANEL;
    let mut p = 0;
    while p < np {
        let two = np - p >= 2;
        let mut r = 0;
        while r < m {
            let rows = (m - r).min(MR_VNNI);
            let a_ptr = a.as_ptr().add(r * k4);
            let b_ptr = b.as_ptr().add(p * panel_len);
            let c_ptr = out.as_mut_ptr().add(r * ldc + p * PANEL);
            macro_rules! call {
                ($($mr:literal),*) => {
                    match (rows, two) {
                        $(($mr, true) => vnni_tile::<$mr, 2>(a_ptr, k4, b_ptr, panel_len, c_ptr, ldc),
                          ($mr, false) => vnni_tile::<$mr, 1>(a_ptr, k4, b_ptr, panel_len, c_ptr, ldc),)*
                        _ => unreachable!(),
                    }
                };
            }
            call!(1, 2, 3, 4, 5, 6);
            r += rows;
        }
        p += if two { 2 } else { 1 };
    }
}

#[inline(always)]
unsafe fn vnni_tile<const MR: usize, const NP: usize>(
    a: *const u8,
    lda: usize,
    b: *const i8,
    panel_len: usize,
    c: *mut i32,
    ldc: usize,
) {
    let mut acc = [[_mm512_setzero_si512(); NP]; MR];
    let groups = lda / 4;
    for g in 0..groups {
        let mut bv = [_mm512_setzero_si512(); NP];
        for (q, v) in bv.iter_mut().enumerate() {
            *v = _mm512_loadu_si512(b.add(q * panel_len + g * 64) as *const _);
        }
        for (r, acc) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_epi32(load4(a.add(r * lda + g * 4)));
            for (acc, &bv) in acc.iter_mut().zip(&bv) {
                *acc = _mm512_dpbusd_epi32(*acc, av, bv);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (q, &v) in acc.iter().enumerate() {
            _mm512_storeu_si512(c.add(r * ldc + q * PANEL) as *mut _, v);
        }
    }
}

/// The AVX2 kernel (same contract as [`gemm_vnni`], needing AVX2 only).
///
/// # Safety
/// As [`gemm_vnni`], with AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn gemm_avx2(
    a: &[u8],
    m: usize,
    b: &[i8],
    np: usize,
    k4: usize,
    out: &mut [i32],
    ldc: usize,
) {
    let panel_len = k4 * PANEL;
    for p in 0..np {
        let mut r = 0;
        while r < m {
            let rows = (m - r).min(MR_AVX2);
            let a_ptr = a.as_ptr().add(r * k4);
            let b_ptr = b.as_ptr().add(p * panel_len);
            let c_ptr = out.as_mut_ptr().add(r * ldc + p * PANEL);
            match rows {
                1 => avx2_tile::<1>(a_ptr, k4, b_ptr, c_ptr, ldc),
                2 => avx2_tile::<2>(a_ptr, k4, b_ptr, c_ptr, ldc),
                3 => avx2_tile::<3>(a_ptr, k4, b_ptr, c_ptr, ldc),
                _ => avx2_tile::<4>(a_ptr, k4, b_ptr, c_ptr, ldc),
            }
            r += rows;
        }
    }
}

#[inline(always)]
unsafe fn avx2_tile<const MR: usize>(
    a: *const u8,
    lda: usize,
    b: *const i8,
    c: *mut i32,
    ldc: usize,
) {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_si256(); 2]; MR];
    for g in 0..lda / 4 {
        let b0 = _mm256_loadu_si256(b.add(g * 64) as *const __m256i);
        let b1 = _mm256_loadu_si256(b.add(g * 64 + 32) as *const __m256i);
        for (r, acc) in acc.iter_mut().enumerate() {
            let av = _mm256_set1_epi32(load4(a.add(r * lda + g * 4)));
            // u8 × i8 pairs into i16 (|sum| ≤ 127·127·2 < 2^15: no saturation), then pairs of
            // i16 into i32: four products per i32 lane, as vpdpbusd.
            let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(av, b0), ones);
            let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(av, b1), ones);
            acc[0] = _mm256_add_epi32(acc[0], p0);
            acc[1] = _mm256_add_epi32(acc[1], p1);
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        _mm256_storeu_si256(c.add(r * ldc) as *mut __m256i, acc[0]);
        _mm256_storeu_si256(c.add(r * ldc + 8) as *mut __m256i, acc[1]);
    }
}
