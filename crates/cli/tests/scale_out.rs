//! `splade export` / `search --engine` / `eval ir --engine` end to end on real data
//! (SciFact, the DL19 subset; splade-tiny), against a real Milvus (milvus-lite, started on
//! 127.0.0.1 by the test) and Qdrant's own engine (qdrant-edge-py): the engines' top 10
//! must equal our exact index for every query and the IR metrics must be equal. The corpus
//! and queries are encoded once per test binary (`splade encode`) and shared by the tests.
//! SCALE.md reports the numbers these tests print (run with `--nocapture`).

#[path = "../../../tests/support/engine_servers.rs"]
mod engine_servers;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

use engine_servers::{qdrant_edge_python, MilvusLite};
use serde_json::Value;

fn splade(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_splade"))
        .args(args)
        .output()
        .expect("run splade")
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(name)
}

/// A dataset encoded with splade-tiny: document and query vectors (JSONL with ids).
struct Encoded {
    name: &'static str,
    dir: PathBuf,
    docs: PathBuf,
    queries: PathBuf,
    index: PathBuf,
}

impl Encoded {
    fn corpus(&self) -> PathBuf {
        data(self.name).join("corpus.jsonl")
    }
    fn query_texts(&self) -> PathBuf {
        data(self.name).join("queries.jsonl")
    }
    fn qrels(&self) -> PathBuf {
        data(self.name).join("qrels/test.tsv")
    }
}

/// Encodes `name` once per test binary: documents as the evaluator sees them (title and
/// text joined, as `read_texts` joins them) with the document route, queries with the query
/// route; and builds our exact index of the documents.
fn encoded(name: &'static str) -> &'static Encoded {
    static SETS: OnceLock<std::sync::Mutex<HashMap<&'static str, &'static Encoded>>> =
        OnceLock::new();
    let sets = SETS.get_or_init(Default::default);
    let mut sets = sets.lock().unwrap();
    if let Some(e) = sets.get(name) {
        return e;
    }
    // Under cargo's per-target temporary directory, replaced on every run.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("scale_out")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Title and text joined as the evaluator reads BEIR corpora ("{title} {text}").
    let joined = dir.join("corpus-joined.jsonl");
    let mut lines = String::new();
    for line in std::fs::read_to_string(data(name).join("corpus.jsonl"))
        .unwrap()
        .lines()
    {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).unwrap();
        let title = v["title"].as_str().unwrap_or("");
        let text = v["text"].as_str().unwrap_or("");
        let joined = if title.is_empty() {
            text.to_string()
        } else {
            format!("{title} {text}")
        };
        lines.push_str(&serde_json::json!({"_id": v["_id"], "text": joined}).to_string());
        lines.push('\n');
    }
    std::fs::write(&joined, lines).unwrap();
    let start = Instant::now();
    let docs = dir.join("docs.jsonl");
    let out = ok(
        splade(&[
            "encode",
            "--document",
            "--input",
            joined.to_str().unwrap(),
            "--jsonl-field",
            "text",
            "--id-field",
            "_id",
        ]),
        "encode documents",
    );
    std::fs::write(&docs, out).unwrap();
    let queries = dir.join("queries.jsonl");
    let out = ok(
        splade(&[
            "encode",
            "--query",
            "--input",
            data(name).join("queries.jsonl").to_str().unwrap(),
            "--jsonl-field",
            "text",
            "--id-field",
            "_id",
        ]),
        "encode queries",
    );
    std::fs::write(&queries, out).unwrap();
    let index = dir.join("index");
    ok(
        splade(&[
            "index",
            "build",
            "--out",
            index.to_str().unwrap(),
            "--vectors",
            docs.to_str().unwrap(),
        ]),
        "index build",
    );
    eprintln!(
        "{name}: encoded and indexed in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let e: &'static Encoded = Box::leak(Box::new(Encoded {
        name,
        dir,
        docs,
        queries,
        index,
    }));
    sets.insert(name, e);
    e
}

