//! Exact top-k term at a time, for dense queries: exactly on small segments
//! ([`taat_segment`]), by screening and exact rescoring on large ones ([`screen_segment`]).
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
//!    are bit-identical to the brute force, ties included. The documents are taken in
//!    chunks of [`CHUNK`], whose accumulators stay in L1: zeroed, every query term added in
//!    turn, then
//! 3. the chunk's documents reaching the current k-th score are offered, in document
//!    order, before the next chunk.
//!
//! Its cost is the postings of the query terms plus one pass over the segment's documents
//! in L1, whatever the scores; [`SwitchRule`] compares that with what block-max pruning would
//! still have to score.
//!
//! On a segment over [`MAX_TAAT_DOCS`] documents the columns no longer fit in cache, and a
//! collection with stopword-like terms (in almost every document) makes every query read
//! most of the segment once per such term; [`screen_segment`] then adds
//! approximate f32 scores (those terms as byte columns: one byte a document) and rescores
//! exactly only the documents that its error bound cannot exclude.

use splade_sparse::SparseView;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::segment::postings::{
    Posting, TermPostings, DENSE_MIN_DF_DIVISOR, SCREEN_MIN_DF_DIVISOR,
};
use crate::topk::TopK;

/// A kernel written once as a plain loop (`$plain`) and compiled three times: for AVX-512F,
/// for AVX2 and without either; `$name` calls the widest the CPU has (checked at run time).
macro_rules! widest_simd_kernel {
    ($(#[$doc:meta])* fn $name:ident / $plain:ident, $avx512:ident, $avx2:ident
        ($acc:ident: &mut [$a:ty], $col:ident: &[$c:ty], $q:ident: $qt:ty) $body:block) => {
        $(#[$doc])*
        pub(crate) fn $name($acc: &mut [$a], $col: &[$c], $q: $qt) {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F (checked just above).
                    return unsafe { $avx512($acc, $col, $q) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2 (checked just above).
                    return unsafe { $avx2($acc, $col, $q) };
                }
            }
            $plain($acc, $col, $q);
        }

        #[inline(always)]
        fn $plain($acc: &mut [$a], $col: &[$c], $q: $qt) $body

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        fn $avx512($acc: &mut [$a], $col: &[$c], $q: $qt) {
            $plain($acc, $col, $q);
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn $avx2($acc: &mut [$a], $col: &[$c], $q: $qt) {
            $plain($acc, $col, $q);
        }
    };
}

widest_simd_kernel! {
    /// `acc[i] += q * column[i]` in f64 over the common length: per element the same two
    /// roundings as a scattered add (the product of two f32 is exact in f64), vectorised with
    /// the widest instructions the CPU has.
    fn add_column / add_column_plain, add_column_avx512, add_column_avx2
    (acc: &mut [f64], column: &[f32], q: f64) {
        for (a, &w) in acc.iter_mut().zip(column) {
            *a += q * f64::from(w);
        }
    }
}

widest_simd_kernel! {
    /// `maxima[j]` becomes the largest of itself and the scores at places `j`, `j + m`,
    /// `j + 2m`, ... of `scores` (`m = maxima.len()`): the maxima of `m` disjoint sets of
    /// places, vectorised with the widest instructions the CPU has.
    fn strided_maxima / strided_maxima_plain, strided_maxima_avx512, strided_maxima_avx2
    (maxima: &mut [f64], scores: &[f64], _unused: ()) {
        for row in scores.chunks(maxima.len()) {
            for (m, &s) in maxima.iter_mut().zip(row) {
                *m = if s > *m { s } else { *m };
            }
        }
    }
}

/// Sets of places whose maxima [`chunk_floor`] takes.
const FLOOR_SETS: usize = 64;

/// A floor below which no score of `scores` can enter a top-`k` that every one of them is
/// offered to: the `k`-th largest (rounded to f32) of the maxima of [`FLOOR_SETS`] disjoint
/// sets of places, which `k` distinct documents reach. Documents below it need not be
/// offered: `k` others rank above them. 0 (no floor) where fewer than `k` of the maxima are
/// above `floor`, the floor the caller already has, or `k` is 0 or above [`FLOOR_SETS`].
fn chunk_floor(scores: &[f64], k: usize, floor: f32) -> f32 {
    if k == 0 || k > FLOOR_SETS {
        return 0.0;
    }
    let mut maxima = [0.0f64; FLOOR_SETS];
    strided_maxima(&mut maxima, scores, ());
    let mut reaching = [0.0f32; FLOOR_SETS];
    let mut n = 0;
    for &m in &maxima {
        let m = m as f32;
        reaching[n] = m;
        n += usize::from(m > floor);
    }
    if n < k {
        return 0.0;
    }
    let reaching = &mut reaching[..n];
    *reaching
        .select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a))
        .1
}

/// Largest segment (documents) searched term at a time with exact f64 accumulators
/// ([`taat_segment`]). Larger segments are searched term at a time by screening
/// ([`screen_segment`]), whose columns take a byte a document instead of four. (The limit
/// was set when the accumulator spanned the whole segment, 8 bytes a document: then it
/// stayed within a typical L2 cache. Since session 26 both searches keep only one chunk
/// of accumulators, and screening still wins above it: with the limit at 2^18, exact term
/// at a time took 2.1-2.3x the screening's time on the WordNet glosses (117,659 documents)
/// and 2.9-3.6x on the topical 200k, per query best of 5 summed.)
pub(crate) const MAX_TAAT_DOCS: usize = 1 << 15;

/// Blocks that [`super::Traversal::Auto`] scores before it compares the two traversals.
pub(crate) const CHECK_AFTER: usize = 8;

/// Runs of consecutive blocks a sampled probe takes ([`SwitchRule::sample_first`]), one at
/// the start of each equal part of the segment: a clustered layout keeps a cluster's blocks
/// together, so a run holds whole clusters.
pub(crate) const SAMPLE_RUNS: usize = 4;
/// A sampled probe's runs are this many times shorter than the parts they start.
pub(crate) const SAMPLE_EVERY: usize = 8;

/// Cost model of the screening search of large segments ([`screen_segment`]), in ns, fitted
/// on the flat synthetic 1M collection (`scripts/bench/make_synthetic.py --profile flat`) on
/// this project's 2-core machine: per scattered posting (a term without a byte column), per
/// document of a byte column, and per document of the segment (the candidate pass). Since
/// each chunk's candidates are found right after its scores are added (session 26), the
/// pass runs in L1 and screening got about 0.45 ns a document cheaper on the flat 1M and on
/// Quora, but the per-document cost stays: cut to 0.05, the rule handed Quora's long
/// queries over more often, and Quora's searches took 3-8 % longer in sum (per query best
/// of 5, `traversal_costs`); its scattered postings cost more than the 1.0 ns fitted here
/// (BENCHMARKS.md, "Session 26").
const SCREEN_NS_PER_POSTING: f64 = 1.0;
const SCREEN_NS_PER_COLUMN_DOC: f64 = 0.12;
const SCREEN_NS_PER_DOC: f64 = 0.5;
/// How much cheaper screening must look before a large segment is handed over: the blocks
/// still passing the stopping rule after [`CHECK_AFTER`] are an upper bound on what block-max
/// goes on to score (the k-th score keeps rising), loose on clustered collections. On the
/// topical synthetic 200k collection a factor of 1 handed a quarter of the queries over and
/// lost 17 % of the exact QPS to block-max alone; on the flat 1M collection block-max scores
/// nearly every block and screening wins by far more than this factor.
const SCREEN_HANDOVER_MARGIN: f64 = 4.0;

/// Cost model of block-max scoring, in nanoseconds, fitted on SciFact and the MS MARCO
/// subset on this project's 2-core machine (`traversal_costs` bench), for the hand-over
/// ([`SwitchRule::abandon`]): per entry of a scored block and per scored block.
const BLOCK_NS_PER_ENTRY: f64 = 1.5;
const BLOCK_NS_PER_BLOCK: f64 = 100.0;

