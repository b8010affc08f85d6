//! Exact top-k by block-max pruning (after BMP, Mallia, Nardini, Tonellotto and Suel,
//! SIGIR 2024).
//!
//! 1. Every block `b` that shares a term with the query gets an upper bound
//!    `U(b) = inflate(Σ_t q_t · scale_t · code_t(b))` over the query terms with `q_t > 0`;
//!    dequantised codes are never below the block's true maxima and `inflate` covers the f32
//!    rounding, so `U(b)` is at least the exact score of every document in `b`.
//! 2. Blocks are visited in decreasing `U(b)`. A visited block is scored exactly: for each
//!    query term in ascending term order, the block's entries for that term (found through
//!    the term's block list and `bounds.slots`, no search of the block's terms) add
//!    `q as f64 * w as f64` into a per-document f64 accumulator, which is then rounded to
//!    f32. Per document, that is the same sequence of f64 operations as the merge join of
//!    `SparseView::dot`, so scores are bit-identical to the brute force and ties are real.
//! 3. The search stops at the first block with `U(b) < θ`, where `θ` is the current k-th
//!    score and the top-k is full: every remaining document scores `<= U(b) < θ`. A block
//!    with `U(b) == θ` is still visited, since a document tied with `θ` and a smaller
//!    number ranks above the current k-th hit.
//!
//! Queries with a negative weight (not produced by SPLADE) are scored exhaustively, block by
//! block, since the bound above assumes non-negative contributions.
//!
//! Several segments (or deletions) are searched one segment after the other into the same
//! top-k, with global document numbers and deleted documents skipped when hits are offered
//! (their entries still count in the block bounds, which only makes the bounds looser).
//! A lone segment without deletions takes a separate path with the original loop.

use std::collections::BinaryHeap;

use splade_sparse::{SparseVector, SparseView};

use super::SearchStats;
use crate::deletes::is_deleted;
use crate::index::Index;
use crate::quantize::inflate;
use crate::segment::{BlockArrays, Segment};
use crate::topk::{Hit, TopK};

/// Reusable per-thread buffers of the exact search.
#[derive(Debug, Clone)]
pub(crate) struct Scratch {
    bounds: Vec<f32>,
    seen: Vec<bool>,
    touched: Vec<u32>,
    /// Per query term `i` and block `b`, at `i * num_blocks + b`: the position of `b` in
    /// the term's block list, or `u32::MAX` (filled per query; replaces a binary search per
    /// (term, scored block)).
    positions: Vec<u32>,
    /// Largest position table (entries); [`MAX_POSITIONS`] except in tests.
    max_positions: usize,
    acc: Vec<f64>,
    pub(crate) stats: SearchStats,
}

impl Scratch {
    pub(crate) fn new() -> Self {
        Self {
            bounds: Vec::new(),
            seen: Vec::new(),
            touched: Vec::new(),
            positions: Vec::new(),
            max_positions: MAX_POSITIONS,
            acc: vec![0.0; crate::builder::MAX_BLOCK_SIZE],
            stats: SearchStats::default(),
        }
    }

    /// Makes room for `num_blocks` blocks. Between searches every entry is 0 / false
    /// (`clear_touched`), so buffers sized for a larger segment serve a smaller one.
    fn prepare(&mut self, num_blocks: usize) {
        if self.bounds.len() < num_blocks {
            self.bounds = vec![0.0; num_blocks];
            self.seen = vec![false; num_blocks];
        }
        self.touched.clear();
    }

    fn clear_touched(&mut self) {
        for &b in &self.touched {
            self.bounds[b as usize] = 0.0;
            self.seen[b as usize] = false;
        }
        self.touched.clear();
    }
}

/// Heap key: the bound's bits (order-preserving for non-negative floats) above the block
/// number, inverted so that equal bounds pop the smaller block first.
fn key(bound: f32, block: u32) -> u64 {
    (u64::from(bound.max(0.0).to_bits()) << 32) | u64::from(u32::MAX - block)
}

fn unkey(key: u64) -> (f32, usize) {
    (
        f32::from_bits((key >> 32) as u32),
        (u32::MAX - key as u32) as usize,
    )
}

/// A query term present in the index: weight and its range of the block-maxima lists.
#[derive(Debug, Clone, Copy)]
struct QueryTerm {
    weight: f32,
    start: usize,
    end: usize,
    scale: f32,
    /// Whether the term counts in block bounds (all terms, unless `beta < 1`).
    bound: bool,
}

