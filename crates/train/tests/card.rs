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

/// The reference run's data files, written once per test binary from
/// `fixtures/train/card/data.json` (file → TSV rows or JSONL records, their texts as
/// references into `../shared/data`, whose texts the repository does not copy).
fn data() -> PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let files = splade_testkit::read_fixture(fixture().join("data.json"));
        for (name, rows) in files.as_object().unwrap() {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let mut text = String::new();
            for row in rows.as_array().unwrap() {
                match row {
                    serde_json::Value::Array(cells) => {
                        let cells: Vec<&str> = cells.iter().map(|c| c.as_str().unwrap()).collect();
                        text.push_str(&cells.join("\t"));
                    }
                    record => text.push_str(&serde_json::to_string(record).unwrap()),
                }
                text.push('\n');
            }
            std::fs::write(path, text).unwrap();
        }
        dir
    })
    .path()
    .to_path_buf()
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

/// The two NanoBEIR subsets of `fixtures/eval/nanobeir_evaluator/reference.json` (what the
/// reference card's SparseNanoBEIREvaluator saw) written as BEIR folders under `dir/nano`.
fn nano_folders(dir: &Path) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/eval/nanobeir_evaluator/reference.json");
    let reference: serde_json::Value = splade_testkit::read_fixture(path);
    let nano = dir.join("nano");
    for (name, data) in reference["datasets"].as_object().unwrap() {
        splade_testkit::write_beir_folder(&nano.join(name), data);
    }
    nano
}

/// The similarity, triplet and reranking data of the reference run: the first rows of the
/// real-data evaluator fixtures (`fixtures/eval/evaluators/`), written as the files
/// `splade train` reads.
fn keyed_files(dir: &Path) -> PathBuf {
    let read = |name: &str| -> serde_json::Value {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/eval/evaluators")
            .join(name);
        splade_testkit::read_fixture(p)
    };
    let cell = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let out = dir.join("keyed");
    std::fs::create_dir_all(&out).unwrap();
    let tsv = |header: &str, rows: &[serde_json::Value]| -> String {
        let mut s = format!("{header}\n");
        for r in rows {
            let cells: Vec<String> = r.as_array().unwrap().iter().map(cell).collect();
            s.push_str(&cells.join("\t"));
            s.push('\n');
        }
        s
    };
    let sts = read("similarity_stsb.json");
    std::fs::write(
        out.join("sts.tsv"),
        tsv(
            "sentence1\tsentence2\tlabel",
            &sts["pairs"].as_array().unwrap()[..8],
        ),
    )
    .unwrap();
    let triplets = read("triplet_scifact.json");
    std::fs::write(
        out.join("triplets.tsv"),
        tsv(
            "anchor\tpositive\tnegative",
            &triplets["triplets"].as_array().unwrap()[..8],
        ),
    )
    .unwrap();
    let reranking = read("reranking_scifact.json");
    let lines: String = reranking["samples"].as_array().unwrap()[..4]
        .iter()
        .map(|r| format!("{r}\n"))
        .collect();
    std::fs::write(out.join("reranking.jsonl"), lines).unwrap();
    out
}

