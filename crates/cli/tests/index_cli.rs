//! `splade index` and `splade search` end to end, checked against the splade-index library.

use std::path::{Path, PathBuf};
use std::process::Output;

use splade_encoder::{EncodeOptions, SparseEncoder, SparseVector};
use splade_index::readers::{write_seismic, Document};
use splade_index::{brute_force_top_k, Index};

#[path = "common/run.rs"]
mod run;
use run::{ok, splade};

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/encoder/models/bert-tied-v6")
}

fn failure(out: Output) -> String {
    assert!(!out.status.success(), "expected failure");
    String::from_utf8(out.stderr).unwrap()
}

/// Deterministic documents over 40 dimensions, with repeated vectors (exact ties).
fn documents() -> Vec<Document> {
    (0..60u32)
        .map(|d| {
            let base = if d % 10 == 9 { d - 9 } else { d };
            let mut pairs: Vec<(u32, f32)> = (0..(base % 6 + 1))
                .map(|j| {
                    (
                        (base * 7 + j * 11) % 40,
                        ((base + 3 * j) % 7) as f32 * 0.25 + 0.1,
                    )
                })
                .collect();
            pairs.sort_by_key(|p| p.0);
            pairs.dedup_by_key(|p| p.0);
            Document {
                id: format!("doc{d}"),
                vector: SparseVector::from_pairs(pairs).unwrap(),
            }
        })
        .collect()
}

fn queries() -> Vec<Document> {
    (0..5u32)
        .map(|q| Document {
            id: format!("q{q}"),
            vector: SparseVector::from_pairs(
                (0..4)
                    .map(|j| ((q * 5 + j * 9) % 40, 1.0 + j as f32))
                    .collect(),
            )
            .unwrap(),
        })
        .collect()
}

