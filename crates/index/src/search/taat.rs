//! Exact top-k term at a time, for small segments and dense queries.
//!
//! Block-max pruning pays off when the block bounds let it skip most blocks. On a small
//! collection of long documents queried by long queries (SciFact: 5k abstracts of ~290
//! terms, queries of ~50 terms) nearly every block's bound passes, and visiting blocks one
//! at a time through the (term, block) indirection costs more than simply adding up every
//! posting of every query term. This path does that:
//!
//! 1. A term-major copy of the segment's postings ([`TermPostings`]: per term, its
//!    (block position, weight) pairs in ascending position) is made once, on the first
//!    search that uses it, from the block arrays (`O(nnz)`; 8 bytes per posting, in memory
//!    only: nothing on disk changes). The most frequent terms also get a dense column
//!    (their weight at every position, 0 elsewhere; at most twice the postings' bytes).
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

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use splade_sparse::SparseView;

use crate::segment::BlockArrays;
use crate::topk::TopK;

/// The postings of a segment by term: per term, its (block position, weight) pairs in
/// ascending block position.
#[derive(Debug)]
pub(crate) struct TermPostings {
    /// Per term `t`, its postings are `postings[offsets[t]..offsets[t + 1]]`.
    offsets: Vec<usize>,
    postings: Vec<Posting>,
    /// One more than the largest position (0 without postings): an accumulator this long
    /// takes every posting without a bounds check.
    span: usize,
    /// Per term, its dense column (see [`DenseColumns`]), if it has one.
    dense: DenseColumns,
}

/// Frequent terms as dense columns: per column, the term's weight at every block position
/// (0 where the term is absent), `span` values. Adding a whole column into the accumulator
/// is a vectorised streaming pass, far cheaper per document than a scattered add per
/// posting once the term occurs in more than about one document in [`DENSE_MIN_DF_DIVISOR`].
/// Adding the `+0.0` products of absent documents leaves their sums unchanged, so the
/// scores stay bit-identical.
#[derive(Debug, Default)]
struct DenseColumns {
    /// Per term, its column number, or `u32::MAX`.
    column_of: Vec<u32>,
    /// The columns, `span` values each, one after the other.
    values: Vec<f32>,
}

/// A term gets a dense column when it occurs in at least `span / DENSE_MIN_DF_DIVISOR`
/// positions. A column reads 4 bytes a document where the postings read 8 a posting, so
/// below about half the documents it reads more bytes, but as one vectorised stream instead
/// of scattered adds; on SciFact (full passes over the 1,109 queries, alternating runs)
/// 1/4 was faster than both 1/8 and 1/2 (BENCHMARKS.md).
const DENSE_MIN_DF_DIVISOR: usize = 4;
/// The dense columns hold at most this many times the bytes of the postings copy (the
/// most frequent terms first).
const DENSE_MAX_BYTES_PER_POSTING_BYTE: usize = 2;

/// One posting: the block position of a document and its weight for the term.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct Posting {
    position: u32,
    weight: f32,
}

impl TermPostings {
    /// The term-major copy of the block arrays: per term, its blocks in ascending order and,
    /// within a block, its entries in ascending slot, i.e. ascending block position.
    pub(crate) fn build(a: &BlockArrays<'_>) -> Self {
        let dim = a.bound_offsets.len().saturating_sub(1);
        let mut offsets = Vec::with_capacity(dim + 1);
        let mut postings = Vec::with_capacity(a.entry_values.len());
        offsets.push(0);
        for t in 0..dim {
            let (start, end) = (a.bound_offsets[t] as usize, a.bound_offsets[t + 1] as usize);
            for (&block, &slot) in a.bound_blocks[start..end]
                .iter()
                .zip(&a.bound_slots[start..end])
            {
                let base = block as usize * a.block_size;
                let slot = slot as usize;
                let (s, e) = (
                    a.entry_offsets[slot] as usize,
                    a.entry_offsets[slot + 1] as usize,
                );
                for (&d, &w) in a.entry_docs[s..e].iter().zip(&a.entry_values[s..e]) {
                    postings.push(Posting {
                        position: (base + d as usize) as u32,
                        weight: w,
                    });
                }
            }
            offsets.push(postings.len());
        }
        let span = postings
            .iter()
            .map(|p| p.position as usize + 1)
            .max()
            .unwrap_or(0);
        let dense = DenseColumns::build(&offsets, &postings, span);
        Self {
            offsets,
            postings,
            span,
            dense,
        }
    }

