//! The block-max traversal (after BMP, Mallia, Nardini, Tonellotto and Suel, SIGIR 2024):
//! the top-k by block-max pruning, exact ([`crate::Method::Exact`]) or with BMP's α / β
//! knobs ([`crate::Method::Approximate`]); per segment it may hand over to the
//! term-at-a-time traversal ([`super::taat`]) when the bounds prune little.
//!
//! 1. Every block `b` that shares a term with the query gets an upper bound
//!    `U(b) = inflate(Σ_t q_t · scale_t · code_t(b))` over the query terms with `q_t > 0`;
//!    dequantised codes are never below the block's true maxima and `inflate` covers the f32
//!    rounding, so `U(b)` is at least the exact score of every document in `b`.
//! 2. Blocks are visited in decreasing `U(b)`. A visited block is scored exactly: for each
//!    query term in ascending term order, the block's entries for that term (found through
//!    the term's block list, `bounds.starts` and `bounds.lengths`, no search of the block's
//!    terms) add `q as f64 * w as f64` into a per-document f64 accumulator, which is then
//!    rounded to f32. Per document, that is the same sequence of f64 operations as the
//!    merge join of `SparseView::dot`, so scores are bit-identical to the brute force and
//!    ties are real. A block whose pairs, added heaviest query weight first, show that it
//!    can no longer reach the k-th score is left before it is scored ([`score_visited`]).
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
//!
//! Speed, none of which changes a result: heap keys are made up front only for the
//! heaviest bounds (about [`UPFRONT`] blocks, the rest only if the search gets that far);
//! the next blocks of the visiting order are prefetched in a software pipeline
//! ([`visit_blocks`]); a document is offered to the top-k only when its score reaches the
//! current k-th.

use std::collections::{BinaryHeap, VecDeque};
use std::time::Instant;

use splade_sparse::{SparseVector, SparseView};

use super::taat::{
    add_codes, screen_segment, taat_segment, ScreenScratch, SwitchRule, CHECK_AFTER, MAX_TAAT_DOCS,
    SAMPLE_EVERY, SAMPLE_RUNS,
};
use super::{SearchStats, Traversal};
use crate::brute::dot_slices;
use crate::deletes::is_deleted;
use crate::hint::{prefetch, prefetch_slice};
use crate::index::Index;
use crate::quantize::{deflate, inflate};
use crate::segment::blocks::BlockArrays;
use crate::segment::dense_bounds::DenseView;
use crate::topk::{Hit, TopK};

/// Reusable per-thread buffers of the block-max search.
#[derive(Debug, Clone)]
pub(crate) struct Scratch {
    /// Block bounds of the current query (all zero between searches).
    bounds: Vec<f32>,
    /// The slot table: per query term `i`, its row of `words(num_blocks)` [`RankWord`]s from
    /// `i * words(num_blocks)`, from which the slot of (term, block) comes, its place in the
    /// term-major lists (where `bounds.starts` and `bounds.lengths` give its entries), or
    /// none when the term is absent from the block (filled per query, in the bound pass or,
    /// for a probe that defers it, once the probe goes on ([`fill_slots`]); replaces a
    /// search per (term, scored block)). The rows of terms with a dense column are left
    /// unfilled: their slots are read from the column ([`SlotRows`]).
    positions: Vec<RankWord>,
    /// Largest slot table, in (term, block) pairs; [`MAX_POSITIONS`] except in tests.
    max_positions: usize,
    /// Per-document accumulators of the block being scored (a block position is a `u8`,
    /// so indexing by it needs no bounds check).
    acc: Box<[f64; 256]>,
    /// The entry ranges of the block being scored: (query weight, start, end) per query
    /// term present in the block, in ascending term order.
    ranges: Vec<(f64, usize, usize)>,
    /// The pairs of the block being visited and of the next block of the visiting order
    /// (filled one block ahead), heaviest query weight first (see [`visit_blocks`]).
    pairs: Vec<Pair>,
    next_pairs: Vec<Pair>,
    /// Blocks taken from the queue but not scored yet (see [`visit_blocks`]).
    ahead: VecDeque<(f32, usize)>,
    /// Per-document accumulators of the term-at-a-time search (see `taat`).
    term_acc: Vec<f64>,
    /// Buffers of the screening term-at-a-time search of large segments (see `taat`).
    screen: ScreenScratch,
    pub(crate) stats: SearchStats,
}

impl Scratch {
    pub(crate) fn new() -> Self {
        Self {
            bounds: Vec::new(),
            positions: Vec::new(),
            max_positions: MAX_POSITIONS,
            acc: Box::new([0.0; 256]),
            ranges: Vec::new(),
            pairs: Vec::new(),
            next_pairs: Vec::new(),
            ahead: VecDeque::with_capacity(LOOKAHEAD),
            term_acc: Vec::new(),
            screen: ScreenScratch::default(),
            stats: SearchStats::default(),
        }
    }

