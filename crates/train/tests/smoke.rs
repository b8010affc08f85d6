//! A short training run on a tiny model: the loss falls, checkpoints and the final model are
//! written in the sentence-transformers layout and reload.

use std::path::Path;

use candle_core::Device;
use splade_encoder::{EncodeOptions, SparseEncoder, TrainableEncoder};
use splade_train::data::TrainingData;
use splade_train::trainer::{train, Metrics, TrainConfig};
use splade_train::SpladeLossConfig;

#[test]
fn loss_falls_and_the_saved_model_reloads() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/encoder/models/distilbert-tied-seedlayout");
    let encoder = TrainableEncoder::load(&model, &Device::Cpu).unwrap();
    let rows: Vec<Vec<String>> = [
        (
            "how do i learn python",
            "what is the best way to learn python",
            "how do i learn to swim",
        ),
        (
            "why is the sky blue",
            "what makes the sky blue",
            "why is grass green",
        ),
        (
            "best books on history",
            "which history books should i read",
            "best movies on history",
        ),
        (
            "how to lose weight fast",
            "fastest way to lose weight",
            "how to gain weight fast",
        ),
        (
            "what is machine learning",
            "explain machine learning",
            "what is machine washing",
        ),
        (
            "how do vaccines work",
            "how does a vaccine protect you",
            "how do engines work",
        ),
    ]
    .iter()
    .map(|(a, p, n)| vec![a.to_string(), p.to_string(), n.to_string()])
    .collect();
    let data = TrainingData {
        columns: vec!["anchor".into(), "positive".into(), "negative".into()],
        rows,
        ..Default::default()
    };
    let config = TrainConfig {
        batch_size: 3,
        max_steps: Some(24),
        learning_rate: 3e-3,
        logging_steps: 4,
        eval_steps: Some(12),
        best_metric: Some("step_metric".into()),
        loss: SpladeLossConfig {
            lambda_query: 1e-4,
            lambda_document: 1e-4,
            scale: 1.0,
            ..Default::default()
        },
        ..TrainConfig::default()
    };
    let out = tempfile::tempdir().unwrap();
    let mut evaluated = Vec::new();
    let report = train(
        encoder,
        &data,
        &config,
        out.path(),
        |enc, step| {
            evaluated.push(step);
            // A metric that prefers the earlier checkpoint, to exercise "keep the best".
            let v = enc
                .encode(&["why is the sky blue"], &EncodeOptions::default())
                .unwrap();
            let mut m = Metrics::new();
            m.insert("step_metric".into(), -(step as f64));
            m.insert("active_dims".into(), v.nnz() as f64);
            Ok(m)
        },
        |_| {},
    )
    .unwrap();
    assert_eq!(report.steps, 24);
    assert_eq!(evaluated, vec![12, 24]);
    let first = report.log.first().unwrap().loss;
    let last = report.log.last().unwrap().loss;
    assert!(last < first * 0.8, "loss did not fall: {first} -> {last}");
    assert!(report.log.iter().all(|e| e.loss.is_finite()));
    // The regulariser weights warm up quadratically over the first third (8 steps).
    assert_eq!(report.log[0].lambdas.0, 1e-4 * (3.0f64 / 8.0).powi(2));
    assert_eq!(report.best_step, Some(12));
    for dir in ["checkpoint-12", "checkpoint-24", "final"] {
        let reloaded = SparseEncoder::load(&out.path().join(dir), &Device::Cpu).unwrap();
        assert_eq!(reloaded.max_seq_length(), 64);
    }
    // The final model is the best checkpoint's.
    let best = SparseEncoder::load(&out.path().join("checkpoint-12"), &Device::Cpu).unwrap();
    let fin = SparseEncoder::load(&out.path().join("final"), &Device::Cpu).unwrap();
    let t = ["how do vaccines work"];
    assert_eq!(
        best.encode(&t, &EncodeOptions::default()).unwrap(),
        fin.encode(&t, &EncodeOptions::default()).unwrap()
    );
}

