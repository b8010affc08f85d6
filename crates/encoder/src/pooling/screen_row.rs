//! The screening pass over one token's approximate logits in a vocabulary block (see
//! [`super::screened`]), compiled for the widest vector unit the CPU has.
//!
//! One generic body serves every CPU: the wider copies only let the compiler use AVX2 or
//! AVX-512 for the same f32 operations (Rust contracts no multiply-add), so every copy finds
//! the same candidates with the same bounds.

/// Lanes per step (one zmm register of f32).
const LANES: usize = 16;

/// One token's side of the screen.
#[derive(Debug, Clone, Copy)]
pub(super) struct TokenBound {
    /// The activations' scale `s_x`.
    pub scale: f32,
    /// The activations' zero point `z`.
    pub zero: i32,
    /// `‖x − x̂‖₂ + γ‖x‖₂`, widened.
    pub alpha: f32,
    /// `‖x̂‖₂`, widened.
    pub beta: f32,
}

/// The block's side of the screen: one value per entry of the block, every slice as long.
#[derive(Debug, Clone, Copy)]
pub(super) struct EntryBounds<'a> {
    /// The weights' scales `s_w`.
    pub scales: &'a [f32],
    /// `Σ_k q_w` per entry.
    pub sums: &'a [i32],
    /// `‖w_j‖₂`.
    pub norm: &'a [f32],
    /// `‖w_j − ŵ_j‖₂`.
    pub err: &'a [f32],
    /// `−b_j`: a logit below it is not positive after the bias.
    pub neg_bias: &'a [f32],
}

/// For every entry `j` of the block: the approximate logit
/// `a = s_x s_w (acc − z Σq_w)` and its bound `e = α‖w‖ + β‖w − ŵ‖`; raises `low[j]` to
/// `a − e` and calls `push(j, a + e)` when `a + e ≥ −b_j` (in order of `j`).
pub(super) fn screen_row(
    acc: &[i32],
    token: TokenBound,
    entries: &EntryBounds,
    low: &mut [f32],
    push: &mut impl FnMut(usize, f32),
) {
    #[cfg(target_arch = "x86_64")]
    match crate::model::simd::F32Path::current() {
        // SAFETY: `current` only returns a path this CPU can run (AVX-512F, resp. AVX2).
        crate::model::simd::F32Path::Avx512 => {
            return unsafe { screen_row_avx512(acc, token, entries, low, push) }
        }
        // SAFETY: as above.
        crate::model::simd::F32Path::Avx2 => {
            return unsafe { screen_row_avx2(acc, token, entries, low, push) }
        }
        crate::model::simd::F32Path::Portable => {}
    }
    screen_row_generic(acc, token, entries, low, push)
}

/// [`screen_row_generic`] compiled for AVX-512.
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
unsafe fn screen_row_avx512(
    acc: &[i32],
    token: TokenBound,
    entries: &EntryBounds,
    low: &mut [f32],
    push: &mut impl FnMut(usize, f32),
) {
    screen_row_generic(acc, token, entries, low, push)
}

/// [`screen_row_generic`] compiled for AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn screen_row_avx2(
    acc: &[i32],
    token: TokenBound,
    entries: &EntryBounds,
    low: &mut [f32],
    push: &mut impl FnMut(usize, f32),
) {
    screen_row_generic(acc, token, entries, low, push)
}

