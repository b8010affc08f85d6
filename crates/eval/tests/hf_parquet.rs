//! The Hugging Face NanoBEIR parquet layouts (`fixtures/eval/nanobeir/`, written by
//! `scripts/parity/generate_nanobeir_parquet_fixtures.py`): what is read, and that evaluating
//! them equals evaluating the same data as BEIR jsonl folders.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use splade_encoder::SparseEncoder;
use splade_eval::data::{read_beir_dir, RetrievalData};
use splade_eval::hf_parquet::{is_parquet_dataset_dir, parquet_splits, read_parquet_dir};
use splade_eval::report::ir_keys;
use splade_eval::InformationRetrievalEvaluator;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/eval/nanobeir")
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn relevant(v: &[(&str, &[&str])]) -> HashMap<String, HashSet<String>> {
    v.iter()
        .map(|(q, ds)| (q.to_string(), ds.iter().map(|d| d.to_string()).collect()))
        .collect()
}

fn tiny_expected() -> RetrievalData {
    RetrievalData {
        corpus: pairs(&[
            ("d1", "The cat sat on the mat."),
            ("d2", "Dogs are loyal animals that love to play fetch."),
            ("d4", "The moon orbits the earth once a month."),
            ("d5", "Cats and dogs can live together peacefully."),
            (
                "d6",
                "Rockets carry astronauts to the international space station.",
            ),
        ]),
        queries: pairs(&[
            ("q1", "where did the cat sit"),
            ("q2", "loyal pets"),
            ("q4", "space travel"),
        ]),
        relevant: relevant(&[
            ("q1", &["d1"]),
            ("q2", &["d2", "d5"]),
            ("q3", &["d4"]),
            ("q4", &["d6", "d404"]),
        ]),
    }
}

#[test]
fn one_dataset_layout_is_read_with_st_filtering() {
    let dir = fixtures().join("zeta-alpha/NanoTiny");
    assert!(is_parquet_dataset_dir(&dir));
    assert_eq!(parquet_splits(&dir).unwrap(), vec!["train"]);
    // empty texts dropped, titles not joined, every qrels row relevant (unknown doc included)
    assert_eq!(read_parquet_dir(&dir, None).unwrap(), tiny_expected());
    assert_eq!(
        read_parquet_dir(&dir, Some("train")).unwrap(),
        tiny_expected()
    );
}

#[test]
fn multi_dataset_layout_has_one_split_per_dataset() {
    let dir = fixtures().join("NanoBEIR-en");
    assert!(is_parquet_dataset_dir(&dir));
    assert_eq!(parquet_splits(&dir).unwrap(), vec!["NanoSmall", "NanoTiny"]);
    assert_eq!(
        read_parquet_dir(&dir, Some("NanoTiny")).unwrap(),
        tiny_expected()
    );
    let small = read_parquet_dir(&dir, Some("NanoSmall")).unwrap();
    assert_eq!(small.corpus.len(), 3);
    assert_eq!(small.queries.len(), 2);
    assert_eq!(small.relevant["t1"].len(), 2);
    let e = read_parquet_dir(&dir, None).unwrap_err().to_string();
    assert!(
        e.contains("several splits") && e.contains("NanoTiny"),
        "{e}"
    );
    let e = read_parquet_dir(&dir, Some("NanoNope"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("corpus") && e.contains("NanoNope") && e.contains("NanoSmall"),
        "{e}"
    );
    // BEIR folders are not the parquet layout
    assert!(!is_parquet_dataset_dir(&fixtures().join("beir/NanoTiny")));
}

#[test]
fn parquet_data_equals_the_beir_jsonl_copy() {
    for (parquet, split, beir) in [
        ("zeta-alpha/NanoTiny", None, "beir/NanoTiny"),
        ("NanoBEIR-en", Some("NanoTiny"), "beir/NanoTiny"),
        ("NanoBEIR-en", Some("NanoSmall"), "beir/NanoSmall"),
    ] {
        let p = read_parquet_dir(&fixtures().join(parquet), split).unwrap();
        let b = read_beir_dir(&fixtures().join(beir), "test").unwrap();
        assert_eq!(p, b, "{parquet} {split:?}");
    }
}

#[test]
fn evaluation_on_parquet_equals_evaluation_on_jsonl() {
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/encoder/models/bert-tied-v6");
    let encoder = SparseEncoder::load(&model, &candle_core::Device::Cpu).unwrap();
    let run = |data: RetrievalData| {
        let ev = InformationRetrievalEvaluator::new(data, "NanoTiny").unwrap();
        ir_keys(&ev.evaluate(&encoder).unwrap(), true)
    };
    let p = run(read_parquet_dir(&fixtures().join("NanoBEIR-en"), Some("NanoTiny")).unwrap());
    let b = run(read_beir_dir(&fixtures().join("beir/NanoTiny"), "test").unwrap());
    assert_eq!(p, b);
    let recall = p.iter().find(|(k, _)| k.ends_with("recall@10")).unwrap().1;
    assert!(
        recall < 1.0,
        "the unknown document d404 caps recall: {recall}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let t = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}

#[test]
fn errors_name_the_file() {
    let e = read_parquet_dir(&fixtures().join("bad-column"), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("corpus/train-00000-of-00001.parquet")
            && e.contains("missing column 'text'")
            && e.contains("body"),
        "{e}"
    );

    let e = read_parquet_dir(&fixtures().join("zstd"), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("corpus/train-00000-of-00001.parquet")
            && e.contains("ZSTD")
            && e.contains("Snappy"),
        "{e}"
    );

    let d = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("zeta-alpha/NanoTiny"), d.path());
    // a truncated file (no footer)
    let q = d.path().join("queries/train-00000-of-00001.parquet");
    let bytes = std::fs::read(&q).unwrap();
    std::fs::write(&q, &bytes[..bytes.len() / 2]).unwrap();
    let e = read_parquet_dir(d.path(), None).unwrap_err().to_string();
    assert!(
        e.contains("queries/train-00000-of-00001.parquet") && e.contains("parquet"),
        "{e}"
    );
    // not parquet at all
    std::fs::write(&q, b"this is not parquet").unwrap();
    let e = read_parquet_dir(d.path(), None).unwrap_err().to_string();
    assert!(e.contains("queries/train-00000-of-00001.parquet"), "{e}");
    // corrupt page data: flip bytes in the middle of the column chunk
    let c = d.path().join("corpus/train-00000-of-00001.parquet");
    let mut bytes = std::fs::read(&c).unwrap();
    let third = bytes.len() / 3;
    for b in &mut bytes[8..third] {
        *b = !*b;
    }
    std::fs::write(&c, &bytes).unwrap();
    let e = read_parquet_dir(d.path(), Some("train"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("corpus/train-00000-of-00001.parquet"), "{e}");
    // a missing config folder
    copy_dir(
        &fixtures().join("zeta-alpha/NanoTiny/corpus"),
        &d.path().join("corpus"),
    );
    copy_dir(
        &fixtures().join("zeta-alpha/NanoTiny/queries"),
        &d.path().join("queries"),
    );
    std::fs::remove_dir_all(d.path().join("qrels")).unwrap();
    assert!(!is_parquet_dataset_dir(d.path()));
    let e = read_parquet_dir(d.path(), Some("train"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("qrels"), "{e}");
}
