//! Writing, opening and damaging index directories.

mod common;

use std::path::Path;

use common::{bits, build, builder, collection, query, Collection};
use proptest::prelude::*;
use splade_index::format::{FileId, Manifest, FORMAT_VERSION, MANIFEST_FILE};
use splade_index::{Index, IndexError, OpenOptions, Residency};
use splade_sparse::SparseVector;

fn small() -> Collection {
    let mut docs = Vec::new();
    for d in 0..150u32 {
        let terms: Vec<(u32, f32)> = (0..(d % 7 + 1))
            .map(|j| ((d * 7 + j * 13) % 50, 0.1 + ((d + j) % 5) as f32 * 0.4))
            .collect();
        let mut terms = terms;
        terms.sort_by_key(|p| p.0);
        terms.dedup_by_key(|p| p.0);
        docs.push(SparseVector::from_pairs(terms).unwrap());
    }
    Collection {
        dim: 50,
        docs,
        block_size: 8,
    }
}

fn queries() -> Vec<SparseVector> {
    vec![
        SparseVector::new(vec![0, 13, 26], vec![1.0, 0.5, 2.0]).unwrap(),
        SparseVector::new(vec![7, 8, 9, 49], vec![0.3, 0.3, 0.3, 1.0]).unwrap(),
    ]
}

/// Writes the small collection into `dir`, a fresh directory (whatever was there is
/// removed first: `write` refuses to write over anything).
fn write_small(dir: &Path) -> Index {
    if dir.exists() {
        std::fs::remove_dir_all(dir).unwrap();
    }
    builder(&small()).write(dir).expect("write")
}

#[test]
fn indexes_without_postings_round_trip() {
    // Zero-length files map to dangling pointers: they must read as empty arrays, not as
    // corruption (a proptest case once found this).
    for docs in [
        vec![],
        vec![SparseVector::default(), SparseVector::default()],
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let c = Collection {
            dim: 10,
            docs,
            block_size: 4,
        };
        let written = builder(&c).write(tmp.path()).expect("write");
        let q = SparseVector::new(vec![1], vec![1.0]).unwrap();
        for opened in [
            Index::open(tmp.path()).expect("open"),
            in_memory(tmp.path(), true).expect("open in memory"),
        ] {
            assert_eq!(opened.len(), written.len());
            assert!(opened.top_k(q.view(), 5).is_empty());
        }
    }
}

#[test]
fn round_trip_preserves_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let c = small();
    let memory = build(&c);
    // An index built in memory computes its checksums when first asked: `verify` works
    // on it (comparing the arrays with themselves), and below they must equal those of
    // the files written from the same documents.
    memory.verify().unwrap();
    let disk = write_small(tmp.path());
    let reopened = Index::open(tmp.path()).unwrap();
    let in_memory = OpenOptions::new()
        .residency(Residency::Memory)
        .open(tmp.path())
        .unwrap();
    for index in [&disk, &reopened, &in_memory] {
        assert_eq!(index.len(), c.docs.len());
        assert_eq!(index.dim(), 50);
        assert_eq!(index.block_size(), 8);
        assert_eq!(index.path(), Some(tmp.path()));
        assert_eq!(index.manifest().unwrap().version, FORMAT_VERSION);
        assert_eq!(
            index.manifest().unwrap().files,
            memory.manifest().unwrap().files
        );
        for (d, v) in c.docs.iter().enumerate() {
            assert_eq!(index.id(d as u32), Some(format!("doc-{d}").as_str()));
            assert_eq!(index.document(d as u32), Some(v.view()));
        }
        assert_eq!(index.doc_number("doc-42"), Some(42));
        assert_eq!(index.doc_number("nope"), None);
        assert_eq!(index.id(c.docs.len() as u32), None);
        for q in queries() {
            assert_eq!(
                bits(&index.top_k(q.view(), 7)),
                bits(&memory.top_k(q.view(), 7))
            );
        }
        index.verify().unwrap();
    }
    assert!(Index::open_unverified(tmp.path()).is_ok());
    // No temporary files are left behind.
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), FileId::ALL.len() + 1, "{names:?}");
    assert!(names.iter().all(|n| !n.starts_with('.')));
}

#[test]
fn rewriting_replaces_an_index_and_keeps_open_maps_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let old = write_small(tmp.path());
    let mut b = splade_index::IndexBuilder::new(3);
    b.add(
        "only",
        SparseVector::new(vec![2], vec![1.0]).unwrap().view(),
    )
    .unwrap();
    // Replacing an index must be asked for; nothing is touched otherwise.
    let refused = b.clone().write(tmp.path()).unwrap_err();
    assert!(
        matches!(refused, IndexError::IndexExists { .. }),
        "{refused}"
    );
    assert_eq!(Index::open(tmp.path()).unwrap().len(), 150);
    let new = b.write_over(tmp.path()).unwrap();
    assert_eq!(new.len(), 1);
    assert_eq!(old.len(), 150);
    assert_eq!(old.id(149), Some("doc-149"), "old map still readable");
    assert_eq!(Index::open(tmp.path()).unwrap().len(), 1);
}

