//! Exact top-k term at a time, for small segments and dense queries.
//!
//! Block-max pruning pays off when the block bounds let it skip most blocks. On a small
//! collection of long documents queried by long queries (SciFact: 5k abstracts of ~290
//! terms, queries of ~50 terms) nearly every block's bound passes, and visiting blocks one
//! at a time through the (term, block) indirection costs more than simply adding up every
//! posting of every query term. This path does that:
//!
//! 1. A term-major copy of the segment's postings ([`TermPostings`], in
//!    `segment::postings`: per term, its (block position, weight) pairs in ascending
//!    position) is made once, on the first search that uses it, from the block arrays
//!    (`O(nnz)`; 8 bytes per posting, in memory only: nothing on disk changes). The most
//!    frequent terms also get a dense column (their weight at every position, 0 elsewhere;
//!    at most twice the postings' bytes).
//! 2. Per query, one f64 accumulator per document: for each query term in ascending term
//!    order, every posting adds `q as f64 * w as f64`, or, for a dense column, every
//!    position does (a vectorised pass; absent documents add `+0.0`, which changes no sum).
//!    Per document that is the same sequence of f64 operations as the merge join of
//!    `SparseView::dot` (products of two f32 are exact in f64), so the rounded f32 scores
//!    are bit-identical to the brute force, ties included. The accumulator is traversed in
//!    chunks of [`CHUNK`] documents that stay in L1, every query term in turn per chunk.
//! 3. One pass over the accumulator offers the documents reaching the current k-th score.
//!
//! Its cost is the postings of the query terms plus one pass over the segment's documents,
//! whatever the scores; [`SwitchRule`] compares that with what block-max pruning would
//! still have to score.

use splade_sparse::SparseView;

use crate::segment::postings::{Posting, TermPostings};
use crate::topk::TopK;

/// `acc[i] += q * column[i]` in f64 over the common length: per element the same two
/// roundings as a scattered add (the product of two f32 is exact in f64), vectorised with
/// the widest instructions the CPU has.
fn add_column(acc: &mut [f64], column: &[f32], q: f64) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { add_column_avx512(acc, column, q) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { add_column_avx2(acc, column, q) };
        }
    }
    add_column_plain(acc, column, q);
}

