//! Segmented indexes: adding, replacing and deleting documents with an `IndexWriter`,
//! merges, crash safety and damaged files, checked against a model of the live documents.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{bits, query, vector};
use proptest::prelude::*;
use splade_index::format::{
    IndexManifest, SegmentsManifest, FORMAT_VERSION, LOCK_FILE, MANIFEST_FILE, SEGMENTS_VERSION,
};
use splade_index::{
    Hit, Index, IndexBuilder, IndexError, IndexWriter, MergePolicy, Method, Reorder, SearchOptions,
    Traversal,
};
use splade_sparse::SparseVector;

fn v(pairs: &[(u32, f32)]) -> SparseVector {
    SparseVector::from_pairs(pairs.to_vec()).unwrap()
}

/// The live documents in document order (segment order, then number: insertion order of
/// their latest version).
type Model = Vec<(String, SparseVector)>;

fn model_add(model: &mut Model, id: &str, vector: &SparseVector) -> bool {
    let existed = model_delete(model, id);
    model.push((id.to_string(), vector.clone()));
    existed
}

fn model_delete(model: &mut Model, id: &str) -> bool {
    let before = model.len();
    model.retain(|(i, _)| i != id);
    model.len() != before
}

/// Brute force over the model: score descending, ties to the earlier document.
fn expected(model: &Model, q: &SparseVector, k: usize) -> Vec<(String, u32)> {
    let mut all: Vec<(usize, f32)> = model
        .iter()
        .enumerate()
        .map(|(p, (_, d))| (p, q.view().dot(&d.view())))
        .filter(|h| h.1 > 0.0)
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all.into_iter()
        .map(|(p, s)| (model[p].0.clone(), s.to_bits()))
        .collect()
}

fn named(index: &Index, hits: &[Hit]) -> Vec<(String, u32)> {
    hits.iter()
        .map(|h| {
            (
                index.id(h.doc).expect("hit is live").to_string(),
                h.score.to_bits(),
            )
        })
        .collect()
}

/// Checks `index` against `model` for every query: exact, brute force and approximate
/// (alpha = beta = 1) search, lookups, counts.
fn check(index: &Index, model: &Model, queries: &[SparseVector], k: usize) {
    assert_eq!(index.len(), model.len(), "live documents");
    assert_eq!(index.max_doc(), index.len() + index.num_deleted());
    let nnz: usize = model.iter().map(|(_, d)| d.nnz()).sum();
    assert_eq!(index.nnz(), nnz);
    let same = SearchOptions {
        k,
        method: Method::approximate(1.0, 1.0).unwrap(),
        max_query_terms: None,
        traversal: Traversal::Auto,
    };
    let forced = |traversal| SearchOptions {
        k,
        traversal,
        ..SearchOptions::default()
    };
    let (blocks, terms) = (forced(Traversal::BlockMax), forced(Traversal::TermAtATime));
    for q in queries {
        let want = expected(model, q, k);
        let exact = index.top_k(q.view(), k);
        assert_eq!(named(index, &exact), want);
        assert_eq!(bits(&exact), bits(&index.brute_force_top_k(q.view(), k)));
        assert_eq!(bits(&exact), bits(&index.search(q.view(), &same)));
        assert_eq!(bits(&exact), bits(&index.search(q.view(), &blocks)));
        assert_eq!(bits(&exact), bits(&index.search(q.view(), &terms)));
        let views: Vec<_> = std::iter::repeat_n(q.view(), 3).collect();
        let batch = index
            .search_batch(&views, &SearchOptions::new(k), Some(2))
            .unwrap();
        assert!(batch.iter().all(|b| bits(b) == bits(&exact)));
    }
    // Document numbers follow the model's order; deleted numbers read as absent.
    let mut last = None;
    for (id, vec) in model {
        let d = index.doc_number(id).expect("live id found");
        assert!(last < Some(d), "document order");
        last = Some(d);
        assert_eq!(index.id(d), Some(id.as_str()));
        assert_eq!(index.document(d), Some(vec.view()));
        assert!(!index.is_deleted(d));
    }
    let live: BTreeSet<u32> = model
        .iter()
        .map(|(id, _)| index.doc_number(id).unwrap())
        .collect();
    for d in 0..index.max_doc() as u32 {
        if !live.contains(&d) {
            assert!(index.is_deleted(d));
            assert_eq!(index.id(d), None);
            assert_eq!(index.document(d), None);
            assert!(index.explain(v(&[(0, 1.0)]).view(), d).is_none());
        }
    }
}

fn write_v2(dir: &Path, dim: usize, docs: &Model, block_size: usize) -> Index {
    let mut b = IndexBuilder::new(dim).block_size(block_size);
    for (id, d) in docs {
        b.add(id, d.view()).unwrap();
    }
    b.write(dir).unwrap()
}

/// A small deterministic collection over 20 terms with exact ties.
fn docs(prefix: &str, n: u32) -> Model {
    (0..n)
        .map(|d| {
            let base = d % 7;
            let mut pairs = vec![(base, 1.0 + (d % 3) as f32), ((base * 3 + 1) % 20, 0.5)];
            pairs.sort_by_key(|p| p.0);
            pairs.dedup_by_key(|p| p.0);
            (format!("{prefix}{d}"), v(&pairs))
        })
        .collect()
}

