//! sentence-transformers' `SparseRerankingEvaluator`: for each query, rank its positives and
//! negatives by similarity and report MAP, MRR@k and NDCG@k (scikit-learn's
//! `average_precision_score` and `ndcg_score`, which average tied scores).
//!
//! Keys (before the name prefix): `map`, `mrr@{k}`, `ndcg@{k}`, then `query_active_dims`,
//! `query_sparsity_ratio`, `corpus_active_dims`, `corpus_sparsity_ratio`. Primary metric
//! `ndcg@{k}`. Queries are encoded with `encode_query` in one call, every sample's positives
//! then negatives with `encode_document` in one call. Samples without a positive or without a
//! negative are dropped, as the reference does.

use splade_encoder::{EncodeOptions, SparseEncoder};
use splade_sparse::{sparsity, Similarity, SparseBatch};

use crate::binary::average_precision;
use crate::error::{EvalError, Result};
use crate::keyed::{keyed, stats_keys, KeyedResult};

/// One query with its relevant and non-relevant documents (a JSON object `{"query",
/// "positive": [...], "negative": [...]}` as sentence-transformers' samples).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct RerankingSample {
    /// The query text.
    pub query: String,
    /// Relevant documents.
    pub positive: Vec<String>,
    /// Non-relevant documents.
    pub negative: Vec<String>,
}

/// `SparseRerankingEvaluator(samples, at_k=10, similarity_fct=cos_sim, ...)`.
#[derive(Debug, Clone)]
pub struct RerankingEvaluator {
    /// The samples kept (each with a positive and a negative).
    pub samples: Vec<RerankingSample>,
    /// Cut-off of MRR and NDCG (default 10).
    pub at_k: usize,
    /// The score function (`similarity_fct`; default cosine).
    pub similarity: Similarity,
    /// Key prefix; empty for none.
    pub name: String,
    /// Batch size and `max_active_dims` of the encoding.
    pub options: EncodeOptions,
}

impl RerankingEvaluator {
    /// An evaluator with the reference's defaults (cosine, at_k 10). Samples without a
    /// positive or a negative are dropped; an error when none is left.
    pub fn new(samples: Vec<RerankingSample>) -> Result<Self> {
        let samples: Vec<RerankingSample> = samples
            .into_iter()
            .filter(|s| !s.positive.is_empty() && !s.negative.is_empty())
            .collect();
        if samples.is_empty() {
            return Err(EvalError::InvalidData(
                "no reranking sample has both a positive and a negative document".into(),
            ));
        }
        Ok(Self {
            samples,
            at_k: 10,
            similarity: Similarity::Cosine,
            name: String::new(),
            options: EncodeOptions::default(),
        })
    }

    /// The documents of every sample (positives then negatives), in sample order.
    pub fn documents(&self) -> Vec<&str> {
        self.samples
            .iter()
            .flat_map(|s| s.positive.iter().chain(&s.negative).map(String::as_str))
            .collect()
    }

    /// Encodes queries and documents and evaluates.
    pub fn evaluate(&self, encoder: &SparseEncoder) -> Result<KeyedResult> {
        let queries: Vec<&str> = self.samples.iter().map(|s| s.query.as_str()).collect();
        let q = encoder.encode_query(&queries, &self.options)?;
        let d = encoder.encode_document(&self.documents(), &self.options)?;
        self.evaluate_embeddings(&q, &d)
    }

    /// Evaluates precomputed embeddings: one row per sample, and every sample's documents in
    /// the order of [`Self::documents`].
    pub fn evaluate_embeddings(
        &self,
        queries: &SparseBatch,
        documents: &SparseBatch,
    ) -> Result<KeyedResult> {
        let n_docs: usize = self
            .samples
            .iter()
            .map(|s| s.positive.len() + s.negative.len())
            .sum();
        if queries.len() != self.samples.len() || documents.len() != n_docs {
            return Err(EvalError::InvalidArgument(format!(
                "{} query and {} document embeddings for {} samples with {n_docs} documents",
                queries.len(),
                documents.len(),
                self.samples.len()
            )));
        }
        if self.at_k == 0 {
            return Err(EvalError::InvalidArgument("at_k must be at least 1".into()));
        }
        let (mut maps, mut mrrs, mut ndcgs) = (Vec::new(), Vec::new(), Vec::new());
        let mut offset = 0;
        for (i, sample) in self.samples.iter().enumerate() {
            let q = queries.row(i).expect("checked length");
            let count = sample.positive.len() + sample.negative.len();
            let scores: Vec<f32> = (offset..offset + count)
                .map(|j| {
                    self.similarity
                        .score(&q, &documents.row(j).expect("checked length"))
                })
                .collect();
            offset += count;
            let relevant: Vec<bool> = (0..count).map(|j| j < sample.positive.len()).collect();
            let (mrr, ndcg, ap) = rerank_metrics(&relevant, &scores, self.at_k);
            mrrs.push(mrr);
            ndcgs.push(ndcg);
            maps.push(ap);
        }
        let k = self.at_k;
        let mut metrics = vec![
            ("map".to_string(), mean(&maps)),
            (format!("mrr@{k}"), mean(&mrrs)),
            (format!("ndcg@{k}"), mean(&ndcgs)),
        ];
        metrics.extend(stats_keys("query_", sparsity(queries)));
        metrics.extend(stats_keys("corpus_", sparsity(documents)));
        Ok(keyed(&self.name, metrics, &format!("ndcg@{k}")))
    }
}