    /// Makes room for `num_blocks` blocks. Between searches every bound is 0 (the
    /// candidate scan resets them), so buffers sized for a larger segment serve a smaller
    /// one.
    fn prepare(&mut self, num_blocks: usize) {
        if self.bounds.len() < num_blocks {
            self.bounds = vec![0.0; num_blocks];
        }
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
    term: u32,
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

/// The heaviest `ceil(beta * nnz)` query terms (ties to the smaller id), which alone make
/// the block bounds; `None` when `beta >= 1` (all terms).
fn bound_terms(query: SparseView<'_>, beta: f32) -> Option<SparseVector> {
    (beta < 1.0).then(|| {
        let keep = ((f64::from(beta) * query.nnz() as f64).ceil() as usize).max(1);
        query.top_k(keep)
    })
}

/// The candidate blocks of one segment for one query: those sharing a (bound) term with it.
struct Candidates {
    /// The query terms present in the segment, in ascending term order.
    terms: Vec<QueryTerm>,
    /// Whether the slot table is filled (see [`Scratch`]).
    table: bool,
    /// Whether the slot table is left to [`visit_blocks`], to fill once the probe
    /// goes on past its first check (see [`candidates`]).
    deferred: bool,
    /// Heap keys of the candidates whose inflated bound is at least `cutoff` (every block,
    /// with an infinite bound, for a query with a negative weight).
    keys: Vec<u64>,
    /// The rest of the candidates are the blocks with `0 < scratch.bounds[b]` whose inflated
    /// bound is below this; their keys are made only when the search gets that far (see
    /// [`BlockQueue`]). `0.0`: `keys` holds every candidate.
    cutoff: f32,
    /// Terms that contributed to the bounds (for [`inflate`]).
    contributing: usize,
}

/// Keys made up front: the heaviest bounds, about this many, when a segment has many more
/// candidate blocks (see [`cutoff`]).
const UPFRONT: usize = 512;

/// A bound such that about [`UPFRONT`] of the positive `bounds` (inflated) reach it, from a
/// sample of at most 256 of them (`0.0`, every block up front, for fewer than
/// `4 * UPFRONT` blocks). Any cutoff gives the same search; a good one spares making and
/// ordering keys for the many blocks that are never visited.
fn cutoff(bounds: &[f32], contributing: usize) -> f32 {
    let nb = bounds.len();
    if nb < 4 * UPFRONT {
        return 0.0;
    }
    let step = nb / 256;
    let mut sample: Vec<f32> = bounds
        .iter()
        .step_by(step)
        .filter(|&&v| v > 0.0)
        .map(|&v| inflate(v, contributing))
        .collect();
    // The sample's rank of the UPFRONT-th largest bound among all blocks.
    let rank = (UPFRONT / step).max(1);
    if sample.len() <= rank {
        return 0.0;
    }
    let i = sample.len() - rank;
    *sample.select_nth_unstable_by(i, f32::total_cmp).1
}

/// The query terms present in the segment of `a`, in ascending term order (the order of
/// summation per document), each marked as a bound term or not.
fn present_terms(
    a: &BlockArrays<'_>,
    query: SparseView<'_>,
    bound_terms: &Option<SparseVector>,
) -> Vec<QueryTerm> {
    let is_bound = |t: u32| {
        bound_terms
            .as_ref()
            .is_none_or(|b| b.indices().binary_search(&t).is_ok())
    };
    query
        .iter()
        .filter_map(|(t, weight)| {
            let t = t as usize;
            let (start, end) = (
                *a.bound_offsets.get(t)? as usize,
                *a.bound_offsets.get(t + 1)? as usize,
            );
            (start < end).then(|| QueryTerm {
                term: t as u32,
                weight,
                start,
                end,
                scale: a.bound_scales[t],
                bound: is_bound(t as u32),
            })
        })
        .collect()
}

/// The query terms present in a segment and its candidate blocks (see [`Candidates`]).
#[inline(always)]
fn candidates(
    a: &BlockArrays<'_>,
    dense: DenseView<'_>,
    num_blocks: usize,
    query: SparseView<'_>,
    bound_terms: &Option<SparseVector>,
    defer_table: bool,
    scratch: &mut Scratch,
) -> Candidates {
    let terms = present_terms(a, query, bound_terms);
    scratch.prepare(num_blocks);
    // A table's rows are a bit a block, in words of 64 (see `RankWord`): counted in the
    // blocks of whole words, so the table never takes more than `max_positions / 4` bytes.
    // Lists of 2^32 slots or more are left to `find_block`, as the dense columns' slots are
    // u32 (`u32::MAX` marks an absent term).
    let fits = terms.len() * words(num_blocks) * 64 <= scratch.max_positions
        && a.bound_blocks.len() < u32::MAX as usize;
    let (table, deferred) = (fits && !defer_table, fits && defer_table);
    let negative = terms.iter().any(|t| t.weight < 0.0);
    let contributing = fill_tables(a, dense, &terms, num_blocks, table, !negative, scratch);
    let bounds = &scratch.bounds[..num_blocks];
    let (keys, cutoff) = if negative {
        let keys = (0..num_blocks as u32)
            .map(|b| key(f32::INFINITY, b))
            .collect();
        (keys, 0.0)
    } else {
        // Candidates: the blocks with a positive bound (a block whose bound terms all have
        // zero maxima holds no document with a positive score on them).
        let cutoff = cutoff(bounds, contributing);
        (
            keys_between(bounds, contributing, cutoff, f32::INFINITY),
            cutoff,
        )
    };
    Candidates {
        terms,
        table,
        deferred,
        keys,
        cutoff,
        contributing,
    }
}

/// Heap keys of the blocks with a positive bound whose inflated bound `u` is in
/// `low <= u < high`.
fn keys_between(bounds: &[f32], contributing: usize, low: f32, high: f32) -> Vec<u64> {
    let mut keys = Vec::new();
    for (b, &v) in bounds.iter().enumerate() {
        if v > 0.0 {
            let u = inflate(v, contributing);
            if u >= low && u < high {
                keys.push(key(u, b as u32));
            }
        }
    }
    keys
}

/// The top-k of `query` (see the module documentation); exact when `alpha == 1` and
/// `beta == 1`, otherwise the approximation of [`super::Method::Approximate`]. Segments are
/// searched in order into one top-k, so the k-th score found in one segment prunes the next; per
/// segment, the stopping rule is the one above, hence the result is the exact top-k over
/// all live documents (global numbers: segment order, then number within the segment).
pub(crate) fn block_max_top_k(
    index: &Index,
    query: SparseView<'_>,
    k: usize,
    (alpha, beta): (f32, f32),
    traversal: Traversal,
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
    let search = next_search_number();
    // One exact search in `TIME_EVERY` is timed for `TraversalMemory` (each timing is a
    // write every thread's searches of the segment contend for).
    let exact = alpha >= 1.0 && bound_terms.is_none();
    let timed = exact && search.is_multiple_of(TIME_EVERY);
    let query_terms = query.nnz();
    for slot in index.slots() {
        if slot.live() == 0 {
            continue;
        }
        let map = DocMap {
            base: slot.base,
            deleted: slot.deleted.words(),
        };
        let segment = &slot.segment;
        // What the segment learned from its searches of queries of about this length.
        let history = segment.traversal_memory().for_query(query_terms);
        let a = segment.blocks();
        let num_blocks = segment.num_blocks();
        if num_blocks == 0 {
            continue;
        }
        // Offers a document to the top-k unless it is deleted; returns whether it did.
        let offer = |top: &mut TopK, doc: u32, score: f32| {
            let live = !is_deleted(map.deleted, doc);
            if live {
                top.push(map.base + doc, score);
            }
            live
        };
        let term_at_a_time = |scratch: &mut Scratch, top: &mut TopK| {
            let postings = segment.term_postings();
            scratch.stats.segments_term_at_a_time += 1;
            scratch.stats.postings_scored += postings.query_postings(query);
            if segment.len() > MAX_TAAT_DOCS {
                let indptr = segment.forward_indptr();
                let (terms, values) = (segment.forward_terms(), segment.forward_values());
                let (qi, qv) = (query.indices(), query.values());
                let mut rescored = 0;
                let screened = screen_segment(
                    postings,
                    segment.len(),
                    query,
                    &mut scratch.screen,
                    top,
                    k,
                    |position| {
                        let doc = a.doc_order[position as usize];
                        (!is_deleted(map.deleted, doc)).then_some(doc)
                    },
                    |top, doc| {
                        let (s, e) = (
                            indptr[doc as usize] as usize,
                            indptr[doc as usize + 1] as usize,
                        );
                        rescored += 1;
                        top.push(
                            map.base + doc,
                            dot_slices(qi, qv, &terms[s..e], &values[s..e]),
                        );
                    },
                );
                scratch.stats.documents_rescored += rescored;
                if screened {
                    return;
                }
            }
            taat_segment(
                postings,
                segment.len(),
                query,
                &mut scratch.term_acc,
                top,
                k,
                |top, position, score| offer(top, a.doc_order[position as usize], score),
            );
        };
        let switch = match traversal {
            Traversal::TermAtATime => {
                term_at_a_time(scratch, &mut top);
                continue;
            }
            Traversal::BlockMax => None,
            Traversal::Auto => {
                match SwitchRule::new(
                    segment.len(),
                    num_blocks,
                    segment.term_df(),
                    a.bound_scales,
                    query,
                ) {
                    // Where term at a time costs about what the probe alone would, any search
                    // goes term at a time: a choice made from the query and the segment alone.
                    Some(rule) if rule.direct() => {
                        term_at_a_time(scratch, &mut top);
                        continue;
                    }
                    // Only an exact search (alpha and beta 1) may skip the probe on the
                    // segment's history: both paths then give the same hits. An approximate
                    // search otherwise always probes, so its hits depend on the query alone,
                    // never on the searches before. (Alpha 1 alone is not enough: with beta < 1
                    // the bounds leave out the lightest terms, and a probe's hits may differ
                    // from the exact ones.)
                    Some(_) if exact && history.skip_probe(search) => {
                        let started = timed.then(Instant::now);
                        term_at_a_time(scratch, &mut top);
                        if let Some(started) = started {
                            history.record_time(false, started.elapsed());
                        }
                        continue;
                    }
                    rule => rule,
                }
            }
        };
        let before = switch.as_ref().map(|_| top.clone());
        // An exact search that probes is timed (against those that skip the probe).
        let probe_started = (timed && switch.is_some()).then(Instant::now);
        // One set of dense columns for the whole search of the segment (the wide set may be
        // made by another search meanwhile).
        let dense = segment.dense_bounds();
        // Where the query has many postings a document on a large segment, the probe is
        // first made on a sample of the blocks (see `SwitchRule::sample_first`). When the
        // sample says hand over, the segment goes term at a time (exact hits); otherwise
        // the segment is searched as if there had been no sample (the top-k as before it),
        // so the hits are those of the full probe's search or the exact ones, either way a
        // choice made from the query and the segment alone.
        let sample = switch.filter(|r| r.sample_first() && !sampling_off());
        if let (Some(rule), Some(before)) = (sample, &before) {
            let terms = present_terms(&a, query, &bound_terms);
            let (hand_over, scored, candidates) =
                sampled_probe(&a, dense, &terms, alpha, &rule, scratch, &mut top, offer);
            top = before.clone();
            #[cfg(test)]
            SAMPLED.with(|c| c.set((c.get().0 + 1, c.get().1 + usize::from(hand_over))));
            if hand_over {
                // Counted as a probe's blocks before a hand-over are (where the sample does
                // not hand over, the full probe counts its own).
                scratch.stats.blocks_scored += scored;
                scratch.stats.blocks_candidate += candidates;
                segment.record_block_max(false);
                history.record(true);
                term_at_a_time(scratch, &mut top);
                if let Some(started) = probe_started {
                    history.record_time(true, started.elapsed());
                }
                continue;
            }
        }
        // Where this segment's last probes of queries of this length handed over, this one
        // likely will too: its first blocks' slots are found in the block lists, and the
        // slot table (a pass over each term's list) is made only if it goes
        // on past its first check. Hits never depend on the table, only speed does. On the
        // flat 1M collection of BENCHMARKS.md ("Session 33"), where approximate searches
        // probe and hand over, they ran 534 QPS instead of 504 (medians of 28 passes); on
        // the topical 1M no probe hands over, so none is deferred.
        let defer = switch.is_some() && history.usually_hands_over();
        let found = candidates(&a, dense, num_blocks, query, &bound_terms, defer, scratch);
        #[cfg(test)]
        if found.deferred {
            DEFERRALS.with(|c| c.set((c.get().0 + 1, c.get().1)));
        }
        let finished = visit_blocks(&a, dense, found, alpha, switch, scratch, &mut top, offer);
        segment.record_block_max(finished);
        if let Some(before) = before {
            history.record(!finished);
            if !finished {
                // Start the segment again from the top-k as it was before it.
                top = before;
                term_at_a_time(scratch, &mut top);
            }
        }
        if let Some(started) = probe_started {
            history.record_time(true, started.elapsed());
        }
    }
    top.into_sorted()
}

#[cfg(test)]
thread_local! {
    /// Sampled probes made on this thread, and those of them that handed over (tests only).
    static SAMPLED: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
    /// Whether this thread's searches skip the sampled probe (tests only).
    static NO_SAMPLING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the sampled probe is turned off (only tests turn it off, to compare).
#[cfg(test)]
fn sampling_off() -> bool {
    NO_SAMPLING.with(|c| c.get())
}

#[cfg(not(test))]
#[inline(always)]
fn sampling_off() -> bool {
    false
}

/// The blocks of a sampled probe among `nb`: [`SAMPLE_RUNS`] runs of consecutive blocks, one
/// at the start of each [`SAMPLE_RUNS`]-th of the segment, each [`SAMPLE_EVERY`] times shorter.
fn sample_runs(nb: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let stride = nb.div_ceil(SAMPLE_RUNS).max(1);
    let len = stride.div_ceil(SAMPLE_EVERY);
    (0..nb)
        .step_by(stride)
        .map(move |r0| r0..(r0 + len).min(nb))
}

/// Adds the block maxima of the positive bound `terms` into `bounds` (one a block of the
/// segment of `a`, zero on entry) for the blocks of [`sample_runs`] alone: per block the same
/// products in the same term order as [`fill_tables`], so the same bounds. Returns how many
/// terms contributed.
fn sample_bounds(
    a: &BlockArrays<'_>,
    dense: DenseView<'_>,
    terms: &[QueryTerm],
    bounds: &mut [f32],
) -> usize {
    let nb = a.num_blocks();
    let bounded: Vec<&QueryTerm> = terms.iter().filter(|t| t.weight > 0.0 && t.bound).collect();
    // Per bound term, where its list was left (the lists of terms with a dense column are
    // not read).
    let mut at = vec![0usize; bounded.len()];
    for r in sample_runs(nb) {
        // Each list's first entry of the run is found from where its blocks would sit were
        // they spread evenly ([`lower_bound`]), most often a line of the list not read yet:
        // those lines are fetched for every term before any is read.
        for (t, &i) in bounded.iter().zip(&at) {
            let n = t.end - t.start;
            if n > i && dense.column(t.term).is_none() {
                let g = t.start + guess(n, r.start as u32, nb).max(i);
                prefetch(&a.bound_blocks[g]);
                prefetch(&a.bound_codes[g]);
            }
        }
        for (t, i) in bounded.iter().zip(&mut at) {
            let qs = t.weight * t.scale;
            if let Some((codes, _)) = dense.column(t.term) {
                add_codes(&mut bounds[r.clone()], &codes[r.clone()], qs);
                continue;
            }
            let (blocks, codes) = (
                &a.bound_blocks[t.start..t.end],
                &a.bound_codes[t.start..t.end],
            );
            *i = lower_bound(blocks, *i, r.start as u32, nb);
            while let Some(&b) = blocks.get(*i).filter(|&&b| (b as usize) < r.end) {
                bounds[b as usize] += qs * f32::from(codes[*i]);
                *i += 1;
            }
        }
    }
    bounded.len()
}

/// A probe on a sample of the blocks ([`sample_runs`]; see `SwitchRule::sample_first`):
/// the sampled blocks' bounds (the same sums as the full bound pass's), then up to
/// [`CHECK_AFTER`] of them scored heaviest first while the stopping rule admits them (their
/// documents offered to `top` through `offer`), then the first check of [`visit_blocks`]
/// with the blocks passing the rule in the sample scaled to the segment
/// (`SwitchRule::abandon_sampled`). Returns whether to hand the segment over, the blocks it
/// scored and the sampled blocks with a positive bound; leaves every bound at zero. Never
/// hands over a query with a negative weight (its blocks are scored exhaustively), nor one
/// where no sampled block passes the stopping rule (none has a positive bound, or the
/// segments before put the k-th score above every one).
#[allow(clippy::too_many_arguments)]
fn sampled_probe(
    a: &BlockArrays<'_>,
    dense: DenseView<'_>,
    terms: &[QueryTerm],
    alpha: f32,
    rule: &SwitchRule,
    scratch: &mut Scratch,
    top: &mut TopK,
    mut offer: impl FnMut(&mut TopK, u32, f32) -> bool,
) -> (bool, usize, usize) {
    if terms.iter().any(|t| t.weight < 0.0) {
        return (false, 0, 0);
    }
    let nb = a.num_blocks();
    scratch.prepare(nb);
    let Scratch {
        bounds,
        acc,
        ranges,
        ..
    } = scratch;
    let bounds = &mut bounds[..nb];
    let contributing = sample_bounds(a, dense, terms, bounds);
    // A loop a run (the chained iterators took 24 µs a query on the flat 1M collection of
    // BENCHMARKS.md, this 5).
    let mut keys: Vec<u64> = Vec::with_capacity(nb / SAMPLE_EVERY + SAMPLE_RUNS);
    for r in sample_runs(nb) {
        let first = r.start;
        for (j, &v) in bounds[r].iter().enumerate() {
            if v > 0.0 {
                keys.push(key(inflate(v, contributing), (first + j) as u32));
            }
        }
    }
    let positive = keys.len();
    let take = CHECK_AFTER.min(keys.len());
    if keys.len() > take && take > 0 {
        keys.select_nth_unstable_by(take - 1, |x, y| y.cmp(x));
        keys.truncate(take);
    }
    keys.sort_unstable_by(|x, y| y.cmp(x));
    // The blocks' first reads (where `find_block` starts in each list) fetched at once.
    for &k in &keys {
        prefetch_block(a, None, terms, unkey(k).1);
    }
    let (mut scored, mut entries) = (0, 0);
    for (bound, block) in keys.into_iter().map(unkey) {
        if !top.may_admit(bound * alpha) {
            break;
        }
        block_ranges(a, block, terms, None, ranges);
        entries += ranges.iter().map(|r| r.2 - r.1).sum::<usize>();
        score_block(a, block, ranges, acc, top, &mut offer);
        scored += 1;
    }
    // As in `visit_blocks`' check, raw bounds against the deflated floor.
    let least = deflate(top.floor() / alpha, contributing);
    let (mut passing, mut sampled) = (0usize, 0usize);
    for r in sample_runs(nb) {
        sampled += r.len();
        passing += bounds[r.clone()]
            .iter()
            .filter(|&&v| v > 0.0 && v >= least)
            .count();
        bounds[r].fill(0.0);
    }
    if scored == 0 {
        return (false, 0, positive);
    }
    let remaining = (passing as f64 * nb as f64 / sampled as f64 - scored as f64).max(0.0);
    let hand_over = rule.abandon_sampled(remaining, entries as f64 / scored as f64);
    (hand_over, scored, positive)
}

#[cfg(test)]
thread_local! {
    /// Segment searches of this thread whose slot table was deferred, and those of them that
    /// filled it late (tests only).
    static DEFERRALS: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
    /// Blocks [`score_visited`] left early.
    static LEFT_EARLY: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Whether [`score_visited`] scores every block in full (to compare with, tests only).
    static NEVER_LEAVE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

thread_local! {
    /// Searches made on this thread (see [`next_search_number`]).
    static SEARCHES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The number of this search among the searches of this thread (from 1), which steers
/// `segment::memory::TraversalMemory`'s probing and timing. Counted per thread, not per
/// searcher: a searcher made for one query (`Index::search`, as the server calls it) would
/// otherwise always be at search 1, never probe again once a segment skips probes, and never
/// be timed; and not in one shared counter, which the threads would contend for.
fn next_search_number() -> u32 {
    SEARCHES.with(|n| {
        let next = n.get().wrapping_add(1);
        n.set(next);
        next
    })
}

/// Exact searches of a thread per search timed for the automatic traversal's running
/// means (see `segment::memory`): a divisor of its probing period, so that every probe of a
/// segment that skips probes is timed.
const TIME_EVERY: u32 = 4;

/// Blocks taken from the queue ahead of the one being scored (the software pipeline's
/// depth; see [`visit_blocks`]).
const LOOKAHEAD: usize = 4;

/// Scores the candidate blocks of one segment in decreasing bound while the stopping rule
/// admits them, offering every document's exact score (local number) through `offer`
/// (only those that may enter the top-k); adds the blocks scored and the candidates to
/// `scratch.stats`, and leaves every bound at zero for the next search.
///
/// Scoring a block is a chain of dependent loads (the slot table, the entry starts and
/// lengths, the entries), each likely a cache miss, since consecutive blocks of the visiting
/// order lie far apart. So the loop runs a software pipeline over the next [`LOOKAHEAD`]
/// blocks of the order: the table lines of a block (without a table, the block-list lines
/// [`find_block`] starts from) are prefetched when it is taken from the queue, the list
/// entries (start, length, bound code) of its pairs of the [`LISTS_AHEAD`] heaviest terms
/// (and of the terms outside the bounds) two blocks before it is scored, the entries of its
/// first [`ENTRIES_AHEAD`] pairs one block before ([`block_pairs`]; a block left early
/// reads no more, see [`score_visited`]). Taking
/// a block early changes nothing else: the rule is checked again when its turn comes (θ may
/// have risen meanwhile), and the loop stops at the first block that fails it, as a loop
/// taking one block at a time would, so the blocks scored and their order are the same.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn visit_blocks(
    a: &BlockArrays<'_>,
    dense: DenseView<'_>,
    found: Candidates,
    alpha: f32,
    switch: Option<SwitchRule>,
    scratch: &mut Scratch,
    top: &mut TopK,
    mut offer: impl FnMut(&mut TopK, u32, f32) -> bool,
) -> bool {
    let num_blocks = a.num_blocks();
    let Scratch {
        bounds,
        positions: table,
        acc,
        ranges,
        pairs,
        next_pairs,
        ahead,
        stats,
        ..
    } = scratch;
    let terms = &found.terms[..];
    // A block's pairs are read heaviest query weight first, so that its scoring can stop
    // as soon as the block can no longer reach the top-k (`score_visited`; never with a
    // negative weight, whose contributions lower a score).
    let mut order: Vec<usize> = (0..terms.len()).collect();
    order.sort_by(|&i, &j| terms[j].weight.total_cmp(&terms[i].weight).then(i.cmp(&j)));
    let may_stop = terms.iter().all(|t| t.weight >= 0.0);
    let bounds = &mut bounds[..num_blocks];
    let mut rows = found
        .table
        .then(|| SlotRows::new(dense, terms, table, num_blocks));
    let mut queue = BlockQueue::new(found.keys, (&*bounds, found.contributing, found.cutoff));
    ahead.clear();
    let (mut exhausted, mut ready, mut scored) = (false, None, 0);
    let (mut entries, mut finished) = (0, true);
    loop {
        if let Some(rule) = switch.as_ref().filter(|r| r.checks_at(scored)) {
            // About the blocks `top.may_admit` would still take (the count only steers the
            // speed), counted by comparing raw bounds, in a pass the compiler vectorises:
            // inflating every bound there meant arithmetic on subnormal floats for the zero
            // ones, and a call per block took 15-20 % of a search on the glosses.
            // (While the top-k is not full its floor is 0, deflated below 0: every positive
            // bound counts.)
            let least = deflate(top.floor() / alpha, found.contributing);
            let passing = bounds.iter().filter(|&&v| v > 0.0 && v >= least).count();
            if rule.hand_over(
                scored,
                passing.saturating_sub(scored),
                entries as f64 / scored as f64,
            ) {
                finished = false;
                break;
            }
            if found.deferred && rows.is_none() {
                // The probe goes on: the slots are looked up in the table from here on.
                fill_slots(a, dense, terms, num_blocks, table);
                #[cfg(test)]
                DEFERRALS.with(|c| c.set((c.get().0, c.get().1 + 1)));
                rows = Some(SlotRows::new(dense, terms, table, num_blocks));
            }
        }
        let positions = rows.as_ref();
        while !exhausted && ahead.len() < LOOKAHEAD {
            // alpha == 1 multiplies exactly: the exact stopping rule.
            match queue.next(top, alpha) {
                Some((bound, block)) => {
                    prefetch_block(a, positions, terms, block);
                    ahead.push_back((bound, block));
                }
                None => exhausted = true,
            }
        }
        let Some((bound, block)) = ahead.pop_front() else {
            break;
        };
        if !top.may_admit(bound * alpha) {
            break;
        }
        if ready == Some(block) {
            std::mem::swap(pairs, next_pairs);
        } else {
            block_pairs(a, block, terms, &order, positions, pairs);
        }
        ready = None;
        if let Some(&(_, next)) = ahead.front() {
            block_pairs(a, next, terms, &order, positions, next_pairs);
            ready = Some(next);
        }
        if let (Some(&(_, after)), Some(rows)) = (ahead.get(1), positions) {
            // The heaviest terms' pairs, read first, and those of terms outside the
            // bounds, whose own bounds a block left early needs.
            let lists = order
                .iter()
                .enumerate()
                .filter(|&(j, &i)| j < LISTS_AHEAD || !terms[i].bound);
            for (_, &i) in lists {
                if let Some(slot) = rows.slot(i, after) {
                    prefetch(&a.bound_starts[slot]);
                    prefetch(&a.bound_lengths[slot]);
                    prefetch(&a.bound_codes[slot]);
                }
            }
        }
        let stop_below = may_stop.then_some(bound);
        // The entries the block cost, for `Auto`'s checks.
        entries += score_visited(
            a, block, stop_below, terms, pairs, ranges, acc, top, &mut offer,
        );
        scored += 1;
    }
    stats.blocks_scored += scored;
    stats.blocks_candidate += queue.candidates;
    drop(queue);
    bounds.fill(0.0);
    finished
}

/// Candidate blocks in decreasing bound (ties: smaller block first) with the stopping rule:
/// [`BlockQueue::next`] returns the next block while `alpha * bound` may still enter the
/// top-k. Rather than one heap of every candidate (tens of thousands of blocks at a million
/// documents, of which a few hundred are visited), the largest [`FIRST_BATCH`] keys are
/// selected (`select_nth_unstable`, linear) into a heap; when it runs dry, the remaining keys
/// that can no longer pass the rule are dropped and the next, twice as large, batch of the
/// largest is taken. Every dropped key is smaller than every key still held and fails a rule
/// that only gets stricter (θ never decreases), so the blocks visited, and their order, are
/// exactly those of the single heap.
///
/// The blocks below a [`Candidates::cutoff`] get their keys only when the queue runs dry
/// while the rule still admits the cutoff: every one of them is smaller than every key made
/// up front, so they come after those in one heap as well.
struct BlockQueue<'a> {
    heap: BinaryHeap<u64>,
    rest: Vec<u64>,
    batch: usize,
    /// The blocks not keyed yet: the bounds, the contributing terms and the cutoff.
    deferred: Option<(&'a [f32], usize, f32)>,
    /// Candidate blocks (keyed or not).
    candidates: usize,
}

/// Keys in the first heap of a [`BlockQueue`].
const FIRST_BATCH: usize = 128;

impl<'a> BlockQueue<'a> {
    /// A queue of `keys` and, when `cutoff > 0`, of the blocks with a positive bound below
    /// it (see [`Candidates`]).
    fn new(keys: Vec<u64>, (bounds, contributing, cutoff): (&'a [f32], usize, f32)) -> Self {
        let deferred = (cutoff > 0.0).then_some((bounds, contributing, cutoff));
        let candidates = if deferred.is_some() {
            bounds.iter().filter(|&&v| v > 0.0).count()
        } else {
            keys.len()
        };
        let mut queue = Self {
            heap: BinaryHeap::new(),
            rest: keys,
            batch: FIRST_BATCH,
            deferred,
            candidates,
        };
        queue.refill(None);
        queue
    }

    /// Moves the largest `batch` remaining keys (passing the rule) into the heap.
    fn refill(&mut self, rule: Option<(&TopK, f32)>) {
        if let Some((top, alpha)) = rule {
            self.rest.retain(|&k| top.may_admit(unkey(k).0 * alpha));
        }
        if self.rest.len() <= 2 * self.batch {
            self.heap = BinaryHeap::from(std::mem::take(&mut self.rest));
        } else {
            let n = self.rest.len();
            self.rest.select_nth_unstable(n - self.batch);
            self.heap = BinaryHeap::from(self.rest.split_off(n - self.batch));
            self.batch *= 2;
        }
    }

    /// The next block to score and its bound, or `None` once the best remaining bound
    /// fails the rule.
    #[inline]
    fn next(&mut self, top: &TopK, alpha: f32) -> Option<(f32, usize)> {
        if self.heap.is_empty() {
            if self.rest.is_empty() {
                let (bounds, contributing, cutoff) = self.deferred.take()?;
                if !top.may_admit(cutoff * alpha) {
                    return None;
                }
                self.rest = keys_between(bounds, contributing, 0.0, cutoff);
                self.batch = FIRST_BATCH;
            }
            self.refill(Some((top, alpha)));
        }
        let (bound, block) = unkey(self.heap.pop()?);
        top.may_admit(bound * alpha).then_some((bound, block))
    }
}

/// One word of a row of the slot table ([`Scratch::positions`]): which of 64 consecutive
/// blocks hold the term (bit `b % 64` for block `b`), and the slot of the first of them (the
/// term's list start plus the blocks holding it before the word's). The slot of a block
/// holding the term is `base` plus the bits below its own: a row is a bit a block and 8
/// bytes a 64 (2 bits a block in all), where a slot a block (4 bytes) made the table of a
/// 37-term query over a million documents (31,250 blocks) 4.6 MB instead of 290 KB. (Its
/// searches ran 1-3 % faster: the bound pass waits mostly on reading the lists and adding
/// to the bounds, BENCHMARKS.md, "Session 36".)
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(16))]
struct RankWord {
    bits: u64,
    base: u64,
}

/// [`RankWord`]s a row of the slot table has over `nb` blocks.
fn words(nb: usize) -> usize {
    nb.div_ceil(64)
}

/// Largest slot table per query, in (term, block) pairs of whole words of 64 blocks (2 bits
/// each, so at most 4 MB); beyond it, [`find_block`] per (term, scored block). The table
/// costs a pass over every query term's block list (and its memory) per query, and still
/// pays at a million documents, where about a hundred of 31,250 blocks are scored: on the
/// topical 1M collection of BENCHMARKS.md (37-term queries, one thread) exact search ran
/// 1,954-2,024 QPS with the table against 1,190-1,288 with [`find_block`] alone, α 0.9 β 0.8
/// 2,452-2,816 against 2,005-2,155 (three alternating runs each, session 33; sessions 24 and
/// 28 had found the same on Quora and at 1M). A probe that will likely
/// hand over (it scores [`CHECK_AFTER`](super::taat::CHECK_AFTER) blocks first) makes the
/// table only if it goes on (see `block_max_top_k`).
const MAX_POSITIONS: usize = 1 << 24;

/// One pass over the block lists of the query terms: fills the slot table (see
/// [`Scratch`]) when `table`, and, when `bounds`, adds every positive bound term's
/// dequantised block maxima into `scratch.bounds` (dense, one entry per block, no branch
/// per entry); returns how many terms contributed to the bounds.
#[inline(always)]
fn fill_tables(
    a: &BlockArrays<'_>,
    dense: DenseView<'_>,
    terms: &[QueryTerm],
    nb: usize,
    table: bool,
    bounds: bool,
    scratch: &mut Scratch,
) -> usize {
    let positions = &mut scratch.positions;
    let w = words(nb);
    if table && positions.len() < terms.len() * w {
        // Every row used below is written in full (reset and filled; the rows of terms with
        // a dense column are not used).
        positions.resize(terms.len() * w, RankWord::default());
    }
    let acc = &mut scratch.bounds[..nb];
    let adds = |t: &QueryTerm| bounds && t.weight > 0.0 && t.bound;
    // The first lines of every list the pass reads are fetched at once (each list is a
    // stream of its own, found cold, which the hardware prefetcher picks up only after a few
    // misses).
    for t in terms {
        if (table || adds(t)) && dense.column(t.term).is_none() && t.end > t.start {
            prefetch_slice(&a.bound_blocks[t.start..t.end], 4);
            prefetch_slice(&a.bound_codes[t.start..t.end], 1);
        }
    }
    let mut contributing = 0;
    for (i, t) in terms.iter().enumerate() {
        let range = t.start..t.end;
        let bounded = adds(t);
        contributing += usize::from(bounded);
        let qs = t.weight * t.scale;
        if let Some((codes, _)) = dense.column(t.term) {
            // The same products in the same term order, plus 0.0 where the term is absent.
            // The term's slots are read from its column (see [`SlotRows`]): its row of the
            // table is left as it is.
            if bounded {
                add_codes(acc, codes, qs);
            }
            continue;
        }
        let blocks = &a.bound_blocks[range.clone()];
        let row = || i * w..(i + 1) * w;
        match (table, bounded) {
            (true, true) => {
                let row = &mut positions[row()];
                let codes = &a.bound_codes[range];
                write_row(row, blocks, t.start, |j, b| {
                    acc[b] += qs * f32::from(codes[j]);
                });
            }
            (true, false) => write_row(&mut positions[row()], blocks, t.start, |_, _| {}),
            (false, true) => {
                for (&b, &c) in blocks.iter().zip(&a.bound_codes[range]) {
                    acc[b as usize] += qs * f32::from(c);
                }
            }
            (false, false) => {}
        }
    }
    contributing
}

/// Fills the slot table's rows of `terms` (those without a dense column) as [`fill_tables`]
/// does, without the bounds: for a probe whose table was deferred ([`candidates`]) and that
/// goes on past its first check.
fn fill_slots(
    a: &BlockArrays<'_>,
    dense: DenseView<'_>,
    terms: &[QueryTerm],
    nb: usize,
    positions: &mut Vec<RankWord>,
) {
    let w = words(nb);
    if positions.len() < terms.len() * w {
        positions.resize(terms.len() * w, RankWord::default());
    }
    for (i, t) in terms.iter().enumerate() {
        if dense.column(t.term).is_none() {
            write_row(
                &mut positions[i * w..(i + 1) * w],
                &a.bound_blocks[t.start..t.end],
                t.start,
                |_, _| {},
            );
        }
    }
}

/// One term's row of the slot table (see [`RankWord`]) from its list's `blocks`
/// (ascending, each below `64 * row.len()`), the first of which is slot `first`; calls
/// `each(j, blocks[j])` for every entry of the list, in order (the bound pass adds the
/// block maxima there, in the same loop).
#[inline(always)]
fn write_row(
    row: &mut [RankWord],
    blocks: &[u32],
    first: usize,
    mut each: impl FnMut(usize, usize),
) {
    for word in row.iter_mut() {
        word.bits = 0;
    }
    // A word's bits are made in a register and stored whole at every entry (the last store
    // of a word holds all of its bits): no load of the word, no chain through memory.
    let (mut at, mut bits) = (usize::MAX, 0u64);
    for (j, &b) in blocks.iter().enumerate() {
        let b = b as usize;
        let w = b / 64;
        bits = if w == at { bits } else { 0 } | (1u64 << (b % 64));
        row[w].bits = bits;
        at = w;
        each(j, b);
    }
    let mut base = first as u64;
    for word in row.iter_mut() {
        word.base = base;
        base += u64::from(word.bits.count_ones());
    }
}

/// Prefetches what scoring `block` next reads first for every query term: its table
/// entries, or, without a table, the line of each term's block list where
/// [`find_block`] starts looking.
#[inline(always)]
fn prefetch_block(
    a: &BlockArrays<'_>,
    positions: Option<&SlotRows<'_>>,
    terms: &[QueryTerm],
    block: usize,
) {
    match positions {
        Some(rows) => rows.prefetch(block),
        None => {
            let nb = a.num_blocks();
            for t in terms {
                let n = t.end - t.start;
                if n > 0 {
                    prefetch(&a.bound_blocks[t.start + guess(n, block as u32, nb)]);
                }
            }
        }
    }
}

/// Where block `b` would sit in a sorted list of `n` distinct blocks out of `nb`, were
/// they spread evenly (always `< n` for `n > 0`).
#[inline(always)]
fn guess(n: usize, b: u32, nb: usize) -> usize {
    ((u64::from(b) * n as u64) / nb.max(1) as u64).min(n as u64 - 1) as usize
}

/// The position of block `b` in `blocks` (ascending, distinct, all `< nb`), by
/// [`lower_bound`]: interpolation (the list's blocks are spread over `0..nb`), then a
/// galloping search from the guess and a binary search in the bracket found. Posting lists
/// of frequent terms cover most blocks, so the guess is usually within a cache line of the
/// answer.
#[inline(always)]
fn find_block(blocks: &[u32], b: u32, nb: usize) -> Option<usize> {
    let j = lower_bound(blocks, 0, b, nb);
    (blocks.get(j) == Some(&b)).then_some(j)
}

/// The first place at or after `from` in `blocks` (ascending, distinct, all `< nb`) whose
/// block is at least `b` (`blocks.len()` when none is), from where `b`
/// would sit were the blocks spread evenly, galloping to a bracket, then a binary search in it.
#[inline(always)]
fn lower_bound(blocks: &[u32], from: usize, b: u32, nb: usize) -> usize {
    let n = blocks.len();
    if from >= n {
        return n;
    }
    let g = guess(n, b, nb).max(from);
    let (lo, hi) = match blocks[g].cmp(&b) {
        // The blocks are distinct: every place before `g` holds a smaller one.
        std::cmp::Ordering::Equal => return g,
        std::cmp::Ordering::Less => {
            // The answer is past `g`: blocks[..lo] < b, and it lies in lo..=hi.
            let (mut lo, mut step) = (g + 1, 1);
            loop {
                let probe = lo + step - 1;
                if probe >= n {
                    break (lo, n);
                }
                if blocks[probe] >= b {
                    break (lo, probe);
                }
                lo = probe + 1;
                step *= 2;
            }
        }
        std::cmp::Ordering::Greater => {
            // The answer is at most `g`: blocks[hi] >= b, and it lies in lo..=hi.
            let (mut hi, mut step) = (g, 1);
            loop {
                if hi - from < step {
                    break (from, hi);
                }
                let probe = hi - step;
                if blocks[probe] < b {
                    break (probe + 1, hi);
                }
                hi = probe;
                step *= 2;
            }
        }
    };
    lo + blocks[lo..hi].partition_point(|&x| x < b)
}

/// The entry ranges of `block` into `ranges`: (query weight, start, end) per query term
/// present in the block, in ascending term order, found through the term's block list
/// (`bounds.starts`, `bounds.lengths`): its slot there comes from the per-query table, or
/// [`find_block`] for very large queries × indexes and for the first blocks of a probe that
/// defers the table. The start of every range is prefetched.
#[inline(always)]
fn block_ranges(
    a: &BlockArrays<'_>,
    block: usize,
    terms: &[QueryTerm],
    positions: Option<&SlotRows<'_>>,
    ranges: &mut Vec<(f64, usize, usize)>,
) {
    ranges.clear();
    for (i, t) in terms.iter().enumerate() {
        let Some(slot) = pair_slot(a, positions, i, t, block) else {
            continue;
        };
        let (es, ee) = a.entries(slot);
        ranges.push((t.weight as f64, es, ee));
    }
    for &(_, es, _) in ranges.iter() {
        prefetch(a.entry_docs[es..].as_ptr());
        prefetch(a.entry_values[es..].as_ptr());
    }
}

/// The slot (place in the lists) of the pair of the `i`-th present query term `t` and
/// `block`, none where the term is absent from the block: from the slot table's row or the
/// term's dense column, or without them ([`block_ranges`]) by [`find_block`] in its list.
#[inline(always)]
fn pair_slot(
    a: &BlockArrays<'_>,
    positions: Option<&SlotRows<'_>>,
    i: usize,
    t: &QueryTerm,
    block: usize,
) -> Option<usize> {
    match positions {
        Some(rows) => rows.slot(i, block),
        None => {
            let blocks = &a.bound_blocks[t.start..t.end];
            find_block(blocks, block as u32, a.num_blocks()).map(|p| t.start + p)
        }
    }
}

/// One (query term, block) pair of a block [`visit_blocks`] scores.
#[derive(Debug, Clone, Copy)]
struct Pair {
    /// The term's place in the query's present terms (ascending term order).
    term: usize,
    /// The pair's place in the lists.
    slot: usize,
    /// Whether the three fields below are read from the lists yet ([`Pair::read`]).
    read: bool,
    /// The pair's entries: `start..end`.
    start: usize,
    end: usize,
    /// The pair's bound, `q_t · scale_t · code_t(b)`, as the bound pass computes it.
    bound: f32,
}

impl Pair {
    /// Reads the pair's entries and bound from the lists (once); `terms` are the query's
    /// present terms.
    #[inline(always)]
    fn read(&mut self, a: &BlockArrays<'_>, terms: &[QueryTerm]) {
        if !self.read {
            let t = &terms[self.term];
            let (start, end) = a.entries(self.slot);
            self.start = start;
            self.end = end;
            self.bound = t.weight * t.scale * f32::from(a.bound_codes[self.slot]);
            self.read = true;
        }
    }
}

/// The pairs of `block` into `pairs`, in `order` (the query terms present in the block;
/// see [`block_ranges`] for `positions`): only the slots, except for the first
/// [`ENTRIES_AHEAD`], which are read and whose first entries are fetched. (A block left
/// early never reads the rest: on the topical 1M collection of BENCHMARKS.md, an exact
/// search leaves 90 % of the blocks it scores, after a third of their pairs.)
fn block_pairs(
    a: &BlockArrays<'_>,
    block: usize,
    terms: &[QueryTerm],
    order: &[usize],
    positions: Option<&SlotRows<'_>>,
    pairs: &mut Vec<Pair>,
) {
    pairs.clear();
    for &i in order {
        let t = &terms[i];
        let Some(slot) = pair_slot(a, positions, i, t, block) else {
            continue;
        };
        pairs.push(Pair {
            term: i,
            slot,
            read: false,
            start: 0,
            end: 0,
            bound: 0.0,
        });
    }
    for p in pairs.iter_mut().take(ENTRIES_AHEAD) {
        p.read(a, terms);
        prefetch(a.entry_docs[p.start..].as_ptr());
        prefetch(a.entry_values[p.start..].as_ptr());
    }
}

/// Pairs of a block [`visit_blocks`] reads, and whose first entries it fetches, while
/// the block before is scored.
const ENTRIES_AHEAD: usize = 8;

/// Query terms (heaviest first) whose pairs' list entries [`visit_blocks`] fetches two
/// blocks ahead.
const LISTS_AHEAD: usize = 16;

/// Scores `block` as [`score_block`] does, unless it can leave it early: with
/// `stop_below` (the block's inflated bound, `U(b)`), its pairs are first added
/// heaviest query weight first, and after each one the best score so far plus what the
/// pairs still to come may add (`U(b)` less the bounds of the bound terms' pairs added,
/// plus the bounds of the other terms' pairs not added yet) bounds every score of the
/// block. Once that is below the current k-th score, no document of the block can enter
/// the top-k, and the block is left. Once the best score so far reaches the k-th, the
/// block may offer a document and is scored. A block not left is scored again in
/// ascending term order (the brute force's order of summation), so every score offered
/// is bit-identical to it; only blocks that could offer nothing are left, whatever the
/// search's alpha and beta. Returns the entries the block cost: those added before it was
/// left, or all of its entries (the cost model of `Auto`'s checks, [`SwitchRule`], is
/// fitted to one pass over a scored block's entries; the first pass over a block not left
/// is not counted).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn score_visited(
    a: &BlockArrays<'_>,
    block: usize,
    stop_below: Option<f32>,
    terms: &[QueryTerm],
    pairs: &mut [Pair],
    ranges: &mut Vec<(f64, usize, usize)>,
    acc: &mut [f64; 256],
    top: &mut TopK,
    offer: &mut impl FnMut(&mut TopK, u32, f32) -> bool,
) -> usize {
    let floor = top.floor();
    let mut added = 0;
    #[cfg(test)]
    let stop_below = stop_below.filter(|_| !NEVER_LEAVE.with(|c| c.get()));
    if let Some(bound) = stop_below.filter(|_| floor > 0.0) {
        let first = block * a.block_size;
        let len = a.block_size.min(a.num_docs - first);
        acc[..len].fill(0.0);
        // What the pairs still to come may add, in two parts: `U(b)` less the bound
        // terms' pairs added, and the other terms' pairs not added yet (beta < 1: not in
        // `U(b)`, each one's own bound).
        let mut rest_bound = f64::from(bound);
        let mut rest_other = 0.0f64;
        for p in pairs.iter_mut().filter(|p| !terms[p.term].bound) {
            p.read(a, terms);
            rest_other += f64::from(p.bound);
        }
        let (widen, least) = stop_widening(pairs.len());
        let floor = f64::from(floor);
        let mut best = 0.0f64;
        for p in pairs.iter_mut() {
            p.read(a, terms);
            let weight = f64::from(terms[p.term].weight);
            let (docs, values) = (
                &a.entry_docs[p.start..p.end],
                &a.entry_values[p.start..p.end],
            );
            for (&d, &v) in docs.iter().zip(values) {
                let s = &mut acc[d as usize];
                *s += weight * f64::from(v);
                best = best.max(*s);
            }
            added += p.end - p.start;
            if terms[p.term].bound {
                rest_bound -= f64::from(p.bound);
            } else {
                rest_other -= f64::from(p.bound);
            }
            let rest = rest_bound.max(0.0) + rest_other.max(0.0);
            if (best + rest) * widen + least < floor {
                #[cfg(test)]
                LEFT_EARLY.with(|c| c.set(c.get() + 1));
                return added;
            }
            if best * widen + least >= floor {
                break;
            }
        }
    }
    // Ascending term order: each pair at its term's place, absent terms dropped.
    ranges.clear();
    ranges.resize(terms.len(), (0.0, 0, 0));
    for p in pairs.iter_mut() {
        p.read(a, terms);
        ranges[p.term] = (f64::from(terms[p.term].weight), p.start, p.end);
    }
    ranges.retain(|r| r.1 < r.2);
    score_block(a, block, ranges, acc, top, offer);
    ranges.iter().map(|r| r.2 - r.1).sum::<usize>()
}

/// The widening (factor, then absolute term) of [`score_visited`]'s bound over `pairs`
/// pairs: the f64 sums in another order than the exact scores' (`pairs * 2^-53`), the
/// scores' rounding to f32 (`2^-24`) and each pair bound's f32 roundings (`3 * 2^-24`),
/// about `4 * 2^-24` relative in all, against a factor of at least `1 + 128 * 2^-24`
/// (`(pairs + 16) * 8 * 2^-24`; [`inflate`] already covers `U(b)`'s own sum); the absolute
/// term covers contributions underflowing into subnormals.
fn stop_widening(pairs: usize) -> (f64, f64) {
    let m = pairs as f64;
    (
        1.0 + (m + 16.0) * 4.0 * f64::from(f32::EPSILON),
        (m + 1.0) * 2f64.powi(-140),
    )
}

/// Per query term, its slot (place in the lists) in every block of the segment (none where
/// the term is absent): the term's dense column when it has one (a slot a block, `u32::MAX`
/// where absent; read in place, not copied: on the Quora questions of BENCHMARKS.md the
/// copies took 7 % of a search), else its row of the per-query slot table (see
/// [`Scratch::positions`]).
struct SlotRows<'a> {
    rows: Vec<Row<'a>>,
}

/// Where [`SlotRows`] finds one term's slots.
#[derive(Clone, Copy)]
enum Row<'a> {
    Column(&'a [u32]),
    Table(&'a [RankWord]),
}

impl<'a> SlotRows<'a> {
    /// The rows of `terms` ([`fill_tables`] or [`fill_slots`] filled the table's rows of the
    /// terms without a column).
    fn new(dense: DenseView<'a>, terms: &[QueryTerm], table: &'a [RankWord], nb: usize) -> Self {
        let w = words(nb);
        let rows = terms
            .iter()
            .enumerate()
            .map(|(i, t)| match dense.column(t.term) {
                Some((_, slots)) => Row::Column(slots),
                None => Row::Table(&table[i * w..(i + 1) * w]),
            })
            .collect();
        SlotRows { rows }
    }

    /// The slot of (query term `i`, `block`), or `None` when the term is absent from the
    /// block.
    #[inline(always)]
    fn slot(&self, i: usize, block: usize) -> Option<usize> {
        match self.rows[i] {
            Row::Column(slots) => match slots[block] {
                u32::MAX => None,
                slot => Some(slot as usize),
            },
            Row::Table(row) => {
                let word = row[block / 64];
                let bit = 1u64 << (block % 64);
                (word.bits & bit != 0)
                    .then(|| (word.base + u64::from((word.bits & (bit - 1)).count_ones())) as usize)
            }
        }
    }

    /// Fetches every query term's slot in `block`.
    #[inline(always)]
    fn prefetch(&self, block: usize) {
        for row in &self.rows {
            match *row {
                Row::Column(slots) => {
                    if let Some(p) = slots.get(block) {
                        prefetch(p);
                    }
                }
                Row::Table(row) => {
                    if let Some(p) = row.get(block / 64) {
                        prefetch(p);
                    }
                }
            }
        }
    }
}

/// Scores `block` from its entry `ranges` ([`accumulate`]) and offers each document whose
/// score reaches the current k-th to `top` through `offer` (its local number and exact
/// score).
#[inline(always)]
fn score_block(
    a: &BlockArrays<'_>,
    block: usize,
    ranges: &[(f64, usize, usize)],
    acc: &mut [f64; 256],
    top: &mut TopK,
    offer: &mut impl FnMut(&mut TopK, u32, f32) -> bool,
) {
    let (docs, scores) = accumulate(a, block, ranges, acc);
    // Only a score at least the k-th may enter (ties may win on document number).
    let floor = top.floor();
    for (&doc, &s) in docs.iter().zip(scores) {
        let s = s as f32;
        if s >= floor {
            offer(top, doc, s);
        }
    }
}

/// The exact scores of the documents of `block` (in `acc`, by block slot) from its entry
/// ranges, and their local numbers: term after term in ascending term order, `q as f64 * w
/// as f64` added per document (the per-document order of additions of `SparseView::dot`,
/// hence bit-identical scores).
#[inline(always)]
fn accumulate<'a, 'b>(
    a: &BlockArrays<'a>,
    block: usize,
    ranges: &[(f64, usize, usize)],
    acc: &'b mut [f64; 256],
) -> (&'a [u32], &'b [f64]) {
    let first = block * a.block_size;
    let len = a.block_size.min(a.num_docs - first);
    acc[..len].fill(0.0);
    for &(w, es, ee) in ranges {
        for (&d, &v) in a.entry_docs[es..ee].iter().zip(&a.entry_values[es..ee]) {
            acc[d as usize] += w * v as f64;
        }
    }
    (&a.doc_order[first..first + len], &acc[..len])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xorshift;
    use crate::{IndexBuilder, Reorder};
    use splade_sparse::SparseVector;

    /// A row of the slot table gives every block's slot: the list's place of the block plus
    /// the list's first slot where the block is in the list, none elsewhere (lists empty,
    /// sparse, full; block counts on and off a multiple of 64; a row written over an older
    /// one), and `write_row` calls back once an entry, in order.
    #[test]
    fn slot_table_rows_give_each_blocks_place_in_the_list() {
        let mut next = xorshift(0x2f8b_a2c4_6d3e_91b7_u64);
        let mut row = Vec::new();
        for round in 0..300 {
            let nb = [1usize, 63, 64, 65, 128, 1000, 4097][round % 7];
            let density = [0.0, 0.01, 0.3, 0.9, 1.0][round % 5];
            let blocks: Vec<u32> = (0..nb as u32)
                .filter(|_| (next() % 1000) as f64 / 1000.0 < density)
                .collect();
            let first = (next() % 1_000_000) as usize;
            // The row is reused from the round before, as the scratch's rows are.
            row.resize(
                words(nb),
                RankWord {
                    bits: u64::MAX,
                    base: 7,
                },
            );
            let mut seen = Vec::new();
            write_row(&mut row[..words(nb)], &blocks, first, |j, b| {
                seen.push((j, b))
            });
            let want: Vec<(usize, usize)> = blocks
                .iter()
                .enumerate()
                .map(|(j, &b)| (j, b as usize))
                .collect();
            assert_eq!(seen, want);
            let rows = SlotRows {
                rows: vec![Row::Table(&row[..words(nb)])],
            };
            for b in 0..nb {
                let want = blocks.binary_search(&(b as u32)).ok().map(|j| first + j);
                assert_eq!(rows.slot(0, b), want, "nb {nb} block {b}");
            }
        }
    }

    /// The batched queue visits the same blocks in the same order as one heap of every key,
    /// whatever the rule (several refills: thousands of keys, equal bounds included) and
    /// whatever the cutoff below which keys are made late (none, the sampled one, one above
    /// every bound).
    #[test]
    fn block_queue_visits_as_one_heap() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1du64);
        let contributing = 3;
        for round in 0..120 {
            let n = [0, 1, 5, 300, 3000, 20000][round % 6];
            // Zero bounds (not candidates) included.
            let bounds: Vec<f32> = (0..n).map(|_| (next() % 500) as f32 / 7.0).collect();
            let all = keys_between(&bounds, contributing, 0.0, f32::INFINITY);
            let (k, alpha) = ([1, 10, 100, 1000][round % 4], [1.0, 0.9, 0.5][round % 3]);
            // The score "found" in each visited block (at most its bound) drives the k-th
            // score up.
            let score = |b: usize| (((b as u64 * 2_654_435_761) % 400) as f32 / 7.0).min(bounds[b]);
            let mut heap = BinaryHeap::from(all.clone());
            let (mut top, mut want) = (TopK::new(k), Vec::new());
            while let Some(key) = heap.pop() {
                let (bound, block) = unkey(key);
                if !top.may_admit(bound * alpha) {
                    break;
                }
                want.push(block);
                top.push(block as u32, score(block));
            }
            let cut = match (round / 6) % 3 {
                0 => 0.0,
                1 => cutoff(&bounds, contributing),
                _ => inflate(500.0 / 7.0, contributing) * 2.0,
            };
            let keys = if cut > 0.0 {
                keys_between(&bounds, contributing, cut, f32::INFINITY)
            } else {
                all.clone()
            };
            let mut queue = BlockQueue::new(keys, (&bounds, contributing, cut));
            assert_eq!(queue.candidates, all.len());
            let (mut top, mut got) = (TopK::new(k), Vec::new());
            while let Some((_, block)) = queue.next(&top, alpha) {
                got.push(block);
                top.push(block as u32, score(block));
            }
            assert_eq!(
                got.len(),
                want.len(),
                "n {n} k {k} alpha {alpha} cutoff {cut}"
            );
            assert_eq!(got, want);
        }
    }

