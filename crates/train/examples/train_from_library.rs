//! Fine-tune a SPLADE model from the library, as `splade train` does: read training rows,
//! load the model as trainable, train with SpladeLoss (MNRL + FLOPS) while evaluating on
//! labelled pairs, and write the same output folder as the command (checkpoints, logs,
//! evaluations, plot, and `final/`, a sentence-transformers model folder with its card).
//!
//! Run: `cargo run --release -p splade-train --example train_from_library [PAIRS_TSV] [OUT]`
//! (defaults: the first 2,000 Quora duplicate pairs of `../shared/data/quora-pairs`,
//! `/tmp/splade-library-run`; the default model `splade-tiny`).

use std::path::{Path, PathBuf};

use candle_core::Device;
use splade_encoder::{hub::resolve_model, EncodeOptions, TrainableEncoder};
use splade_eval::data::read_binary_pairs;
use splade_eval::report::binary_keys;
use splade_eval::BinaryClassificationEvaluator;
use splade_train::data::TrainingData;
use splade_train::output::{run_to_folder, RunInfo};
use splade_train::trainer::{Metrics, TrainConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let pairs = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "../shared/data/quora-pairs/train/pairs.tsv".into()),
    );
    let out = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "/tmp/splade-library-run".into()),
    );

    // 1. Training rows: (anchor, positive) from the duplicate pairs (label 1), and a small
    //    evaluation set of labelled pairs.
    let labelled = read_binary_pairs(&pairs)?;
    let rows: Vec<Vec<String>> = labelled
        .sentences1
        .iter()
        .zip(&labelled.sentences2)
        .zip(&labelled.labels)
        .filter(|(_, &duplicate)| duplicate)
        .map(|((a, b), _)| vec![a.clone(), b.clone()])
        .take(2_000)
        .collect();
    let data = TrainingData {
        columns: vec!["anchor".into(), "positive".into()],
        rows,
        label_column: None,
        labels: Vec::new(),
    };
    let mut eval_pairs = labelled.clone();
    eval_pairs.sentences1.truncate(500);
    eval_pairs.sentences2.truncate(500);
    eval_pairs.labels.truncate(500);
    let evaluator = BinaryClassificationEvaluator::new(eval_pairs, "quora")?;

    // 2. The model, loaded with trainable weights.
    let dir = resolve_model("splade-tiny")?;
    let encoder = TrainableEncoder::load(&dir, &Device::Cpu)?;

    // 3. The seed card's recipe (SpladeLoss with MNRL, FLOPS lambdas 5e-5 / 3e-5), short.
    let config = TrainConfig {
        batch_size: 16,
        max_steps: Some(40),
        logging_steps: 10,
        eval_steps: Some(20),
        ..TrainConfig::default()
    };
    config.validate()?;

    // 4. Train, evaluating every 20 steps; the best checkpoint by the last metric becomes
    //    `final/` (set `best_metric` to choose one).
    let report = run_to_folder(
        encoder,
        &data,
        &config,
        &out,
        RunInfo {
            base_model: "splade-tiny",
            train_path: Path::new(&pairs),
            eval_data: None,
            evaluator_order: &[],
            keyed: &[],
        },
        |model, step| {
            let result = evaluator
                .evaluate(model)
                .map_err(splade_train::TrainError::from)?;
            let metrics: Metrics = binary_keys(&result).into_iter().collect();
            eprintln!(
                "step {step}: quora_dot_ap {:?}",
                metrics.get("quora_dot_ap")
            );
            Ok(metrics)
        },
        |log| eprintln!("{log:?}"),
    )?;
    println!(
        "{} steps; the model is in {}",
        report.steps,
        out.join("final").display()
    );

    // 5. The trained model loads like any other.
    let trained = splade_encoder::SparseEncoder::load(&out.join("final"), &Device::Cpu)?;
    let v = trained.encode(&["how do i learn rust?"], &EncodeOptions::default())?;
    println!("{} active dimensions", v.row(0).map_or(0, |r| r.nnz()));
    Ok(())
}
