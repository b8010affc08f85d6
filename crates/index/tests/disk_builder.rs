//! [`DiskIndexBuilder`]: the index it streams to disk is byte for byte the one
//! [`IndexBuilder`] writes from the same documents; it refuses the same targets, replaces an
//! index atomically with `create_over`, cleans up after itself, and its searches equal the
//! brute force.

mod common;

use std::path::Path;

use common::{bits, doc_id, xorshift};
use proptest::prelude::*;
use splade_index::format::{FileId, MANIFEST_FILE};
use splade_index::{DiskIndexBuilder, Index, IndexBuilder, IndexError, Reorder};
use splade_sparse::SparseVector;

/// `n` documents over `dim` terms: lengths 0..60, a few stopword-like terms in most
/// documents (so the clustering leaves them out), the rest spread unevenly.
fn documents(n: usize, dim: u32, seed: u64) -> Vec<SparseVector> {
    let mut next = xorshift(seed);
    (0..n)
        .map(|_| {
            let len = next() % 60;
            let mut pairs: Vec<(u32, f32)> = (0..len)
                .map(|i| {
                    let t = if i < 3 && !next().is_multiple_of(4) {
                        i as u32 % dim
                    } else {
                        let r = next() % (dim as u64 * dim as u64);
                        (r as f64).sqrt() as u32 % dim
                    };
                    (t, (next() % 4000) as f32 / 512.0)
                })
                .collect();
            pairs.sort_by_key(|p| p.0);
            pairs.dedup_by_key(|p| p.0);
            SparseVector::from_pairs(pairs).unwrap()
        })
        .collect()
}

/// Every file of the index directory `dir` (arrays and manifest), by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<String> = FileId::ALL.iter().map(|f| f.name().to_string()).collect();
    names.push(MANIFEST_FILE.to_string());
    names
        .into_iter()
        .map(|n| {
            let bytes = std::fs::read(dir.join(&n)).unwrap_or_else(|e| panic!("{n}: {e}"));
            (n, bytes)
        })
        .collect()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn streams_the_same_bytes_as_the_in_memory_builder() {
    let tmp = tempfile::tempdir().unwrap();
    let dim = 400;
    let docs = documents(3000, dim, 0x5eed_d15c);
    for (case, (block_size, reorder)) in [
        (None, Reorder::Clustered),
        (Some(8), Reorder::Clustered),
        (Some(5), Reorder::HeaviestTerms),
        (Some(16), Reorder::None),
    ]
    .into_iter()
    .enumerate()
    {
        let (a, b) = (
            tmp.path().join(format!("memory{case}")),
            tmp.path().join(format!("disk{case}")),
        );
        let mut memory = IndexBuilder::new(dim as usize).reorder(reorder);
        let mut disk = DiskIndexBuilder::create(&b, dim as usize)
            .unwrap()
            .reorder(reorder);
        if let Some(bs) = block_size {
            memory = memory.block_size(bs);
            disk = disk.block_size(bs);
        }
        for (d, v) in docs.iter().enumerate() {
            assert_eq!(memory.add(&doc_id(d), v.view()).unwrap(), d as u32);
            assert_eq!(disk.add(&doc_id(d), v.view()).unwrap(), d as u32);
        }
        assert_eq!(disk.len(), docs.len());
        let expected_block_size = memory.effective_block_size();
        assert_eq!(disk.effective_block_size(), expected_block_size);
        memory.write(&a).unwrap();
        let manifest = disk.finish().unwrap();
        assert_eq!(manifest.num_docs, docs.len() as u64);
        assert_eq!(manifest.block_size as usize, expected_block_size);
        assert!(files(&a) == files(&b), "case {case}: the files differ");
        assert_eq!(entries(&a), entries(&b), "case {case}: no file left behind");
        // The temporary build directories are gone.
        assert!(
            entries(tmp.path())
                .iter()
                .all(|e| e.starts_with("memory") || e.starts_with("disk")),
            "{:?}",
            entries(tmp.path())
        );
        let index = Index::open(&b).unwrap();
        let q = SparseVector::from_pairs(vec![(0, 1.0), (5, 0.5), (17, 2.0), (200, 1.0)]).unwrap();
        assert_eq!(
            bits(&index.top_k(q.view(), 10)),
            bits(&index.brute_force_top_k(q.view(), 10))
        );
    }
}

