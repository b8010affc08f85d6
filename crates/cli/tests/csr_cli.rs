//! CSR models (`Transformer` + `Pooling` + `SparseAutoEncoder`) in every command: `info`,
//! `encode` (with `--query` prompt, `--max-active-dims`, `--top-tokens`), `similarity`,
//! `index build --model`, `search --model` (with `--explain`), `eval ir` and `splade serve`
//! (`/embed_sparse`, `/search` with `explain`, the engine token-weight routes) give what the
//! library gives (checked against sentence-transformers in the encoder's `csr_parity.rs`), and
//! name the dimensions `dimension N`: they are autoencoder latents, not vocabulary tokens.

mod serve_support;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use serve_support::{agent, post, Server};
use splade_encoder::{EncodeOptions, SparseBatch, SparseEncoder};
use splade_index::Index;

#[path = "common/run.rs"]
mod run;
use run::{ok, splade};

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/encoder/models/csr-bert")
}

fn load() -> SparseEncoder {
    SparseEncoder::from_pretrained(model().to_str().unwrap()).unwrap()
}

fn parse_lines(out: &str) -> Vec<(Vec<u32>, Vec<f32>)> {
    out.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                serde_json::from_value(v["indices"].clone()).unwrap(),
                serde_json::from_value(v["values"].clone()).unwrap(),
            )
        })
        .collect()
}

fn assert_same(lines: &[(Vec<u32>, Vec<f32>)], batch: &SparseBatch, what: &str) {
    assert_eq!(lines.len(), batch.len(), "{what}: rows");
    for (r, ((indices, values), row)) in lines.iter().zip(batch.rows()).enumerate() {
        assert_eq!(indices.as_slice(), row.indices(), "{what}: row {r} indices");
        for (a, b) in values.iter().zip(row.values()) {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "{what}: row {r}: {a} vs {b}"
            );
        }
    }
}

const QUERIES: [&str; 3] = [
    "what causes rain",
    "how do cats sleep",
    "fast sparse search",
];

