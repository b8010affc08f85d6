//! The bounded fuzz pass over everything the index crate reads from outside: the JSONL and
//! Seismic vector readers over arbitrary and mutated bytes, and the index opener over
//! mutated index directories (byte flips, truncations, and manifest fields replaced by
//! hostile numbers, for single-segment and segmented indexes).
//!
//! Every case must end in `Ok` or a clean error: no panic, no abort, and no allocation
//! beyond what the input's size allows (a counting allocator measures the peak of each
//! case). `SPLADE_FUZZ_CASES` sets the cases per property (default 48, what CI runs);
//! `scripts/fuzz.sh` runs a long pass.

mod common;

use std::io::Cursor;
use std::path::Path;

use common::{collection, query};
use proptest::prelude::*;
use splade_index::format::{FileId, MANIFEST_FILE};
use splade_index::readers::{read_seismic, write_seismic, Document, JsonlReader};
use splade_index::{Index, IndexBuilder, IndexWriter};
use splade_sparse::SparseVector;

#[path = "../../../tests/support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{alone, peak_of, Counting};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn cases() -> u32 {
    std::env::var("SPLADE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

/// Heap a reader may use for `input` bytes: a constant plus a multiple of the input
/// (parsed JSON values are larger than their text).
fn allowance(input: usize, per_byte: usize) -> usize {
    (1 << 20) + per_byte * input
}

/// Valid JSONL vector lines, then mutated: bytes flipped, numbers swapped for hostile
/// ones, lines cut.
fn jsonl_input() -> impl Strategy<Value = Vec<u8>> {
    let hostile = prop::sample::select(vec![
        "4294967295",
        "4294967296",
        "-1",
        "1e39",
        "1e16",
        "NaN",
        "1e308",
        "99999999999999999999999",
        "\"x\"",
        "null",
        "[]",
        "{}",
    ]);
    (
        prop::collection::vec((0u32..50, 0.0f32..3.0), 0..20),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        prop::option::of((any::<prop::sample::Index>(), hostile)),
        prop::option::of(any::<prop::sample::Index>()),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(pairs, flips, swap, cut, noise)| {
            let mut pairs = pairs;
            pairs.sort_by_key(|p| p.0);
            pairs.dedup_by_key(|p| p.0);
            let (i, v): (Vec<u32>, Vec<f32>) = pairs.into_iter().unzip();
            let mut text = format!(
                "\u{feff}{}\n\n{}\n",
                serde_json::json!({"id": "a", "indices": i, "values": v}),
                serde_json::json!({"id": 7, "indices": [1, 2], "values": [0.5, 1.5]})
            );
            if let Some((at, number)) = swap {
                let digits: Vec<usize> = text
                    .char_indices()
                    .filter(|(_, c)| c.is_ascii_digit())
                    .map(|(p, _)| p)
                    .collect();
                if !digits.is_empty() {
                    let p = digits[at.index(digits.len())];
                    text.replace_range(p..p + 1, number);
                }
            }
            let mut bytes = text.into_bytes();
            for (at, x) in flips {
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] ^= x;
                }
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            bytes.extend(noise);
            bytes
        })
}

/// A valid Seismic file and ids, then its bytes flipped, cut, or a length field (the
/// count or a vector's nnz) replaced.
fn seismic_input() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (
        prop::collection::vec(prop::collection::vec((0u32..30, 0.0f32..2.0), 0..8), 0..10),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        prop::option::of((
            0usize..3,
            prop::sample::select(vec![0u32, 1, 7, 1 << 20, u32::MAX / 4, u32::MAX]),
        )),
        prop::option::of(any::<prop::sample::Index>()),
    )
        .prop_map(|(vectors, flips, length, cut)| {
            let docs: Vec<Document> = vectors
                .into_iter()
                .enumerate()
                .map(|(d, mut pairs)| {
                    pairs.sort_by_key(|p| p.0);
                    pairs.dedup_by_key(|p| p.0);
                    Document {
                        id: format!("d{d}"),
                        vector: SparseVector::from_pairs(pairs).unwrap(),
                    }
                })
                .collect();
            let tmp = tempfile::tempdir().unwrap();
            let (v, i) = (tmp.path().join("v.bin"), tmp.path().join("ids.txt"));
            write_seismic(&v, &i, &docs).unwrap();
            let mut bytes = std::fs::read(&v).unwrap();
            let ids = std::fs::read(&i).unwrap();
            if let Some((which, value)) = length {
                // 0: the vector count; 1: the first vector's nnz; 2: the last u32.
                let at = match which {
                    0 => 0,
                    1 => 4,
                    _ => bytes.len().saturating_sub(4),
                };
                if bytes.len() >= at + 4 {
                    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
                }
            }
            for (at, x) in flips {
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] ^= x;
                }
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            (bytes, ids)
        })
}

/// Hostile numbers for manifest fields.
fn hostile_number() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        prop::sample::select(vec![
            0u64,
            1,
            255,
            256,
            257,
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
            1 << 40,
            u64::MAX,
        ])
        .prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::from(-1i64)),
        Just(serde_json::Value::from(1.5f64)),
        Just(serde_json::Value::Null),
    ]
}