    /// The dense column of term `t`, if it has one (`span` values).
    #[inline]
    fn column(&self, t: u32) -> Option<&[f32]> {
        let c = *self.dense.column_of.get(t as usize)?;
        (c != u32::MAX).then(|| {
            let start = c as usize * self.span;
            &self.dense.values[start..start + self.span]
        })
    }

    /// The postings of term `t` (empty when the term is out of range).
    #[inline]
    fn term(&self, t: u32) -> &[Posting] {
        let t = t as usize;
        match (self.offsets.get(t), self.offsets.get(t + 1)) {
            (Some(&s), Some(&e)) => &self.postings[s..e],
            _ => &[],
        }
    }

    /// Postings of the query's terms (`Σ df`).
    pub(crate) fn query_postings(&self, query: SparseView<'_>) -> usize {
        query.indices().iter().map(|&t| self.term(t).len()).sum()
    }
}

impl DenseColumns {
    /// Columns for the most frequent terms with at least `span / DENSE_MIN_DF_DIVISOR`
    /// postings, within the byte budget.
    fn build(offsets: &[usize], postings: &[Posting], span: usize) -> Self {
        let terms = offsets.len().saturating_sub(1);
        let min_df = (span / DENSE_MIN_DF_DIVISOR).max(1);
        let mut frequent: Vec<(usize, usize)> = (0..terms)
            .map(|t| (offsets[t + 1] - offsets[t], t))
            .filter(|&(df, _)| df >= min_df)
            .collect();
        frequent.sort_unstable_by(|a, b| b.cmp(a));
        let budget = DENSE_MAX_BYTES_PER_POSTING_BYTE * std::mem::size_of_val(postings);
        let per_column = span * std::mem::size_of::<f32>();
        let count = frequent.len().min(budget / per_column.max(1));
        if count == 0 {
            return Self::default();
        }
        let mut column_of = vec![u32::MAX; terms];
        let mut values = vec![0.0f32; count * span];
        for (c, &(_, t)) in frequent[..count].iter().enumerate() {
            column_of[t] = c as u32;
            let column = &mut values[c * span..(c + 1) * span];
            for p in &postings[offsets[t]..offsets[t + 1]] {
                column[p.position as usize] = p.weight;
            }
        }
        Self { column_of, values }
    }
}

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

/// A segment's term-major postings and per-term document frequencies, each made on
/// first use and shared by every search of the segment.
#[derive(Debug, Default)]
pub(crate) struct LazyTermPostings {
    postings: OnceLock<TermPostings>,
    df: OnceLock<Box<[u32]>>,
}

impl LazyTermPostings {
    /// The postings, built from `a` on first use.
    pub(crate) fn get(&self, a: &BlockArrays<'_>) -> &TermPostings {
        self.postings.get_or_init(|| TermPostings::build(a))
    }

    /// Per term, the documents it occurs in (4 bytes a term, from one pass over the block
    /// lists on first use; no term-major copy needed).
    pub(crate) fn df(&self, a: &BlockArrays<'_>) -> &[u32] {
        self.df.get_or_init(|| {
            let terms = a.bound_offsets.len().saturating_sub(1);
            (0..terms)
                .map(|t| {
                    let (s, e) = (a.bound_offsets[t] as usize, a.bound_offsets[t + 1] as usize);
                    a.bound_slots[s..e]
                        .iter()
                        .map(|&slot| {
                            let slot = slot as usize;
                            (a.entry_offsets[slot + 1] - a.entry_offsets[slot]) as u32
                        })
                        .sum()
                })
                .collect()
        })
    }
}

/// Largest segment (documents) that [`super::Traversal::Auto`] may search term at a
/// time: its accumulator (8 bytes a document) then stays within a typical L2 cache, and its
/// term-major copy within a few tens of MB.
pub(crate) const MAX_TAAT_DOCS: usize = 1 << 15;

/// Blocks that [`super::Traversal::Auto`] scores before it compares the two traversals.
const CHECK_AFTER: usize = 8;

/// Cost model of the two traversals, in nanoseconds, fitted on SciFact and the MS MARCO
/// subset on this project's 2-core machine (`traversal_costs` example): term at a time
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

/// What [`super::Traversal::Auto`] learned from a segment's recent searches. Probing
/// block-max pruning (its bound pass and first blocks) before handing over costs about as
/// much as the term-at-a-time search itself on a collection where it hands over every
/// time (SciFact), and the queries of one index tend to be alike. So once the last
/// [`TRUST`] probes in a row handed over, the searches go term at a time directly, except
/// one in [`PROBE_EVERY`], which probes again; a probe that finishes by block-max pruning
/// starts the count again. Only speed depends on this history, never a result.
#[derive(Debug, Default)]
pub(crate) struct TraversalMemory {
    /// Hand-overs in a row (capped at [`TRUST`]); written only by probes.
    handovers: AtomicU32,
}