fn queries() -> Vec<SparseVector> {
    vec![
        v(&[(0, 1.0), (1, 1.0)]),
        v(&[(3, 2.0), (10, 0.5), (19, 1.0)]),
        v(&[(1, 1.0), (2, 1.0), (4, 1.0), (5, 1.0), (6, 1.0)]),
    ]
}

fn listing(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Every file under `dir` with its contents (relative paths).
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn restore(dir: &Path, files: &[(PathBuf, Vec<u8>)]) {
    for (rel, bytes) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

/// Term at a time gives its first chunk of documents a floor that `k` of them reach; where the
/// best documents are deleted, that floor may lie above the k-th live score, and the chunk's
/// documents below it must be offered too. 3,000 documents in one segment (one and a half
/// chunks), the 42 heaviest on the shared term deleted: every traversal still equals the
/// brute force over the live documents, for k below, at and above the deleted count.
#[test]
fn deleting_the_best_documents_keeps_term_at_a_time_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ix");
    let mut w = IndexWriter::create(&dir, 20).unwrap();
    let mut model = Model::new();
    for d in 0..3000u32 {
        let vector = v(&[(0, 1.0 + (d % 997) as f32 / 100.0), (1 + d % 19, 0.5)]);
        let id = format!("d{d}");
        w.add(&id, vector.view()).unwrap();
        model_add(&mut model, &id, &vector);
    }
    w.commit().unwrap();
    for d in (0..3000u32).filter(|d| d % 997 >= 983) {
        let id = format!("d{d}");
        assert!(w.delete(&id));
        model_delete(&mut model, &id);
    }
    w.commit().unwrap();
    assert_eq!(w.index().num_deleted(), 42);
    let queries = vec![
        v(&[(0, 1.0)]),
        v(&[(0, 1.0), (3, 2.0)]),
        v(&[(0, 0.5), (7, 1.0)]),
    ];
    for k in [1, 10, 42, 60] {
        check(w.index(), &model, &queries, k);
    }
}

#[test]
fn add_delete_upsert_commit_on_a_version_2_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut model = docs("d", 40);
    write_v2(dir, 20, &model, 4);
    let mut w = IndexWriter::open(dir).unwrap();
    assert_eq!((w.len(), w.dim(), w.index().generation()), (40, 20, 0));

    // Nothing is visible before commit.
    assert!(!w.add("new0", v(&[(0, 3.0)]).view()).unwrap());
    assert!(w.delete("d3"));
    assert!(!w.delete("d3"), "already deleted");
    assert!(!w.delete("nope"));
    assert!(w.contains("new0") && !w.contains("d3"));
    assert_eq!(w.len(), 40);
    assert_eq!(Index::open(dir).unwrap().len(), 40);
    assert_eq!(
        IndexManifest::read(dir).unwrap(),
        IndexManifest::Single(Index::open(dir).unwrap().manifest().unwrap().clone())
    );

    // Upsert of a committed id and of an uncommitted one.
    assert!(w.add("d5", v(&[(1, 9.0)]).view()).unwrap());
    assert!(!w.add("new1", v(&[(1, 1.0)]).view()).unwrap());
    assert!(w.add("new1", v(&[(0, 1.0)]).view()).unwrap());
    for (id, vec) in [
        ("new0", v(&[(0, 3.0)])),
        ("d5", v(&[(1, 9.0)])),
        ("new1", v(&[(0, 1.0)])),
    ] {
        model_add(&mut model, id, &vec);
    }
    model_delete(&mut model, "d3");
    let summary = w.commit().unwrap();
    assert_eq!(summary.generation, 1);
    assert_eq!((summary.added, summary.deleted), (3, 2));
    assert_eq!((summary.segments, summary.live), (2, 41));
    assert_eq!(summary.segments_written, 1);

    let index = Index::open(dir).unwrap();
    check(&index, &model, &queries(), 50);
    check(w.index(), &model, &queries(), 50);
    assert_eq!(index.generation(), 1);
    assert_eq!(index.num_segments(), 2);
    assert!(index.manifest().is_none());
    let segs = index.segments();
    assert_eq!(
        (segs[0].dir, segs[0].num_docs, segs[0].deleted),
        (".", 40, 2)
    );
    assert_eq!(
        (segs[1].dir, segs[1].first_doc, segs[1].num_docs),
        ("seg-000001", 40, 3)
    );
    let m = index.segments_manifest().unwrap();
    assert_eq!((m.version, m.live_docs()), (SEGMENTS_VERSION, 41));
    assert_eq!(m.segments[0].manifest.version, FORMAT_VERSION);
    // A segment directory is a version-6 index of its own.
    assert_eq!(Index::open(&dir.join("seg-000001")).unwrap().len(), 3);
    let names = listing(dir);
    assert!(names.contains("del-000000-000001.bin"), "{names:?}");
    assert!(!names.iter().any(|n| n.contains(".tmp-")), "{names:?}");

    // The same writer goes on; deleting a document of the new segment.
    assert!(w.delete("new0"));
    model_delete(&mut model, "new0");
    w.commit().unwrap();
    check(&Index::open(dir).unwrap(), &model, &queries(), 50);
    let names = listing(dir);
    assert!(
        names.contains("del-000000-000001.bin"),
        "unchanged: {names:?}"
    );
    assert!(names.contains("del-000001-000002.bin"), "{names:?}");
    // More deletions in segment 0: its deletion file is superseded.
    assert!(w.delete("d6"));
    model_delete(&mut model, "d6");
    w.commit().unwrap();
    check(&Index::open(dir).unwrap(), &model, &queries(), 50);
    let names = listing(dir);
    assert!(
        !names.contains("del-000000-000001.bin"),
        "superseded: {names:?}"
    );
    assert!(names.contains("del-000000-000003.bin"), "{names:?}");

    // Optimize: one segment, nothing deleted, the top-level arrays removed.
    let s = w.optimize().unwrap();
    assert_eq!(
        (s.segments, s.segments_merged, s.segments_written),
        (1, 2, 1)
    );
    let index = Index::open(dir).unwrap();
    check(&index, &model, &queries(), 50);
    assert_eq!((index.num_segments(), index.num_deleted()), (1, 0));
    assert!(index.manifest().is_some());
    let names = listing(dir);
    assert_eq!(
        names,
        ["manifest.json", "seg-000002", LOCK_FILE]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    );
    // Nothing to do: nothing written.
    assert_eq!(w.optimize().unwrap().generation, 4);
    assert_eq!(w.commit().unwrap().generation, 4);
    drop(w);

    // A rebuild must be asked for; it then replaces the segmented index by one new
    // segment (one manifest switch), the old segments removed.
    let rebuilt = docs("r", 5);
    let mut b = IndexBuilder::new(20).block_size(4);
    for (id, d) in &rebuilt {
        b.add(id, d.view()).unwrap();
    }
    assert!(matches!(
        b.clone().write(dir),
        Err(IndexError::IndexExists { .. })
    ));
    b.write_over(dir).unwrap();
    match IndexManifest::read(dir).unwrap() {
        IndexManifest::Segments(m) => {
            assert_eq!(m.segments.len(), 1);
            assert_eq!(m.generation, 5);
        }
        other => panic!("expected one segment, got {other:?}"),
    }
    assert_eq!(listing(dir), referenced(dir));
    check(&Index::open(dir).unwrap(), &rebuilt, &queries(), 50);
}