/// Cost model of the exact term-at-a-time search ([`taat_segment`]) and of the probe (the
/// first [`CHECK_AFTER`] blocks of block-max pruning), in nanoseconds. Fitted on the seven
/// small collections of BENCHMARKS.md (SciFact, the MS MARCO and DBpedia subsets,
/// Climate-FEVER, CACM, CISI, Cranfield: 1,400-5,240 documents; every query; `traversal_costs`
/// bench, best of 5) on this project's 2-core machine, median error 4 % (term at a time) and
/// 13 % (probe). Term at a time costs per posting of a term without a dense column, per
/// document of a dense column (see `segment::postings`), and per document (zeroing and the
/// final pass). A probe costs per query term and scored block (each a few dependent, mostly
/// missing loads), and per entry scored.
const TAAT_NS_PER_POSTING: f64 = 0.85;
const TAAT_NS_PER_DENSE_DOC: f64 = 0.13;
const TAAT_NS_PER_DOC: f64 = 0.67;
const PROBE_NS_PER_TERM_BLOCK: f64 = 27.0;
const PROBE_NS_PER_ENTRY: f64 = 2.3;
/// A segment goes term at a time without a probe when that is modelled to cost at most this
/// many probes: block-max pruning costs about its probe at least, so in the model doing so
/// loses at most this factor on the rare query where the blocks after the probe would all
/// have been pruned (or where block-max, with α < 1, would have stopped sooner), and saves
/// the probe on every query where they are not. With 2, on the seven small collections (model
/// figures), every query of CISI, CACM and Cranfield, 97 % of SciFact's and 94 % of
/// Climate-FEVER's go directly; on the MS MARCO subset, where block-max often finishes, half
/// (8.4 µs a query against 7.9 µs with every probe, and 9.8 µs term at a time). Measured
/// (`search_only`, alternating runs): approximate search 2.0-3.3x faster on those five and
/// 1.3x on DBpedia, now as fast as exact; on MS MARCO within the noise (-5 to -8 %).
const DIRECT_MARGIN: f64 = 2.0;

/// Query postings a document (the query terms' document frequencies summed, over the
/// segment's documents) from which a large segment's probe is first made on a sample of its
/// blocks ([`SwitchRule::sample_first`]). On the flat 1M collection of BENCHMARKS.md every
/// query has 6.2-19.8 and block-max pruning loses to term at a time on all but 3 of 1,000; on
/// the topical 1M (0.04-2.52) and the Quora questions (0.10-3.01) it wins on 991 and 847 of
/// 1,000. The 5,000 MS MARCO passages of `../shared/data` encoded with splade-tiny give 1,000
/// MS MARCO train queries p10 0.85, p50 1.56, p90 2.57 and at most 3.73 (the DL19 queries at
/// most 4.86).
/// The threshold only decides where the cheaper measurement is tried first: the hand-over
/// is still decided by what the sample's blocks show ([`SwitchRule::abandon_sampled`]).
/// Only the terms that carry the query's possible score count ([`SAMPLE_LIGHT_SHARE`]).
const SAMPLE_MIN_POSTINGS_PER_DOC: f64 = 3.0;
/// The share of a query's largest possible score (`Σ |q_t| * scale_t`: each term's weight
/// times its bound unit, `bound_scales`, of which a block's maximum is 0 to 255 times) that
/// its lightest terms may hold at most and still be left out of
/// [`SAMPLE_MIN_POSTINGS_PER_DOC`]'s count: a light term common to many documents (a
/// stopword-like expansion of low weight, as SPLADE queries hold) adds postings a document,
/// but little to any block's bound, so it says nothing about whether bounds prune. On the
/// topical 1M collection of BENCHMARKS.md with 8 such terms added to each query (at half its
/// lightest weight; "Session 38"), 807 of 1,000 queries reached 3 postings a document, every
/// sample kept block-max, and the samples cost exact search 16 % and approximate search
/// 18-19 % of its QPS; with the light terms left out (up to 5, 10 or 20 % of the score) none
/// is sampled, while every flat 1M query still is (its weights are flat), and of the long
/// topical collection's 646 sampled queries 295 still are at 10 % (the sample cost
/// approximate search there about 7 %).
const SAMPLE_LIGHT_SHARE: f64 = 0.1;
/// How much more than the first check's bar ([`SwitchRule::abandon`]) the blocks a sampled
/// probe estimates are still to score must be expected to cost before it hands over: the
/// sample's k-th score, found in fewer and lesser blocks, is below the whole segment's, so
/// its estimate errs high. Measured with every query of a large segment sampled (no postings
/// threshold) and then probed in full, as estimated cost over that bar (`search_only`, exact
/// and α 0.9 β 0.8): the flat 1M 1.32-2.74 (the full probe 0.86-2.74; 2,041 of its 2,043
/// probes handed over, 2,039 of them also by the sample at this margin); the topical 1M at
/// most 1.34 (the full probe at most 0.79) and the Quora questions at most 0.87 (0.71): at this
/// margin no probe that the full one keeps is handed over. (Those are clustered and random
/// layouts; a layout sorted by heaviest term, `Reorder::HeaviestTerms`, was not measured: the
/// sample's four runs see four ranges of heaviest terms there. Hits are right either way.)
const SAMPLE_MARGIN: f64 = 1.5;

/// Blocks scored before the second, late comparison of the two traversals
/// ([`SwitchRule::abandon_late`]).
const LATE_CHECK_AFTER: usize = 128;
/// How much more the blocks still passing must be expected to cost than term at a time
/// before the late check hands over (the cost of the blocks scored so far is lost).
const LATE_MARGIN: f64 = 1.5;

/// When [`super::Traversal::Auto`] hands a segment over from block-max pruning to term at a
/// time. Whether block bounds prune is known only once a few blocks are scored and the
/// k-th score has risen: after [`CHECK_AFTER`] blocks, the blocks whose bound still passes
/// the stopping rule are an upper bound on what is left to score. When scoring them (at
/// the entries per block seen so far) is expected to cost more than adding up every
/// posting of the query's terms, the blocks scored so far are dropped and the segment is
/// searched term at a time. For an exact search the result is the same either way, only the
/// time differs; an approximate one gets the exact hits of the segment when it hands over
/// (still a choice made by the query and the segment alone).
///
/// That first check is loose by design (the k-th score is still low after a few blocks, so
/// most blocks still pass), and errs towards block-max. A second one after
/// [`LATE_CHECK_AFTER`] blocks, when the k-th score is near its final value, catches the
/// queries that go on to score thousands of blocks: long queries, where a block costs about
/// [`PROBE_NS_PER_TERM_BLOCK`] per query term ([`Self::abandon_late`]). On the Quora
/// questions of BENCHMARKS.md (537k, one segment) 2-4 % of the queries scored over 1,000
/// blocks each, 1.7-3.7 ms, where the screening search takes about 1 ms.
///
/// On a segment of at most [`MAX_TAAT_DOCS`] documents where term at a time costs at most
/// [`DIRECT_MARGIN`] probes ([`Self::direct`]), there is no probe: the segment goes term at a
/// time directly. That choice depends on the query and the segment alone (its document
/// frequencies and block count), so an approximate search makes it too.
///
/// On a larger segment where the query has many postings a document, the first check is
/// first made on a sample of the blocks ([`Self::sample_first`], [`Self::abandon_sampled`]):
/// where it hands over, the full bound pass is never made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SwitchRule {
    /// Expected cost of the term-at-a-time search of the segment, in ns, as the first check
    /// weighs it (on large segments, times [`SCREEN_HANDOVER_MARGIN`]).
    taat_ns: f64,
    /// Expected cost of the term-at-a-time search of the segment, in ns.
    cost_ns: f64,
    /// Query terms present in the segment.
    terms: usize,
    /// Whether to go term at a time without a probe.
    direct: bool,
    /// Whether to probe a sample of the blocks first (see [`Self::sample_first`]).
    sample: bool,
}

impl SwitchRule {
    /// The rule for `query` on a segment of `num_docs` documents in `num_blocks` blocks whose
    /// terms occur in `df` documents each: exact term at a time up to [`MAX_TAAT_DOCS`]
    /// documents, screening beyond (a term in at least `1 / SCREEN_MIN_DF_DIVISOR` of the
    /// documents is costed as a byte column, as [`screen_segment`] reads it).
    /// `scales` holds each term's bound unit (`bound_scales`), which weighs the terms for
    /// [`Self::sample_first`].
    pub(crate) fn new(
        num_docs: usize,
        num_blocks: usize,
        df: &[u32],
        scales: &[f32],
        query: SparseView<'_>,
    ) -> Option<Self> {
        let large = num_docs > MAX_TAAT_DOCS;
        // A term costs its postings, or a pass over a column.
        let (column_df, posting_ns, column_ns, doc_ns) = if large {
            (
                num_docs / SCREEN_MIN_DF_DIVISOR,
                SCREEN_NS_PER_POSTING,
                SCREEN_NS_PER_COLUMN_DOC,
                SCREEN_NS_PER_DOC,
            )
        } else {
            (
                num_docs / DENSE_MIN_DF_DIVISOR,
                TAAT_NS_PER_POSTING,
                TAAT_NS_PER_DENSE_DOC,
                TAAT_NS_PER_DOC,
            )
        };
        let column_df = column_df.max(1) as u64;
        let (mut terms, mut postings, mut terms_ns) = (0usize, 0u64, 0.0);
        for n in query
            .indices()
            .iter()
            .filter_map(|&t| df.get(t as usize).map(|&n| u64::from(n)))
            .filter(|&n| n > 0)
        {
            terms += 1;
            postings += n;
            terms_ns += if n >= column_df {
                column_ns * num_docs as f64
            } else {
                posting_ns * n as f64
            };
        }
        let cost_ns = terms_ns + doc_ns * num_docs as f64;
        let direct = !large && {
            let entries_per_block = postings as f64 / num_blocks.max(1) as f64;
            let probe_ns =
                CHECK_AFTER.min(num_blocks) as f64 * Self::block_ns(terms, entries_per_block);
            cost_ns <= DIRECT_MARGIN * probe_ns
        };
        let min_postings = SAMPLE_MIN_POSTINGS_PER_DOC * num_docs as f64;
        let sample = large
            && num_blocks >= SAMPLE_RUNS * SAMPLE_EVERY
            && postings as f64 >= min_postings
            && carrying_postings(df, scales, query) as f64 >= min_postings;
        Some(Self {
            sample,
            taat_ns: if large {
                SCREEN_HANDOVER_MARGIN * cost_ns
            } else {
                cost_ns
            },
            cost_ns,
            terms,
            direct,
        })
    }

