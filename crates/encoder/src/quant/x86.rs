//! The x86-64 int8 micro-kernels: AVX-512-VNNI and AVX2, over the packed layout of
//! [`super::pack`]. Both compute exact i32 sums (the AVX2 one relies on the 7-bit activations to
//! keep `vpmaddubsw`'s i16 pair sums from saturating).

use std::arch::x86_64::*;

use super::gemm::Dequant;
use super::pack::PANEL;

/// Rows per VNNI micro-kernel (6 rows × 2 panels = 12 zmm accumulators).
const MR_VNNI: usize = 6;
/// Rows per AVX2 micro-kernel (4 rows × 1 panel × 2 halves = 8 ymm accumulators).
const MR_AVX2: usize = 4;
/// Rows per AVX-VNNI micro-kernel (6 rows × 1 panel × 2 halves = 12 ymm accumulators).
const MR_AVXVNNI: usize = 6;

/// Where a micro-kernel's exact i32 sums go: stored as they are, or dequantized to f32.
pub(super) trait Sink {
    /// Takes the 16 sums of tile row `r`, tile columns `c..c + 16` (AVX-512 context).
    ///
    /// # Safety
    /// The CPU has AVX-512F; `r` and `c` are inside the tile the sink was made for.
    unsafe fn put16(&self, r: usize, c: usize, acc: __m512i);
    /// Takes the 8 sums of tile row `r`, tile columns `c..c + 8` (AVX2 context).
    ///
    /// # Safety
    /// The CPU has AVX2; `r` and `c` are inside the tile the sink was made for.
    unsafe fn put8(&self, r: usize, c: usize, acc: __m256i);
}

/// Stores the i32 sums into a row-major tile.
pub(super) struct I32Sink {
    out: *mut i32,
    ldc: usize,
}

impl I32Sink {
    /// A sink writing `out` with leading dimension `ldc` (every column of every panel).
    pub(super) fn new(out: &mut [i32], ldc: usize) -> Self {
        Self {
            out: out.as_mut_ptr(),
            ldc,
        }
    }
}

impl Sink for I32Sink {
    #[inline(always)]
    unsafe fn put16(&self, r: usize, c: usize, acc: __m512i) {
        _mm512_storeu_si512(self.out.add(r * self.ldc + c) as *mut _, acc);
    }

    #[inline(always)]
    unsafe fn put8(&self, r: usize, c: usize, acc: __m256i) {
        _mm256_storeu_si256(self.out.add(r * self.ldc + c) as *mut __m256i, acc);
    }
}

/// Dequantizes the sums ([`Dequant::apply`], operation for operation) into a row-major f32
/// tile, writing only its first `cols` columns.
pub(super) struct DequantSink {
    out: *mut f32,
    ldc: usize,
    cols: usize,
    row_scales: *const f32,
    row_zeros: *const i32,
    col_scales: *const f32,
    col_sums: *const i32,
    bias: *const f32,
}

impl DequantSink {
    /// A sink for `deq`'s tile (its slices start at the tile's first row and channel) writing
    /// `out` with leading dimension `ldc`.
    pub(super) fn new(deq: &Dequant, out: *mut f32, ldc: usize, cols: usize) -> Self {
        Self {
            out,
            ldc,
            cols,
            row_scales: deq.row_scales.as_ptr(),
            row_zeros: deq.row_zeros.as_ptr(),
            col_scales: deq.col_scales.as_ptr(),
            col_sums: deq.col_sums.as_ptr(),
            bias: deq.bias.as_ptr(),
        }
    }
}

impl Sink for DequantSink {
    #[inline(always)]
    unsafe fn put16(&self, r: usize, c: usize, acc: __m512i) {
        let z = _mm512_set1_epi32(*self.row_zeros.add(r));
        let sums = _mm512_loadu_si512(self.col_sums.add(c) as *const _);
        let diff = _mm512_sub_epi32(acc, _mm512_mullo_epi32(z, sums));
        let scale = _mm512_mul_ps(
            _mm512_set1_ps(*self.row_scales.add(r)),
            _mm512_loadu_ps(self.col_scales.add(c)),
        );
        let y = _mm512_add_ps(
            _mm512_mul_ps(scale, _mm512_cvtepi32_ps(diff)),
            _mm512_loadu_ps(self.bias.add(c)),
        );
        let dst = self.out.add(r * self.ldc + c);
        if c + 16 <= self.cols {
            _mm512_storeu_ps(dst, y);
        } else if c < self.cols {
            _mm512_mask_storeu_ps(dst, ((1u32 << (self.cols - c)) - 1) as u16, y);
        }
    }

    #[inline(always)]
    unsafe fn put8(&self, r: usize, c: usize, acc: __m256i) {
        let z = _mm256_set1_epi32(*self.row_zeros.add(r));
        let sums = _mm256_loadu_si256(self.col_sums.add(c) as *const __m256i);
        let diff = _mm256_sub_epi32(acc, _mm256_mullo_epi32(z, sums));
        let scale = _mm256_mul_ps(
            _mm256_set1_ps(*self.row_scales.add(r)),
            _mm256_loadu_ps(self.col_scales.add(c)),
        );
        let y = _mm256_add_ps(
            _mm256_mul_ps(scale, _mm256_cvtepi32_ps(diff)),
            _mm256_loadu_ps(self.bias.add(c)),
        );
        let dst = self.out.add(r * self.ldc + c);
        if c + 8 <= self.cols {
            _mm256_storeu_ps(dst, y);
        } else if c < self.cols {
            let mut tmp = [0f32; 8];
            _mm256_storeu_ps(tmp.as_mut_ptr(), y);
            std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, self.cols - c);
        }
    }
}

