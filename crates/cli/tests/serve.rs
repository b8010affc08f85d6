//! `splade serve` as a real process on 127.0.0.1 (issue #13): every route, answers equal to
//! offline encoding and search bit for bit, TEI's OpenAPI contract, bad requests, auth,
//! overload, durability across `kill -9`, atomic visibility of updates, graceful shutdown.

#[path = "common/fs.rs"]
mod fs;
mod serve_support;

use fs::copy_dir;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use serve_support::{agent, call_with, get, post, scifact, Server};
use splade_encoder::{EncodeOptions, SparseBatch, SparseEncoder};

fn encoder() -> &'static SparseEncoder {
    static ENCODER: std::sync::OnceLock<SparseEncoder> = std::sync::OnceLock::new();
    ENCODER.get_or_init(|| SparseEncoder::from_pretrained("splade-tiny").expect("splade-tiny"))
}

/// TEI's sparse JSON of a batch row.
fn tei_row(batch: &SparseBatch, row: usize) -> Value {
    let v = batch.row(row).unwrap();
    Value::Array(
        v.indices()
            .iter()
            .zip(v.values())
            .map(|(&i, &w)| json!({"index": i, "value": w}))
            .collect(),
    )
}

/// A `[{"index","value"}]` row as (index, f32) pairs (JSON numbers read back as f32).
fn pairs(v: &Value) -> Vec<(u64, f32)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["index"].as_u64().unwrap(),
                e["value"].as_f64().unwrap() as f32,
            )
        })
        .collect()
}

/// A token map as (token, f32) pairs.
fn token_pairs(v: &Value) -> Vec<(String, f32)> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, w)| (k.clone(), w.as_f64().unwrap() as f32))
        .collect()
}

/// Compares a `[{"index","value"}]` answer row with a vector: bit for bit when `exact`,
/// else within float rounding (1e-5 relative; a term may only be missing on one side with a
/// weight below 1e-5). Err(what differs).
fn compare(got: &Value, batch: &SparseBatch, row: usize, exact: bool) -> Result<(), String> {
    let got = pairs(got);
    let expected = pairs(&tei_row(batch, row));
    if exact {
        return if got == expected {
            Ok(())
        } else {
            Err(format!("{got:?}\n!=\n{expected:?}"))
        };
    }
    let a: HashMap<u64, f32> = got.into_iter().collect();
    let b: HashMap<u64, f32> = expected.into_iter().collect();
    for i in a.keys().chain(b.keys()) {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0.0),
            b.get(i).copied().unwrap_or(0.0),
        );
        if (x - y).abs() > 1e-5 * y.abs().max(x.abs()).max(1.0) {
            return Err(format!("term {i}: {x} vs {y}"));
        }
    }
    Ok(())
}

fn assert_vector(got: &Value, batch: &SparseBatch, row: usize, exact: bool, what: &str) {
    if let Err(e) = compare(got, batch, row, exact) {
        panic!("{what} (exact: {exact}): {e}");
    }
}

