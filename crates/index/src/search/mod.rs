//! Search methods, options, single and batch search.
//!
//! Every method returns the same ranking: score descending, ties to the smaller document
//! number (segment order, then insertion order: see [`crate::Index`]), and only live
//! documents with score `> 0` (those sharing at least one term with a positive product);
//! fewer than `k` hits when fewer documents match.

mod block_max;
mod taat;

use splade_sparse::{SparseVector, SparseView};

use crate::brute::index_brute_force;
use crate::error::{IndexError, Result};
use crate::index::Index;
use crate::topk::Hit;

/// How to find the top k.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub enum Method {
    /// Block-max pruning with exact f32 scores: the same hits, in the same order, as
    /// [`Method::BruteForce`], usually after scoring a small fraction of the blocks.
    #[default]
    Exact,
    /// Score every document (the reference).
    BruteForce,
    /// Block-max pruning with two knobs that trade recall for speed (after BMP's α and β).
    /// Every returned score is still the exact score of that document for the whole
    /// query; what may be missed are documents. With `alpha == 1` and `beta == 1` this is
    /// [`Method::Exact`], hit for hit.
    ///
    /// - `alpha` (bound multiplier, `0 < alpha <= 1`): a block is scored only while
    ///   `alpha * U(b) >= θ` (θ the current k-th score), i.e. the search stops once the
    ///   best remaining block is unlikely, rather than unable, to beat the k-th hit. Lower
    ///   is faster; since block bounds overestimate typical scores by a wide margin,
    ///   values of 0.7–0.9 often keep recall@10 near 1.
    /// - `beta` (query term fraction, `0 < beta <= 1`): block bounds and the order of
    ///   visits use only the `ceil(beta * nnz)` heaviest query terms (at least one), so
    ///   the bound pass reads fewer (and the longest, lightest) posting lists are skipped;
    ///   the scores of the documents offered use all terms. Lower is faster; the lightest
    ///   terms of a SPLADE query contribute little, so 0.3–0.6 usually costs little recall.
    ///
    /// Where block bounds do not prune (long documents and queries, stopword-like terms,
    /// flat weights: SciFact, the flat synthetic collection of BENCHMARKS.md), exact search
    /// goes term at a time and is the faster of the two. An approximate search goes there
    /// too, with exact hits, on a segment of at most 32,768 documents where the query's
    /// postings cost about what probing a few blocks would; elsewhere it first probes a
    /// few blocks (so that its hits depend on the query alone, never on the searches before
    /// it) and then hands over to the same exact search. On a larger segment, a query with
    /// many postings a document (at least 3 per document, its lightest terms, which hold at
    /// most a tenth of its possible score, not counted) is first probed on an eighth of the blocks,
    /// which hands it over before the bound pass over every block where the sample shows the
    /// bounds will not prune.
    Approximate {
        /// Bound multiplier, in (0, 1].
        alpha: f32,
        /// Fraction of query terms used for block bounds, in (0, 1].
        beta: f32,
    },
}

impl Method {
    /// [`Method::Approximate`] with the knobs checked: both in (0, 1].
    pub fn approximate(alpha: f32, beta: f32) -> Result<Self> {
        for (name, v) in [("alpha", alpha), ("beta", beta)] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(IndexError::InvalidArgument(format!(
                    "{name} must be in (0, 1], got {v}"
                )));
            }
        }
        Ok(Method::Approximate { alpha, beta })
    }

    /// The method for a pair of α/β knobs: [`Method::Exact`] at α = β = 1 (which the
    /// approximate search equals, but the exact path serves faster), otherwise
    /// [`Method::approximate`].
    pub fn from_knobs(alpha: f32, beta: f32) -> Result<Self> {
        if alpha == 1.0 && beta == 1.0 {
            Ok(Method::Exact)
        } else {
            Self::approximate(alpha, beta)
        }
    }
}

