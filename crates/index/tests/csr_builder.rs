//! `IndexBuilder::from_csr`: the same index as adding the documents one by one, and every
//! bad input refused with the id or the array it concerns.

use splade_index::{IndexBuilder, IndexError};
use splade_sparse::SparseVector;

/// Seeded random documents: `(id, vector)` with up to 40 distinct terms below `terms`.
fn documents(n: usize, terms: u64, seed: u64) -> Vec<(String, SparseVector)> {
    let mut s = seed;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    (0..n)
        .map(|d| {
            let len = next() % 40;
            let mut pairs: Vec<(u32, f32)> = (0..len)
                .map(|_| ((next() % terms) as u32, (next() % 1000) as f32 / 37.0))
                .collect();
            pairs.sort_by_key(|p| p.0);
            pairs.dedup_by_key(|p| p.0);
            (format!("doc-{d}"), SparseVector::from_pairs(pairs).unwrap())
        })
        .collect()
}

/// The CSR arrays of `docs`.
fn csr(docs: &[(String, SparseVector)]) -> (Vec<String>, Vec<u64>, Vec<u32>, Vec<f32>) {
    let mut indptr = vec![0u64];
    let (mut indices, mut values) = (Vec::new(), Vec::new());
    for (_, v) in docs {
        indices.extend_from_slice(v.indices());
        values.extend_from_slice(v.values());
        indptr.push(indices.len() as u64);
    }
    let ids = docs.iter().map(|(id, _)| id.clone()).collect();
    (ids, indptr, indices, values)
}

/// Every file of an index directory, by name.
fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Built from CSR arrays or document by document, the index directories are byte for byte
/// the same, and so are the searches of the indexes built in memory.
#[test]
fn csr_build_equals_adding_one_by_one() {
    let docs = documents(3000, 500, 0x5eed_c5a0);
    let tmp = tempfile::tempdir().unwrap();
    let (ids, indptr, indices, values) = csr(&docs);
    let mut one_by_one = IndexBuilder::new(500);
    for (id, v) in &docs {
        one_by_one.add(id, v.view()).unwrap();
    }
    let from_csr =
        IndexBuilder::from_csr(500, &ids, indptr.clone(), indices.clone(), values.clone()).unwrap();
    assert_eq!(from_csr.len(), docs.len());
    one_by_one.clone().write(&tmp.path().join("a")).unwrap();
    from_csr.clone().write(&tmp.path().join("b")).unwrap();
    assert_eq!(files(&tmp.path().join("a")), files(&tmp.path().join("b")));
    let (a, b) = (one_by_one.build().unwrap(), from_csr.build().unwrap());
    for (_, q) in docs.iter().step_by(97) {
        assert_eq!(a.top_k(q.view(), 10), b.top_k(q.view(), 10));
    }
}

/// Documents added after a CSR build are numbered after it, and their ids are checked
/// against the CSR ids.
#[test]
fn documents_added_after_csr_are_checked_against_its_ids() {
    let docs = documents(50, 30, 7);
    let (ids, indptr, indices, values) = csr(&docs);
    let mut b = IndexBuilder::from_csr(30, &ids, indptr, indices, values).unwrap();
    let v = SparseVector::new(vec![3], vec![1.0]).unwrap();
    let err = b.add("doc-17", v.view()).unwrap_err().to_string();
    assert!(
        err.contains("duplicate id") && err.contains("doc-17"),
        "{err}"
    );
    assert_eq!(b.add("new", v.view()).unwrap(), 50);
    let index = b.build().unwrap();
    assert_eq!(index.id(50), Some("new"));
}

fn invalid_document(e: IndexError) -> (String, String) {
    match e {
        IndexError::InvalidDocument { id, message } => (id, message),
        other => panic!("expected an invalid document, got {other}"),
    }
}

fn invalid_argument(e: IndexError) -> String {
    match e {
        IndexError::InvalidArgument(message) => message,
        other => panic!("expected an invalid argument, got {other}"),
    }
}

