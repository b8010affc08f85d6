//! One row of the masked softmax, `softmax(scores + mask)`, with its elementwise passes
//! compiled for the widest vector unit the CPU has.
//!
//! Only the passes whose result does not depend on the order of operations are vectorized:
//! the masked scores and their maximum (a maximum is exact in any order), and the final
//! scaling. The exponentials and their sum stay one scalar pass in index order, so every copy
//! (and the plain loop this replaced) gives the same bits.

/// Lanes of the independent maxima (one zmm register of f32).
const LANES: usize = 16;

/// `out[j] = exp(s_j − max) / Σ exp(s_j − max)` with `s_j = scores[j] + mask[j]`; the three
/// slices have the same length.
pub(crate) fn softmax_row(scores: &[f32], mask: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match crate::model::simd::F32Path::current() {
        // SAFETY: `current` only returns a path this CPU can run (AVX-512F, resp. AVX2).
        crate::model::simd::F32Path::Avx512 => {
            return unsafe { softmax_row_avx512(scores, mask, out) }
        }
        // SAFETY: as above.
        crate::model::simd::F32Path::Avx2 => return unsafe { softmax_row_avx2(scores, mask, out) },
        crate::model::simd::F32Path::Portable => {}
    }
    softmax_row_generic(scores, mask, out)
}

/// [`softmax_row_generic`] compiled for AVX-512.
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
unsafe fn softmax_row_avx512(scores: &[f32], mask: &[f32], out: &mut [f32]) {
    softmax_row_generic(scores, mask, out)
}

/// [`softmax_row_generic`] compiled for AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn softmax_row_avx2(scores: &[f32], mask: &[f32], out: &mut [f32]) {
    softmax_row_generic(scores, mask, out)
}

#[inline(always)]
fn softmax_row_generic(scores: &[f32], mask: &[f32], out: &mut [f32]) {
    let n = out.len();
    assert!(
        scores.len() == n && mask.len() == n,
        "softmax_row: lengths differ"
    );
    for ((o, &s), &m) in out.iter_mut().zip(scores).zip(mask) {
        *o = s + m;
    }
    // The maximum as `f32::max` folds it (a NaN is skipped), lane by lane.
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = out.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (l, &v) in lanes.iter_mut().zip(chunk) {
            *l = l.max(v);
        }
    }
    let max = lanes
        .iter()
        .chain(tail)
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0f32;
    for v in out.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    out.iter_mut().for_each(|v| *v *= inv);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain loop every copy must equal bit for bit.
    fn plain(scores: &[f32], mask: &[f32], out: &mut [f32]) {
        let mut max = f32::NEG_INFINITY;
        for j in 0..out.len() {
            out[j] = scores[j] + mask[j];
            max = max.max(out[j]);
        }
        let mut sum = 0f32;
        for v in out.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = 1.0 / sum;
        out.iter_mut().for_each(|v| *v *= inv);
    }

    #[test]
    fn every_copy_matches_the_plain_loop() {
        let mut seed = 3u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        for n in [1, 7, 16, 17, 40, 200, 256] {
            let scores: Vec<f32> = (0..n).map(|_| next() * 8.0).collect();
            for masked in [0, 1, n / 2] {
                let mask: Vec<f32> = (0..n)
                    .map(|j| if j >= n - masked { f32::MIN } else { 0.0 })
                    .collect();
                let mut want = vec![0f32; n];
                plain(&scores, &mask, &mut want);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                let mut got = vec![0f32; n];
                softmax_row(&scores, &mask, &mut got);
                assert_eq!(bits(&got), bits(&want), "n {n} masked {masked}");
                softmax_row_generic(&scores, &mask, &mut got);
                assert_eq!(bits(&got), bits(&want), "n {n} masked {masked}");
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: AVX2 is present (checked above).
                    unsafe { softmax_row_avx2(&scores, &mask, &mut got) };
                    assert_eq!(bits(&got), bits(&want), "n {n} masked {masked}");
                }
            }
        }
    }
}