/// Relabels the index in `dir` as version `version` of the format, the way an older build
/// wrote it: its manifest's version, and in `arrays` (the top directory or a segment's) two
/// of this version's arrays under the names older versions gave their counterparts, plus
/// one array this version no longer writes.
fn make_older(dir: &Path, arrays: &Path, version: u32) {
    let path = dir.join(MANIFEST_FILE);
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    m["version"] = version.into();
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
    std::fs::rename(arrays.join("bounds.starts"), arrays.join("bounds.slots")).unwrap();
    std::fs::rename(
        arrays.join("blocks.offsets"),
        arrays.join("blocks.term_offsets"),
    )
    .unwrap();
    std::fs::write(arrays.join("blocks.entry_offsets"), [0u8; 8]).unwrap();
}

/// An index of an older version cannot be opened (the error asks for a rebuild), and a
/// rebuild over it replaces it whole: a single-segment index of version 4 and a segmented
/// one of version 5, every file of theirs removed, the generation carried on.
#[test]
fn a_rebuild_replaces_an_index_of_an_older_version() {
    let rebuilt = docs("r", 6);
    let mut b = IndexBuilder::new(20).block_size(4);
    for (id, d) in &rebuilt {
        b.add(id, d.view()).unwrap();
    }
    for segmented in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write_v2(dir, 20, &docs("d", 10), 4);
        let (arrays, version, generation) = if segmented {
            let mut w = IndexWriter::open(dir).unwrap();
            for (id, d) in docs("e", 5) {
                w.add(&id, d.view()).unwrap();
            }
            w.delete("d3");
            w.commit().unwrap();
            drop(w);
            let seg = match IndexManifest::read(dir).unwrap() {
                IndexManifest::Segments(m) => m.segments.last().unwrap().dir.clone(),
                other => panic!("expected segments, got {other:?}"),
            };
            (dir.join(seg), 5, 1)
        } else {
            (dir.to_path_buf(), 4, 0)
        };
        make_older(dir, &arrays, version);
        let err = Index::open(dir).unwrap_err();
        assert!(
            matches!(err, IndexError::UnsupportedFormat { .. })
                && err.to_string().contains("rebuild"),
            "{err}"
        );
        assert!(IndexWriter::open(dir).is_err());
        b.clone().write_over(dir).unwrap();
        match IndexManifest::read(dir).unwrap() {
            IndexManifest::Segments(m) => {
                assert_eq!((m.segments.len(), m.generation), (1, generation + 1));
            }
            other => panic!("expected one segment, got {other:?}"),
        }
        assert_eq!(listing(dir), referenced(dir), "segmented {segmented}");
        check(&Index::open(dir).unwrap(), &rebuilt, &queries(), 20);
    }
    // A manifest of another format is still not replaced.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_v2(dir, 20, &docs("d", 10), 4);
    let path = dir.join(MANIFEST_FILE);
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    m["format"] = "something-else".into();
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
    assert!(b.write_over(dir).is_err());
    assert!(dir.join("bounds.starts").exists(), "nothing removed");
}