/// A TREC run: per query id, the (doc id, score) list in rank order.
fn parse_run(run: &str) -> BTreeMap<String, Vec<(String, f32)>> {
    let mut out: BTreeMap<String, Vec<(String, f32)>> = BTreeMap::new();
    for line in run.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 6, "{line}");
        out.entry(f[0].to_string())
            .or_default()
            .push((f[2].to_string(), f[4].parse().unwrap()));
    }
    out
}

/// Compares an engine's lists with ours: returns (queries with the identical list,
/// queries whose lists differ only in the order of tied scores, largest relative score
/// difference); panics on any other difference.
fn compare(
    what: &str,
    ours: &BTreeMap<String, Vec<(String, f32)>>,
    theirs: &BTreeMap<String, Vec<(String, f32)>>,
    rel: f32,
) -> (usize, usize, f32) {
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "{what}: different queries answered"
    );
    let close = |a: f32, b: f32| (a - b).abs() <= rel * a.abs().max(b.abs()).max(f32::MIN_POSITIVE);
    let (mut identical, mut tie_order, mut max_rel) = (0, 0, 0f32);
    for (qid, o) in ours {
        let t = &theirs[qid];
        assert_eq!(o.len(), t.len(), "{what}: query {qid}: {o:?} vs {t:?}");
        let mut same = true;
        for (i, ((oid, os), (tid, ts))) in o.iter().zip(t).enumerate() {
            let d = (os - ts).abs() / os.abs().max(ts.abs()).max(f32::MIN_POSITIVE);
            max_rel = max_rel.max(d);
            assert!(
                close(*os, *ts),
                "{what}: query {qid} rank {}: score {os} vs {ts}",
                i + 1
            );
            if oid != tid {
                same = false;
                // Only among tied scores: the engine's document must be one of ours with a
                // score within `rel` of this rank's (at the list's end, it may be a document
                // tied with our last one that our list left out).
                let tied = o.iter().any(|(id, s)| id == tid && close(*s, *os));
                let boundary = close(*os, o.last().unwrap().1);
                assert!(
                    tied || boundary,
                    "{what}: query {qid} rank {}: {tid} ({ts}) where ours has {oid} ({os})",
                    i + 1
                );
            }
        }
        if same {
            identical += 1;
        } else {
            tie_order += 1;
        }
    }
    (identical, tie_order, max_rel)
}

fn local_run(e: &Encoded, k: &str) -> BTreeMap<String, Vec<(String, f32)>> {
    parse_run(&ok(
        splade(&[
            "search",
            "--index",
            e.index.to_str().unwrap(),
            "--query-vectors",
            e.queries.to_str().unwrap(),
            "--k",
            k,
        ]),
        "search --index",
    ))
}

