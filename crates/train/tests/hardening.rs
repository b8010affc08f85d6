//! Runs that would save a NaN model: non-finite or out-of-range hyper-parameters are refused
//! up front, and a loss that stops being finite ends the run with an error naming the step,
//! keeping the last good checkpoint and writing nothing of the bad step.

mod common;

use common::{data, model};
use std::path::Path;

use candle_core::Device;
use splade_encoder::{SparseEncoder, TrainableEncoder};
use splade_train::data::TrainingData;
use splade_train::sampler::BatchSampler;
use splade_train::trainer::{train, Metrics, TrainConfig};
use splade_train::{BaseLoss, SpladeLossConfig};

fn run(data: &TrainingData, config: &TrainConfig, out: &Path) -> splade_train::Result<()> {
    let encoder = TrainableEncoder::load(&model(), &Device::Cpu).unwrap();
    train(
        encoder,
        data,
        config,
        out,
        |_, _| Ok(Metrics::new()),
        |_| {},
    )
    .map(|_| ())
}

#[test]
fn a_non_finite_loss_stops_the_run_naming_the_step_and_keeps_the_last_checkpoint() {
    // Rows 2 and 3 (the second batch, in file order) carry a NaN teacher margin.
    let labels = vec![vec![1.0], vec![0.5], vec![f32::NAN], vec![2.0]];
    let data = data(labels);
    let config = TrainConfig {
        batch_size: 2,
        max_steps: Some(2),
        learning_rate: 1e-3,
        eval_steps: Some(1),
        logging_steps: 1,
        sampler: BatchSampler::Sequential,
        loss: SpladeLossConfig {
            base: BaseLoss::MarginMse,
            ..SpladeLossConfig::default()
        },
        ..TrainConfig::default()
    };
    let out = tempfile::tempdir().unwrap();
    let err = run(&data, &config, out.path()).unwrap_err().to_string();
    assert!(
        err.contains("training step 2") && err.contains("NaN") && err.contains("checkpoint-1"),
        "{err}"
    );
    assert!(out.path().join("checkpoint-1/model.safetensors").is_file());
    assert!(!out.path().join("checkpoint-2").exists(), "{err}");
    assert!(!out.path().join("final").exists(), "{err}");
    // The kept checkpoint is a sound model.
    SparseEncoder::load(&out.path().join("checkpoint-1"), &Device::Cpu).unwrap();
}

#[test]
fn a_huge_learning_rate_diverges_into_an_error_not_a_nan_model() {
    let config = TrainConfig {
        batch_size: 2,
        max_steps: Some(6),
        learning_rate: 1e30,
        logging_steps: 1,
        ..TrainConfig::default()
    };
    let out = tempfile::tempdir().unwrap();
    let err = run(&data(Vec::new()), &config, out.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("training step") && err.contains("diverged"),
        "{err}"
    );
    assert!(!out.path().join("final").exists(), "{err}");
}

#[test]
fn non_finite_and_out_of_range_hyper_parameters_are_refused_up_front() {
    type Edit = fn(&mut TrainConfig);
    let cases: [(&str, Edit); 14] = [
        ("learning_rate", |c| c.learning_rate = f64::NAN),
        ("learning_rate", |c| c.learning_rate = f64::INFINITY),
        ("learning_rate", |c| c.learning_rate = -1e-5),
        ("epochs", |c| c.epochs = f64::NAN),
        ("epochs", |c| c.epochs = 0.0),
        ("warmup_ratio", |c| c.warmup_ratio = 1.5),
        ("weight_decay", |c| c.weight_decay = f64::NAN),
        ("max_grad_norm", |c| c.max_grad_norm = Some(f64::INFINITY)),
        ("lambda_query", |c| c.loss.lambda_query = f64::NAN),
        ("lambda_document", |c| c.loss.lambda_document = -1.0),
        ("batch_size", |c| c.batch_size = 0),
        ("gradient_accumulation", |c| c.gradient_accumulation = 0),
        ("max_steps", |c| c.max_steps = Some(0)),
        ("eval_steps", |c| c.eval_steps = Some(0)),
    ];
    for (field, edit) in cases {
        let mut config = TrainConfig {
            max_steps: Some(1),
            ..TrainConfig::default()
        };
        edit(&mut config);
        let out = tempfile::tempdir().unwrap();
        let err = run(&data(Vec::new()), &config, out.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains(field), "{field}: {err}");
        assert_eq!(
            std::fs::read_dir(out.path()).unwrap().count(),
            0,
            "{field}: nothing may be written"
        );
    }
}

#[test]
fn non_finite_labels_in_training_files_are_refused_with_their_line() {
    let tmp = tempfile::tempdir().unwrap();
    let tsv = tmp.path().join("train.tsv");
    std::fs::write(
        &tsv,
        "anchor\tpositive\tnegative\tlabel\nq1\tp1\tn1\t0.5\nq2\tp2\tn2\tnan\n",
    )
    .unwrap();
    let jsonl = tmp.path().join("train.jsonl");
    std::fs::write(
        &jsonl,
        "{\"anchor\":\"q\",\"positive\":\"p\",\"negative\":\"n\",\"label\":1e39}\n",
    )
    .unwrap();
    let mapping = splade_train::data::ColumnMapping {
        anchor: "anchor".into(),
        positive: "positive".into(),
        negatives: Vec::new(),
        label: None,
    };
    for (path, line) in [(&tsv, "3"), (&jsonl, "1")] {
        let err = TrainingData::read(path, &mapping).unwrap_err().to_string();
        assert!(
            err.contains("not finite") && err.contains(line),
            "{}: {err}",
            path.display()
        );
    }
}

#[test]
fn a_model_with_non_finite_weights_is_never_saved() {
    let encoder = TrainableEncoder::load(&model(), &Device::Cpu).unwrap();
    let vars = encoder.vars();
    let (name, var) = &vars[vars.len() / 2];
    let poisoned = (var.as_tensor().ones_like().unwrap() * f64::NAN).unwrap();
    var.set(&poisoned).unwrap();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("final");
    let err = splade_train::save::save_model(&encoder, vars, &target, |_| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(err.contains(name.as_str()) && err.contains("NaN"), "{err}");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}