/// Every embedding route of `server` against offline encoding of each text alone (batch
/// size 1): bit for bit when `exact` (a server run with `--max-batch-requests 1`), within
/// float rounding otherwise (a batch's matrix products may tile a row differently than the
/// text alone), also with 64 clients at once.
fn check_embeddings(server: &Server, exact: bool) {
    let (queries, docs) = scifact(64, 24);
    let docs: Vec<String> = docs.into_iter().map(|(_, t)| t).collect();
    let opts = EncodeOptions {
        batch_size: 1,
        ..EncodeOptions::default()
    };
    let plain_q = encoder().encode(&queries, &opts).unwrap();
    let as_query = encoder().encode_query(&queries, &opts).unwrap();
    let plain_d = encoder().encode(&docs, &opts).unwrap();
    let as_doc = encoder().encode_document(&docs, &opts).unwrap();
    let a = agent();
    let url = server.url("/embed_sparse");

    // One text, a batch, the query and document routes, token ids.
    let r = post(&a, &url, &json!({"inputs": queries[0]}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_vector(&r.json()[0], &plain_q, 0, exact, "single input");
    for header in [
        "x-compute-time",
        "x-queue-time",
        "x-inference-time",
        "x-tokenization-time",
        "x-compute-tokens",
    ] {
        assert!(
            r.header(header).is_some(),
            "missing {header}: {:?}",
            r.headers
        );
    }
    let r = post(&a, &url, &json!({"inputs": &docs}));
    assert_eq!(r.status, 200, "{}", r.body);
    for (i, row) in r.json().as_array().unwrap().iter().enumerate() {
        assert_vector(
            row,
            &plain_d,
            i,
            exact,
            &format!("document {i} of a batch (long texts, truncated)"),
        );
    }
    let r = post(
        &a,
        &url,
        &json!({"inputs": &docs[..8], "prompt_name": "document"}),
    );
    for (i, row) in r.json().as_array().unwrap().iter().enumerate() {
        assert_vector(row, &as_doc, i, exact, "document route");
    }
    let r = post(
        &a,
        &url,
        &json!({"inputs": &queries[..8], "prompt_name": "query"}),
    );
    for (i, row) in r.json().as_array().unwrap().iter().enumerate() {
        assert_vector(row, &as_query, i, exact, "query route");
    }
    let ids = &encoder().tokenize(&[&queries[3]], &opts).unwrap()[0].ids;
    let r = post(&a, &url, &json!({"inputs": ids}));
    assert_vector(&r.json()[0], &plain_q, 3, exact, "token ids input");

    // 64 clients at once, each sending its own query several times.
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for (i, q) in queries.iter().enumerate() {
            let (a, failures, url, plain_q) = (agent(), &failures, &url, &plain_q);
            scope.spawn(move || {
                for _ in 0..4 {
                    let r = post(&a, url, &json!({"inputs": [q]}));
                    let verdict = if r.status == 200 {
                        compare(&r.json()[0], plain_q, i, exact)
                    } else {
                        Err(format!("status {}: {}", r.status, r.body))
                    };
                    if let Err(e) = verdict {
                        failures.lock().unwrap().push(format!("query {i}: {e}"));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} differing answers, first: {}",
        failures.len(),
        failures[0]
    );
}

#[test]
fn embed_sparse_equals_offline_encoding_under_64_concurrent_clients() {
    // Dynamic batching: the queue packs concurrent requests into shared forward passes.
    let server = Server::start(&[]);
    check_embeddings(&server, false);
    let metrics = get(&agent(), &server.url("/metrics")).body;
    let batches = metrics
        .lines()
        .find_map(|l| l.strip_prefix("te_batch_next_size_count "))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .expect("te_batch_next_size_count");
    let inputs = metrics
        .lines()
        .find_map(|l| l.strip_prefix("te_batch_next_size_sum "))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .expect("te_batch_next_size_sum");
    assert!(
        inputs / batches > 1.5,
        "mean batch {inputs} / {batches}: the queue did not batch"
    );
}

#[test]
fn embed_sparse_equals_offline_encoding_bit_for_bit_one_input_per_forward_pass() {
    let server = Server::start(&["--max-batch-requests", "1"]);
    check_embeddings(&server, true);
}

#[test]
fn tokenize_decode_info_health_metrics_and_engine_routes() {
    let server = Server::start(&[]);
    let a = agent();
    let text = "What causes Rain?";
    let r = post(&a, &server.url("/tokenize"), &json!({"inputs": text}));
    assert_eq!(r.status, 200, "{}", r.body);
    let tokens = r.json()[0].as_array().unwrap().clone();
    let ids: Vec<u32> = tokens
        .iter()
        .map(|t| t["id"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(
        ids,
        encoder()
            .tokenize(&[text], &EncodeOptions::default())
            .unwrap()[0]
            .ids
    );
    assert_eq!(tokens[0]["special"], true);
    assert_eq!(tokens[0]["start"], Value::Null);
    assert_eq!(
        tokens[1]["text"], "What",
        "offsets point into the original text"
    );
    assert_eq!(
        (tokens[1]["start"].as_u64(), tokens[1]["stop"].as_u64()),
        (Some(0), Some(4))
    );

    let r = post(
        &a,
        &server.url("/decode"),
        &json!({"ids": [ids.clone(), ids.clone()]}),
    );
    assert_eq!(r.json(), json!(["what causes rain?", "what causes rain?"]));
    let r = post(
        &a,
        &server.url("/decode"),
        &json!({"ids": ids, "skip_special_tokens": false}),
    );
    assert_eq!(r.json(), json!(["[CLS] what causes rain? [SEP]"]));

    let info = get(&a, &server.url("/info")).json();
    assert_eq!(
        info["model_type"],
        json!({"embedding": {"pooling": "splade"}})
    );
    assert_eq!(info["max_input_length"], 512);
    assert_eq!(info["max_client_batch_size"], 32);
    assert_eq!(info["splade"]["dim"], 30522);
    assert_eq!(get(&a, &server.url("/health")).status, 200);
    assert_eq!(get(&a, &server.url("/ping")).status, 200);

    // Elasticsearch and OpenSearch shapes: the vector's tokens and weights.
    let texts = [
        "what causes rain",
        "Rain forms when water vapour condenses.",
    ];
    let expected_q = encoder()
        .encode_query(&texts, &EncodeOptions::default())
        .unwrap();
    let token_map = |batch: &SparseBatch, row: usize| -> Value {
        let v = batch.row(row).unwrap();
        let map: BTreeMap<String, f32> = encoder().decode(v, None).into_iter().collect();
        serde_json::to_value(map).unwrap()
    };
    let es = post(
        &a,
        &server.url("/elasticsearch/sparse_embedding?prompt_name=query"),
        &json!({"inputs": texts}),
    );
    assert_eq!(es.status, 200, "{}", es.body);
    let es = es.json();
    assert_eq!(es.as_array().unwrap().len(), 2);
    for row in 0..2 {
        assert_eq!(
            token_pairs(&es[row]),
            token_pairs(&token_map(&expected_q, row))
        );
    }
    let os = post(
        &a,
        &server.url("/opensearch/sparse_embedding"),
        &json!({"inputs": texts}),
    );
    assert_eq!(
        token_pairs(&os.json()["response"][1]),
        token_pairs(&token_map(&expected_q, 1))
    );

    let metrics = get(&a, &server.url("/metrics"));
    assert!(metrics.content_type.starts_with("text/plain"));
    for family in [
        "te_request_count",
        "te_request_success",
        "te_queue_size",
        "te_batch_next_size",
        "te_request_duration",
    ] {
        assert!(
            metrics.body.contains(family),
            "no {family} in\n{}",
            metrics.body
        );
    }
}

/// Converts OpenAPI 3.0 schema objects to JSON Schema (`nullable: true` becomes a `null`
/// alternative).
fn openapi_to_json_schema(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut out: serde_json::Map<String, Value> = map
                .iter()
                .filter(|(k, _)| k.as_str() != "nullable" && k.as_str() != "example")
                .map(|(k, v)| (k.clone(), openapi_to_json_schema(v)))
                .collect();
            if map.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(Value::String(t)) = out.get("type").cloned() {
                    out.insert("type".into(), json!([t, "null"]));
                } else {
                    return json!({"anyOf": [Value::Object(out), {"type": "null"}]});
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(openapi_to_json_schema).collect()),
        other => other.clone(),
    }
}

struct Contract {
    spec: Value,
    checked: Vec<String>,
}

impl Contract {
    fn load() -> Self {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tei-openapi-1.9.3.json");
        let spec: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        Self {
            spec,
            checked: Vec::new(),
        }
    }

    /// Validates an answer of `method path` against the spec's schema for its status (which
    /// the spec must list).
    fn check(&mut self, method: &str, path: &str, reply: &serve_support::Reply) {
        let responses = &self.spec["paths"][path][method]["responses"];
        assert!(
            responses.is_object(),
            "{method} {path} is not in TEI's spec"
        );
        let status = reply.status.to_string();
        let response = &responses[&status];
        assert!(
            response.is_object(),
            "{method} {path} answered {status}, which TEI's spec does not list: {}",
            reply.body
        );
        let Some(schema_ref) = response["content"]["application/json"]["schema"]["$ref"].as_str()
        else {
            self.checked
                .push(format!("{method} {path} {status} (no JSON schema)"));
            return;
        };
        let schema = json!({
            "$ref": schema_ref,
            "components": openapi_to_json_schema(&self.spec["components"]),
        });
        let validator = jsonschema::validator_for(&schema).expect("a valid schema");
        let instance = reply.json();
        if let Err(e) = validator.validate(&instance) {
            panic!(
                "{method} {path} {status}: {} does not match {schema_ref}: {e}",
                reply.body
            );
        }
        self.checked.push(format!("{method} {path} {status}"));
    }
}

#[test]
fn every_shared_route_answers_as_tei_openapi_says_errors_included() {
    let server = Server::start(&["--max-client-batch-size", "4", "--auto-truncate", "false"]);
    let a = agent();
    let mut contract = Contract::load();
    let long = "rain ".repeat(600);
    let cases: Vec<(&str, Value, u16)> = vec![
        ("/embed_sparse", json!({"inputs": "what causes rain"}), 200),
        (
            "/embed_sparse",
            json!({"inputs": ["a", "b"], "truncate": true, "truncation_direction": "Left"}),
            200,
        ),
        ("/embed_sparse", json!({"inputs": []}), 400),
        (
            "/embed_sparse",
            json!({"inputs": ["a", "b", "c", "d", "e"]}),
            422,
        ),
        ("/embed_sparse", json!({"inputs": long}), 422),
        (
            "/embed_sparse",
            json!({"inputs": "x", "prompt_name": "no-such-prompt"}),
            422,
        ),
        ("/embed_sparse", json!({"inputs": 5}), 422),
        ("/embed_sparse", json!({"inputs": [[999999999]]}), 422),
        (
            "/tokenize",
            json!({"inputs": ["what causes rain", "x"]}),
            200,
        ),
        ("/tokenize", json!({"inputs": []}), 400),
        (
            "/tokenize",
            json!({"inputs": ["a", "b", "c", "d", "e"]}),
            422,
        ),
        ("/decode", json!({"ids": [101, 102]}), 200),
        ("/decode", json!({"ids": [[101], [102]]}), 200),
        ("/decode", json!({"ids": []}), 200),
        ("/decode", json!({"ids": [[]]}), 200),
        ("/decode", json!({"ids": [4294967295u64]}), 422),
    ];
    for (path, body, status) in cases {
        let r = post(&a, &server.url(path), &body);
        assert_eq!(r.status, status, "POST {path} {body}: {}", r.body);
        contract.check("post", path, &r);
    }
    // With truncation asked for, the long text is accepted (left or right).
    let r = post(
        &a,
        &server.url("/embed_sparse"),
        &json!({"inputs": long, "truncate": true}),
    );
    assert_eq!(r.status, 200);
    contract.check("post", "/embed_sparse", &r);
    // Bodies that are not JSON.
    for raw in [&b"{\"inputs\": "[..], b"\xff\xfe{}", b"not json"] {
        let r = call_with(&a, "POST", &server.url("/embed_sparse"), Some(raw), &[]);
        assert_eq!(r.status, 400, "{:?}: {}", raw, r.body);
        contract.check("post", "/embed_sparse", &r);
    }
    for path in ["/info", "/health"] {
        let r = get(&a, &server.url(path));
        contract.check("get", path, &r);
    }
    let r = get(&a, &server.url("/metrics"));
    contract.check("get", "/metrics", &r);
    assert!(contract.checked.len() >= 20, "{:?}", contract.checked);
}

#[test]
fn limits_auth_and_routes_without_an_index() {
    let server = Server::start(&["--api-key", "s3cret", "--payload-limit", "2000"]);
    let a = agent();
    let body = json!({"inputs": "what causes rain"}).to_string();
    let url = server.url("/embed_sparse");
    let r = call_with(&a, "POST", &url, Some(body.as_bytes()), &[]);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["error_type"], "Validation");
    for wrong in ["Bearer s3cre", "Bearer s3cret2", "s3cret", "bearer s3cret"] {
        let r = call_with(
            &a,
            "POST",
            &url,
            Some(body.as_bytes()),
            &[("authorization", wrong)],
        );
        assert_eq!(r.status, 401, "{wrong}");
    }
    let ok = [("authorization", "Bearer s3cret")];
    assert_eq!(
        call_with(&a, "POST", &url, Some(body.as_bytes()), &ok).status,
        200
    );
    assert_eq!(
        call_with(&a, "GET", &server.url("/info"), None, &[]).status,
        401
    );
    // /health and /metrics stay open.
    assert_eq!(get(&a, &server.url("/health")).status, 200);
    assert_eq!(get(&a, &server.url("/metrics")).status, 200);
    // Over the payload limit: 413 with a TEI error body.
    let big = json!({"inputs": "x".repeat(5000)}).to_string();
    let r = call_with(&a, "POST", &url, Some(big.as_bytes()), &ok);
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.json()["error_type"], "Validation");
    // No index: search and updates say so.
    for (method, path, body) in [
        ("POST", "/search", json!({"query": "rain"})),
        ("POST", "/documents", json!([{"id": "a", "text": "rain"}])),
        ("DELETE", "/documents", json!({"ids": ["a"]})),
    ] {
        let r = call_with(
            &a,
            method,
            &server.url(path),
            Some(body.to_string().as_bytes()),
            &ok,
        );
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
        assert!(r.json()["error"].as_str().unwrap().contains("--index"));
    }
}

#[test]
fn overload_answers_429_stays_up_and_answers_every_accepted_request_correctly() {
    let server = Server::start(&[
        "--max-concurrent-requests",
        "4",
        "--max-batch-tokens",
        "512",
    ]);
    let (queries, _) = scifact(48, 0);
    let expected = encoder()
        .encode(&queries, &EncodeOptions::default())
        .unwrap();
    let (ok, refused, wrong) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        Mutex::new(Vec::new()),
    );
    std::thread::scope(|scope| {
        for (i, q) in queries.iter().enumerate() {
            let (a, url) = (agent(), server.url("/embed_sparse"));
            let (ok, refused, wrong, expected) = (&ok, &refused, &wrong, &expected);
            scope.spawn(move || {
                for _ in 0..5 {
                    let r = post(&a, &url, &json!({"inputs": [q, q]}));
                    match r.status {
                        200 if compare(&r.json()[1], expected, i, false).is_ok() => {
                            ok.fetch_add(1, Ordering::SeqCst)
                        }
                        429 => {
                            assert_eq!(
                                r.json(),
                                json!({"error": "Model is overloaded", "error_type": "Overloaded"})
                            );
                            refused.fetch_add(1, Ordering::SeqCst)
                        }
                        _ => {
                            wrong
                                .lock()
                                .unwrap()
                                .push(format!("{} {}", r.status, r.body));
                            0
                        }
                    };
                }
            });
        }
    });
    let wrong = wrong.into_inner().unwrap();
    assert!(wrong.is_empty(), "{wrong:?}");
    let (ok, refused) = (ok.into_inner(), refused.into_inner());
    assert!(
        refused > 0,
        "48 clients against 4 permits: some must be refused ({ok} accepted)"
    );
    assert!(ok > 0);
    let a = agent();
    assert_eq!(
        get(&a, &server.url("/health")).status,
        200,
        "the server is still up"
    );
    let metrics = get(&a, &server.url("/metrics")).body;
    assert!(
        metrics.contains("te_request_failure{err=\"overloaded\"}"),
        "{metrics}"
    );
}

fn hits_of(result: &Value) -> Vec<(String, f32)> {
    result["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["id"].as_str().unwrap().to_string(),
                h["score"].as_f64().unwrap() as f32,
            )
        })
        .collect()
}

#[test]
fn search_over_http_equals_splade_search_and_updates_are_visible_when_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let (queries, docs) = scifact(30, 300);
    // Build the index offline with the CLI from the real corpus.
    let corpus = tmp.path().join("corpus.jsonl");
    let lines: Vec<String> = docs
        .iter()
        .map(|(id, text)| json!({"_id": id, "text": text}).to_string())
        .collect();
    std::fs::write(&corpus, lines.join("\n")).unwrap();
    let index_dir = tmp.path().join("index");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_splade"))
        .args(["index", "build", "--model", "splade-tiny", "--corpus"])
        .arg(&corpus)
        .arg("--out")
        .arg(&index_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let queries_file = tmp.path().join("queries.jsonl");
    let jsonl: Vec<String> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| json!({"_id": format!("q{i}"), "text": q}).to_string())
        .collect();
    std::fs::write(&queries_file, jsonl.join("\n")).unwrap();
    // The query vectors, encoded once offline, for the exact comparison.
    let qvecs = encoder()
        .encode_query(&queries, &EncodeOptions::default())
        .unwrap();
    let vectors_file = tmp.path().join("query-vectors.jsonl");
    let vector_lines: Vec<String> = (0..queries.len())
        .map(|i| {
            let v = qvecs.row(i).unwrap();
            json!({"id": format!("q{i}"), "indices": v.indices(), "values": v.values()}).to_string()
        })
        .collect();
    std::fs::write(&vectors_file, vector_lines.join("\n")).unwrap();
    let vector_json = |i: usize| {
        let v = qvecs.row(i).unwrap();
        json!({"indices": v.indices(), "values": v.values()})
    };
    let cli_run = |dir: &std::path::Path, input: &[&str]| -> Vec<Vec<(String, f32)>> {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_splade"))
            .args(["search", "--k", "10", "--index"])
            .arg(dir)
            .args(input)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut by_query: Vec<Vec<(String, f32)>> = vec![Vec::new(); queries.len()];
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let q: usize = f[0][1..].parse().unwrap();
            by_query[q].push((f[2].to_string(), f[4].parse().unwrap()));
        }
        by_query
    };
    let (texts_arg, vectors_arg) = (
        [
            "--queries",
            queries_file.to_str().unwrap(),
            "--model",
            "splade-tiny",
        ],
        ["--query-vectors", vectors_file.to_str().unwrap()],
    );

    let server = Server::start(&["--index", index_dir.to_str().unwrap()]);
    let a = agent();
    let search = |body: Value| {
        let r = post(&a, &server.url("/search"), &body);
        assert_eq!(r.status, 200, "{body}: {}", r.body);
        r.json()
    };
    // Query vectors: the same hits and scores as `splade search --query-vectors`, bit for bit.
    let expected = cli_run(&index_dir, &vectors_arg);
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(
            &hits_of(&search(json!({"query": vector_json(i), "k": 10}))),
            want,
            "query {i}"
        );
    }
    let batch: Vec<Value> = (0..8).map(vector_json).collect();
    let results = search(json!({"queries": batch, "k": 10, "explain": 2}))["results"].clone();
    for (i, result) in results.as_array().unwrap().iter().enumerate() {
        assert_eq!(hits_of(result), expected[i]);
        assert_eq!(
            result["hits"][0]["explain"].as_array().unwrap().len(),
            2,
            "{result}"
        );
    }
    // Query texts: the same ranking as `splade search --queries` (the query vectors agree to
    // float rounding: the server encodes each query in whatever batch it joins).
    let expected_texts = cli_run(&index_dir, &texts_arg);
    for (i, q) in queries.iter().enumerate() {
        assert_same_ranking(
            &hits_of(&search(json!({"query": q, "k": 10}))),
            &expected_texts[i],
            q,
        );
    }
    // Approximate search is accepted and returns at most k hits.
    let approx =
        search(json!({"query": queries[0], "k": 5, "approx": {"alpha": 0.5, "beta": 0.8}}));
    assert!(hits_of(&approx).len() <= 5);
    for bad in [
        json!({"query": "x", "k": 0}),
        json!({"query": "x", "queries": ["y"]}),
        json!({"query": "x", "approx": {"alpha": 2}}),
        json!({"query": {"indices": [2, 1], "values": [1, 1]}}),
        json!({"query": {"indices": [1], "values": [-1]}}),
        json!({"query": "x", "kk": 1}),
    ] {
        let r = post(&a, &server.url("/search"), &bad);
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
    }

    // Upserts (texts and vectors) and deletes: visible when acknowledged, and the HTTP
    // results equal `splade search` on the committed index.
    let v = qvecs.row(0).unwrap();
    let new_docs = json!([
        {"id": "new-1", "text": queries[0]},
        {"id": docs[0].0, "text": "replaced text about rain and clouds"},
        {"id": "vec-1", "indices": v.indices(), "values": v.values()},
    ]);
    let r = post(&a, &server.url("/documents"), &new_docs);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["upserted"], 3);
    let body = json!({"ids": [docs[1].0, "no-such-id"]}).to_string();
    let r = call_with(
        &a,
        "DELETE",
        &server.url("/documents"),
        Some(body.as_bytes()),
        &[],
    );
    assert_eq!(r.json()["deleted"], 1, "{}", r.body);
    let ids: Vec<String> = hits_of(&search(json!({"query": vector_json(0), "k": 10})))
        .into_iter()
        .map(|h| h.0)
        .collect();
    assert!(
        ids.contains(&"vec-1".to_string()) && ids.contains(&"new-1".to_string()),
        "{ids:?}"
    );
    for (bad, status) in [
        (json!([]), 400),
        (json!([{"id": "x"}]), 422),
        (json!([{"id": "a\tb", "text": "t"}]), 422),
        (
            json!([{"id": "x", "indices": [99999999], "values": [1.0]}]),
            422,
        ),
        (json!({"ids": []}), 422),
    ] {
        let r = post(&a, &server.url("/documents"), &bad);
        assert_eq!(r.status, status, "{bad}: {}", r.body);
    }
    // The server holds the write lock; compare with the CLI on a copy of the index.
    let copy = tmp.path().join("copy");
    copy_dir(&index_dir, &copy);
    let _ = std::fs::remove_file(copy.join("write.lock"));
    let now = cli_run(&copy, &vectors_arg);
    let served: Vec<Vec<(String, f32)>> = (0..queries.len())
        .map(|i| hits_of(&search(json!({"query": vector_json(i)}))))
        .collect();
    assert_eq!(served, now);
    let now_texts = cli_run(&copy, &texts_arg);
    for (i, q) in queries.iter().enumerate() {
        assert_same_ranking(&hits_of(&search(json!({"query": q}))), &now_texts[i], q);
    }
}