/// Opens `dir` with its files read into memory ([`Residency::Memory`]).
fn in_memory(dir: &Path, verify: bool) -> Result<Index, IndexError> {
    OpenOptions::new()
        .verify(verify)
        .residency(Residency::Memory)
        .open(dir)
}

/// A segmented index (several commits, deletions) read into memory searches and reads as
/// the mapped one, and a writer still commits to its directory afterwards.
#[test]
fn a_segmented_index_opens_in_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let c = small();
    let mut w = splade_index::IndexWriter::create(tmp.path(), c.dim)
        .unwrap()
        .block_size(4)
        .merge_policy(splade_index::MergePolicy::never());
    for (d, v) in c.docs.iter().enumerate() {
        w.add(&format!("doc-{d}"), v.view()).unwrap();
        if d % 50 == 49 {
            w.commit().unwrap();
        }
    }
    w.delete("doc-7");
    w.commit().unwrap();
    let mapped = Index::open(tmp.path()).unwrap();
    let memory = in_memory(tmp.path(), true).unwrap();
    assert_eq!(memory.num_segments(), 3);
    assert_eq!(memory.num_deleted(), mapped.num_deleted());
    for q in queries() {
        assert_eq!(
            bits(&memory.top_k(q.view(), 20)),
            bits(&mapped.top_k(q.view(), 20))
        );
    }
    for d in 0..c.docs.len() as u32 {
        assert_eq!(memory.document(d), mapped.document(d));
    }
    memory.verify().unwrap();
    w.add("late", c.docs[0].view()).unwrap();
    w.commit().unwrap();
    let reopened = in_memory(tmp.path(), true).unwrap();
    assert!(reopened.doc_number("late").is_some());
    assert_eq!(reopened.num_segments(), 4);
}

fn expect_corrupt(result: Result<Index, IndexError>, file: &str) {
    match result {
        Err(IndexError::Corrupt { path, reason }) => assert!(
            path.ends_with(file),
            "error names {} instead of {file}: {reason}",
            path.display()
        ),
        Err(other) => panic!("expected a corruption error naming {file}, got: {other}"),
        Ok(_) => panic!("damaged {file} was accepted"),
    }
}

#[test]
fn every_damaged_file_is_reported_by_name() {
    for id in FileId::ALL {
        let tmp = tempfile::tempdir().unwrap();
        write_small(tmp.path());
        let path = tmp.path().join(id.name());
        let mut bytes = std::fs::read(&path).unwrap();
        if bytes.is_empty() {
            continue;
        }
        // A flipped bit: checksum.
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        expect_corrupt(Index::open(tmp.path()), id.name());
        expect_corrupt(in_memory(tmp.path(), true), id.name());
        // Truncated: size.
        bytes[mid] ^= 0x10;
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        expect_corrupt(Index::open(tmp.path()), id.name());
        expect_corrupt(Index::open_unverified(tmp.path()), id.name());
        expect_corrupt(in_memory(tmp.path(), false), id.name());
        // Missing.
        std::fs::remove_file(&path).unwrap();
        for opened in [Index::open(tmp.path()), in_memory(tmp.path(), true)] {
            match opened {
                Err(IndexError::Io { path, .. }) => assert!(path.ends_with(id.name())),
                other => panic!("missing {} gave {other:?}", id.name()),
            }
        }
    }
}

fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join(MANIFEST_FILE);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn wrong_format_version_or_manifest_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    write_small(tmp.path());
    // A later version than this build reads.
    edit_manifest(tmp.path(), |v| v["version"] = 8.into());
    let err = Index::open(tmp.path()).unwrap_err();
    assert!(matches!(err, IndexError::UnsupportedFormat { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("manifest.json") && msg.contains("version 8") && !msg.contains("rebuild"),
        "{msg}"
    );
    // Version 7 is the segmented layout: a version-6 manifest relabelled is invalid.
    edit_manifest(tmp.path(), |v| v["version"] = 7.into());
    expect_corrupt(Index::open(tmp.path()), MANIFEST_FILE);
    // Older versions are asked to be rebuilt: 1 (blocks in insertion order, no
    // `docs.order`), 2 and 3 (single segment and segments with `blocks.terms` and 8-byte
    // entry offsets and slots), 4 and 5 (single segment and segments with slot numbers in
    // the lists, `bounds.slots`, and `blocks.entry_offsets`).
    for old in [1u32, 2, 3, 4, 5] {
        edit_manifest(tmp.path(), |v| v["version"] = old.into());
        let err = Index::open(tmp.path()).unwrap_err();
        assert!(matches!(err, IndexError::UnsupportedFormat { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("version {old}")) && msg.contains("rebuild"),
            "{msg}"
        );
    }

    edit_manifest(tmp.path(), |v| {
        v["version"] = FORMAT_VERSION.into();
        v["format"] = "something-else".into();
    });
    assert!(matches!(
        Index::open(tmp.path()),
        Err(IndexError::UnsupportedFormat { .. })
    ));

    // A manifest that lies about the shape fails structural validation, even unverified.
    for (field, value) in [
        ("num_docs", 151u64),
        ("dim", 10),
        ("block_size", 0),
        ("nnz", 3),
    ] {
        write_small(tmp.path());
        edit_manifest(tmp.path(), |v| v[field] = value.into());
        expect_corrupt(Index::open_unverified(tmp.path()), "");
    }

    write_small(tmp.path());
    std::fs::write(tmp.path().join(MANIFEST_FILE), b"{not json").unwrap();
    expect_corrupt(Index::open(tmp.path()), MANIFEST_FILE);
    std::fs::remove_file(tmp.path().join(MANIFEST_FILE)).unwrap();
    assert!(matches!(
        Index::open(tmp.path()),
        Err(IndexError::Io { .. })
    ));
    let m = Manifest::read(Path::new("/nonexistent-dir"));
    assert!(m.is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random damage to one file (bit flips, truncation, extension) is always caught by
    /// `open` (checksums); `open_unverified` never panics, and whatever it accepts can be
    /// searched without panicking.
    #[test]
    fn damaged_files_never_panic(
        (c, q) in collection().prop_flat_map(|c| { let d = c.dim; (Just(c), query(d)) }),
        file in 0usize..FileId::ALL.len(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 0..4),
        cut in prop_oneof![Just(None), any::<prop::sample::Index>().prop_map(Some)],
        extend in 0usize..3,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        builder(&c).write(tmp.path()).unwrap();
        let id = FileId::ALL[file];
        let path = tmp.path().join(id.name());
        let original = std::fs::read(&path).unwrap();
        let mut bytes = original.clone();
        if !bytes.is_empty() {
            for (at, bit) in &flips {
                let i = at.index(bytes.len());
                bytes[i] ^= 1 << bit;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len()));
            }
        }
        bytes.extend(std::iter::repeat_n(0xAB, extend));
        std::fs::write(&path, &bytes).unwrap();
        let damaged = bytes != original;
        match Index::open(tmp.path()) {
            Ok(index) => {
                prop_assert!(!damaged, "damage to {} went unnoticed", id.name());
                let _ = index.top_k(q.view(), 5);
            }
            Err(e) => {
                prop_assert!(damaged, "undamaged index rejected: {e}");
                prop_assert!(e.to_string().contains(id.name()), "{e}");
            }
        }
        if let Ok(index) = Index::open_unverified(tmp.path()) {
            let _ = index.top_k(q.view(), 5);
            let _ = index.brute_force_top_k(q.view(), 5);
            let _ = index.explain(q.view(), 0);
            for d in 0..index.len() as u32 {
                let _ = index.id(d);
                let _ = index.document(d);
            }
        }
    }
}

#[test]
fn a_reordered_index_round_trips_with_its_permutation() {
    use splade_index::{IndexBuilder, Reorder};
    use splade_sparse::SparseVector;
    let tmp = tempfile::tempdir().unwrap();
    let docs: Vec<SparseVector> = (0..300u32)
        .map(|d| {
            SparseVector::from_pairs(vec![(d % 7, 1.0 + (d % 5) as f32), (7 + d % 3, 0.5)]).unwrap()
        })
        .collect();
    let mut b = IndexBuilder::new(10)
        .block_size(16)
        .reorder(Reorder::HeaviestTerms);
    for (d, v) in docs.iter().enumerate() {
        b.add(&format!("d{d}"), v.view()).unwrap();
    }
    let written = b.write(tmp.path()).unwrap();
    assert_eq!(written.manifest().unwrap().version, FORMAT_VERSION);
    assert!(tmp.path().join(FileId::DocOrder.name()).exists());
    let order: Vec<u32> = std::fs::read(tmp.path().join("docs.order"))
        .unwrap()
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_ne!(
        order,
        (0..300).collect::<Vec<u32>>(),
        "documents were reordered"
    );
    let index = Index::open(tmp.path()).unwrap();
    for d in 0..300u32 {
        assert_eq!(
            index.id(d),
            Some(format!("d{d}").as_str()),
            "ids keep insertion numbers"
        );
    }
    let q = SparseVector::from_pairs(vec![(2, 1.0), (8, 1.0)]).unwrap();
    for k in [1, 5, 50, 400] {
        assert_eq!(
            index.top_k(q.view(), k),
            index.brute_force_top_k(q.view(), k)
        );
        assert_eq!(index.top_k(q.view(), k), written.top_k(q.view(), k));
    }
    // A damaged permutation (a repeated entry) is a structural error even unverified.
    let mut bytes = std::fs::read(tmp.path().join("docs.order")).unwrap();
    let first: [u8; 4] = bytes[0..4].try_into().unwrap();
    bytes[4..8].copy_from_slice(&first);
    std::fs::write(tmp.path().join("docs.order"), &bytes).unwrap();
    expect_corrupt(Index::open_unverified(tmp.path()), "docs.order");
}

fn read_u32s(path: &Path) -> Vec<u32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn write_u32s(path: &Path, values: &[u32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

/// The (term, block) pairs of the lists (`bounds.starts`, `bounds.lengths`) must point
/// inside their block's entries, at ascending positions, and cover every entry once: each
/// way of breaking that is a structural error naming the file, even unverified.
#[test]
fn damaged_pair_entries_are_structural_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let file = |id: FileId| dir.join(id.name());
    write_small(dir);
    let blocks = read_u32s(&file(FileId::BoundBlocks));
    let starts = read_u32s(&file(FileId::BoundStarts));
    let lengths = std::fs::read(file(FileId::BoundLengths)).unwrap();
    let docs = std::fs::read(file(FileId::BlockEntryDocs)).unwrap();
    assert_eq!(blocks.len(), starts.len());
    // Two pairs of one block (two terms), and a pair of two entries or more.
    let (p, q) = (0..blocks.len())
        .flat_map(|p| (p + 1..blocks.len()).map(move |q| (p, q)))
        .find(|&(p, q)| blocks[p] == blocks[q])
        .expect("two terms share a block");
    let long = (0..lengths.len())
        .find(|&i| lengths[i] >= 1)
        .expect("a pair with two entries");
    let damages: Vec<(FileId, Box<dyn Fn()>)> = vec![
        // A pair pointing into another block's entries.
        (FileId::BoundStarts, {
            let mut s = starts.clone();
            let other = (0..blocks.len()).find(|&i| blocks[i] != blocks[p]).unwrap();
            s[p] = starts[other];
            let path = file(FileId::BoundStarts);
            Box::new(move || write_u32s(&path, &s))
        }),
        // A pair starting past every entry.
        (FileId::BoundStarts, {
            let mut s = starts.clone();
            s[q] = u32::MAX;
            let path = file(FileId::BoundStarts);
            Box::new(move || write_u32s(&path, &s))
        }),
        // Two pairs claiming the same entries (the lengths no longer add up either).
        (FileId::BoundStarts, {
            let (mut s, mut l) = (starts.clone(), lengths.clone());
            (s[q], l[q]) = (starts[p], lengths[p]);
            let (ps, pl) = (file(FileId::BoundStarts), file(FileId::BoundLengths));
            Box::new(move || {
                write_u32s(&ps, &s);
                std::fs::write(&pl, &l).unwrap();
            })
        }),
        // An entry no pair claims.
        (FileId::BoundLengths, {
            let mut l = lengths.clone();
            l[long] -= 1;
            let path = file(FileId::BoundLengths);
            Box::new(move || std::fs::write(&path, &l).unwrap())
        }),
        // A position past the block's documents (the last pair's last entry).
        (FileId::BlockEntryDocs, {
            let mut d = docs.clone();
            *d.last_mut().unwrap() = 255;
            let path = file(FileId::BlockEntryDocs);
            Box::new(move || std::fs::write(&path, &d).unwrap())
        }),
        // A pair's positions out of order.
        (FileId::BlockEntryDocs, {
            let mut d = docs.clone();
            let at = starts[long] as usize;
            d.swap(at, at + 1);
            let path = file(FileId::BlockEntryDocs);
            Box::new(move || std::fs::write(&path, &d).unwrap())
        }),
    ];
    for (id, damage) in damages {
        write_small(dir);
        damage();
        expect_corrupt(Index::open_unverified(dir), id.name());
    }
    // Undamaged, the same directory opens.
    write_small(dir);
    assert!(Index::open_unverified(dir).is_ok());
}