    /// Expected cost of scoring a block, in ns, for `terms` query terms and
    /// `entries_per_block` entries (the probe's model).
    fn block_ns(terms: usize, entries_per_block: f64) -> f64 {
        PROBE_NS_PER_TERM_BLOCK * terms as f64 + PROBE_NS_PER_ENTRY * entries_per_block
    }

    /// Whether the segment goes term at a time without a probe (see the type's documentation).
    pub(crate) fn direct(&self) -> bool {
        self.direct
    }

    /// Whether a large segment's probe is first made on a sample of its blocks
    /// ([`SAMPLE_RUNS`] runs of consecutive blocks, one block in [`SAMPLE_EVERY`] in all):
    /// where the query's terms that carry its score (all but the lightest, see
    /// [`SAMPLE_LIGHT_SHARE`]) have at least [`SAMPLE_MIN_POSTINGS_PER_DOC`] postings a
    /// document, on a segment of over [`MAX_TAAT_DOCS`] documents and at least
    /// `SAMPLE_RUNS * SAMPLE_EVERY` blocks. The full probe's bound pass adds every query
    /// term's block maxima before its first check (on the flat 1M collection hundreds of
    /// thousands of scattered adds a query, about a fifth of an approximate search); the
    /// sample's adds an eighth of them. A choice made from the query and the segment alone,
    /// so an approximate search makes it too.
    pub(crate) fn sample_first(&self) -> bool {
        self.sample
    }

    /// Whether a probe made on a sample of the blocks hands over: when the blocks still
    /// passing the stopping rule in the whole segment, `remaining` (the sample's count
    /// scaled to the segment), at `entries_per_block` entries each, are expected to cost
    /// more than [`SAMPLE_MARGIN`] times what [`Self::abandon`] weighs term at a time at.
    pub(crate) fn abandon_sampled(&self, remaining: f64, entries_per_block: f64) -> bool {
        remaining * (BLOCK_NS_PER_ENTRY * entries_per_block + BLOCK_NS_PER_BLOCK)
            > SAMPLE_MARGIN * self.taat_ns
    }

    /// Whether the traversals are compared once `scored` blocks are scored (after
    /// [`CHECK_AFTER`] and after [`LATE_CHECK_AFTER`]).
    pub(crate) fn checks_at(&self, scored: usize) -> bool {
        scored == CHECK_AFTER || scored == LATE_CHECK_AFTER
    }

    /// Whether to hand over at the check after `scored` blocks (see [`Self::checks_at`]):
    /// [`Self::abandon`] at the first, [`Self::abandon_late`] at the late one.
    pub(crate) fn hand_over(
        &self,
        scored: usize,
        remaining: usize,
        entries_per_block: f64,
    ) -> bool {
        if scored == CHECK_AFTER {
            self.abandon(remaining, entries_per_block)
        } else {
            self.abandon_late(remaining, entries_per_block)
        }
    }

    /// Whether to hand over, with `remaining` blocks still passing the stopping rule and
    /// `entries_per_block` entries per block scored so far.
    pub(crate) fn abandon(&self, remaining: usize, entries_per_block: f64) -> bool {
        let block_ns =
            remaining as f64 * (BLOCK_NS_PER_ENTRY * entries_per_block + BLOCK_NS_PER_BLOCK);
        block_ns > self.taat_ns
    }

    /// Whether to hand over at the late check, with `remaining` blocks still passing the
    /// stopping rule and `entries_per_block` entries per block scored so far: when they are
    /// expected to cost more than [`LATE_MARGIN`] term-at-a-time searches.
    pub(crate) fn abandon_late(&self, remaining: usize, entries_per_block: f64) -> bool {
        remaining as f64 * Self::block_ns(self.terms, entries_per_block)
            > LATE_MARGIN * self.cost_ns
    }
}

/// The postings (document frequencies summed) of `query`'s terms present in the segment,
/// less those of its lightest terms: taken lightest first by `|q_t| * scales[t]` (a term
/// past `scales` weighs nothing), as long as together they hold at most
/// [`SAMPLE_LIGHT_SHARE`] of the sum over all of them (none when a weight is NaN).
// Reached only by queries of many postings a document: kept out of the caller's code.
#[inline(never)]
fn carrying_postings(df: &[u32], scales: &[f32], query: SparseView<'_>) -> u64 {
    let mut terms: Vec<(f64, u64)> = query
        .iter()
        .filter_map(|(t, q)| {
            let n = u64::from(*df.get(t as usize)?);
            let scale = scales.get(t as usize).copied().unwrap_or(0.0);
            (n > 0).then_some((f64::from(q.abs()) * f64::from(scale), n))
        })
        .collect();
    // Lightest first; of two as light, the one in more documents is left out first.
    terms.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    let total: f64 = terms.iter().map(|&(c, _)| c).sum();
    let light = SAMPLE_LIGHT_SHARE * total;
    let mut held = 0.0;
    let mut postings = 0;
    for &(c, n) in &terms {
        held += c;
        if held > light {
            postings += n;
        }
    }
    postings
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
/// k-th score of `top` (a top-`k`; `offer` returns whether it passed the document on, false
/// for a deleted one). The first chunk, and any chunk met while nothing scored, is first
/// given a floor of its own ([`chunk_floor`]): `k` of its documents reach it, so none below
/// it can enter, and most of the documents that would have entered only while the top-k
/// filled are never offered. (Where fewer than `k` of the documents offered from it were
/// taken, some it counted on are deleted: the chunk's documents below it are then offered
/// as well.) Forced term at a time ran at 1.08-1.32x the QPS on the seven small collections
/// of BENCHMARKS.md ("Session 28").
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
    k: usize,
    mut offer: impl FnMut(&mut TopK, u32, f32) -> bool,
) {
    // One chunk of accumulators, reused for every chunk of documents (each zeroed when
    // its chunk starts).
    if acc.len() < CHUNK {
        acc.resize(CHUNK, 0.0);
    }
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
    // The documents are taken a chunk at a time, the chunk's accumulators staying in L1:
    // zeroed, every term added in turn (per document the additions still come in ascending
    // term order), then the documents reaching the k-th score as it stands when each is
    // reached are offered, in document order, found by a vectorised scan (most documents
    // reach it only while the top-k fills). No pass over the whole segment's scores:
    // documents past the last posting (`span`) score 0 and are never offered.
    let span = postings.span();
    let mut floor = top.floor();
    let scan = Scan::widest();
    let mut lo = 0;
    while lo < span {
        let hi = (lo + CHUNK).min(span);
        let acc = &mut acc[..hi - lo];
        acc.fill(0.0);
        for (q, source) in &mut terms {
            match source {
                Source::Dense(column) => add_column(acc, &column[lo..hi], *q),
                Source::Sparse(list) => {
                    // The chunk's accumulators addressed by position (one add a posting
                    // fewer than subtracting `lo` from each).
                    let base = acc.as_mut_ptr().wrapping_sub(lo);
                    // SAFETY: the postings before this chunk were taken by the chunks before
                    // it, so the positions below `hi` are at least `lo` (every position is
                    // below `postings.span`, computed from the postings themselves, which
                    // nothing modifies after `build`), and `acc.len() == hi - lo`: the place
                    // of each posting added is inside `acc`. A term's positions ascend, so
                    // they are distinct, and they are below `span <= MAX_TAAT_DOCS < 2^31`.
                    let taken = unsafe { add_postings_below(base, list, *q, hi, scan) };
                    *list = &list[taken..];
                }
            }
        }
        let scores = &acc[..hi.min(num_docs).saturating_sub(lo)];
        // Later chunks keep the floor the top-k has by then (a floor a chunk took 2-5 %
        // more time than it saved there).
        let own = if lo == 0 || floor <= 0.0 {
            chunk_floor(scores, k, floor)
        } else {
            0.0
        };
        floor = floor.max(own);
        // Documents offered from the floor that `offer` took (not deleted).
        let mut taken = 0;
        let mut at = 0;
        loop {
            at += next_reaching(&scores[at..], floor);
            let Some(&s) = scores.get(at) else {
                break;
            };
            taken += usize::from(offer(top, (lo + at) as u32, s as f32));
            floor = top.floor().max(floor);
            at += 1;
        }
        if taken < k && top.floor() < own {
            // Some of the `k` documents the chunk's floor counted on are deleted, so it may
            // be above the k-th score: the documents below it are offered too (those at or
            // above it were). (Without deletions, all `k` were taken; and once the top-k's
            // own floor reaches the chunk's, no document below it can enter.)
            for (at, &s) in scores.iter().enumerate() {
                let s = s as f32;
                if s > 0.0 && s < own && s >= top.floor() {
                    offer(top, (lo + at) as u32, s);
                }
            }
            floor = top.floor();
        }
        lo = hi;
    }
}

