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
pub(crate) fn encode_up(v: f32, scale: f32) -> u8 {
    if v.is_nan() || v <= 0.0 || scale <= 0.0 {
        return 0;
    }
    let mut c = (v / scale).ceil().clamp(1.0, 255.0) as u32;
    while c < 255 && (c as f32) * scale < v {
        c += 1;
    }
    c as u8
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
    let m = terms as f32;
    let relative = 1.0 + (m + 16.0) * f32::EPSILON;
    let absolute = (m + 1.0) * f32::from_bits(1 << 9);
    bound * relative + absolute
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

    #[test]
    fn inflate_widens() {
        assert!(inflate(1.0, 1) > 1.0);
        assert!(inflate(0.0, 3) > 0.0);
    }
}