fn write_jsonl(path: &Path, docs: &[Document]) {
    let lines: Vec<String> = docs
        .iter()
        .map(|d| {
            serde_json::json!({"id": d.id, "indices": d.vector.indices(), "values": d.vector.values()})
                .to_string()
        })
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn vectors_build_and_search_match_brute_force() {
    let tmp = tempfile::tempdir().unwrap();
    let (vectors, qpath) = (tmp.path().join("docs.jsonl"), tmp.path().join("q.jsonl"));
    write_jsonl(&vectors, &documents());
    write_jsonl(&qpath, &queries());
    let dir = tmp.path().join("idx");
    let d = dir.to_str().unwrap();
    ok(splade(&[
        "index",
        "build",
        "--out",
        d,
        "--vectors",
        vectors.to_str().unwrap(),
        "--block-size",
        "4",
    ]));
    let q = qpath.to_str().unwrap();
    let search = |extra: &[&str]| {
        let base = ["search", "--index", d, "--query-vectors", q, "--k", "7"];
        ok(splade(&[&base[..], extra].concat()))
    };
    let run = search(&["--exact"]);
    let docs = documents();
    let mut expected = String::new();
    for q in queries() {
        let hits = brute_force_top_k(docs.iter().map(|d| d.vector.view()), q.vector.view(), 7);
        for (rank, h) in hits.iter().enumerate() {
            expected += &format!("{} Q0 doc{} {} {} splade\n", q.id, h.doc, rank + 1, h.score);
        }
    }
    assert_eq!(run, expected);
    let brute = search(&["--brute-force", "--run-tag", "bf"]);
    assert_eq!(brute, expected.replace(" splade\n", " bf\n"));
    // Read into memory instead of mapped: the same run.
    assert_eq!(search(&["--in-memory"]), expected);

    // The Seismic binary input builds a byte-identical index.
    let (bin, ids) = (tmp.path().join("docs.bin"), tmp.path().join("docs.ids"));
    write_seismic(&bin, &ids, &docs).unwrap();
    let dir2 = tmp.path().join("idx2");
    ok(splade(&[
        "index",
        "build",
        "--out",
        dir2.to_str().unwrap(),
        "--seismic",
        bin.to_str().unwrap(),
        "--ids",
        ids.to_str().unwrap(),
        "--block-size",
        "4",
    ]));
    let (a, b) = (Index::open(&dir).unwrap(), Index::open(&dir2).unwrap());
    assert_eq!(a.manifest(), b.manifest());
    let info = ok(splade(&["index", "info", "--index", d]));
    assert!(info.contains("\"format\": \"splade-index\""), "{info}");

    // Approximate search with alpha = beta = 1 is the exact search; other knobs run and
    // are checked; --no-reorder builds an index with the same results.
    let search = |extra: &[&str]| {
        let mut a = vec![
            "search",
            "--index",
            d,
            "--query-vectors",
            qpath.to_str().unwrap(),
            "--k",
            "7",
        ];
        a.extend_from_slice(extra);
        splade(&a)
    };
    assert_eq!(
        ok(search(&["--approx-alpha", "1", "--approx-beta", "1"])),
        expected
    );
    let approx = ok(search(&["--approx-alpha", "0.5", "--approx-beta", "0.3"]));
    assert!(approx.lines().count() <= expected.lines().count());
    assert!(failure(search(&["--approx-alpha", "1.5"])).contains("alpha"));
    assert!(failure(search(&["--approx-beta", "0.5", "--exact"])).contains("cannot be used with"));
    let dir3 = tmp.path().join("idx3");
    ok(splade(&[
        "index",
        "build",
        "--out",
        dir3.to_str().unwrap(),
        "--vectors",
        vectors.to_str().unwrap(),
        "--block-size",
        "4",
        "--no-reorder",
    ]));
    let plain = ok(splade(&[
        "search",
        "--index",
        dir3.to_str().unwrap(),
        "--query-vectors",
        qpath.to_str().unwrap(),
        "--k",
        "7",
        "--exact",
    ]));
    assert_eq!(plain, expected);
}

#[test]
fn model_build_and_search_agree_with_the_library() {
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
    let qfile = tmp.path().join("queries.jsonl");
    std::fs::write(
        &qfile,
        "{\"_id\": \"q1\", \"text\": \"sleeping cats\"}\n{\"_id\": \"q2\", \"text\": \"fast search\"}\n",
    )
    .unwrap();
    let dir = tmp.path().join("idx");
    let (d, m) = (dir.to_str().unwrap(), model());
    let m = m.to_str().unwrap();
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
    assert_eq!(index.len(), 3);
    assert_eq!(index.id(1), Some("d2"));
    let encoder = SparseEncoder::from_pretrained(m).unwrap();
    // The stored vectors are the model's document vectors (title + " " + text).
    let texts = [
        "Sparse retrieval inverted indexes make search fast",
        "cats sleep all day long",
        "Neural nets transformers encode text into vectors",
    ];
    let docs = encoder
        .encode_document(&texts, &EncodeOptions::default())
        .unwrap();
    for (i, row) in docs.rows().enumerate() {
        let stored = index.document(i as u32).unwrap();
        assert_eq!(stored.indices(), row.indices());
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
        "2",
        "--exact",
    ]));
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
    assert_eq!(run, expected);

    let table = ok(splade(&[
        "search",
        "--index",
        d,
        "--model",
        m,
        "sleeping cats",
        "--k",
        "3",
        "--explain",
        "2",
    ]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].contains("rank") && lines[0].contains("score"),
        "{table}"
    );
    assert_eq!(lines.len(), 1 + 3 * 3, "{table}");
    assert!(lines[1].trim_start().starts_with("1 "), "{table}");
    assert!(
        lines[2].contains(" x ") && lines[2].contains(" = "),
        "{table}"
    );

    // Plain text corpora use line numbers as ids.
    let plain = tmp.path().join("corpus.txt");
    std::fs::write(&plain, "first document\nsecond one\n").unwrap();
    let dir2 = tmp.path().join("idx2");
    ok(splade(&[
        "index",
        "build",
        "--out",
        dir2.to_str().unwrap(),
        "--corpus",
        plain.to_str().unwrap(),
        "--model",
        m,
    ]));
    let plain_index = Index::open(&dir2).unwrap();
    assert_eq!(
        (plain_index.id(0), plain_index.id(1)),
        (Some("1"), Some("2"))
    );
}