    /// The sampled cutoff keeps about `UPFRONT` blocks up front on a large segment, and
    /// every block on a small one.
    #[test]
    fn cutoff_keeps_about_upfront_blocks() {
        let bounds: Vec<f32> = (0..20_000u32)
            .map(|b| ((b * 7919) % 20_011) as f32)
            .collect();
        let cut = cutoff(&bounds, 5);
        let upfront = keys_between(&bounds, 5, cut, f32::INFINITY).len();
        assert!((UPFRONT / 2..=UPFRONT * 2).contains(&upfront), "{upfront}");
        assert_eq!(cutoff(&bounds[..4 * UPFRONT - 1], 5), 0.0);
    }

    /// `find_block` agrees with a binary search on sparse, dense and skewed lists.
    #[test]
    fn find_block_agrees_with_binary_search() {
        let mut next = xorshift(0x1234_5678_9abc_def1u64);
        for round in 0..300 {
            let nb = 1 + (next() % 5000) as usize;
            let density = [0.001, 0.05, 0.5, 0.95, 1.0][round % 5];
            let skew = round % 3 == 0;
            let blocks: Vec<u32> = (0..nb as u32)
                .filter(|&b| {
                    let p = if skew && b as usize > nb / 4 {
                        density / 20.0
                    } else {
                        density
                    };
                    (next() % 10_000) as f64 / 10_000.0 < p
                })
                .collect();
            for b in 0..nb as u32 {
                assert_eq!(
                    find_block(&blocks, b, nb),
                    blocks.binary_search(&b).ok(),
                    "nb {nb} b {b} len {}",
                    blocks.len()
                );
            }
        }
    }