#[test]
fn refuses_what_write_refuses_and_replaces_atomically_with_create_over() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    let docs = documents(200, 50, 7);
    let mut b = DiskIndexBuilder::create(&dir, 50).unwrap();
    for (d, v) in docs.iter().enumerate() {
        b.add(&doc_id(d), v.view()).unwrap();
    }
    b.finish().unwrap();
    // An index is there: `create` refuses before any document, `create_over` replaces it.
    assert!(matches!(
        DiskIndexBuilder::create(&dir, 50),
        Err(IndexError::IndexExists { .. })
    ));
    let mut over = DiskIndexBuilder::create_over(&dir, 50).unwrap();
    let v = SparseVector::from_pairs(vec![(3, 1.0)]).unwrap();
    over.add("new", v.view()).unwrap();
    let manifest = over.finish().unwrap();
    assert_eq!(manifest.num_docs, 1);
    let index = Index::open(&dir).unwrap();
    assert_eq!(index.len(), 1);
    assert_eq!(index.id(index.top_k(v.view(), 1)[0].doc), Some("new"));
    // A directory holding something else, or a file: refused.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    assert!(matches!(
        DiskIndexBuilder::create_over(&other, 50),
        Err(IndexError::NotAnIndex { .. })
    ));
    assert!(matches!(
        DiskIndexBuilder::create(&other.join("notes.txt"), 50),
        Err(IndexError::NotADirectory { .. })
    ));
    assert_eq!(entries(&other), ["notes.txt"]);
}

#[test]
fn bad_documents_and_dimensions_are_errors_and_an_abandoned_build_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    let mut b = DiskIndexBuilder::create(&dir, 1 << 24).unwrap();
    let v = SparseVector::from_pairs(vec![(3, 1.0), (40, 2.0)]).unwrap();
    b.add("a", v.view()).unwrap();
    // A refused document leaves nothing behind: not its id, not its terms (index 45).
    let wider = SparseVector::from_pairs(vec![(3, 1.0), (45, 2.0)]).unwrap();
    let err = b.add("a", wider.view()).unwrap_err().to_string();
    assert!(err.contains("duplicate id") && err.contains('a'), "{err}");
    let negative = SparseVector::from_pairs(vec![(1, -1.0)]).unwrap();
    assert!(b.add("b", negative.view()).is_err());
    assert_eq!(b.len(), 1);
    assert_eq!(b.indices_used(), 41);
    let err = b.set_dim(40).unwrap_err().to_string();
    assert!(err.contains("40"), "{err}");
    b.set_dim(41).unwrap();
    assert_eq!(b.dim(), 41);
    let too_big = SparseVector::from_pairs(vec![(41, 1.0)]).unwrap();
    assert!(b.add("c", too_big.view()).is_err());
    // Dropped before `finish`: the temporary directory goes, nothing is published.
    drop(b);
    assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
    // A bad block size is refused by `finish`, which cleans up too.
    let mut b = DiskIndexBuilder::create(&dir, 50).unwrap().block_size(0);
    b.add("a", v.view()).unwrap();
    assert!(b.finish().is_err());
    assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
}

/// The build directory of a crashed build (a process that is gone), spilled slot lists
/// included, is removed by the next build of the same target.
#[cfg(target_os = "linux")]
#[test]
fn a_crashed_builds_leftovers_are_removed_by_the_next_build() {
    let tmp = tempfile::tempdir().unwrap();
    // Process ids stay below 2^22 on Linux.
    let stale = tmp.path().join(".idx.splade-build-4999999");
    std::fs::create_dir(&stale).unwrap();
    for name in [
        "forward.terms",
        "forward.values",
        "build.slots.0",
        "build.slots.12",
    ] {
        std::fs::write(stale.join(name), b"partial").unwrap();
    }
    let mut b = DiskIndexBuilder::create(&tmp.path().join("idx"), 10).unwrap();
    b.add(
        "a",
        SparseVector::from_pairs(vec![(1, 1.0)]).unwrap().view(),
    )
    .unwrap();
    b.finish().unwrap();
    assert_eq!(entries(tmp.path()), ["idx"]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Any collection: the streamed index equals the in-memory one byte for byte.
    #[test]
    fn any_collection_streams_identically(
        seed in any::<u64>(),
        n in 0usize..400,
        dim in 1u32..300,
        block in 1usize..40,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let docs = documents(n, dim, seed | 1);
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        let mut memory = IndexBuilder::new(dim as usize).block_size(block);
        let mut disk = DiskIndexBuilder::create(&b, dim as usize).unwrap().block_size(block);
        for (d, v) in docs.iter().enumerate() {
            memory.add(&doc_id(d), v.view()).unwrap();
            disk.add(&doc_id(d), v.view()).unwrap();
        }
        memory.write(&a).unwrap();
        disk.finish().unwrap();
        prop_assert!(files(&a) == files(&b));
    }
}
