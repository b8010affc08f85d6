//! The GPU training path, run on the CPU (CI has no GPU): bf16 mixed precision and the
//! device-resident AdamW. On a CUDA build the same code runs on the GPU.

use std::path::Path;

use candle_core::{DType, Device};
use splade_encoder::{EncodeOptions, TrainableEncoder};
use splade_train::loss::configured_splade_loss;
use splade_train::optim::{AdamW, AdamWConfig};
use splade_train::step::{DecayFilter, MicroBatch, StepConfig, TrainStep};
use splade_train::SpladeLossConfig;

fn model() -> std::path::PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join("fixtures/encoder/models/distilbert-tied-seedlayout")
}

fn columns() -> Vec<Vec<&'static str>> {
    vec![
        vec![
            "how do I learn rust quickly",
            "what is the capital of france",
            "why is the sky blue",
        ],
        vec![
            "fastest way to learn the rust language",
            "paris is the capital of which country",
            "the sky looks blue because of scattering",
        ],
        vec![
            "best pizza in new york",
            "how tall is mount everest",
            "who wrote the iliad",
        ],
    ]
}

/// Loss and gradients (f64, flattened in variable order) of one batch, through the trainer's
/// step ([`TrainStep::gradients`]) at the given precision, without dropout or clipping.
fn loss_and_gradients(precision: DType) -> (f64, Vec<f64>) {
    let encoder = TrainableEncoder::load(&model(), &Device::Cpu).unwrap();
    let step = TrainStep::new(
        encoder,
        StepConfig {
            adamw: AdamWConfig::default(),
            decay: DecayFilter::All,
            loss: SpladeLossConfig::default(),
            max_grad_norm: None,
            dropout_seed: None,
            precision,
            column_tasks: Vec::new(),
            learning_rate_mapping: Vec::new(),
        },
    )
    .unwrap();
    assert_eq!(step.encoder().precision(), precision);
    assert!(step.vars().iter().all(|(_, v)| v.dtype() == DType::F32));
    let batch = MicroBatch {
        columns: columns(),
        labels: None,
    };
    let (losses, grads) = step.gradients(0, &[batch], (5e-5, 3e-5)).unwrap();
    let mut flat = Vec::new();
    for (name, var) in step.vars() {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        assert_eq!(
            g.dtype(),
            DType::F32,
            "{name}: gradients reach the f32 weights"
        );
        flat.extend(
            g.flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .into_iter()
                .map(f64::from),
        );
    }
    (losses.total, flat)
}

#[test]
fn bf16_mixed_precision_tracks_f32() {
    let (loss32, g32) = loss_and_gradients(DType::F32);
    let (loss16, g16) = loss_and_gradients(DType::BF16);
    assert!(
        (loss16 - loss32).abs() <= 0.03 * loss32.abs(),
        "loss bf16 {loss16} vs f32 {loss32}"
    );
    let dot: f64 = g32.iter().zip(&g16).map(|(a, b)| a * b).sum();
    let n32 = g32.iter().map(|a| a * a).sum::<f64>().sqrt();
    let n16 = g16.iter().map(|a| a * a).sum::<f64>().sqrt();
    let cosine = dot / (n32 * n16);
    assert!(cosine > 0.98, "gradient cosine {cosine}");
    assert!(
        (n16 / n32 - 1.0).abs() < 0.1,
        "gradient norms {n16} vs {n32}"
    );
    // bf16 really ran: the gradients are not bit-identical to f32's.
    assert!(g32 != g16);
    let mut encoder = TrainableEncoder::load(&model(), &Device::Cpu).unwrap();
    assert!(encoder.set_precision(DType::F16).is_err());
}

#[test]
fn device_optimizer_in_bf16_lowers_the_loss() {
    let mut encoder = TrainableEncoder::load(&model(), &Device::Cpu).unwrap();
    encoder.set_precision(DType::BF16).unwrap();
    let vars = encoder.vars().to_vec();
    let config = AdamWConfig {
        lr: 1e-3,
        ..AdamWConfig::default()
    };
    let mut optimizer =
        AdamW::with_device_moments(vars.iter().map(|(_, v)| v.clone()).collect(), config).unwrap();
    let mut losses = Vec::new();
    for _ in 0..6 {
        let embeddings = encoder
            .forward_dense_columns(&columns(), &EncodeOptions::default(), None)
            .unwrap();
        let parts =
            configured_splade_loss(&embeddings, None, &SpladeLossConfig::default(), (0.0, 0.0))
                .unwrap();
        losses.push(parts.total.to_scalar::<f32>().unwrap());
        optimizer.step(&parts.total.backward().unwrap()).unwrap();
    }
    assert!(
        losses.last().unwrap() < &(losses[0] * 0.8),
        "the loss falls: {losses:?}"
    );
    // The weights stay f32 after bf16 steps.
    assert!(vars.iter().all(|(_, v)| v.dtype() == DType::F32));
}