/// Arrays that do not make a CSR matrix are refused, naming the array.
#[test]
fn malformed_arrays_are_refused() {
    let ids = ["a", "b"];
    let build = |indptr: Vec<u64>, indices: Vec<u32>, values: Vec<f32>| {
        IndexBuilder::from_csr(10, &ids, indptr, indices, values).unwrap_err()
    };
    let m = invalid_argument(build(vec![0, 1], vec![1], vec![1.0]));
    assert!(m.contains("indptr has 2 entries for 2 ids"), "{m}");
    let m = invalid_argument(build(vec![0, 1, 2], vec![1, 2], vec![1.0]));
    assert!(m.contains("1 values for 2 indices"), "{m}");
    let m = invalid_argument(build(vec![1, 1, 2], vec![1, 2], vec![1.0, 1.0]));
    assert!(m.contains("from 0"), "{m}");
    let m = invalid_argument(build(vec![0, 1, 3], vec![1, 2], vec![1.0, 1.0]));
    assert!(m.contains("number of indices (2)"), "{m}");
    let m = invalid_argument(build(vec![0, 2, 1], vec![1, 2], vec![1.0, 1.0]));
    // 0, 2, 1 ends at 1, not 2: the end is checked first; a decrease in the middle:
    assert!(m.contains("from 0 to the number of indices"), "{m}");
    let m = invalid_argument(
        IndexBuilder::from_csr(
            10,
            &["a", "b", "c"],
            vec![0, 2, 1, 2],
            vec![1, 2],
            vec![1.0, 1.0],
        )
        .unwrap_err(),
    );
    assert!(m.contains("indptr decreases after entry 1"), "{m}");
}

/// A bad document is reported by its id, the first one in document order whatever its
/// fault.
#[test]
fn the_first_bad_document_is_reported_by_id() {
    let ids = ["a", "b", "c", "b", "e"];
    let indptr = vec![0u64, 1, 2, 4, 5, 6];
    let good = || (vec![1u32, 2, 3, 4, 5, 6], vec![1.0f32; 6]);
    let (mut indices, values) = good();
    indices[2] = 9; // "c" holds 9 then 4: not ascending
    let (id, m) = invalid_document(
        IndexBuilder::from_csr(10, &ids, indptr.clone(), indices, values).unwrap_err(),
    );
    assert_eq!(id, "c", "{m}");
    let (indices, values) = good();
    let (id, m) = invalid_document(
        IndexBuilder::from_csr(10, &ids, indptr.clone(), indices, values).unwrap_err(),
    );
    assert_eq!((id.as_str(), m.as_str()), ("b", "duplicate id"));
    let (indices, mut values) = good();
    values[5] = -1.0; // "e", after the duplicate: the duplicate comes first
    let (id, _) = invalid_document(
        IndexBuilder::from_csr(10, &ids, indptr.clone(), indices, values).unwrap_err(),
    );
    assert_eq!(id, "b");
    let ids = ["a", "b", "c", "d", "e"];
    let (indices, mut values) = good();
    values[5] = -1.0;
    let (id, m) = invalid_document(
        IndexBuilder::from_csr(10, &ids, indptr.clone(), indices, values).unwrap_err(),
    );
    assert_eq!(id, "e");
    assert!(m.contains("negative weight"), "{m}");
    let (indices, values) = good();
    let (id, m) = invalid_document(
        IndexBuilder::from_csr(6, &ids, indptr.clone(), indices, values).unwrap_err(),
    );
    assert_eq!(id, "e");
    assert!(m.contains("out of range for dimension 6"), "{m}");
    let (indices, values) = good();
    let (id, _) = invalid_document(
        IndexBuilder::from_csr(10, &["a", "", "c", "d", "e"], indptr, indices, values).unwrap_err(),
    );
    assert_eq!(id, "");
    let empty: [&str; 0] = [];
    let index = IndexBuilder::from_csr(10, &empty, vec![0], vec![], vec![])
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(index.len(), 0);
}

