//! Inference-free (Router) models in every command: `encode`, `similarity`, `index build
//! --model`, `search --model`, `eval ir` and `splade serve` take the query route
//! (SparseStaticEmbedding) for queries and the document route for documents, as the library
//! (checked against sentence-transformers in the encoder's router_parity.rs) does.

mod serve_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};
use serve_support::{agent, post, Server};
use splade_encoder::{EncodeOptions, RouteChoice, SparseBatch, SparseEncoder};
use splade_index::Index;

#[path = "common/run.rs"]
mod run;
use run::{ok, splade};

fn model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/encoder/models")
        .join(name)
}

fn failure(out: Output) -> String {
    assert!(!out.status.success(), "expected failure");
    String::from_utf8(out.stderr).unwrap()
}

fn load(name: &str) -> SparseEncoder {
    SparseEncoder::from_pretrained(model(name).to_str().unwrap()).unwrap()
}

/// The JSON lines of `splade encode` as `(indices, values)`.
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
        assert_eq!(values.as_slice(), row.values(), "{what}: row {r} values");
    }
}

const QUERIES: [&str; 3] = [
    "what causes rain",
    "how do cats sleep",
    "fast sparse search",
];

#[test]
fn encode_and_similarity_take_the_query_and_document_routes() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("q.txt");
    std::fs::write(&input, QUERIES.join("\n") + "\n").unwrap();
    let m = model("router-learned");
    let m = m.to_str().unwrap();
    let encoder = load("router-learned");
    assert!(matches!(
        encoder.route_for(Some("query")).unwrap(),
        RouteChoice::Static(_)
    ));
    let opts = EncodeOptions::default();
    let q = encoder.encode_query(&QUERIES, &opts).unwrap();
    let d = encoder.encode_document(&QUERIES, &opts).unwrap();
    let i = input.to_str().unwrap();
    let cli_q = parse_lines(&ok(splade(&[
        "encode", "--model", m, "--query", "--input", i,
    ])));
    assert_same(&cli_q, &q, "encode --query");
    let cli_d = parse_lines(&ok(splade(&[
        "encode",
        "--model",
        m,
        "--document",
        "--input",
        i,
    ])));
    assert_same(&cli_d, &d, "encode --document");
    // The default route of router-learned is the document route (with no prompt).
    let cli_default = parse_lines(&ok(splade(&["encode", "--model", m, "--input", i])));
    let default = encoder.encode(&QUERIES, &opts).unwrap();
    assert_same(&cli_default, &default, "encode (default route)");
    // The query route is the static one: every query weight is the static weight of a token.
    let RouteChoice::Static(route) = encoder.route_for(Some("query")).unwrap() else {
        unreachable!()
    };
    for (indices, values) in &cli_q {
        for (&t, &v) in indices.iter().zip(values) {
            assert_eq!(v, route.weights()[t as usize]);
        }
    }
    // max_active_dims on the query route.
    let top2 = parse_lines(&ok(splade(&[
        "encode",
        "--model",
        m,
        "--query",
        "--max-active-dims",
        "2",
        "--input",
        i,
    ])));
    assert!(top2.iter().all(|(ix, _)| ix.len() == 2), "{top2:?}");

    // similarity --asymmetric: query route against document route.
    let out = ok(splade(&[
        "similarity",
        "--model",
        m,
        "--asymmetric",
        QUERIES[0],
        "Rain falls when droplets grow heavy.",
    ]));
    let a = encoder.encode_query(&[QUERIES[0]], &opts).unwrap();
    let b = encoder
        .encode_document(&["Rain falls when droplets grow heavy."], &opts)
        .unwrap();
    let expected = encoder.similarity_pairwise(&a, &b)[0];
    assert_eq!(out.trim().parse::<f32>().unwrap(), expected);

    // A Router without a default route: plain encode names the routes and the flags.
    let idf = model("router-idf");
    let message = failure(splade(&[
        "encode",
        "--model",
        idf.to_str().unwrap(),
        "--input",
        i,
    ]));
    assert!(
        message.contains("router_config.json")
            && message.contains("Available routes: task='sparse_query', task='splade_doc'")
            && message.contains("--query / --document"),
        "{message}"
    );
    let idf_q = parse_lines(&ok(splade(&[
        "encode",
        "--model",
        idf.to_str().unwrap(),
        "--query",
        "--input",
        i,
    ])));
    let idf_encoder = load("router-idf");
    assert_same(
        &idf_q,
        &idf_encoder.encode_query(&QUERIES, &opts).unwrap(),
        "router-idf encode --query",
    );
}