/// Four bytes of `a` at `p` as one i32 (to broadcast).
#[inline(always)]
unsafe fn load4(p: *const u8) -> i32 {
    std::ptr::read_unaligned(p as *const i32)
}

/// The VNNI kernel over `m` rows of `a` (`k4` bytes each) and `np` panels of `b`, handing
/// every 16 sums to `sink` (tile row, tile column).
///
/// # Safety
/// The CPU must have AVX-512F/BW/VNNI; `a` holds `m · k4` bytes, `b` `np · k4 · 16`, and
/// `sink` accepts rows `0..m` and columns `0..np · 16`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn gemm_vnni<S: Sink>(
    a: &[u8],
    m: usize,
    b: &[i8],
    np: usize,
    k4: usize,
    sink: &S,
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
            let at = (r, p * PANEL);
            macro_rules! call {
                ($($mr:literal),*) => {
                    match (rows, two) {
                        $(($mr, true) => vnni_tile::<$mr, 2, S>(a_ptr, k4, b_ptr, panel_len, sink, at),
                          ($mr, false) => vnni_tile::<$mr, 1, S>(a_ptr, k4, b_ptr, panel_len, sink, at),)*
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
unsafe fn vnni_tile<const MR: usize, const NP: usize, S: Sink>(
    a: *const u8,
    lda: usize,
    b: *const i8,
    panel_len: usize,
    sink: &S,
    (r0, c0): (usize, usize),
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
            sink.put16(r0 + r, c0 + q * PANEL, v);
        }
    }
}

/// The AVX2 kernel (same contract as [`gemm_vnni`], needing AVX2 only).
///
/// # Safety
/// As [`gemm_vnni`], with AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn gemm_avx2<S: Sink>(
    a: &[u8],
    m: usize,
    b: &[i8],
    np: usize,
    k4: usize,
    sink: &S,
) {
    let panel_len = k4 * PANEL;
    for p in 0..np {
        let mut r = 0;
        while r < m {
            let rows = (m - r).min(MR_AVX2);
            let a_ptr = a.as_ptr().add(r * k4);
            let b_ptr = b.as_ptr().add(p * panel_len);
            let at = (r, p * PANEL);
            match rows {
                1 => avx2_tile::<1, S>(a_ptr, k4, b_ptr, sink, at),
                2 => avx2_tile::<2, S>(a_ptr, k4, b_ptr, sink, at),
                3 => avx2_tile::<3, S>(a_ptr, k4, b_ptr, sink, at),
                _ => avx2_tile::<4, S>(a_ptr, k4, b_ptr, sink, at),
            }
            r += rows;
        }
    }
}

#[inline(always)]
unsafe fn avx2_tile<const MR: usize, S: Sink>(
    a: *const u8,
    lda: usize,
    b: *const i8,
    sink: &S,
    (r0, c0): (usize, usize),
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
        sink.put8(r0 + r, c0, acc[0]);
        sink.put8(r0 + r, c0 + 8, acc[1]);
    }
}

/// The AVX-VNNI kernel (VEX `vpdpbusd` on ymm registers: the AVX2-class CPUs that have it
/// without AVX-512), same contract as [`gemm_vnni`].
///
/// # Safety
/// As [`gemm_vnni`], with AVX2 and AVX-VNNI.
#[target_feature(enable = "avx2,avxvnni")]
pub(super) unsafe fn gemm_avxvnni<S: Sink>(
    a: &[u8],
    m: usize,
    b: &[i8],
    np: usize,
    k4: usize,
    sink: &S,
) {
    let panel_len = k4 * PANEL;
    for p in 0..np {
        let mut r = 0;
        while r < m {
            let rows = (m - r).min(MR_AVXVNNI);
            let a_ptr = a.as_ptr().add(r * k4);
            let b_ptr = b.as_ptr().add(p * panel_len);
            let at = (r, p * PANEL);
            match rows {
                1 => avxvnni_tile::<1, S>(a_ptr, k4, b_ptr, sink, at),
                2 => avxvnni_tile::<2, S>(a_ptr, k4, b_ptr, sink, at),
                3 => avxvnni_tile::<3, S>(a_ptr, k4, b_ptr, sink, at),
                4 => avxvnni_tile::<4, S>(a_ptr, k4, b_ptr, sink, at),
                5 => avxvnni_tile::<5, S>(a_ptr, k4, b_ptr, sink, at),
                _ => avxvnni_tile::<6, S>(a_ptr, k4, b_ptr, sink, at),
            }
            r += rows;
        }
    }
}

#[inline(always)]
unsafe fn avxvnni_tile<const MR: usize, S: Sink>(
    a: *const u8,
    lda: usize,
    b: *const i8,
    sink: &S,
    (r0, c0): (usize, usize),
) {
    let mut acc = [[_mm256_setzero_si256(); 2]; MR];
    for g in 0..lda / 4 {
        let b0 = _mm256_loadu_si256(b.add(g * 64) as *const __m256i);
        let b1 = _mm256_loadu_si256(b.add(g * 64 + 32) as *const __m256i);
        for (r, acc) in acc.iter_mut().enumerate() {
            let av = _mm256_set1_epi32(load4(a.add(r * lda + g * 4)));
            acc[0] = _mm256_dpbusd_avx_epi32(acc[0], av, b0);
            acc[1] = _mm256_dpbusd_avx_epi32(acc[1], av, b1);
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        sink.put8(r0 + r, c0, acc[0]);
        sink.put8(r0 + r, c0 + 8, acc[1]);
    }
}