fn eval_ir(e: &Encoded, engine: Option<&str>, output: &Path) -> BTreeMap<String, Value> {
    let mut args = vec![
        "eval".to_string(),
        "ir".into(),
        "--corpus".into(),
        e.corpus().display().to_string(),
        "--queries".into(),
        e.query_texts().display().to_string(),
        "--qrels".into(),
        e.qrels().display().to_string(),
        "--corpus-vectors".into(),
        e.docs.display().to_string(),
        "--query-vectors".into(),
        e.queries.display().to_string(),
        "--output".into(),
        output.display().to_string(),
    ];
    if let Some(address) = engine {
        args.extend(["--engine".to_string(), address.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(splade(&args), "eval ir");
    serde_json::from_str(&std::fs::read_to_string(output).unwrap()).unwrap()
}

#[test]
fn milvus_top_10_and_ir_metrics_equal_our_exact_index_on_scifact_and_dl19() {
    let tmp = tempfile::tempdir().unwrap();
    let server = MilvusLite::start(&tmp.path().join("milvus"));
    for (name, collection) in [("scifact", "scifact"), ("mini-msmarco-dl19", "dl19")] {
        let e = encoded(name);
        let start = Instant::now();
        let out = splade(&[
            "export",
            "milvus",
            "--uri",
            &server.uri(),
            "--collection",
            collection,
            "--index",
            e.index.to_str().unwrap(),
            "--batch-size",
            "1000",
        ]);
        ok_stderr(&out, "export milvus");
        let export_s = start.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let docs = std::fs::read_to_string(&e.docs).unwrap().lines().count();
        assert!(
            stderr.contains(&format!("exported {docs} documents")),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("{docs} documents there now")),
            "{stderr}"
        );

        let address = server.address(collection);
        let ours = local_run(e, "10");
        let theirs = parse_run(&ok(
            splade(&[
                "search",
                "--engine",
                &address,
                "--query-vectors",
                e.queries.to_str().unwrap(),
                "--k",
                "10",
            ]),
            "search --engine",
        ));
        let (identical, tie_order, max_rel) =
            compare(&format!("milvus {name}"), &ours, &theirs, 1e-5);

        let local = eval_ir(e, None, &e.dir.join("eval-local.json"));
        let milvus = eval_ir(e, Some(&address), &e.dir.join("eval-milvus.json"));
        let differing: Vec<&String> = local.keys().filter(|k| local[*k] != milvus[*k]).collect();
        let metric_keys = local
            .keys()
            .filter(|k| {
                !k.contains("active_dims") && !k.contains("sparsity") && !k.contains("flops")
            })
            .count();
        assert_eq!(local.len(), milvus.len());
        assert!(
            differing.is_empty(),
            "{name}: eval ir --engine differs on {differing:?}"
        );
        eprintln!(
            "SCALE {name}: {docs} documents exported in {export_s:.2} s ({:.0} documents/s, batch 1000); {} queries: {identical} identical top-10 lists, {tie_order} differing only in the order of tied scores, largest relative score difference {max_rel:.2e}; eval ir --engine equals eval ir on all {} keys ({metric_keys} ranking metrics); ndcg@10 {}",
            docs as f64 / export_s,
            ours.len(),
            local.len(),
            local.iter().find(|(k, _)| k.ends_with("ndcg@10")).map(|(_, v)| v.to_string()).unwrap_or_default()
        );
    }
}

fn ok_stderr(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn qdrant_edge_top_10_equals_our_exact_index_on_scifact() {
    let python = qdrant_edge_python();
    let e = encoded("scifact");
    let tmp = tempfile::tempdir().unwrap();
    let points = tmp.path().join("points.jsonl");
    ok(
        splade(&[
            "export",
            "qdrant",
            "--out",
            points.to_str().unwrap(),
            "--vectors",
            e.docs.to_str().unwrap(),
        ]),
        "export qdrant --out",
    );
    let hits = tmp.path().join("hits.jsonl");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/support/qdrant_edge_search.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&points)
        .arg(&e.queries)
        .arg("splade")
        .arg("10")
        .arg(tmp.path().join("shard"))
        .arg(&hits)
        .output()
        .unwrap();
    let summary = ok(out, "qdrant-edge search");
    let docs = std::fs::read_to_string(&e.docs).unwrap().lines().count();
    let summary: Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["points_count"].as_u64(), Some(docs as u64));
    let mut theirs: BTreeMap<String, Vec<(String, f32)>> = BTreeMap::new();
    for line in std::fs::read_to_string(&hits).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let list: Vec<(String, f32)> = v["hits"]
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
        if !list.is_empty() {
            theirs.insert(v["id"].as_str().unwrap().to_string(), list);
        }
    }
    let ours = local_run(e, "10");
    let (identical, tie_order, max_rel) = compare("qdrant-edge scifact", &ours, &theirs, 1e-5);
    eprintln!(
        "SCALE qdrant-edge scifact: {docs} points; {} queries: {identical} identical top-10 lists, {tie_order} differing only in the order of tied scores, largest relative score difference {max_rel:.2e}",
        ours.len()
    );
}

