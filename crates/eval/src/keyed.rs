//! The result of the evaluators that report a flat dictionary: sentence-transformers' keys in
//! its order, and the name of its primary metric.

use splade_sparse::SparsityStats;

use crate::report::Metrics;

/// A flat evaluator dictionary and its primary metric, both with the evaluator's name prefix
/// (`{name}_{key}`, or `{key}` for an empty name), as `evaluator(model)` and
/// `evaluator.primary_metric` give them.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedResult {
    /// `(key, value)` in the reference's order.
    pub metrics: Metrics,
    /// The key of the primary metric (already prefixed).
    pub primary_metric: String,
}

impl KeyedResult {
    /// The value of `key`, if reported.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.metrics.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// The value of the primary metric.
    pub fn primary(&self) -> Option<f64> {
        self.get(&self.primary_metric)
    }
}

/// `{name}_{key}`, or `key` when `name` is empty (`prefix_name_to_metrics`).
pub fn prefixed(name: &str, key: &str) -> String {
    if name.is_empty() {
        key.to_string()
    } else {
        format!("{name}_{key}")
    }
}

/// Builds a [`KeyedResult`]: prefixes every key and the primary metric with `name`.
pub(crate) fn keyed(name: &str, metrics: Metrics, primary: &str) -> KeyedResult {
    KeyedResult {
        metrics: metrics
            .into_iter()
            .map(|(k, v)| (prefixed(name, &k), v))
            .collect(),
        primary_metric: prefixed(name, primary),
    }
}

/// The mean of several sparsity measurements (the reference averages the statistics of each
/// `encode` call, not of the rows).
pub(crate) fn mean_stats(stats: &[SparsityStats]) -> SparsityStats {
    let n = stats.len().max(1) as f64;
    SparsityStats {
        active_dims: stats.iter().map(|s| s.active_dims).sum::<f64>() / n,
        sparsity_ratio: stats.iter().map(|s| s.sparsity_ratio).sum::<f64>() / n,
    }
}

/// `{prefix}active_dims` and `{prefix}sparsity_ratio`.
pub(crate) fn stats_keys(prefix: &str, s: SparsityStats) -> Metrics {
    vec![
        (format!("{prefix}active_dims"), s.active_dims),
        (format!("{prefix}sparsity_ratio"), s.sparsity_ratio),
    ]
}