/// With many documents (checked in parallel, in runs), the first bad one in document order
/// is still the one reported, wherever the others are.
#[test]
fn the_first_bad_of_many_documents_is_reported() {
    let n = 20_000;
    let ids: Vec<String> = (0..n).map(|d| format!("d{d}")).collect();
    let indptr: Vec<u64> = (0..=n as u64).map(|d| 2 * d).collect();
    let good = || {
        let indices: Vec<u32> = (0..n as u32).flat_map(|d| [d % 7, 7 + d % 5]).collect();
        (indices, vec![0.5f32; 2 * n])
    };
    let build = |ids: &[String], indices, values| {
        invalid_document(
            IndexBuilder::from_csr(20, ids, indptr.clone(), indices, values).unwrap_err(),
        )
    };
    // Bad vectors at 17,000, 12,345 and 3,001 (out of range, negative, not ascending).
    let (mut indices, mut values) = good();
    indices[2 * 17_000] = 25;
    values[2 * 12_345 + 1] = -1.0;
    indices[2 * 3_001] = 15;
    let (id, m) = build(&ids, indices.clone(), values.clone());
    assert_eq!(id, "d3001", "{m}");
    // A duplicate id before the first bad vector comes first; one after it does not.
    let mut dup = ids.clone();
    dup[2_500] = "d10".into();
    let (id, m) = build(&dup, indices.clone(), values.clone());
    assert_eq!((id.as_str(), m.as_str()), ("d10", "duplicate id"));
    let mut dup = ids.clone();
    dup[9_000] = "d10".into();
    let (id, _) = build(&dup, indices, values);
    assert_eq!(id, "d3001");
    // The statistics of good documents: the index equals the one built by `add`.
    let (indices, values) = good();
    let a = IndexBuilder::from_csr(20, &ids, indptr.clone(), indices.clone(), values.clone())
        .unwrap()
        .build()
        .unwrap();
    let mut b = IndexBuilder::new(20);
    for (d, id) in ids.iter().enumerate() {
        let (s, e) = (2 * d, 2 * d + 2);
        let v = SparseVector::new(indices[s..e].to_vec(), values[s..e].to_vec()).unwrap();
        b.add(id, v.view()).unwrap();
    }
    let b = b.build().unwrap();
    let q = SparseVector::new(vec![3, 9], vec![1.0, 2.0]).unwrap();
    assert_eq!(
        a.brute_force_top_k(q.view(), 50),
        b.brute_force_top_k(q.view(), 50)
    );
    assert_eq!(a.top_k(q.view(), 50), b.top_k(q.view(), 50));
}

/// A vocabulary larger than the statistics arrays are sized to directly (more than 2^20
/// terms) is first scanned for its largest index; the index is the one `add` builds.
#[test]
fn a_huge_vocabulary_builds_the_same_index() {
    let dim = (1usize << 20) + 10;
    let ids = ["a", "b", "c"];
    let (indptr, indices, values) = (
        vec![0u64, 2, 3, 5],
        vec![3u32, (1 << 20) + 4, 7, 3, 1 << 20],
        vec![0.5f32, 2.0, 1.0, 1.5, 0.25],
    );
    let a = IndexBuilder::from_csr(dim, &ids, indptr.clone(), indices.clone(), values.clone())
        .unwrap()
        .build()
        .unwrap();
    let mut b = IndexBuilder::new(dim);
    for (d, id) in ids.iter().enumerate() {
        let (s, e) = (indptr[d] as usize, indptr[d + 1] as usize);
        let v = SparseVector::new(indices[s..e].to_vec(), values[s..e].to_vec()).unwrap();
        b.add(id, v.view()).unwrap();
    }
    let b = b.build().unwrap();
    let q = SparseVector::new(vec![3, (1 << 20) + 4], vec![1.0, 1.0]).unwrap();
    let hits = a.top_k(q.view(), 3);
    assert_eq!(hits, b.top_k(q.view(), 3));
    assert_eq!(a.id(hits[0].doc), Some("a"));
    assert_eq!(hits[0].score, 2.5);
}