#[test]
fn create_empty_then_fill_and_empty_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new");
    let mut w = IndexWriter::create(&dir, 20).unwrap();
    assert!(IndexWriter::create(&dir, 20).is_err(), "locked or exists");
    let index = Index::open(&dir).unwrap();
    assert_eq!((index.len(), index.num_segments(), index.dim()), (0, 0, 20));
    assert!(index.top_k(v(&[(1, 1.0)]).view(), 5).is_empty());
    let mut model = Model::new();
    for (id, d) in docs("x", 9) {
        w.add(&id, d.view()).unwrap();
        model_add(&mut model, &id, &d);
    }
    w.commit().unwrap();
    check(&Index::open(&dir).unwrap(), &model, &queries(), 20);
    // Deleting every document drops the segment.
    for (id, _) in docs("x", 9) {
        assert!(w.delete(&id));
    }
    let s = w.commit().unwrap();
    assert_eq!((s.segments, s.live), (0, 0));
    let index = Index::open(&dir).unwrap();
    assert_eq!((index.len(), index.num_segments()), (0, 0));
    assert_eq!(listing(&dir).len(), 2, "{:?}", listing(&dir));
    // Errors name the document.
    let err = w.add("bad", v(&[(20, 1.0)]).view()).unwrap_err();
    assert!(err.to_string().contains("bad") && err.to_string().contains("dimension 20"));
    assert!(w.add("", v(&[(1, 1.0)]).view()).is_err());
    assert!(w.add("neg", v(&[(1, -1.0)]).view()).is_err());
    assert!(!w.has_changes());
}

#[test]
fn one_writer_at_a_time_and_stale_writers_commit_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_v2(dir, 20, &docs("d", 10), 4);
    let w = IndexWriter::open(dir).unwrap();
    assert!(matches!(
        IndexWriter::open(dir),
        Err(IndexError::Locked { .. })
    ));
    drop(w);
    let mut w = IndexWriter::open(dir).unwrap();
    w.add("a", v(&[(1, 1.0)]).view()).unwrap();
    // A rebuild takes the write lock too: refused while the writer is open.
    let mut b = IndexBuilder::new(20).block_size(4);
    for (id, d) in docs("e", 5) {
        b.add(&id, d.view()).unwrap();
    }
    let err = b.clone().write_over(dir).unwrap_err();
    assert!(matches!(err, IndexError::Locked { .. }), "{err}");
    assert_eq!(Index::open(dir).unwrap().len(), 10);
    // A manifest replaced behind the writer's back (by hand, say): its commit writes
    // nothing.
    let manifest = std::fs::read(dir.join(MANIFEST_FILE)).unwrap();
    let mut edited: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    edited["note"] = "edited".into();
    std::fs::write(
        dir.join(MANIFEST_FILE),
        serde_json::to_vec(&edited).unwrap(),
    )
    .unwrap();
    let err = w.commit().unwrap_err();
    assert!(matches!(err, IndexError::Conflict { .. }), "{err}");
    drop(w);
    std::fs::write(dir.join(MANIFEST_FILE), &manifest).unwrap();
    assert_eq!(Index::open(dir).unwrap().len(), 10);
    b.write_over(dir).unwrap();
    assert_eq!(Index::open(dir).unwrap().len(), 5);
    assert!(Index::open(dir).unwrap().doc_number("e1").is_some());
}

#[test]
fn merge_policy_bounds_segments_and_keeps_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = IndexWriter::create(dir, 20)
        .unwrap()
        .block_size(2)
        .reorder(Reorder::HeaviestTerms)
        .merge_policy(MergePolicy::max_segments(3));
    let mut model = Model::new();
    for round in 0..8u32 {
        for (id, d) in docs(&format!("r{round}-"), 3 + round) {
            w.add(&id, d.view()).unwrap();
            model_add(&mut model, &id, &d);
        }
        // Replace a document of an earlier round and delete another.
        if round > 0 {
            let id = format!("r{}-1", round - 1);
            let d = v(&[(round, 1.5)]);
            w.add(&id, d.view()).unwrap();
            model_add(&mut model, &id, &d);
            let gone = format!("r{}-0", round - 1);
            assert!(w.delete(&gone));
            model_delete(&mut model, &gone);
        }
        let s = w.commit().unwrap();
        assert!(s.segments <= 3, "{s:?}");
        let index = Index::open(dir).unwrap();
        check(&index, &model, &queries(), 100);
        assert!(index.segments().iter().all(|s| s.manifest.block_size == 2));
    }
    // Never merging: one segment per commit.
    drop(w);
    let mut w = IndexWriter::open(dir)
        .unwrap()
        .merge_policy(MergePolicy::never());
    let before = w.index().num_segments();
    for i in 0..4 {
        w.add(&format!("n{i}"), v(&[(i, 1.0)]).view()).unwrap();
        model_add(&mut model, &format!("n{i}"), &v(&[(i, 1.0)]));
        w.commit().unwrap();
    }
    assert_eq!(w.index().num_segments(), before + 4);
    check(&Index::open(dir).unwrap(), &model, &queries(), 100);
}