#[test]
fn a_stop_request_saves_a_checkpoint_and_ends_the_run() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let model = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/encoder/models/distilbert-tied-seedlayout");
    let encoder = TrainableEncoder::load(&model, &Device::Cpu).unwrap();
    let rows: Vec<Vec<String>> = (0..12)
        .map(|i| vec![format!("question {i}"), format!("same question {i}")])
        .collect();
    let data = TrainingData {
        columns: vec!["anchor".into(), "positive".into()],
        rows,
        ..Default::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let config = TrainConfig {
        batch_size: 2,
        max_steps: Some(50),
        logging_steps: 1,
        stop: Some(stop.clone()),
        ..TrainConfig::default()
    };
    let out = tempfile::tempdir().unwrap();
    let report = train(
        encoder,
        &data,
        &config,
        out.path(),
        |_, _| Ok(Metrics::new()),
        |entry| {
            if entry.step == 3 {
                stop.store(true, Ordering::SeqCst);
            }
        },
    )
    .unwrap();
    assert_eq!(report.steps, 3);
    let checkpoint = report.interrupted_at.expect("interrupted");
    assert_eq!(checkpoint, out.path().join("checkpoint-3"));
    SparseEncoder::load(&checkpoint, &Device::Cpu).unwrap();
    assert!(!out.path().join("final").exists());
}

#[test]
fn resuming_from_a_checkpoint_reproduces_the_uninterrupted_run() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/encoder/models/distilbert-tied-seedlayout");
    let rows: Vec<Vec<String>> = (0..10)
        .map(|i| {
            vec![
                format!("how to do thing {i}"),
                format!("ways to do thing {i}"),
                format!("unrelated {i}"),
            ]
        })
        .collect();
    let data = TrainingData {
        columns: vec!["anchor".into(), "positive".into(), "negative".into()],
        rows,
        ..Default::default()
    };
    // 4 batches per epoch of 3, 7 steps: the resume point (step 3) is inside the first epoch
    // and the run crosses into the second.
    let config = TrainConfig {
        batch_size: 3,
        max_steps: Some(7),
        learning_rate: 1e-3,
        weight_decay: 0.01,
        eval_steps: Some(3),
        logging_steps: 1,
        loss: SpladeLossConfig {
            lambda_query: 1e-3,
            lambda_document: 1e-3,
            scale: 1.0,
            ..Default::default()
        },
        ..TrainConfig::default()
    };
    let straight = tempfile::tempdir().unwrap();
    let encoder = TrainableEncoder::load(&model, &Device::Cpu).unwrap();
    let full = train(
        encoder,
        &data,
        &config,
        straight.path(),
        |_, _| Ok(Metrics::new()),
        |_| {},
    )
    .unwrap();

    let checkpoint = straight.path().join("checkpoint-3");
    let resumed_dir = tempfile::tempdir().unwrap();
    let encoder = TrainableEncoder::load(&checkpoint, &Device::Cpu).unwrap();
    let resumed_config = TrainConfig {
        resume_from: Some(checkpoint),
        ..config.clone()
    };
    let resumed = train(
        encoder,
        &data,
        &resumed_config,
        resumed_dir.path(),
        |_, _| Ok(Metrics::new()),
        |_| {},
    )
    .unwrap();

    assert_eq!(resumed.steps, 7);
    assert_eq!(
        resumed.log.len(),
        full.log.len(),
        "the log continues from the checkpoint"
    );
    for (a, b) in full.log.iter().zip(&resumed.log) {
        assert!(
            (a.loss - b.loss).abs() <= 1e-5 * a.loss.abs().max(1.0),
            "step {}: {} vs {}",
            a.step,
            a.loss,
            b.loss
        );
    }
    let a = SparseEncoder::load(&straight.path().join("final"), &Device::Cpu).unwrap();
    let b = SparseEncoder::load(&resumed_dir.path().join("final"), &Device::Cpu).unwrap();
    let texts = ["how to do thing 4", "unrelated 9"];
    let (va, vb) = (
        a.encode(&texts, &EncodeOptions::default()).unwrap(),
        b.encode(&texts, &EncodeOptions::default()).unwrap(),
    );
    for (ra, rb) in va.rows().zip(vb.rows()) {
        assert_eq!(ra.indices(), rb.indices());
        for (x, y) in ra.values().iter().zip(rb.values()) {
            assert!((x - y).abs() <= 1e-5 * x.abs().max(1.0), "{x} vs {y}");
        }
    }
}