/// Maps a segment's local document numbers to global ones, dropping deleted documents.
#[derive(Clone, Copy)]
pub(crate) struct DocMap<'a> {
    /// Global number of the segment's document 0.
    pub base: u32,
    /// Deletion bitset (empty: nothing deleted).
    pub deleted: &'a [u64],
}

/// The top-k of `query` (see the module documentation); exact when `alpha == 1` and
/// `beta == 1`, otherwise the approximation of [`super::Method::Approximate`].
pub(crate) fn exact_top_k(
    index: &Index,
    query: SparseView<'_>,
    k: usize,
    alpha: f32,
    beta: f32,
    scratch: &mut Scratch,
) -> Vec<Hit> {
    match index.slots() {
        [only] if only.base == 0 && only.deleted.is_empty() => {
            segment_top_k(&only.segment, query, k, alpha, beta, scratch)
        }
        _ => segments_top_k(index, query, k, alpha, beta, scratch),
    }
}

/// The heaviest `ceil(beta * nnz)` query terms (ties to the smaller id), which alone make
/// the block bounds; `None` when `beta >= 1` (all terms).
fn bound_terms(query: SparseView<'_>, beta: f32) -> Option<SparseVector> {
    (beta < 1.0).then(|| {
        let keep = ((f64::from(beta) * query.nnz() as f64).ceil() as usize).max(1);
        query.top_k(keep)
    })
}

/// The query terms present in a segment, whether the position table is used, and the
/// heap keys of the candidate blocks (every block for a query with a negative weight).
#[inline(always)]
fn candidates(
    a: &BlockArrays<'_>,
    num_blocks: usize,
    query: SparseView<'_>,
    bound_terms: &Option<SparseVector>,
    scratch: &mut Scratch,
) -> (Vec<QueryTerm>, bool, Vec<u64>) {
    let is_bound = |t: u32| {
        bound_terms
            .as_ref()
            .is_none_or(|b| b.indices().binary_search(&t).is_ok())
    };
    // Ascending term order (as in the query): the order of summation per document.
    let terms: Vec<QueryTerm> = query
        .iter()
        .filter_map(|(t, weight)| {
            let t = t as usize;
            let (start, end) = (
                *a.bound_offsets.get(t)? as usize,
                *a.bound_offsets.get(t + 1)? as usize,
            );
            (start < end).then(|| QueryTerm {
                weight,
                start,
                end,
                scale: a.bound_scales[t],
                bound: is_bound(t as u32),
            })
        })
        .collect();
    scratch.prepare(num_blocks);
    let table = terms.len() * num_blocks <= scratch.max_positions;
    if table {
        fill_positions(a, &terms, num_blocks, &mut scratch.positions);
    }
    let keys: Vec<u64> = if terms.iter().any(|t| t.weight < 0.0) {
        (0..num_blocks as u32)
            .map(|b| key(f32::INFINITY, b))
            .collect()
    } else {
        let contributing = accumulate_bounds(a, &terms, scratch);
        let keys = scratch
            .touched
            .iter()
            .map(|&b| key(inflate(scratch.bounds[b as usize], contributing), b))
            .collect();
        scratch.clear_touched();
        keys
    };
    (terms, table, keys)
}

/// [`exact_top_k`] over a lone segment without deletions (document numbers unchanged).
/// Kept apart from the general case so that this loop compiles exactly as it did before
/// indexes had several segments.
fn segment_top_k(
    segment: &Segment,
    query: SparseView<'_>,
    k: usize,
    alpha: f32,
    beta: f32,
    scratch: &mut Scratch,
) -> Vec<Hit> {
    let a = segment.blocks();
    let num_blocks = segment.num_blocks();
    scratch.stats = SearchStats {
        blocks_total: num_blocks,
        ..SearchStats::default()
    };
    if k == 0 || num_blocks == 0 {
        return Vec::new();
    }
    let bound_terms = bound_terms(query, beta);
    let (terms, table, keys) = candidates(&a, num_blocks, query, &bound_terms, scratch);
    scratch.stats.blocks_candidate = keys.len();
    let mut heap = BinaryHeap::from(keys);
    let mut top = TopK::new(k);
    let mut scored = 0;
    while let Some(k) = heap.pop() {
        let (bound, block) = unkey(k);
        // alpha == 1 multiplies exactly: the exact stopping rule.
        if !top.may_admit(bound * alpha) {
            break;
        }
        scored += 1;
        let positions = if table {
            Some((&scratch.positions[..], num_blocks))
        } else {
            None
        };
        score_block(&a, block, &terms, positions, &mut scratch.acc, &mut top);
    }
    scratch.stats.blocks_scored = scored;
    top.into_sorted()
}

