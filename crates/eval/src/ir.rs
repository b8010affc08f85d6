//! Information-retrieval metrics from rankings and relevance judgements, exactly as
//! sentence-transformers' `InformationRetrievalEvaluator.compute_metrics` (6.2) computes them.
//!
//! * Relevance is **binary**: a document is relevant if it is in the query's relevant set
//!   (the data readers put a qrel in the set when its score is > 0). NDCG uses gain 1 per
//!   relevant hit, the `log2(rank + 1)` discount, and an ideal DCG of `min(|relevant|, k)` ones.
//! * accuracy@k: share of queries with a relevant document in the top k.
//! * precision@k = hits in top k / k (k, even when fewer documents were retrieved);
//!   recall@k = hits in top k / |relevant| (relevant documents missing from the corpus count).
//! * MRR@k: reciprocal rank of the first relevant hit within the top k, else 0.
//! * MAP@k: Σ precision at each relevant hit within the top k, divided by `min(k, |relevant|)`.
//! * Every metric is a plain mean over the queries that have at least one relevant document.

use std::collections::HashSet;

use crate::error::{EvalError, Result};

/// The cut-offs of each metric (sentence-transformers' defaults by [`Default`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cutoffs {
    /// accuracy@k (default 1, 3, 5, 10).
    pub accuracy_at_k: Vec<usize>,
    /// precision@k and recall@k (default 1, 3, 5, 10).
    pub precision_recall_at_k: Vec<usize>,
    /// MRR@k (default 10).
    pub mrr_at_k: Vec<usize>,
    /// NDCG@k (default 10).
    pub ndcg_at_k: Vec<usize>,
    /// MAP@k (default 100).
    pub map_at_k: Vec<usize>,
}

impl Default for Cutoffs {
    fn default() -> Self {
        Self {
            accuracy_at_k: vec![1, 3, 5, 10],
            precision_recall_at_k: vec![1, 3, 5, 10],
            mrr_at_k: vec![10],
            ndcg_at_k: vec![10],
            map_at_k: vec![100],
        }
    }
}

impl Cutoffs {
    /// Errors if a list is empty or holds a 0.
    pub fn validate(&self) -> Result<()> {
        for (name, list) in [
            ("accuracy@k", &self.accuracy_at_k),
            ("precision/recall@k", &self.precision_recall_at_k),
            ("mrr@k", &self.mrr_at_k),
            ("ndcg@k", &self.ndcg_at_k),
            ("map@k", &self.map_at_k),
        ] {
            if list.is_empty() || list.contains(&0) {
                return Err(EvalError::InvalidArgument(format!(
                    "the {name} cut-offs must be a non-empty list of positive numbers, got {list:?}"
                )));
            }
        }
        Ok(())
    }

    /// The number of documents to retrieve per query: the largest cut-off.
    pub fn max_k(&self) -> usize {
        [
            &self.accuracy_at_k,
            &self.precision_recall_at_k,
            &self.mrr_at_k,
            &self.ndcg_at_k,
            &self.map_at_k,
        ]
        .iter()
        .flat_map(|l| l.iter().copied())
        .max()
        .unwrap_or(0)
    }
}

/// The metrics of one score function, each as `(k, value)` in cut-off order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IrMetrics {
    /// accuracy@k.
    pub accuracy: Vec<(usize, f64)>,
    /// precision@k.
    pub precision: Vec<(usize, f64)>,
    /// recall@k.
    pub recall: Vec<(usize, f64)>,
    /// NDCG@k.
    pub ndcg: Vec<(usize, f64)>,
    /// MRR@k.
    pub mrr: Vec<(usize, f64)>,
    /// MAP@k.
    pub map: Vec<(usize, f64)>,
}

impl IrMetrics {
    /// `(name, value)` pairs in the reference's key order (`accuracy@1`, ..., `precision@1`,
    /// ..., `recall@1`, ..., `ndcg@10`, `mrr@10`, `map@100`).
    pub fn named(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for (name, list) in [
            ("accuracy", &self.accuracy),
            ("precision", &self.precision),
            ("recall", &self.recall),
            ("ndcg", &self.ndcg),
            ("mrr", &self.mrr),
            ("map", &self.map),
        ] {
            for (k, v) in list {
                out.push((format!("{name}@{k}"), *v));
            }
        }
        out
    }
}

/// `1 / log2(rank + 2)` summed over the first `k` relevances (0-based ranks).
fn dcg_at_k(relevances: impl Iterator<Item = bool>, k: usize) -> f64 {
    relevances
        .take(k)
        .enumerate()
        .filter(|(_, r)| *r)
        .map(|(i, _)| 1.0 / ((i + 2) as f64).log2())
        .sum()
}

