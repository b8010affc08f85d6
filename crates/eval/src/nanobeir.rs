//! NanoBEIR-style aggregation over several IR evaluations, as sentence-transformers'
//! `SparseNanoBEIREvaluator` (6.2) does it:
//!
//! * every ranking metric: the plain mean over datasets (`aggregate_fn=np.mean`);
//! * `query_active_dims` / `query_sparsity_ratio`: mean weighted by each dataset's number of
//!   evaluated queries; `corpus_*`: weighted by corpus size;
//! * `avg_flops`: from the per-term counts summed over all datasets,
//!   `dot(Σ query_counts / Σ nq, Σ corpus_counts / Σ nc)` (not a mean of per-dataset values);
//! * keys are prefixed with the aggregate name, `NanoBEIR_mean` by default.

use crate::error::{EvalError, Result};
use crate::evaluator::{avg_flops, IrResult};
use crate::report::{ir_keys, Metrics};

/// The default aggregate name (`NanoBEIR_{aggregate_key}` with `aggregate_key="mean"`).
pub const DEFAULT_AGGREGATE_NAME: &str = "NanoBEIR_mean";

pub use splade_data::datasets::{nanobeir_name, NANOBEIR_DATASETS};

/// Per-dataset results and their aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The aggregate's key prefix.
    pub name: String,
    /// The per-dataset results, in evaluation order.
    pub datasets: Vec<IrResult>,
    /// Aggregated metrics, unprefixed keys (`dot_ndcg@10`, ..., `avg_flops`).
    pub metrics: Metrics,
}

impl Aggregate {
    /// All keys as the reference returns them: every dataset's prefixed keys, then the
    /// aggregate's prefixed keys.
    pub fn flat(&self) -> Metrics {
        let mut out: Metrics = self
            .datasets
            .iter()
            .flat_map(|r| ir_keys(r, true))
            .collect();
        out.extend(
            self.metrics
                .iter()
                .map(|(k, v)| (format!("{}_{k}", self.name), *v)),
        );
        out
    }
}

/// Aggregates per-dataset results. Errors if there are none or their keys differ (e.g.
/// different score functions or cut-offs).
pub fn aggregate(name: &str, datasets: Vec<IrResult>) -> Result<Aggregate> {
    let Some(first) = datasets.first() else {
        return Err(EvalError::InvalidArgument(
            "no datasets to aggregate".into(),
        ));
    };
    let keys: Vec<String> = ir_keys(first, false).into_iter().map(|(k, _)| k).collect();
    let mut sums = vec![0.0f64; keys.len()];
    for r in &datasets {
        let m = ir_keys(r, false);
        if m.len() != keys.len() || m.iter().zip(&keys).any(|((a, _), b)| a != b) {
            return Err(EvalError::InvalidArgument(format!(
                "dataset {} has different metrics than {}",
                r.name, first.name
            )));
        }
        for (s, (_, v)) in sums.iter_mut().zip(m) {
            *s += v;
        }
    }
    let n = datasets.len() as f64;
    let nq: usize = datasets.iter().map(|r| r.num_queries).sum();
    let nc: usize = datasets.iter().map(|r| r.num_corpus).sum();
    let weighted = |f: &dyn Fn(&IrResult) -> (f64, usize), total: usize| -> f64 {
        datasets
            .iter()
            .map(|r| {
                let (v, w) = f(r);
                v * w as f64
            })
            .sum::<f64>()
            / total as f64
    };
    let dim = first.query_counts.len();
    let mut qc = vec![0u64; dim];
    let mut cc = vec![0u64; dim];
    for r in &datasets {
        if r.query_counts.len() != dim || r.corpus_counts.len() != dim {
            return Err(EvalError::InvalidArgument(format!(
                "dataset {} was encoded in a different vocabulary size",
                r.name
            )));
        }
        qc.iter_mut()
            .zip(&r.query_counts)
            .for_each(|(a, b)| *a += b);
        cc.iter_mut()
            .zip(&r.corpus_counts)
            .for_each(|(a, b)| *a += b);
    }
    let metrics = keys
        .into_iter()
        .zip(sums)
        .map(|(k, s)| {
            let v = match k.as_str() {
                "query_active_dims" => {
                    weighted(&|r| (r.query_sparsity.active_dims, r.num_queries), nq)
                }
                "query_sparsity_ratio" => {
                    weighted(&|r| (r.query_sparsity.sparsity_ratio, r.num_queries), nq)
                }
                "corpus_active_dims" => {
                    weighted(&|r| (r.corpus_sparsity.active_dims, r.num_corpus), nc)
                }
                "corpus_sparsity_ratio" => {
                    weighted(&|r| (r.corpus_sparsity.sparsity_ratio, r.num_corpus), nc)
                }
                "avg_flops" => avg_flops(&qc, nq, &cc, nc),
                _ => s / n,
            };
            (k, v)
        })
        .collect();
    Ok(Aggregate {
        name: name.to_string(),
        datasets,
        metrics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::IrMetrics;
    use splade_sparse::{Similarity, SparsityStats};

    fn result(
        name: &str,
        ndcg: f64,
        nq: usize,
        qdims: f64,
        qc: Vec<u64>,
        cc: Vec<u64>,
    ) -> IrResult {
        IrResult {
            name: name.into(),
            function: Similarity::Dot,
            metrics: IrMetrics {
                ndcg: vec![(10, ndcg)],
                ..IrMetrics::default()
            },
            query_sparsity: SparsityStats {
                active_dims: qdims,
                sparsity_ratio: 1.0 - qdims / 4.0,
            },
            corpus_sparsity: SparsityStats {
                active_dims: 1.0,
                sparsity_ratio: 0.75,
            },
            avg_flops: 0.0,
            num_queries: nq,
            num_corpus: 2,
            query_counts: qc,
            corpus_counts: cc,
        }
    }

    #[test]
    fn means_weights_and_flops() {
        let a = result("A", 0.2, 1, 2.0, vec![1, 1, 0, 0], vec![1, 0, 0, 1]);
        let b = result("B", 0.6, 3, 1.0, vec![3, 0, 0, 0], vec![2, 0, 0, 0]);
        let agg = aggregate(DEFAULT_AGGREGATE_NAME, vec![a, b]).unwrap();
        let get = |k: &str| agg.metrics.iter().find(|(n, _)| n == k).unwrap().1;
        assert!((get("dot_ndcg@10") - 0.4).abs() < 1e-15);
        assert_eq!(get("query_active_dims"), (2.0 + 3.0) / 4.0);
        // counts: q = [4,1,0,0]/4, c = [3,0,0,1]/4 -> 12/16
        assert_eq!(get("avg_flops"), 0.75);
        let flat = agg.flat();
        assert_eq!(flat[0].0, "A_dot_ndcg@10");
        assert_eq!(flat.last().unwrap().0, "NanoBEIR_mean_avg_flops");
        assert!(aggregate("x", vec![]).is_err());
        assert_eq!(nanobeir_name("SciFact").as_deref(), Some("NanoSciFact"));
    }
}