#[test]
fn errors_name_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"id\": \"a\", \"indices\": [1], \"values\": [1.0]}\n{\"id\": \"b\", \"indices\": [1], \"values\": [-2.0]}\n",
    )
    .unwrap();
    let dir = tmp.path().join("idx");
    let d = dir.to_str().unwrap();
    let err = failure(splade(&[
        "index",
        "build",
        "--out",
        d,
        "--vectors",
        bad.to_str().unwrap(),
    ]));
    assert!(
        err.contains("bad.jsonl") && err.contains("line 2") && err.contains("values"),
        "{err}"
    );
    let good = tmp.path().join("good.jsonl");
    write_jsonl(&good, &documents());
    ok(splade(&[
        "index",
        "build",
        "--out",
        d,
        "--vectors",
        good.to_str().unwrap(),
    ]));
    let terms = dir.join("forward.terms");
    let mut bytes = std::fs::read(&terms).unwrap();
    bytes[3] ^= 0x40;
    std::fs::write(&terms, bytes).unwrap();
    let err = failure(splade(&[
        "search",
        "--index",
        d,
        "--query-vectors",
        good.to_str().unwrap(),
    ]));
    assert!(
        err.contains("forward.terms") && err.contains("checksum"),
        "{err}"
    );
    let err = failure(splade(&["search", "--index", d]));
    assert!(err.contains("--query-vectors"), "{err}");
}

/// Brute force over `live` (documents in index order): a TREC run with their ids.
fn expected_run(live: &[Document], queries: &[Document], k: usize) -> String {
    let mut run = String::new();
    for q in queries {
        let hits = brute_force_top_k(live.iter().map(|d| d.vector.view()), q.vector.view(), k);
        for (rank, h) in hits.iter().enumerate() {
            let id = &live[h.doc as usize].id;
            run += &format!("{} Q0 {id} {} {} splade\n", q.id, rank + 1, h.score);
        }
    }
    run
}

