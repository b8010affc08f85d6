//! sentence-transformers' `ReciprocalRankFusionEvaluator` (6.2): no model; it fuses two
//! ranked document lists per query (a dense and a sparse run) with reciprocal rank fusion,
//! `Σ 1 / (rrf_k + rank)`, and reports MAP, MRR@k and NDCG@k of each run and of the fusion.
//!
//! Keys (before the name prefix): `dense_map`, `dense_mrr@{k}`, `dense_ndcg@{k}`,
//! `sparse_map`, `sparse_mrr@{k}`, `sparse_ndcg@{k}`, `map`, `mrr@{k}`, `ndcg@{k}` (the
//! fusion's; primary `ndcg@{k}`). Per list, a document is relevant when its text (or id) is
//! among the sample's positives; positives the list misses are appended after it as relevant,
//! and a list with no relevant document scores 0 on all three. Tied fused scores keep the
//! order of first appearance (dense list, then the sparse list's new documents), as Python's
//! stable sort does.

use std::collections::HashMap;

use crate::error::{EvalError, Result};
use crate::keyed::{keyed, KeyedResult};
use crate::reranking::{mean, rerank_metrics};

/// One query's ranked documents (a JSON object `{"query_id", "positive": [...],
/// "documents": [...]}` as sentence-transformers' samples; other fields are ignored).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct RankedSample {
    /// The query's id (both runs must list the same ids in the same order).
    pub query_id: String,
    /// The relevant documents.
    pub positive: Vec<String>,
    /// The run's documents, best first.
    pub documents: Vec<String>,
}

/// `ReciprocalRankFusionEvaluator(dense_samples, sparse_samples, at_k=10, rrf_k=60)`.
#[derive(Debug, Clone)]
pub struct ReciprocalRankFusionEvaluator {
    /// The dense run.
    pub dense: Vec<RankedSample>,
    /// The sparse run.
    pub sparse: Vec<RankedSample>,
    /// Cut-off of MRR and NDCG (default 10).
    pub at_k: usize,
    /// The fusion constant (default 60).
    pub rrf_k: usize,
    /// Key prefix; empty for none.
    pub name: String,
}

impl ReciprocalRankFusionEvaluator {
    /// Checks that both runs have the same query ids in the same order.
    pub fn new(dense: Vec<RankedSample>, sparse: Vec<RankedSample>) -> Result<Self> {
        if dense.len() != sparse.len() {
            return Err(EvalError::InvalidArgument(format!(
                "Dense samples ({}) and sparse samples ({}) must have the same length",
                dense.len(),
                sparse.len()
            )));
        }
        for (i, (d, s)) in dense.iter().zip(&sparse).enumerate() {
            if d.query_id != s.query_id {
                return Err(EvalError::InvalidData(format!(
                    "Query ID mismatch at index {i}: {} != {}",
                    d.query_id, s.query_id
                )));
            }
        }
        Ok(Self {
            dense,
            sparse,
            at_k: 10,
            rrf_k: 60,
            name: String::new(),
        })
    }

    /// The fused ranking of sample `i`.
    pub fn fused(&self, i: usize) -> Vec<&str> {
        let (d, s) = (&self.dense[i], &self.sparse[i]);
        let (dr, sr) = (ranks(&d.documents), ranks(&s.documents));
        let mut all: Vec<&str> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for doc in d.documents.iter().chain(&s.documents) {
            if seen.insert(doc.as_str()) {
                all.push(doc.as_str());
            }
        }
        let k = self.rrf_k as f64;
        let score = |doc: &str| -> f64 {
            let mut v = 0.0;
            if let Some(r) = dr.get(doc) {
                v += 1.0 / (k + *r as f64);
            }
            if let Some(r) = sr.get(doc) {
                v += 1.0 / (k + *r as f64);
            }
            v
        };
        let scores: HashMap<&str, f64> = all.iter().map(|d| (*d, score(d))).collect();
        all.sort_by(|a, b| scores[b].total_cmp(&scores[a]));
        all
    }

    /// Computes the nine metrics.
    pub fn evaluate(&self) -> Result<KeyedResult> {
        if self.at_k == 0 {
            return Err(EvalError::InvalidArgument("at_k must be at least 1".into()));
        }
        let mut runs: [[Vec<f64>; 3]; 3] = Default::default();
        for i in 0..self.dense.len() {
            let positive = &self.dense[i].positive;
            let fused = self.fused(i);
            let lists: [Vec<&str>; 3] = [
                self.dense[i].documents.iter().map(String::as_str).collect(),
                self.sparse[i]
                    .documents
                    .iter()
                    .map(String::as_str)
                    .collect(),
                fused,
            ];
            for (run, docs) in runs.iter_mut().zip(&lists) {
                let (mrr, ndcg, ap) = self.list_metrics(docs, positive);
                run[0].push(ap);
                run[1].push(mrr);
                run[2].push(ndcg);
            }
        }
        let k = self.at_k;
        let mut metrics = Vec::new();
        for (prefix, run) in ["dense_", "sparse_", ""].iter().zip(&runs) {
            metrics.push((format!("{prefix}map"), mean(&run[0])));
            metrics.push((format!("{prefix}mrr@{k}"), mean(&run[1])));
            metrics.push((format!("{prefix}ndcg@{k}"), mean(&run[2])));
        }
        Ok(keyed(&self.name, metrics, &format!("ndcg@{k}")))
    }

    /// (MRR, NDCG, AP) of one ranked list, the reference's `compute_metrics` on the list's
    /// relevance with the missed positives appended and strictly decreasing scores.
    fn list_metrics(&self, docs: &[&str], positive: &[String]) -> (f64, f64, f64) {
        let mut relevant: Vec<bool> = docs
            .iter()
            .map(|d| positive.iter().any(|p| p == d))
            .collect();
        let found = relevant.iter().filter(|r| **r).count();
        if found == 0 {
            return (0.0, 0.0, 0.0);
        }
        relevant.extend(std::iter::repeat_n(
            true,
            positive.len().saturating_sub(found),
        ));
        let n = relevant.len();
        let scores: Vec<f32> = (0..n).map(|i| (n - i) as f32).collect();
        rerank_metrics(&relevant, &scores, self.at_k)
    }
}

/// Rank (1-based) of each document; a dict comprehension keeps the last rank of a repeat.
fn ranks(docs: &[String]) -> HashMap<&str, usize> {
    docs.iter()
        .enumerate()
        .map(|(r, doc)| (doc.as_str(), r + 1))
        .collect()
}