    /// Drawn vectors of `n` terms below `dim` with flat weights (1 to 1.23), from `seed`.
    fn flat_vectors(seed: u64, dim: u32) -> impl FnMut(usize) -> SparseVector {
        let mut next = xorshift(seed);
        move |n| {
            crate::drawn_vector(n, || {
                (
                    (next() % u64::from(dim)) as u32,
                    1.0 + (next() % 16) as f32 / 64.0,
                )
            })
        }
    }

    /// A searcher made for each query (as `Index::search` makes one) still probes block-max
    /// pruning now and then once a segment goes term at a time directly: the search number
    /// that steers it counts the thread's searches, not the searcher's.
    #[test]
    fn one_searcher_a_query_still_probes_now_and_then() {
        let dim = 100;
        let mut vector = flat_vectors(0x2545_f491_4f6c_dd1d_u64, dim);
        // Flat weights over a small vocabulary: every block's bound passes, so every probe
        // hands over to term at a time. Short queries over enough documents that term at a
        // time costs several probes (so the segment is not sent there without one).
        let mut b = IndexBuilder::new(dim as usize).reorder(crate::Reorder::None);
        for d in 0..8000 {
            b.add(&format!("d{d}"), vector(40).view()).unwrap();
        }
        let index = b.build().unwrap();
        let queries: Vec<SparseVector> = (0..300).map(|_| vector(4)).collect();
        let options = crate::SearchOptions::new(10);
        let probed: Vec<bool> = queries
            .iter()
            .map(|q| {
                let mut searcher = crate::Searcher::new(&index);
                let hits = searcher.search(q.view(), &options);
                assert_eq!(hits, index.brute_force_top_k(q.view(), 10));
                let stats = searcher.stats();
                assert_eq!(
                    stats.segments_term_at_a_time, 1,
                    "every search ends term at a time"
                );
                stats.blocks_candidate > 0
            })
            .collect();
        let later = probed[100..].iter().filter(|&&p| p).count();
        assert!(
            probed[..4].iter().all(|&p| p),
            "the first searches probe: {probed:?}"
        );
        assert!(
            (1..=20).contains(&later),
            "{later} of the last 200 searches probed"
        );
    }

