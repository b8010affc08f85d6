//! Training rows from Parquet files as Hugging Face datasets store them (fixtures written by
//! `scripts/parity/generate_train_parquet_fixtures.py` with pyarrow).

use std::path::PathBuf;

use splade_train::data::{ColumnMapping, TrainingData};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/train/parquet")
}

#[test]
fn a_split_folder_reads_like_the_same_rows_in_jsonl() {
    let mapping = ColumnMapping::default();
    let from_parquet = TrainingData::read(&fixtures().join("triplets"), &mapping).unwrap();
    let from_jsonl = TrainingData::read(&fixtures().join("triplets.jsonl"), &mapping).unwrap();
    assert_eq!(from_parquet.columns, vec!["anchor", "positive", "negative"]);
    assert_eq!(
        from_parquet.rows.len(),
        5,
        "rows of both files, in file order"
    );
    assert_eq!(from_parquet, from_jsonl);
    // One file of the split on its own.
    let one = TrainingData::read(
        &fixtures().join("triplets/data/train-00001-of-00002.parquet"),
        &mapping,
    )
    .unwrap();
    assert_eq!(one.rows, from_jsonl.rows[3..].to_vec());
}

#[test]
fn a_column_mapping_renames_columns() {
    let mapping = ColumnMapping {
        anchor: "question".into(),
        positive: "duplicate".into(),
        negatives: Vec::new(),
        label: None,
    };
    let d = TrainingData::read(&fixtures().join("pairs-renamed.parquet"), &mapping).unwrap();
    assert_eq!(d.columns, vec!["question", "duplicate"]);
    assert_eq!(
        d.rows[1],
        vec!["Why is the sky blue?", "What makes the sky look blue?"]
    );
    let e = TrainingData::read(
        &fixtures().join("pairs-renamed.parquet"),
        &ColumnMapping::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("pairs-renamed.parquet") && e.contains("no column 'anchor'"),
        "{e}"
    );
}

#[test]
fn bad_parquet_input_names_the_file_row_and_column() {
    let e = TrainingData::read(
        &fixtures().join("null-negative.parquet"),
        &ColumnMapping::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("null-negative.parquet: line 2: column 'negative' is not a string"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("broken.parquet");
    std::fs::write(&fake, b"PAR1 not really").unwrap();
    let e = TrainingData::read(&fake, &ColumnMapping::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("broken.parquet"), "{e}");
    let empty = tempfile::tempdir().unwrap();
    let e = TrainingData::read(empty.path(), &ColumnMapping::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no *.parquet files"), "{e}");
}