/// [`exact_top_k`] over several segments, or one with deletions. Segments are searched in
/// order into one top-k, so the k-th score found in one segment prunes the next; per
/// segment, the stopping rule is the one above, hence the result is the exact top-k over
/// all live documents (global numbers: segment order, then number within the segment).
fn segments_top_k(
    index: &Index,
    query: SparseView<'_>,
    k: usize,
    alpha: f32,
    beta: f32,
    scratch: &mut Scratch,
) -> Vec<Hit> {
    scratch.stats = SearchStats {
        blocks_total: index.num_blocks(),
        ..SearchStats::default()
    };
    if k == 0 || index.num_blocks() == 0 {
        return Vec::new();
    }
    let bound_terms = bound_terms(query, beta);
    let mut top = TopK::new(k);
    for slot in index.slots() {
        if slot.live() == 0 {
            continue;
        }
        let map = DocMap {
            base: slot.base,
            deleted: slot.deleted.words(),
        };
        let a = slot.segment.blocks();
        let num_blocks = slot.segment.num_blocks();
        if num_blocks == 0 {
            continue;
        }
        let (terms, table, keys) = candidates(&a, num_blocks, query, &bound_terms, scratch);
        scratch.stats.blocks_candidate += keys.len();
        let mut heap = BinaryHeap::from(keys);
        while let Some(k) = heap.pop() {
            let (bound, block) = unkey(k);
            if !top.may_admit(bound * alpha) {
                break;
            }
            scratch.stats.blocks_scored += 1;
            let positions = table.then_some((&scratch.positions[..], num_blocks));
            score_block_mapped(
                &a,
                block,
                &terms,
                positions,
                &mut scratch.acc,
                &mut top,
                map,
            );
        }
    }
    top.into_sorted()
}

/// Largest position table (entries) per query; beyond it, binary search.
const MAX_POSITIONS: usize = 1 << 24;

/// Fills `positions` (see [`Scratch`]) for every query term.
#[inline(always)]
fn fill_positions(a: &BlockArrays<'_>, terms: &[QueryTerm], nb: usize, positions: &mut Vec<u32>) {
    positions.clear();
    positions.resize(terms.len() * nb, u32::MAX);
    for (i, t) in terms.iter().enumerate() {
        let row = &mut positions[i * nb..(i + 1) * nb];
        for (j, &b) in a.bound_blocks[t.start..t.end].iter().enumerate() {
            row[b as usize] = j as u32;
        }
    }
}

/// Adds every positive query term's dequantised block maxima into `scratch.bounds`, noting
/// the blocks touched; returns how many terms contributed.
#[inline(always)]
fn accumulate_bounds(a: &BlockArrays<'_>, terms: &[QueryTerm], scratch: &mut Scratch) -> usize {
    let mut contributing = 0;
    for t in terms.iter().filter(|t| t.weight > 0.0 && t.bound) {
        contributing += 1;
        let qs = t.weight * t.scale;
        let range = t.start..t.end;
        for (&b, &c) in a.bound_blocks[range.clone()]
            .iter()
            .zip(&a.bound_codes[range])
        {
            if c == 0 {
                continue;
            }
            let bi = b as usize;
            if !scratch.seen[bi] {
                scratch.seen[bi] = true;
                scratch.touched.push(b);
            }
            scratch.bounds[bi] += qs * f32::from(c);
        }
    }
    contributing
}

/// Scores every document of `block` exactly and offers it to `top` (numbers unchanged:
/// a lone segment without deletions). The (term, block) entries are found through the
/// term's block list (`bounds.slots`): its position comes from the per-query table, or a
/// binary search for very large queries × indexes.
fn score_block(
    a: &BlockArrays<'_>,
    block: usize,
    terms: &[QueryTerm],
    positions: Option<(&[u32], usize)>,
    acc: &mut [f64],
    top: &mut TopK,
) {
    let (docs, acc) = accumulate_block(a, block, terms, positions, acc);
    for (&doc, &s) in docs.iter().zip(acc.iter()) {
        top.push(doc, s as f32);
    }
}

