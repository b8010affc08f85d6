//! Exact top-k retrieval behind a small trait ([`Ranker`]): the brute-force ranker here, and
//! the index crate's exact search ([`crate::IndexRanker`], `splade eval ir --use-index`),
//! which returns the same hits.
//!
//! Order contract (sentence-transformers 6.2, `InformationRetrievalEvaluator.compute_all_metrics`):
//! hits are sorted by score descending and **ties are broken by the corpus id in ascending
//! (string) order**, also at the top-k boundary: ST takes `torch.topk` per corpus chunk, detects
//! boundary ties and then picks the tied documents with the smallest corpus-id rank, and finally
//! sorts the merged hits by `(-score, corpus_id)`. So the result is exactly "the k best documents
//! by (score desc, corpus id asc)", independent of chunking and of corpus file order. Here
//! the corpus ids are replaced by a precomputed `tie_rank` per document (its position in
//! ascending-id order); -0.0 and 0.0 are equal scores, as in Python.

use splade_sparse::{Similarity, SparseBatch, SparseView};

use crate::error::{EvalError, Result};

/// One retrieved document.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Position of the document in the corpus.
    pub doc: usize,
    /// Its score (larger is better).
    pub score: f32,
}

/// Exact top-k retrieval over a fixed corpus.
pub trait Ranker {
    /// For each query row, the `k` best documents (fewer if the corpus is smaller), best first,
    /// ordered by score descending, then by the corpus' tie rank ascending.
    fn top_k(&self, queries: &SparseBatch, k: usize) -> Result<Vec<Vec<Hit>>>;
}

/// Positions of `ids` in ascending (byte-wise, i.e. Unicode code point) order: the tie rank
/// sentence-transformers uses (`get_corpus_id_ranks`).
pub fn id_ranks<S: AsRef<str>>(ids: &[S]) -> Vec<u32> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by(|&a, &b| ids[a].as_ref().cmp(ids[b].as_ref()));
    let mut ranks = vec![0u32; ids.len()];
    for (rank, &pos) in order.iter().enumerate() {
        ranks[pos] = rank as u32;
    }
    ranks
}

/// Scores every document for every query and keeps the best `k`.
///
/// Dot and cosine use a term-at-a-time accumulator over a transposed corpus whose per-document
/// sums are bit-identical to [`Similarity::score`] (same f64 accumulation, same term order);
/// Euclidean and Manhattan call [`Similarity::score`] per pair.
pub struct BruteForceRanker<'a> {
    corpus: &'a SparseBatch,
    function: Similarity,
    tie_rank: Vec<u32>,
    /// Per vocabulary term, the `(doc, weight)` postings (dot/cosine only).
    postings: Vec<Vec<(u32, f32)>>,
    /// Per document, the L2 norm floored as in [`Similarity::Cosine`] (cosine only).
    norms: Vec<f64>,
}

impl<'a> BruteForceRanker<'a> {
    /// A ranker over `corpus` scoring with `function`; `tie_rank[d]` orders equal scores
    /// (see [`id_ranks`]). Errors if `tie_rank` does not have one entry per document.
    pub fn new(corpus: &'a SparseBatch, function: Similarity, tie_rank: Vec<u32>) -> Result<Self> {
        if tie_rank.len() != corpus.len() {
            return Err(EvalError::InvalidArgument(format!(
                "{} tie ranks for {} documents",
                tie_rank.len(),
                corpus.len()
            )));
        }
        let mut postings = Vec::new();
        let mut norms = Vec::new();
        if matches!(function, Similarity::Dot | Similarity::Cosine) {
            postings = vec![Vec::new(); corpus.dim()];
            for (d, row) in corpus.rows().enumerate() {
                for (t, w) in row.iter() {
                    postings[t as usize].push((d as u32, w));
                }
            }
            if function == Similarity::Cosine {
                norms = corpus.rows().map(|r| cosine_norm(&r)).collect();
            }
        }
        Ok(Self {
            corpus,
            function,
            tie_rank,
            postings,
            norms,
        })
    }

    fn scores(&self, query: &SparseView<'_>, out: &mut Vec<f32>) {
        out.clear();
        match self.function {
            Similarity::Dot | Similarity::Cosine => {
                let mut acc = vec![0.0f64; self.corpus.len()];
                for (t, qw) in query.iter() {
                    if let Some(list) = self.postings.get(t as usize) {
                        for &(d, w) in list {
                            acc[d as usize] += qw as f64 * w as f64;
                        }
                    }
                }
                if self.function == Similarity::Dot {
                    out.extend(acc.iter().map(|&s| s as f32));
                } else {
                    let nq = cosine_norm(query);
                    out.extend(
                        acc.iter()
                            .zip(&self.norms)
                            .map(|(&s, &nd)| ((s as f32) as f64 / (nq * nd)) as f32),
                    );
                }
            }
            Similarity::Euclidean | Similarity::Manhattan => {
                out.extend(self.corpus.rows().map(|d| self.function.score(query, &d)));
            }
        }
    }
}