/// The same ranking up to float rounding: scores rank by rank within 1e-5 relative, and the
/// same ids except that documents whose scores are that close may trade places.
fn assert_same_ranking(got: &[(String, f32)], expected: &[(String, f32)], what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}: {got:?} vs {expected:?}");
    let close = |x: f32, y: f32| (x - y).abs() <= 1e-5 * x.abs().max(y.abs()).max(1.0);
    for (g, e) in got.iter().zip(expected) {
        assert!(close(g.1, e.1), "{what}: {got:?} vs {expected:?}");
        if g.0 != e.0 {
            // Allowed only among near-equal scores.
            let tied = expected.iter().any(|o| o.0 == g.0 && close(o.1, e.1));
            assert!(tied, "{what}: {got:?} vs {expected:?}");
        }
    }
}

#[test]
fn acknowledged_upserts_survive_kill_9_and_group_commit_batches_single_document_clients() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    let server = Server::start(&["--index", dir.to_str().unwrap()]);
    let acked = Mutex::new(Vec::<String>::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for client in 0..16 {
            let (a, url, acked, stop) = (agent(), server.url("/documents"), &acked, &stop);
            scope.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let id = format!("c{client}-{n}");
                    let body = json!([{"id": id, "indices": [client, 100 + n % 50], "values": [1.0, 0.5]}]);
                    let result = a.post(&url).set("content-type", "application/json").send_string(&body.to_string());
                    match result {
                        Ok(r) if r.status() == 200 => acked.lock().unwrap().push(id),
                        _ => break, // the server was killed mid-request: not acknowledged
                    }
                    n += 1;
                }
            });
        }
        std::thread::sleep(Duration::from_millis(2500));
        // Kill while clients are writing.
        let pid = server.pid();
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::SeqCst);
    });
    drop(server);
    let acked = acked.into_inner().unwrap();
    assert!(
        acked.len() > 50,
        "only {} upserts acknowledged in 2.5 s",
        acked.len()
    );
    // The index opens with every checksum verified; every acknowledged document is there.
    let index = splade_index::Index::open(&dir).expect("a complete index after kill -9");
    let missing: Vec<&String> = acked
        .iter()
        .filter(|id| index.doc_number(id).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged documents lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    // Group commit: far fewer commits (generations) than acknowledged single-document upserts.
    assert!(
        (index.generation() as usize) < acked.len() / 2,
        "{} commits for {} single-document upserts",
        index.generation(),
        acked.len()
    );
    // A restarted server serves them.
    let server = Server::start(&["--index", dir.to_str().unwrap()]);
    let a = agent();
    let r = post(
        &a,
        &server.url("/search"),
        &json!({"query": {"indices": [3], "values": [1.0]}, "k": 100000}),
    );
    let found: HashSet<String> = hits_of(&r.json()).into_iter().map(|h| h.0).collect();
    for id in acked.iter().filter(|id| id.starts_with("c3-")) {
        assert!(
            found.contains(id),
            "{id} acknowledged but not searchable after restart"
        );
    }
}