/// Work counters of the last search of a [`Searcher`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SearchStats {
    /// Blocks scored (block-max visits, including the blocks left once their heaviest
    /// terms showed that none of their documents could reach the k-th score).
    pub blocks_scored: usize,
    /// Blocks sharing at least one (bound) term with the query.
    pub blocks_candidate: usize,
    /// Blocks in the index.
    pub blocks_total: usize,
    /// Segments searched term at a time (see [`Traversal`]); their blocks count in none of
    /// the block counters but the total, except those scored before a hand-over (which count
    /// in `blocks_scored` and `blocks_candidate`; for a probe on a sample of the blocks, the
    /// sampled blocks with a positive bound are its candidates).
    pub segments_term_at_a_time: usize,
    /// Postings added by the term-at-a-time searches.
    pub postings_scored: usize,
    /// Documents rescored exactly after the screening pass of the term-at-a-time search of
    /// large segments.
    pub documents_rescored: usize,
}

/// Options of a search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchOptions {
    /// Hits to return (at most).
    pub k: usize,
    /// The search method.
    pub method: Method,
    /// Keep only this many of the query's heaviest terms (ties to the smaller term id)
    /// before searching. Results are then exact for the pruned query.
    pub max_query_terms: Option<usize>,
    /// How segments are traversed (never changes an exact result).
    pub traversal: Traversal,
}

/// How the exact and approximate methods go through a segment. Every traversal returns
/// the exact top-k for [`Method::Exact`]; the choice is one of speed only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Traversal {
    /// Per segment and query: block-max pruning, handing the segment over to term at a
    /// time when, after a few blocks (and again after 128), the blocks still to score are
    /// expected to cost more than the term-at-a-time search (a cost model from the query
    /// terms' document frequencies; long queries over long documents, stopword-like terms,
    /// flat weights);
    /// once a segment handed over several times in a row, or once its exact searches that
    /// went term at a time directly took less time on average than those that probed, its
    /// exact searches go term at a time directly (probing now and then). On a segment of at
    /// most 32,768 documents where term at a time is expected to cost at most about two
    /// probes (long queries over a small segment), every search, exact or approximate, goes
    /// term at a time without a probe; on a larger one, a query with at least 3 postings a
    /// document is first probed on an eighth of the blocks (one bound pass over them, a few
    /// blocks scored), and handed over from there where even that sample shows the bounds
    /// will not prune.
    #[default]
    Auto,
    /// Always block-max pruning (and, for [`Method::Approximate`], its α / β).
    BlockMax,
    /// Always term at a time: every posting of every query term is added into one
    /// accumulator per document (on segments over 32,768 documents an approximate f32
    /// screening pass, then an exact rescoring of the documents that may enter the top k).
    /// Exact, whatever the method (α / β are not used). Needs a term-major copy of each
    /// segment's postings in memory (8 bytes a posting, plus dense columns for the most
    /// frequent terms, at most twice that, and on large segments byte columns, at most as
    /// much again), made on first use.
    TermAtATime,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            k: 10,
            method: Method::Exact,
            max_query_terms: None,
            traversal: Traversal::Auto,
        }
    }
}

impl SearchOptions {
    /// Exact search for the top `k`, all query terms kept.
    pub fn new(k: usize) -> Self {
        Self {
            k,
            ..Self::default()
        }
    }
}

/// Keeps the `n` heaviest terms of a query (ties to the smaller term id), in ascending term
/// order.
pub fn prune_query(query: SparseView<'_>, n: usize) -> SparseVector {
    query.top_k(n)
}

/// Search buffers kept between calls of [`Index::search`] and [`Index::search_batch`], at
/// most one set a core, shared by every index of the process (a set serves any index: its
/// buffers only grow to the largest segment searched, and are left cleared). A call made its
/// buffers afresh (the block bounds, the slot table of the query terms' blocks, the
/// accumulators), which on the topical 1M collection of BENCHMARKS.md cost a fifth or more of
/// a search made one call a query, as the server makes them. What is kept stays allocated
/// while the process runs: at most one set a core, each the size the largest search needed.
static KEPT_SCRATCH: std::sync::Mutex<Vec<block_max::Scratch>> = std::sync::Mutex::new(Vec::new());

