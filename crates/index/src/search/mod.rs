//! Search methods, options, single and batch search.
//!
//! Every method returns the same ranking: score descending, ties to the smaller document
//! number (insertion order), and only documents with score `> 0` (those sharing at least
//! one term with a positive product); fewer than `k` hits when fewer documents match.

mod exact;

use splade_sparse::{SparseVector, SparseView};

use crate::brute::index_brute_force;
use crate::error::{IndexError, Result};
use crate::index::Index;
use crate::topk::Hit;

/// How to find the top k.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Method {
    /// Block-max pruning with exact f32 scores: the same hits, in the same order, as
    /// [`Method::BruteForce`], usually after scoring a small fraction of the blocks.
    #[default]
    Exact,
    /// Score every document (the reference).
    BruteForce,
}

/// Options of a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchOptions {
    /// Hits to return (at most).
    pub k: usize,
    /// The search method.
    pub method: Method,
    /// Keep only this many of the query's heaviest terms (ties to the smaller term id)
    /// before searching. Results are then exact for the pruned query.
    pub max_query_terms: Option<usize>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            k: 10,
            method: Method::Exact,
            max_query_terms: None,
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

/// A search context over one index that reuses its buffers between queries (one per
/// thread).
#[derive(Debug, Clone)]
pub struct Searcher<'a> {
    index: &'a Index,
    scratch: exact::Scratch,
}

impl<'a> Searcher<'a> {
    /// A searcher over `index`.
    pub fn new(index: &'a Index) -> Self {
        Self {
            index,
            scratch: exact::Scratch::new(),
        }
    }

    /// Searches one query.
    pub fn search(&mut self, query: SparseView<'_>, options: &SearchOptions) -> Vec<Hit> {
        let pruned;
        let query = match options.max_query_terms {
            Some(n) if n < query.nnz() => {
                pruned = prune_query(query, n);
                pruned.view()
            }
            _ => query,
        };
        match options.method {
            Method::Exact => exact::exact_top_k(self.index, query, options.k, &mut self.scratch),
            Method::BruteForce => index_brute_force(self.index, query, options.k),
        }
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

    /// Searches one query with `options`.
    pub fn search(&self, query: SparseView<'_>, options: &SearchOptions) -> Vec<Hit> {
        Searcher::new(self).search(query, options)
    }

    /// Searches many queries in parallel (rayon); results are in query order. `threads`
    /// sets the number of worker threads (default: rayon's global pool, i.e. all cores or
    /// `RAYON_NUM_THREADS`).
    pub fn search_batch(
        &self,
        queries: &[SparseView<'_>],
        options: &SearchOptions,
        threads: Option<usize>,
    ) -> Result<Vec<Vec<Hit>>> {
        use rayon::prelude::*;
        let run = || {
            queries
                .par_iter()
                .map_init(|| Searcher::new(self), |s, q| s.search(*q, options))
                .collect()
        };
        match threads {
            None => Ok(run()),
            Some(0) => Err(IndexError::InvalidArgument(
                "thread count must be at least 1".into(),
            )),
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