#[test]
fn info_encode_and_similarity_with_a_csr_model() {
    let m = model();
    let m = m.to_str().unwrap();
    let info = ok(splade(&["info", "--model", m]));
    assert!(
        info.contains("SparseAutoEncoder(input_dim 32, hidden_dim 128, k 8")
            && info.contains("Pooling(mean")
            && info.contains("128 (CSR latents"),
        "{info}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("q.txt");
    std::fs::write(&input, QUERIES.join("\n") + "\n").unwrap();
    let i = input.to_str().unwrap();
    let encoder = load();
    let opts = EncodeOptions::default();
    let plain = parse_lines(&ok(splade(&["encode", "--model", m, "--input", i])));
    assert_same(&plain, &encoder.encode(&QUERIES, &opts).unwrap(), "encode");
    assert!(plain
        .iter()
        .all(|(ix, _)| ix.len() <= 8 && ix.iter().all(|&d| d < 128)));
    let queries = parse_lines(&ok(splade(&[
        "encode", "--model", m, "--query", "--input", i,
    ])));
    assert_same(
        &queries,
        &encoder.encode_query(&QUERIES, &opts).unwrap(),
        "encode --query",
    );
    assert_ne!(queries, plain, "the query prompt changes the vectors");
    let top3 = parse_lines(&ok(splade(&[
        "encode",
        "--model",
        m,
        "--max-active-dims",
        "3",
        "--input",
        i,
    ])));
    assert!(top3.iter().all(|(ix, _)| ix.len() == 3), "{top3:?}");
    // Above k: the autoencoder keeps that many latents (as sentence-transformers does).
    let top12 = parse_lines(&ok(splade(&[
        "encode",
        "--model",
        m,
        "--max-active-dims",
        "12",
        "--input",
        i,
    ])));
    assert!(top12.iter().all(|(ix, _)| ix.len() == 12), "{top12:?}");
    let shown = ok(splade(&[
        "encode",
        "--model",
        m,
        "--top-tokens",
        "2",
        "--input",
        i,
    ]));
    let first = encoder.encode(&QUERIES[..1], &opts).unwrap();
    let decoded = encoder.decode(first.row(0).unwrap(), Some(2));
    assert!(
        shown.contains(&format!("{} {:.3}", decoded[0].0, decoded[0].1))
            && decoded[0].0.starts_with("dimension "),
        "{shown}"
    );
    let out = ok(splade(&[
        "similarity",
        "--model",
        m,
        QUERIES[0],
        "Rain falls when droplets grow heavy.",
    ]));
    let a = encoder.encode(&[QUERIES[0]], &opts).unwrap();
    let b = encoder
        .encode(&["Rain falls when droplets grow heavy."], &opts)
        .unwrap();
    let expected = encoder.similarity_pairwise(&a, &b)[0];
    let got: f32 = out.trim().parse().unwrap();
    assert!(
        (got - expected).abs() <= 1e-5 * expected.abs().max(1.0),
        "{got} vs {expected}"
    );
}

#[test]
fn index_build_search_explain_and_eval_with_a_csr_model() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus.jsonl");
    std::fs::write(
        &corpus,
        concat!(
            "{\"_id\": \"d1\", \"title\": \"Rain\", \"text\": \"rain forms when water vapour condenses\"}\n",
            "{\"_id\": \"d2\", \"title\": \"\", \"text\": \"cats sleep all day long\"}\n",
            "{\"_id\": \"d3\", \"title\": \"Search\", \"text\": \"inverted indexes make sparse search fast\"}\n",
        ),
    )
    .unwrap();
    let qfile = tmp.path().join("queries.jsonl");
    std::fs::write(
        &qfile,
        "{\"_id\": \"q1\", \"text\": \"what causes rain\"}\n{\"_id\": \"q2\", \"text\": \"how do cats sleep\"}\n{\"_id\": \"q3\", \"text\": \"fast sparse search\"}\n",
    )
    .unwrap();
    let qrels = tmp.path().join("qrels.tsv");
    std::fs::write(
        &qrels,
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq3\td3\t1\n",
    )
    .unwrap();
    let encoder = load();
    let m = model();
    let m = m.to_str().unwrap();
    let dir = tmp.path().join("idx");
    let d = dir.to_str().unwrap();
    ok(splade(&[
        "index",
        "build",
        "--out",
        d,
        "--corpus",
        corpus.to_str().unwrap(),
        "--model",
        m,
    ]));
    let index = Index::open(&dir).unwrap();
    assert_eq!(index.dim(), 128);
    let texts = [
        "Rain rain forms when water vapour condenses",
        "cats sleep all day long",
        "Search inverted indexes make sparse search fast",
    ];
    let docs = encoder
        .encode_document(&texts, &EncodeOptions::default())
        .unwrap();
    for (i, row) in docs.rows().enumerate() {
        let stored = index.document(i as u32).unwrap();
        assert_eq!(stored.indices(), row.indices(), "doc {i}");
        for (a, b) in stored.values().iter().zip(row.values()) {
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
    let run = ok(splade(&[
        "search",
        "--index",
        d,
        "--model",
        m,
        "--queries",
        qfile.to_str().unwrap(),
        "--k",
        "3",
        "--exact",
    ]));
    let q = encoder
        .encode_query(&QUERIES, &EncodeOptions::default())
        .unwrap();
    let mut expected = String::new();
    for (qid, row) in ["q1", "q2", "q3"].iter().zip(q.rows()) {
        for (rank, h) in index.top_k(row, 3).iter().enumerate() {
            let id = index.id(h.doc).unwrap();
            expected += &format!("{qid} Q0 {id} {} {} splade\n", rank + 1, h.score);
        }
    }
    assert_eq!(run, expected, "search --model");
    // --explain names the latent dimensions, never a vocabulary token.
    let explained = ok(splade(&[
        "search",
        "--index",
        d,
        "--model",
        m,
        "--k",
        "1",
        "--explain",
        "3",
        QUERIES[0],
    ]));
    let top = index.top_k(q.row(0).unwrap(), 1);
    let e = index.explain(q.row(0).unwrap(), top[0].doc).unwrap();
    let first = format!("dimension {}", e.terms[0].term);
    assert!(explained.contains(&first), "{explained}");
    let vocab_token = encoder.tokenizer().id_to_token(e.terms[0].term).unwrap();
    assert!(
        !explained.contains(&format!(" {vocab_token} ")),
        "explain shows a vocabulary token: {explained}"
    );

    let out_file = tmp.path().join("eval.json");
    ok(splade(&[
        "eval",
        "ir",
        "--model",
        m,
        "--corpus",
        corpus.to_str().unwrap(),
        "--queries",
        qfile.to_str().unwrap(),
        "--qrels",
        qrels.to_str().unwrap(),
        "--output",
        out_file.to_str().unwrap(),
    ]));
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    // The eval's ranking is the index's: the reciprocal rank of each query's relevant document.
    let mut mrr = 0.0;
    for (i, row) in q.rows().enumerate() {
        let hits = index.top_k(row, 3);
        let relevant = format!("d{}", i + 1);
        if let Some(r) = hits
            .iter()
            .position(|h| index.id(h.doc).unwrap() == relevant)
        {
            mrr += 1.0 / (r + 1) as f64;
        }
    }
    mrr /= 3.0;
    let text = metrics.to_string();
    let key = metrics
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.ends_with("mrr@10"))
        .unwrap_or_else(|| panic!("{text}"))
        .clone();
    assert!(
        (metrics[&key].as_f64().unwrap() - mrr).abs() < 1e-9,
        "{key}: {text} vs {mrr}"
    );
}

#[test]
fn serve_embeds_searches_and_explains_latent_dimensions() {
    let m = model();
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus.txt");
    std::fs::write(
        &corpus,
        "rain forms when water vapour condenses\ncats sleep all day long\ninverted indexes make sparse search fast\n",
    )
    .unwrap();
    let index_dir = tmp.path().join("idx");
    ok(splade(&[
        "index",
        "build",
        "--out",
        index_dir.to_str().unwrap(),
        "--corpus",
        corpus.to_str().unwrap(),
        "--model",
        m.to_str().unwrap(),
    ]));
    let server = Server::start(&[
        "--model",
        m.to_str().unwrap(),
        "--index",
        index_dir.to_str().unwrap(),
    ]);
    let agent = agent();
    let encoder = load();
    let opts = EncodeOptions::default();
    let rows = |v: &Value| -> Vec<(Vec<u32>, Vec<f32>)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|row| {
                let pairs = row.as_array().unwrap();
                (
                    pairs
                        .iter()
                        .map(|p| p["index"].as_u64().unwrap() as u32)
                        .collect(),
                    pairs
                        .iter()
                        .map(|p| p["value"].as_f64().unwrap() as f32)
                        .collect(),
                )
            })
            .collect()
    };
    let reply = post(
        &agent,
        &server.url("/embed_sparse"),
        &json!({"inputs": QUERIES}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_same(
        &rows(&reply.json()),
        &encoder.encode(&QUERIES, &opts).unwrap(),
        "serve /embed_sparse",
    );
    let reply = post(
        &agent,
        &server.url("/embed_sparse"),
        &json!({"inputs": QUERIES, "prompt_name": "query"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_same(
        &rows(&reply.json()),
        &encoder.encode_query(&QUERIES, &opts).unwrap(),
        "serve /embed_sparse prompt_name=query",
    );
    // Token ids as input are vocabulary ids (600 of them), not latent ids (128).
    let ids = encoder
        .tokenize(&["cats sleep all day long"], &opts)
        .unwrap()
        .remove(0)
        .ids;
    assert!(ids.iter().any(|&id| id >= 128), "{ids:?}");
    let reply = post(
        &agent,
        &server.url("/embed_sparse"),
        &json!({ "inputs": ids }),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_same(
        &rows(&reply.json()),
        &encoder.encode(&["cats sleep all day long"], &opts).unwrap(),
        "serve /embed_sparse token ids",
    );
    // The engine routes key weights by dimension name.
    let reply = post(
        &agent,
        &server.url("/opensearch/sparse_embedding"),
        &json!({"inputs": [QUERIES[0]]}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let first = encoder.encode(&QUERIES[..1], &opts).unwrap();
    for (id, _) in first.row(0).unwrap().iter() {
        assert!(
            reply.body.contains(&format!("\"dimension {id}\"")),
            "{}",
            reply.body
        );
    }
    let q = encoder.encode_query(&QUERIES, &opts).unwrap();
    let index = Index::open(&index_dir).unwrap();
    let reply = post(
        &agent,
        &server.url("/search"),
        &json!({"query": QUERIES[0], "k": 2, "explain": 2}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let hits = reply.json()["hits"].as_array().unwrap().clone();
    let expected = index.top_k(q.row(0).unwrap(), 2);
    assert_eq!(hits.len(), expected.len());
    for (hit, h) in hits.iter().zip(&expected) {
        assert_eq!(hit["id"], index.id(h.doc).unwrap());
        for term in hit["explain"].as_array().unwrap() {
            assert_eq!(
                term["token"],
                format!("dimension {}", term["term"].as_u64().unwrap()),
                "{hit}"
            );
        }
    }
}

#[test]
fn train_a_csr_model_with_csr_loss_and_encode_with_the_result() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = tmp.path().join("rows.jsonl");
    let mut text = String::new();
    for i in 0..6 {
        text += &json!({
            "anchor": format!("how do I learn topic {i}"),
            "positive": format!("the best way to learn topic {i} is practice"),
            "negative": format!("recipes for dish {i}"),
        })
        .to_string();
        text.push('\n');
    }
    std::fs::write(&rows, text).unwrap();
    let out_dir = tmp.path().join("run");
    let m = model();
    let out = splade(&[
        "train",
        "--model",
        m.to_str().unwrap(),
        "--train",
        rows.to_str().unwrap(),
        "--output",
        out_dir.to_str().unwrap(),
        "--batch-size",
        "3",
        "--max-steps",
        "2",
        "--logging-steps",
        "1",
        "--lr",
        "1e-3",
        "--dropout",
        "false",
        "--csr-beta",
        "0.5",
        "--csr-gamma",
        "2",
        "--csr-k",
        "6",
        "--csr-k-aux",
        "16",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("reconstruction k"), "{stderr}");
    let final_dir = out_dir.join("final");
    let trained = SparseEncoder::from_pretrained(final_dir.to_str().unwrap()).unwrap();
    assert!(trained.is_csr());
    let sae = &trained.csr().unwrap().sae;
    assert_eq!((sae.config.k, sae.config.k_aux), (6, 16));
    assert_eq!(trained.effective_max_active_dims(None), Some(6));
    // Two steps over three columns moved every latent's statistics.
    assert!(sae.stats_last_nonzero.iter().all(|&s| s > 0));
    let card = std::fs::read_to_string(final_dir.join("README.md")).unwrap();
    assert!(
        card.contains("CSRLoss") && card.contains("\"gamma\": 2.0"),
        "{card}"
    );
    let encoded = parse_lines(&ok(splade(&[
        "encode",
        "--model",
        final_dir.to_str().unwrap(),
        "--input",
        rows.to_str().unwrap(),
    ])));
    assert!(encoded
        .iter()
        .all(|(ix, _)| ix.len() <= 6 && !ix.is_empty()));
    // The weights changed.
    let before = load();
    let a = before
        .encode(&["how do I learn topic 1"], &EncodeOptions::default())
        .unwrap();
    let b = trained
        .encode(&["how do I learn topic 1"], &EncodeOptions::default())
        .unwrap();
    assert_ne!(a.row(0).unwrap().values(), b.row(0).unwrap().values());
    // GradCache does not apply to CSRLoss: refused with a message saying so.
    let refused = splade(&[
        "train",
        "--model",
        m.to_str().unwrap(),
        "--train",
        rows.to_str().unwrap(),
        "--output",
        tmp.path().join("cached").to_str().unwrap(),
        "--max-steps",
        "1",
        "--gradient-cache",
        "2",
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("CSRLoss"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