fn stderr_of(out: Output) -> String {
    assert!(
        out.status.success(),
        "splade failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn add_delete_optimize_match_brute_force_over_the_live_documents() {
    let tmp = tempfile::tempdir().unwrap();
    let all = documents();
    let (first, more) = all.split_at(40);
    let (v1, v2, qpath) = (
        tmp.path().join("first.jsonl"),
        tmp.path().join("more.jsonl"),
        tmp.path().join("q.jsonl"),
    );
    write_jsonl(&v1, first);
    write_jsonl(&qpath, &queries());
    // More documents, a replacement of doc3 (upsert: it moves to the end) and, inside the
    // same file, doc41 twice (the second one wins).
    let mut added: Vec<Document> = more.to_vec();
    added.push(Document {
        id: "doc3".into(),
        vector: SparseVector::from_pairs(vec![(1, 2.5), (8, 0.5)]).unwrap(),
    });
    added.push(Document {
        id: "doc41".into(),
        vector: SparseVector::from_pairs(vec![(2, 1.0)]).unwrap(),
    });
    write_jsonl(&v2, &added);
    let dir = tmp.path().join("idx");
    let d = dir.to_str().unwrap();
    ok(splade(&[
        "index",
        "build",
        "--out",
        d,
        "--vectors",
        v1.to_str().unwrap(),
        "--block-size",
        "4",
    ]));
    let msg = stderr_of(splade(&[
        "index",
        "add",
        "--index",
        d,
        "--vectors",
        v2.to_str().unwrap(),
    ]));
    assert!(
        msg.contains("added 22 documents (2 replaced")
            && msg.contains("60 live documents in 2 segments"),
        "{msg}"
    );
    // The model of the live documents, in index order.
    let mut live: Vec<Document> = first.to_vec();
    for doc in &added {
        live.retain(|x| x.id != doc.id);
        live.push(doc.clone());
    }

    let msg = stderr_of(splade(&[
        "index",
        "delete",
        "--index",
        d,
        "--ids",
        "doc1,nope,doc7,doc1",
    ]));
    assert!(
        msg.contains("deleted 2 documents") && msg.contains("1 ids not in the index: nope"),
        "{msg}"
    );
    let ids_file = tmp.path().join("ids.txt");
    // One id per line exactly as written (only the line end is dropped): "  doc41  " is
    // not "doc41".
    std::fs::write(&ids_file, "doc45\n\n  doc41  \r\ndoc41\r\nunknown-a\n").unwrap();
    let msg = stderr_of(splade(&[
        "index",
        "delete",
        "--index",
        d,
        "--ids-file",
        ids_file.to_str().unwrap(),
    ]));
    assert!(
        msg.contains("deleted 2 documents")
            && msg.contains("2 ids not in the index:   doc41  , unknown-a"),
        "{msg}"
    );
    live.retain(|x| !["doc1", "doc7", "doc45", "doc41"].contains(&x.id.as_str()));

    let search = |extra: &[&str]| {
        let mut a = vec![
            "search",
            "--index",
            d,
            "--query-vectors",
            qpath.to_str().unwrap(),
            "--k",
            "9",
        ];
        a.extend_from_slice(extra);
        ok(splade(&a))
    };
    let expected = expected_run(&live, &queries(), 9);
    assert_eq!(search(&["--exact"]), expected);
    assert_eq!(
        search(&["--approx-alpha", "1", "--approx-beta", "1"]),
        expected
    );
    assert_eq!(search(&["--brute-force"]), expected);
    for gone in ["doc1", "doc7", "doc45", "doc41"] {
        assert!(!expected.contains(&format!(" {gone} ")));
    }

    let info: serde_json::Value =
        serde_json::from_str(&ok(splade(&["index", "info", "--index", d]))).unwrap();
    assert_eq!(info["version"], 7);
    assert_eq!(info["documents"], live.len());
    // doc1, doc7 and the old doc3 in segment 0; doc45 and doc41 in segment 1 (the first
    // doc41 of the file was replaced before the commit: never stored).
    assert_eq!(info["deleted"], 5);
    let segments = info["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 2);
    assert_eq!(
        (segments[0]["dir"].as_str(), segments[0]["deleted"].as_u64()),
        (Some("."), Some(3))
    );
    assert_eq!(segments[1]["stored"], 21);
    assert_eq!(info["manifest"]["generation"], info["generation"]);

    // --no-replace: an existing id fails the whole add.
    let generation = info["generation"].clone();
    let err = failure(splade(&[
        "index",
        "add",
        "--index",
        d,
        "--vectors",
        v1.to_str().unwrap(),
        "--no-replace",
    ]));
    assert!(
        err.contains("doc0") && err.contains("--no-replace"),
        "{err}"
    );
    let info: serde_json::Value =
        serde_json::from_str(&ok(splade(&["index", "info", "--index", d]))).unwrap();
    assert_eq!(info["generation"], generation, "nothing committed");

    let msg = stderr_of(splade(&["index", "optimize", "--index", d]));
    assert!(
        msg.contains("merged 2 segments into 1") && msg.contains("5 deleted documents dropped"),
        "{msg}"
    );
    assert_eq!(search(&["--exact"]), expected);
    let index = Index::open(&dir).unwrap();
    assert_eq!(
        (index.num_segments(), index.num_deleted(), index.len()),
        (1, 0, live.len())
    );
    let msg = stderr_of(splade(&["index", "optimize", "--index", d]));
    assert!(msg.contains("already one segment"), "{msg}");

    // Every add is one commit; with --max-segments 2 neighbours are merged.
    for (i, doc) in all.iter().take(3).enumerate() {
        let one = tmp.path().join(format!("one{i}.jsonl"));
        let doc = Document {
            id: format!("extra{i}"),
            vector: doc.vector.clone(),
        };
        write_jsonl(&one, std::slice::from_ref(&doc));
        live.push(doc);
        ok(splade(&[
            "index",
            "add",
            "--index",
            d,
            "--vectors",
            one.to_str().unwrap(),
            "--max-segments",
            "2",
        ]));
    }
    assert_eq!(Index::open(&dir).unwrap().num_segments(), 2);
    assert_eq!(search(&["--exact"]), expected_run(&live, &queries(), 9));
}

#[test]
fn update_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let vectors = tmp.path().join("docs.jsonl");
    write_jsonl(&vectors, &documents());
    let missing = tmp.path().join("missing");
    let err = failure(splade(&[
        "index",
        "add",
        "--index",
        missing.to_str().unwrap(),
        "--vectors",
        vectors.to_str().unwrap(),
    ]));
    assert!(err.contains("no index there"), "{err}");
    let err = failure(splade(&[
        "index",
        "delete",
        "--index",
        missing.to_str().unwrap(),
        "--ids",
        "a",
    ]));
    assert!(err.contains("no index there"), "{err}");
    assert!(failure(splade(&[
        "index",
        "delete",
        "--index",
        missing.to_str().unwrap()
    ]))
    .contains("--ids"));

    let dir = tmp.path().join("idx");
    let d = dir.to_str().unwrap();
    ok(splade(&[
        "index",
        "build",
        "--out",
        d,
        "--vectors",
        vectors.to_str().unwrap(),
    ]));
    // An index beyond the index's dimension (40) names the file and line.
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"id\": \"x\", \"indices\": [1], \"values\": [1.0]}\n{\"id\": \"y\", \"indices\": [40], \"values\": [1.0]}\n",
    )
    .unwrap();
    let err = failure(splade(&[
        "index",
        "add",
        "--index",
        d,
        "--vectors",
        bad.to_str().unwrap(),
    ]));
    assert!(err.contains("bad.jsonl") && err.contains("line 2"), "{err}");
    assert_eq!(Index::open(&dir).unwrap().len(), 60, "nothing added");
    // A damaged deletion file is named.
    ok(splade(&["index", "delete", "--index", d, "--ids", "doc3"]));
    let del = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "bin"))
        .unwrap();
    let mut bytes = std::fs::read(&del).unwrap();
    bytes.pop();
    std::fs::write(&del, bytes).unwrap();
    let name = del.file_name().unwrap().to_str().unwrap();
    let err = failure(splade(&["index", "info", "--index", d]));
    assert!(err.contains(name), "{err}");
    let err = failure(splade(&[
        "index",
        "add",
        "--index",
        d,
        "--vectors",
        vectors.to_str().unwrap(),
    ]));
    assert!(err.contains(name), "{err}");
}