/// Computes all metrics. `ranked[q]` are the retrieved document ids of query `q`, best first
/// (at least `cutoffs.max_k()` of them unless the corpus is smaller); `relevant[q]` its
/// relevant ids, which must not be empty.
pub fn ir_metrics<S: AsRef<str>>(
    ranked: &[Vec<S>],
    relevant: &[&HashSet<String>],
    cutoffs: &Cutoffs,
) -> Result<IrMetrics> {
    cutoffs.validate()?;
    if ranked.len() != relevant.len() {
        return Err(EvalError::InvalidArgument(format!(
            "{} rankings but {} relevance sets",
            ranked.len(),
            relevant.len()
        )));
    }
    if ranked.is_empty() {
        return Err(EvalError::InvalidData(
            "no query has a relevant document".into(),
        ));
    }
    if let Some(q) = relevant.iter().position(|r| r.is_empty()) {
        return Err(EvalError::InvalidArgument(format!(
            "query {q} has no relevant document"
        )));
    }
    let n = ranked.len() as f64;
    let mut m = IrMetrics::default();
    let hits_of = |q: usize| -> Vec<bool> {
        ranked[q]
            .iter()
            .map(|id| relevant[q].contains(id.as_ref()))
            .collect()
    };
    let all_hits: Vec<Vec<bool>> = (0..ranked.len()).map(hits_of).collect();
    let mean = |f: &dyn Fn(usize) -> f64| -> f64 { (0..ranked.len()).map(f).sum::<f64>() / n };
    for &k in &cutoffs.accuracy_at_k {
        let v = mean(&|q| all_hits[q].iter().take(k).any(|h| *h) as u8 as f64);
        m.accuracy.push((k, v));
    }
    for &k in &cutoffs.precision_recall_at_k {
        let correct = |q: usize| all_hits[q].iter().take(k).filter(|h| **h).count() as f64;
        m.precision.push((k, mean(&|q| correct(q) / k as f64)));
        m.recall
            .push((k, mean(&|q| correct(q) / relevant[q].len() as f64)));
    }
    for &k in &cutoffs.ndcg_at_k {
        let v = mean(&|q| {
            let ideal = dcg_at_k(std::iter::repeat_n(true, relevant[q].len()), k);
            dcg_at_k(all_hits[q].iter().copied(), k) / ideal
        });
        m.ndcg.push((k, v));
    }
    for &k in &cutoffs.mrr_at_k {
        let v = mean(&|q| {
            all_hits[q]
                .iter()
                .take(k)
                .position(|h| *h)
                .map_or(0.0, |r| 1.0 / (r + 1) as f64)
        });
        m.mrr.push((k, v));
    }
    for &k in &cutoffs.map_at_k {
        let v = mean(&|q| {
            let mut correct = 0usize;
            let mut sum = 0.0f64;
            for (rank, _) in all_hits[q].iter().take(k).enumerate().filter(|(_, h)| **h) {
                correct += 1;
                sum += correct as f64 / (rank + 1) as f64;
            }
            sum / k.min(relevant[q].len()) as f64
        });
        m.map.push((k, v));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hand_computed_metrics() {
        let r0 = set(&["a", "c", "z"]);
        let r1 = set(&["x"]);
        let ranked = vec![vec!["b", "a", "c"], vec!["y", "q", "w"]];
        let cut = Cutoffs {
            accuracy_at_k: vec![1, 2],
            precision_recall_at_k: vec![2],
            mrr_at_k: vec![3],
            ndcg_at_k: vec![3],
            map_at_k: vec![3],
        };
        let m = ir_metrics(&ranked, &[&r0, &r1], &cut).unwrap();
        assert_eq!(m.accuracy, vec![(1, 0.0), (2, 0.5)]);
        assert_eq!(m.precision, vec![(2, 0.25)]);
        assert_eq!(m.recall, vec![(2, (1.0 / 3.0) / 2.0)]);
        assert_eq!(m.mrr, vec![(3, 0.25)]);
        let dcg = 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        assert!((m.ndcg[0].1 - dcg / idcg / 2.0).abs() < 1e-15);
        let ap0 = (1.0 / 2.0 + 2.0 / 3.0) / 3.0;
        assert!((m.map[0].1 - ap0 / 2.0).abs() < 1e-15);
        assert_eq!(m.named()[0].0, "accuracy@1");
    }

    #[test]
    fn bad_input_is_an_error() {
        let empty = set(&[]);
        assert!(ir_metrics(&[vec!["a"]], &[&empty], &Cutoffs::default()).is_err());
        assert!(ir_metrics::<&str>(&[], &[], &Cutoffs::default()).is_err());
        let bad = Cutoffs {
            map_at_k: vec![],
            ..Cutoffs::default()
        };
        assert!(bad.validate().is_err());
    }
}