fn options(dir: &Path) -> TrainOptions {
    let data = data();
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
    let data = data();
    let keyed = keyed_files(tmp.path());
    let o = TrainOptions {
        eval_dataset: Some(data.join("eval.tsv")),
        eval_pairs: Some(data.join("dev.tsv")),
        eval_beir: Some(data.join("scifact")),
        eval_nanobeir: Some(nano_folders(tmp.path()).display().to_string()),
        eval_nanobeir_datasets: Some(vec!["scifact".into(), "dbpedia".into()]),
        eval_similarity: Some(keyed.join("sts.tsv")),
        eval_triplets: Some(keyed.join("triplets.tsv")),
        eval_reranking: Some(keyed.join("reranking.jsonl")),
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
    assert!(front.contains("type: sparse-nano-beir"), "{front}");
    for task in ["semantic-similarity", "sparse-triplet", "sparse-reranking"] {
        assert!(front.contains(&format!("type: {task}")), "{task}\n{front}");
    }
    // The keyed evaluators' headline metrics are bold, as the reference's.
    for bold in [
        "| **spearman_cosine**",
        "| **cosine_accuracy**",
        "| **ndcg@10**",
    ] {
        assert!(card.contains(bold), "{bold}\n{card}");
    }
    assert!(front.contains("name: NanoBEIR mean"), "{front}");
    // The IR table has one column per dataset (the Nano datasets' too, in evaluator order);
    // the NanoBEIR mean has its own table, as in the reference.
    assert!(
        card.contains("* Datasets: `scifact`, `NanoSciFact` and `NanoDBPedia`"),
        "{card}"
    );
    // No machine path anywhere in the card: the local base model by its folder name.
    assert!(!card.contains(&tmp.path().display().to_string()), "{card}");
    assert!(!card.contains(env!("CARGO_MANIFEST_DIR")), "{card}");
    assert!(card.contains("- **Base model:** `bert-tied-v6`"), "{card}");
    // The binary table lists the model's similarity function (cosine here), as the
    // reference's evaluator computes it; its headline metric is bold.
    assert!(card.contains("| **cosine_ap**"), "{card}");
    assert!(!card.contains("| dot_ap"), "{card}");
    // The evaluation rows: their section counts evaluation samples; a validation loss per
    // evaluation, near the reference's (the weights after each step differ by the dropout
    // masks, which the two frameworks draw differently; the exact check is below).
    assert!(card.contains("* Size: 4 evaluation samples"), "{card}");
    let reference_losses = validation_losses(&reference);
    let losses = validation_losses(&card);
    assert_eq!(losses.len(), 2, "{card}");
    for (ours, theirs) in losses.iter().zip(&reference_losses) {
        assert!(
            (ours - theirs).abs() < 1e-2,
            "{losses:?} vs {reference_losses:?}"
        );
    }
    // Every hyperparameter of ours is listed once, none of sentence-transformers' that we do
    // not have (optimizer internals, hub, logging back-ends).
    let all = card
        .split("#### All Hyperparameters")
        .nth(1)
        .unwrap()
        .split("</details>")
        .next()
        .unwrap();
    for name in [
        "per_device_train_batch_size",
        "per_device_eval_batch_size",
        "num_train_epochs",
        "max_steps",
        "learning_rate",
        "warmup_ratio",
        "weight_decay",
        "gradient_accumulation_steps",
        "max_grad_norm",
        "bf16",
        "logging_steps",
        "eval_steps",
        "metric_for_best_model",
        "seed",
        "resume_from_checkpoint",
        "batch_sampler",
        "router_mapping",
        "learning_rate_mapping",
        "loss",
        "query_regularizer_weight",
        "document_regularizer_weight",
        "regularizer_warmup",
        "gradient_cache",
        "dropout",
    ] {
        assert_eq!(
            all.matches(&format!("- `{name}`:")).count(),
            1,
            "{name}\n{all}"
        );
    }
    for absent in [
        "push_to_hub",
        "adam_beta1",
        "optim",
        "use_cpu",
        "hub_model_id",
    ] {
        assert!(!all.contains(&format!("- `{absent}`:")), "{absent}\n{all}");
    }
    assert!(all.contains("- `per_device_eval_batch_size`: 8"), "{all}");
    assert!(all.contains("- `eval_steps`: 1"), "{all}");
    // Framework versions in sentence-transformers' list shape, ours.
    let versions = card.split("### Framework Versions\n").nth(1).unwrap();
    let lines: Vec<&str> = versions
        .lines()
        .take_while(|l| l.starts_with("- "))
        .collect();
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l[2..].split(": ").next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Rust", "splade-rs", "candle", "Tokenizers"],
        "{versions}"
    );
    assert!(
        lines.iter().all(|l| !l.ends_with(": unknown")),
        "{versions}"
    );
}

#[test]
fn validation_loss_equals_sentence_transformers_spladeloss_on_the_eval_rows() {
    // A learning rate too small to move the weights: the last evaluation (regulariser weights
    // warmed up) sees the untrained model, whose loss the reference computed in eval mode.
    let tmp = tempfile::tempdir().unwrap();
    let o = TrainOptions {
        eval_dataset: Some(data().join("eval.tsv")),
        lr: Some(1e-12),
        ..options(tmp.path())
    };
    let report = o.run(false, None, &mut Quiet).unwrap();
    let (_, last) = report.evaluations.last().unwrap();
    let ours = last[splade_train::trainer::EVAL_LOSS];
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("eval_loss.json")).unwrap())
            .unwrap();
    let theirs = expected["untrained_eval_loss"].as_f64().unwrap();
    assert!((ours - theirs).abs() < 1e-5, "{ours} vs {theirs}");
    // Evaluation rows whose columns differ from the training rows' are refused, named.
    let bad = tmp.path().join("bad.tsv");
    std::fs::write(&bad, "anchor\tpositive\tnegative\na\tb\tc\n").unwrap();
    let e = TrainOptions {
        eval_dataset: Some(bad),
        output: Some(tmp.path().join("run2")),
        ..options(tmp.path())
    }
    .run(false, None, &mut Quiet)
    .unwrap_err()
    .to_string();
    assert!(e.contains("eval_dataset"), "{e}");
}

/// The "Validation Loss" column of a card's training logs.
fn validation_losses(card: &str) -> Vec<f64> {
    let logs = card.split("### Training Logs\n").nth(1).unwrap();
    let rows: Vec<Vec<String>> = logs
        .lines()
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('*').to_string())
                .collect()
        })
        .collect();
    let column = rows[0].iter().position(|c| c == "Validation Loss").unwrap();
    rows[2..]
        .iter()
        .map(|r| r[column].parse().unwrap())
        .collect()
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
