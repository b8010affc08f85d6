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

/// Asserts one parameter after the AdamW steps equals the reference's stored
/// `{"head": [its first values], "sum": f64}`: each head value within 1e-5, the sum within
/// 1e-5·√n + 1e-4·|sum|. `what` names the parameter (and the case) in the messages.
pub fn assert_weights_match(what: &str, flat: &[f32], reference: &serde_json::Value) {
    for (i, h) in reference["head"].as_array().unwrap().iter().enumerate() {
        let r = h.as_f64().unwrap();
        assert!(
            (flat[i] as f64 - r).abs() <= 1e-5,
            "{what}[{i}]: ours {}, reference {r}",
            flat[i]
        );
    }
    let sum: f64 = flat.iter().map(|x| *x as f64).sum();
    let r = reference["sum"].as_f64().unwrap();
    assert!(
        (sum - r).abs() <= 1e-5 * (flat.len() as f64).sqrt().max(1.0) + 1e-4 * r.abs(),
        "sum of {what}: ours {sum}, reference {r}"
    );
}