#[test]
fn segments_of_different_dimensions_are_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let mut w = IndexWriter::create(&a, 20).unwrap();
    w.add("x", v(&[(1, 1.0)]).view()).unwrap();
    w.commit().unwrap();
    drop(w);
    // Put a dimension-30 segment into it, with a correct checksum.
    write_v2(&b, 30, &docs("y", 3), 4);
    let other = std::fs::read_dir(&b).unwrap();
    std::fs::create_dir(a.join("seg-000005")).unwrap();
    for e in other {
        let p = e.unwrap().path();
        std::fs::copy(&p, a.join("seg-000005").join(p.file_name().unwrap())).unwrap();
    }
    let mut m = SegmentsManifest::read(&a).unwrap();
    let mut seg = m.segments[0].clone();
    seg.id = 5;
    seg.dir = "seg-000005".into();
    seg.manifest = Index::open(&b).unwrap().manifest().unwrap().clone();
    m.segments.push(seg);
    m.next_segment = 6;
    std::fs::write(a.join(MANIFEST_FILE), m.to_bytes().unwrap()).unwrap();
    let err = Index::open(&a).unwrap_err();
    assert!(
        err.to_string().contains("dimension mismatch") && err.to_string().contains("manifest.json"),
        "{err}"
    );
    // A manifest naming a directory outside the index is rejected too.
    m.segments[1].dir = "../b".into();
    std::fs::write(a.join(MANIFEST_FILE), m.to_bytes().unwrap()).unwrap();
    assert!(matches!(Index::open(&a), Err(IndexError::Corrupt { .. })));
}

/// Commits `change` on the index in `dir`, then rebuilds the two crash states around its
/// manifest switch: the old manifest with every file of both generations (a crash before
/// the rename) and the new manifest with every file of both (a crash before the clean-up).
/// Each must open as the matching state, and the next commit must leave exactly the files
/// the manifest names.
fn crash_around(
    dir: &Path,
    policy: MergePolicy,
    change: impl FnOnce(&mut IndexWriter),
    old: &Model,
    new: &Model,
) {
    let before = snapshot(dir);
    let mut w = IndexWriter::open(dir).unwrap().merge_policy(policy);
    change(&mut w);
    w.commit().unwrap();
    drop(w);
    let after = snapshot(dir);
    let clean_after = listing(dir);
    let old_manifest = before
        .iter()
        .find(|(p, _)| p == Path::new(MANIFEST_FILE))
        .unwrap()
        .1
        .clone();
    for (manifest, model) in [(&old_manifest, old), (&after_manifest(&after), new)] {
        restore(dir, &before);
        restore(dir, &after);
        std::fs::write(dir.join(MANIFEST_FILE), manifest).unwrap();
        // A half-written temporary manifest and a partial segment, too.
        std::fs::write(
            dir.join(".manifest.json.tmp-4242"),
            b"{\"format\": \"splade-",
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("seg-000777")).unwrap();
        std::fs::write(dir.join("seg-000777/forward.indptr"), [0u8; 5]).unwrap();
        let index = Index::open(dir).unwrap();
        check(&index, model, &queries(), 30);
        let mut w = IndexWriter::open(dir).unwrap();
        check(w.index(), model, &queries(), 30);
        let s = w.commit().unwrap();
        assert!(s.removed_files >= 2, "{s:?}");
        let names = listing(dir);
        let referenced = referenced(dir);
        assert_eq!(names, referenced, "only what the manifest names remains");
        check(&Index::open(dir).unwrap(), model, &queries(), 30);
        drop(w);
    }
    // Back to the committed state for the caller.
    restore(dir, &after);
    std::fs::write(dir.join(MANIFEST_FILE), after_manifest(&after)).unwrap();
    IndexWriter::open(dir).unwrap().commit().unwrap();
    assert_eq!(listing(dir), clean_after);
}

fn after_manifest(files: &[(PathBuf, Vec<u8>)]) -> Vec<u8> {
    files
        .iter()
        .find(|(p, _)| p == Path::new(MANIFEST_FILE))
        .unwrap()
        .1
        .clone()
}

/// The top-level names a clean directory holds for its manifest.
fn referenced(dir: &Path) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = [MANIFEST_FILE, LOCK_FILE]
        .iter()
        .map(|s| s.to_string())
        .collect();
    match IndexManifest::read(dir).unwrap() {
        IndexManifest::Single(m) => names.extend(m.files.keys().cloned()),
        IndexManifest::Segments(m) => {
            for s in &m.segments {
                if s.dir == "." {
                    names.extend(s.manifest.files.keys().cloned());
                } else {
                    names.insert(s.dir.clone());
                }
                if let Some(d) = &s.deletes {
                    names.insert(d.file.clone());
                }
            }
        }
    }
    names
}