/// Adds `q * weight` (in f64, the product rounded, then the sum: the two roundings of
/// `*a += q * f64::from(weight)`) to the accumulator of the position of every posting of the
/// prefix of `postings` whose positions are below `hi`, `base` being the accumulator of
/// position 0, and returns the length of that prefix. Without AVX-512 the prefix is found
/// by a binary search, then its postings are added one at a time, or four at a time with
/// AVX2 (the accumulators gathered and added to together); with AVX-512, eight postings at a
/// time are tested against `hi` and added (the accumulators gathered, added to, scattered
/// back) until a group reaches `hi`. The result is the same, since the positions are
/// distinct. On Climate-FEVER, the MS MARCO subset, DBpedia-Entity and SciFact, term at a time
/// took 10-14 % less time per query with the eight-wide loop after the binary search, and 4-11
/// % less again without the search; the AVX2 loop 6-9 % less than one at a time (best of 5
/// summed, the kernels alternating in one process, on an AVX-512 Xeon).
///
/// # Safety
///
/// The positions of `postings` ascend and are below `2^31`; for every posting of the prefix,
/// `base.wrapping_add(position)` is a place of the caller's accumulators, no other reference
/// to which is alive.
#[inline(always)]
unsafe fn add_postings_below(
    base: *mut f64,
    postings: &[Posting],
    q: f64,
    hi: usize,
    scan: Scan,
) -> usize {
    match scan {
        // SAFETY: a `Scan::Avx512` is only made where the CPU has AVX-512F; the places are
        // the caller's (`hi` below 2^31 with the positions under it, or all of them).
        #[cfg(target_arch = "x86_64")]
        Scan::Avx512 => unsafe {
            add_postings_below_avx512(base, postings, q, hi.min(1 << 31) as u32)
        },
        #[cfg(target_arch = "x86_64")]
        Scan::Avx2 => {
            let prefix = prefix_below(postings, hi);
            // SAFETY: a `Scan::Avx2` is only made where the CPU has AVX2; the places of the
            // prefix are the caller's.
            unsafe { add_postings_avx2(base, prefix, q) };
            prefix.len()
        }
        Scan::Plain => {
            let prefix = prefix_below(postings, hi);
            // SAFETY: the places of the prefix are the caller's.
            unsafe { add_postings_plain(base, prefix, q) };
            prefix.len()
        }
    }
}

/// The postings of `postings` (positions ascending) whose positions are below `hi`: all of
/// them when the last is, else found by a binary search.
fn prefix_below(postings: &[Posting], hi: usize) -> &[Posting] {
    let taken = if postings.last().is_none_or(|p| (p.position as usize) < hi) {
        postings.len()
    } else {
        postings.partition_point(|p| (p.position as usize) < hi)
    };
    &postings[..taken]
}

/// Adds every posting of `postings` one at a time (see [`add_postings_below`]).
///
/// # Safety
///
/// For every posting, `base.wrapping_add(position)` is a place of the caller's accumulators,
/// no other reference to which is alive.
#[inline(always)]
unsafe fn add_postings_plain(base: *mut f64, postings: &[Posting], q: f64) {
    for p in postings {
        // SAFETY: the caller's place for this position.
        let a = unsafe { &mut *base.wrapping_add(p.position as usize) };
        *a += q * f64::from(p.weight);
    }
}

// The vector kernels read a posting as one little-endian u64: the position in its low half,
// the weight's bits in its high half.
const _: () = assert!(
    std::mem::size_of::<Posting>() == 8
        && std::mem::offset_of!(Posting, position) == 0
        && std::mem::offset_of!(Posting, weight) == 4,
    "a posting is its position, then its weight, in 8 bytes"
);

/// Adds every posting of `postings` (see [`add_postings_below`]) four at a time with AVX2: the
/// four accumulators gathered and added to together, then stored one by one (AVX2 has no
/// scatter).
///
/// # Safety
///
/// As [`add_postings_plain`], the positions distinct and below `2^31`, and the CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_postings_avx2(base: *mut f64, postings: &[Posting], q: f64) {
    use std::arch::x86_64::*;
    let qs = _mm256_set1_pd(q);
    // The four positions to the low half, the four weights' bits to the high half.
    let unzip = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    let mut groups = postings.chunks_exact(4);
    for group in &mut groups {
        let place = |i: usize| base.wrapping_add(group[i].position as usize);
        // SAFETY: four postings are 32 readable bytes; the gather and the stores touch the
        // places of the four positions (the indices are the positions, below 2^31, scaled by
        // the 8 bytes of an f64), which are the caller's.
        unsafe {
            let v = _mm256_permutevar8x32_epi32(_mm256_loadu_si256(group.as_ptr().cast()), unzip);
            let weights = _mm_castsi128_ps(_mm256_extracti128_si256::<1>(v));
            let acc = _mm256_i32gather_pd::<8>(base.cast_const(), _mm256_castsi256_si128(v));
            let sum = _mm256_add_pd(acc, _mm256_mul_pd(qs, _mm256_cvtps_pd(weights)));
            let (low, high) = (_mm256_castpd256_pd128(sum), _mm256_extractf128_pd::<1>(sum));
            _mm_storel_pd(place(0), low);
            _mm_storeh_pd(place(1), low);
            _mm_storel_pd(place(2), high);
            _mm_storeh_pd(place(3), high);
        }
    }
    // SAFETY: the caller's places.
    unsafe { add_postings_plain(base, groups.remainder(), q) };
}

/// [`add_postings_below`] eight postings at a time: while the next sixteen are all below
/// `hi`, both groups of eight are gathered before either is scattered back (a term's
/// positions are distinct, so neither group reads a place the other writes); then groups of
/// eight, each masked to its postings below `hi`, until one has a posting at or past it.
///
/// # Safety
///
/// As [`add_postings_below`], and the CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn add_postings_below_avx512(
    base: *mut f64,
    postings: &[Posting],
    q: f64,
    hi: u32,
) -> usize {
    use std::arch::x86_64::*;
    let q = _mm512_set1_pd(q);
    let (position_bits, hi) = (
        _mm512_set1_epi64(0xffff_ffff),
        _mm512_set1_epi64(i64::from(hi)),
    );
    // Which of eight postings are below `hi`.
    let below = |v: __m512i| _mm512_cmplt_epu64_mask(_mm512_and_si512(v, position_bits), hi);
    // Eight postings: their positions (as i32 indices) and their weights widened to f64.
    let split = |v: __m512i| {
        let weights = _mm256_castsi256_ps(_mm512_cvtepi64_epi32(_mm512_srli_epi64::<32>(v)));
        (_mm512_cvtepi64_epi32(v), _mm512_cvtps_pd(weights))
    };
    let (n, at) = (postings.len(), postings.as_ptr());
    let mut i = 0;
    // SAFETY: every load reads postings of the slice (16 from `i + 16 <= n`, the masked
    // lanes of the last group); every gather and scatter touches the places of positions
    // below `hi` only (the indices are the positions, below 2^31, scaled by the 8 bytes of
    // an f64), which are the caller's.
    unsafe {
        while i + 16 <= n {
            let (v0, v1) = (
                _mm512_loadu_si512(at.add(i).cast()),
                _mm512_loadu_si512(at.add(i + 8).cast()),
            );
            // The positions ascend: the sixteenth below `hi`, all are.
            if below(v1) != u8::MAX {
                break;
            }
            let ((p0, w0), (p1, w1)) = (split(v0), split(v1));
            let a0 = _mm512_i32gather_pd::<8>(p0, base.cast_const());
            let a1 = _mm512_i32gather_pd::<8>(p1, base.cast_const());
            let s0 = _mm512_add_pd(a0, _mm512_mul_pd(q, w0));
            let s1 = _mm512_add_pd(a1, _mm512_mul_pd(q, w1));
            _mm512_i32scatter_pd::<8>(base, p0, s0);
            _mm512_i32scatter_pd::<8>(base, p1, s1);
            i += 16;
        }
        while i < n {
            let lanes = u8::MAX >> (8 - (n - i).min(8));
            let v = _mm512_maskz_loadu_epi64(lanes, at.add(i).cast());
            let take = lanes & below(v);
            let (p, w) = split(v);
            let a = _mm512_mask_i32gather_pd::<8>(_mm512_setzero_pd(), take, p, base.cast_const());
            let sum = _mm512_add_pd(a, _mm512_mul_pd(q, w));
            _mm512_mask_i32scatter_pd::<8>(base, take, p, sum);
            i += take.count_ones() as usize;
            if take != lanes {
                break;
            }
        }
    }
    i
}