#[inline(always)]
fn add_column_plain(acc: &mut [f64], column: &[f32], q: f64) {
    for (a, &w) in acc.iter_mut().zip(column) {
        *a += q * f64::from(w);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn add_column_avx512(acc: &mut [f64], column: &[f32], q: f64) {
    add_column_plain(acc, column, q);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn add_column_avx2(acc: &mut [f64], column: &[f32], q: f64) {
    add_column_plain(acc, column, q);
}

/// Largest segment (documents) that [`super::Traversal::Auto`] may search term at a
/// time: its accumulator (8 bytes a document) then stays within a typical L2 cache, and its
/// term-major copy within a few tens of MB.
pub(crate) const MAX_TAAT_DOCS: usize = 1 << 15;

/// Blocks that [`super::Traversal::Auto`] scores before it compares the two traversals.
const CHECK_AFTER: usize = 8;

/// Cost model of the two traversals, in nanoseconds, fitted on SciFact and the MS MARCO
/// subset on this project's 2-core machine (`traversal_costs` bench): term at a time
/// costs per posting and per document (zeroing and the final pass); block-max scoring
/// costs per entry of a scored block and per scored block. Fitted before the dense columns,
/// which made term at a time cheaper on frequent terms: the rule errs towards block-max.
const TAAT_NS_PER_POSTING: f64 = 0.75;
const TAAT_NS_PER_DOC: f64 = 1.0;
const BLOCK_NS_PER_ENTRY: f64 = 1.5;
const BLOCK_NS_PER_BLOCK: f64 = 100.0;

/// When [`super::Traversal::Auto`] hands a segment over from block-max pruning to term at a
/// time. Whether block bounds prune is known only once a few blocks are scored and the
/// k-th score has risen: after [`CHECK_AFTER`] blocks, the blocks whose bound still passes
/// the stopping rule are an upper bound on what is left to score. When scoring them (at
/// the entries per block seen so far) is expected to cost more than adding up every
/// posting of the query's terms, the blocks scored so far are dropped and the segment is
/// searched term at a time. Either way the result is the same; only the time differs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SwitchRule {
    pub check_after: usize,
    /// Expected cost of the term-at-a-time search of the segment, in ns.
    taat_ns: f64,
}

impl SwitchRule {
    /// The rule for `query` on a segment of `num_docs` documents whose terms occur in
    /// `df` documents each, or `None` when the segment is too large to be searched term at
    /// a time.
    pub(crate) fn new(num_docs: usize, df: &[u32], query: SparseView<'_>) -> Option<Self> {
        if num_docs > MAX_TAAT_DOCS {
            return None;
        }
        let postings: u64 = query
            .indices()
            .iter()
            .filter_map(|&t| df.get(t as usize).map(|&n| u64::from(n)))
            .sum();
        let postings = postings as f64;
        Some(Self {
            check_after: CHECK_AFTER,
            taat_ns: TAAT_NS_PER_POSTING * postings + TAAT_NS_PER_DOC * num_docs as f64,
        })
    }

    /// Whether to hand over, with `remaining` blocks still passing the stopping rule and
    /// `entries_per_block` entries per block scored so far.
    pub(crate) fn abandon(&self, remaining: usize, entries_per_block: f64) -> bool {
        let block_ns =
            remaining as f64 * (BLOCK_NS_PER_ENTRY * entries_per_block + BLOCK_NS_PER_BLOCK);
        block_ns > self.taat_ns
    }
}

/// Documents per accumulator chunk of [`taat_segment`]: 16 KiB of f64, which stays in L1 with
/// room for the columns (on SciFact 1,024 and 8,192 were slower).
const CHUNK: usize = 2048;

/// Where a query term's weights come from in [`taat_segment`].
enum Source<'a> {
    Dense(&'a [f32]),
    /// The postings not added yet.
    Sparse(&'a [Posting]),
}

/// Scores every document of a segment for `query` (see the module documentation) and
/// offers through `offer` (block position, exact f32 score) those that reach the current
/// k-th score of `top`.
// `#[inline]`: the one caller (`block_max_top_k`) had it inlined while both lived beside
// the term-major postings; since those moved to `segment::postings` the compiler stopped
// doing so, and the search executed 2.5 % more instructions on SciFact (callgrind).
#[inline]
pub(crate) fn taat_segment(
    postings: &TermPostings,
    num_docs: usize,
    query: SparseView<'_>,
    acc: &mut Vec<f64>,
    top: &mut TopK,
    mut offer: impl FnMut(&mut TopK, u32, f32),
) {
    acc.clear();
    acc.resize(num_docs.max(postings.span()), 0.0);
    let acc = &mut acc[..];
    // Per query term, in ascending term order (the order of summation per document): its
    // weight and its dense column or postings.
    let mut terms: Vec<(f64, Source<'_>)> = query
        .iter()
        .map(|(t, q)| {
            let source = match postings.column(t) {
                Some(column) => Source::Dense(column),
                None => Source::Sparse(postings.term(t)),
            };
            (f64::from(q), source)
        })
        .collect();
    // The accumulator is traversed in chunks that stay in L1, every term in turn per chunk:
    // per document the additions still come in ascending term order.
    let span = postings.span();
    let mut lo = 0;
    while lo < span {
        let hi = (lo + CHUNK).min(span);
        for (q, source) in &mut terms {
            match source {
                Source::Dense(column) => add_column(&mut acc[lo..hi], &column[lo..hi], *q),
                Source::Sparse(list) => {
                    let mut taken = 0;
                    for p in list.iter() {
                        let position = p.position as usize;
                        if position >= hi {
                            break;
                        }
                        // SAFETY: every position is below `postings.span` (computed from the
                        // postings themselves, which nothing modifies after `build`), and
                        // `acc.len() >= span`.
                        let a = unsafe { acc.get_unchecked_mut(position) };
                        *a += *q * f64::from(p.weight);
                        taken += 1;
                    }
                    *list = &list[taken..];
                }
            }
        }
        lo = hi;
    }
    let mut floor = top.floor();
    for (position, &s) in acc[..num_docs].iter().enumerate() {
        let s = s as f32;
        if s > 0.0 && s >= floor {
            offer(top, position as u32, s);
            floor = top.floor();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xorshift;
    use crate::IndexBuilder;
    use splade_sparse::SparseVector;

    /// Over several accumulator chunks, with frequent terms as dense columns and the rest as
    /// postings, term at a time equals the brute force bit for bit (ties included).
    #[test]
    fn chunked_dense_and_sparse_terms_equal_brute_force() {
        use crate::search::{SearchOptions, Traversal};
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
        let dim = 400u64;
        let vector = |n: usize, next: &mut dyn FnMut() -> u64| {
            // Cubed positions: small term ids are far more frequent (dense columns).
            let mut pairs: Vec<(u32, f32)> = (0..n)
                .map(|_| {
                    let x = (next() % 10_000) as f64 / 10_000.0;
                    ((x * x * x * dim as f64) as u32, (next() % 64) as f32 / 16.0)
                })
                .collect();
            pairs.sort_by_key(|p| p.0);
            pairs.dedup_by_key(|p| p.0);
            SparseVector::from_pairs(pairs).unwrap()
        };
        let mut b = IndexBuilder::new(dim as usize);
        for d in 0..3 * CHUNK + 100 {
            b.add(&format!("d{d}"), vector(30, &mut next).view())
                .unwrap();
        }
        let index = b.build().unwrap();
        let [only] = index.slots() else { panic!() };
        let postings = only.segment.term_postings();
        assert!(postings.span() > 3 * CHUNK);
        let columns = (0..dim as u32)
            .filter(|&t| postings.column(t).is_some())
            .count();
        assert!(
            columns > 3 && columns < dim as usize / 2,
            "{columns} dense columns"
        );
        let options = SearchOptions {
            k: 20,
            traversal: Traversal::TermAtATime,
            ..SearchOptions::default()
        };
        for _ in 0..40 {
            let q = vector(40, &mut next);
            let got = index.search(q.view(), &options);
            assert_eq!(got, index.brute_force_top_k(q.view(), 20));
            let bits: Vec<u32> = got.iter().map(|h| h.score.to_bits()).collect();
            let want: Vec<u32> = index
                .brute_force_top_k(q.view(), 20)
                .iter()
                .map(|h| h.score.to_bits())
                .collect();
            assert_eq!(bits, want);
        }
    }

    /// The rule hands over when many blocks still pass, not when few do; never for a
    /// segment over [`MAX_TAAT_DOCS`].
    #[test]
    fn switch_rule_compares_costs() {
        let df = vec![1000u32; 10];
        let q = SparseVector::from_pairs(vec![(1, 1.0), (2, 1.0), (3, 1.0)]).unwrap();
        let rule = SwitchRule::new(1000, &df, q.view()).unwrap();
        // Term at a time: 3,000 postings + 1,000 documents, about 3.25 µs.
        assert!(rule.abandon(30, 64.0));
        assert!(!rule.abandon(2, 64.0));
        assert!(SwitchRule::new(MAX_TAAT_DOCS + 1, &df, q.view()).is_none());
    }
}