#[test]
fn model_add_equals_a_build_of_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let m = model();
    let m = m.to_str().unwrap();
    let lines = [
        "{\"_id\": \"d1\", \"title\": \"Sparse retrieval\", \"text\": \"inverted indexes make search fast\"}",
        "{\"_id\": \"d2\", \"title\": \"\", \"text\": \"cats sleep all day long\"}",
        "{\"_id\": \"d3\", \"title\": \"Neural nets\", \"text\": \"transformers encode text into vectors\"}",
        "{\"_id\": \"d4\", \"title\": \"\", \"text\": \"dogs chase cats in the garden\"}",
    ];
    let (a, b, all) = (
        tmp.path().join("a.jsonl"),
        tmp.path().join("b.jsonl"),
        tmp.path().join("all.jsonl"),
    );
    std::fs::write(&a, lines[..2].join("\n")).unwrap();
    std::fs::write(&b, lines[2..].join("\n")).unwrap();
    std::fs::write(&all, lines.join("\n")).unwrap();
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    ok(splade(&[
        "index",
        "build",
        "--out",
        one.to_str().unwrap(),
        "--corpus",
        all.to_str().unwrap(),
        "--model",
        m,
    ]));
    ok(splade(&[
        "index",
        "build",
        "--out",
        two.to_str().unwrap(),
        "--corpus",
        a.to_str().unwrap(),
        "--model",
        m,
    ]));
    ok(splade(&[
        "index",
        "add",
        "--index",
        two.to_str().unwrap(),
        "--corpus",
        b.to_str().unwrap(),
        "--model",
        m,
    ]));
    let search = |dir: &Path, q: &str| {
        ok(splade(&[
            "search",
            "--index",
            dir.to_str().unwrap(),
            "--model",
            m,
            q,
            "--k",
            "4",
        ]))
    };
    for q in ["sleeping cats", "fast search", "garden dogs"] {
        assert_eq!(search(&one, q), search(&two, q));
    }
    assert_eq!(Index::open(&two).unwrap().num_segments(), 2);
}