/// The first place of `scores` whose score, rounded to f32, is positive and at least
/// `floor` (`scores.len()` when none is), found with the widest vectors the CPU has.
fn next_reaching(scores: &[f64], floor: f32) -> usize {
    next_reaching_with(scores, floor, Scan::widest())
}

/// [`next_reaching`] with the instructions of `scan`.
#[inline(always)]
fn next_reaching_with(scores: &[f64], floor: f32, scan: Scan) -> usize {
    let reaches = move |s: f64| {
        let s = s as f32;
        (s > 0.0) & (s >= floor)
    };
    first_where::<f64, 16>(scores, reaches, scan)
}

/// The instructions a [`first_where`] scan runs with. A variant is only made where the CPU
/// has its instructions ([`Scan::widest`], and in the tests `Scan::available`).
#[derive(Debug, Clone, Copy)]
enum Scan {
    Plain,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Scan {
    /// The widest the CPU has (checked at run time).
    fn widest() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Scan::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Scan::Avx2;
            }
        }
        Scan::Plain
    }

    /// Every one the CPU has.
    #[cfg(test)]
    fn available() -> Vec<Self> {
        #[allow(unused_mut)]
        let mut scans = vec![Scan::Plain];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                scans.push(Scan::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                scans.push(Scan::Avx512);
            }
        }
        scans
    }
}

/// The first place of `values` where `test` holds (`values.len()` when it holds nowhere):
/// `LANES` values are tested together, without an early exit inside the group (one
/// vectorised test), and only the group that holds the place is looked at value by value.
#[inline(always)]
fn first_where<T: Copy, const LANES: usize>(
    values: &[T],
    test: impl Fn(T) -> bool + Copy,
    scan: Scan,
) -> usize {
    match scan {
        Scan::Plain => first_where_plain::<T, LANES>(values, test),
        // SAFETY: a `Scan::Avx2` is only made where the CPU has AVX2.
        #[cfg(target_arch = "x86_64")]
        Scan::Avx2 => unsafe { first_where_avx2::<T, LANES>(values, test) },
        // SAFETY: a `Scan::Avx512` is only made where the CPU has AVX-512F.
        #[cfg(target_arch = "x86_64")]
        Scan::Avx512 => unsafe { first_where_avx512::<T, LANES>(values, test) },
    }
}

#[inline(always)]
fn first_where_plain<T: Copy, const LANES: usize>(values: &[T], test: impl Fn(T) -> bool) -> usize {
    let mut base = 0;
    for group in values.chunks_exact(LANES) {
        if group.iter().fold(false, |any, &v| any | test(v)) {
            break;
        }
        base += LANES;
    }
    values[base..]
        .iter()
        .position(|&v| test(v))
        .map_or(values.len(), |i| base + i)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn first_where_avx512<T: Copy, const LANES: usize>(
    values: &[T],
    test: impl Fn(T) -> bool,
) -> usize {
    first_where_plain::<T, LANES>(values, test)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn first_where_avx2<T: Copy, const LANES: usize>(values: &[T], test: impl Fn(T) -> bool) -> usize {
    first_where_plain::<T, LANES>(values, test)
}

widest_simd_kernel! {
    /// `acc[i] += qs * codes[i]` in f32 over the common length (a byte column of the
    /// screening pass), vectorised with the widest instructions the CPU has.
    fn add_codes / add_codes_plain, add_codes_avx512, add_codes_avx2
    (acc: &mut [f32], codes: &[u8], qs: f32) {
        for (a, &c) in acc.iter_mut().zip(codes) {
            *a += qs * f32::from(c);
        }
    }
}

/// Sets `acc[i]` to `Σ qs * codes[lo + i]` over `columns` (each a byte column and its
/// `qs`), in f32: per document a sum that starts at `+0.0` and adds the columns' products in
/// their order (each product rounded, then the sum), the same on every kernel. The
/// vector kernels keep a strip of documents' sums in registers through all the columns (64
/// documents with AVX-512, 32 with AVX2) and store them once: one pass over the chunk
/// instead of a load and a store of every document's sum per column.
///
/// Every column must hold at least `lo + acc.len()` codes.
fn set_code_columns(acc: &mut [f32], columns: &[(&[u8], f32)], lo: usize, scan: Scan) {
    match scan {
        // SAFETY: a `Scan::Avx512` is only made where the CPU has AVX-512F.
        #[cfg(target_arch = "x86_64")]
        Scan::Avx512 => unsafe { set_code_columns_avx512(acc, columns, lo) },
        // SAFETY: a `Scan::Avx2` is only made where the CPU has AVX2.
        #[cfg(target_arch = "x86_64")]
        Scan::Avx2 => unsafe { set_code_columns_avx2(acc, columns, lo) },
        Scan::Plain => set_code_columns_plain(acc, columns, lo),
    }
}

/// [`set_code_columns`] one column after another over the whole of `acc`.
fn set_code_columns_plain(acc: &mut [f32], columns: &[(&[u8], f32)], lo: usize) {
    acc.fill(0.0);
    let n = acc.len();
    for &(codes, qs) in columns {
        for (a, &c) in acc.iter_mut().zip(&codes[lo..lo + n]) {
            *a += qs * f32::from(c);
        }
    }
}

/// [`set_code_columns`] 64 documents at a time in four AVX-512 registers (the rest of
/// `acc` by [`set_code_columns_plain`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn set_code_columns_avx512(acc: &mut [f32], columns: &[(&[u8], f32)], lo: usize) {
    use std::arch::x86_64::*;
    let done = acc.len() / 64 * 64;
    for (s, strip) in acc.chunks_exact_mut(64).enumerate() {
        let at = lo + s * 64;
        let mut sums = [_mm512_setzero_ps(); 4];
        for &(codes, qs) in columns {
            let codes = &codes[at..at + 64];
            let qs = _mm512_set1_ps(qs);
            for (j, sum) in sums.iter_mut().enumerate() {
                // SAFETY: 16 of the strip's 64 codes.
                let bytes = unsafe { _mm_loadu_si128(codes.as_ptr().add(16 * j).cast()) };
                let weights = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes));
                *sum = _mm512_add_ps(*sum, _mm512_mul_ps(qs, weights));
            }
        }
        for (j, sum) in sums.into_iter().enumerate() {
            // SAFETY: 16 of the strip's 64 places.
            unsafe { _mm512_storeu_ps(strip.as_mut_ptr().add(16 * j), sum) };
        }
    }
    set_code_columns_plain(&mut acc[done..], columns, lo + done);
}

/// [`set_code_columns`] 32 documents at a time in four AVX2 registers (the rest of `acc`
/// by [`set_code_columns_plain`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn set_code_columns_avx2(acc: &mut [f32], columns: &[(&[u8], f32)], lo: usize) {
    use std::arch::x86_64::*;
    let done = acc.len() / 32 * 32;
    for (s, strip) in acc.chunks_exact_mut(32).enumerate() {
        let at = lo + s * 32;
        let mut sums = [_mm256_setzero_ps(); 4];
        for &(codes, qs) in columns {
            let codes = &codes[at..at + 32];
            let qs = _mm256_set1_ps(qs);
            for (j, sum) in sums.iter_mut().enumerate() {
                // SAFETY: 8 of the strip's 32 codes.
                let bytes = unsafe { _mm_loadl_epi64(codes.as_ptr().add(8 * j).cast()) };
                let weights = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
                *sum = _mm256_add_ps(*sum, _mm256_mul_ps(qs, weights));
            }
        }
        for (j, sum) in sums.into_iter().enumerate() {
            // SAFETY: 8 of the strip's 32 places.
            unsafe { _mm256_storeu_ps(strip.as_mut_ptr().add(8 * j), sum) };
        }
    }
    set_code_columns_plain(&mut acc[done..], columns, lo + done);
}