/// [`score_block`] for a later segment or one with deletions: global numbers, deleted
/// documents skipped.
fn score_block_mapped(
    a: &BlockArrays<'_>,
    block: usize,
    terms: &[QueryTerm],
    positions: Option<(&[u32], usize)>,
    acc: &mut [f64],
    top: &mut TopK,
    map: DocMap<'_>,
) {
    let (docs, acc) = accumulate_block(a, block, terms, positions, acc);
    for (&doc, &s) in docs.iter().zip(acc.iter()) {
        if !is_deleted(map.deleted, doc) {
            top.push(map.base + doc, s as f32);
        }
    }
}

/// The exact scores of the documents of `block` (in `acc`, by block slot) and their
/// local numbers.
#[inline(always)]
fn accumulate_block<'a, 'b>(
    a: &BlockArrays<'a>,
    block: usize,
    terms: &[QueryTerm],
    positions: Option<(&[u32], usize)>,
    acc: &'b mut [f64],
) -> (&'a [u32], &'b [f64]) {
    let first = block * a.block_size;
    let len = a.block_size.min(a.num_docs - first);
    let acc = &mut acc[..len];
    acc.fill(0.0);
    for (i, t) in terms.iter().enumerate() {
        let p = match positions {
            Some((table, nb)) => match table[i * nb + block] {
                u32::MAX => continue,
                p => p as usize,
            },
            None => {
                let blocks = &a.bound_blocks[t.start..t.end];
                let Ok(p) = blocks.binary_search(&(block as u32)) else {
                    continue;
                };
                p
            }
        };
        let slot = a.bound_slots[t.start + p] as usize;
        let (es, ee) = (
            a.entry_offsets[slot] as usize,
            a.entry_offsets[slot + 1] as usize,
        );
        let w = t.weight as f64;
        for (&d, &v) in a.entry_docs[es..ee].iter().zip(&a.entry_values[es..ee]) {
            acc[d as usize] += w * v as f64;
        }
    }
    (&a.doc_order[first..first + len], acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IndexBuilder, Reorder};
    use splade_sparse::SparseVector;

    /// The position table and the binary-search fallback find the same entries, in one
    /// segment and in several with deletions.
    #[test]
    fn position_table_and_binary_search_agree() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let dim = 300;
        let vector = |n: usize, next: &mut dyn FnMut() -> u64| {
            let pairs: Vec<(u32, f32)> = (0..n)
                .map(|_| ((next() % dim) as u32, (next() % 1000) as f32 / 250.0))
                .collect();
            let mut pairs = pairs;
            pairs.sort_by_key(|p| p.0);
            pairs.dedup_by_key(|p| p.0);
            SparseVector::from_pairs(pairs).unwrap()
        };
        let mut b = IndexBuilder::new(dim as usize)
            .block_size(8)
            .reorder(Reorder::Clustered);
        for d in 0..2000 {
            let v = vector(20, &mut next);
            b.add(&format!("d{d}"), v.view()).unwrap();
        }
        let single = b.build().unwrap();
        // The same documents in three segments, some deleted and some replaced.
        let tmp = tempfile::tempdir().unwrap();
        let mut w = crate::IndexWriter::create(tmp.path(), dim as usize)
            .unwrap()
            .block_size(8)
            .merge_policy(crate::MergePolicy::never());
        for d in 0..2000 {
            let v = vector(20, &mut next);
            w.add(&format!("d{}", d % 1500), v.view()).unwrap();
            if d % 700 == 699 {
                w.commit().unwrap();
            }
            if d % 9 == 0 {
                w.delete(&format!("d{}", d / 3));
            }
        }
        w.commit().unwrap();
        let segmented = crate::Index::open(tmp.path()).unwrap();
        assert!(segmented.num_segments() == 3 && segmented.num_deleted() > 0);
        for index in [&single, &segmented] {
            let mut table = Scratch::new();
            let mut search = Scratch::new();
            search.max_positions = 0;
            for _ in 0..50 {
                let q = vector(30, &mut next);
                for k in [1, 10, 100] {
                    let a = exact_top_k(index, q.view(), k, 1.0, 1.0, &mut table);
                    let b = exact_top_k(index, q.view(), k, 1.0, 1.0, &mut search);
                    assert_eq!(a, b);
                    assert_eq!(a, index.brute_force_top_k(q.view(), k));
                    let a = exact_top_k(index, q.view(), k, 0.7, 0.5, &mut table);
                    let b = exact_top_k(index, q.view(), k, 0.7, 0.5, &mut search);
                    assert_eq!(a, b);
                    assert!(a.iter().all(|h| !index.is_deleted(h.doc)));
                }
            }
        }
    }
}