/// The cosine norm of [`Similarity::Cosine`]: `max(sqrt(Σv²), 1e-12)`.
fn cosine_norm(v: &SparseView<'_>) -> f64 {
    v.squared_norm().sqrt().max(1e-12)
}

impl Ranker for BruteForceRanker<'_> {
    fn top_k(&self, queries: &SparseBatch, k: usize) -> Result<Vec<Vec<Hit>>> {
        if queries.dim() != self.corpus.dim() && !queries.is_empty() {
            return Err(EvalError::InvalidArgument(format!(
                "queries live in {} dimensions but the corpus in {}",
                queries.dim(),
                self.corpus.dim()
            )));
        }
        let mut scores = Vec::with_capacity(self.corpus.len());
        let mut results = Vec::with_capacity(queries.len());
        for (qi, query) in queries.rows().enumerate() {
            self.scores(&query, &mut scores);
            if let Some(d) = scores.iter().position(|s| s.is_nan()) {
                return Err(EvalError::InvalidData(format!(
                    "score of query {qi} against document {d} is NaN"
                )));
            }
            results.push(select_top_k(&scores, &self.tie_rank, k));
        }
        Ok(results)
    }
}

/// The `k` best positions of `scores` by (score desc, tie rank asc), best first.
/// Scores must not be NaN; -0.0 counts as 0.0.
pub fn select_top_k(scores: &[f32], tie_rank: &[u32], k: usize) -> Vec<Hit> {
    let key = |d: usize| (scores[d] + 0.0, tie_rank[d]);
    let better = |a: &usize, b: &usize| {
        let (sa, ra) = key(*a);
        let (sb, rb) = key(*b);
        sb.total_cmp(&sa).then(ra.cmp(&rb))
    };
    let mut order: Vec<usize> = (0..scores.len()).collect();
    if k < order.len() {
        if k == 0 {
            return Vec::new();
        }
        order.select_nth_unstable_by(k - 1, better);
        order.truncate(k);
    }
    order.sort_unstable_by(better);
    order
        .into_iter()
        .map(|doc| Hit {
            doc,
            score: scores[doc],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use splade_sparse::SparseVector;

    fn batch(rows: &[&[(u32, f32)]]) -> SparseBatch {
        let vs: Vec<SparseVector> = rows
            .iter()
            .map(|r| SparseVector::from_pairs(r.to_vec()).unwrap())
            .collect();
        SparseBatch::from_vectors(10, &vs).unwrap()
    }

    #[test]
    fn ties_break_by_id_rank_at_the_boundary() {
        let scores = [1.0, 2.0, 1.0, 1.0, -0.0, 0.0];
        // ids "d", "a", "c", "b", "f", "e"
        let ranks = id_ranks(&["d", "a", "c", "b", "f", "e"]);
        assert_eq!(ranks, vec![3, 0, 2, 1, 5, 4]);
        let hits: Vec<usize> = select_top_k(&scores, &ranks, 3)
            .iter()
            .map(|h| h.doc)
            .collect();
        assert_eq!(hits, vec![1, 3, 2]);
        let all: Vec<usize> = select_top_k(&scores, &ranks, 10)
            .iter()
            .map(|h| h.doc)
            .collect();
        assert_eq!(all, vec![1, 3, 2, 0, 5, 4]);
        assert!(select_top_k(&scores, &ranks, 0).is_empty());
    }

    #[test]
    fn brute_force_scores_match_similarity() {
        let corpus = batch(&[
            &[(1, 0.5), (3, 2.0)],
            &[(3, 1.0), (7, 0.25)],
            &[],
            &[(2, 3.0)],
        ]);
        let queries = batch(&[&[(3, 1.5), (7, 2.0)], &[]]);
        for f in Similarity::ALL {
            let ranker = BruteForceRanker::new(&corpus, f, vec![0, 1, 2, 3]).unwrap();
            let hits = ranker.top_k(&queries, 4).unwrap();
            for (q, row) in queries.rows().zip(&hits) {
                assert_eq!(row.len(), 4);
                for h in row {
                    let expected = f.score(&q, &corpus.row(h.doc).unwrap());
                    assert_eq!(h.score.to_bits(), expected.to_bits(), "{f}");
                }
                assert!(row.windows(2).all(|w| w[0].score >= w[1].score));
            }
        }
        assert!(BruteForceRanker::new(&corpus, Similarity::Dot, vec![0]).is_err());
    }
}