/// Documents per accumulator chunk of [`screen_segment`] (16 KiB of f32).
const SCREEN_CHUNK: usize = 4096;

/// Reusable buffers of [`screen_segment`].
#[derive(Debug, Clone, Default)]
pub(crate) struct ScreenScratch {
    /// One chunk's approximate scores.
    acc: Vec<f32>,
    /// The documents that reached the cut as it stood when each was seen (block position,
    /// approximate score).
    candidates: Vec<(u32, f32)>,
    heap: BinaryHeap<Reverse<u32>>,
}

/// The exact top-k of a large segment, term at a time, in two passes:
///
/// 1. Screening: an approximate score per document in f32, a chunk of documents at a time
///    (the chunk's accumulators stay in L1), from the byte columns of the frequent
///    terms (`scale * code`, within `scale / 2` of each weight) and the f32 postings of the
///    others, in any order. With the query's weights and the documents' all `>= 0`, each
///    approximate score `a` and exact score `s` satisfy `(s - E)(1 - δ) <= a <=
///    (s + E)(1 + δ)`, where `E = Σ |q| scale / 2` over the byte-column terms (quantisation)
///    and `δ` bounds the relative f32 rounding of the products and sums (and of the exact
///    score's own rounding to f32) with a wide margin. The byte columns set a chunk's scores
///    in one pass, each strip of documents' sums kept in registers through all the columns
///    ([`set_code_columns`]), before the postings are added: the screening searches ran at
///    1.21x the QPS of adding one column at a time on the long documents of BENCHMARKS.md and
///    1.36x on the flat 1M (1.20x and 1.41x with AVX2).
/// 2. Rescoring: the k-th largest approximate score among live documents gives a lower
///    bound `θ` of the k-th exact score (k documents score at least `a_k / (1 + δ) - E`),
///    raised to the k-th score already in `top` (earlier segments). Every document that
///    may reach `θ` has `a >= (θ - E)(1 - δ)`: only those are rescored exactly by `rescore`
///    (the brute force's own dot product, so scores and ties are those of the brute force).
///
/// `doc_of` maps a block position to its local document number, or `None` when it is
/// deleted. Returns `false`, having offered nothing, when the bound cannot separate the
/// candidates (a negative query weight, or `θ <= E`): the caller then searches the
/// segment exactly term at a time ([`taat_segment`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn screen_segment(
    postings: &TermPostings,
    num_docs: usize,
    query: SparseView<'_>,
    scratch: &mut ScreenScratch,
    top: &mut TopK,
    k: usize,
    doc_of: impl Fn(u32) -> Option<u32>,
    mut rescore: impl FnMut(&mut TopK, u32),
) -> bool {
    if k == 0 || query.values().iter().any(|&q| q.is_nan() || q < 0.0) {
        return false;
    }
    let columns = postings.screen_columns();
    let mut error = 0.0f64;
    // The query's terms with a byte column (the codes and `q * scale`), and the others (the
    // postings not added yet, and `q`).
    let mut coded: Vec<(&[u8], f32)> = Vec::new();
    let mut sparse: Vec<(&[Posting], f32)> = Vec::new();
    for (t, q) in query.iter().filter(|&(_, q)| q > 0.0) {
        match columns.column(t) {
            Some((codes, scale)) => {
                // 0.501: the half step plus the rounding of `w / scale` (relative 2^-24 of
                // at most 255 steps).
                error += f64::from(q) * f64::from(scale) * 0.501;
                coded.push((codes, q * scale));
            }
            None => sparse.push((postings.term(t), q)),
        }
    }
    let delta = (query.nnz() as f64 + 8.0) * (2.0f64).powi(-21);
    let lower = |a: f32| f64::from(a) / (1.0 + delta) - error;
    // The smallest approximate score of a document that may reach `theta`, rounded down.
    let threshold = |theta: f64| {
        let cut = (theta - error) * (1.0 - delta);
        if cut <= 0.0 {
            return f32::NEG_INFINITY;
        }
        let t = cut as f32;
        if f64::from(t) > cut {
            // The next f32 below (t > 0 here).
            f32::from_bits(t.to_bits() - 1)
        } else {
            t
        }
    };

    // The documents are taken a chunk at a time, the chunk's accumulators staying in L1:
    // set from the byte columns in one pass, the other terms' postings added, then one
    // pass over the chunk keeps the k largest
    // approximate scores of live documents (a min-heap of their bits: non-negative floats
    // order as their bits) and every document that may still reach the bound as it stands
    // when the document is seen (the bound only rises), with its approximate score.
    // Documents past the last posting (`span`) score 0 and never reach the cut.
    let span = postings.span();
    let ScreenScratch {
        acc,
        candidates,
        heap,
    } = scratch;
    if acc.len() < SCREEN_CHUNK {
        acc.resize(SCREEN_CHUNK, 0.0);
    }
    heap.clear();
    candidates.clear();
    let floor = f64::from(top.floor());
    let mut cut = threshold(floor).max(f32::MIN_POSITIVE);
    let scan = Scan::widest();
    let mut lo = 0;
    while lo < span {
        let hi = (lo + SCREEN_CHUNK).min(span);
        let acc = &mut acc[..hi - lo];
        set_code_columns(acc, &coded, lo, scan);
        for (list, q) in &mut sparse {
            let mut taken = 0;
            let base = acc.as_mut_ptr().wrapping_sub(lo);
            for p in list.iter() {
                let position = p.position as usize;
                if position >= hi {
                    break;
                }
                // SAFETY: the postings before this chunk were taken by the chunks before
                // it, so `lo <= position < hi`, and `acc.len() == hi - lo`: the pointer is
                // inside `acc` (as in `taat_segment`).
                let a = unsafe { &mut *base.wrapping_add(position) };
                *a += *q * p.weight;
                taken += 1;
            }
            *list = &list[taken..];
        }
        let scores = &acc[..hi.min(num_docs).saturating_sub(lo)];
        let mut at = 0;
        loop {
            // The next document not below the cut (most are: a vectorised scan).
            at += next_not_below(&scores[at..], cut);
            let Some(&a) = scores.get(at) else {
                break;
            };
            let position = (lo + at) as u32;
            at += 1;
            let Some(_) = doc_of(position) else {
                continue;
            };
            candidates.push((position, a));
            if heap.len() < k {
                heap.push(Reverse(a.to_bits()));
            } else if let Some(mut min) = heap.peek_mut() {
                if a.to_bits() > min.0 {
                    *min = Reverse(a.to_bits());
                }
            }
            if heap.len() == k {
                let kth = f32::from_bits(heap.peek().map_or(0, |m| m.0));
                cut = cut.max(threshold(floor.max(lower(kth))));
            }
        }
        lo = hi;
    }
    let kth = if heap.len() == k {
        lower(f32::from_bits(heap.peek().map_or(0, |m| m.0)))
    } else {
        0.0
    };
    let theta = floor.max(kth);
    if theta - error <= 0.0 {
        // A document without any approximate score might still reach θ.
        return false;
    }
    let cut = threshold(theta);
    for &(position, a) in candidates.iter() {
        if a >= cut {
            if let Some(doc) = doc_of(position) {
                rescore(top, doc);
            }
        }
    }
    true
}

/// The first place of `scores` that is not below `cut` (`scores.len()` when every one
/// is), found with the widest vectors the CPU has.
fn next_not_below(scores: &[f32], cut: f32) -> usize {
    next_not_below_with(scores, cut, Scan::widest())
}