#[test]
fn a_crash_at_any_point_leaves_the_old_or_the_new_state() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut model = docs("d", 30);
    write_v2(dir, 20, &model, 4);

    // Version 2 -> segmented: a new segment and segment 0's first deletion file.
    let old = model.clone();
    model_add(&mut model, "a", &v(&[(1, 2.0)]));
    model_delete(&mut model, "d1");
    model_add(&mut model, "d2", &v(&[(2, 7.0)]));
    crash_around(
        dir,
        MergePolicy::default(),
        |w| {
            w.add("a", v(&[(1, 2.0)]).view()).unwrap();
            assert!(w.delete("d1"));
            w.add("d2", v(&[(2, 7.0)]).view()).unwrap();
        },
        &old,
        &model,
    );

    // Deletions only: new deletion files replace old ones.
    let old = model.clone();
    model_delete(&mut model, "d4");
    model_delete(&mut model, "a");
    crash_around(
        dir,
        MergePolicy::default(),
        |w| {
            assert!(w.delete("d4"));
            assert!(w.delete("a"));
        },
        &old,
        &model,
    );

    // A merge: segments replaced by one.
    let old = model.clone();
    model_add(&mut model, "b", &v(&[(3, 1.0)]));
    crash_around(
        dir,
        MergePolicy::max_segments(1),
        |w| {
            w.add("b", v(&[(3, 1.0)]).view()).unwrap();
        },
        &old,
        &model,
    );
    assert_eq!(Index::open(dir).unwrap().num_segments(), 1);
}

fn expect_corrupt_naming(result: Result<Index, IndexError>, file: &str) {
    match result {
        Err(e @ IndexError::Corrupt { .. }) => {
            assert!(
                e.to_string().contains(file),
                "error does not name {file}: {e}"
            )
        }
        Err(other) => panic!("expected a corruption error naming {file}, got: {other}"),
        Ok(_) => panic!("damaged {file} was accepted"),
    }
}

#[test]
fn damaged_manifest_or_deletion_files_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_v2(dir, 20, &docs("d", 30), 4);
    let mut w = IndexWriter::open(dir).unwrap();
    w.delete("d1");
    w.add("z", v(&[(1, 1.0)]).view()).unwrap();
    w.commit().unwrap();
    drop(w);
    let good = snapshot(dir);
    let manifest = after_manifest(&good);
    let del = "del-000000-000001.bin";

    // Truncated manifest, a changed number (checksum), a dropped field.
    std::fs::write(dir.join(MANIFEST_FILE), &manifest[..manifest.len() / 2]).unwrap();
    expect_corrupt_naming(Index::open(dir), MANIFEST_FILE);
    let text = String::from_utf8(manifest.clone()).unwrap();
    let edited = text.replacen("\"generation\": 1", "\"generation\": 7", 1);
    assert_ne!(edited, text);
    std::fs::write(dir.join(MANIFEST_FILE), &edited).unwrap();
    expect_corrupt_naming(Index::open(dir), MANIFEST_FILE);
    assert!(Index::open(dir)
        .unwrap_err()
        .to_string()
        .contains("checksum"));
    assert!(IndexWriter::open(dir).is_err());
    restore(dir, &good);
    assert!(Index::open(dir).is_ok());

    // Deletion file: truncated, flipped, missing.
    let bytes = std::fs::read(dir.join(del)).unwrap();
    std::fs::write(dir.join(del), &bytes[..bytes.len() - 1]).unwrap();
    expect_corrupt_naming(Index::open(dir), del);
    let mut flipped = bytes.clone();
    flipped[25] ^= 1;
    std::fs::write(dir.join(del), &flipped).unwrap();
    expect_corrupt_naming(Index::open(dir), del);
    expect_corrupt_naming(Index::open_unverified(dir), del);
    std::fs::remove_file(dir.join(del)).unwrap();
    match Index::open(dir) {
        Err(IndexError::Io { path, .. }) => assert!(path.ends_with(del)),
        other => panic!("missing deletion file gave {other:?}"),
    }
    restore(dir, &good);

    // A damaged segment file is named with its directory.
    let seg_file = dir.join("seg-000001").join("forward.values");
    let mut b = std::fs::read(&seg_file).unwrap();
    b[0] ^= 0x40;
    std::fs::write(&seg_file, &b).unwrap();
    expect_corrupt_naming(Index::open(dir), "seg-000001/forward.values");
    restore(dir, &good);
    assert!(Index::open(dir).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random damage to the manifest or a deletion file never panics; an index that still
    /// opens is the undamaged one (only formatting was hit).
    #[test]
    fn damaged_manifest_or_deletes_never_panic(
        target in 0usize..2,
        flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4),
        cut in prop_oneof![Just(None), any::<prop::sample::Index>().prop_map(Some)],
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut model = docs("d", 20);
        write_v2(dir, 20, &model, 4);
        let mut w = IndexWriter::open(dir).unwrap();
        w.delete("d2");
        w.delete("d7");
        w.add("new", v(&[(4, 1.0)]).view()).unwrap();
        w.commit().unwrap();
        drop(w);
        model_delete(&mut model, "d2");
        model_delete(&mut model, "d7");
        model_add(&mut model, "new", &v(&[(4, 1.0)]));
        let name = [MANIFEST_FILE, "del-000000-000001.bin"][target];
        let mut bytes = std::fs::read(dir.join(name)).unwrap();
        for (at, bit) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        std::fs::write(dir.join(name), &bytes).unwrap();
        for result in [Index::open(dir), Index::open_unverified(dir)] {
            match result {
                Ok(index) => check(&index, &model, &queries(), 30),
                Err(e) => prop_assert!(e.to_string().contains(name), "{e}"),
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Add(u8, SparseVector),
    Delete(u8),
    Commit,
    Optimize,
    /// Drop the writer (uncommitted changes are lost) and open a new one.
    Reopen,
}

fn ops(dim: usize) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        6 => (0u8..24, vector(dim, 10, true)).prop_map(|(i, v)| Op::Add(i, v)),
        3 => (0u8..24).prop_map(Op::Delete),
        2 => Just(Op::Commit),
        1 => Just(Op::Optimize),
        1 => Just(Op::Reopen),
    ];
    prop::collection::vec(op, 1..40)
}

