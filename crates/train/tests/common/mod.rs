//! Helpers shared by the training tests: the fixture model and small training rows.

#![allow(dead_code)]

use std::path::Path;

use splade_train::data::TrainingData;

/// The DistilBERT fixture model (tied decoder, seed-era layout).
pub fn model() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/encoder/models/distilbert-tied-seedlayout")
}

pub fn data(labels: Vec<Vec<f32>>) -> TrainingData {
    let rows: Vec<Vec<String>> = (0..labels.len().max(4))
        .map(|i| {
            vec![
                format!("question {i}"),
                format!("same question {i}"),
                format!("other topic {i}"),
            ]
        })
        .collect();
    TrainingData {
        columns: vec!["anchor".into(), "positive".into(), "negative".into()],
        rows,
        label_column: (!labels.is_empty()).then(|| "label".into()),
        labels,
    }
}
