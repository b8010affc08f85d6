//! SpladeLoss parts, gradients and AdamW steps against sentence-transformers / PyTorch
//! (fixtures from scripts/parity/generate_train_fixtures.py), computed by the trainer's own
//! step: [`TrainStep::gradients`] and [`TrainStep::step`] are what `Trainer::step` (and so
//! `splade train`) calls for every optimiser step. The fixtures' settings are passed through
//! the same [`StepConfig`] the trainer builds: one micro-batch per step, no dropout (the
//! reference runs in eval mode), no clipping, and weight decay on every parameter (the
//! reference optimises `model.parameters()` with plain `torch.optim.AdamW`).

mod common;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use splade_encoder::TrainableEncoder;
use splade_train::optim::AdamWConfig;
use splade_train::step::{DecayFilter, MicroBatch, StepConfig, TrainStep};
use splade_train::{BaseLoss, SpladeLossConfig};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn fixture(name: &str) -> Value {
    let path = root().join("fixtures/train").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn setup(f: &Value) -> (TrainStep, Vec<Vec<String>>, Option<Tensor>, (f64, f64)) {
    // The DistilBERT fixture unless the case names another backbone.
    let model = root().join(
        f["config"]["model"]
            .as_str()
            .unwrap_or("fixtures/encoder/models/distilbert-tied-seedlayout"),
    );
    let encoder = TrainableEncoder::load(&model, &Device::Cpu).unwrap();
    let a = &f["adamw"];
    let adamw = AdamWConfig {
        lr: a["lr"].as_f64().unwrap(),
        beta1: a["betas"][0].as_f64().unwrap(),
        beta2: a["betas"][1].as_f64().unwrap(),
        eps: a["eps"].as_f64().unwrap(),
        weight_decay: a["weight_decay"].as_f64().unwrap(),
    };
    let lambdas = (
        f["config"]["lambda_query"].as_f64().unwrap(),
        f["config"]["lambda_document"].as_f64().unwrap(),
    );
    let loss = SpladeLossConfig {
        lambda_query: lambdas.0,
        lambda_document: lambdas.1,
        scale: 1.0,
        base: match f["config"]["loss"].as_str() {
            Some("margin_mse") => BaseLoss::MarginMse,
            _ => BaseLoss::MultipleNegativesRanking,
        },
    };
    let columns: Vec<Vec<String>> = serde_json::from_value(f["texts"].clone()).unwrap();
    // Labels (teacher scores or margins) of the distillation case.
    let labels = f.get("labels").filter(|l| !l.is_null()).map(|l| {
        let rows: Vec<Vec<f32>> = serde_json::from_value(l.clone()).unwrap();
        let width = rows[0].len();
        Tensor::from_vec(rows.concat(), (rows.len(), width), &Device::Cpu).unwrap()
    });
    let step = TrainStep::new(
        encoder,
        StepConfig {
            adamw,
            decay: DecayFilter::All,
            loss,
            max_grad_norm: None,
            dropout_seed: None,
            precision: DType::F32,
            column_tasks: Vec::new(),
            learning_rate_mapping: Vec::new(),
        },
    )
    .unwrap();
    (step, columns, labels, lambdas)
}

fn rel_close(ours: f64, reference: f64, tol: f64) -> bool {
    (ours - reference).abs() <= tol * reference.abs().max(1e-8)
}

/// The fixture's batch as the trainer hands it to the step: one micro-batch.
fn micro_batches<'a>(columns: &'a [Vec<String>], labels: &Option<Tensor>) -> Vec<MicroBatch<'a>> {
    vec![MicroBatch {
        columns: columns
            .iter()
            .map(|c| c.iter().map(String::as_str).collect())
            .collect(),
        labels: labels.clone(),
    }]
}

