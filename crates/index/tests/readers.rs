//! JSONL and Seismic binary readers, and the builder's input checks.

mod common;

use std::path::Path;

use splade_index::readers::{
    open_jsonl, open_seismic, read_ahead, read_jsonl, read_seismic, write_seismic, Document,
};
use splade_index::{IndexBuilder, IndexError};
use splade_sparse::SparseVector;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn input_error(err: IndexError) -> (String, String, String) {
    match err {
        IndexError::Input {
            source_name,
            location,
            message,
        } => (source_name, location, message),
        other => panic!("expected an input error, got {other}"),
    }
}

#[test]
fn jsonl_reads_documents() {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(
        tmp.path(),
        "v.jsonl",
        "{\"id\": \"a\", \"indices\": [1, 5], \"values\": [0.5, 2]}\n\n{\"id\": 7, \"indices\": [], \"values\": []}\n",
    );
    let docs = read_jsonl(&p, Some(6)).unwrap();
    assert_eq!(
        docs,
        vec![
            Document {
                id: "a".into(),
                vector: SparseVector::new(vec![1, 5], vec![0.5, 2.0]).unwrap()
            },
            Document {
                id: "7".into(),
                vector: SparseVector::default()
            },
        ]
    );
    assert_eq!(open_jsonl(&p, None).unwrap().count(), 2);
}

#[test]
fn jsonl_errors_name_file_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let ok = "{\"id\": \"a\", \"indices\": [1], \"values\": [1.0]}";
    let cases = [
        (
            "{\"id\": \"b\", \"indices\": [3, 2], \"values\": [1, 1]}",
            "indices",
            "ascending",
        ),
        (
            "{\"id\": \"b\", \"indices\": [2, 2], \"values\": [1, 1]}",
            "indices",
            "ascending",
        ),
        (
            "{\"id\": \"b\", \"indices\": [9], \"values\": [1]}",
            "indices",
            "out of range",
        ),
        (
            "{\"id\": \"b\", \"indices\": [-1], \"values\": [1]}",
            "indices",
            "not an integer",
        ),
        (
            "{\"id\": \"b\", \"indices\": [1], \"values\": [-0.5]}",
            "values",
            "negative",
        ),
        (
            "{\"id\": \"b\", \"indices\": [1], \"values\": [1e39]}",
            "values",
            "not finite",
        ),
        (
            "{\"id\": \"b\", \"indices\": [1], \"values\": [\"x\"]}",
            "values",
            "not a number",
        ),
        (
            "{\"id\": \"b\", \"indices\": [1, 2], \"values\": [1]}",
            "values",
            "2 indices",
        ),
        ("{\"id\": \"b\", \"values\": [1]}", "indices", "missing"),
        (
            "{\"id\": \"b\", \"indices\": 3, \"values\": [1]}",
            "indices",
            "array",
        ),
        ("{\"indices\": [1], \"values\": [1]}", "id", "missing"),
        (
            "{\"id\": \"\", \"indices\": [1], \"values\": [1]}",
            "id",
            "empty",
        ),
        (
            "{\"id\": [1], \"indices\": [1], \"values\": [1]}",
            "id",
            "string",
        ),
        ("{not json", "", "invalid JSON"),
    ];
    for (line, field, words) in cases {
        let p = write(tmp.path(), "bad.jsonl", &format!("{ok}\n{line}\n"));
        let (source, location, message) = input_error(read_jsonl(&p, Some(5)).unwrap_err());
        assert!(source.ends_with("bad.jsonl"), "{source}");
        assert!(location.starts_with("line 2"), "{location} for {line}");
        if !field.is_empty() {
            assert!(
                location.contains(&format!("'{field}'")),
                "{location} for {line}"
            );
        }
        assert!(message.contains(words), "{message} for {line}");
    }
    assert!(matches!(
        read_jsonl(&tmp.path().join("missing.jsonl"), None),
        Err(IndexError::Io { .. })
    ));
}

fn docs() -> Vec<Document> {
    (0..5)
        .map(|d| Document {
            id: format!("id{d}"),
            vector: SparseVector::new(
                (0..d).map(|i| i * 3).collect(),
                (0..d).map(|i| i as f32 + 0.5).collect(),
            )
            .unwrap(),
        })
        .collect()
}

