//! Batch samplers: seeded shuffling and sentence-transformers' NO_DUPLICATES sampler.

use std::collections::HashSet;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// How rows are grouped into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchSampler {
    /// Rows in file order, consecutive chunks of `batch_size` (to replay an order fixed
    /// elsewhere, e.g. for side-by-side runs with the reference).
    Sequential,
    /// Shuffled rows, consecutive chunks of `batch_size`.
    Shuffled,
    /// Like sentence-transformers' `NoDuplicatesBatchSampler`: no text appears twice in a
    /// batch (in any column), so in-batch negatives are never copies of a positive.
    #[default]
    NoDuplicates,
}

/// The row order of epoch `epoch` for a seed (a ChaCha8 permutation, reproducible across runs
/// and platforms).
pub fn permutation(rows: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(epoch));
    order.shuffle(&mut rng);
    order
}

/// Groups row indices into batches.
///
/// `NoDuplicates` walks the shuffled rows and fills each batch with the first rows none of
/// whose texts is already in it; rows that clash wait, in order, for a later batch (the
/// algorithm of sentence-transformers' sampler). The last batch may be smaller; with
/// `drop_last` incomplete batches are dropped.
pub fn batches(
    rows: &[Vec<String>],
    batch_size: usize,
    sampler: BatchSampler,
    seed: u64,
    epoch: u64,
    drop_last: bool,
) -> Vec<Vec<usize>> {
    let batch_size = batch_size.max(1);
    let order = match sampler {
        BatchSampler::Sequential => (0..rows.len()).collect(),
        _ => permutation(rows.len(), seed, epoch),
    };
    let mut out = Vec::new();
    match sampler {
        BatchSampler::Sequential | BatchSampler::Shuffled => {
            for chunk in order.chunks(batch_size) {
                if chunk.len() == batch_size || !drop_last {
                    out.push(chunk.to_vec());
                }
            }
        }
        BatchSampler::NoDuplicates => {
            let mut remaining = order;
            while !remaining.is_empty() {
                let mut batch = Vec::with_capacity(batch_size);
                let mut seen: HashSet<&str> = HashSet::new();
                let mut waiting = Vec::new();
                let mut taken = 0;
                for (pos, &row) in remaining.iter().enumerate() {
                    if batch.len() == batch_size {
                        waiting.extend_from_slice(&remaining[pos..]);
                        break;
                    }
                    let texts = &rows[row];
                    if texts.iter().any(|t| seen.contains(t.as_str())) {
                        waiting.push(row);
                        continue;
                    }
                    seen.extend(texts.iter().map(String::as_str));
                    batch.push(row);
                    taken += 1;
                }
                if taken == 0 {
                    break;
                }
                if batch.len() == batch_size || !drop_last {
                    out.push(batch);
                }
                remaining = waiting;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(texts: &[(&str, &str)]) -> Vec<Vec<String>> {
        texts
            .iter()
            .map(|(a, b)| vec![a.to_string(), b.to_string()])
            .collect()
    }

    #[test]
    fn no_batch_repeats_a_text_and_every_row_is_used_once() {
        let data: Vec<Vec<String>> = (0..200)
            .map(|i| {
                vec![
                    format!("q{}", i % 37),
                    format!("d{}", i % 53),
                    format!("n{}", i % 11),
                ]
            })
            .collect();
        let b = batches(&data, 8, BatchSampler::NoDuplicates, 7, 0, false);
        let mut used: Vec<usize> = b.iter().flatten().copied().collect();
        used.sort_unstable();
        assert_eq!(used, (0..200).collect::<Vec<_>>());
        for batch in &b {
            let mut seen = HashSet::new();
            for &r in batch {
                for t in &data[r] {
                    assert!(seen.insert(t.clone()), "text {t} twice in a batch");
                }
            }
        }
        // Same seed, same batches; another epoch, another order.
        assert_eq!(
            b,
            batches(&data, 8, BatchSampler::NoDuplicates, 7, 0, false)
        );
        assert_ne!(
            b,
            batches(&data, 8, BatchSampler::NoDuplicates, 7, 1, false)
        );
    }

    #[test]
    fn clashing_rows_wait_for_a_later_batch() {
        let data = rows(&[("a", "b"), ("a", "c"), ("d", "e"), ("f", "g")]);
        for seed in 0..20 {
            let b = batches(&data, 2, BatchSampler::NoDuplicates, seed, 0, false);
            for batch in &b {
                assert!(!(batch.contains(&0) && batch.contains(&1)));
            }
            assert_eq!(b.iter().map(Vec::len).sum::<usize>(), 4);
        }
        let dropped = batches(
            &rows(&[("a", "b"), ("a", "c")]),
            2,
            BatchSampler::NoDuplicates,
            0,
            0,
            true,
        );
        assert!(dropped.is_empty());
        let shuffled = batches(&data, 3, BatchSampler::Shuffled, 1, 0, true);
        assert_eq!(shuffled.len(), 1);
        let sequential = batches(&data, 3, BatchSampler::Sequential, 1, 0, false);
        assert_eq!(sequential, vec![vec![0, 1, 2], vec![3]]);
    }
}
