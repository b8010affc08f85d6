//! Qdrant: our REST requests checked against Qdrant's published OpenAPI schema (no Qdrant
//! server runs here), and our points file loaded into Qdrant's own engine (qdrant-edge-py,
//! run by a Python script) whose top 10 must equal our exact search.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use splade_engines::qdrant::{point, write_points_file, QdrantVectors, Request};
use splade_engines::ExportDocument;

use crate::corpus::{assert_same_top_k, documents, exact_top_k, queries};
use crate::engine_servers::qdrant_edge_python;
use crate::openapi::OpenApi;

const DIM: u32 = 3000;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn schema() -> OpenApi {
    OpenApi::load(&repo().join("fixtures/engines/qdrant/openapi.json"))
}

/// Checks one request against the schema: path, method, query parameters, body.
fn assert_valid(api: &OpenApi, request: &Request) {
    let query: Vec<&str> = request
        .path
        .split_once('?')
        .map(|(_, q)| {
            q.split('&')
                .map(|kv| kv.split('=').next().unwrap())
                .collect()
        })
        .unwrap_or_default();
    let path = request.path.split('?').next().unwrap();
    let concrete = request.template.replace("{collection_name}", "scifact");
    assert_eq!(path, concrete, "{request:?}");
    let schema = api.request_schema(request.method, request.template, &query);
    match (schema, &request.body) {
        (Some(s), Some(body)) => {
            let errors = api.validate(s, body);
            assert!(
                errors.is_empty(),
                "{} {}: {errors:#?}",
                request.method,
                request.path
            );
        }
        (None, None) => {}
        (s, b) => panic!("{request:?}: schema {s:?} vs body {b:?}"),
    }
}

#[test]
fn rest_requests_match_qdrants_openapi_schema() {
    let api = schema();
    let docs = documents(3, DIM, 5);
    let mut with_text = docs[0].clone();
    with_text.text = Some("Ultrafine particulate matter".into());
    let qs = queries(2, DIM, 6);
    let views: Vec<_> = qs.iter().map(|q| q.view()).collect();
    let requests = [
        Request::exists("scifact"),
        Request::create_collection("scifact", &QdrantVectors::default()),
        Request::create_collection(
            "scifact",
            &QdrantVectors {
                name: "splade".into(),
                idf: true,
            },
        ),
        Request::upsert(
            "scifact",
            docs.iter()
                .map(|d| point(d, "splade", false))
                .chain([point(&with_text, "splade", true)])
                .collect(),
        ),
        Request::count("scifact"),
        Request::query_batch("scifact", &views, "splade", 10),
    ];
    for r in &requests {
        assert_valid(&api, r);
    }
    // The shapes themselves, as Qdrant's documentation writes them.
    assert_eq!(
        requests[2].body.as_ref().unwrap(),
        &json!({"sparse_vectors": {"splade": {"modifier": "idf"}}})
    );
    assert_eq!(
        requests[1].body.as_ref().unwrap(),
        &json!({"sparse_vectors": {"splade": {}}})
    );
    // The validator does catch mistakes.
    let s = api
        .request_schema("PUT", "/collections/{collection_name}/points", &[])
        .unwrap();
    let bad = json!({"points": [{"id": "doc-1", "vector": {"splade": {"indices": [1], "values": [1.0]}}}]});
    assert!(
        !api.validate(s, &bad).is_empty(),
        "a non-UUID string id must be refused"
    );
    let bad = json!({"points": [{"id": 1, "vectors": {}}]});
    assert!(
        !api.validate(s, &bad).is_empty(),
        "a misspelt field must be refused"
    );
    let s = api
        .request_schema("PUT", "/collections/{collection_name}", &[])
        .unwrap();
    let bad = json!({"sparse_vectors": {"splade": {"modifier": "bm25"}}});
    assert!(
        !api.validate(s, &bad).is_empty(),
        "an unknown modifier must be refused"
    );
}

/// One query's id and its hits (document id, score), best first.
pub type QueryHits = (String, Vec<(String, f32)>);

/// Runs the qdrant-edge script: our points file loaded into Qdrant's engine, searched with
/// `queries` (written as a JSONL file); returns its hits per query and its point count.
pub fn qdrant_edge_search(
    dir: &Path,
    points: &Path,
    queries: &Path,
    vector_name: &str,
    k: usize,
) -> (Vec<QueryHits>, u64) {
    let python = qdrant_edge_python();
    let out = dir.join("edge-hits.jsonl");
    let output = Command::new(python)
        .arg(repo().join("tests/support/qdrant_edge_search.py"))
        .arg(points)
        .arg(queries)
        .arg(vector_name)
        .arg(k.to_string())
        .arg(dir.join("edge-shard"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "qdrant-edge script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    let hits = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let hits = v["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h[0].as_str().unwrap().to_string(),
                        h[1].as_f64().unwrap() as f32,
                    )
                })
                .collect();
            (v["id"].as_str().unwrap().to_string(), hits)
        })
        .collect();
    (hits, summary["points_count"].as_u64().unwrap())
}

#[test]
fn points_file_searched_by_qdrants_engine_gives_our_exact_top_10() {
    let tmp = tempfile::tempdir().unwrap();
    let docs: Vec<ExportDocument> = documents(1500, DIM, 31);
    let points = tmp.path().join("points.jsonl");
    write_points_file(&points, &docs, "splade", false).unwrap();
    let qs = queries(40, DIM, 32);
    let qfile = tmp.path().join("queries.jsonl");
    let lines: String = qs
        .iter()
        .enumerate()
        .map(|(i, q)| {
            format!(
                "{}\n",
                json!({"id": format!("q{i}"), "indices": q.indices(), "values": q.values()})
            )
        })
        .collect();
    std::fs::write(&qfile, lines).unwrap();
    let (hits, count) = qdrant_edge_search(tmp.path(), &points, &qfile, "splade", 10);
    assert_eq!(count, 1500);
    assert_eq!(hits.len(), 40);
    for ((qid, theirs), q) in hits.iter().zip(&qs) {
        let ours = exact_top_k(&docs, DIM, q, 10);
        assert_same_top_k(&format!("qdrant-edge {qid}"), &ours, theirs, 1e-5);
    }
}