#[test]
fn searches_during_a_stream_of_updates_see_whole_commits_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    let server = Server::start(&["--index", dir.to_str().unwrap()]);
    const K: usize = 40;
    let stop = AtomicBool::new(false);
    let seen_states = Mutex::new(HashMap::<String, usize>::new());
    let errors = Mutex::new(Vec::<String>::new());
    std::thread::scope(|scope| {
        // The writer: version v sets all K documents to weight v on term 1 (one request),
        // every fourth version deletes them all first (another request).
        scope.spawn(|| {
            let a = agent();
            for v in 1..=60 {
                if v % 4 == 0 {
                    let ids: Vec<String> = (0..K).map(|i| format!("d{i}")).collect();
                    let r = call_with(&a, "DELETE", &server.url("/documents"), Some(json!({"ids": ids}).to_string().as_bytes()), &[]);
                    assert_eq!(r.status, 200, "{}", r.body);
                }
                let docs: Vec<Value> = (0..K).map(|i| json!({"id": format!("d{i}"), "indices": [1, 2 + i], "values": [v as f32, 1.0]})).collect();
                let r = post(&a, &server.url("/documents"), &Value::Array(docs));
                assert_eq!(r.status, 200, "{}", r.body);
            }
            stop.store(true, Ordering::SeqCst);
        });
        for _ in 0..4 {
            scope.spawn(|| {
                let a = agent();
                while !stop.load(Ordering::SeqCst) {
                    let r = post(
                        &a,
                        &server.url("/search"),
                        &json!({"query": {"indices": [1], "values": [1.0]}, "k": 1000}),
                    );
                    let hits = hits_of(&r.json());
                    let scores: HashSet<u32> = hits.iter().map(|h| h.1.to_bits()).collect();
                    let state = if hits.is_empty() {
                        "empty".to_string()
                    } else {
                        format!("{} x {:?}", hits.len(), scores)
                    };
                    if !(hits.is_empty() || (hits.len() == K && scores.len() == 1)) {
                        errors.lock().unwrap().push(state.clone());
                    }
                    *seen_states.lock().unwrap().entry(state).or_default() += 1;
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap();
    assert!(
        errors.is_empty(),
        "partial states seen: {:?}",
        &errors[..errors.len().min(5)]
    );
    assert!(
        seen_states.into_inner().unwrap().len() > 3,
        "the searches saw too few states to mean anything"
    );
}

#[test]
fn sigterm_drains_requests_in_flight_commits_and_releases_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    let server = Server::start(&["--index", dir.to_str().unwrap()]);
    let (queries, docs) = scifact(0, 64);
    let _ = queries;
    let url = server.url("/documents");
    let started = Instant::now();
    let answers = std::thread::scope(|scope| {
        let handles: Vec<_> = docs
            .chunks(8)
            .map(|chunk| {
                let url = url.clone();
                let body: Vec<Value> = chunk
                    .iter()
                    .map(|(id, t)| json!({"id": id, "text": t}))
                    .collect();
                scope.spawn(move || post(&agent(), &url, &Value::Array(body)).status)
            })
            .collect();
        std::thread::sleep(Duration::from_millis(150));
        let status = server.signal_and_wait(libc::SIGTERM);
        assert!(status.success(), "exit status after SIGTERM: {status:?}");
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<u16>>()
    });
    assert!(started.elapsed() < Duration::from_secs(120));
    // Requests accepted before the signal were answered 200 and are in the index; none
    // was cut off with a half-written state.
    let index = splade_index::Index::open(&dir).unwrap();
    let accepted = answers.iter().filter(|&&s| s == 200).count();
    assert_eq!(index.len(), accepted * 8, "answers {answers:?}");
    // The write lock was released.
    splade_index::IndexWriter::open(&dir).expect("the index is free after shutdown");
}