fn tiny_model() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/encoder/models/distilbert-tied-seedlayout")
}

fn losses_of(data: &TrainingData, config: &TrainConfig) -> Vec<f64> {
    let encoder = TrainableEncoder::load(&tiny_model(), &Device::Cpu).unwrap();
    let out = tempfile::tempdir().unwrap();
    train(
        encoder,
        data,
        config,
        out.path(),
        |_, _| Ok(Metrics::new()),
        |_| {},
    )
    .unwrap()
    .log
    .iter()
    .map(|e| e.loss)
    .collect()
}

#[test]
fn dropout_follows_the_config_is_seeded_and_can_be_switched_off() {
    let rows: Vec<Vec<String>> = (0..6)
        .map(|i| vec![format!("question number {i}"), format!("answer {i}")])
        .collect();
    let data = TrainingData {
        columns: vec!["anchor".into(), "positive".into()],
        rows,
        ..Default::default()
    };
    let config = TrainConfig {
        batch_size: 3,
        max_steps: Some(4),
        logging_steps: 1,
        learning_rate: 1e-3,
        ..TrainConfig::default()
    };
    // The fixture model's config asks for dropout 0.1.
    let with = losses_of(&data, &config);
    assert_eq!(with, losses_of(&data, &config), "same seed, same masks");
    let other_seed = losses_of(
        &data,
        &TrainConfig {
            seed: 7,
            sampler: splade_train::sampler::BatchSampler::Sequential,
            ..config.clone()
        },
    );
    let other_seed_again = losses_of(
        &data,
        &TrainConfig {
            seed: 8,
            sampler: splade_train::sampler::BatchSampler::Sequential,
            ..config.clone()
        },
    );
    assert_ne!(other_seed, other_seed_again, "the seed drives the masks");
    let without = losses_of(
        &data,
        &TrainConfig {
            dropout: false,
            ..config.clone()
        },
    );
    assert_eq!(
        without,
        losses_of(
            &data,
            &TrainConfig {
                dropout: false,
                ..config.clone()
            }
        )
    );
    assert_ne!(with, without, "dropout changes the forward pass");
}

#[test]
fn margin_mse_distillation_loss_falls() {
    // A teacher that prefers the positive by a fixed margin of 5.
    let rows: Vec<Vec<String>> = (0..8)
        .map(|i| {
            vec![
                format!("how do I cook dish {i}"),
                format!("recipe for dish {i}"),
                format!("history of country {i}"),
            ]
        })
        .collect();
    let data = TrainingData {
        columns: vec!["anchor".into(), "positive".into(), "negative".into()],
        labels: vec![vec![5.0]; rows.len()],
        label_column: Some("label".into()),
        rows,
    };
    let config = TrainConfig {
        batch_size: 4,
        max_steps: Some(30),
        logging_steps: 5,
        learning_rate: 3e-3,
        dropout: false,
        loss: SpladeLossConfig {
            base: splade_train::BaseLoss::MarginMse,
            ..Default::default()
        },
        ..TrainConfig::default()
    };
    let losses = losses_of(&data, &config);
    assert!(
        losses.last().unwrap() < &(losses[0] * 0.5),
        "MarginMSE loss should fall: {losses:?}"
    );
    // Without labels the distillation loss refuses to start.
    let unlabelled = TrainingData {
        labels: Vec::new(),
        label_column: None,
        ..data.clone()
    };
    let encoder = TrainableEncoder::load(&tiny_model(), &Device::Cpu).unwrap();
    let out = tempfile::tempdir().unwrap();
    let e = train(
        encoder,
        &unlabelled,
        &config,
        out.path(),
        |_, _| Ok(Metrics::new()),
        |_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("needs a label column"), "{e}");
}
