//! Parity with sentence-transformers 6.2 evaluators on the fixtures written by
//! `scripts/parity/generate_eval_fixtures.py` (fixtures/eval/).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use serde_json::Value;
use splade_encoder::{default_model, SparseEncoder};
use splade_eval::binary::classification_metrics;
use splade_eval::data::{LabeledPairs, RetrievalData};
use splade_eval::report::{binary_keys, ir_keys};
use splade_eval::{
    BinaryClassificationEvaluator, BinaryMetrics, Cutoffs, InformationRetrievalEvaluator,
    ThresholdSemantics,
};
use splade_sparse::{sparsity, Similarity, SparseBatch, SparseVector};

const VOCAB: usize = 30522;

fn fixture(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/eval")
        .join(name);
    splade_testkit::read_fixture(p)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn vector(v: &Value) -> SparseVector {
    let idx = v["indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    let val = v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    SparseVector::new(idx, val).unwrap()
}

fn batch(table: &Value, texts: &[String]) -> SparseBatch {
    let rows: Vec<SparseVector> = texts.iter().map(|t| vector(&table[t.as_str()])).collect();
    SparseBatch::from_vectors(VOCAB, &rows).unwrap()
}

/// Every expected key must be present with a value within `tol(key, expected)`.
fn compare(ours: &[(String, f64)], expected: &Value, tol: impl Fn(&str, f64) -> f64) {
    let exp = expected.as_object().unwrap();
    let ours_map: HashMap<&str, f64> = ours.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        ours.len(),
        exp.len(),
        "key count: ours {:?}",
        ours.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    let keys: Vec<&String> = exp.keys().collect();
    let our_keys: Vec<&String> = ours.iter().map(|(k, _)| k).collect();
    let mut sorted_ours = our_keys.clone();
    sorted_ours.sort();
    let mut sorted_exp = keys.clone();
    sorted_exp.sort();
    assert_eq!(sorted_ours, sorted_exp, "key sets differ");
    let mut failures = Vec::new();
    for (k, v) in exp {
        let e = v.as_f64().unwrap();
        let o = ours_map[k.as_str()];
        if (o - e).abs() > tol(k, e) {
            failures.push(format!("{k}: ours {o} expected {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn binary_metrics_on_tied_random_scores() {
    let f = fixture("binary_scores.json");
    let cases = f["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for (i, c) in cases.iter().enumerate() {
        let scores: Vec<f32> = c["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let labels: Vec<bool> = c["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap() == 1)
            .collect();
        let greater = c["greater_is_better"].as_bool().unwrap();
        let semantics = if c["legacy"].as_bool().unwrap() {
            ThresholdSemantics::Legacy
        } else {
            ThresholdSemantics::Current
        };
        let m = classification_metrics(&scores, &labels, greater, semantics).unwrap();
        let ours: Vec<(String, f64)> = BinaryMetrics::NAMES
            .iter()
            .zip(m.values())
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let ctx = format!(
            "case {i} (n={}, greater={greater}, {semantics:?})",
            scores.len()
        );
        let exp = c["expected"].as_object().unwrap();
        for (k, v) in &ours {
            let e = exp[k.as_str()].as_f64().unwrap();
            assert!((v - e).abs() <= 1e-12, "{ctx} {k}: ours {v} expected {e}");
        }
    }
}

#[test]
fn binary_evaluator_on_synthetic_embeddings() {
    let f = fixture("binary_synthetic.json");
    let s1 = strings(&f["sentences1"]);
    let s2 = strings(&f["sentences2"]);
    let labels: Vec<bool> = f["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap() == 1)
        .collect();
    let ev = BinaryClassificationEvaluator::new(
        LabeledPairs {
            sentences1: s1.clone(),
            sentences2: s2.clone(),
            labels,
        },
        f["name"].as_str().unwrap(),
    )
    .unwrap();
    let (unique, _, _) = ev.unique_sentences();
    let unique: Vec<String> = unique.iter().map(|s| s.to_string()).collect();
    let stats = sparsity(&batch(&f["embeddings"], &unique));
    let result = ev
        .evaluate_embeddings(
            &batch(&f["embeddings"], &s1),
            &batch(&f["embeddings"], &s2),
            stats,
        )
        .unwrap();
    // Dyadic weights: dot, Manhattan and squared Euclidean are exact; cosine and Euclidean
    // differ from torch by float rounding only.
    compare(&binary_keys(&result), &f["expected"], |_, e| {
        1e-6 * e.abs().max(1.0)
    });
}

fn retrieval_data(f: &Value) -> RetrievalData {
    let pairs = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().to_string(),
                    p[1].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let mut relevant: HashMap<String, HashSet<String>> = HashMap::new();
    for q in f["qrels"].as_array().unwrap() {
        if q[2].as_f64().unwrap() > 0.0 {
            relevant
                .entry(q[0].as_str().unwrap().to_string())
                .or_default()
                .insert(q[1].as_str().unwrap().to_string());
        }
    }
    RetrievalData {
        corpus: pairs(&f["corpus"]),
        queries: pairs(&f["queries"]),
        relevant,
    }
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

#[test]
fn ir_evaluator_on_synthetic_embeddings_with_ties() {
    let f = fixture("ir_synthetic.json");
    let mut ev =
        InformationRetrievalEvaluator::new(retrieval_data(&f), f["name"].as_str().unwrap())
            .unwrap();
    let c = &f["cutoffs"];
    ev.cutoffs = Cutoffs {
        accuracy_at_k: usizes(&c["accuracy_at_k"]),
        precision_recall_at_k: usizes(&c["precision_recall_at_k"]),
        mrr_at_k: usizes(&c["mrr_at_k"]),
        ndcg_at_k: usizes(&c["ndcg_at_k"]),
        map_at_k: usizes(&c["map_at_k"]),
    };
    let q: Vec<String> = ev.queries.iter().map(|(_, t)| t.clone()).collect();
    let d: Vec<String> = ev.corpus.iter().map(|(_, t)| t.clone()).collect();
    let result = ev
        .evaluate_embeddings(
            &batch(&f["embeddings"], &q),
            &batch(&f["embeddings"], &d),
            Similarity::Dot,
        )
        .unwrap();
    // Sparsity statistics and avg_flops are float32 arithmetic in the reference.
    compare(&ir_keys(&result, true), &f["expected"], |k, e| {
        if k.contains("active_dims") || k.contains("sparsity_ratio") || k.ends_with("avg_flops") {
            1e-6 * e.abs().max(1.0)
        } else {
            1e-9
        }
    });
}

fn splade_tiny() -> SparseEncoder {
    let dir = default_model::ensure_default_model().expect("fetch the default model");
    SparseEncoder::load(&dir, &candle_core::Device::Cpu).unwrap()
}

/// Real splade-tiny embeddings: rank metrics, accuracies, AP and MCC must agree to 1e-6;
/// thresholds, sparsity and FLOPS (functions of the encoder's float output) to 1e-5 relative.
fn real_tol(k: &str, e: f64) -> f64 {
    if k.contains("threshold") || k.contains("active_dims") || k.contains("flops") {
        1e-5 * e.abs().max(1.0)
    } else {
        1e-6
    }
}

#[test]
fn binary_evaluator_on_real_quora_pairs_with_splade_tiny() {
    let f = fixture("binary_real.json");
    let pairs = f["pairs"].as_array().unwrap();
    let lp = LabeledPairs {
        sentences1: pairs
            .iter()
            .map(|p| p[0].as_str().unwrap().to_string())
            .collect(),
        sentences2: pairs
            .iter()
            .map(|p| p[1].as_str().unwrap().to_string())
            .collect(),
        labels: pairs.iter().map(|p| p[2].as_i64().unwrap() == 1).collect(),
    };
    let ev = BinaryClassificationEvaluator::new(lp, f["name"].as_str().unwrap()).unwrap();
    let result = ev.evaluate(&splade_tiny()).unwrap();
    compare(&binary_keys(&result), &f["expected"], real_tol);
}

#[test]
fn ir_evaluator_on_real_scifact_subset_with_splade_tiny() {
    let f = fixture("ir_real.json");
    let ev = InformationRetrievalEvaluator::new(retrieval_data(&f), f["name"].as_str().unwrap())
        .unwrap();
    let result = ev.evaluate(&splade_tiny()).unwrap();
    compare(&ir_keys(&result, true), &f["expected"], real_tol);
}
