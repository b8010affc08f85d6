//! `export_qdrant` and `QdrantRest::search` over HTTP against a stand-in server in this test
//! (no Qdrant server can run here): it validates every request it receives against Qdrant's
//! OpenAPI schema, keeps points by id in memory and answers as Qdrant's API documents. This
//! checks our client's flow (exists, create, batched upserts with retries, count, query) and
//! its idempotency, not Qdrant itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use splade_engines::qdrant::{export_qdrant, QdrantExportOptions, QdrantRest};
use splade_engines::retry::RetryPolicy;

use crate::corpus::{assert_same_top_k, documents, exact_top_k, queries};
use crate::http::serve;
use crate::openapi::OpenApi;

const DIM: u32 = 2000;

#[derive(Default)]
struct State {
    collections: HashMap<String, BTreeMap<String, Value>>,
    requests: Vec<String>,
    /// Upsert requests to refuse with 503 before accepting again.
    fail_upserts: usize,
}

fn dot(a: &Value, b: &Value) -> f64 {
    let map = |v: &Value| -> HashMap<u64, f64> {
        v["indices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap())
            .zip(
                v["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|w| w.as_f64().unwrap()),
            )
            .collect()
    };
    let (a, b) = (map(a), map(b));
    a.iter().filter_map(|(i, w)| b.get(i).map(|x| w * x)).sum()
}

/// The answer to one request, after validating it against the schema.
fn answer(
    api: &OpenApi,
    state: &mut State,
    method: &str,
    target: &str,
    body: &[u8],
) -> (u16, Value) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let template = match parts.as_slice() {
        ["collections", _, "exists"] => "/collections/{collection_name}/exists",
        ["collections", _] => "/collections/{collection_name}",
        ["collections", _, "points"] => "/collections/{collection_name}/points",
        ["collections", _, "points", "count"] => "/collections/{collection_name}/points/count",
        ["collections", _, "points", "query", "batch"] => {
            "/collections/{collection_name}/points/query/batch"
        }
        _ => {
            return (
                404,
                json!({"status": {"error": format!("no route {path}")}}),
            )
        }
    };
    let params: Vec<&str> = query
        .split('&')
        .filter(|q| !q.is_empty())
        .map(|q| q.split('=').next().unwrap())
        .collect();
    let schema = api.request_schema(method, template, &params);
    let body: Option<Value> = (!body.is_empty()).then(|| serde_json::from_slice(body).unwrap());
    if let (Some(s), Some(b)) = (schema, &body) {
        let errors = api.validate(s, b);
        assert!(errors.is_empty(), "{method} {target}: {errors:#?}");
    }
    state.requests.push(format!("{method} {template}"));
    let name = parts[1].to_string();
    let ok = |result: Value| (200, json!({"result": result, "status": "ok", "time": 0.0}));
    match (method, template) {
        ("GET", t) if t.ends_with("/exists") => {
            ok(json!({"exists": state.collections.contains_key(&name)}))
        }
        ("PUT", "/collections/{collection_name}") => {
            state.collections.insert(name, BTreeMap::new());
            ok(json!(true))
        }
        ("PUT", _) => {
            if state.fail_upserts > 0 {
                state.fail_upserts -= 1;
                return (503, json!({"status": {"error": "Service Unavailable"}}));
            }
            let points = state
                .collections
                .get_mut(&name)
                .expect("upsert into a missing collection");
            for p in body.unwrap()["points"].as_array().unwrap() {
                points.insert(p["id"].as_str().unwrap().to_string(), p.clone());
            }
            ok(json!({"operation_id": 1, "status": "completed"}))
        }
        ("POST", t) if t.ends_with("/count") => {
            ok(json!({"count": state.collections[&name].len()}))
        }
        ("POST", _) => {
            let points = &state.collections[&name];
            let lists: Vec<Value> = body.unwrap()["searches"].as_array().unwrap().iter().map(|s| {
                let using = s["using"].as_str().unwrap();
                let mut scored: Vec<(f64, &Value)> = points.values().map(|p| (dot(&s["query"], &p["vector"][using]), p)).filter(|(d, _)| *d > 0.0).collect();
                scored.sort_by(|a, b| b.0.total_cmp(&a.0));
                let hits: Vec<Value> = scored.iter().take(s["limit"].as_u64().unwrap() as usize)
                    .map(|(d, p)| json!({"id": p["id"], "version": 1, "score": *d as f32, "payload": p["payload"]}))
                    .collect();
                json!({"points": hits})
            }).collect();
            ok(Value::Array(lists))
        }
        _ => (405, json!({})),
    }
}

/// Starts the stand-in server; returns its URL and state.
fn stand_in() -> (String, Arc<Mutex<State>>) {
    let state = Arc::new(Mutex::new(State::default()));
    let shared = state.clone();
    let api = OpenApi::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/engines/qdrant/openapi.json"),
    );
    let url = serve(move |method, target, body| {
        answer(&api, &mut shared.lock().unwrap(), method, target, body)
    });
    (url, state)
}

#[test]
fn export_over_rest_is_idempotent_retries_and_searches() {
    let (url, state) = stand_in();
    let client = QdrantRest::new(&url, None).unwrap();
    let docs = documents(700, DIM, 41);
    let options = QdrantExportOptions {
        batch_size: 100,
        retry: RetryPolicy {
            attempts: 3,
            first_delay: std::time::Duration::from_millis(10),
            max_delay: std::time::Duration::from_millis(10),
        },
        ..QdrantExportOptions::default()
    };
    state.lock().unwrap().fail_upserts = 2;
    let mut sent = Vec::new();
    let report = export_qdrant(&client, "scifact", &docs, &options, &mut |n| sent.push(n)).unwrap();
    assert!(report.created);
    assert_eq!(report.count, 700);
    assert_eq!(sent, vec![100, 200, 300, 400, 500, 600, 700]);
    let again = export_qdrant(&client, "scifact", &docs, &options, &mut |_| {}).unwrap();
    assert!(!again.created);
    assert_eq!(again.count, 700, "a second export added points");
    {
        let s = state.lock().unwrap();
        let upserts = s
            .requests
            .iter()
            .filter(|r| r.starts_with("PUT /collections/{collection_name}/points"))
            .count();
        assert_eq!(
            upserts,
            7 + 2 + 7,
            "7 batches, 2 refused and retried, 7 again"
        );
        assert_eq!(
            s.requests
                .iter()
                .filter(|r| *r == "PUT /collections/{collection_name}")
                .count(),
            1
        );
    }
    let qs = queries(20, DIM, 42);
    let views: Vec<_> = qs.iter().map(|q| q.view()).collect();
    let found = client.search("scifact", &views, "splade", 10).unwrap();
    for (q, hits) in qs.iter().zip(&found) {
        let ours = exact_top_k(&docs, DIM, q, 10);
        let theirs: Vec<(String, f32)> = hits.iter().map(|h| (h.id.clone(), h.score)).collect();
        assert_same_top_k("qdrant rest", &ours, &theirs, 1e-5);
    }
    // A server that keeps refusing: the error names the batch and the attempts.
    state.lock().unwrap().fail_upserts = 100;
    let err = export_qdrant(&client, "scifact", &docs[..150], &options, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("documents 1..100") && err.contains("after 3 attempts") && err.contains("503"),
        "{err}"
    );
}
