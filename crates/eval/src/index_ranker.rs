//! Ranking through the index crate's exact search (dot product), with exactly the order of
//! [`crate::ranking::BruteForceRanker`]: documents are inserted in tie-rank order (ascending
//! corpus id), so the index's own tie rule (earlier document first) is sentence-transformers'
//! (smaller corpus id first), and scores are the same f64-accumulated dot products. Documents
//! sharing no term with the query score 0; when fewer than `k` documents score above 0, the
//! list is completed with zero-score documents in tie-rank order, as a full scan would.

use splade_index::{Index, Method, SearchOptions};
use splade_sparse::SparseBatch;

use crate::error::{EvalError, Result};
use crate::ranking::{Hit, Ranker};

/// An exact dot-product ranker over a `splade-index` built from the corpus.
pub struct IndexRanker {
    index: Index,
    method: Method,
    /// Index document number -> corpus position.
    position: Vec<usize>,
}

impl IndexRanker {
    /// Builds the index from `corpus`; `tie_rank[d]` orders equal scores (see
    /// [`crate::ranking::id_ranks`]).
    pub fn new(corpus: &SparseBatch, tie_rank: &[u32]) -> Result<Self> {
        if tie_rank.len() != corpus.len() {
            return Err(EvalError::InvalidArgument(format!(
                "{} tie ranks for {} documents",
                tie_rank.len(),
                corpus.len()
            )));
        }
        let mut position: Vec<usize> = (0..corpus.len()).collect();
        position.sort_by_key(|&d| tie_rank[d]);
        let rows = position
            .iter()
            .map(|&d| {
                corpus
                    .row(d)
                    .map(|row| (d.to_string(), row))
                    .ok_or_else(|| EvalError::InvalidArgument(format!("no corpus row {d}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let index = crate::corpus::index_vectors(corpus.dim(), rows)?;
        Ok(Self {
            index,
            method: Method::Exact,
            position,
        })
    }

    /// Ranks with `method` instead of the exact search, e.g. [`Method::approximate`] to
    /// measure what approximate search costs in retrieval quality.
    pub fn with_method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }
}

impl Ranker for IndexRanker {
    fn top_k(&self, queries: &SparseBatch, k: usize) -> Result<Vec<Vec<Hit>>> {
        let mut results = Vec::with_capacity(queries.len());
        for query in queries.rows() {
            let found = self.index.search(
                query,
                &SearchOptions {
                    k,
                    method: self.method,
                    ..SearchOptions::default()
                },
            );
            let mut hits: Vec<Hit> = found
                .iter()
                .map(|h| Hit {
                    doc: self.position[h.doc as usize],
                    score: h.score,
                })
                .collect();
            if hits.len() < k {
                let taken: std::collections::HashSet<u32> = found.iter().map(|h| h.doc).collect();
                let fill = (0..self.position.len() as u32)
                    .filter(|d| !taken.contains(d))
                    .take(k - hits.len())
                    .map(|d| Hit {
                        doc: self.position[d as usize],
                        score: 0.0,
                    });
                hits.extend(fill);
            }
            results.push(hits);
        }
        Ok(results)
    }
}
