//! Per-term counts of a postings array, in parallel: a segment's document frequencies
//! (from its forward terms).

use rayon::prelude::*;

/// How many times each term below `width` occurs in `terms` (terms at or above `width`
/// are not counted). Chunks of a million terms are counted in parallel, then summed.
pub(crate) fn term_counts(terms: &[u32], width: usize) -> Vec<u32> {
    const CHUNK: usize = 1 << 20;
    terms
        .par_chunks(CHUNK)
        .fold(
            || vec![0u32; width],
            |mut counts, chunk| {
                for &t in chunk {
                    if let Some(c) = counts.get_mut(t as usize) {
                        *c += 1;
                    }
                }
                counts
            },
        )
        .reduce(
            || vec![0u32; width],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_term_below_the_width_over_several_chunks() {
        let terms: Vec<u32> = (0..3_000_000u32).map(|i| i % 7).collect();
        let counts = term_counts(&terms, 5);
        // 3,000,000 = 7 * 428,571 + 3: terms 0..3 occur once more.
        assert_eq!(counts, vec![428_572, 428_572, 428_572, 428_571, 428_571]);
        assert!(term_counts(&[], 3).iter().all(|&c| c == 0));
    }
}