/// The screen, [`LANES`] entries at a time: the bounds of a whole step first (vectorizes),
/// then the rare candidates of a step that has any.
#[inline(always)]
fn screen_row_generic(
    acc: &[i32],
    token: TokenBound,
    entries: &EntryBounds,
    low: &mut [f32],
    push: &mut impl FnMut(usize, f32),
) {
    let width = low.len();
    assert!(
        acc.len() >= width
            && entries.scales.len() >= width
            && entries.sums.len() >= width
            && entries.norm.len() >= width
            && entries.err.len() >= width
            && entries.neg_bias.len() >= width,
        "screen_row: a slice is shorter than the block"
    );
    let TokenBound {
        scale: sx,
        zero: zx,
        alpha: al,
        beta: be,
    } = token;
    let one = |j: usize, low: &mut f32| -> f32 {
        let approx = sx * entries.scales[j] * (acc[j] - zx * entries.sums[j]) as f32;
        let e = al * entries.norm[j] + be * entries.err[j];
        *low = low.max(approx - e);
        approx + e
    };
    let steps = width / LANES;
    for step in 0..steps {
        let j0 = step * LANES;
        let span = j0..j0 + LANES;
        let acc: &[i32; LANES] = acc[span.clone()].try_into().unwrap();
        let scales: &[f32; LANES] = entries.scales[span.clone()].try_into().unwrap();
        let sums: &[i32; LANES] = entries.sums[span.clone()].try_into().unwrap();
        let norm: &[f32; LANES] = entries.norm[span.clone()].try_into().unwrap();
        let err: &[f32; LANES] = entries.err[span.clone()].try_into().unwrap();
        let neg_bias: &[f32; LANES] = entries.neg_bias[span.clone()].try_into().unwrap();
        let low: &mut [f32; LANES] = (&mut low[span]).try_into().unwrap();
        let mut hi = [0f32; LANES];
        let mut any = false;
        for l in 0..LANES {
            let approx = sx * scales[l] * (acc[l] - zx * sums[l]) as f32;
            let e = al * norm[l] + be * err[l];
            low[l] = low[l].max(approx - e);
            hi[l] = approx + e;
            any |= hi[l] >= neg_bias[l];
        }
        if any {
            for l in 0..LANES {
                if hi[l] >= neg_bias[l] {
                    push(j0 + l, hi[l]);
                }
            }
        }
    }
    for (j, low) in low.iter_mut().enumerate().skip(steps * LANES) {
        let hi = one(j, low);
        if hi >= entries.neg_bias[j] {
            push(j, hi);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One way of running the screen: (lower bounds, candidates found).
    type Copy<'a> = Box<dyn Fn(&mut [f32], &mut Vec<(usize, f32)>) + 'a>;

    /// Every compiled copy finds the same candidates and lower bounds as the plain loop.
    #[test]
    fn every_copy_matches_the_plain_loop() {
        let mut seed = 5u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        for width in [0, 1, 15, 16, 17, 40, 256] {
            let acc: Vec<i32> = (0..width).map(|_| (next() * 40000.0) as i32).collect();
            let scales: Vec<f32> = (0..width).map(|_| next().abs() * 0.01).collect();
            let sums: Vec<i32> = (0..width).map(|_| (next() * 3000.0) as i32).collect();
            let norm: Vec<f32> = (0..width).map(|_| next().abs()).collect();
            let err: Vec<f32> = (0..width).map(|_| next().abs() * 0.01).collect();
            let neg_bias: Vec<f32> = (0..width).map(|_| next() * 2.0 + 1.0).collect();
            let entries = EntryBounds {
                scales: &scales,
                sums: &sums,
                norm: &norm,
                err: &err,
                neg_bias: &neg_bias,
            };
            let token = TokenBound {
                scale: 0.003,
                zero: 37,
                alpha: 0.2,
                beta: 1.5,
            };
            let start: Vec<f32> = (0..width).map(|_| next() * 3.0).collect();
            let mut want_low = start.clone();
            let mut want = Vec::new();
            for j in 0..width {
                let approx = token.scale * scales[j] * (acc[j] - token.zero * sums[j]) as f32;
                let e = token.alpha * norm[j] + token.beta * err[j];
                want_low[j] = want_low[j].max(approx - e);
                if approx + e >= neg_bias[j] {
                    want.push((j, approx + e));
                }
            }
            let mut copies: Vec<Copy> = vec![
                Box::new(|low, got| {
                    screen_row_generic(&acc, token, &entries, low, &mut |j, h| got.push((j, h)))
                }),
                Box::new(|low, got| {
                    screen_row(&acc, token, &entries, low, &mut |j, h| got.push((j, h)))
                }),
            ];
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: AVX2 is present (checked above).
                    copies.push(Box::new(|low, got| unsafe {
                        screen_row_avx2(&acc, token, &entries, low, &mut |j, h| got.push((j, h)))
                    }));
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: AVX-512F is present (checked above).
                    copies.push(Box::new(|low, got| unsafe {
                        screen_row_avx512(&acc, token, &entries, low, &mut |j, h| got.push((j, h)))
                    }));
                }
            }
            assert!(width < 40 || !want.is_empty() && want.len() < width);
            for copy in &copies {
                let mut low = start.clone();
                let mut got = Vec::new();
                copy(&mut low, &mut got);
                assert_eq!(got, want, "width {width}");
                assert_eq!(low, want_low, "width {width}");
            }
        }
    }
}
