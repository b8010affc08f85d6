//! `splade eval similarity|triplet|reranking|mse|translation|rrf` on real data (STS-B, SICK,
//! SciFact, MRPC, PAWS pairs from `../shared/data`, as stored in the evaluator fixtures of
//! `crates/eval`, `scripts/parity/generate_evaluator_fixtures.py`): the command's metrics
//! equal sentence-transformers 6.2's for splade-tiny; bad input is an error naming the file
//! and line; `eval beir --dataset-id` reads the Hugging Face cache and fails offline naming
//! the dataset.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> Value {
    let p = root().join("fixtures/eval/evaluators").join(name);
    splade_testkit::read_fixture(p)
}

/// Runs `splade eval ARGS --output FILE` and returns the written metrics.
fn run(args: &[&str]) -> serde_json::Map<String, Value> {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("m.json");
    let o = Command::new(env!("CARGO_BIN_EXE_splade"))
        .arg("eval")
        .args(args)
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str::<Value>(&std::fs::read_to_string(&out).unwrap())
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

/// Runs `splade eval ARGS`, expecting a failure; returns stderr.
fn fails(args: &[&str], env: Option<(&str, &Path)>) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_splade"));
    c.arg("eval").args(args);
    if let Some((k, v)) = env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    assert!(!o.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// The same keys as the reference, each within the evaluator tests' tolerances (rank
/// metrics 1e-6, Spearman 1e-4, sparsity 1e-5 relative).
fn compare(ours: &serde_json::Map<String, Value>, expected: &Value, label: &str) {
    let expected = expected.as_object().unwrap();
    let mut a: Vec<&String> = ours.keys().collect();
    let mut b: Vec<&String> = expected.keys().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "{label}: keys");
    for (k, e) in expected {
        let (x, y) = (ours[k].as_f64().unwrap(), e.as_f64().unwrap());
        let tol = if k.contains("active_dims") || k.contains("sparsity_ratio") {
            1e-5 * y.abs().max(1.0)
        } else if k.contains("spearman") {
            1e-4
        } else {
            1e-6
        };
        assert!((x - y).abs() <= tol, "{label} {k}: {x} vs {y}");
    }
}

fn write(dir: &Path, name: &str, text: String) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn tsv(header: &str, rows: &Value) -> String {
    let mut s = format!("{header}\n");
    for r in rows.as_array().unwrap() {
        let cells: Vec<String> = r
            .as_array()
            .unwrap()
            .iter()
            .map(|c| match c {
                Value::String(t) => t.clone(),
                other => other.to_string(),
            })
            .collect();
        s.push_str(&cells.join("\t"));
        s.push('\n');
    }
    s
}

fn jsonl(rows: &Value) -> String {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{r}\n"))
        .collect()
}

#[test]
fn similarity_on_stsb_and_sick() {
    let d = tempfile::tempdir().unwrap();
    let f = fixture("similarity_stsb.json");
    let pairs = write(
        d.path(),
        "stsb.tsv",
        tsv("sentence1\tsentence2\tlabel", &f["pairs"]),
    );
    let m = run(&[
        "similarity",
        "--model",
        "splade-tiny",
        "--pairs",
        &pairs,
        "--name",
        "sts_dev",
        "--functions",
        "cosine,dot,euclidean,manhattan",
        "--main-similarity",
        "cosine",
    ]);
    compare(&m, &f["expected"], "stsb");
    let f = fixture("similarity_sick.json");
    let pairs = write(
        d.path(),
        "sick.tsv",
        tsv("sentence1\tsentence2\tlabel", &f["pairs"]),
    );
    let m = run(&["similarity", "--model", "splade-tiny", "--pairs", &pairs]);
    compare(&m, &f["expected"], "sick");
    // A score that is not a number is named with its line.
    let bad = write(
        d.path(),
        "bad.tsv",
        "sentence1\tsentence2\tlabel\na\tb\t1.5\nc\td\thigh\n".into(),
    );
    let e = fails(
        &["similarity", "--model", "splade-tiny", "--pairs", &bad],
        None,
    );
    assert!(
        e.contains("bad.tsv") && e.contains('3') && e.contains("high"),
        "{e}"
    );
}

#[test]
fn triplet_and_reranking_on_scifact() {
    let d = tempfile::tempdir().unwrap();
    let f = fixture("triplet_scifact.json");
    let triplets = write(
        d.path(),
        "t.tsv",
        tsv("anchor\tpositive\tnegative", &f["triplets"]),
    );
    let m = run(&[
        "triplet",
        "--model",
        "splade-tiny",
        "--triplets",
        &triplets,
        "--name",
        "scifact",
        "--functions",
        "cosine,dot,euclidean,manhattan",
        "--margin",
        "dot=0.5",
    ]);
    compare(&m, &f["expected"], "triplet");
    let f = fixture("reranking_scifact.json");
    let samples = write(d.path(), "r.jsonl", jsonl(&f["samples"]));
    let m = run(&[
        "reranking",
        "--model",
        "splade-tiny",
        "--samples",
        &samples,
        "--name",
        "scifact",
        "--at-k",
        "10",
        "--similarity",
        "cosine",
    ]);
    compare(&m, &f["expected"], "reranking");
    // A malformed sample is named with its line.
    let bad = write(
        d.path(),
        "bad.jsonl",
        "{\"query\": \"q\", \"positive\": [\"a\"], \"negative\": [\"b\"]}\n{\"query\": 3}\n".into(),
    );
    let e = fails(
        &["reranking", "--model", "splade-tiny", "--samples", &bad],
        None,
    );
    assert!(e.contains("bad.jsonl") && e.contains("line 2"), "{e}");
}

#[test]
fn mse_on_mrpc_and_translation_on_paws() {
    let d = tempfile::tempdir().unwrap();
    let f = fixture("mse_mrpc.json");
    let rows: Vec<Value> = f["source_sentences"]
        .as_array()
        .unwrap()
        .iter()
        .zip(f["target_sentences"].as_array().unwrap())
        .map(|(s, t)| Value::Array(vec![s.clone(), t.clone()]))
        .collect();
    let pairs = write(
        d.path(),
        "mrpc.tsv",
        tsv("source\ttarget", &Value::Array(rows)),
    );
    for case in f["cases"].as_array().unwrap() {
        let mut args = vec![
            "mse",
            "--model",
            "splade-tiny",
            "--teacher",
            "splade-tiny",
            "--pairs",
            &pairs,
            "--name",
            "mrpc",
        ];
        let k = case["max_active_dims"].as_u64().map(|k| k.to_string());
        if let Some(k) = &k {
            args.extend(["--max-active-dims", k.as_str()]);
        }
        compare(&run(&args), &case["expected"], "mse");
    }
    let f = fixture("translation_paws.json");
    let pairs = write(d.path(), "paws.tsv", tsv("source\ttarget", &f["pairs"]));
    let m = run(&[
        "translation",
        "--model",
        "splade-tiny",
        "--pairs",
        &pairs,
        "--name",
        "paws",
    ]);
    compare(&m, &f["expected"], "translation");
}

#[test]
fn rrf_on_scifact_runs() {
    let d = tempfile::tempdir().unwrap();
    let f = fixture("rrf_scifact.json");
    let dense = write(d.path(), "dense.jsonl", jsonl(&f["dense_samples"]));
    let sparse = write(d.path(), "sparse.jsonl", jsonl(&f["sparse_samples"]));
    let m = run(&[
        "rrf", "--dense", &dense, "--sparse", &sparse, "--name", "scifact",
    ]);
    compare(&m, &f["expected"], "rrf");
    let m = run(&[
        "rrf", "--dense", &dense, "--sparse", &sparse, "--at-k", "5", "--rrf-k", "10",
    ]);
    compare(&m, &f["expected_at5_rrf10"], "rrf at 5");
    // Runs whose query ids differ are refused.
    let first_only = write(
        d.path(),
        "one.jsonl",
        jsonl(&Value::Array(vec![f["sparse_samples"][1].clone()])),
    );
    let one_dense = write(
        d.path(),
        "one_dense.jsonl",
        jsonl(&Value::Array(vec![f["dense_samples"][0].clone()])),
    );
    let e = fails(
        &["rrf", "--dense", &one_dense, "--sparse", &first_only],
        None,
    );
    assert!(e.contains("Query ID mismatch"), "{e}");
}

#[test]
fn beir_from_the_hugging_face_cache_and_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let model = root().join("fixtures/encoder/models/bert-tied-v6");
    let model = model.display().to_string();
    // Nothing cached: the error names the dataset and the Hub id.
    let e = fails(
        &[
            "beir",
            "--model",
            &model,
            "--dataset-id",
            "sentence-transformers/NanoBEIR-en",
            "--datasets",
            "scifact",
        ],
        Some(("HF_HUB_CACHE", tmp.path())),
    );
    assert!(
        e.contains("NanoSciFact") && e.contains("sentence-transformers/NanoBEIR-en"),
        "{e}"
    );
    // A cached snapshot (the NanoTiny parquet fixture under the split name NanoSciFact)
    // gives the metrics of the same data read as a BEIR folder.
    let snapshot = tmp
        .path()
        .join("datasets--sentence-transformers--NanoBEIR-en/snapshots/abc");
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
    let out = tmp.path().join("m.json");
    let o = Command::new(env!("CARGO_BIN_EXE_splade"))
        .env("HF_HUB_CACHE", tmp.path())
        .args(["eval", "beir", "--model", &model])
        .args(["--dataset-id", "sentence-transformers/NanoBEIR-en"])
        .args(["--datasets", "scifact", "--output"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let hub: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let local = run(&[
        "beir",
        "--model",
        &model,
        "--data-dir",
        &root()
            .join("fixtures/eval/nanobeir/beir")
            .display()
            .to_string(),
        "--datasets",
        "NanoTiny",
    ]);
    let hub = hub.as_object().unwrap();
    for (k, v) in &local {
        let key = k.replace("NanoTiny", "NanoSciFact");
        assert_eq!(hub[&key], *v, "{key}");
    }
}