#[derive(Debug, Clone)]
struct Case {
    dim: usize,
    start: Model,
    block_size: usize,
    max_segments: Option<usize>,
    ops: Vec<Op>,
    queries: Vec<SparseVector>,
    k: usize,
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..40,
        1usize..6,
        prop_oneof![Just(None), (1usize..5).prop_map(Some)],
    )
        .prop_flat_map(|(dim, block_size, max_segments)| {
            (
                Just(dim),
                prop::collection::vec(vector(dim, 10, true), 0..20),
                Just(block_size),
                Just(max_segments),
                ops(dim),
                prop::collection::vec(query(dim), 1..4),
                1usize..25,
            )
        })
        .prop_map(
            |(dim, start, block_size, max_segments, ops, queries, k)| Case {
                dim,
                start: start
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (format!("id{}", i + 10), v))
                    .collect(),
                block_size,
                max_segments,
                ops,
                queries,
                k,
            },
        )
}

fn open_writer(dir: &Path, c: &Case) -> IndexWriter {
    let w = IndexWriter::open(dir).unwrap().block_size(c.block_size);
    match c.max_segments {
        Some(n) => w.merge_policy(MergePolicy::max_segments(n)),
        None => w.merge_policy(MergePolicy::never()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random add / upsert / delete / commit / optimize / reopen sequences from a
    /// version-6 index: after every commit, exact search (and approximate with
    /// alpha = beta = 1, and brute force) over the index on disk equals brute force over
    /// the model's live documents, ties to the earlier document, bit for bit.
    #[test]
    fn random_updates_match_brute_force_over_the_live_documents(c in case()) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write_v2(dir, c.dim, &c.start, c.block_size);
        let mut committed = c.start.clone();
        let mut working = committed.clone();
        let mut w = open_writer(dir, &c);
        for op in &c.ops {
            match op {
                Op::Add(i, vec) => {
                    let id = format!("id{i}");
                    let existed = model_add(&mut working, &id, vec);
                    prop_assert_eq!(w.add(&id, vec.view()).unwrap(), existed);
                }
                Op::Delete(i) => {
                    let id = format!("id{i}");
                    prop_assert_eq!(w.delete(&id), model_delete(&mut working, &id));
                }
                Op::Commit | Op::Optimize => {
                    let s = if matches!(op, Op::Commit) { w.commit() } else { w.optimize() }.unwrap();
                    committed = working.clone();
                    prop_assert_eq!(s.live, committed.len());
                    if let Some(n) = c.max_segments {
                        prop_assert!(s.segments <= n.max(1) || matches!(op, Op::Optimize));
                    }
                    if matches!(op, Op::Optimize) {
                        prop_assert!(w.index().num_segments() <= 1);
                        prop_assert_eq!(w.index().num_deleted(), 0);
                    }
                    check(w.index(), &committed, &c.queries, c.k);
                    check(&Index::open(dir).unwrap(), &committed, &c.queries, c.k);
                }
                Op::Reopen => {
                    drop(w);
                    w = open_writer(dir, &c);
                    working = committed.clone();
                }
            }
            prop_assert_eq!(w.len(), working.len());
        }
        drop(w);
        check(&Index::open(dir).unwrap(), &committed, &c.queries, c.k);
        prop_assert_eq!(listing(dir), referenced(dir));
    }
}

/// Without a block size set, the builder and a writer on a new index choose it from the
/// documents' mean length and number (16 below 64 terms for at most 131,072 documents, else
/// 32); a writer on an index with segments keeps the first segment's; a size set explicitly
/// wins.
#[test]
fn block_size_is_chosen_from_document_length_unless_set() {
    let doc = |terms: u32| {
        let pairs: Vec<(u32, f32)> = (0..terms).map(|t| (t, 1.0 + t as f32)).collect();
        SparseVector::from_pairs(pairs).unwrap()
    };
    let build = |terms: u32, set: Option<usize>| {
        let mut b = IndexBuilder::new(200);
        if let Some(s) = set {
            b = b.block_size(s);
        }
        for d in 0..40 {
            b.add(&format!("d{d}"), doc(terms).view()).unwrap();
        }
        assert_eq!(
            b.effective_block_size(),
            b.clone().build().unwrap().block_size()
        );
        b.build().unwrap().block_size()
    };
    assert_eq!(build(10, None), 16);
    assert_eq!(build(63, None), 16);
    assert_eq!(build(64, None), 32);
    assert_eq!(build(100, None), 32);
    assert_eq!(build(100, Some(8)), 8);
    assert_eq!(splade_index::auto_block_size(0, 0), 32, "no documents");
    // Short documents get 16 only in collections of at most 131,072 documents.
    let max = splade_index::SHORT_DOCUMENTS_MAX_DOCS;
    assert_eq!(splade_index::auto_block_size(max, max * 25), 16);
    assert_eq!(splade_index::auto_block_size(max + 1, (max + 1) * 25), 32);
    assert_eq!(splade_index::auto_block_size(max + 1, (max + 1) * 100), 32);

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = IndexWriter::create(dir, 200).unwrap();
    for d in 0..10 {
        w.add(&format!("short{d}"), doc(5).view()).unwrap();
    }
    w.commit().unwrap();
    drop(w);
    let mut w = IndexWriter::open(dir)
        .unwrap()
        .merge_policy(MergePolicy::never());
    for d in 0..10 {
        w.add(&format!("long{d}"), doc(120).view()).unwrap();
    }
    w.commit().unwrap();
    let index = Index::open(dir).unwrap();
    let sizes: Vec<u32> = index
        .segments()
        .iter()
        .map(|s| s.manifest.block_size)
        .collect();
    assert_eq!(sizes, [16, 16], "later segments keep the first one's size");
}

/// Across segments with deletions, a segment handed over to term at a time (at the late
/// check, after the first segment filled the top-k) starts again from the top-k as it was
/// before it: exact searches equal the model's brute force, and an approximate search's hits
/// are distinct live documents with their exact scores.
#[test]
fn late_hand_over_after_another_segment_with_deletions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut next = common::xorshift(0xbb67_ae85_84ca_a73b);
    let mut w = IndexWriter::create(dir, 200)
        .unwrap()
        .reorder(Reorder::None)
        .merge_policy(MergePolicy::never());
    let mut model = Model::new();
    // Ten of the query's terms a document, drawn from 0..100 (duplicates merged).
    let mut doc = |weight: &mut dyn FnMut() -> f32| {
        let mut pairs: Vec<(u32, f32)> =
            (0..10).map(|_| ((next() % 100) as u32, weight())).collect();
        pairs.sort_by_key(|p| p.0);
        pairs.dedup_by_key(|p| p.0);
        SparseVector::from_pairs(pairs).unwrap()
    };
    let mut jitter = common::xorshift(0x3c6e_f372_fe94_f82b);
    // First segment: 2,000 documents scoring a little below the second's heavy ones.
    for d in 0..2000 {
        let v = doc(&mut || 0.9);
        model_add(&mut model, &format!("a{d}"), &v);
        w.add(&format!("a{d}"), v.view()).unwrap();
    }
    w.commit().unwrap();
    // Second: 9,600 heavy documents, then 22,400 light ones (their blocks' bounds far below
    // the k-th score, their postings a large part of the term-at-a-time search).
    for d in 0..32_000 {
        let heavy = d < 9600;
        let v = if heavy {
            doc(&mut || 1.0 + (jitter() % 16) as f32 / 160.0)
        } else {
            doc(&mut || 0.01)
        };
        model_add(&mut model, &format!("b{d}"), &v);
        w.add(&format!("b{d}"), v.view()).unwrap();
    }
    w.commit().unwrap();
    // Deletions in both, among them the best documents of the second segment.
    let q = SparseVector::from_pairs((0..100).map(|t| (t, 1.0)).collect()).unwrap();
    let best: Vec<String> = expected(&model, &q, 10)
        .into_iter()
        .take(5)
        .map(|h| h.0)
        .collect();
    for id in best
        .iter()
        .map(String::as_str)
        .chain(["a0", "a7", "b3", "b9000"])
    {
        assert!(w.delete(id), "{id}");
        model_delete(&mut model, id);
    }
    w.commit().unwrap();
    let index = Index::open(dir).unwrap();
    assert_eq!(index.num_segments(), 2);

    let mut searcher = splade_index::Searcher::new(&index);
    let exact = searcher.search(q.view(), &SearchOptions::new(10));
    assert_eq!(named(&index, &exact), expected(&model, &q, 10));
    let stats = searcher.stats();
    assert_eq!(stats.segments_term_at_a_time, 2, "{stats:?}");
    assert!(
        stats.blocks_scored >= 128,
        "the second segment probed: {stats:?}"
    );

    let approximate = SearchOptions {
        method: Method::approximate(0.8, 0.8).unwrap(),
        ..SearchOptions::new(10)
    };
    let hits = searcher.search(q.view(), &approximate);
    assert_eq!(searcher.stats().segments_term_at_a_time, 2);
    let docs: BTreeSet<u32> = hits.iter().map(|h| h.doc).collect();
    assert_eq!(docs.len(), hits.len(), "distinct documents");
    for h in &hits {
        assert!(!index.is_deleted(h.doc));
        let d = index.document(h.doc).unwrap();
        assert_eq!(h.score.to_bits(), d.dot(&q.view()).to_bits());
    }
}
