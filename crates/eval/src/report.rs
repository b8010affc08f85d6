//! Flat metric keys with sentence-transformers' names, JSON output and markdown tables.
//!
//! Keys follow the evaluators' dictionaries: binary `cosine_accuracy`, ..., `max_ap`,
//! `active_dims`, `sparsity_ratio`; IR `dot_accuracy@1`, ..., `dot_ndcg@10`, `dot_mrr@10`,
//! `dot_map@100`, `query_active_dims`, `query_sparsity_ratio`, `corpus_active_dims`,
//! `corpus_sparsity_ratio`, `avg_flops`. A non-empty evaluator name is prepended with `_`
//! (`prefix_name_to_metrics`).

use std::fmt::Write as _;

use crate::binary::BinaryMetrics;
use crate::evaluator::{BinaryResult, IrResult};

/// An ordered list of `(key, value)`.
pub type Metrics = Vec<(String, f64)>;

fn prefixed(name: &str, key: &str) -> String {
    if name.is_empty() {
        key.to_string()
    } else {
        format!("{name}_{key}")
    }
}

/// The flat keys of a binary classification result, in the reference's order: per function
/// its eight metrics, then `max_*` over the functions (only with more than one function),
/// then `active_dims`, `sparsity_ratio`.
pub fn binary_keys(result: &BinaryResult) -> Metrics {
    let mut out = Vec::new();
    for (f, m) in &result.functions {
        for (name, v) in BinaryMetrics::NAMES.iter().zip(m.values()) {
            out.push((prefixed(&result.name, &format!("{}_{name}", f.name())), v));
        }
    }
    if result.functions.len() > 1 {
        for (i, name) in BinaryMetrics::NAMES.iter().enumerate() {
            let max = result
                .functions
                .iter()
                .map(|(_, m)| m.values()[i])
                .fold(f64::NEG_INFINITY, f64::max);
            out.push((prefixed(&result.name, &format!("max_{name}")), max));
        }
    }
    out.push((
        prefixed(&result.name, "active_dims"),
        result.sparsity.active_dims,
    ));
    out.push((
        prefixed(&result.name, "sparsity_ratio"),
        result.sparsity.sparsity_ratio,
    ));
    out
}

/// The flat keys of an IR result; `with_name` prepends the result's name.
pub fn ir_keys(result: &IrResult, with_name: bool) -> Metrics {
    let name = if with_name { result.name.as_str() } else { "" };
    let mut out: Metrics = result
        .metrics
        .named()
        .into_iter()
        .map(|(k, v)| {
            (
                prefixed(name, &format!("{}_{k}", result.function.name())),
                v,
            )
        })
        .collect();
    for (k, v) in [
        ("query_active_dims", result.query_sparsity.active_dims),
        ("query_sparsity_ratio", result.query_sparsity.sparsity_ratio),
        ("corpus_active_dims", result.corpus_sparsity.active_dims),
        (
            "corpus_sparsity_ratio",
            result.corpus_sparsity.sparsity_ratio,
        ),
        ("avg_flops", result.avg_flops),
    ] {
        out.push((prefixed(name, k), v));
    }
    out
}

/// A flat JSON object, keys in order; non-finite values become `null`.
pub fn to_json(metrics: &Metrics) -> String {
    let mut s = String::from("{\n");
    for (i, (k, v)) in metrics.iter().enumerate() {
        let key = serde_json::to_string(k).unwrap_or_else(|_| "\"?\"".into());
        let value = if v.is_finite() {
            serde_json::to_string(v).unwrap_or_else(|_| "null".into())
        } else {
            "null".into()
        };
        let comma = if i + 1 < metrics.len() { "," } else { "" };
        let _ = writeln!(s, "  {key}: {value}{comma}");
    }
    s.push_str("}\n");
    s
}

fn fmt_value(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "nan".into()
    }
}

/// A two-column markdown table `| Metric | Value |` (as in the model card).
pub fn markdown_table(metrics: &Metrics) -> String {
    let width = metrics
        .iter()
        .map(|(k, _)| k.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut s = String::new();
    let _ = writeln!(s, "| {:<width$} | Value      |", "Metric");
    let _ = writeln!(s, "|:{}|:-----------|", "-".repeat(width + 1));
    for (k, v) in metrics {
        let _ = writeln!(s, "| {k:<width$} | {:<10} |", fmt_value(*v));
    }
    s
}

/// A markdown table with one row per metric and one column per dataset (as in the model
/// card's NanoBEIR table). `columns` are `(title, metrics)`; every column must have the same
/// keys in the same order (the first column's keys are the rows).
pub fn markdown_columns(columns: &[(String, Metrics)]) -> String {
    let Some((_, first)) = columns.first() else {
        return String::new();
    };
    let width = first.iter().map(|(k, _)| k.len()).max().unwrap_or(6).max(6);
    let mut s = String::new();
    let _ = write!(s, "| {:<width$} |", "Metric");
    for (title, _) in columns {
        let _ = write!(s, " {title} |");
    }
    let _ = write!(s, "\n|:{}|", "-".repeat(width + 1));
    for (title, _) in columns {
        let _ = write!(s, ":{}|", "-".repeat(title.len().max(6) + 1));
    }
    s.push('\n');
    for (row, (key, _)) in first.iter().enumerate() {
        let _ = write!(s, "| {key:<width$} |");
        for (title, m) in columns {
            let v = m.get(row).map_or("".into(), |(_, v)| fmt_value(*v));
            let _ = write!(s, " {v:<w$} |", w = title.len());
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_order_and_nulls_nan() {
        let m = vec![("b@1".to_string(), 0.5), ("a".to_string(), f64::NAN)];
        assert_eq!(to_json(&m), "{\n  \"b@1\": 0.5,\n  \"a\": null\n}\n");
        let parsed: serde_json::Value = serde_json::from_str(&to_json(&m)).unwrap();
        assert_eq!(parsed["b@1"], 0.5);
    }

    #[test]
    fn tables_list_every_metric() {
        let m = vec![("dot_ndcg@10".to_string(), 0.12345)];
        let t = markdown_table(&m);
        assert!(t.contains("| dot_ndcg@10 | 0.1235"), "{t}");
        let c = markdown_columns(&[("x".into(), m.clone()), ("NanoBEIR_mean".into(), m)]);
        assert!(c.lines().count() == 3 && c.contains("NanoBEIR_mean"), "{c}");
    }
}