    /// `flat` documents of 40 flat-weighted terms from `vector` (in insertion order), then 600
    /// documents with a term of their own each (ids 100 to 699, weight 2) for short queries
    /// over rare terms.
    fn flat_with_rare_terms(vector: &mut impl FnMut(usize) -> SparseVector, flat: usize) -> Index {
        let mut b = IndexBuilder::new(1000).reorder(crate::Reorder::None);
        for d in 0..flat {
            b.add(&format!("d{d}"), vector(40).view()).unwrap();
        }
        for d in 0..600u32 {
            let v = SparseVector::from_pairs(vec![(100 + d, 2.0)]).unwrap();
            b.add(&format!("r{d}"), v.view()).unwrap();
        }
        b.build().unwrap()
    }

    /// Long queries whose probes hand over do not send short ones term at a time: each class
    /// of query lengths has its own history. Flat 12-term queries over a small vocabulary
    /// (every probe hands over) alternate with 2-term queries for rare terms (block-max
    /// finishes): the short ones keep probing and finishing, the long ones soon skip the
    /// probe, and every hit is exact.
    #[test]
    fn long_queries_handing_over_leave_short_ones_probing() {
        let mut vector = flat_vectors(0x510e_527f_ade6_82d1_u64, 100);
        let index = flat_with_rare_terms(&mut vector, 8000);
        let options = crate::SearchOptions::new(10);
        let mut searcher = crate::Searcher::new(&index);
        let (mut long_probes, mut short_finished) = (0, 0);
        for round in 0..60u32 {
            for _ in 0..4 {
                let q = vector(12);
                assert_eq!(
                    searcher.search(q.view(), &options),
                    index.brute_force_top_k(q.view(), 10)
                );
                let stats = searcher.stats();
                assert_eq!(
                    stats.segments_term_at_a_time, 1,
                    "long queries end term at a time"
                );
                long_probes += usize::from(round >= 20 && stats.blocks_candidate > 0);
            }
            let rare =
                SparseVector::from_pairs(vec![(100 + round, 1.0), (400 + round, 0.5)]).unwrap();
            let hits = searcher.search(rare.view(), &options);
            assert_eq!(hits, index.brute_force_top_k(rare.view(), 10));
            let stats = searcher.stats();
            short_finished +=
                usize::from(stats.blocks_candidate > 0 && stats.segments_term_at_a_time == 0);
        }
        assert_eq!(
            short_finished, 60,
            "every short query probes and finishes by block-max"
        );
        assert!(
            long_probes <= 16,
            "{long_probes} of the last 160 long queries probed"
        );
    }

