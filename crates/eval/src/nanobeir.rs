//! NanoBEIR-style aggregation over several IR evaluations, as sentence-transformers'
//! `SparseNanoBEIREvaluator` (6.2) does it:
//!
//! * every ranking metric: the plain mean over datasets (`aggregate_fn=np.mean`);
//! * `query_active_dims` / `query_sparsity_ratio`: mean weighted by each dataset's number of
//!   evaluated queries; `corpus_*`: weighted by corpus size;
//! * `avg_flops`: from the per-term counts summed over all datasets,
//!   `dot(Σ query_counts / Σ nq, Σ corpus_counts / Σ nc)` (not a mean of per-dataset values);
//! * keys are prefixed with the aggregate name, `NanoBEIR_mean` by default.
//!
//! [`NanoBeirEvaluator`] is the evaluator itself: one [`InformationRetrievalEvaluator`] per
//! dataset, read from local folders (BEIR folders or Hugging Face parquet folders, see
//! [`crate::datasets::find_datasets`]) or, as sentence-transformers reads them, from a Hub
//! dataset (`sentence-transformers/NanoBEIR-en`, one split `Nano{Name}` per dataset) in the
//! local Hugging Face cache. splade-rs does not download datasets: a dataset missing from the
//! cache is an error naming it.

use std::path::{Path, PathBuf};

use splade_encoder::SparseEncoder;

use crate::error::{EvalError, Result};
use crate::evaluator::{avg_flops, InformationRetrievalEvaluator, IrResult};
use crate::report::{ir_keys, Metrics};

/// sentence-transformers' default NanoBEIR dataset on the Hub.
pub const DEFAULT_DATASET_ID: &str = "sentence-transformers/NanoBEIR-en";

/// sentence-transformers' `SparseNanoBEIREvaluator`: IR on several datasets and their
/// aggregate ([`aggregate`]); [`NanoBeirEvaluator::evaluate`] returns every dataset's result
/// and the `NanoBEIR_mean` metrics, [`Aggregate::flat`] the keys as the reference returns them.
pub struct NanoBeirEvaluator {
    /// One evaluator per dataset, named as its results are reported (`NanoSciFact`).
    pub evaluators: Vec<InformationRetrievalEvaluator>,
    /// The aggregate's key prefix ([`DEFAULT_AGGREGATE_NAME`]).
    pub name: String,
}

impl NanoBeirEvaluator {
    /// An evaluator over `datasets` of a local folder (every dataset found when `names` is
    /// empty; names as [`crate::datasets::find_datasets`] matches them, e.g. `scifact` finds a
    /// folder `NanoSciFact`), `split` being the qrels split of BEIR folders.
    pub fn from_folder(dir: &Path, names: &[String], split: &str) -> Result<Self> {
        let mut evaluators = Vec::new();
        for dataset in crate::datasets::find_datasets(dir, split, names)? {
            let data = dataset.read(split)?;
            evaluators.push(InformationRetrievalEvaluator::new(data, dataset.name)?);
        }
        Ok(Self {
            evaluators,
            name: DEFAULT_AGGREGATE_NAME.to_string(),
        })
    }

