//! The brute-force reference: score every document, keep the top k.

use splade_sparse::SparseView;

use crate::index::Index;
use crate::topk::{Hit, TopK};

/// The dot product of two sorted sparse vectors given as slices: products of matching terms
/// in ascending term order, accumulated in f64, rounded to f32. Bit-identical to
/// `SparseView::dot` (which the tests check).
#[inline]
pub(crate) fn dot_slices(qi: &[u32], qv: &[f32], di: &[u32], dv: &[f32]) -> f32 {
    let (mut i, mut j) = (0, 0);
    let mut acc = 0.0f64;
    while i < qi.len() && j < di.len() {
        match qi[i].cmp(&di[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                acc += qv[i] as f64 * dv[j] as f64;
                i += 1;
                j += 1;
            }
        }
    }
    acc as f32
}

/// Top-k by scoring every document in `docs` with `SparseView::dot`: score descending, ties
/// to the earlier document; only scores `> 0` are returned (fewer than `k` hits when fewer
/// documents score above 0). Document numbers are positions in `docs`.
///
/// This is the reference the index's exact search must reproduce hit for hit.
pub fn brute_force_top_k<'a>(
    docs: impl IntoIterator<Item = SparseView<'a>>,
    query: SparseView<'_>,
    k: usize,
) -> Vec<Hit> {
    let mut top = TopK::new(k);
    for (d, doc) in docs.into_iter().enumerate() {
        top.push(d as u32, query.dot(&doc));
    }
    top.into_sorted()
}

/// [`brute_force_top_k`] over an index's live documents, numbered globally (segment order,
/// then document number within the segment).
pub(crate) fn index_brute_force(index: &Index, query: SparseView<'_>, k: usize) -> Vec<Hit> {
    let mut top = TopK::new(k);
    let (qi, qv) = (query.indices(), query.values());
    for slot in index.slots() {
        let segment = &slot.segment;
        let indptr = segment.forward_indptr();
        let (terms, values) = (segment.forward_terms(), segment.forward_values());
        let docs = indptr.windows(2).enumerate();
        if slot.deleted.is_empty() {
            for (d, w) in docs {
                let (s, e) = (w[0] as usize, w[1] as usize);
                let score = dot_slices(qi, qv, &terms[s..e], &values[s..e]);
                top.push(slot.base + d as u32, score);
            }
        } else {
            for (d, w) in docs.filter(|(d, _)| !slot.deleted.contains(*d as u32)) {
                let (s, e) = (w[0] as usize, w[1] as usize);
                let score = dot_slices(qi, qv, &terms[s..e], &values[s..e]);
                top.push(slot.base + d as u32, score);
            }
        }
    }
    top.into_sorted()
}
