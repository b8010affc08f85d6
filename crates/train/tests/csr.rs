//! Training a CSR model (`Transformer` + `Pooling` + `SparseAutoEncoder`) with `CSRLoss`
//! against sentence-transformers 6.2 / PyTorch (fixtures from
//! scripts/parity/generate_csr_train_fixtures.py): the loss parts (reconstruction k, 4k, aux
//! over dead latents, and the weighted MNRL), every parameter's gradient norm, the dead-latent
//! statistics, three AdamW steps and the weights after them, for mean pooling and for CLS
//! pooling with `normalize`; then the saved folder: it reloads in splade-rs to the vectors
//! sentence-transformers gives its own trained model, and (when `SPLADE_RS_REFERENCE_PYTHON`
//! names a Python with sentence-transformers) loads in sentence-transformers to the same
//! vectors.

mod common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use splade_encoder::{EncodeOptions, SparseEncoder, TrainableEncoder};
use splade_train::loss::CsrLossConfig;
use splade_train::optim::AdamWConfig;
use splade_train::save::save_model;
use splade_train::step::{DecayFilter, MicroBatch, StepConfig, TrainStep};
use splade_train::{BaseLoss, SpladeLossConfig};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn fixture(case: &str) -> Value {
    let path = root().join(format!("fixtures/train/csr/{case}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The fixture model with the case's config edits, in `tmp`.
fn model_for(f: &Value, tmp: &Path) -> PathBuf {
    let dir = tmp.join("csr-bert");
    copy_dir(&root().join("fixtures/encoder/models/csr-bert"), &dir);
    for (file, edits) in f["edits"].as_object().unwrap() {
        let path = dir.join(file);
        let mut config: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for (k, v) in edits.as_object().unwrap() {
            config[k] = v.clone();
        }
        std::fs::write(&path, config.to_string()).unwrap();
    }
    dir
}

fn step_for(f: &Value, dir: &Path) -> (TrainStep, Vec<Vec<String>>) {
    let encoder = TrainableEncoder::load(dir, &Device::Cpu).unwrap();
    let a = &f["adamw"];
    let mut step = TrainStep::new(
        encoder,
        StepConfig {
            adamw: AdamWConfig {
                lr: a["lr"].as_f64().unwrap(),
                beta1: a["betas"][0].as_f64().unwrap(),
                beta2: a["betas"][1].as_f64().unwrap(),
                eps: a["eps"].as_f64().unwrap(),
                weight_decay: a["weight_decay"].as_f64().unwrap(),
            },
            decay: DecayFilter::All,
            loss: SpladeLossConfig {
                lambda_query: 0.0,
                lambda_document: 0.0,
                scale: 1.0,
                base: BaseLoss::MultipleNegativesRanking,
            },
            max_grad_norm: None,
            dropout_seed: None,
            precision: DType::F32,
            column_tasks: Vec::new(),
            learning_rate_mapping: Vec::new(),
        },
    )
    .unwrap();
    step.set_csr_loss(CsrLossConfig {
        beta: f["beta"].as_f64().unwrap(),
        gamma: f["gamma"].as_f64().unwrap(),
        k: None,
        k_aux: None,
    })
    .unwrap();
    let texts: Vec<Vec<String>> = serde_json::from_value(f["texts"].clone()).unwrap();
    (step, texts)
}

fn batch(texts: &[Vec<String>]) -> Vec<MicroBatch<'_>> {
    vec![MicroBatch {
        columns: texts
            .iter()
            .map(|c| c.iter().map(String::as_str).collect())
            .collect(),
        labels: None,
    }]
}

fn norm(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
        .sqrt()
}

fn stats(v: &Value) -> Vec<i64> {
    serde_json::from_value(v.clone()).unwrap()
}

fn check_case(case: &str) {
    let f = fixture(case);
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_for(&f, tmp.path());

    // One step: loss parts, gradient norms, dead-latent statistics.
    let (step, texts) = step_for(&f, &dir);
    let (losses, grads) = step.gradients(0, &batch(&texts), (0.0, 0.0)).unwrap();
    for (ours, key) in [
        (losses.total, "total"),
        (losses.base, "base_loss"),
        (losses.reconstruction[0], "reconstruction_loss_k"),
        (losses.reconstruction[1], "reconstruction_loss_4k"),
        (losses.reconstruction[2], "reconstruction_loss_aux"),
    ] {
        let reference = f["loss"][key].as_f64().unwrap();
        assert!(
            (ours - reference).abs() <= 1e-4 * reference.abs().max(1e-6),
            "{case} {key}: ours {ours}, reference {reference}"
        );
    }
    assert_eq!(losses.query_regularizer, 0.0);
    assert_eq!(
        step.encoder().csr_stats().unwrap(),
        stats(&f["stats_after_one_step"]),
        "{case}: dead-latent statistics after one step"
    );
    assert!(f["dead_after_one_step"].as_u64().unwrap() > 10);
    let expected = f["grad_norms"].as_object().unwrap();
    let largest = expected
        .values()
        .filter_map(Value::as_f64)
        .fold(0.0, f64::max);
    let mut with_grad = 0;
    for (name, var) in step.vars() {
        let ours = grads.get(var.as_tensor()).map(norm);
        match expected.get(name).and_then(Value::as_f64) {
            Some(reference) => {
                let ours = ours.unwrap_or_else(|| panic!("{case}: no gradient for {name}"));
                assert!(
                    (ours - reference).abs() <= 1e-4 * reference + 1e-6 * largest,
                    "{case}: grad norm of {name}: ours {ours}, reference {reference}"
                );
                with_grad += 1;
            }
            // Unused by the forward pass (BertModel's pooler): no gradient in either.
            None => assert!(
                ours.is_none_or(|n| n == 0.0),
                "{case}: {name} has a gradient only here"
            ),
        }
    }
    assert_eq!(with_grad, expected.len(), "{case}");

    // Three AdamW steps.
    let (mut step, texts) = step_for(&f, &dir);
    let a = &f["adamw"];
    for (s, reference) in a["losses"].as_array().unwrap().iter().enumerate() {
        let got = step.step(s, &batch(&texts), (0.0, 0.0)).unwrap().total;
        let reference = reference.as_f64().unwrap();
        assert!(
            (got - reference).abs() <= 1e-4 * reference.abs(),
            "{case}: loss at step {s}: ours {got}, reference {reference}"
        );
    }
    assert_eq!(step.encoder().csr_stats().unwrap(), stats(&a["stats"]));
    let noise = |name: &str| {
        expected
            .get(name)
            .and_then(Value::as_f64)
            .is_none_or(|g| g < 1e-5 * largest)
    };
    for (name, var) in step.vars() {
        let w = &a["weights"][name.as_str()];
        assert!(!w.is_null(), "{case}: no reference weights for {name}");
        if noise(name) {
            continue;
        }
        let flat: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        common::assert_weights_match(&format!("{case}: {name}"), &flat, w);
    }

    // The saved folder: sentence-transformers' layout, reloading to the vectors
    // sentence-transformers gives its own trained model.
    let out = tmp.path().join("trained");
    save_model(step.encoder(), step.vars(), &out, |_| Ok(())).unwrap();
    for file in [
        "modules.json",
        "1_Pooling/config.json",
        "2_SparseAutoEncoder/config.json",
        "2_SparseAutoEncoder/model.safetensors",
        "model.safetensors",
        "config_sentence_transformers.json",
    ] {
        assert!(out.join(file).is_file(), "{case}: {file} missing");
    }
    let ours = SparseEncoder::load(&out, &Device::Cpu).unwrap();
    assert!(ours.is_csr());
    assert_eq!(
        ours.csr().unwrap().sae.stats_last_nonzero,
        stats(&a["stats"])
    );
    let all: Vec<&str> = texts.iter().flatten().map(String::as_str).collect();
    // The fixture lists the texts row by row (anchor, positive, negative of each row).
    let rows = texts[0].len();
    let by_row: Vec<&str> = (0..rows)
        .flat_map(|r| texts.iter().map(move |c| c[r].as_str()))
        .collect();
    assert_eq!(all.len(), by_row.len());
    let encoded = ours.encode(&by_row, &EncodeOptions::default()).unwrap();
    let reference = f["trained_vectors"].as_array().unwrap();
    for (i, (row, r)) in encoded.rows().zip(reference).enumerate() {
        let indices: Vec<u32> = serde_json::from_value(r["indices"].clone()).unwrap();
        let values: Vec<f32> = serde_json::from_value(r["values"].clone()).unwrap();
        assert_eq!(row.indices(), indices.as_slice(), "{case}: text {i}");
        for (a, b) in row.values().iter().zip(&values) {
            assert!(
                (a - b).abs() <= 1e-3 * b.abs().max(1.0),
                "{case}: text {i}: {a} vs {b}"
            );
        }
    }
    if let Some(python) = std::env::var_os("SPLADE_RS_REFERENCE_PYTHON")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
    {
        let script = r#"
import json, sys
from sentence_transformers import SparseEncoder
m = SparseEncoder(sys.argv[1], device="cpu")
texts = json.loads(sys.argv[2])
e = m.encode(texts, convert_to_tensor=True, convert_to_sparse_tensor=False)
print(json.dumps({"max_active_dims": m.max_active_dims,
                  "stats": m[2].stats_last_nonzero.tolist(),
                  "rows": [{str(int(i)): float(r[i]) for i in r.nonzero().flatten()} for r in e]}))
"#;
        let run = std::process::Command::new(python)
            .env("HF_HUB_OFFLINE", "1")
            .args([
                "-c",
                script,
                out.to_str().unwrap(),
                &serde_json::to_string(&by_row).unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let st: Value = serde_json::from_slice(&run.stdout).unwrap();
        assert_eq!(st["max_active_dims"], 8);
        assert_eq!(stats(&st["stats"]), stats(&a["stats"]));
        for (i, (row, r)) in encoded
            .rows()
            .zip(st["rows"].as_array().unwrap())
            .enumerate()
        {
            let r = r.as_object().unwrap();
            assert_eq!(
                row.nnz(),
                r.len(),
                "{case}: text {i} in sentence-transformers"
            );
            for (id, v) in row.iter() {
                let reference = r[&id.to_string()].as_f64().unwrap() as f32;
                assert!(
                    (v - reference).abs() <= 1e-4 * reference.abs().max(1.0),
                    "{case}: text {i} dimension {id}: {v} vs {reference}"
                );
            }
        }
    }
}

#[test]
fn csr_loss_step_matches_sentence_transformers_with_mean_pooling() {
    check_case("mean");
}

#[test]
fn csr_loss_step_matches_sentence_transformers_with_cls_pooling_and_normalize() {
    check_case("normalize_cls");
}