fn check(name: &str) {
    let f = fixture(name);
    let (trainer, columns, labels, lambdas) = setup(&f);
    let batch = micro_batches(&columns, &labels);

    // Loss parts and gradients of the first optimiser step.
    let (losses, grads) = trainer.gradients(0, &batch, lambdas).unwrap();
    let l = &f["loss"];
    for (ours, key) in [
        (losses.total, "total"),
        (losses.base, "base_loss"),
        (losses.query_regularizer, "query_regularizer_loss"),
        (losses.document_regularizer, "document_regularizer_loss"),
    ] {
        let reference = l[key].as_f64().unwrap();
        assert!(
            rel_close(ours, reference, 1e-4),
            "{name}: {key}: ours {ours}, reference {reference}"
        );
    }

    // Per-parameter gradient norms (in f64).
    let expected = f["grad_norms"].as_object().unwrap();
    // Gradients that are zero in exact arithmetic (e.g. attention key biases: softmax ignores a
    // per-row constant) come out as float noise on both sides; they are held to an absolute
    // tolerance relative to the largest gradient instead.
    let largest = expected
        .values()
        .filter_map(Value::as_f64)
        .fold(0.0, f64::max);
    let mut compared = 0;
    for (param, var) in trainer.vars() {
        let Some(reference) = expected.get(param).and_then(Value::as_f64) else {
            continue;
        };
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient for {param}"));
        let norm = g
            .to_dtype(candle_core::DType::F64)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
            .sqrt();
        assert!(
            (norm - reference).abs() <= 1e-4 * reference.abs() + 1e-6 * largest,
            "{name}: grad norm of {param}: ours {norm}, reference {reference}"
        );
        compared += 1;
    }
    assert_eq!(
        compared,
        expected.len(),
        "{name}: every reference gradient has a Rust variable"
    );

    // Three AdamW steps: the losses seen and the weights reached.
    let (mut trainer2, _, _, _) = setup(&f);
    let a = &f["adamw"];
    let steps = a["steps"].as_u64().unwrap() as usize;
    for (s, reference) in a["losses"]
        .as_array()
        .unwrap()
        .iter()
        .take(steps)
        .enumerate()
    {
        let got = trainer2.step(s, &batch, lambdas).unwrap().total;
        let reference = reference.as_f64().unwrap();
        assert!(
            rel_close(got, reference, 1e-4),
            "{name}: loss at AdamW step {s}: ours {got}, reference {reference}"
        );
    }
    // Adam divides by the gradient's running RMS, so a parameter whose gradient is pure float
    // noise (zero in exact arithmetic, see above) takes full-size random steps on both sides;
    // those parameters cannot be compared and are skipped.
    let noise = |param: &str| {
        expected
            .get(param)
            .and_then(Value::as_f64)
            .is_some_and(|g| g < 1e-5 * largest)
    };
    let mut checked = 0;
    for (param, var) in trainer2.vars() {
        let Some(w) = a["weights"].get(param) else {
            continue;
        };
        if noise(param) {
            continue;
        }
        checked += 1;
        let flat: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        common::assert_weights_match(&format!("{name}: {param} after {steps} steps"), &flat, w);
    }
    assert!(
        checked >= 30.min(expected.len() * 3 / 4),
        "{name}: only {checked} parameters compared after the AdamW steps"
    );
}

#[test]
fn trainer_step_matches_pytorch_with_seed_lambdas() {
    check("seed_lambdas");
}

#[test]
fn trainer_step_matches_pytorch_with_large_lambdas() {
    check("large_lambdas");
}

#[test]
fn trainer_step_matches_pytorch_on_pairs_without_negatives() {
    check("pairs_only");
}

#[test]
fn trainer_step_matches_pytorch_with_margin_mse_distillation() {
    check("margin_mse");
}

#[test]
fn trainer_step_matches_pytorch_on_roberta() {
    check("roberta");
}

#[test]
fn trainer_step_matches_pytorch_on_xlm_roberta() {
    check("xlm_roberta");
}

#[test]
fn trainer_step_matches_pytorch_on_modernbert() {
    check("modernbert");
}
