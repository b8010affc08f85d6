//! The training crate as a library: `run_to_folder` writes the folder `splade train` writes,
//! the `Trainer` phases can be driven one by one, and failures are typed `TrainError`s.

mod common;

use common::{data, model};
use std::path::Path;

use candle_core::Device;
use splade_encoder::{SparseEncoder, TrainableEncoder};
use splade_train::output::{run_to_folder, RunInfo};
use splade_train::sampler::BatchSampler;
use splade_train::trainer::{Metrics, TrainConfig, Trainer};
use splade_train::{BaseLoss, SpladeLossConfig, TrainError};

fn config() -> TrainConfig {
    TrainConfig {
        batch_size: 2,
        max_steps: Some(2),
        logging_steps: 1,
        sampler: BatchSampler::Sequential,
        ..TrainConfig::default()
    }
}

#[test]
fn run_to_folder_writes_the_folder_the_command_writes() {
    let data = data(Vec::new());
    let config = TrainConfig {
        eval_steps: Some(1),
        best_metric: Some("score".into()),
        ..config()
    };
    let out = tempfile::tempdir().unwrap();
    let encoder = TrainableEncoder::load(&model(), &Device::Cpu).unwrap();
    let mut logged = 0;
    let report = run_to_folder(
        encoder,
        &data,
        &config,
        out.path(),
        RunInfo {
            base_model: "fixture",
            train_path: Path::new("rows.jsonl"),
            eval_data: None,
            evaluator_order: &[],
            keyed: &[],
        },
        |_, step| Ok(Metrics::from([("score".to_string(), -(step as f64))])),
        |_| logged += 1,
    )
    .unwrap();
    assert_eq!(report.steps, 2);
    assert_eq!(logged, 2);
    assert_eq!(report.best_step, Some(1));
    for file in [
        "training_log.jsonl",
        "evaluations.json",
        "training_plot.png",
        "checkpoint-1/trainer_state.json",
        "checkpoint-2/optimizer.safetensors",
        "final/model.safetensors",
        "final/training_plot.png",
        "final/README.md",
    ] {
        assert!(out.path().join(file).is_file(), "{file}");
    }
    let log = std::fs::read_to_string(out.path().join("training_log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 2);
    // The final model is the best checkpoint's (step 1), not the last step's.
    let texts = ["question 1"];
    let options = splade_encoder::EncodeOptions::default();
    let best = SparseEncoder::load(&out.path().join("checkpoint-1"), &Device::Cpu).unwrap();
    let fin = SparseEncoder::load(&out.path().join("final"), &Device::Cpu).unwrap();
    assert_eq!(
        best.encode(&texts, &options).unwrap(),
        fin.encode(&texts, &options).unwrap()
    );
}

#[test]
fn the_trainer_phases_can_be_driven_one_by_one() {
    let data = data(Vec::new());
    let config = config();
    let out = tempfile::tempdir().unwrap();
    let encoder = TrainableEncoder::load(&model(), &Device::Cpu).unwrap();
    let mut trainer = Trainer::new(encoder, &data, &config, out.path()).unwrap();
    assert_eq!(trainer.total_steps(), 2);
    let entry = trainer.step().unwrap().expect("logging every step");
    assert_eq!(entry.step, 1);
    assert!(entry.loss.is_finite());
    let checkpoint = trainer.checkpoint().unwrap();
    assert_eq!(checkpoint, out.path().join("checkpoint-1"));
    trainer.step().unwrap();
    assert!(trainer.is_done());
    let report = trainer.finish().unwrap();
    assert_eq!(report.steps, 2);
    assert_eq!(report.log.len(), 2);
    assert!(out.path().join("final/model.safetensors").is_file());
}

#[test]
fn failures_are_typed() {
    // An option out of range.
    let data_rows = data(Vec::new());
    let bad = TrainConfig {
        learning_rate: f64::NAN,
        ..config()
    };
    let out = tempfile::tempdir().unwrap();
    let encoder = TrainableEncoder::load(&model(), &Device::Cpu).unwrap();
    match Trainer::new(encoder, &data_rows, &bad, out.path()) {
        Err(TrainError::Config { field, .. }) => assert_eq!(field, "learning_rate"),
        Err(other) => panic!("expected a config error, got {other}"),
        Ok(_) => panic!("expected a config error"),
    }
    // A NaN teacher margin in the second batch: divergence at step 2, naming checkpoint-1.
    let labelled = data(vec![vec![1.0], vec![0.5], vec![f32::NAN], vec![2.0]]);
    let config = TrainConfig {
        eval_steps: Some(1),
        loss: SpladeLossConfig {
            base: BaseLoss::MarginMse,
            ..SpladeLossConfig::default()
        },
        ..config()
    };
    let encoder = TrainableEncoder::load(&model(), &Device::Cpu).unwrap();
    let err = splade_train::trainer::train(
        encoder,
        &labelled,
        &config,
        out.path(),
        |_, _| Ok(Metrics::new()),
        |_| {},
    )
    .unwrap_err();
    match err {
        TrainError::Diverged {
            step,
            last_checkpoint,
            ..
        } => {
            assert_eq!(step, 2);
            assert_eq!(last_checkpoint, Some(out.path().join("checkpoint-1")));
        }
        other => panic!("expected divergence, got {other}"),
    }
}

#[test]
fn non_finite_activations_are_a_divergence_keeping_the_forward_error() {
    let data = data(Vec::new());
    let config = config();
    let out = tempfile::tempdir().unwrap();
    let encoder = TrainableEncoder::load(&model(), &Device::Cpu).unwrap();
    // NaN in the LayerNorm in front of the vocabulary projection: NaN logits.
    let (name, norm) = encoder
        .vars()
        .iter()
        .find(|(n, _)| n.contains("vocab_layer_norm.weight"))
        .expect("the vocabulary LayerNorm");
    let poisoned = (norm.as_tensor().ones_like().unwrap() * f64::NAN).unwrap();
    norm.set(&poisoned).unwrap();
    let name = name.clone();
    let mut trainer = Trainer::new(encoder, &data, &config, out.path()).unwrap();
    match trainer.step() {
        Err(e @ TrainError::Diverged { .. }) => {
            let TrainError::Diverged {
                step,
                ref what,
                ref source,
                ..
            } = e
            else {
                unreachable!()
            };
            assert_eq!(step, 1);
            assert!(what.contains("activations"), "{e}");
            let source = source.as_ref().expect("the forward pass's error");
            assert!(
                source.to_string().contains(splade_encoder::NON_FINITE),
                "{name}: {source}"
            );
            assert!(std::error::Error::source(&e).is_some());
        }
        Err(other) => panic!("expected divergence, got {other}"),
        Ok(_) => panic!("expected divergence"),
    }
}