#[test]
fn seismic_binary_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let (v, i) = (tmp.path().join("v.bin"), tmp.path().join("ids.txt"));
    write_seismic(&v, &i, &docs()).unwrap();
    assert_eq!(read_seismic(&v, &i, Some(13)).unwrap(), docs());
    // Layout: u32 count, then per vector u32 nnz, nnz u32 ids, nnz f32 values.
    let bytes = std::fs::read(&v).unwrap();
    assert_eq!(&bytes[..4], &5u32.to_le_bytes());
    assert_eq!(bytes.len(), 4 + 5 * 4 + 2 * 4 * (1 + 2 + 3 + 4));
}

#[test]
fn seismic_errors_name_file_and_vector() {
    let tmp = tempfile::tempdir().unwrap();
    let (v, i) = (tmp.path().join("v.bin"), tmp.path().join("ids.txt"));
    write_seismic(&v, &i, &docs()).unwrap();
    let good = std::fs::read(&v).unwrap();
    // Truncated inside every vector.
    for cut in [0usize, 2, 4, 8, 20, good.len() - 1] {
        std::fs::write(&v, &good[..cut]).unwrap();
        let (source, location, message) = input_error(read_seismic(&v, &i, None).unwrap_err());
        assert!(source.ends_with("v.bin"));
        assert!(message.contains("truncated"), "{message}");
        assert!(
            location == "header" || location.starts_with("vector "),
            "{location}"
        );
    }
    std::fs::write(&v, &good[..good.len() - 1]).unwrap();
    let (_, location, _) = input_error(read_seismic(&v, &i, None).unwrap_err());
    assert_eq!(location, "vector 5 of 5");
    // Trailing garbage.
    let mut longer = good.clone();
    longer.push(0);
    std::fs::write(&v, &longer).unwrap();
    assert!(input_error(read_seismic(&v, &i, None).unwrap_err())
        .2
        .contains("trailing"));
    // A huge nnz does not allocate: it is truncation.
    let mut huge = good.clone();
    huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&v, &huge).unwrap();
    let (_, location, _) = input_error(read_seismic(&v, &i, None).unwrap_err());
    assert_eq!(location, "vector 1 of 5");
    // Out of range and not ascending (vector 3 has ids 0, 3).
    std::fs::write(&v, &good).unwrap();
    let (_, location, message) = input_error(read_seismic(&v, &i, Some(2)).unwrap_err());
    assert_eq!(location, "vector 3 of 5");
    assert!(message.contains("out of range"), "{message}");
    let mut swapped = good.clone();
    // Vector 3 starts after 4 + (4) + (4 + 8): its ids at 20 + 4.
    let at = 4 + 4 + (4 + 8) + 4;
    swapped[at..at + 4].copy_from_slice(&9u32.to_le_bytes());
    std::fs::write(&v, &swapped).unwrap();
    let (_, location, message) = input_error(read_seismic(&v, &i, None).unwrap_err());
    assert_eq!(location, "vector 3 of 5");
    assert!(message.contains("ascending"), "{message}");
    // Negative value.
    let mut negative = good.clone();
    let at = 4 + 4 + (4 + 8) + 4 + 8;
    negative[at..at + 4].copy_from_slice(&(-1.0f32).to_le_bytes());
    std::fs::write(&v, &negative).unwrap();
    assert!(input_error(read_seismic(&v, &i, None).unwrap_err())
        .2
        .contains("negative"));
    // Ids file disagreeing with the vectors.
    std::fs::write(&v, &good).unwrap();
    std::fs::write(&i, "a\nb\n").unwrap();
    let (source, _, message) = input_error(read_seismic(&v, &i, None).unwrap_err());
    assert!(source.ends_with("ids.txt"));
    assert!(message.contains("2 ids for 5 vectors"), "{message}");
    std::fs::write(&i, "a\nb\n\nd\ne\n").unwrap();
    let (_, location, message) = input_error(read_seismic(&v, &i, None).unwrap_err());
    assert_eq!(
        (location.as_str(), message.as_str()),
        ("line 3", "empty id")
    );
}