#[test]
fn engine_commands_fail_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let vectors = tmp.path().join("v.jsonl");
    std::fs::write(&vectors, "{\"id\":\"a\",\"indices\":[1],\"values\":[1.0]}\n{\"id\":\"a\",\"indices\":[2],\"values\":[1.0]}\n").unwrap();
    // A duplicate id is refused before any server is contacted.
    let out = splade(&[
        "export",
        "milvus",
        "--uri",
        "http://127.0.0.1:9",
        "--collection",
        "c",
        "--vectors",
        vectors.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("repeats the id \"a\""), "{err}");
    // A bad vector line names the file and line.
    std::fs::write(
        &vectors,
        "{\"id\":\"a\",\"indices\":[2,1],\"values\":[1.0,1.0]}\n",
    )
    .unwrap();
    let out = splade(&[
        "export",
        "qdrant",
        "--out",
        tmp.path().join("p.jsonl").to_str().unwrap(),
        "--vectors",
        vectors.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("v.jsonl") && err.contains("line 1"),
        "{err}"
    );
    assert!(!tmp.path().join("p.jsonl").exists());
    // No server: the error names the server.
    std::fs::write(
        &vectors,
        "{\"id\":\"a\",\"indices\":[1],\"values\":[1.0]}\n",
    )
    .unwrap();
    let out = splade(&[
        "export",
        "milvus",
        "--uri",
        "http://127.0.0.1:9",
        "--collection",
        "c",
        "--vectors",
        vectors.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("Milvus at http://127.0.0.1:9"),
        "{err}"
    );
    let out = splade(&[
        "search",
        "--engine",
        "milvus://nohost/c",
        "--query-vectors",
        vectors.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("milvus://nohost/c"),
        "{err}"
    );
    let out = splade(&[
        "search",
        "--engine",
        "milvus://127.0.0.1:9/c",
        "--index",
        "x",
        "--query-vectors",
        "q",
    ]);
    assert!(!out.status.success());
}

/// The splade-tiny vocabulary (token id -> token), as `splade export` reads it.
fn vocabulary() -> Vec<String> {
    let encoder = splade_encoder::SparseEncoder::from_pretrained("splade-tiny").unwrap();
    (0..encoder.dim() as u32)
        .map(|id| encoder.tokenizer().id_to_token(id).unwrap_or_default())
        .collect()
}

fn read_vectors(path: &Path) -> Vec<(String, splade_sparse::SparseVector)> {
    splade_index::readers::read_jsonl(path, None)
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d.vector))
        .collect()
}

#[test]
fn opensearch_and_elasticsearch_token_maps_round_trip_on_scifact() {
    use splade_engines::lucene::{lucene_feature_value, TokenMap};
    let e = encoded("scifact");
    let tmp = tempfile::tempdir().unwrap();
    let vocabulary = vocabulary();
    let tokens = TokenMap::from_vocabulary(&vocabulary);
    let dotted = vocabulary.iter().filter(|t| t.contains('.')).count();
    let pieces = vocabulary.iter().filter(|t| t.starts_with("##")).count();
    let docs = read_vectors(&e.docs);
    let queries = read_vectors(&e.queries);

    for (engine, extra) in [
        ("opensearch", None),
        ("elasticsearch", None),
        ("opensearch", Some("--sparse-vector-field")),
    ] {
        let bulk = tmp.path().join("bulk.ndjson");
        let mapping = tmp.path().join("mapping.json");
        let mut args = vec![
            "export",
            engine,
            "--out",
            bulk.to_str().unwrap(),
            "--mapping-out",
            mapping.to_str().unwrap(),
            "--index-name",
            "scifact",
            "--vectors",
            e.docs.to_str().unwrap(),
        ];
        args.extend(extra);
        ok(splade(&args), "export opensearch/elasticsearch");
        let lines: Vec<Value> = std::fs::read_to_string(&bulk)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2 * docs.len());
        let (mut weights, mut above_ceiling) = (0usize, 0usize);
        for (pair, (id, vector)) in lines.chunks(2).zip(&docs) {
            assert_eq!(pair[0]["index"]["_id"], Value::String(id.clone()));
            let map = pair[1]["splade"].as_object().unwrap();
            assert!(map.keys().all(|k| !k.contains('.')));
            let back = if extra.is_some() {
                let mut pairs: Vec<(u32, f32)> = map
                    .iter()
                    .map(|(k, w)| (k.parse().unwrap(), w.as_f64().unwrap() as f32))
                    .collect();
                pairs.sort_by_key(|p| p.0);
                assert!(
                    pairs.iter().all(|p| p.0 < 32_768),
                    "a token id beyond 15 bits"
                );
                let (i, v) = pairs.into_iter().unzip();
                splade_sparse::SparseVector::new(i, v).unwrap()
            } else {
                tokens.decode(map).unwrap()
            };
            assert_eq!(
                &back, vector,
                "document {id}: the token map does not decode to our vector"
            );
            weights += back.nnz();
            above_ceiling += back.values().iter().filter(|&&w| w > 3.0).count();
        }
        eprintln!(
            "SCALE {engine}{}: {} documents round-tripped exactly ({weights} weights; {above_ceiling} above seismic's default ingest ceiling 3)",
            extra.unwrap_or(""),
            docs.len()
        );
    }

    // The query bodies of `search --emit-query` decode to our query vectors.
    let msearch = ok(
        splade(&[
            "search",
            "--emit-query",
            "opensearch",
            "--model",
            "splade-tiny",
            "--queries",
            e.query_texts().to_str().unwrap(),
            "--index-name",
            "scifact",
        ]),
        "search --emit-query",
    );
    let bodies: Vec<Value> = msearch
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(bodies.len(), 2 * queries.len());
    for (pair, (qid, vector)) in bodies.chunks(2).zip(&queries) {
        assert_eq!(pair[0], serde_json::json!({"index": "scifact"}));
        let map = pair[1]["query"]["neural_sparse"]["splade"]["query_tokens"]
            .as_object()
            .unwrap();
        assert_eq!(&tokens.decode(map).unwrap(), vector, "query {qid}");
    }

    // What Lucene's 9-bit storage of document weights does to the top 10 (rank_features,
    // Elasticsearch sparse_vector): exact search over the stored values vs ours.
    let stored: Vec<splade_sparse::SparseVector> = docs
        .iter()
        .map(|(_, v)| {
            let w: Vec<f32> = v
                .values()
                .iter()
                .map(|&w| lucene_feature_value(w))
                .collect();
            splade_sparse::SparseVector::new(v.indices().to_vec(), w).unwrap()
        })
        .collect();
    let (mut same_lists, mut overlap) = (0usize, 0usize);
    for (_, q) in &queries {
        let ours =
            splade_index::brute_force_top_k(docs.iter().map(|(_, v)| v.view()), q.view(), 10);
        let theirs = splade_index::brute_force_top_k(stored.iter().map(|v| v.view()), q.view(), 10);
        let o: Vec<u32> = ours.iter().map(|h| h.doc).collect();
        let t: Vec<u32> = theirs.iter().map(|h| h.doc).collect();
        same_lists += usize::from(o == t);
        overlap += o.iter().filter(|d| t.contains(d)).count();
    }
    eprintln!(
        "SCALE lucene 9-bit scifact: vocabulary {} tokens ({dotted} with a dot, {pieces} ## pieces, {} empty or repeated); top 10 over the stored weights: {same_lists}/{} identical lists, mean overlap {:.3}",
        vocabulary.len(),
        tokens.renamed(),
        queries.len(),
        overlap as f64 / (10 * queries.len()) as f64
    );
    assert!(overlap as f64 / (10 * queries.len()) as f64 > 0.95);
}