/// MRR@k (the first relevant document among the `k` best, ties in input order), NDCG@k and
/// AP of one ranked list, as the reference computes them per query.
pub fn rerank_metrics(relevant: &[bool], scores: &[f32], k: usize) -> (f64, f64, f64) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mrr = order
        .iter()
        .take(k)
        .position(|&i| relevant[i])
        .map_or(0.0, |rank| 1.0 / (rank + 1) as f64);
    let gains: Vec<f64> = relevant.iter().map(|&r| f64::from(u8::from(r))).collect();
    let scores64: Vec<f64> = scores.iter().map(|&s| f64::from(s)).collect();
    let ndcg = ndcg_score(&gains, &scores64, k);
    let ap = average_precision(relevant, scores);
    (mrr, ndcg, ap)
}

/// scikit-learn's `ndcg_score([y_true], [y_score], k=k)` for one query: linear gains, discount
/// `1 / log2(rank + 1)` cut after rank `k`, tied scores sharing the average gain of their
/// group; normalised by the ideal DCG (0 when it is 0).
pub fn ndcg_score(y_true: &[f64], y_score: &[f64], k: usize) -> f64 {
    let ideal = dcg(y_true, y_true, k, true);
    if ideal == 0.0 {
        return 0.0;
    }
    dcg(y_true, y_score, k, false) / ideal
}

fn dcg(y_true: &[f64], y_score: &[f64], k: usize, ignore_ties: bool) -> f64 {
    let n = y_true.len();
    let discount: Vec<f64> = (0..n)
        .map(|i| {
            if i < k {
                1.0 / ((i + 2) as f64).log2()
            } else {
                0.0
            }
        })
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    // Descending scores; numpy's argsort of the negated scores is stable for ties.
    order.sort_by(|&a, &b| y_score[b].total_cmp(&y_score[a]));
    if ignore_ties {
        return order
            .iter()
            .zip(&discount)
            .map(|(&i, d)| y_true[i] * d)
            .sum();
    }
    let mut total = 0.0;
    let mut start = 0;
    let mut cumulative = 0.0;
    let mut prev_cumulative = 0.0;
    while start < n {
        let mut end = start;
        let mut gain = 0.0;
        while end < n && y_score[order[end]] == y_score[order[start]] {
            gain += y_true[order[end]];
            cumulative += discount[end];
            end += 1;
        }
        let count = (end - start) as f64;
        total += gain / count * (cumulative - prev_cumulative);
        prev_cumulative = cumulative;
        start = end;
    }
    total
}

/// numpy's `mean` of a list (NaN when empty).
pub(crate) fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.iter().sum::<f64>() / values.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndcg_averages_tied_gains() {
        // One relevant of two tied documents: DCG = 0.5 * (1 + 1/log2 3), ideal = 1.
        let v = ndcg_score(&[1.0, 0.0], &[0.5, 0.5], 10);
        assert!((v - 0.5 * (1.0 + 1.0 / 3f64.log2())).abs() < 1e-12, "{v}");
        assert!((ndcg_score(&[0.0, 1.0], &[0.9, 0.1], 1)).abs() < 1e-12);
        assert_eq!(ndcg_score(&[0.0, 0.0], &[0.9, 0.1], 5), 0.0);
        let (mrr, ndcg, ap) = rerank_metrics(&[false, true, false], &[0.9, 0.5, 0.1], 10);
        assert_eq!(mrr, 0.5);
        assert!((ndcg - 1.0 / 3f64.log2()).abs() < 1e-12);
        assert!((ap - 0.5).abs() < 1e-12);
    }
}