#[test]
fn builder_rejects_bad_documents() {
    let v = SparseVector::new(vec![1, 3], vec![1.0, 2.0]).unwrap();
    let mut b = IndexBuilder::new(4);
    assert_eq!(b.add("a", v.view()).unwrap(), 0);
    let msg = |e: IndexError| e.to_string();
    assert!(msg(b.add("a", v.view()).unwrap_err()).contains("duplicate id"));
    assert!(msg(b.add("", v.view()).unwrap_err()).contains("empty id"));
    let far = SparseVector::new(vec![4], vec![1.0]).unwrap();
    assert!(msg(b.add("far", far.view()).unwrap_err()).contains("out of range"));
    let neg = SparseVector::new(vec![0], vec![-1.0]).unwrap();
    let e = msg(b.add("neg", neg.view()).unwrap_err());
    assert!(e.contains("neg") && e.contains("negative"), "{e}");
    assert_eq!(b.len(), 1, "rejected documents are not added");
    assert!(b.clone().block_size(0).build().is_err());
    assert!(b.clone().block_size(257).build().is_err());
    assert!(b.block_size(256).build().is_ok());
}

fn doc(i: u32) -> splade_index::Result<Document> {
    Ok(Document {
        id: format!("d{i}"),
        vector: SparseVector::new(vec![i], vec![1.0 + i as f32]).unwrap(),
    })
}

fn ids(items: &[splade_index::Result<Document>]) -> Vec<String> {
    items
        .iter()
        .map(|r| match r {
            Ok(d) => d.id.clone(),
            Err(e) => format!("error: {e}"),
        })
        .collect()
}

#[test]
fn read_ahead_yields_the_same_documents_in_order_and_stops_after_an_error() {
    for n in [0u32, 1, 2, 7, 64, 1000] {
        for batch in [0, 1, 3, 64, 5000] {
            let direct: Vec<_> = (0..n).map(doc).collect();
            let ahead: Vec<_> = read_ahead((0..n).map(doc), batch).collect();
            assert_eq!(ids(&ahead), ids(&direct), "n {n} batch {batch}");
        }
    }
    // Documents after an error are not read: the reader stops, as a loop with `?` would.
    let failing = (0..10u32).map(|i| {
        if i == 4 {
            Err(IndexError::InvalidArgument("bad record 4".into()))
        } else {
            doc(i)
        }
    });
    for batch in [1, 3, 100] {
        let got = ids(&read_ahead(failing.clone(), batch).collect::<Vec<_>>());
        assert_eq!(got.len(), 5, "batch {batch}");
        assert_eq!(got[..4], ["d0", "d1", "d2", "d3"], "batch {batch}");
        assert!(
            got[4].ends_with("bad record 4"),
            "batch {batch}: {}",
            got[4]
        );
    }
    // The same for a real reader on a bad file: the error names the file and the record.
    let tmp = tempfile::tempdir().unwrap();
    let v = tmp.path().join("v.bin");
    let docs: Vec<Document> = (0..5).map(|i| doc(i).unwrap()).collect();
    write_seismic(&v, &tmp.path().join("ids.txt"), &docs).unwrap();
    let mut bytes = std::fs::read(&v).unwrap();
    bytes.truncate(bytes.len() - 2);
    std::fs::write(&v, bytes).unwrap();
    let reader = open_seismic(&v, &tmp.path().join("ids.txt"), None).unwrap();
    let got = read_ahead(reader, 2).collect::<Vec<_>>();
    assert_eq!(got.len(), 5);
    assert!(got[..4].iter().all(|r| r.is_ok()));
    let err = got[4].as_ref().unwrap_err().to_string();
    assert!(err.contains("v.bin"), "{err}");
}

#[test]
fn read_ahead_reports_a_panicking_reader_and_can_be_dropped_early() {
    let panicking = (0..10u32).map(|i| {
        if i == 6 {
            panic!("reader bug");
        }
        doc(i)
    });
    let got = read_ahead(panicking, 4).collect::<Vec<_>>();
    // The first full batch arrived; the panic is an error, never a silent end.
    assert_eq!(ids(&got[..4]), ["d0", "d1", "d2", "d3"]);
    let last = got.last().unwrap().as_ref().unwrap_err().to_string();
    assert!(last.contains("panicked"), "{last}");
    // A consumer that stops early does not wait for the whole input.
    let mut endless = read_ahead((0u32..).map(doc), 8);
    assert_eq!(endless.next().unwrap().unwrap().id, "d0");
    drop(endless);
}
