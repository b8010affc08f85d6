//! Dynamic quantization of one activation row (f32 → u8 with a zero point), compiled for the
//! widest vector unit the CPU has.
//!
//! One generic body serves every CPU: the wider copies only let the compiler use AVX2 or
//! AVX-512 for the same operations (`round_ties_even` becomes one `vroundps`/`vrndscaleps`
//! instead of a call to `rintf` per value), so every copy returns the same bytes.

use super::pack::ACT_MAX;

/// Lanes of the independent min/max accumulators (one zmm register of f32).
const LANES: usize = 16;

/// Quantizes `row` into `out` (`out.len() == row.len()`), over `[min(x, 0), max(x, 0)]`:
/// `x ≈ scale · (q - zero)`. Returns `(scale, zero)`: `(1, 0)` for an all-zero row, and a NaN
/// scale for a row holding a NaN or an infinity.
pub(crate) fn quantize_row(row: &[f32], out: &mut [u8]) -> (f32, i32) {
    #[cfg(target_arch = "x86_64")]
    match crate::model::simd::F32Path::current() {
        // SAFETY: `current` only returns a path this CPU can run (AVX-512F, resp. AVX2).
        crate::model::simd::F32Path::Avx512 => return unsafe { quantize_row_avx512(row, out) },
        // SAFETY: as above.
        crate::model::simd::F32Path::Avx2 => return unsafe { quantize_row_avx2(row, out) },
        crate::model::simd::F32Path::Portable => {}
    }
    quantize_row_generic(row, out)
}

/// [`quantize_row_generic`] compiled for AVX-512.
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn quantize_row_avx512(row: &[f32], out: &mut [u8]) -> (f32, i32) {
    quantize_row_generic(row, out)
}

/// [`quantize_row_generic`] compiled for AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_row_avx2(row: &[f32], out: &mut [u8]) -> (f32, i32) {
    quantize_row_generic(row, out)
}

/// The quantization, written so that it vectorizes: per-lane running min/max and a running
/// sum of `x · 0` (NaN exactly when some value is a NaN or an infinity).
#[inline(always)]
fn quantize_row_generic(row: &[f32], out: &mut [u8]) -> (f32, i32) {
    assert_eq!(row.len(), out.len(), "quantize_row: lengths differ");
    let mut lo = [0f32; LANES];
    let mut hi = [0f32; LANES];
    let mut bad = [0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for i in 0..LANES {
            let v = chunk[i];
            lo[i] = if v < lo[i] { v } else { lo[i] };
            hi[i] = if v > hi[i] { v } else { hi[i] };
            bad[i] += v * 0.0;
        }
    }
    for (i, &v) in tail.iter().enumerate() {
        lo[i] = if v < lo[i] { v } else { lo[i] };
        hi[i] = if v > hi[i] { v } else { hi[i] };
        bad[i] += v * 0.0;
    }
    if bad.iter().any(|v| v.is_nan()) {
        return (f32::NAN, 0);
    }
    let lo = lo.iter().fold(0f32, |m, &v| m.min(v));
    let hi = hi.iter().fold(0f32, |m, &v| m.max(v));
    if hi <= lo {
        out.fill(0);
        return (1.0, 0);
    }
    let scale = (hi - lo) / ACT_MAX as f32;
    let zero = (-lo / scale).round_ties_even().clamp(0.0, ACT_MAX as f32);
    let inv = 1.0 / scale;
    for (o, &v) in out.iter_mut().zip(row) {
        // `max` maps a NaN (a range so narrow that its scale underflows) to 0, as the
        // saturating `as` of the scalar definition does.
        let q = ((v * inv).round_ties_even() + zero)
            .max(0.0)
            .min(ACT_MAX as f32);
        // SAFETY: `q` is finite and in [0, ACT_MAX] (clamped above), so it fits an i32; the
        // unchecked conversion vectorizes where the saturating `as` does not.
        *o = unsafe { q.to_int_unchecked::<i32>() } as u8;
    }
    (scale, zero as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One compiled copy of the row quantization.
    type Copy = fn(&[f32], &mut [u8]) -> (f32, i32);

    /// The scalar definition every copy must match byte for byte.
    fn reference(row: &[f32], out: &mut [u8]) -> (f32, i32) {
        let (lo, hi) = row
            .iter()
            .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        if !row.iter().all(|v| v.is_finite()) {
            return (f32::NAN, 0);
        }
        if hi <= lo {
            return (1.0, 0);
        }
        let scale = (hi - lo) / ACT_MAX as f32;
        let zero = (-lo / scale).round_ties_even().clamp(0.0, ACT_MAX as f32);
        let inv = 1.0 / scale;
        for (o, &v) in out.iter_mut().zip(row) {
            *o = ((v * inv).round_ties_even() + zero).clamp(0.0, ACT_MAX as f32) as u8;
        }
        (scale, zero as i32)
    }

    #[test]
    fn every_copy_matches_the_scalar_definition() {
        let mut seed = 11u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        for len in [0, 1, 5, 15, 16, 17, 33, 130, 768] {
            for case in 0..7 {
                let mut row: Vec<f32> = (0..len).map(|_| next() * 4.0).collect();
                match case {
                    1 => row.iter_mut().for_each(|v| *v = v.abs()),
                    2 => row.iter_mut().for_each(|v| *v = -v.abs()),
                    3 => row.iter_mut().for_each(|v| *v = 0.0),
                    // Exact halves of a step, where the rounding mode shows.
                    4 => row.iter_mut().enumerate().for_each(|(i, v)| {
                        *v = (i % 9) as f32 * 0.5 - 2.0;
                    }),
                    5 if len > 0 => {
                        row[len / 2] = if len % 2 == 0 {
                            f32::NAN
                        } else {
                            f32::INFINITY
                        }
                    }
                    // A range so narrow that the scale underflows to 0.
                    6 => row.iter_mut().enumerate().for_each(|(i, v)| {
                        *v = if i % 3 == 0 { 1e-45 } else { 0.0 };
                    }),
                    _ => {}
                }
                let mut want = vec![0u8; len];
                let (ws, wz) = reference(&row, &mut want);
                let mut copies: Vec<Copy> = vec![quantize_row_generic, quantize_row];
                #[cfg(target_arch = "x86_64")]
                {
                    if std::arch::is_x86_feature_detected!("avx2") {
                        // SAFETY: AVX2 is present (checked above).
                        copies.push(|r, o| unsafe { quantize_row_avx2(r, o) });
                    }
                    if std::arch::is_x86_feature_detected!("avx512f") {
                        // SAFETY: AVX-512F is present (checked above).
                        copies.push(|r, o| unsafe { quantize_row_avx512(r, o) });
                    }
                }
                for copy in copies {
                    let mut got = vec![0u8; len];
                    let (s, z) = copy(&row, &mut got);
                    assert_eq!(z, wz, "len {len} case {case}");
                    assert!(
                        s == ws || (s.is_nan() && ws.is_nan()),
                        "len {len} case {case}"
                    );
                    if !ws.is_nan() {
                        assert_eq!(got, want, "len {len} case {case}");
                    }
                }
            }
        }
    }
}
