//! `merge::merge_indexes`: indexes built from contiguous shards of a collection, merged in
//! shard order, equal the index built from the whole collection file for file, byte for
//! byte; deleted documents are left out; bad inputs are refused with clear errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use splade_index::merge::{merge_indexes, MergeOptions};
use splade_index::{Index, IndexBuilder, IndexWriter, Reorder};
use splade_sparse::SparseVector;

/// `n` deterministic documents over `dim` terms (xorshift), some of them repeated.
fn documents(n: usize, dim: u32) -> Vec<(String, SparseVector)> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut docs: Vec<(String, SparseVector)> = Vec::with_capacity(n);
    for d in 0..n {
        let vector = if d % 11 == 10 {
            docs[d / 2].1.clone()
        } else {
            let terms = 1 + next() % 40;
            let mut pairs: Vec<(u32, f32)> = (0..terms)
                .map(|_| ((next() % dim as u64) as u32, (next() % 1000) as f32 / 250.0))
                .collect();
            pairs.sort_by_key(|p| p.0);
            pairs.dedup_by_key(|p| p.0);
            SparseVector::from_pairs(pairs).unwrap()
        };
        docs.push((format!("doc-{d}"), vector));
    }
    docs
}

fn build(dir: &Path, dim: usize, docs: &[(String, SparseVector)], reorder: Reorder) -> Index {
    let mut b = IndexBuilder::new(dim).reorder(reorder);
    for (id, v) in docs {
        b.add(id, v.view()).unwrap();
    }
    b.write(dir).unwrap()
}

/// Every file of `dir` (recursively) by relative path.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// Contiguous shard `i` of `n` over `total` documents (as `--shard i/n` splits).
fn shard(i: usize, n: usize, total: usize) -> std::ops::Range<usize> {
    i * total / n..(i + 1) * total / n
}

#[test]
fn shards_merged_in_order_equal_the_whole_build_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    // 1,500 documents: several k-means clusters, so the layout depends on all of them.
    let docs = documents(1500, 300);
    for reorder in [Reorder::Clustered, Reorder::None] {
        let whole = tmp.path().join(format!("whole-{reorder:?}"));
        build(&whole, 300, &docs, reorder);
        for n in [1usize, 2, 3, 7] {
            let shards: Vec<PathBuf> = (0..n)
                .map(|i| {
                    let dir = tmp.path().join(format!("shard-{reorder:?}-{i}-of-{n}"));
                    build(&dir, 300, &docs[shard(i, n, docs.len())], reorder);
                    dir
                })
                .collect();
            let out = tmp.path().join(format!("merged-{reorder:?}-{n}"));
            let options = MergeOptions {
                reorder,
                ..MergeOptions::default()
            };
            let summary = merge_indexes(&shards, &out, &options).unwrap();
            assert_eq!(summary.documents.iter().sum::<usize>(), docs.len());
            assert_eq!(summary.index.len(), docs.len());
            let (a, b) = (files(&whole), files(&out));
            assert_eq!(
                a.keys().collect::<Vec<_>>(),
                b.keys().collect::<Vec<_>>(),
                "{n} shards"
            );
            for (name, bytes) in &a {
                assert!(
                    bytes == &b[name],
                    "{n} shards, {reorder:?}: {name:?} differs"
                );
            }
        }
    }
}

#[test]
fn deleted_documents_are_left_out_and_updated_shards_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = documents(400, 120);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    build(&a, 120, &docs[..200], Reorder::default());
    build(&b, 120, &docs[200..300], Reorder::default());
    // Shard b: one deletion and a segment of further documents.
    let mut w = IndexWriter::open(&b).unwrap();
    assert!(w.delete("doc-210"));
    for (id, v) in &docs[300..] {
        w.add(id, v.view()).unwrap();
    }
    w.commit().unwrap();
    let live: Vec<(String, SparseVector)> = docs
        .iter()
        .filter(|(id, _)| id != "doc-210")
        .cloned()
        .collect();
    let whole = tmp.path().join("whole");
    build(&whole, 120, &live, Reorder::default());
    let out = tmp.path().join("merged");
    let summary = merge_indexes(&[a, b], &out, &MergeOptions::default()).unwrap();
    assert_eq!(summary.documents, vec![200, 199]);
    assert_eq!(files(&whole), files(&out));
}

#[test]
fn bad_merges_are_refused_with_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = documents(60, 50);
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    build(&a, 50, &docs[..30], Reorder::default());
    build(&b, 50, &docs[20..], Reorder::default());
    build(&c, 80, &docs[30..], Reorder::default());
    let err = |inputs: &[PathBuf], out: &Path| {
        merge_indexes(inputs, out, &MergeOptions::default())
            .unwrap_err()
            .to_string()
    };
    let out = tmp.path().join("out");
    let e = err(&[a.clone(), b.clone()], &out);
    assert!(
        e.contains("document 'doc-20'") && e.contains("input 1") && e.contains("input 2"),
        "{e}"
    );
    let e = err(&[a.clone(), a.clone()], &out);
    assert!(
        e.contains("doc-0") && e.contains("ids must be unique"),
        "{e}"
    );
    let e = err(&[a.clone(), c.clone()], &out);
    assert!(
        e.contains("has dimension 80") && e.contains("has dimension 50"),
        "{e}"
    );
    let e = err(&[], &out);
    assert!(e.contains("give at least one index"), "{e}");
    let e = err(&[a.clone(), tmp.path().join("missing")], &out);
    assert!(e.contains("missing: no index there"), "{e}");
    let e = err(std::slice::from_ref(&a), &a);
    assert!(e.contains("already holds a splade index"), "{e}");
    let e = merge_indexes(
        std::slice::from_ref(&a),
        &a,
        &MergeOptions {
            overwrite: true,
            ..MergeOptions::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("cannot be one of its inputs"), "{e}");
    // Nothing was written by the refused merges.
    assert!(!out.exists());
}