/// A searcher whose buffers come from [`KEPT_SCRATCH`] and go back to it when dropped,
/// unless as many sets as the machine has cores are kept already or a panic is unwinding
/// (its buffers may then not be cleared). `None` only while being dropped.
struct PooledSearcher<'a> {
    searcher: Option<Searcher<'a>>,
}

impl<'a> PooledSearcher<'a> {
    fn take(index: &'a Index) -> Self {
        let scratch = KEPT_SCRATCH
            .lock()
            .ok()
            .and_then(|mut kept| kept.pop())
            .unwrap_or_else(block_max::Scratch::new);
        Self {
            searcher: Some(Searcher { index, scratch }),
        }
    }

    fn search(&mut self, query: SparseView<'_>, options: &SearchOptions) -> Vec<Hit> {
        match &mut self.searcher {
            Some(searcher) => searcher.search(query, options),
            None => unreachable!("a pooled searcher is only emptied when dropped"),
        }
    }
}

impl Drop for PooledSearcher<'_> {
    fn drop(&mut self) {
        static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let most =
            *CORES.get_or_init(|| std::thread::available_parallelism().map_or(4, |n| n.get()));
        let Some(searcher) = self.searcher.take() else {
            return;
        };
        if std::thread::panicking() {
            return;
        }
        if let Ok(mut kept) = KEPT_SCRATCH.lock() {
            if kept.len() < most {
                kept.push(searcher.scratch);
            }
        }
    }
}

/// A search context over one index that reuses its buffers between queries (one per
/// thread).
#[derive(Debug, Clone)]
pub struct Searcher<'a> {
    index: &'a Index,
    scratch: block_max::Scratch,
}

impl<'a> Searcher<'a> {
    /// A searcher over `index`.
    pub fn new(index: &'a Index) -> Self {
        Self {
            index,
            scratch: block_max::Scratch::new(),
        }
    }

    /// Searches one query. A query with a weight beyond [`crate::format::MAX_WEIGHT`] in
    /// absolute value is scored by brute force (same results as an exact search would
    /// give, without the risk of overflowing bounds).
    pub fn search(&mut self, query: SparseView<'_>, options: &SearchOptions) -> Vec<Hit> {
        let pruned;
        let query = match options.max_query_terms {
            Some(n) if n < query.nnz() => {
                pruned = prune_query(query, n);
                pruned.view()
            }
            _ => query,
        };
        // Outside the weight bound, scores could overflow to infinity, where pruning and
        // brute force may disagree: score such a query by brute force, which is the
        // reference (documents are bounded at ingestion; see `format::MAX_WEIGHT`).
        let unbounded = query
            .values()
            .iter()
            .any(|v| v.abs() > crate::format::MAX_WEIGHT)
            || self.index.dim() > crate::format::MAX_DIM;
        let method = if unbounded {
            Method::BruteForce
        } else {
            options.method
        };
        match method {
            Method::Exact => block_max::block_max_top_k(
                self.index,
                query,
                options.k,
                (1.0, 1.0),
                options.traversal,
                &mut self.scratch,
            ),
            Method::Approximate { alpha, beta } => block_max::block_max_top_k(
                self.index,
                query,
                options.k,
                (alpha, beta),
                options.traversal,
                &mut self.scratch,
            ),
            Method::BruteForce => {
                self.scratch.stats = SearchStats::default();
                index_brute_force(self.index, query, options.k)
            }
        }
    }

    /// Work counters of the last block-max search (zero after a brute-force one).
    pub fn stats(&self) -> SearchStats {
        self.scratch.stats
    }
}

impl Index {
    /// The exact top `k` of `query` by block-max pruning; identical to
    /// [`Self::brute_force_top_k`].
    pub fn top_k(&self, query: SparseView<'_>, k: usize) -> Vec<Hit> {
        self.search(query, &SearchOptions::new(k))
    }