    /// A probe whose slot table is left for later (its segment's last probes of queries of
    /// that length handed over) returns the hits it returns with the table made up front,
    /// whether it then hands over or goes on past its first check and fills the table there.
    /// Flat documents (12-term queries: every probe hands over) and, every 200th document, one
    /// holding term 500 at a weight falling with its number (one a block: a 1-term query for
    /// the top 20 goes on at the check, scores about 20 blocks, most through the late table,
    /// and finishes by block-max), searched approximately on two identical indexes, one whose
    /// history says "hands over" before each search (every search defers), the other's
    /// "finished" (none does).
    #[test]
    fn deferred_slot_table_gives_the_same_hits() {
        let build = || {
            let mut vector = flat_vectors(0x1f83_d9ab_fb41_bd6b_u64, 100);
            let mut b = IndexBuilder::new(1000).reorder(crate::Reorder::None);
            for d in 0..8000u32 {
                let mut pairs: Vec<(u32, f32)> = vector(40).view().iter().collect();
                if d % 200 == 0 {
                    pairs.push((500, 5.0 - d as f32 / 8000.0));
                }
                let v = SparseVector::from_pairs(pairs).unwrap();
                b.add(&format!("d{d}"), v.view()).unwrap();
            }
            b.build().unwrap()
        };
        let (primed, plain) = (build(), build());
        let options = crate::SearchOptions {
            method: crate::Method::approximate(0.95, 1.0).unwrap(),
            ..crate::SearchOptions::new(20)
        };
        let mut vector = flat_vectors(0x5be0_cd19_137e_2179_u64, 100);
        let mut queries: Vec<SparseVector> = (0..20).map(|_| vector(12)).collect();
        queries.push(SparseVector::from_pairs(vec![(500, 1.0)]).unwrap());
        let history = |index: &Index, q: &SparseVector, handed_over: bool| {
            let [slot] = index.slots() else { panic!() };
            let history = slot.segment.traversal_memory().for_query(q.nnz());
            (0..4).for_each(|_| history.record(handed_over));
            assert_eq!(history.usually_hands_over(), handed_over);
        };
        let deferrals = || DEFERRALS.with(|c| c.get());
        let (mut went_on, mut handed_over) = (0, 0);
        for q in &queries {
            history(&plain, q, false);
            let before = deferrals();
            let want = crate::Searcher::new(&plain).search(q.view(), &options);
            assert_eq!(
                deferrals(),
                before,
                "the plain index makes its table up front"
            );
            history(&primed, q, true);
            let mut searcher = crate::Searcher::new(&primed);
            let hits = searcher.search(q.view(), &options);
            let (deferred, filled) = (deferrals().0 - before.0, deferrals().1 - before.1);
            assert_eq!(hits, want);
            assert_eq!(deferred, 1, "the primed index defers its table");
            let stats = searcher.stats();
            if stats.segments_term_at_a_time == 1 {
                assert_eq!(filled, 0);
                handed_over += 1;
            } else {
                assert_eq!(filled, 1, "the probe went on: the table is filled late");
                assert!(stats.blocks_scored >= 16, "{}", stats.blocks_scored);
                went_on += 1;
            }
        }
        assert_eq!((handed_over, went_on), (20, 1));
    }

    /// A block left early ([`score_visited`]) could not have offered a document: every
    /// search, exact or approximate (beta < 1 too: the pairs of terms outside the bounds
    /// count with their own bounds), gives the hits it gives with every block scored in
    /// full, and exact ones those of the brute force, on a layout where more than an eighth
    /// of the scored blocks are left.
    #[test]
    fn blocks_left_early_change_no_hit() {
        let dim = 2000u32;
        let mut next = xorshift(0x6a09_e667_f3bc_c908_u64);
        // Topics of 40 terms: a document draws most of its terms from its topic, weights
        // spread over two orders of magnitude, so the bounds prune but many blocks pass.
        let mut b = IndexBuilder::new(dim as usize).reorder(Reorder::None);
        for d in 0..6000u32 {
            let topic = (next() % 50) as u32;
            let n = 10 + (next() % 30) as usize;
            let v = crate::drawn_vector(n, || {
                let t = if next().is_multiple_of(4) {
                    (next() % u64::from(dim)) as u32
                } else {
                    topic * 40 + (next() % 40) as u32
                };
                (t, 0.01 + (next() % 1000) as f32 / 100.0)
            });
            b.add(&format!("d{d}"), v.view()).unwrap();
        }
        let index = b.build().unwrap();
        let queries: Vec<SparseVector> = (0..60)
            .map(|i| {
                let topic = (i % 50) as u32;
                crate::drawn_vector(8 + i % 24, || {
                    let t = if next().is_multiple_of(3) {
                        (next() % u64::from(dim)) as u32
                    } else {
                        topic * 40 + (next() % 40) as u32
                    };
                    (t, 0.05 + (next() % 300) as f32 / 100.0)
                })
            })
            .collect();
        let methods = [
            crate::Method::Exact,
            crate::Method::approximate(0.9, 1.0).unwrap(),
            crate::Method::approximate(0.8, 0.5).unwrap(),
            crate::Method::approximate(1.0, 0.3).unwrap(),
        ];
        let left = || LEFT_EARLY.with(|c| c.get());
        let mut searcher = crate::Searcher::new(&index);
        let (mut left_early, mut scored) = (0, 0);
        for q in &queries {
            for method in methods {
                for k in [1, 10, 50] {
                    let options = crate::SearchOptions {
                        method,
                        traversal: Traversal::BlockMax,
                        ..crate::SearchOptions::new(k)
                    };
                    NEVER_LEAVE.with(|c| c.set(true));
                    let before = left();
                    let want = searcher.search(q.view(), &options);
                    assert_eq!(left(), before, "never left with NEVER_LEAVE");
                    NEVER_LEAVE.with(|c| c.set(false));
                    let hits = searcher.search(q.view(), &options);
                    left_early += left() - before;
                    scored += searcher.stats().blocks_scored;
                    assert_eq!(hits, want, "{method:?} k {k}");
                    if method == crate::Method::Exact {
                        assert_eq!(hits, index.brute_force_top_k(q.view(), k));
                    }
                }
            }
        }
        assert_left_early(left_early, scored, 8);
    }

    /// Blocks are left early ([`score_visited`]) without changing a hit where the pairs
    /// come from dense columns, from the slot table or from `find_block` (no table), over
    /// three segments with deleted documents and documents tied with others: block-max
    /// search gives the hits of scoring every visited block in full, and exact searches
    /// (block-max and `Auto`) those of the brute force.
    #[test]
    fn blocks_left_early_across_segments_columns_and_ties() {
        let mut next = xorshift(0x510e_527f_ade6_82d1_u64);
        let dim = 300u64;
        let tmp = tempfile::tempdir().unwrap();
        let mut w = crate::IndexWriter::create(tmp.path(), dim as usize)
            .unwrap()
            .block_size(4)
            .merge_policy(crate::MergePolicy::never());
        let (mut d, mut kept) = (0, Vec::<SparseVector>::new());
        for size in [4200, 5000, 4150] {
            for _ in 0..size {
                // Every fifth document repeats an earlier one: ties of equal scores.
                let v = match kept.len() {
                    n if n > 10 && d % 5 == 0 => kept[(next() % n as u64) as usize].clone(),
                    _ => skewed(10, (4, 3), dim, &mut next),
                };
                w.add(&format!("d{d}"), v.view()).unwrap();
                kept.push(v);
                d += 1;
            }
            w.commit().unwrap();
        }
        for d in (0..d).step_by(7) {
            assert!(w.delete(&format!("d{d}")));
        }
        w.commit().unwrap();
        let index = open_three_segments_with_columns(tmp.path());
        let (mut table, mut lists) = (Scratch::new(), Scratch::new());
        lists.max_positions = 0;
        let left = || LEFT_EARLY.with(|c| c.get());
        let (mut left_early, mut scored) = (0, 0);
        for _ in 0..20 {
            let q = skewed(12, (4, 3), dim, &mut next);
            for k in [1, 10, 50] {
                let exact = index.brute_force_top_k(q.view(), k);
                for knobs in [(1.0, 1.0), (0.9, 1.0), (0.8, 0.5)] {
                    for scratch in [&mut table, &mut lists] {
                        let search = |traversal, scratch: &mut Scratch| {
                            block_max_top_k(&index, q.view(), k, knobs, traversal, scratch)
                        };
                        NEVER_LEAVE.with(|c| c.set(true));
                        let want = search(Traversal::BlockMax, scratch);
                        NEVER_LEAVE.with(|c| c.set(false));
                        let before = left();
                        let got = search(Traversal::BlockMax, scratch);
                        left_early += left() - before;
                        scored += scratch.stats.blocks_scored;
                        assert_eq!(got, want, "{knobs:?} k {k}");
                        if knobs == (1.0, 1.0) {
                            assert_eq!(got, exact);
                            assert_eq!(search(Traversal::Auto, scratch), exact);
                        }
                    }
                }
            }
        }
        assert_left_early(left_early, scored, 4);
    }

    /// The index at `dir`, checked to have three segments, each with dense columns.
    fn open_three_segments_with_columns(dir: &std::path::Path) -> Index {
        let index = crate::Index::open(dir).unwrap();
        assert_eq!(index.num_segments(), 3);
        for slot in index.slots() {
            assert!(slot.segment.dense_bounds().columns() >= 3);
        }
        index
    }

    /// More than one in `share` of the `scored` blocks were left early.
    fn assert_left_early(left_early: usize, scored: usize, share: usize) {
        assert!(
            left_early * share > scored,
            "{left_early} of {scored} scored blocks left early"
        );
    }