/// Replaces the `pick`-th number anywhere in the JSON value by `with`.
fn replace_number(v: &mut serde_json::Value, pick: &mut usize, with: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Number(_) => {
            if *pick == 0 {
                *v = with.clone();
                return true;
            }
            *pick -= 1;
            false
        }
        serde_json::Value::Array(a) => a.iter_mut().any(|x| replace_number(x, pick, with)),
        serde_json::Value::Object(o) => o.values_mut().any(|x| replace_number(x, pick, with)),
        _ => false,
    }
}

fn count_numbers(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Number(_) => 1,
        serde_json::Value::Array(a) => a.iter().map(count_numbers).sum(),
        serde_json::Value::Object(o) => o.values().map(count_numbers).sum(),
        _ => 0,
    }
}

fn dir_bytes(dir: &Path) -> usize {
    walk(dir)
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len() as usize))
        .sum()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Arbitrary and mutated JSONL: records or clean errors naming a line; heap bounded
    /// by the input's size.
    #[test]
    fn jsonl_reader_survives_any_input(
        bytes in prop_oneof![jsonl_input(), prop::collection::vec(any::<u8>(), 0..512)],
        dim in prop::option::of(1usize..100),
    ) {
        let _alone = alone();
        let len = bytes.len();
        let (result, peak) = peak_of(|| {
            JsonlReader::new(Cursor::new(bytes), "in.jsonl", dim)
                .collect::<Result<Vec<_>, _>>()
        });
        prop_assert!(peak <= allowance(len, 64), "{peak} bytes for {len} input bytes");
        match result {
            Ok(docs) => {
                for d in docs {
                    prop_assert!(d.vector.values().iter().all(|v| (0.0..=1e15).contains(v)));
                    prop_assert!(!d.id.chars().any(char::is_control));
                }
            }
            Err(e) => prop_assert!(e.to_string().contains("in.jsonl: line "), "{e}"),
        }
    }

    /// Mutated Seismic files (length fields included): clean errors, heap bounded by the
    /// file's size, never by a length field.
    #[test]
    fn seismic_reader_survives_mutations((bytes, ids) in seismic_input()) {
        let _alone = alone();
        let tmp = tempfile::tempdir().unwrap();
        let (v, i) = (tmp.path().join("v.bin"), tmp.path().join("ids.txt"));
        std::fs::write(&v, &bytes).unwrap();
        std::fs::write(&i, &ids).unwrap();
        let len = bytes.len() + ids.len();
        let (result, peak) = peak_of(|| read_seismic(&v, &i, None));
        prop_assert!(peak <= allowance(len, 16), "{peak} bytes for {len} input bytes");
        if let Err(e) = result {
            let msg = e.to_string();
            prop_assert!(msg.contains("v.bin") || msg.contains("ids.txt"), "{msg}");
        }
    }

    /// Mutated index directories, single-segment or segmented: a manifest number replaced
    /// by a hostile one, or bytes of any file flipped or cut. Opening (verified or not)
    /// ends in an index or a clean error, with heap bounded by the directory's size;
    /// whatever opens can be searched.
    #[test]
    fn index_opener_survives_mutations(
        (c, q) in collection().prop_flat_map(|c| { let d = c.dim; (Just(c), query(d)) }),
        segmented in any::<bool>(),
        target in any::<prop::sample::Index>(),
        number in prop::option::of((any::<prop::sample::Index>(), hostile_number())),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..3),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let _alone = alone();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("index");
        let half = c.docs.len() / 2;
        let mut b = IndexBuilder::new(c.dim).block_size(c.block_size);
        for (d, v) in c.docs[..half].iter().enumerate() {
            b.add(&format!("d{d}"), v.view()).unwrap();
        }
        b.write(&dir).unwrap();
        if segmented {
            let mut w = IndexWriter::open(&dir).unwrap();
            for (d, v) in c.docs[half..].iter().enumerate() {
                w.add(&format!("e{d}"), v.view()).unwrap();
            }
            w.delete("d0");
            w.commit().unwrap();
        }
        let files: Vec<_> = walk(&dir)
            .into_iter()
            .filter(|p| !p.ends_with("write.lock"))
            .collect();
        let file = &files[target.index(files.len())];
        let original = std::fs::read(file).unwrap();
        let mut bytes = original.clone();
        if let (Some((pick, with)), true) = (&number, file.ends_with(MANIFEST_FILE)) {
            let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let n = count_numbers(&v);
            if n > 0 {
                let mut p = pick.index(n);
                replace_number(&mut v, &mut p, with);
                bytes = serde_json::to_vec_pretty(&v).unwrap();
            }
        } else {
            for (at, x) in &flips {
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] ^= x;
                }
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
        }
        std::fs::write(file, &bytes).unwrap();
        let size = dir_bytes(&dir);
        for verify in [true, false] {
            let (result, peak) = peak_of(|| {
                if verify { Index::open(&dir) } else { Index::open_unverified(&dir) }
            });
            // Opening builds a few per-dimension and per-document tables; the bound is
            // the directory's size (every such table is backed by a file of that size).
            prop_assert!(peak <= allowance(size, 8), "open allocated {peak} bytes for {size} bytes of index");
            if let Ok(index) = result {
                let _ = index.top_k(q.view(), 5);
                let _ = index.brute_force_top_k(q.view(), 5);
                let _ = index.explain(q.view(), 0);
            } else if let Err(e) = result {
                prop_assert!(!e.to_string().is_empty());
            }
        }
        // Unchanged bytes must still open.
        if bytes == original {
            prop_assert!(Index::open(&dir).is_ok());
        }
        let _ = FileId::ALL;
    }
}
