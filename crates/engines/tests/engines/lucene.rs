//! OpenSearch and Elasticsearch: the bodies we write against the request shapes of their
//! documentation (`fixtures/engines/lucene`, no server runs here), and token maps decoded
//! back into our vectors.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use splade_engines::lucene::{
    document_source, lucene_feature_value, mapping, msearch_lines, query_body, write_bulk_file,
    LuceneEngine, TokenMap,
};
use splade_engines::ExportDocument;
use splade_sparse::SparseVector;

use crate::corpus::{documents, queries};

const DIM: u32 = 3000;

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/engines/lucene")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn fixture_lines(name: &str) -> Vec<Value> {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/engines/lucene")
        .join(name);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The structure of a JSON value: key sets and value kinds; an object of numbers only is a
/// token map ("TOKENS"), whatever its keys.
fn skeleton(v: &Value) -> Value {
    match v {
        Value::Object(o) if !o.is_empty() && o.values().all(Value::is_number) => json!("TOKENS"),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), skeleton(v))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().take(1).map(skeleton).collect()),
        Value::Number(_) => json!("number"),
        Value::String(_) => json!("string"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
    }
}

/// `v` with the object key `from` renamed `to` wherever it occurs.
fn rename(v: &Value, from: &str, to: &str) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    (
                        if k == from { to.to_string() } else { k.clone() },
                        rename(v, from, to),
                    )
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| rename(v, from, to)).collect()),
        v => v.clone(),
    }
}

/// A vocabulary with the tokens that need care: dots, `%`, `##` pieces, an empty token
/// and a repeated one, besides plain words.
fn vocabulary() -> Vec<String> {
    (0..DIM)
        .map(|i| match i {
            0 => "[PAD]".to_string(),
            1 => ".".into(),
            2 => "u.s".into(),
            3 => "##ing".into(),
            4 => "ing".into(),
            5 => "".into(),
            6 => "ing".into(),
            7 => "100%".into(),
            i if i % 97 == 0 => format!("w{i}.x"),
            i if i % 13 == 0 => format!("##p{i}"),
            i => format!("w{i}"),
        })
        .collect()
}

#[test]
fn bodies_have_the_documented_shapes() {
    let tokens = TokenMap::from_vocabulary(&vocabulary());
    let mut doc = documents(1, DIM, 3).remove(0);
    doc.text = Some("Hello world".into());
    let q = queries(1, DIM, 4).remove(0);

    // OpenSearch rank_features + neural_sparse.
    let m = mapping(LuceneEngine::OpenSearchRankFeatures, "splade", true);
    let documented = rename(
        &fixture("opensearch-rank-features-mapping.json"),
        "passage_embedding",
        "splade",
    );
    assert_eq!(
        m["mappings"]["properties"]["splade"],
        documented["mappings"]["properties"]["splade"]
    );
    let source = document_source(
        LuceneEngine::OpenSearchRankFeatures,
        Some(&tokens),
        &doc,
        "splade",
        false,
    )
    .unwrap();
    let documented = fixture("opensearch-rank-features-document.json");
    assert_eq!(
        skeleton(&source["splade"]),
        skeleton(&documented["passage_embedding"])
    );
    let body = query_body(
        LuceneEngine::OpenSearchRankFeatures,
        Some(&tokens),
        q.view(),
        "splade",
        10,
    )
    .unwrap();
    let documented = rename(
        &fixture("opensearch-neural-sparse-query.json"),
        "passage_embedding",
        "splade",
    );
    assert_eq!(skeleton(&body["query"]), skeleton(&documented["query"]));
    assert_eq!(body["size"], 10);

    // OpenSearch 3.3+ sparse_vector (seismic): token ids as keys.
    let m = mapping(LuceneEngine::OpenSearchSeismic, "splade", false);
    let documented = rename(
        &fixture("opensearch-seismic-mapping.json"),
        "sparse_embedding",
        "splade",
    );
    assert_eq!(m["settings"], documented["settings"]);
    let ours = &m["mappings"]["properties"]["splade"];
    let theirs = &documented["mappings"]["properties"]["splade"];
    assert_eq!(ours["type"], theirs["type"]);
    assert_eq!(ours["method"]["name"], theirs["method"]["name"]);
    let source =
        document_source(LuceneEngine::OpenSearchSeismic, None, &doc, "splade", false).unwrap();
    assert_eq!(
        skeleton(&source),
        skeleton(&rename(
            &fixture("opensearch-seismic-document.json"),
            "sparse_embedding",
            "splade"
        ))
    );
    assert!(source["splade"]
        .as_object()
        .unwrap()
        .keys()
        .all(|k| k.parse::<u16>().is_ok()));
    let body = query_body(
        LuceneEngine::OpenSearchSeismic,
        None,
        q.view(),
        "splade",
        10,
    )
    .unwrap();
    let documented = rename(
        &fixture("opensearch-seismic-query.json"),
        "sparse_embedding",
        "splade",
    );
    assert_eq!(skeleton(&body["query"]), skeleton(&documented["query"]));

    // Elasticsearch sparse_vector.
    let m = mapping(LuceneEngine::Elasticsearch, "splade", false);
    let documented = rename(
        &fixture("elasticsearch-sparse-vector-mapping.json"),
        "text.tokens",
        "splade",
    );
    assert_eq!(m, documented);
    let body = query_body(
        LuceneEngine::Elasticsearch,
        Some(&tokens),
        q.view(),
        "splade",
        10,
    )
    .unwrap();
    let mut documented = fixture("elasticsearch-sparse-vector-query.json");
    documented["query"]["sparse_vector"]["field"] = json!("splade");
    assert_eq!(skeleton(&body["query"]), skeleton(&documented["query"]));
    assert_eq!(body["query"]["sparse_vector"]["field"], "splade");

    // _msearch: header and body lines.
    let views = [q.view(), q.view()];
    let lines = msearch_lines(
        LuceneEngine::Elasticsearch,
        Some(&tokens),
        &views,
        "splade",
        "scifact",
        10,
    )
    .unwrap();
    let lines: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let documented = fixture_lines("msearch.ndjson");
    assert_eq!(lines.len(), 4);
    assert_eq!(skeleton(&lines[0]), skeleton(&documented[0]));
    assert_eq!(lines[0], json!({"index": "scifact"}));
}