    /// An evaluator over NanoBEIR datasets (`names`: keys such as `scifact`, `msmarco`; all
    /// 13 when empty) of the Hub dataset `dataset_id`, read from the local Hugging Face cache
    /// ([`hub_cache_snapshot`]) as sentence-transformers loads them (split `Nano{Name}` of the
    /// `corpus`, `queries` and `qrels` subsets). A dataset missing there is an error naming it:
    /// splade-rs does not download datasets.
    pub fn from_hub_cache(dataset_id: &str, names: &[String]) -> Result<Self> {
        let keys: Vec<String> = if names.is_empty() {
            NANOBEIR_DATASETS
                .iter()
                .map(|(k, _)| k.to_string())
                .collect()
        } else {
            names.to_vec()
        };
        let mut splits = Vec::new();
        for key in &keys {
            let split = nanobeir_name(key).ok_or_else(|| {
                EvalError::InvalidArgument(format!(
                    "'{key}' is not a NanoBEIR dataset; valid names are: {}",
                    NANOBEIR_DATASETS
                        .iter()
                        .map(|(k, _)| *k)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            splits.push(split);
        }
        let snapshot = hub_cache_snapshot(dataset_id).map_err(|why| {
            EvalError::InvalidArgument(format!(
                "NanoBEIR dataset{} {}: {why}",
                if splits.len() > 1 { "s" } else { "" },
                splits.join(", ")
            ))
        })?;
        let found = crate::datasets::find_datasets(&snapshot, "test", &[])?;
        let mut evaluators = Vec::new();
        for split in splits {
            let dataset = found.iter().find(|d| d.name == split).ok_or_else(|| {
                EvalError::InvalidArgument(format!(
                    "NanoBEIR dataset {split}: not in the cached snapshot {} of {dataset_id} \
                     (splits there: {}); splade-rs reads the Hugging Face cache only, download \
                     it where the Hub is reachable or give local folders",
                    snapshot.display(),
                    found
                        .iter()
                        .map(|d| d.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            let data = dataset.read("test")?;
            evaluators.push(InformationRetrievalEvaluator::new(data, split)?);
        }
        Ok(Self {
            evaluators,
            name: DEFAULT_AGGREGATE_NAME.to_string(),
        })
    }

    /// Evaluates `encoder` on every dataset and aggregates.
    pub fn evaluate(&self, encoder: &SparseEncoder) -> Result<Aggregate> {
        let results = self
            .evaluators
            .iter()
            .map(|e| e.evaluate(encoder))
            .collect::<Result<Vec<_>>>()?;
        aggregate(&self.name, results)
    }

    /// The metric that heads the evaluator: `{name}_{function}_ndcg@10` (`function` being the
    /// score function the datasets were ranked with).
    pub fn primary_metric(&self, function: &str) -> String {
        format!("{}_{function}_ndcg@10", self.name)
    }
}

/// The Hugging Face hub cache folder as `huggingface_hub` finds it: `HF_HUB_CACHE`, else
/// `HF_HOME/hub`, else `~/.cache/huggingface/hub` (`XDG_CACHE_HOME` honoured).
pub fn hub_cache_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = env("HF_HUB_CACHE") {
        return Some(p);
    }
    if let Some(p) = env("HF_HOME") {
        return Some(p.join("hub"));
    }
    env("XDG_CACHE_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".cache")))
        .map(|c| c.join("huggingface").join("hub"))
}

/// The cached snapshot folder of Hub dataset `dataset_id` (`org/name`):
/// `{cache}/datasets--{org}--{name}/snapshots/{refs/main}`, or the only snapshot when there
/// is no `refs/main`. The error says where it looked.
pub fn hub_cache_snapshot(dataset_id: &str) -> std::result::Result<PathBuf, String> {
    let cache = hub_cache_dir()
        .ok_or("no Hugging Face cache folder (HF_HUB_CACHE, HF_HOME, HOME unset)")?;
    let repo = cache.join(format!("datasets--{}", dataset_id.replace('/', "--")));
    let missing = || {
        format!(
            "{dataset_id} is not in the Hugging Face cache ({}); splade-rs reads the cache only \
             and does not download (the Hub may be unreachable): download it where the Hub is \
             reachable (`huggingface-cli download --repo-type dataset {dataset_id}`) and copy the \
             cache, or give local BEIR / parquet folders",
            repo.display()
        )
    };
    let snapshots = repo.join("snapshots");
    if !snapshots.is_dir() {
        return Err(missing());
    }
    if let Ok(rev) = std::fs::read_to_string(repo.join("refs").join("main")) {
        let dir = snapshots.join(rev.trim());
        if dir.is_dir() {
            return Ok(dir);
        }
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&snapshots)
        .map_err(|e| format!("{}: {e}", snapshots.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    match dirs.len() {
        1 => Ok(dirs.remove(0)),
        0 => Err(missing()),
        n => Err(format!(
            "{}: {n} snapshots and no refs/main naming one",
            snapshots.display()
        )),
    }
}

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
