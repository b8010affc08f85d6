//! Every command on the RoBERTa, XLM-RoBERTa and ModernBERT fixture models (issue #15 §3):
//! `encode`, `similarity`, `index build --model`, `search --model`, `eval ir` and `serve`
//! answer what the library computes with the same model.

mod serve_support;

use std::path::{Path, PathBuf};

use serde_json::json;
use serve_support::{agent, post, Server};
use splade_encoder::{EncodeOptions, SparseBatch, SparseEncoder};
use splade_index::Index;

#[path = "common/run.rs"]
mod run;
use run::{ok, splade_with_stdin as splade};

const MODELS: [&str; 3] = [
    "roberta-bpe-v6",
    "xlm-roberta-unigram-v6",
    "modernbert-bpe-v6",
];

const TEXTS: [&str; 4] = [
    "What is the best way to learn sparse retrieval with inverted indexes and learned weights?",
    "",
    "cats sleep all day long",
    "Zoë's café in 東京 serves coffee",
];

fn model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/encoder/models")
        .join(name)
}

/// `(indices, values)` rows equal to `expected` (within float rounding of other batches).
fn assert_rows(rows: &[(Vec<u32>, Vec<f32>)], expected: &SparseBatch, what: &str) {
    assert_eq!(rows.len(), expected.len(), "{what}");
    for ((indices, values), exp) in rows.iter().zip(expected.rows()) {
        assert_eq!(indices.as_slice(), exp.indices(), "{what}");
        for (a, b) in values.iter().zip(exp.values()) {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "{what}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn encode_and_similarity_match_the_library() {
    for name in MODELS {
        let dir = model(name);
        let m = dir.to_str().unwrap();
        let enc = SparseEncoder::load(&dir, &candle_core::Device::Cpu).unwrap();
        let input: String = TEXTS.iter().map(|t| format!("{t}\n")).collect();
        let out = ok(splade(
            &["encode", "--model", m, "--batch-size", "3"],
            input.as_bytes(),
        ));
        let rows: Vec<(Vec<u32>, Vec<f32>)> = out
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    serde_json::from_value(v["indices"].clone()).unwrap(),
                    serde_json::from_value(v["values"].clone()).unwrap(),
                )
            })
            .collect();
        let expected = enc.encode(&TEXTS, &EncodeOptions::default()).unwrap();
        assert_rows(&rows, &expected, &format!("{name}: encode"));

        let out = ok(splade(
            &["similarity", "--model", m, TEXTS[0], TEXTS[2]],
            b"",
        ));
        let score: f32 = out.trim().parse().unwrap();
        let a = enc.encode(&[TEXTS[0]], &EncodeOptions::default()).unwrap();
        let b = enc.encode(&[TEXTS[2]], &EncodeOptions::default()).unwrap();
        let want = enc.similarity(&a, &b).get(0, 0);
        assert!(
            (score - want).abs() <= 1e-4 * want.abs().max(1.0),
            "{name}: similarity {score} vs {want}"
        );
    }
}

#[test]
fn index_build_search_and_eval_run_on_each_family() {
    for name in MODELS {
        let tmp = tempfile::tempdir().unwrap();
        let corpus = tmp.path().join("corpus.jsonl");
        std::fs::write(
            &corpus,
            concat!(
                "{\"_id\": \"d1\", \"title\": \"Sparse retrieval\", \"text\": \"inverted indexes make search fast\"}\n",
                "{\"_id\": \"d2\", \"title\": \"\", \"text\": \"cats sleep all day long\"}\n",
                "{\"_id\": \"d3\", \"title\": \"Neural nets\", \"text\": \"transformers encode text into vectors\"}\n",
            ),
        )
        .unwrap();
        let queries = tmp.path().join("queries.jsonl");
        std::fs::write(
            &queries,
            "{\"_id\": \"q1\", \"text\": \"sleeping cats\"}\n{\"_id\": \"q2\", \"text\": \"fast search\"}\n",
        )
        .unwrap();
        let qrels = tmp.path().join("qrels.tsv");
        std::fs::write(&qrels, "query-id\tcorpus-id\tscore\nq1\td2\t1\nq2\td1\t1\n").unwrap();
        let dir = tmp.path().join("idx");
        let (d, m) = (dir.to_str().unwrap(), model(name));
        let m = m.to_str().unwrap();
        ok(splade(
            &[
                "index",
                "build",
                "--out",
                d,
                "--corpus",
                corpus.to_str().unwrap(),
                "--model",
                m,
            ],
            b"",
        ));
        let index = Index::open(&dir).unwrap();
        assert_eq!(index.len(), 3, "{name}");
        let encoder = SparseEncoder::load(Path::new(m), &candle_core::Device::Cpu).unwrap();
        let run = ok(splade(
            &[
                "search",
                "--index",
                d,
                "--model",
                m,
                "--queries",
                queries.to_str().unwrap(),
                "--k",
                "2",
                "--exact",
            ],
            b"",
        ));
        let q = encoder
            .encode_query(&["sleeping cats", "fast search"], &EncodeOptions::default())
            .unwrap();
        let mut expected = String::new();
        for (qid, row) in ["q1", "q2"].iter().zip(q.rows()) {
            for (rank, h) in index.top_k(row, 2).iter().enumerate() {
                let id = index.id(h.doc).unwrap();
                expected += &format!("{qid} Q0 {id} {} {} splade\n", rank + 1, h.score);
            }
        }
        assert_eq!(run, expected, "{name}: search");

        let metrics = tmp.path().join("metrics.json");
        ok(splade(
            &[
                "eval",
                "ir",
                "--model",
                m,
                "--corpus",
                corpus.to_str().unwrap(),
                "--queries",
                queries.to_str().unwrap(),
                "--qrels",
                qrels.to_str().unwrap(),
                "--output",
                metrics.to_str().unwrap(),
            ],
            b"",
        ));
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
        let ndcg = metrics
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| k.contains("ndcg@10"))
            .and_then(|(_, v)| v.as_f64())
            .unwrap_or_else(|| panic!("{name}: no ndcg@10 in {metrics}"));
        assert!((0.0..=1.0).contains(&ndcg), "{name}: ndcg@10 {ndcg}");
    }
}

#[test]
fn serve_answers_the_offline_vectors() {
    for name in MODELS {
        let dir = model(name);
        let server = Server::start(&["--model", dir.to_str().unwrap()]);
        let enc = SparseEncoder::load(&dir, &candle_core::Device::Cpu).unwrap();
        let expected = enc.encode(&TEXTS, &EncodeOptions::default()).unwrap();
        let r = post(
            &agent(),
            &server.url("/embed_sparse"),
            &json!({ "inputs": TEXTS }),
        );
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        let rows: Vec<(Vec<u32>, Vec<f32>)> = r
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                row.as_array()
                    .unwrap()
                    .iter()
                    .map(|e| {
                        (
                            e["index"].as_u64().unwrap() as u32,
                            e["value"].as_f64().unwrap() as f32,
                        )
                    })
                    .unzip()
            })
            .collect();
        assert_rows(&rows, &expected, &format!("{name}: serve"));
    }
}