#[test]
fn bulk_files_round_trip_to_our_vectors() {
    let tmp = tempfile::tempdir().unwrap();
    let vocabulary = vocabulary();
    let tokens = TokenMap::from_vocabulary(&vocabulary);
    let mut docs: Vec<ExportDocument> = documents(500, DIM, 9);
    // Every special token in some document, and a zero weight.
    docs[0].vector = SparseVector::new(
        vec![1, 2, 3, 4, 5, 6, 7, 97],
        vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0, 0.5],
    )
    .unwrap();
    let documented = fixture_lines("bulk-index-action.ndjson");
    for engine in [
        LuceneEngine::OpenSearchRankFeatures,
        LuceneEngine::Elasticsearch,
        LuceneEngine::OpenSearchSeismic,
    ] {
        let path = tmp.path().join("bulk.ndjson");
        let mapping_path = tmp.path().join("mapping.json");
        let t = engine.needs_vocabulary().then_some(&tokens);
        write_bulk_file(
            &path,
            Some(&mapping_path),
            engine,
            t,
            &docs,
            "scifact",
            "splade",
            false,
        )
        .unwrap();
        let m: Value =
            serde_json::from_str(&std::fs::read_to_string(&mapping_path).unwrap()).unwrap();
        assert_eq!(m, mapping(engine, "splade", false));
        let lines: Vec<Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2 * docs.len());
        let (mut max_rel, mut entries) = (0f64, 0usize);
        for (pair, doc) in lines.chunks(2).zip(&docs) {
            assert_eq!(skeleton(&pair[0]), skeleton(&documented[0]), "{engine:?}");
            assert_eq!(pair[0]["index"]["_id"], json!(doc.id));
            assert_eq!(pair[0]["index"]["_index"], json!("scifact"));
            let map = pair[1]["splade"].as_object().unwrap();
            assert!(map.keys().all(|k| !k.contains('.')), "a dot in {map:?}");
            assert!(map.values().all(|w| w.as_f64().unwrap() > 0.0));
            let back = match engine {
                LuceneEngine::OpenSearchSeismic => {
                    let mut pairs: Vec<(u32, f32)> = map
                        .iter()
                        .map(|(k, w)| (k.parse().unwrap(), w.as_f64().unwrap() as f32))
                        .collect();
                    pairs.sort_by_key(|p| p.0);
                    let (i, v) = pairs.into_iter().unzip();
                    SparseVector::new(i, v).unwrap()
                }
                _ => tokens.decode(map).unwrap(),
            };
            // Exactly our vector without its zero weights.
            let (i, v): (Vec<u32>, Vec<f32>) = doc
                .vector
                .indices()
                .iter()
                .zip(doc.vector.values())
                .filter(|(_, &w)| w > 0.0)
                .map(|(&i, &w)| (i, w))
                .unzip();
            assert_eq!(
                back,
                SparseVector::new(i, v).unwrap(),
                "{engine:?} {}",
                doc.id
            );
            // What Lucene keeps of each weight (rank_features, Elasticsearch sparse_vector):
            // 9 significant bits.
            for &w in back
                .values()
                .iter()
                .filter(|_| engine != LuceneEngine::OpenSearchSeismic)
            {
                let kept = lucene_feature_value(w);
                max_rel = max_rel.max(((w - kept) / w) as f64);
                entries += 1;
            }
        }
        assert!(max_rel < 1.0 / 256.0, "{engine:?}: {max_rel}");
        eprintln!(
            "LUCENE {engine:?}: {} documents round-tripped exactly; {entries} weights through Lucene's 9-bit storage: largest relative error {max_rel:.2e}",
            docs.len()
        );
    }
    // A repeated id is refused; a term beyond the vocabulary names itself.
    let mut twice = docs[..2].to_vec();
    twice[1].id = twice[0].id.clone();
    let err = write_bulk_file(
        &tmp.path().join("x.ndjson"),
        None,
        LuceneEngine::Elasticsearch,
        Some(&tokens),
        &twice,
        "i",
        "f",
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("repeats the id"), "{err}");
    let small = TokenMap::from_vocabulary(&vocabulary[..10]);
    let err = write_bulk_file(
        &tmp.path().join("x.ndjson"),
        None,
        LuceneEngine::Elasticsearch,
        Some(&small),
        &docs[1..2],
        "i",
        "f",
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("beyond the vocabulary"), "{err}");
    assert!(!tmp.path().join("x.ndjson").exists());
}

