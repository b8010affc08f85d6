//! `NanoBeirEvaluator` (sentence-transformers' `SparseNanoBEIREvaluator`): metrics on two local
//! datasets cut from `../shared/data` (SciFact and DBpedia-Entity, the sources of NanoSciFact and
//! NanoDBPedia) equal the reference's, every key in its order
//! (`scripts/parity/generate_nanobeir_evaluator_fixture.py` →
//! `fixtures/eval/nanobeir_evaluator/reference.json`, which stores the subsets; the test writes
//! them as BEIR folders); the Hugging Face cache layout is read as sentence-transformers reads
//! the Hub dataset, and a dataset missing from it is an error naming it.

use std::path::PathBuf;

use serde_json::Value;
use splade_encoder::{default_model, SparseEncoder};
use splade_eval::nanobeir::{NanoBeirEvaluator, DEFAULT_DATASET_ID};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn splade_tiny() -> SparseEncoder {
    let dir = default_model::ensure_default_model().expect("fetch the default model");
    SparseEncoder::load(&dir, &candle_core::Device::Cpu).unwrap()
}

/// Rank metrics within 1e-6; sparsity statistics and FLOPS (float32 in the reference) within
/// 1e-5 relative.
fn tol(key: &str, expected: f64) -> f64 {
    if key.contains("active_dims") || key.contains("sparsity_ratio") || key.contains("flops") {
        1e-5 * expected.abs().max(1.0)
    } else {
        1e-6
    }
}

#[test]
fn metrics_on_two_local_datasets_equal_sparse_nanobeir_evaluator() {
    let reference: Value = splade_testkit::read_fixture(
        root().join("fixtures/eval/nanobeir_evaluator/reference.json"),
    );
    let tmp = tempfile::tempdir().unwrap();
    for (name, data) in reference["datasets"].as_object().unwrap() {
        splade_testkit::write_beir_folder(&tmp.path().join(name), data);
    }
    let names: Vec<String> = reference["dataset_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let ev = NanoBeirEvaluator::from_folder(tmp.path(), &names, "test").unwrap();
    let encoder = splade_tiny();
    let agg = ev.evaluate(&encoder).unwrap();
    let ours = agg.flat();
    let expected: Vec<(String, f64)> = reference["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_f64().unwrap()))
        .collect();
    let our_keys: Vec<&str> = ours.iter().map(|(k, _)| k.as_str()).collect();
    let their_keys: Vec<&str> = expected.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(our_keys, their_keys);
    for ((k, a), (_, b)) in ours.iter().zip(&expected) {
        assert!((a - b).abs() <= tol(k, *b), "{k}: {a} vs {b}");
    }
    assert_eq!(
        ev.primary_metric(encoder.similarity_fn().name()),
        reference["primary_metric"].as_str().unwrap()
    );
}

#[test]
fn hub_cache_layout_and_offline_error() {
    // A cache holding sentence-transformers/NanoBEIR-en's layout: one split per dataset
    // (the NanoTiny fixture stored under the split name NanoSciFact).
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp
        .path()
        .join("hub/datasets--sentence-transformers--NanoBEIR-en");
    let snapshot = repo.join("snapshots/0123abcd");
    let source = root().join("fixtures/eval/nanobeir/NanoBEIR-en");
    for subset in ["corpus", "queries", "qrels"] {
        std::fs::create_dir_all(snapshot.join(subset)).unwrap();
        std::fs::copy(
            source.join(subset).join("NanoTiny-00000-of-00001.parquet"),
            snapshot
                .join(subset)
                .join("NanoSciFact-00000-of-00001.parquet"),
        )
        .unwrap();
    }
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    // The only test of this binary that reads HF_HUB_CACHE.
    std::env::set_var("HF_HUB_CACHE", tmp.path().join("hub"));
    let ev = NanoBeirEvaluator::from_hub_cache(DEFAULT_DATASET_ID, &["scifact".into()]).unwrap();
    let local = NanoBeirEvaluator::from_folder(
        &root().join("fixtures/eval/nanobeir/beir"),
        &["NanoTiny".into()],
        "test",
    )
    .unwrap();
    assert_eq!(ev.evaluators.len(), 1);
    assert_eq!(ev.evaluators[0].name, "NanoSciFact");
    // The same texts and judgements as the BEIR folder of the same data.
    assert_eq!(ev.evaluators[0].queries, local.evaluators[0].queries);
    assert_eq!(ev.evaluators[0].corpus, local.evaluators[0].corpus);
    assert_eq!(ev.evaluators[0].relevant, local.evaluators[0].relevant);
    // A dataset the snapshot lacks, a name that is no NanoBEIR dataset, and a dataset that
    // is not cached at all are errors naming it.
    let e = NanoBeirEvaluator::from_hub_cache(DEFAULT_DATASET_ID, &["nfcorpus".into()])
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("NanoNFCorpus") && e.contains("NanoSciFact"),
        "{e}"
    );
    let e = NanoBeirEvaluator::from_hub_cache(DEFAULT_DATASET_ID, &["cisi".into()])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("'cisi' is not a NanoBEIR dataset"), "{e}");
    let e = NanoBeirEvaluator::from_hub_cache("lightonai/NanoBEIR-de", &["msmarco".into()])
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("NanoMSMARCO") && e.contains("lightonai/NanoBEIR-de") && e.contains("cache"),
        "{e}"
    );
}