#[test]
fn index_build_search_and_eval_with_an_inference_free_model() {
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
    for name in ["router-learned", "router-idf"] {
        let encoder = load(name);
        let m = model(name);
        let m = m.to_str().unwrap();
        let dir = tmp.path().join(format!("idx-{name}"));
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
            assert_eq!(stored.indices(), row.indices(), "{name}: doc {i}");
            for (a, b) in stored.values().iter().zip(row.values()) {
                assert!(
                    (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                    "{name}: {a} vs {b}"
                );
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
        assert_eq!(
            run, expected,
            "{name}: search --model ranks with the query route"
        );

        // eval ir encodes queries and documents on their routes (router-idf has no default
        // route, so any plain encode would fail).
        let out_file = tmp.path().join(format!("eval-{name}.json"));
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
        let text = metrics.to_string();
        assert!(text.contains("ndcg@10"), "{name}: {text}");
    }
}

#[test]
fn serve_encodes_queries_on_the_static_route() {
    let m = model("router-learned");
    // An index of documents encoded on the document route, searched over HTTP with query
    // texts, which the server encodes on the query route.
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
    let encoder = load("router-learned");
    let opts = EncodeOptions::default();
    let q = encoder.encode_query(&QUERIES, &opts).unwrap();
    let d = encoder.encode_document(&QUERIES, &opts).unwrap();
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
        &json!({"inputs": QUERIES, "prompt_name": "query"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_same(&rows(&reply.json()), &q, "serve prompt_name=query");
    let reply = post(
        &agent,
        &server.url("/embed_sparse"),
        &json!({"inputs": QUERIES, "prompt_name": "document"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let got = rows(&reply.json());
    assert_eq!(got.len(), d.len());
    for (r, ((ix, vals), row)) in got.iter().zip(d.rows()).enumerate() {
        assert_eq!(ix.as_slice(), row.indices(), "serve document row {r}");
        for (a, b) in vals.iter().zip(row.values()) {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "row {r}: {a} vs {b}"
            );
        }
    }
    let index = Index::open(&index_dir).unwrap();
    for (i, text) in QUERIES.iter().enumerate() {
        let reply = post(
            &agent,
            &server.url("/search"),
            &json!({"query": text, "k": 3}),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        let hits: Vec<(String, f32)> = reply.json()["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["id"].as_str().unwrap().to_string(),
                    h["score"].as_f64().unwrap() as f32,
                )
            })
            .collect();
        let expected: Vec<(String, f32)> = index
            .top_k(q.row(i).unwrap(), 3)
            .iter()
            .map(|h| (index.id(h.doc).unwrap().to_string(), h.score))
            .collect();
        assert_eq!(
            hits, expected,
            "serve /search {text:?} ranks with the query route"
        );
    }
    drop(server);

    // A Router without a default route: no prompt_name is a 422 naming the routes.
    let idf = model("router-idf");
    let server = Server::start(&["--model", idf.to_str().unwrap()]);
    let reply = post(
        &agent,
        &server.url("/embed_sparse"),
        &json!({"inputs": "what causes rain"}),
    );
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert!(reply.body.contains("Available routes"), "{}", reply.body);
    let reply = post(
        &agent,
        &server.url("/embed_sparse"),
        &json!({"inputs": ["what causes rain"], "prompt_name": "query"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let idf_encoder = load("router-idf");
    assert_same(
        &rows(&reply.json()),
        &idf_encoder
            .encode_query(&["what causes rain"], &opts)
            .unwrap(),
        "router-idf serve query",
    );
}

#[test]
fn train_an_inference_free_model_and_encode_with_the_result() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = tmp.path().join("rows.jsonl");
    let mut text = String::new();
    for i in 0..4 {
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
    let router = model("router-learned");
    let args = |extra: &[&str]| -> Vec<String> {
        [
            "train",
            "--model",
            router.to_str().unwrap(),
            "--train",
            rows.to_str().unwrap(),
            "--output",
            out_dir.to_str().unwrap(),
            "--batch-size",
            "2",
            "--max-steps",
            "2",
            "--dropout",
            "false",
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
    };
    let run = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        splade(&refs)
    };
    // Without --router-mapping a Router model is refused, naming the option.
    let message = failure(run(args(&[])));
    assert!(message.contains("router_mapping"), "{message}");
    ok(run(args(&[
        "--router-mapping",
        "anchor=query,positive=document,negative=document",
        "--learning-rate-mapping",
        r"SparseStaticEmbedding\.weight=0.1",
    ])));
    let final_dir = out_dir.join("final");
    assert!(final_dir.join("router_config.json").is_file());
    let queries = ["how do I learn topic 2", "recipes for dish 1"];
    let trained = SparseEncoder::load(&final_dir, &candle_core::Device::Cpu).unwrap();
    let original = load("router-learned");
    let options = EncodeOptions::default();
    let ours = trained.encode_query(&queries, &options).unwrap();
    assert_ne!(
        ours,
        original.encode_query(&queries, &options).unwrap(),
        "the static query weights trained"
    );
    let mut encode = Command::new(env!("CARGO_BIN_EXE_splade"))
        .args(["encode", "--model", final_dir.to_str().unwrap(), "--query"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    encode
        .stdin
        .take()
        .unwrap()
        .write_all(queries.join("\n").as_bytes())
        .unwrap();
    let lines = ok(encode.wait_with_output().unwrap());
    assert_same(
        &parse_lines(&lines),
        &ours,
        "query route of the trained model",
    );
    // sentence-transformers loads final/ and gives the same query and document vectors.
    if let Some(python) = std::env::var_os("SPLADE_RS_REFERENCE_PYTHON")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
    {
        let script = r#"
import json, sys
from sentence_transformers import SparseEncoder
m = SparseEncoder(sys.argv[1], device="cpu")
q = json.loads(sys.argv[2])
def rows(e):
    e = e.to_dense()
    return [[[int(i) for i in r.nonzero().flatten()], [float(r[i]) for i in r.nonzero().flatten()]] for r in e]
print(json.dumps({"query": rows(m.encode_query(q, convert_to_tensor=True)),
                  "document": rows(m.encode_document(q, convert_to_tensor=True))}))
"#;
        let check = Command::new(python)
            .env("HF_HUB_OFFLINE", "1")
            .args([
                "-c",
                script,
                final_dir.to_str().unwrap(),
                &serde_json::to_string(&queries).unwrap(),
            ])
            .output()
            .unwrap();
        let reference: Value = serde_json::from_slice(&ok(check).into_bytes()).unwrap();
        for (key, batch) in [
            ("query", ours.clone()),
            (
                "document",
                trained.encode_document(&queries, &options).unwrap(),
            ),
        ] {
            let lines: Vec<(Vec<u32>, Vec<f32>)> =
                serde_json::from_value(reference[key].clone()).unwrap();
            assert_eq!(lines.len(), batch.len(), "{key}: rows");
            for ((indices, values), row) in lines.iter().zip(batch.rows()) {
                assert_eq!(
                    indices.as_slice(),
                    row.indices(),
                    "{key}: active dimensions"
                );
                for (a, b) in values.iter().zip(row.values()) {
                    assert!(
                        (a - b).abs() <= 1e-5 * a.abs().max(1.0),
                        "{key}: sentence-transformers {a}, ours {b}"
                    );
                }
            }
        }
    }
}