    /// The top `k` of `query` by scoring every document.
    pub fn brute_force_top_k(&self, query: SparseView<'_>, k: usize) -> Vec<Hit> {
        index_brute_force(self, query, k)
    }

    /// Searches one query with `options`. (The search buffers come from the ones earlier
    /// calls left, and go back for the next: a [`Searcher`] kept by the caller saves the
    /// same work without the lock.)
    pub fn search(&self, query: SparseView<'_>, options: &SearchOptions) -> Vec<Hit> {
        PooledSearcher::take(self).search(query, options)
    }

    /// Searches many queries in parallel (rayon); results are in query order. `threads`
    /// sets the number of worker threads (default: rayon's global pool, i.e. all cores or
    /// `RAYON_NUM_THREADS`; a count equal to the global pool's uses that pool, any other a
    /// pool built for the call).
    pub fn search_batch(
        &self,
        queries: &[SparseView<'_>],
        options: &SearchOptions,
        threads: Option<usize>,
    ) -> Result<Vec<Vec<Hit>>> {
        use rayon::prelude::*;
        // Every query is a piece of work of its own, so the two threads finish together
        // however unequal the queries (contiguous ranges left one thread idle at the end of
        // a batch of a few hundred: 5-10 % of its time). Each piece takes a searcher whose
        // buffers earlier searches have grown, and gives them back.
        let run = || {
            queries
                .par_iter()
                .with_max_len(1)
                .map_init(|| PooledSearcher::take(self), |s, q| s.search(*q, options))
                .collect()
        };
        match threads {
            None => Ok(run()),
            Some(0) => Err(IndexError::InvalidArgument(
                "thread count must be at least 1".into(),
            )),
            // The global pool already has that many threads: building a pool per call
            // (spawning its threads) would cost more than a small batch.
            Some(n)
                if n == rayon::current_num_threads() && rayon::current_thread_index().is_none() =>
            {
                Ok(run())
            }
            Some(n) => {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| IndexError::InvalidArgument(format!("thread pool: {e}")))?;
                Ok(pool.install(run))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{xorshift, IndexBuilder};

    /// `Index::search` calls on several threads at once, alternating traversals, methods and
    /// k, share the kept buffers without a result changing: every exact search equals the
    /// brute force, and at most one set of buffers a core is kept (other tests may use them
    /// at the same time).
    #[test]
    fn kept_buffers_serve_concurrent_calls() {
        let mut next = xorshift(0x6a09_e667_f3bc_c909_u64);
        let dim = 300u64;
        let mut vector = |n: usize| {
            crate::drawn_vector(n, || {
                ((next() % dim) as u32, (1 + next() % 64) as f32 / 16.0)
            })
        };
        let mut b = IndexBuilder::new(dim as usize);
        for d in 0..3000 {
            b.add(&format!("d{d}"), vector(20).view()).unwrap();
        }
        let index = b.build().unwrap();
        let queries: Vec<SparseVector> = (0..60).map(|_| vector(12)).collect();
        let traversals = [Traversal::Auto, Traversal::BlockMax, Traversal::TermAtATime];
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let (index, queries) = (&index, &queries);
                scope.spawn(move || {
                    for (i, q) in queries.iter().enumerate() {
                        let k = 1 + (i + thread) % 15;
                        let options = SearchOptions {
                            k,
                            traversal: traversals[(i + thread) % 3],
                            ..SearchOptions::default()
                        };
                        assert_eq!(
                            index.search(q.view(), &options),
                            index.brute_force_top_k(q.view(), k)
                        );
                        // An approximate search in between leaves nothing behind either.
                        let approx = SearchOptions {
                            method: Method::approximate(0.5, 0.5).unwrap(),
                            ..options
                        };
                        let _ = index.search(q.view(), &approx);
                    }
                });
            }
        });
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        let kept = KEPT_SCRATCH.lock().unwrap().len();
        assert!(kept <= cores, "{kept} sets kept");
    }
}