/// Consecutive hand-overs after which [`TraversalMemory`] goes term at a time directly.
const TRUST: u32 = 4;
/// One search in this many probes block-max pruning even when trusted.
const PROBE_EVERY: u32 = 64;

impl TraversalMemory {
    /// Whether search number `n` of a searcher (counted per searcher, so that threads
    /// do not contend on a shared counter) should go term at a time without probing.
    pub(crate) fn skip_probe(&self, n: u32) -> bool {
        self.handovers.load(Ordering::Relaxed) >= TRUST && n % PROBE_EVERY != 0
    }

    /// Records how a probe ended: handed over to term at a time, or finished.
    pub(crate) fn record(&self, handed_over: bool) {
        if handed_over {
            let _ = self
                .handovers
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                    Some((h + 1).min(TRUST))
                });
        } else {
            self.handovers.store(0, Ordering::Relaxed);
        }
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
pub(crate) fn taat_segment(
    postings: &TermPostings,
    num_docs: usize,
    query: SparseView<'_>,
    acc: &mut Vec<f64>,
    top: &mut TopK,
    mut offer: impl FnMut(&mut TopK, u32, f32),
) {
    acc.clear();
    acc.resize(num_docs.max(postings.span), 0.0);
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
    let span = postings.span;
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
    use super::super::xorshift;
    use super::*;
    use crate::{IndexBuilder, Reorder};
    use splade_sparse::SparseVector;

    /// The term-major copy holds, per term, exactly the documents of the forward index
    /// that have it, with their weights, in ascending block position; the document
    /// frequencies agree.
    #[test]
    fn term_postings_invert_the_forward_index() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1du64);
        let dim = 50;
        let mut b = IndexBuilder::new(dim)
            .block_size(8)
            .reorder(Reorder::Clustered);
        let mut docs = Vec::new();
        for d in 0..300 {
            let mut pairs: Vec<(u32, f32)> = (0..next() % 12)
                .map(|_| ((next() % dim as u64) as u32, (next() % 100) as f32 / 10.0))
                .collect();
            pairs.sort_by_key(|p| p.0);
            pairs.dedup_by_key(|p| p.0);
            let v = SparseVector::from_pairs(pairs).unwrap();
            b.add(&format!("d{d}"), v.view()).unwrap();
            docs.push(v);
        }
        let index = b.build().unwrap();
        let [only] = index.slots() else { panic!() };
        let a = only.segment.blocks();
        let postings = TermPostings::build(&a);
        let lazy = LazyTermPostings::default();
        let df = lazy.df(&a);
        for t in 0..dim as u32 {
            let got: Vec<(u32, u32)> = postings
                .term(t)
                .iter()
                .map(|p| (a.doc_order[p.position as usize], p.weight.to_bits()))
                .collect();
            let positions: Vec<u32> = postings.term(t).iter().map(|p| p.position).collect();
            assert!(positions.windows(2).all(|w| w[0] < w[1]), "ascending");
            let mut want: Vec<(u32, u32)> = docs
                .iter()
                .enumerate()
                .filter_map(|(d, v)| {
                    let i = v.indices().binary_search(&t).ok()?;
                    Some((d as u32, v.values()[i].to_bits()))
                })
                .collect();
            let mut got_sorted = got.clone();
            got_sorted.sort();
            want.sort();
            assert_eq!(got_sorted, want, "term {t}");
            assert_eq!(df[t as usize] as usize, want.len());
        }
        assert!(postings.term(dim as u32).is_empty(), "out of range");
    }

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
        assert!(postings.span > 3 * CHUNK);
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

    /// Probes until [`TRUST`] hand-overs in a row, then direct except one search in
    /// [`PROBE_EVERY`]; a probe that finishes starts over.
    #[test]
    fn traversal_memory_trusts_consecutive_handovers_only() {
        let m = TraversalMemory::default();
        for n in 1..=TRUST {
            assert!(!m.skip_probe(n));
            m.record(true);
        }
        let skipped = (0..PROBE_EVERY).filter(|&n| m.skip_probe(n)).count();
        assert_eq!(skipped as u32, PROBE_EVERY - 1);
        m.record(false);
        assert!(!m.skip_probe(1));
        m.record(true);
        assert!(!m.skip_probe(1), "one hand-over is not enough again");
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