    /// `lower_bound` finds the first place at or after `from` whose block is at least `b`,
    /// as a partition point does, on lists dense and sparse, from any place.
    #[test]
    fn lower_bound_is_the_partition_point_from_a_place() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15_u64);
        for round in 0..300 {
            let nb = [1usize, 7, 64, 1000, 31_250][round % 5];
            let density = [1u64, 2, 10, 100, 1000][round / 5 % 5];
            let blocks: Vec<u32> = (0..nb as u32)
                .filter(|_| next() % 1000 < 1000 / density)
                .collect();
            for _ in 0..50 {
                let b = (next() % (nb as u64 + 2)) as u32;
                let from = (next() % (blocks.len() as u64 + 2)) as usize;
                let want = blocks
                    .partition_point(|&x| x < b)
                    .max(from)
                    .min(blocks.len());
                assert_eq!(
                    lower_bound(&blocks, from, b, nb),
                    want,
                    "nb {nb} len {} b {b} from {from}",
                    blocks.len()
                );
            }
        }
    }

    /// The sampled probe's runs: in order, apart, inside the segment, about one block in
    /// `SAMPLE_EVERY`, one run at the start of each of `SAMPLE_RUNS` parts.
    #[test]
    fn sample_runs_take_about_one_block_in_sample_every() {
        for nb in [64usize, 65, 100, 1000, 6250, 31_250, 1 << 20] {
            let runs: Vec<_> = sample_runs(nb).collect();
            assert!(
                runs.len() <= SAMPLE_RUNS && runs.len() >= SAMPLE_RUNS - 1,
                "{nb}"
            );
            assert_eq!(runs[0].start, 0);
            assert!(runs.windows(2).all(|w| w[0].end < w[1].start), "{nb}");
            assert!(runs.iter().all(|r| !r.is_empty() && r.end <= nb), "{nb}");
            let taken: usize = runs.iter().map(|r| r.len()).sum();
            let (low, high) = (
                nb / SAMPLE_EVERY - SAMPLE_RUNS,
                nb / SAMPLE_EVERY + SAMPLE_RUNS,
            );
            assert!(taken >= low && taken <= high, "{nb}: {taken}");
        }
    }

    /// 40,000 documents of 40 flat terms drawn out of 100 (about 33 distinct, each term in
    /// about a third of the documents, so about 0.33 postings a document per query term),
    /// every 400th also holding term 500 with a weight near 5 (falling with the document
    /// number): one segment of over `MAX_TAAT_DOCS` documents, in insertion order.
    fn flat_with_a_heavy_term(vector: &mut impl FnMut(usize) -> SparseVector) -> Index {
        let mut b = IndexBuilder::new(1000).reorder(crate::Reorder::None);
        for d in 0..40_000u32 {
            let mut pairs: Vec<(u32, f32)> = vector(40).view().iter().collect();
            if d % 400 == 0 {
                pairs.push((500, 5.0 - d as f32 / 40_000.0));
            }
            b.add(
                &format!("d{d}"),
                SparseVector::from_pairs(pairs).unwrap().view(),
            )
            .unwrap();
        }
        b.build().unwrap()
    }

    /// The sampled probe's bounds are the full bound pass's on the sampled blocks (with and
    /// without dense columns, all terms or the heaviest half, terms absent from the segment
    /// included) and zero elsewhere, count the same contributing terms, and every bound is
    /// zero again after a sampled probe, whether it hands over or not.
    #[test]
    fn sampled_bounds_are_the_full_passes_and_are_cleared() {
        let mut vector = flat_vectors(0x7137_449b_23c5_dc4d_u64, 100);
        let index = flat_with_a_heavy_term(&mut vector);
        let [only] = index.slots() else { panic!() };
        let segment = &only.segment;
        let a = segment.blocks();
        let nb = a.num_blocks();
        let none = crate::segment::dense_bounds::DenseBounds::default();
        let dense = segment.dense_bounds();
        assert!(
            (0..100).any(|t| dense.column(t).is_some()),
            "some dense columns"
        );
        let mut pairs: Vec<(u32, f32)> = vector(12)
            .view()
            .iter()
            .map(|(t, w)| (t, w / 100.0))
            .collect();
        pairs.extend([(500, 10.0), (900, 1.0)]);
        let queries = [
            vector(12),
            vector(30),
            SparseVector::from_pairs(pairs).unwrap(),
        ];
        let in_sample = |b: usize| sample_runs(nb).any(|r| r.contains(&b));
        let (mut handed_over, mut kept) = (0, 0);
        for q in &queries {
            for beta in [1.0, 0.5] {
                let beta = bound_terms(q.view(), beta);
                for view in [dense, DenseView::from(&none)] {
                    let mut scratch = Scratch::new();
                    let full = candidates(&a, view, nb, q.view(), &beta, false, &mut scratch);
                    let want: Vec<u32> = scratch.bounds[..nb].iter().map(|v| v.to_bits()).collect();
                    let terms = present_terms(&a, q.view(), &beta);
                    let mut got = vec![0.0f32; nb];
                    assert_eq!(sample_bounds(&a, view, &terms, &mut got), full.contributing);
                    for (b, (&g, &w)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(g.to_bits(), if in_sample(b) { w } else { 0 }, "block {b}");
                    }
                    let mut scratch = Scratch::new();
                    let rule = SwitchRule::new(
                        segment.len(),
                        nb,
                        segment.term_df(),
                        a.bound_scales,
                        q.view(),
                    );
                    let mut top = TopK::new(5);
                    let offer = |top: &mut TopK, doc: u32, s: f32| {
                        top.push(doc, s);
                        true
                    };
                    let (hand_over, scored, positive) = sampled_probe(
                        &a,
                        view,
                        &terms,
                        0.9,
                        &rule.unwrap(),
                        &mut scratch,
                        &mut top,
                        offer,
                    );
                    assert!(scratch.bounds.iter().all(|&v| v == 0.0));
                    assert!(scored <= CHECK_AFTER && scored <= positive && positive > 0);
                    if hand_over {
                        handed_over += 1;
                    } else {
                        kept += 1;
                    }
                }
            }
        }
        assert!(handed_over > 0 && kept > 0, "{handed_over} {kept}");
    }

    /// An approximate search with alpha 1 and beta < 1 probes whatever the segment's history
    /// says (only an exact search may skip the probe on it): its hits depend on the query.
    #[test]
    fn alpha_one_with_fewer_bound_terms_still_probes() {
        let mut vector = flat_vectors(0x1f83_d9ab_5be0_cd19_u64, 100);
        let index = flat_with_rare_terms(&mut vector, 2000);
        let rare = SparseVector::from_pairs(vec![(150, 1.0), (420, 1.0)]).unwrap();
        let [slot] = index.slots() else { panic!() };
        let history = slot.segment.traversal_memory().for_query(rare.nnz());
        let options = crate::SearchOptions {
            method: crate::Method::approximate(1.0, 0.5).unwrap(),
            ..crate::SearchOptions::new(10)
        };
        for _ in 0..3 {
            (0..4).for_each(|_| history.record(true));
            assert!(history.usually_hands_over());
            let mut searcher = crate::Searcher::new(&index);
            searcher.search(rare.view(), &options);
            assert!(searcher.stats().blocks_candidate > 0, "it probed");
        }
    }

    /// On a segment of over `MAX_TAAT_DOCS` documents, queries with many postings a
    /// document are probed on a sample of the blocks first: flat ones (every block's bound
    /// passes) are handed over by it and get the exact hits; one led by a term of a few
    /// heavy documents (block-max prunes) is kept by it and gets the same hits as with no
    /// sample, approximate and exact; a rare-term query is not sampled, nor one whose many
    /// postings a document come from light terms.
    #[test]
    fn a_sampled_probe_hands_over_flat_queries_and_keeps_prunable_ones() {
        let mut vector = flat_vectors(0x3c6e_f372_fe94_f82b_u64, 100);
        let index = flat_with_a_heavy_term(&mut vector);
        assert!(index.len() > MAX_TAAT_DOCS);
        let approximate = crate::SearchOptions {
            method: crate::Method::approximate(0.9, 1.0).unwrap(),
            ..crate::SearchOptions::new(5)
        };
        let exact = crate::SearchOptions::new(5);
        let sampled = || SAMPLED.with(|c| c.get());
        let search = |q: &SparseVector, options: &crate::SearchOptions, off: bool| {
            NO_SAMPLING.with(|c| c.set(off));
            let mut searcher = crate::Searcher::new(&index);
            let hits = searcher.search(q.view(), options);
            NO_SAMPLING.with(|c| c.set(false));
            (hits, searcher.stats().segments_term_at_a_time)
        };
        // 24 flat draws (about 21 distinct terms) led by the heavy term (first, while the
        // segment's history is empty): about 7 postings a document, about 5 without the
        // lightest flat terms, which hold at most a tenth of the query's possible score
        // (SAMPLE_LIGHT_SHARE). A block without the heavy term is bounded by about 30, under
        // the 50 of a document with it: block-max prunes.
        let flat = vector(24);
        let led_by = |share: f32| {
            let mut pairs: Vec<(u32, f32)> =
                flat.view().iter().map(|(t, w)| (t, w * share)).collect();
            pairs.push((500, 10.0));
            SparseVector::from_pairs(pairs).unwrap()
        };
        let led = led_by(1.0);
        for options in [approximate, exact] {
            let before = sampled();
            let (hits, taat) = search(&led, &options, false);
            assert_eq!(sampled(), (before.0 + 1, before.1), "{options:?}");
            assert_eq!(taat, 0, "{options:?}: block-max finishes");
            let (unsampled, _) = search(&led, &options, true);
            assert_eq!(sampled(), (before.0 + 1, before.1));
            assert_eq!(hits, unsampled, "{options:?}");
            if options == exact {
                assert_eq!(hits, index.brute_force_top_k(led.view(), 5));
            }
        }
        // Flat queries of 12 draws (about 11 distinct terms of like weight): about 3.8
        // postings a document, about 3.4 without the lightest term (these four all reach 3).
        // (Exact searches soon skip the probe on the segment's history instead.)
        for _ in 0..4 {
            let q = vector(12);
            let before = sampled();
            NO_SAMPLING.with(|c| c.set(false));
            let mut searcher = crate::Searcher::new(&index);
            let hits = searcher.search(q.view(), &approximate);
            let stats = searcher.stats();
            assert_eq!(sampled(), (before.0 + 1, before.1 + 1));
            assert_eq!(stats.segments_term_at_a_time, 1);
            // The sample's blocks count as a probe's do before a hand-over.
            assert!(stats.blocks_scored > 0 && stats.blocks_scored <= stats.blocks_candidate);
            assert!(stats.blocks_candidate < stats.blocks_total / 4);
            assert_eq!(hits, index.brute_force_top_k(q.view(), 5));
            let (hits, taat) = search(&q, &exact, false);
            assert_eq!(taat, 1);
            assert_eq!(hits, index.brute_force_top_k(q.view(), 5));
        }
        let rare = SparseVector::from_pairs(vec![(500, 1.0)]).unwrap();
        let before = sampled();
        let (hits, _) = search(&rare, &approximate, false);
        assert_eq!(sampled(), before, "a rare term is not sampled");
        assert_eq!(hits, index.brute_force_top_k(rare.view(), 5));
        // The flat terms at a hundredth of their weight: as many postings a document, but
        // they carry next to nothing of the score, so no sample.
        let light = led_by(0.01);
        let before = sampled();
        let (hits, _) = search(&light, &approximate, false);
        assert_eq!(sampled(), before, "light common terms are not sampled");
        assert_eq!(hits, index.brute_force_top_k(light.view(), 5));
    }

    /// Where term at a time costs about what a probe would (long queries over a small segment
    /// of flat weights), exact and approximate searches alike go term at a time from the
    /// first search on, without scoring a block, and return the exact hits; where it costs
    /// many probes (short queries over rare terms), the first searches probe.
    #[test]
    fn term_at_a_time_without_a_probe_where_it_costs_about_one() {
        let mut vector = flat_vectors(0x6a09_e667_f3bc_c909_u64, 100);
        let index = flat_with_rare_terms(&mut vector, 2000);
        let approximate = crate::SearchOptions {
            method: crate::Method::approximate(0.8, 0.8).unwrap(),
            ..crate::SearchOptions::new(10)
        };
        for options in [crate::SearchOptions::new(10), approximate] {
            for _ in 0..5 {
                let q = vector(40);
                let mut searcher = crate::Searcher::new(&index);
                let hits = searcher.search(q.view(), &options);
                assert_eq!(hits, index.brute_force_top_k(q.view(), 10), "{options:?}");
                let stats = searcher.stats();
                assert_eq!(
                    (stats.segments_term_at_a_time, stats.blocks_candidate),
                    (1, 0),
                    "{options:?}"
                );
            }
            let rare = SparseVector::from_pairs(vec![(150, 1.0), (420, 1.0)]).unwrap();
            let mut searcher = crate::Searcher::new(&index);
            let hits = searcher.search(rare.view(), &options);
            assert_eq!(hits, index.brute_force_top_k(rare.view(), 10));
            assert!(searcher.stats().blocks_candidate > 0, "{options:?}");
        }
    }

    /// A long query whose blocks the first check costs too cheaply (with its model of 1.5 ns
    /// an entry and 100 ns a block, the 30 % of the blocks that pass look cheaper than term at
    /// a time, but scoring each is a pass over a hundred query terms): the late check hands
    /// the segment over after 128 blocks, and the hits stay exact. (Documents of 10 terms:
    /// blocks of 16, 2,000 of them, the first 600 heavy.)
    #[test]
    fn late_check_hands_long_queries_over() {
        let mut next = xorshift(0x3c6e_f372_fe94_f82b_u64);
        let mut b = IndexBuilder::new(200).reorder(crate::Reorder::None);
        let mut doc = |heavy: bool| {
            crate::drawn_vector(10, || {
                let w = if heavy {
                    1.0 + (next() % 16) as f32 / 160.0
                } else {
                    0.01
                };
                ((next() % 100) as u32, w)
            })
        };
        // 9,600 documents that hold the query's terms with heavy weights, then 22,400 that
        // hold them lightly (their blocks' bounds far below the k-th score, but postings
        // that term at a time adds up).
        for d in 0..32_000 {
            b.add(&format!("d{d}"), doc(d < 9600).view()).unwrap();
        }
        let index = b.build().unwrap();
        let q = SparseVector::from_pairs((0..100).map(|t| (t, 1.0)).collect()).unwrap();
        let mut searcher = crate::Searcher::new(&index);
        let hits = searcher.search(q.view(), &crate::SearchOptions::new(10));
        assert_eq!(hits, index.brute_force_top_k(q.view(), 10));
        let stats = searcher.stats();
        assert_eq!(
            (stats.blocks_scored, stats.segments_term_at_a_time),
            (128, 1),
            "{stats:?}"
        );
    }

    /// Exact search equals brute force with thousands of candidate blocks (several queue
    /// refills), and α = β = 1 equals exact.
    #[test]
    fn many_blocks_exact_equals_brute_force() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
        let dim = 200u64;
        let mut vector = |n: usize| {
            crate::drawn_vector(n, || ((next() % dim) as u32, (next() % 64) as f32 / 16.0))
        };
        let mut b = IndexBuilder::new(dim as usize).block_size(2);
        for d in 0..6000 {
            b.add(&format!("d{d}"), vector(12).view()).unwrap();
        }
        let index = b.build().unwrap();
        let mut scratch = Scratch::new();
        let mut deferred_used = 0;
        for _ in 0..30 {
            let q = vector(25);
            for k in [1, 10, 300, 2000] {
                let want = index.brute_force_top_k(q.view(), k);
                assert_eq!(
                    block_max_top_k(
                        &index,
                        q.view(),
                        k,
                        (1.0, 1.0),
                        Traversal::BlockMax,
                        &mut scratch
                    ),
                    want
                );
                // 3,000 blocks: keys are made up front only above a cutoff; k = 2000 needs
                // more blocks than that (the late keys).
                let scored = scratch.stats.blocks_scored;
                let [only] = index.slots() else { panic!() };
                let a = only.segment.blocks();
                let found = candidates(
                    &a,
                    only.segment.dense_bounds(),
                    a.num_blocks(),
                    q.view(),
                    &None,
                    false,
                    &mut scratch,
                );
                scratch.bounds.fill(0.0);
                assert!(found.cutoff > 0.0);
                deferred_used += usize::from(scored > found.keys.len());
            }
        }
        assert!(deferred_used >= 30, "{deferred_used}");
    }

    /// The slot table and the binary-search fallback find the same entries, in one
    /// segment and in several with deletions.
    #[test]
    fn position_table_and_binary_search_agree() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
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
                    let a = block_max_top_k(
                        index,
                        q.view(),
                        k,
                        (1.0, 1.0),
                        Traversal::BlockMax,
                        &mut table,
                    );
                    let b = block_max_top_k(
                        index,
                        q.view(),
                        k,
                        (1.0, 1.0),
                        Traversal::BlockMax,
                        &mut search,
                    );
                    assert_eq!(a, b);
                    assert_eq!(a, index.brute_force_top_k(q.view(), k));
                    let a = block_max_top_k(
                        index,
                        q.view(),
                        k,
                        (0.7, 0.5),
                        Traversal::BlockMax,
                        &mut table,
                    );
                    let b = block_max_top_k(
                        index,
                        q.view(),
                        k,
                        (0.7, 0.5),
                        Traversal::BlockMax,
                        &mut search,
                    );
                    assert_eq!(a, b);
                    assert!(a.iter().all(|h| !index.is_deleted(h.doc)));
                }
            }
        }
    }

    /// `n` random terms of `0..dim`: the first `head_draws` among the `head` first terms
    /// (so those are in most documents), the rest among the others; weights in (0, 7.7].
    fn skewed(
        n: usize,
        (head, head_draws): (u64, usize),
        dim: u64,
        next: &mut dyn FnMut() -> u64,
    ) -> SparseVector {
        let mut pairs: Vec<(u32, f32)> = (0..n)
            .map(|i| {
                let t = if i < head_draws {
                    next() % head
                } else {
                    head + next() % (dim - head)
                };
                (t as u32, (1 + next() % 997) as f32 / 131.0)
            })
            .collect();
        pairs.sort_by_key(|p| p.0);
        pairs.dedup_by_key(|p| p.0);
        SparseVector::from_pairs(pairs).unwrap()
    }

    /// The dense columns `dense` give the bounds, candidates, contributing terms and slots
    /// that the block lists alone give for `query` (bounds from `beta`'s terms when given),
    /// bit for bit; both scratches' bounds are left at zero.
    fn assert_columns_match_lists(
        a: &BlockArrays<'_>,
        dense: DenseView<'_>,
        query: SparseView<'_>,
        beta: &Option<SparseVector>,
        (with, without): (&mut Scratch, &mut Scratch),
    ) {
        let nb = a.num_blocks();
        let none = crate::segment::dense_bounds::DenseBounds::default();
        let lists = DenseView::from(&none);
        let x = candidates(a, dense, nb, query, beta, false, with);
        let y = candidates(a, lists, nb, query, beta, false, without);
        let bits = |s: &Scratch| {
            s.bounds[..nb]
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(with), bits(without));
        assert_eq!((x.keys, x.cutoff.to_bits()), (y.keys, y.cutoff.to_bits()));
        assert_eq!(x.contributing, y.contributing);
        assert!(x.table && y.table);
        let rows = |s: &Scratch, d: DenseView<'_>| {
            let rows = SlotRows::new(d, &x.terms, &s.positions, nb);
            (0..x.terms.len())
                .flat_map(|i| (0..nb).map(move |b| (i, b)))
                .map(|(i, b)| rows.slot(i, b))
                .collect::<Vec<_>>()
        };
        assert_eq!(rows(with, dense), rows(without, lists));
        with.bounds.fill(0.0);
        without.bounds.fill(0.0);
    }

    /// Dense columns give the bounds, slot table and candidates of the block lists, bit
    /// for bit, and the search stays exact: a segment of 2,000 blocks whose first terms are
    /// in nearly every block (dense columns) and the rest in few (lists), queries mixing
    /// both, weights of either sign and `beta < 1` (terms that only fill the table).
    #[test]
    fn dense_columns_match_the_lists() {
        let mut next = xorshift(0x51_7cc1_b727_220au64);
        let dim = 400u64;
        let vector = |n: usize, next: &mut dyn FnMut() -> u64| skewed(n, (6, 4), dim, next);
        let mut b = IndexBuilder::new(dim as usize).block_size(2);
        for d in 0..4000 {
            b.add(&format!("d{d}"), vector(14, &mut next).view())
                .unwrap();
        }
        let index = b.build().unwrap();
        let [only] = index.slots() else { panic!() };
        let segment = &only.segment;
        let a = segment.blocks();
        let nb = a.num_blocks();
        let dense = segment.dense_bounds();
        assert!(nb >= crate::segment::dense_bounds::MIN_DENSE_BLOCKS);
        assert!((4..=6).contains(&dense.columns()), "{}", dense.columns());
        let (mut with, mut without) = (Scratch::new(), Scratch::new());
        for round in 0..60 {
            let mut q = vector(10, &mut next);
            if round % 5 == 4 {
                let (i, mut v) = (q.indices().to_vec(), q.values().to_vec());
                v[0] = -v[0];
                q = SparseVector::new(i, v).unwrap();
            }
            let beta = (round % 3 == 0).then(|| q.view().top_k(4));
            assert_columns_match_lists(&a, dense, q.view(), &beta, (&mut with, &mut without));
            for (k, ab) in [(10, (1.0, 1.0)), (100, (1.0, 1.0)), (10, (0.8, 0.5))] {
                let got = block_max_top_k(&index, q.view(), k, ab, Traversal::BlockMax, &mut with);
                if ab == (1.0, 1.0) {
                    assert_eq!(got, index.brute_force_top_k(q.view(), k));
                }
            }
        }
    }

    /// Vectors over 600 terms: three terms in every one, 17 in about 15 % of them (in an
    /// eighth to a half of the blocks of two documents), and `n` drawn from the tail.
    fn widespread(n: usize, next: &mut dyn FnMut() -> u64) -> SparseVector {
        let mut terms: Vec<u32> = (0..3).collect();
        for t in 3..20u32 {
            if next() % 100 < 15 {
                terms.push(t);
            }
        }
        for _ in 0..n {
            terms.push((20 + next() % 580) as u32);
        }
        let mut pairs: Vec<(u32, f32)> = terms
            .into_iter()
            .map(|t| (t, (1 + next() % 997) as f32 / 131.0))
            .collect();
        pairs.sort_by_key(|p| p.0);
        pairs.dedup_by_key(|p| p.0);
        SparseVector::from_pairs(pairs).unwrap()
    }

    /// One segment of 4,000 [`widespread`] documents in blocks of two, in insertion order.
    fn widespread_index(next: &mut dyn FnMut() -> u64) -> Index {
        let mut b = IndexBuilder::new(600)
            .block_size(2)
            .reorder(crate::Reorder::None);
        for d in 0..4000 {
            b.add(&format!("d{d}"), widespread(6, next).view()).unwrap();
        }
        b.build().unwrap()
    }

    /// The wide set made by one of the threads of a parallel batch while the others search:
    /// every hit of the batch is the brute force's.
    #[test]
    fn wide_columns_made_during_a_parallel_batch_keep_every_hit_exact() {
        let mut next = xorshift(0x6a09_e667_f3bc_c908u64);
        let index = widespread_index(&mut next);
        let [only] = index.slots() else { panic!() };
        let narrow = only.segment.dense_bounds().columns();
        let queries: Vec<SparseVector> = (0..200).map(|_| widespread(4, &mut next)).collect();
        let views: Vec<_> = queries.iter().map(|q| q.view()).collect();
        use crate::Method;
        for method in [Method::Exact, Method::approximate(0.9, 0.8).unwrap()] {
            let options = crate::SearchOptions {
                k: 10,
                method,
                max_query_terms: None,
                traversal: Traversal::BlockMax,
            };
            let got = index.search_batch(&views, &options, Some(4)).unwrap();
            assert_eq!(got.len(), queries.len());
            if method == Method::Exact {
                for (hits, q) in got.iter().zip(&queries) {
                    assert_eq!(*hits, index.brute_force_top_k(q.view(), 10));
                }
            }
        }
        assert!(only.segment.dense_bounds().columns() > narrow);
    }

    /// The wide set of dense columns: made only after `WIDE_AFTER` block-max searches in a
    /// row finished (a hand-over starts the count again), within the block lists' bytes;
    /// then the bounds, candidates and slots are still the lists', bit for bit, and the
    /// search stays exact.
    #[test]
    fn wide_columns_come_after_finished_searches_and_match_the_lists() {
        use crate::segment::dense_bounds::WIDE_AFTER;
        let mut next = xorshift(0x0dd5_3c1a_77e2_9b41u64);
        let index = widespread_index(&mut next);
        let [only] = index.slots() else { panic!() };
        let segment = &only.segment;
        let a = segment.blocks();
        let nb = a.num_blocks();
        let narrow = segment.dense_bounds().columns();
        // Terms in an eighth to a half of the blocks, the candidates of the wide set.
        let between = (0..a.bound_offsets.len() - 1)
            .map(|t| (a.bound_offsets[t + 1] - a.bound_offsets[t]) as usize)
            .filter(|&len| len * 8 >= nb && len * 2 < nb)
            .count();
        assert!(narrow >= 2 && between >= 4, "{narrow} {between}");
        // Finished searches, then a hand-over: the count starts again.
        for _ in 0..WIDE_AFTER - 1 {
            segment.record_block_max(true);
        }
        segment.record_block_max(false);
        for _ in 0..WIDE_AFTER - 1 {
            segment.record_block_max(true);
        }
        assert_eq!(segment.dense_bounds().columns(), narrow);
        // The last of a run of finished block-max searches makes it.
        let mut scratch = Scratch::new();
        let q = widespread(4, &mut next);
        block_max_top_k(
            &index,
            q.view(),
            10,
            (1.0, 1.0),
            Traversal::BlockMax,
            &mut scratch,
        );
        let dense = segment.dense_bounds();
        let wide = dense.columns() - narrow;
        assert!(wide > 0 && wide <= between, "{wide} of {between}");
        let entries = *a.bound_offsets.last().unwrap() as usize;
        assert!(
            wide * nb * 5 <= entries * 9,
            "{wide} columns over the lists' bytes"
        );
        let (mut with, mut without) = (Scratch::new(), Scratch::new());
        for round in 0..40 {
            let q = widespread(4, &mut next);
            let beta = (round % 3 == 0).then(|| q.view().top_k(5));
            assert_columns_match_lists(&a, dense, q.view(), &beta, (&mut with, &mut without));
            for k in [1, 10, 100] {
                let got = block_max_top_k(
                    &index,
                    q.view(),
                    k,
                    (1.0, 1.0),
                    Traversal::BlockMax,
                    &mut scratch,
                );
                assert_eq!(got, index.brute_force_top_k(q.view(), k));
            }
        }
    }

    /// Dense columns without a slot table (`max_positions = 0`) and over several
    /// segments of different sizes searched with one scratch: the same hits as with the
    /// table, and as the brute force.
    #[test]
    fn dense_columns_without_table_and_across_segments() {
        let mut next = xorshift(0x2f4a_7c15_9e37_79b9u64);
        let dim = 300u64;
        let vector = |n: usize, next: &mut dyn FnMut() -> u64| skewed(n, (4, 3), dim, next);
        let tmp = tempfile::tempdir().unwrap();
        let mut w = crate::IndexWriter::create(tmp.path(), dim as usize)
            .unwrap()
            .block_size(1)
            .merge_policy(crate::MergePolicy::never());
        let mut d = 0;
        for size in [1100, 1700, 1040] {
            for _ in 0..size {
                w.add(&format!("d{d}"), vector(8, &mut next).view())
                    .unwrap();
                d += 1;
            }
            w.commit().unwrap();
        }
        let index = open_three_segments_with_columns(tmp.path());
        let (mut table, mut search) = (Scratch::new(), Scratch::new());
        search.max_positions = 0;
        for _ in 0..40 {
            let q = vector(12, &mut next);
            for k in [1, 10, 50] {
                let want = index.brute_force_top_k(q.view(), k);
                for scratch in [&mut table, &mut search] {
                    let got = block_max_top_k(
                        &index,
                        q.view(),
                        k,
                        (1.0, 1.0),
                        Traversal::BlockMax,
                        scratch,
                    );
                    assert_eq!(got, want);
                }
            }
        }
    }
}