/// `post_bulk` against a stand-in cluster (no OpenSearch or Elasticsearch runs here): the
/// index is created with our mapping when `HEAD` says it is missing, `_bulk` bodies are
/// ndjson pairs of the documented shape, documents are keyed by `_id` (sending twice keeps
/// one copy), and an answer with `"errors": true` is an error quoting the failed item.
#[test]
fn post_bulk_creates_the_index_then_sends_keyed_documents() {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use splade_engines::lucene::post_bulk;

    #[derive(Default)]
    struct Cluster {
        mappings: BTreeMap<String, Value>,
        docs: BTreeMap<String, Value>,
        bulk_requests: usize,
        reject_next: bool,
    }
    let cluster = Arc::new(Mutex::new(Cluster::default()));
    let shared = cluster.clone();
    let url = crate::http::serve(move |method, target, body| {
        let mut c = shared.lock().unwrap();
        match (method, target) {
            ("HEAD", t) => {
                let found = c.mappings.contains_key(t.trim_start_matches('/'));
                (if found { 200 } else { 404 }, json!({}))
            }
            ("PUT", t) => {
                let mapping: Value = serde_json::from_slice(body).unwrap();
                c.mappings
                    .insert(t.trim_start_matches('/').to_string(), mapping);
                (200, json!({"acknowledged": true}))
            }
            ("POST", "/_bulk") => {
                c.bulk_requests += 1;
                let lines: Vec<Value> = std::str::from_utf8(body)
                    .unwrap()
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect();
                let documented = fixture_lines("bulk-index-action.ndjson");
                let mut items = Vec::new();
                for pair in lines.chunks(2) {
                    assert_eq!(skeleton(&pair[0]), skeleton(&documented[0]));
                    let id = pair[0]["index"]["_id"].as_str().unwrap().to_string();
                    if std::mem::take(&mut c.reject_next) {
                        items.push(json!({"index": {"_id": id, "status": 400, "error": {"type": "document_parsing_exception", "reason": "[sparse_vector] fields do not support dots in feature names"}}}));
                    } else {
                        c.docs.insert(id.clone(), pair[1].clone());
                        items.push(json!({"index": {"_id": id, "status": 201}}));
                    }
                }
                let errors = items.iter().any(|i| i["index"]["error"].is_object());
                (200, json!({"took": 1, "errors": errors, "items": items}))
            }
            _ => (405, json!({})),
        }
    });
    let tokens = TokenMap::from_vocabulary(&vocabulary());
    let docs = documents(230, DIM, 61);
    let mut progress = Vec::new();
    for _ in 0..2 {
        progress.clear();
        post_bulk(
            &url,
            None,
            LuceneEngine::Elasticsearch,
            Some(&tokens),
            &docs,
            "scifact",
            "splade",
            false,
            100,
            &mut |n| progress.push(n),
        )
        .unwrap();
    }
    assert_eq!(progress, vec![100, 200, 230]);
    {
        let c = cluster.lock().unwrap();
        assert_eq!(c.mappings.len(), 1);
        assert_eq!(
            c.mappings["scifact"],
            mapping(LuceneEngine::Elasticsearch, "splade", false)
        );
        assert_eq!(c.bulk_requests, 6);
        assert_eq!(c.docs.len(), 230, "sending twice must not add documents");
        let back = tokens
            .decode(c.docs["doc-7"]["splade"].as_object().unwrap())
            .unwrap();
        assert_eq!(back, docs[7].vector);
    }
    cluster.lock().unwrap().reject_next = true;
    let err = post_bulk(
        &url,
        None,
        LuceneEngine::Elasticsearch,
        Some(&tokens),
        &docs[..10],
        "scifact",
        "splade",
        false,
        100,
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("documents 1..10") && err.contains("do not support dots"),
        "{err}"
    );
}
