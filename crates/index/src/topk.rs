//! Top-k selection with the crate's ranking order: score descending, then document number
//! ascending.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// One search result: a document number (see [`crate::Index::id`] for its external id) and
/// its exact dot-product score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Document number (from 0; insertion order within a segment, segments in order: see
    /// [`crate::Index`]).
    pub doc: u32,
    /// Dot product of the query and the document, accumulated in f64 in ascending term
    /// order and rounded to f32, exactly as `SparseView::dot` computes it.
    pub score: f32,
}

impl Hit {
    /// The ranking order: higher score first, then smaller document number.
    pub fn rank_cmp(&self, other: &Hit) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.doc.cmp(&other.doc))
    }
}

/// Heap entry whose maximum is the worst-ranked hit.
#[derive(Clone, Copy)]
struct Worst(Hit);

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.rank_cmp(&other.0)
    }
}

/// Keeps the `k` best hits seen so far.
#[derive(Clone)]
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k.min(1 << 16) + 1),
        }
    }

    /// Offers a hit; only positive scores are kept.
    #[inline]
    pub(crate) fn push(&mut self, doc: u32, score: f32) {
        if self.k == 0 || score <= 0.0 {
            return;
        }
        let hit = Hit { doc, score };
        if self.heap.len() < self.k {
            self.heap.push(Worst(hit));
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if hit.rank_cmp(&worst.0) == Ordering::Less {
                *worst = Worst(hit);
            }
        }
    }

    /// Whether a document scoring at most `bound` could still enter: the heap is not full,
    /// or `bound` reaches the current k-th score (equal scores may win on document number).
    #[inline]
    pub(crate) fn may_admit(&self, bound: f32) -> bool {
        if bound <= 0.0 || self.k == 0 {
            return false;
        }
        match self.heap.peek() {
            Some(w) if self.heap.len() >= self.k => bound >= w.0.score,
            _ => true,
        }
    }

    /// The smallest score that may still enter: the k-th score when the top-k is full (a
    /// tie may still win on document number), else 0 (only positive scores are kept).
    #[inline]
    pub(crate) fn floor(&self) -> f32 {
        match self.heap.peek() {
            _ if self.k == 0 => f32::INFINITY,
            Some(w) if self.heap.len() >= self.k => w.0.score,
            _ => 0.0,
        }
    }

    /// The hits, best first.
    pub(crate) fn into_sorted(self) -> Vec<Hit> {
        let mut hits: Vec<Hit> = self.heap.into_iter().map(|w| w.0).collect();
        hits.sort_unstable_by(Hit::rank_cmp);
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_equal_to_the_kth_score_may_still_admit_a_tie() {
        let mut top = TopK::new(2);
        assert!(top.may_admit(1.0));
        assert!(!top.may_admit(0.0), "score 0 is never returned");
        top.push(5, 2.0);
        top.push(7, 1.0);
        assert!(
            top.may_admit(1.0),
            "a tie with a smaller number would rank higher"
        );
        assert!(!top.may_admit(0.999));
        top.push(3, 1.0);
        top.push(9, 1.0);
        top.push(4, 0.0);
        let got: Vec<_> = top.into_sorted().iter().map(|h| (h.doc, h.score)).collect();
        assert_eq!(got, vec![(5, 2.0), (3, 1.0)]);
    }
}