/// [`next_not_below`] with the instructions of `scan`.
#[inline(always)]
// `!(a < cut)`, not `a >= cut`: a NaN (which bounded weights cannot make) counts as not below.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn next_not_below_with(scores: &[f32], cut: f32, scan: Scan) -> usize {
    first_where::<f32, 32>(scores, move |a: f32| !(a < cut), scan)
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

    /// The strided maxima equal a plain loop's, for every length around the number of sets.
    #[test]
    fn strided_maxima_match_a_plain_loop() {
        let mut next = xorshift(0x9b05_688c_2b3e_6c1f_u64);
        for len in [0, 1, 63, 64, 65, 127, 128, 1000, 2048] {
            let scores: Vec<f64> = (0..len)
                .map(|_| (next() % 2001) as f64 / 1000.0 - 1.0)
                .collect();
            let mut got = [0.0f64; FLOOR_SETS];
            strided_maxima(&mut got, &scores, ());
            let mut want = [0.0f64; FLOOR_SETS];
            for (i, &s) in scores.iter().enumerate() {
                want[i % FLOOR_SETS] = want[i % FLOOR_SETS].max(s);
            }
            assert_eq!(got, want, "len {len}");
        }
    }

    /// A chunk's floor is reached by at least `k` of its scores (rounded to f32), and is
    /// the `k`-th largest of the sets' maxima above the old floor: 0 where fewer than `k`
    /// of them are above it, or `k` is 0 or more than the sets.
    #[test]
    fn a_chunk_floor_is_reached_by_k_scores() {
        let mut next = xorshift(0x1f83_d9ab_fb41_bd6b_u64);
        for len in [0, 5, 64, 100, 2048] {
            for _ in 0..20 {
                let scores: Vec<f64> = (0..len)
                    .map(|_| match next() % 6 {
                        0 => 0.0,
                        1 => -0.5,
                        // Below 0.5 in f64, 0.5 once rounded to f32.
                        2 => 0.5 - 1e-12,
                        _ => (next() % 1000) as f64 / 1000.0,
                    })
                    .collect();
                for k in [0, 1, 10, 64, 65] {
                    for old in [0.0f32, 0.3, 0.9] {
                        let got = chunk_floor(&scores, k, old);
                        let mut maxima = vec![0.0f32; FLOOR_SETS];
                        for (i, &s) in scores.iter().enumerate() {
                            maxima[i % FLOOR_SETS] = maxima[i % FLOOR_SETS].max(s as f32);
                        }
                        maxima.retain(|&m| m > old);
                        maxima.sort_by(|a, b| b.total_cmp(a));
                        let want = match k {
                            1..=FLOOR_SETS if maxima.len() >= k => maxima[k - 1],
                            _ => 0.0,
                        };
                        assert_eq!(got, want, "len {len}, k {k}, old floor {old}");
                        let reaching = scores.iter().filter(|&&s| s as f32 >= got).count();
                        assert!(got <= 0.0 || reaching >= k, "len {len}, k {k}");
                    }
                }
            }
        }
    }

    /// The vectorised scan finds the same first reaching score as a plain loop, on every
    /// kernel the CPU has: lengths around the group size, scores that round to zero or to
    /// the floor itself in f32, negative ones, and every floor from none to above all.
    #[test]
    fn next_reaching_matches_a_plain_scan() {
        let mut next = xorshift(0x05ee_d0f5_c0e5_u64);
        let reference = |scores: &[f64], floor: f32| {
            scores
                .iter()
                .position(|&s| s as f32 > 0.0 && s as f32 >= floor)
                .unwrap_or(scores.len())
        };
        let scans = Scan::available();
        for len in [0, 1, 15, 16, 17, 31, 32, 33, 70, 300] {
            for _ in 0..50 {
                let scores: Vec<f64> = (0..len)
                    .map(|_| match next() % 8 {
                        0 => 1e-50,
                        1 => -1.0,
                        2 => 0.0,
                        3 => 0.5,
                        // Just below 0.5 in f64, 0.5 once rounded to f32.
                        4 => 0.5 - 1e-12,
                        _ => (next() % 1000) as f64 / 2000.0,
                    })
                    .collect();
                for floor in [f32::NEG_INFINITY, 0.0, 0.25, 0.5, 0.4995, 1.0] {
                    let want = reference(&scores, floor);
                    assert_eq!(
                        next_reaching(&scores, floor),
                        want,
                        "len {len}, floor {floor}"
                    );
                    for &scan in &scans {
                        let got = next_reaching_with(&scores, floor, scan);
                        assert_eq!(got, want, "len {len}, floor {floor}, {scan:?}");
                    }
                }
            }
        }
    }

    /// Adding the postings of a term below a chunk's end gives the same accumulators, bit for
    /// bit, and takes the same postings on every kernel the CPU has as one at a time: every
    /// length around the vector steps (8 and 16), ends before, inside and past the postings
    /// (at every posting of the short lists), positions spread with gaps, weights and query
    /// weights whose products and sums round (and subnormal, zero and negative accumulators).
    #[test]
    fn add_postings_below_matches_one_at_a_time() {
        let mut next = xorshift(0x1234_5678_9abc_def1_u64);
        let scans = Scan::available();
        let places = 200usize;
        for len in (0..=40).chain([63, 64, 65, 127, 128, 129, 200]) {
            for round in 0..20 {
                // `len` distinct ascending positions among `places`.
                let mut positions: Vec<u32> = (0..places as u32).collect();
                for i in 0..len {
                    let j = i + (next() as usize) % (places - i);
                    positions.swap(i, j);
                }
                positions.truncate(len);
                positions.sort_unstable();
                let postings: Vec<Posting> = positions
                    .iter()
                    .map(|&position| Posting {
                        position,
                        weight: f32::from_bits(0x3c00_0000 + (next() % 0x0300_0000) as u32),
                    })
                    .collect();
                let q = f64::from(f32::from_bits(0x3d00_0000 + (next() % 0x0200_0000) as u32));
                let start: Vec<f64> = (0..places)
                    .map(|_| match next() % 6 {
                        0 => 0.0,
                        1 => 5e-324,
                        2 => -((next() % 1000) as f64) / 7.0,
                        _ => (next() % 100_000) as f64 / 3.0,
                    })
                    .collect();
                let ends: Vec<usize> = if len <= 20 && round == 0 {
                    (0..=places).collect()
                } else {
                    vec![0, 1, places, (next() as usize) % places]
                };
                for hi in ends {
                    let taken = positions.iter().take_while(|&&p| (p as usize) < hi).count();
                    let mut want = start.clone();
                    // SAFETY: every position is below `places`, distinct.
                    unsafe { add_postings_plain(want.as_mut_ptr(), &postings[..taken], q) };
                    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    for &scan in &scans {
                        let mut got = start.clone();
                        // SAFETY: as above.
                        let n =
                            unsafe { add_postings_below(got.as_mut_ptr(), &postings, q, hi, scan) };
                        assert_eq!(n, taken, "len {len}, hi {hi}, {scan:?}");
                        assert_eq!(bits(&got), bits(&want), "len {len}, hi {hi}, {scan:?}");
                    }
                }
            }
        }
    }

    /// The byte columns give every document the same sum, bit for bit, on every kernel the
    /// CPU has as one column after another: no column, one, several; every length around the
    /// strips (32 and 64 documents) at chunk starts inside the columns; codes 0 and 255, and
    /// products whose sums round.
    #[test]
    fn code_columns_set_the_same_sums_on_every_kernel() {
        let mut next = xorshift(0x0bad_cafe_f00d_d00d_u64);
        let scans = Scan::available();
        let places = 400usize;
        for count in 0..=5 {
            let columns: Vec<Vec<u8>> = (0..count)
                .map(|_| {
                    (0..places)
                        .map(|_| match next() % 8 {
                            0 => 0,
                            1 => 255,
                            _ => next() as u8,
                        })
                        .collect()
                })
                .collect();
            let qs: Vec<f32> = (0..count)
                .map(|_| f32::from_bits(0x3c00_0000 + (next() % 0x0300_0000) as u32))
                .collect();
            let columns: Vec<(&[u8], f32)> = columns
                .iter()
                .map(Vec::as_slice)
                .zip(qs.iter().copied())
                .collect();
            for len in (0..=70).chain([95, 96, 97, 127, 128, 129, 200, 256]) {
                for lo in [0, 1, 31, 64, 100, places - len] {
                    let mut want = vec![f32::NAN; len];
                    set_code_columns_plain(&mut want, &columns, lo);
                    for (i, w) in want.iter().enumerate() {
                        let mut sum = 0.0f32;
                        for &(codes, q) in &columns {
                            sum += q * f32::from(codes[lo + i]);
                        }
                        assert_eq!(w.to_bits(), sum.to_bits(), "plain, place {i}");
                    }
                    for &scan in &scans {
                        let mut got = vec![f32::NAN; len];
                        set_code_columns(&mut got, &columns, lo, scan);
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        assert_eq!(
                            bits(&got),
                            bits(&want),
                            "{count} columns, len {len}, lo {lo}, {scan:?}"
                        );
                    }
                }
            }
        }
    }

    /// The screening pass's scan finds the same first score not below the cut as a plain
    /// loop, on every kernel the CPU has.
    #[test]
    fn next_not_below_matches_a_plain_scan() {
        let mut next = xorshift(0x0bad_cafe_f00d_u64);
        let scans = Scan::available();
        for len in [0, 1, 31, 32, 33, 63, 64, 65, 100, 1000] {
            for _ in 0..50 {
                // Mostly below the cut, now and then at it or above.
                let scores: Vec<f32> = (0..len)
                    .map(|_| match next() % 64 {
                        0 => 0.75,
                        1 => 0.5,
                        _ => (next() % 1000) as f32 / 2000.0,
                    })
                    .collect();
                for cut in [f32::MIN_POSITIVE, 0.25, 0.4995, 0.5, 0.75, 2.0] {
                    let want = scores.iter().position(|&a| a >= cut).unwrap_or(len);
                    assert_eq!(next_not_below(&scores, cut), want, "len {len}, cut {cut}");
                    for &scan in &scans {
                        let got = next_not_below_with(&scores, cut, scan);
                        assert_eq!(got, want, "len {len}, cut {cut}, {scan:?}");
                    }
                }
            }
        }
    }

    /// Without a probe where term at a time costs at most [`DIRECT_MARGIN`] probes: a long
    /// query over a small segment; not for a short one over rare terms, nor over
    /// [`MAX_TAAT_DOCS`] documents.
    #[test]
    fn direct_where_term_at_a_time_costs_about_a_probe() {
        let long = SparseVector::from_pairs((0..40).map(|t| (t, 1.0)).collect()).unwrap();
        let short = SparseVector::from_pairs(vec![(1, 1.0), (2, 1.0)]).unwrap();
        // 2,000 documents in 63 blocks, every term in 600 (dense columns): term at a time
        // about 40 * 260 + 1,340 ns = 11.7 µs, a probe 8 * (40 * 27 + 2.3 * 381) = 15.6 µs.
        let frequent = vec![600u32; 100];
        let rule = SwitchRule::new(2000, 63, &frequent, &[], long.view()).unwrap();
        assert!(rule.direct());
        // The same terms in 20 documents each over 30,000: 20.1 µs against 2 probes of
        // 8 * (2 * 27 + 2.3 * 0.04) = 0.43 µs.
        let rare = vec![20u32; 100];
        let rule = SwitchRule::new(30_000, 938, &rare, &[], short.view()).unwrap();
        assert!(!rule.direct());
        // Terms absent from the segment cost nothing either way: a long query of which two
        // terms occur stays with the probe (13.4 µs against 2 probes of 0.43 µs; counting the
        // 38 absent terms in the probe, 2 * 8.6 µs, would send it directly).
        let two = (0..100)
            .map(|t| if t < 2 { 20 } else { 0 })
            .collect::<Vec<u32>>();
        let rule = SwitchRule::new(20_000, 625, &two, &[], long.view()).unwrap();
        assert!(!rule.direct());
        // Over MAX_TAAT_DOCS: always a probe (the screening search of 32,769 documents costs
        // 16.4 µs, under the 17.3 µs of two probes: the size alone decides).
        let n = MAX_TAAT_DOCS + 1;
        let rule = SwitchRule::new(n, n / 32, &[1u32; 100], &[], long.view()).unwrap();
        assert!(!rule.direct());
    }

    /// A large segment's probe is first made on a sample only where the terms carrying the
    /// query's possible score have many postings a document: light terms in many documents
    /// (by their query weight or by their bound unit) do not count.
    #[test]
    fn light_common_terms_do_not_make_a_query_sampled() {
        let n = 1_000_000;
        // Terms 0-9 in 40 % of the documents each (4 postings a document together), terms
        // 10-19 in 1 % each.
        let df: Vec<u32> = (0..20)
            .map(|t| if t < 10 { 400_000 } else { 10_000 })
            .collect();
        let ones = vec![1.0f32; 20];
        let query = |common: f32| {
            let pairs = (0..20).map(|t| (t, if t < 10 { common } else { 1.0 }));
            SparseVector::from_pairs(pairs.collect()).unwrap()
        };
        let sampled = |scales: &[f32], q: &SparseVector| {
            SwitchRule::new(n, n / 32, &df, scales, q.view())
                .unwrap()
                .sample_first()
        };
        // The common terms as heavy as the rare ones: 4.1 postings a document (3.3 without
        // the lightest two, below), sampled.
        assert!(sampled(&ones, &query(1.0)));
        // At a hundredth of their weight they hold 1 % of the score: left out, 0.1 postings
        // a document, not sampled.
        assert!(!sampled(&ones, &query(0.01)));
        // The same through their unit: full weight, but blocks a hundred times lighter.
        let light_units: Vec<f32> = (0..20).map(|t| if t < 10 { 0.01 } else { 1.0 }).collect();
        assert!(!sampled(&light_units, &query(1.0)));
        // At 0.4 of the rare terms' weight, the lightest three (1.2 of 14, under a tenth;
        // four would be 1.6) are left out: 2.9 postings a document, not sampled.
        assert!(!sampled(&ones, &query(0.4)));
        // Terms without a unit weigh nothing: nothing carries the score, nothing sampled.
        assert!(!sampled(&[], &query(1.0)));
        // Of two terms as light, the one in more documents is left out first: three terms
        // in every document and eight in a tenth, all of one weight (3.8 postings a
        // document); the lightest one (1 of 11) goes: a common one leaves 2.8, not sampled
        // (a rare one would leave 3.7).
        let df: Vec<u32> = (0..11)
            .map(|t| if t < 3 { n as u32 } else { 100_000 })
            .collect();
        let q = SparseVector::from_pairs((0..11).map(|t| (t, 1.0)).collect()).unwrap();
        let rule = SwitchRule::new(n, n / 32, &df, &[1.0; 11], q.view()).unwrap();
        assert!(!rule.sample_first());
    }

    /// The late check weighs each remaining block by the query's terms: a long query's
    /// blocks cost far more than the first check's model says.
    #[test]
    fn late_check_costs_blocks_per_query_term() {
        let df = vec![3200u32; 200];
        let q = SparseVector::from_pairs((0..100).map(|t| (t, 1.0)).collect()).unwrap();
        // Term at a time: 320,000 postings and 32,000 documents, about 293 µs.
        let rule = SwitchRule::new(32_000, 1000, &df, &[], q.view()).unwrap();
        assert!(!rule.direct());
        // 172 blocks of 320 entries left: the first check's model says 100 µs (stay), the
        // late one 172 * (100 * 27 + 2.3 * 320) ns = 591 µs, over 1.5 * 293 µs: hand over.
        assert!(!rule.abandon(172, 320.0));
        assert!(rule.abandon_late(172, 320.0));
        // 100 blocks left: 344 µs, within the margin: stay.
        assert!(!rule.abandon_late(100, 320.0));
        // Over MAX_TAAT_DOCS, the screening search without the first check's margin.
        let n = 1_000_000;
        let rule = SwitchRule::new(n, n / 32, &vec![1000u32; 200], &[], q.view()).unwrap();
        let cost = 100_000.0 * SCREEN_NS_PER_POSTING + n as f64 * SCREEN_NS_PER_DOC;
        let blocks = (LATE_MARGIN * cost / SwitchRule::block_ns(100, 320.0)) as usize;
        assert!(!rule.abandon_late(blocks, 320.0));
        assert!(rule.abandon_late(blocks + 2, 320.0));
    }

    /// The rule hands over when many blocks still pass, not when few do; over
    /// [`MAX_TAAT_DOCS`] it costs the screening search: a frequent term as one byte column
    /// (cheap per document), a rare one by its postings.
    #[test]
    fn switch_rule_compares_costs() {
        let df = vec![1000u32; 10];
        let q = SparseVector::from_pairs(vec![(1, 1.0), (2, 1.0), (3, 1.0)]).unwrap();
        let rule = SwitchRule::new(1000, 16, &df, &[], q.view()).unwrap();
        // Term at a time: three dense columns of 1,000 documents + 1,000 documents, about
        // 1.06 µs.
        assert!(rule.abandon(30, 64.0));
        assert!(!rule.abandon(2, 64.0));
        // 1M documents, three terms in 900k each (byte columns): about 0.86 ms, times the
        // hand-over margin.
        let n = 1_000_000;
        let frequent = vec![900_000u32; 10];
        let rule = SwitchRule::new(n, 15_625, &frequent, &[], q.view()).unwrap();
        let expected = SCREEN_HANDOVER_MARGIN
            * (3.0 * SCREEN_NS_PER_COLUMN_DOC * n as f64 + SCREEN_NS_PER_DOC * n as f64);
        assert!((rule.taat_ns - expected).abs() < 1.0);
        // 20,000 blocks of 100 entries left (a flat collection): hand over; 4,000 (within the
        // margin) or 40 (a peaked one, where bounds prune): stay.
        assert!(rule.abandon(20_000, 100.0));
        assert!(!rule.abandon(4000, 100.0));
        assert!(!rule.abandon(40, 100.0));
        // Rare terms are costed by their postings, not by columns.
        let rare = vec![1000u32; 10];
        let rule = SwitchRule::new(n, 15_625, &rare, &[], q.view()).unwrap();
        assert!(
            rule.taat_ns
                < SCREEN_HANDOVER_MARGIN
                    * (SCREEN_NS_PER_DOC * n as f64 + 3001.0 * SCREEN_NS_PER_POSTING)
        );
    }
}
