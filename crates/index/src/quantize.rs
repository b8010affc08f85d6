//! Upward u8 quantisation of block maxima, and the safety margin of the bounds built from
//! them.
//!
//! A term with largest weight `max` gets a scale `s` with `255 * s >= max`; a block maximum
//! `v` gets the smallest code `c` with `c * s >= v` (in f32). Dequantised bounds are therefore
//! never below the true maxima. The sum of a query's bound contributions is computed in f32,
//! so [`inflate`] widens it by more than the worst-case rounding error: the result is an upper
//! bound of every exact document score in the block.

/// The next representable f32 above a non-negative finite `x`.
fn next_up(x: f32) -> f32 {
    if x.is_nan() || x == f32::INFINITY {
        return x;
    }
    if x == 0.0 {
        return f32::from_bits(1);
    }
    f32::from_bits(x.to_bits() + 1)
}

/// The scale of a term whose largest weight is `max` (0 when `max <= 0`).
pub(crate) fn scale_for(max: f32) -> f32 {
    if max.is_nan() || max <= 0.0 {
        return 0.0;
    }
    let mut s = max / 255.0;
    if s == 0.0 {
        s = f32::from_bits(1);
    }
    while 255.0 * s < max {
        s = next_up(s);
    }
    s
}

/// The smallest code whose dequantised value `code as f32 * scale` is `>= v`, for
/// `0 <= v <= max` where `scale = scale_for(max)`.
///
/// Called once a (block, term) slot when an index is built, so it avoids what the plain
/// form (`(v / scale).ceil()`, then step up while `c * scale < v`) costs on baseline
/// x86-64: `ceil` is a libm call there, and LLVM vectorises the stepping loop 16 codes at a
/// time. The result is the same (tested against the plain form).
#[inline]
pub(crate) fn encode_up(v: f32, scale: f32) -> u8 {
    if v.is_nan() || v <= 0.0 || scale <= 0.0 {
        return 0;
    }
    let q = v / scale;
    if q.is_nan() {
        // A NaN scale, or infinity over infinity: 0, as the plain form gives.
        return 0;
    }
    // ceil(v / scale), clamped to 1..=255 (the clamp first: 255 is an integer).
    let q = q.min(255.0);
    let t = q as u32;
    let mut c = (t + u32::from((t as f32) < q)).max(1);
    // `q` is within one rounding of `v / scale <= 256`, so at most one step is needed;
    // the loop is kept for safety.
    if c < 255 && (c as f32) * scale < v {
        c += 1;
        while c < 255 && (c as f32) * scale < v {
            c += 1;
        }
    }
    c as u8
}

/// [`encode_up`] of every pair (`values[i]`, `scales[i]`) into `out[i]` (the three of one
/// length), with the same codes, in a form the compiler turns into SIMD lanes (no branch a
/// pair). The builder calls it for every (block, term) slot, where a scalar [`encode_up`]
/// call a slot took about 7 % of an in-memory build's cycles.
///
/// One step up is always enough: below the clamp, `q = v / s <= 255` is within one
/// rounding of the quotient, so `(ceil(q) + 1) * s` exceeds `v` by nearly `s`, far more
/// than the product's rounding (and products of a subnormal scale by a code are exact).
/// Should a pair ever need a second step, the whole run is redone by [`encode_up`] (a
/// safeguard: none of the tests' two million pairs, special values included, reaches it).
pub(crate) fn encode_up_all(values: &[f32], scales: &[f32], out: &mut [u8]) {
    assert!(values.len() == out.len() && scales.len() == out.len());
    let mut stray = false;
    for ((o, &v), &s) in out.iter_mut().zip(values).zip(scales) {
        let q = v / s;
        let valid = v > 0.0 && s > 0.0 && !q.is_nan();
        // In 0..=255 and never NaN (`min` and `max` return the number when one side is
        // NaN; `clamp` would keep it), so the conversion below is exact and in range.
        #[allow(clippy::manual_clamp)]
        let clamped = q.min(255.0).max(0.0);
        // SAFETY: `clamped` is finite and in 0..=255.
        let t = unsafe { clamped.to_int_unchecked::<i32>() };
        let c = (t + i32::from((t as f32) < clamped)).max(1);
        let c = c + i32::from(c < 255 && (c as f32) * s < v);
        stray |= valid && c < 255 && (c as f32) * s < v;
        *o = if valid { c as u8 } else { 0 };
    }
    if stray {
        for ((o, &v), &s) in out.iter_mut().zip(values).zip(scales) {
            *o = encode_up(v, s);
        }
    }
}

/// Widens a bound summed in f32 from `terms` contributions (each `(q * scale) * code`) so it
/// is at least every exact score it bounds.
///
/// Each contribution carries two f32 roundings and the dequantised code one more (at most
/// `3u` relative, `u = 2^-24`); summing `m` non-negative contributions adds at most
/// `(m - 1)u`; the exact score itself is rounded once from f64 to f32 (`u`, plus `m * 2^-53`
/// from the f64 sum). The relative widening `(m + 16) * 2u` covers all of it twice over; the
/// absolute term `(m + 1) * 2^-140` covers underflow into subnormals (absolute error at most
/// `255 * 2^-150` per contribution).
pub(crate) fn inflate(bound: f32, terms: usize) -> f32 {
    let (relative, absolute) = inflation(terms);
    bound * relative + absolute
}

/// The factor and the (subnormal) term of [`inflate`] for a sum of `terms` products.
fn inflation(terms: usize) -> (f32, f32) {
    let m = terms as f32;
    (
        1.0 + (m + 16.0) * f32::EPSILON,
        (m + 1.0) * f32::from_bits(1 << 9),
    )
}

