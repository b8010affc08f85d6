//! Parity of the other sparse evaluators with sentence-transformers 6.2, on real data and
//! splade-tiny: fixtures written by `scripts/parity/generate_evaluator_fixtures.py`
//! (fixtures/eval/evaluators/). Every key must be present, in the reference's order, with the
//! reference's value; the primary metric must be the reference's.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;
use splade_encoder::{default_model, EncodeOptions, SparseEncoder};
use splade_eval::{
    EmbeddingSimilarityEvaluator, KeyedResult, MseEvaluator, RankedSample,
    ReciprocalRankFusionEvaluator, RerankingEvaluator, RerankingSample, TranslationEvaluator,
    TripletEvaluator,
};
use splade_sparse::Similarity;

fn fixture(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/eval/evaluators")
        .join(name);
    splade_testkit::read_fixture(p)
}

fn splade_tiny() -> &'static SparseEncoder {
    static MODEL: OnceLock<SparseEncoder> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = default_model::ensure_default_model().expect("fetch the default model");
        SparseEncoder::load(&dir, &candle_core::Device::Cpu).unwrap()
    })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn column(rows: &Value, i: usize) -> Vec<String> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r[i].as_str().unwrap().to_string())
        .collect()
}

fn similarity(name: &str) -> Similarity {
    Similarity::ALL
        .into_iter()
        .find(|f| f.name() == name)
        .unwrap_or_else(|| panic!("unknown similarity {name}"))
}

/// Metrics of the model's float output (correlations, accuracies, rank metrics) within 1e-6;
/// sparsity statistics (float32 means in the reference) within 1e-5 relative. Spearman
/// correlations within 1e-4: the encoders agree to ~1e-5 relative, and the 300 STS-B dot
/// scores hold 2 pairs closer than that (measured with the reference), whose order, and so the
/// ranks, may flip (each flip moves ρ by ~2e-5). `correlation_matches_scipy_on_tied_scores`
/// holds the rank statistic itself to 1e-12.
fn tol(key: &str, expected: f64) -> f64 {
    if key.contains("active_dims") || key.contains("sparsity_ratio") {
        1e-5 * expected.abs().max(1.0)
    } else if key.contains("spearman") {
        1e-4
    } else {
        1e-6
    }
}

#[test]
fn correlation_matches_scipy_on_tied_scores() {
    let f = fixture("correlation_scores.json");
    let cases = f["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    let floats = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    for c in cases {
        let (l, s) = (floats(&c["labels"]), floats(&c["scores"]));
        let p = splade_eval::correlation::pearson(&l, &s);
        let r = splade_eval::correlation::spearman(&l, &s);
        assert!(
            (p - c["pearson"].as_f64().unwrap()).abs() < 1e-12,
            "n={} pearson {p}",
            l.len()
        );
        assert!(
            (r - c["spearman"].as_f64().unwrap()).abs() < 1e-12,
            "n={} spearman {r}",
            l.len()
        );
    }
}

