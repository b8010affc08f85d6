//! The model card `splade train` writes (`final/README.md`) has the sections and table shapes
//! of the card sentence-transformers writes for the same run
//! (`scripts/parity/generate_model_card_fixture.py` → `fixtures/train/card/`), and no empty
//! evaluation tables when no evaluator ran.

use std::path::{Path, PathBuf};

use splade_train::options::{RunObserver, TrainOptions};
use splade_train::trainer::TrainObserver;

struct Quiet;
impl TrainObserver for Quiet {}
impl RunObserver for Quiet {}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/train/card")
}

/// The headings (lines starting with `#` outside code blocks) and table header rows (cells
/// trimmed: their padding depends on the values), as the fixture script extracts them.
fn structure(card: &str) -> (Vec<String>, Vec<String>) {
    let lines: Vec<&str> = card.lines().collect();
    let (mut headings, mut tables, mut fence) = (Vec::new(), Vec::new(), false);
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("```") {
            fence = !fence;
            continue;
        }
        if fence {
            continue;
        }
        if line.starts_with('#') {
            headings.push(line.trim().to_string());
        }
        let next_is_rule = lines
            .get(i + 1)
            .is_some_and(|n| n.trim_start().starts_with("|:"));
        if line.trim_start().starts_with('|') && next_is_rule {
            let cells: Vec<&str> = line
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            tables.push(format!("| {} |", cells.join(" | ")));
        }
    }
    (headings, tables)
}

fn options(dir: &Path) -> TrainOptions {
    let data = fixture().join("data");
    TrainOptions {
        model: Some(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../fixtures/encoder/models/bert-tied-v6")
                .display()
                .to_string(),
        ),
        train: Some(data.join("train.tsv")),
        output: Some(dir.join("run")),
        batch_size: Some(4),
        epochs: Some(1.0),
        lr: Some(2e-5),
        logging_steps: Some(1),
        ..Default::default()
    }
}

#[test]
fn card_has_the_sections_and_tables_of_the_sentence_transformers_card() {
    let tmp = tempfile::tempdir().unwrap();
    let data = fixture().join("data");
    let o = TrainOptions {
        eval_pairs: Some(data.join("dev.tsv")),
        eval_beir: Some(data.join("scifact")),
        eval_steps: Some(1),
        ..options(tmp.path())
    };
    o.run(false, None, &mut Quiet).unwrap();
    let card = std::fs::read_to_string(tmp.path().join("run/final/README.md")).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("structure.json")).unwrap())
            .unwrap();
    let list = |k: &str| -> Vec<String> {
        expected[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let (headings, tables) = structure(&card);
    assert_eq!(headings, list("headings"), "headings\n{card}");
    assert_eq!(tables, list("table_headers"), "table headers\n{card}");
    // The structure of the committed reference card is the one the JSON records.
    let reference = std::fs::read_to_string(fixture().join("README.md")).unwrap();
    assert_eq!(
        structure(&reference),
        (list("headings"), list("table_headers"))
    );
    // The front matter carries the model-index with both evaluators.
    let front = card.split("\n---\n").next().unwrap();
    assert!(front.contains("model-index:"), "{front}");
    assert!(
        front.contains("type: sparse-binary-classification"),
        "{front}"
    );
    assert!(
        front.contains("type: sparse-information-retrieval"),
        "{front}"
    );
    assert!(front.contains("name: scifact"), "{front}");
    // No machine path anywhere in the card: the local base model by its folder name.
    assert!(!card.contains(&tmp.path().display().to_string()), "{card}");
    assert!(!card.contains(env!("CARGO_MANIFEST_DIR")), "{card}");
    assert!(card.contains("- **Base model:** `bert-tied-v6`"), "{card}");
    // The binary table lists the model's similarity function (cosine here), as the
    // reference's evaluator computes it; its headline metric is bold.
    assert!(card.contains("| **cosine_ap**"), "{card}");
    assert!(!card.contains("| dot_ap"), "{card}");
}

#[test]
fn card_without_evaluators_has_no_evaluation_tables() {
    let tmp = tempfile::tempdir().unwrap();
    options(tmp.path()).run(false, None, &mut Quiet).unwrap();
    let card = std::fs::read_to_string(tmp.path().join("run/final/README.md")).unwrap();
    let (headings, tables) = structure(&card);
    for h in [
        "## Evaluation",
        "### Metrics",
        "#### Sparse Binary Classification",
    ] {
        assert!(!headings.iter().any(|x| x == h), "{h}\n{card}");
    }
    assert!(!card.contains("model-index:"), "{card}");
    // Only the dataset tables and the training logs, whose header has no metric column.
    assert_eq!(
        tables,
        vec![
            "|  | anchor | positive |".to_string(),
            "| anchor | positive |".to_string(),
            "| Epoch | Step | Training Loss |".to_string(),
        ],
        "{card}"
    );
    // Every table has rows.
    let lines: Vec<&str> = card.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.trim_start().starts_with("|:") {
            assert!(
                lines
                    .get(i + 1)
                    .is_some_and(|n| n.trim_start().starts_with('|')),
                "empty table at line {i}\n{card}"
            );
        }
    }
}