/// About the smallest raw bound that [`inflate`] takes to `bound` or above (up to the
/// rounding of one division): for estimates that only steer the search's speed, compared
/// with raw bounds without inflating each one.
pub(crate) fn deflate(bound: f32, terms: usize) -> f32 {
    let (relative, absolute) = inflation(terms);
    (bound - absolute) / relative
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_never_dequantise_below_the_value() {
        for &max in &[
            1e-40f32,
            1e-30,
            0.3,
            1.0,
            2.5,
            7.123,
            1e10,
            f32::MAX / 300.0,
        ] {
            let s = scale_for(max);
            assert!(255.0 * s >= max);
            for i in 0..=1000 {
                let v = max * (i as f32 / 1000.0);
                let c = encode_up(v, s);
                assert!(c as f32 * s >= v, "max {max} v {v} code {c}");
                if c > 1 {
                    assert!(((c - 1) as f32) * s < v, "code not minimal");
                }
            }
        }
        assert_eq!(encode_up(0.0, 1.0), 0);
        assert_eq!(scale_for(0.0), 0.0);
    }

    /// `deflate` inverts `inflate` up to a few roundings, over the range of bounds a search
    /// compares (positive normal floats).
    #[test]
    fn deflate_inverts_inflate() {
        for terms in [0usize, 1, 7, 64, 1000] {
            for bound in [1e-30f32, 1e-6, 0.5, 1.0, 3.75, 123.0, 1e12] {
                let back = inflate(deflate(bound, terms), terms);
                assert!(
                    (back - bound).abs() <= 4.0 * f32::EPSILON * bound,
                    "{terms} {bound} {back}"
                );
            }
        }
    }

    /// Worst case: a document holding every block maximum. Its exact score must never
    /// exceed the inflated bound, whatever the rounding of the f32 bound sum.
    #[test]
    fn inflated_bounds_cover_exact_scores() {
        let mut state = 0x9e3779b97f4a7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        let mut uninflated_misses = 0;
        for trial in 0..20_000 {
            let m = 1 + trial % 60;
            let mut bound = 0.0f32;
            let mut exact = 0.0f64;
            for _ in 0..m {
                let (q, v, max) = (next() * 3.0, next() * 2.0, 2.0 + next());
                let v = if trial % 2 == 0 { max } else { v };
                let s = scale_for(max);
                let c = encode_up(v, s);
                bound += (q * s) * f32::from(c);
                // The document holds the block maximum itself.
                exact += q as f64 * v as f64;
            }
            let score = exact as f32;
            assert!(
                inflate(bound, m) >= score,
                "trial {trial}: {bound} < {score}"
            );
            if bound < score {
                uninflated_misses += 1;
            }
        }
        // The widening is needed: without it some bounds fall below the exact score.
        assert!(uninflated_misses > 0);
    }

    /// The plain form [`encode_up`] replaces.
    fn encode_up_plain(v: f32, scale: f32) -> u8 {
        if v.is_nan() || v <= 0.0 || scale <= 0.0 {
            return 0;
        }
        let mut c = (v / scale).ceil().clamp(1.0, 255.0) as u32;
        while c < 255 && (c as f32) * scale < v {
            c += 1;
        }
        c as u8
    }

    #[test]
    fn encode_up_matches_the_plain_form() {
        let mut state = 0x2545f4914f6cdd1du64;
        let mut bits = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let specials = [
            0.0f32,
            -0.0,
            -1.0,
            f32::NAN,
            f32::INFINITY,
            f32::MIN_POSITIVE,
            f32::from_bits(1),
            f32::MAX,
        ];
        for &v in &specials {
            for &s in &specials {
                assert_eq!(encode_up(v, s), encode_up_plain(v, s), "v {v} s {s}");
            }
        }
        let mut pairs = Vec::new();
        for trial in 0..2_000_000 {
            let r = bits();
            let (v, s) = if trial % 2 == 0 {
                // Any two positive floats.
                (
                    f32::from_bits((r as u32) & 0x7fff_ffff),
                    f32::from_bits(((r >> 32) as u32) & 0x7fff_ffff),
                )
            } else {
                // A value up to a term maximum and that maximum's scale, as the builder
                // calls it.
                let max = f32::from_bits(((r >> 32) as u32 & 0x3fff_ffff) | 0x0080_0000);
                let frac = (r as u32 >> 8) as f32 / (1u32 << 24) as f32;
                (max * frac, scale_for(max))
            };
            assert_eq!(encode_up(v, s), encode_up_plain(v, s), "v {v:e} s {s:e}");
            pairs.push((v, s));
        }
        // The lanes form gives the same codes, in runs of every length (the compiler's
        // vector body and its scalar tail), the special pairs among them.
        for &v in &specials {
            for &s in &specials {
                pairs.push((v, s));
            }
        }
        let mut at = 0;
        for len in (0..40).cycle() {
            if at >= pairs.len() {
                break;
            }
            let run = &pairs[at..(at + len).min(pairs.len())];
            let (values, scales): (Vec<f32>, Vec<f32>) = run.iter().copied().unzip();
            let mut codes = vec![7u8; run.len()];
            encode_up_all(&values, &scales, &mut codes);
            for (i, &(v, s)) in run.iter().enumerate() {
                assert_eq!(codes[i], encode_up_plain(v, s), "lanes: v {v:e} s {s:e}");
            }
            at += run.len();
        }
    }

    #[test]
    fn inflate_widens() {
        assert!(inflate(1.0, 1) > 1.0);
        assert!(inflate(0.0, 3) > 0.0);
    }
}