/// Same keys in the same order (`order`: the reference's key order, since JSON objects are
/// read sorted), values within `tol`, same primary metric.
fn compare(ours: &KeyedResult, expected: &Value, order: &Value, primary: &Value) {
    let exp = expected.as_object().unwrap();
    let our_keys: Vec<&str> = ours.metrics.iter().map(|(k, _)| k.as_str()).collect();
    let exp_keys: Vec<&str> = order
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(exp_keys.len(), exp.len());
    assert_eq!(our_keys, exp_keys, "keys or their order differ");
    let mut failures = Vec::new();
    for (k, v) in &ours.metrics {
        let e = exp[k.as_str()].as_f64().unwrap();
        let close = (v - e).abs() <= tol(k, e);
        if !close {
            failures.push(format!("{k}: ours {v} expected {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(ours.primary_metric, primary.as_str().unwrap());
}

fn similarity_evaluator(f: &Value) -> EmbeddingSimilarityEvaluator {
    let pairs = &f["pairs"];
    let scores = pairs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[2].as_f64().unwrap())
        .collect();
    let mut ev =
        EmbeddingSimilarityEvaluator::new(column(pairs, 0), column(pairs, 1), scores).unwrap();
    ev.name = f["name"].as_str().unwrap().to_string();
    ev.main_similarity = f["main_similarity"].as_str().map(similarity);
    if let Some(names) = f["similarity_fn_names"].as_array() {
        ev.functions = names
            .iter()
            .map(|n| similarity(n.as_str().unwrap()))
            .collect();
    }
    ev
}

#[test]
fn embedding_similarity_on_stsb_with_four_functions() {
    let f = fixture("similarity_stsb.json");
    let result = similarity_evaluator(&f).evaluate(splade_tiny()).unwrap();
    compare(
        &result,
        &f["expected"],
        &f["expected_keys"],
        &f["primary_metric"],
    );
}

#[test]
fn embedding_similarity_on_sick_with_the_models_function() {
    let f = fixture("similarity_sick.json");
    let result = similarity_evaluator(&f).evaluate(splade_tiny()).unwrap();
    compare(
        &result,
        &f["expected"],
        &f["expected_keys"],
        &f["primary_metric"],
    );
}

#[test]
fn triplet_on_scifact_with_a_margin() {
    let f = fixture("triplet_scifact.json");
    let t = &f["triplets"];
    let mut ev = TripletEvaluator::new(column(t, 0), column(t, 1), column(t, 2)).unwrap();
    ev.name = f["name"].as_str().unwrap().to_string();
    ev.functions = strings(&f["similarity_fn_names"])
        .iter()
        .map(|n| similarity(n))
        .collect();
    ev.margins = f["margin"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (similarity(k), v.as_f64().unwrap() as f32))
        .collect();
    let result = ev.evaluate(splade_tiny()).unwrap();
    compare(
        &result,
        &f["expected"],
        &f["expected_keys"],
        &f["primary_metric"],
    );
}

fn reranking(name: &str) {
    let f = fixture(name);
    let samples = f["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| RerankingSample {
            query: s["query"].as_str().unwrap().to_string(),
            positive: strings(&s["positive"]),
            negative: strings(&s["negative"]),
        })
        .collect();
    let mut ev = RerankingEvaluator::new(samples).unwrap();
    ev.name = f["name"].as_str().unwrap().to_string();
    ev.at_k = f["at_k"].as_u64().unwrap() as usize;
    ev.similarity = similarity(f["similarity"].as_str().unwrap());
    let result = ev.evaluate(splade_tiny()).unwrap();
    compare(
        &result,
        &f["expected"],
        &f["expected_keys"],
        &f["primary_metric"],
    );
}

#[test]
fn reranking_on_scifact_with_cosine() {
    reranking("reranking_scifact.json");
}

#[test]
fn reranking_on_dl19_judged_candidates_with_dot() {
    reranking("reranking_dl19.json");
}

#[test]
fn mse_against_a_teacher_with_and_without_max_active_dims() {
    let f = fixture("mse_mrpc.json");
    let sources = strings(&f["source_sentences"]);
    let targets = strings(&f["target_sentences"]);
    let cases = f["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for case in cases {
        let options = EncodeOptions {
            max_active_dims: case["max_active_dims"].as_u64().map(|k| k as usize),
            ..EncodeOptions::default()
        };
        let mut ev =
            MseEvaluator::with_teacher(splade_tiny(), &sources, targets.clone(), options).unwrap();
        ev.name = f["name"].as_str().unwrap().to_string();
        let result = ev.evaluate(splade_tiny()).unwrap();
        let primary = Value::String(format!(
            "{}_{}",
            ev.name,
            case["primary_metric"].as_str().unwrap()
        ));
        compare(&result, &case["expected"], &case["expected_keys"], &primary);
    }
}

#[test]
fn translation_on_paws_paraphrases() {
    let f = fixture("translation_paws.json");
    let mut ev = TranslationEvaluator::new(column(&f["pairs"], 0), column(&f["pairs"], 1)).unwrap();
    ev.name = f["name"].as_str().unwrap().to_string();
    let result = ev.evaluate(splade_tiny()).unwrap();
    compare(
        &result,
        &f["expected"],
        &f["expected_keys"],
        &f["primary_metric"],
    );
}

fn ranked(v: &Value) -> Vec<RankedSample> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| RankedSample {
            query_id: s["query_id"].as_str().unwrap().to_string(),
            positive: strings(&s["positive"]),
            documents: strings(&s["documents"]),
        })
        .collect()
}

#[test]
fn reciprocal_rank_fusion_of_two_scifact_runs() {
    let f = fixture("rrf_scifact.json");
    let mut ev = ReciprocalRankFusionEvaluator::new(
        ranked(&f["dense_samples"]),
        ranked(&f["sparse_samples"]),
    )
    .unwrap();
    ev.name = f["name"].as_str().unwrap().to_string();
    compare(
        &ev.evaluate().unwrap(),
        &f["expected"],
        &f["expected_keys"],
        &f["primary_metric"],
    );
    ev.name = String::new();
    ev.at_k = 5;
    ev.rrf_k = 10;
    compare(
        &ev.evaluate().unwrap(),
        &f["expected_at5_rrf10"],
        &f["expected_at5_rrf10_keys"],
        &Value::String("ndcg@5".into()),
    );
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert!(EmbeddingSimilarityEvaluator::new(s(&["a"]), s(&["b", "c"]), vec![1.0]).is_err());
    assert!(EmbeddingSimilarityEvaluator::new(s(&["a"]), s(&["b"]), vec![f64::NAN]).is_err());
    assert!(TripletEvaluator::new(vec![], vec![], vec![]).is_err());
    assert!(TranslationEvaluator::new(s(&["a"]), vec![]).is_err());
    let lonely = RerankingSample {
        query: "q".into(),
        positive: s(&["p"]),
        negative: vec![],
    };
    assert!(RerankingEvaluator::new(vec![lonely]).is_err());
    let sample = |id: &str| RankedSample {
        query_id: id.into(),
        positive: s(&["d1"]),
        documents: s(&["d1"]),
    };
    let err = ReciprocalRankFusionEvaluator::new(vec![sample("1")], vec![sample("2")]).unwrap_err();
    assert!(
        err.to_string().contains("Query ID mismatch at index 0"),
        "{err}"
    );
    let batch = splade_sparse::SparseBatch::new(10);
    assert!(MseEvaluator::from_embeddings(batch, s(&["x"]), EncodeOptions::default()).is_err());
}
