//! Training an inference-free model (a sentence-transformers `Router`: `SparseStaticEmbedding`
//! query route, MLM + SpladePooling document route): one SpladeLoss step and three AdamW steps
//! with a `learning_rate_mapping` against sentence-transformers / PyTorch (fixture from
//! scripts/parity/generate_router_train_fixtures.py), the `router_mapping` and
//! `learning_rate_mapping` options, and the saved Router folder reloading to the same vectors
//! (in splade-rs, and in sentence-transformers when `SPLADE_RS_REFERENCE_PYTHON` names its
//! Python).

mod common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use splade_encoder::{EncodeOptions, SparseEncoder, TrainableEncoder};
use splade_train::optim::AdamWConfig;
use splade_train::options::{LearningRateMapping, RouterMapping, RunObserver, TrainOptions};
use splade_train::save::save_model;
use splade_train::step::{DecayFilter, MicroBatch, StepConfig, TrainStep};
use splade_train::trainer::TrainObserver;
use splade_train::{BaseLoss, SpladeLossConfig};

const STATIC: &str = "query_0_SparseStaticEmbedding.weight";

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn router_model() -> PathBuf {
    root().join("fixtures/encoder/models/router-learned")
}

fn fixture() -> Value {
    let path = root().join("fixtures/train/router_learned.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn step_for(f: &Value) -> (TrainStep, Vec<Vec<String>>, (f64, f64)) {
    let encoder = TrainableEncoder::load(&router_model(), &Device::Cpu).unwrap();
    let a = &f["adamw"];
    let lambdas = (
        f["config"]["lambda_query"].as_f64().unwrap(),
        f["config"]["lambda_document"].as_f64().unwrap(),
    );
    let columns: Vec<String> = serde_json::from_value(f["columns"].clone()).unwrap();
    let column_tasks = columns
        .iter()
        .map(|c| f["router_mapping"][c].as_str().map(str::to_string))
        .collect();
    let learning_rate_mapping = a["learning_rate_mapping"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
        .collect();
    let step = TrainStep::new(
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
                lambda_query: lambdas.0,
                lambda_document: lambdas.1,
                scale: 1.0,
                base: BaseLoss::MultipleNegativesRanking,
            },
            max_grad_norm: None,
            dropout_seed: None,
            precision: DType::F32,
            column_tasks,
            learning_rate_mapping,
        },
    )
    .unwrap();
    let texts: Vec<Vec<String>> = serde_json::from_value(f["texts"].clone()).unwrap();
    (step, texts, lambdas)
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

#[test]
fn router_step_matches_sentence_transformers_with_a_learning_rate_mapping() {
    let f = fixture();
    let (step, texts, lambdas) = step_for(&f);
    assert!(step.vars().iter().any(|(n, _)| n == STATIC));
    let (losses, grads) = step.gradients(0, &batch(&texts), lambdas).unwrap();
    for (ours, key) in [
        (losses.total, "total"),
        (losses.base, "base_loss"),
        (losses.query_regularizer, "query_regularizer_loss"),
        (losses.document_regularizer, "document_regularizer_loss"),
    ] {
        let reference = f["loss"][key].as_f64().unwrap();
        assert!(
            (ours - reference).abs() <= 1e-4 * reference.abs().max(1e-8),
            "{key}: ours {ours}, reference {reference}"
        );
    }
    let expected = f["grad_norms"].as_object().unwrap();
    let largest = expected
        .values()
        .filter_map(Value::as_f64)
        .fold(0.0, f64::max);
    for (name, reference) in expected {
        let reference = reference.as_f64().unwrap();
        let var = step
            .vars()
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no variable {name}"))
            .1
            .clone();
        let ours = norm(grads.get(var.as_tensor()).expect(name));
        assert!(
            (ours - reference).abs() <= 1e-4 * reference + 1e-6 * largest,
            "grad norm of {name}: ours {ours}, reference {reference}"
        );
    }
    // The static weights' gradient, token by token (only the tokens of the queries).
    let static_var = &step.vars().iter().find(|(n, _)| n == STATIC).unwrap().1;
    let g: Vec<f32> = grads
        .get(static_var.as_tensor())
        .unwrap()
        .to_vec1()
        .unwrap();
    let touched = f["static_grad"].as_object().unwrap();
    assert!(touched.len() > 10);
    for (id, reference) in touched {
        let (id, reference) = (id.parse::<usize>().unwrap(), reference.as_f64().unwrap());
        assert!(
            (g[id] as f64 - reference).abs() <= 1e-4 * reference.abs() + 1e-7,
            "static gradient at token {id}: ours {}, reference {reference}",
            g[id]
        );
    }
    assert_eq!(g.iter().filter(|x| **x != 0.0).count(), touched.len());

    // Three AdamW steps, the static weights at 10× the learning rate.
    let (mut step, texts, lambdas) = step_for(&f);
    let a = &f["adamw"];
    for (s, reference) in a["losses"].as_array().unwrap().iter().enumerate() {
        let got = step.step(s, &batch(&texts), lambdas).unwrap().total;
        let reference = reference.as_f64().unwrap();
        assert!(
            (got - reference).abs() <= 1e-4 * reference.abs(),
            "loss at step {s}: ours {got}, reference {reference}"
        );
    }
    let noise = |name: &str| expected[name].as_f64().unwrap() < 1e-5 * largest;
    for (name, var) in step.vars() {
        let w = &a["weights"][name.as_str()];
        assert!(!w.is_null(), "no reference weights for {name}");
        if noise(name) {
            continue;
        }
        let flat: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        common::assert_weights_match(name, &flat, w);
    }
    let trained: Vec<f32> = static_var_values(&step);
    for (id, reference) in a["weights"][STATIC]["at"].as_object().unwrap() {
        let (id, reference) = (id.parse::<usize>().unwrap(), reference.as_f64().unwrap());
        assert!(
            (trained[id] as f64 - reference).abs() <= 1e-5,
            "static weight of token {id} after 3 steps: ours {}, reference {reference}",
            trained[id]
        );
    }
    // The inference route sees the trained weights.
    let q = step
        .encoder()
        .encode_query(&["Why is the sky blue?"], &EncodeOptions::default())
        .unwrap();
    let row = q.row(0).unwrap();
    assert!(row.nnz() > 0);
    for (i, v) in row.indices().iter().zip(row.values()) {
        assert_eq!(*v, trained[*i as usize]);
    }
}

fn static_var_values(step: &TrainStep) -> Vec<f32> {
    step.vars()
        .iter()
        .find(|(n, _)| n == STATIC)
        .unwrap()
        .1
        .as_tensor()
        .to_vec1()
        .unwrap()
}

const QUERIES: [&str; 3] = [
    "How can I learn to code fast?",
    "Why is the ocean salty?",
    "best books on machine learning",
];
const DOCUMENTS: [&str; 2] = [
    "What is the fastest way to learn programming?",
    "Salt in the ocean comes from rocks on land.",
];

#[test]
fn a_trained_router_saves_in_the_router_layout_and_reloads_to_the_same_vectors() {
    let f = fixture();
    let (mut step, texts, lambdas) = step_for(&f);
    let before = static_var_values(&step);
    for s in 0..2 {
        step.step(s, &batch(&texts), lambdas).unwrap();
    }
    assert_ne!(
        static_var_values(&step),
        before,
        "the static weights trained"
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("final");
    save_model(step.encoder(), step.vars(), &out, |_| Ok(())).unwrap();
    for file in [
        "modules.json",
        "router_config.json",
        "config_sentence_transformers.json",
        "query_0_SparseStaticEmbedding/model.safetensors",
        "query_0_SparseStaticEmbedding/config.json",
        "query_0_SparseStaticEmbedding/tokenizer.json",
        "document_0_Transformer/model.safetensors",
        "document_0_Transformer/config.json",
        "document_0_Transformer/tokenizer.json",
        "document_1_SpladePooling/config.json",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    // The static weights are not written into the transformer's weights.
    let doc = candle_core::safetensors::load(
        out.join("document_0_Transformer/model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    assert!(!doc.contains_key(STATIC));
    let reloaded = SparseEncoder::load(&out, &Device::Cpu).unwrap();
    let options = EncodeOptions::default();
    let ours = step.encoder();
    assert!(reloaded.is_inference_free());
    assert_eq!(
        reloaded.encode_query(&QUERIES, &options).unwrap(),
        ours.encode_query(&QUERIES, &options).unwrap()
    );
    let (a, b) = (
        reloaded.encode_document(&DOCUMENTS, &options).unwrap(),
        ours.encode_document(&DOCUMENTS, &options).unwrap(),
    );
    assert_eq!(a.len(), b.len());
    for r in 0..a.len() {
        assert_eq!(a.row(r).unwrap().indices(), b.row(r).unwrap().indices());
        for (x, y) in a
            .row(r)
            .unwrap()
            .values()
            .iter()
            .zip(b.row(r).unwrap().values())
        {
            assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0), "{x} vs {y}");
        }
    }
    // The trainable loader reads it back too (resuming from a checkpoint does).
    let again = TrainableEncoder::load(&out, &Device::Cpu).unwrap();
    let trained = static_var_values(&step);
    let loaded: Vec<f32> = again
        .vars()
        .iter()
        .find(|(n, _)| n == STATIC)
        .unwrap()
        .1
        .as_tensor()
        .to_vec1()
        .unwrap();
    assert_eq!(loaded, trained);

    // sentence-transformers 6.x loads the folder and encodes the same vectors.
    if let Some(python) = std::env::var_os("SPLADE_RS_REFERENCE_PYTHON")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
    {
        let script = r#"
import json, sys
from sentence_transformers import SparseEncoder
m = SparseEncoder(sys.argv[1], device="cpu")
q = json.loads(sys.argv[2]); d = json.loads(sys.argv[3])
def rows(e):
    e = e.to_dense() if e.is_sparse else e
    return [{str(int(i)): float(r[i]) for i in r.nonzero().flatten()} for r in e]
print(json.dumps({"query": rows(m.encode_query(q, convert_to_tensor=True)),
                  "document": rows(m.encode_document(d, convert_to_tensor=True))}))
"#;
        let run = std::process::Command::new(python)
            .env("HF_HUB_OFFLINE", "1")
            .args([
                "-c",
                script,
                out.to_str().unwrap(),
                &serde_json::to_string(&QUERIES).unwrap(),
                &serde_json::to_string(&DOCUMENTS).unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let reference: Value = serde_json::from_slice(&run.stdout).unwrap();
        let options = EncodeOptions::default();
        for (key, batch) in [
            ("query", ours.encode_query(&QUERIES, &options).unwrap()),
            (
                "document",
                ours.encode_document(&DOCUMENTS, &options).unwrap(),
            ),
        ] {
            let rows = reference[key].as_array().unwrap();
            assert_eq!(rows.len(), batch.len());
            for (r, expected) in rows.iter().enumerate() {
                let expected = expected.as_object().unwrap();
                let row = batch.row(r).unwrap();
                assert_eq!(row.nnz(), expected.len(), "{key} {r}: active dimensions");
                for (i, v) in row.indices().iter().zip(row.values()) {
                    let e = expected[&i.to_string()].as_f64().unwrap();
                    assert!(
                        (*v as f64 - e).abs() <= 1e-5 * e.abs().max(1.0),
                        "{key} {r} token {i}: ours {v}, sentence-transformers {e}"
                    );
                }
            }
        }
    }
}

struct Quiet;
impl TrainObserver for Quiet {}
impl RunObserver for Quiet {}

fn write_rows(dir: &Path) -> PathBuf {
    let path = dir.join("rows.jsonl");
    let mut text = String::new();
    for i in 0..6 {
        text += &serde_json::json!({
            "question": format!("how do I learn topic {i}"),
            "answer": format!("the best way to learn topic {i} is practice"),
            "negative": format!("recipes for dish {i}"),
        })
        .to_string();
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn options(dir: &Path) -> TrainOptions {
    TrainOptions {
        model: Some(router_model().display().to_string()),
        train: Some(write_rows(dir)),
        output: Some(dir.join("run")),
        anchor_column: Some("question".into()),
        positive_column: Some("answer".into()),
        batch_size: Some(3),
        max_steps: Some(2),
        dropout: Some(false),
        ..Default::default()
    }
}

fn run_error(o: TrainOptions) -> String {
    o.run(false, None, &mut Quiet).unwrap_err().to_string()
}

#[test]
fn router_mapping_and_learning_rate_mapping_options() {
    let tmp = tempfile::tempdir().unwrap();
    // A Router model needs a router_mapping, as sentence-transformers' trainer.
    let e = run_error(options(tmp.path()));
    assert!(e.contains("router_mapping"), "{e}");
    assert!(e.contains("question=query"), "{e}");
    // A mapped column the data does not have.
    let mut o = options(tmp.path());
    o.router_mapping = Some("anchor=query,answer=document".parse().unwrap());
    let e = run_error(o);
    assert!(
        e.contains("router_mapping") && e.contains("anchor=query"),
        "{e}"
    );
    // A task the Router does not resolve.
    let mut o = options(tmp.path());
    o.router_mapping = Some("question=image".parse().unwrap());
    let e = run_error(o);
    assert!(e.contains("router_mapping") && e.contains("image"), "{e}");
    // A learning-rate pattern matching no parameter.
    let mut o = options(tmp.path());
    o.router_mapping = Some(
        "question=query,answer=document,negative=document"
            .parse()
            .unwrap(),
    );
    o.learning_rate_mapping = Some(r"NoSuchModule\.weight=1e-3".parse().unwrap());
    let e = run_error(o);
    assert!(e.contains("learning_rate_mapping"), "{e}");
    // Malformed strings name the option.
    assert!("question"
        .parse::<RouterMapping>()
        .unwrap_err()
        .contains("router_mapping"));
    assert!("x=fast"
        .parse::<LearningRateMapping>()
        .unwrap_err()
        .contains("learning_rate_mapping"));
    // TOML: a table or a string.
    let toml_options: TrainOptions = toml::from_str(
        "router_mapping = { question = \"query\", answer = \"document\" }\n\
         learning_rate_mapping = 'SparseStaticEmbedding\\.weight=1e-3'\n",
    )
    .unwrap();
    // (The toml crate reads a table's keys sorted; a column appears once, so order is moot.)
    let mut table = toml_options.router_mapping.unwrap().0;
    table.sort();
    assert_eq!(
        table,
        vec![
            ("answer".to_string(), "document".to_string()),
            ("question".to_string(), "query".to_string())
        ]
    );
    assert_eq!(
        toml_options.learning_rate_mapping.unwrap().0,
        vec![(r"SparseStaticEmbedding\.weight".to_string(), 1e-3)]
    );
    // A dictionary (as splade_rs.train hands Python's over), order kept.
    let dict: TrainOptions = serde_json::from_str(
        r#"{"router_mapping": {"question": "query", "answer": "document"},
            "learning_rate_mapping": {"b": 0.5, "a": 1}}"#,
    )
    .unwrap();
    assert_eq!(
        dict.learning_rate_mapping.unwrap().0,
        vec![("b".to_string(), 0.5), ("a".to_string(), 1.0)]
    );
    assert_eq!(dict.router_mapping.unwrap().0.len(), 2);
    let bad = serde_json::from_value::<TrainOptions>(
        serde_json::json!({"learning_rate_mapping": {"a": "fast"}}),
    )
    .unwrap_err()
    .to_string();
    assert!(bad.contains("invalid type"), "{bad}");
    // A whole run: the static weights train (at their own rate) and final/ is a Router.
    let mut o = options(tmp.path());
    o.router_mapping = Some(
        "question=query,answer=document,negative=document"
            .parse()
            .unwrap(),
    );
    o.learning_rate_mapping = Some(r"SparseStaticEmbedding\.weight=1e-1".parse().unwrap());
    let report = o.run(false, None, &mut Quiet).unwrap();
    assert_eq!(report.steps, 2);
    let final_dir = tmp.path().join("run/final");
    let trained = SparseEncoder::load(&final_dir, &Device::Cpu).unwrap();
    let original = SparseEncoder::load(&router_model(), &Device::Cpu).unwrap();
    let q = ["how do I learn topic 1"];
    let options = EncodeOptions::default();
    let (a, b) = (
        trained.encode_query(&q, &options).unwrap(),
        original.encode_query(&q, &options).unwrap(),
    );
    assert_eq!(a.row(0).unwrap().indices(), b.row(0).unwrap().indices());
    assert_ne!(a.row(0).unwrap().values(), b.row(0).unwrap().values());
}

#[test]
fn a_frozen_static_route_stays_fixed_and_every_column_needs_a_route() {
    let tmp = tempfile::tempdir().unwrap();
    let idf = root().join("fixtures/encoder/models/router-idf");
    let mut o = options(tmp.path());
    o.model = Some(idf.display().to_string());
    // No default route in this Router: a column left out of the mapping has no route.
    o.router_mapping = Some("question=query,answer=document".parse().unwrap());
    let e = run_error(o.clone());
    assert!(e.contains("router_mapping") && e.contains("no task"), "{e}");
    o.router_mapping = Some(
        "question=query,answer=document,negative=document"
            .parse()
            .unwrap(),
    );
    o.run(false, None, &mut Quiet).unwrap();
    let final_dir = tmp.path().join("run/final");
    let trained = SparseEncoder::load(&final_dir, &Device::Cpu).unwrap();
    let original = SparseEncoder::load(&idf, &Device::Cpu).unwrap();
    let options = EncodeOptions::default();
    let q = ["how do I learn topic 1"];
    assert_eq!(
        trained.encode_query(&q, &options).unwrap(),
        original.encode_query(&q, &options).unwrap(),
        "a frozen SparseStaticEmbedding is not trained"
    );
    assert_ne!(
        trained.encode_document(&q, &options).unwrap(),
        original.encode_document(&q, &options).unwrap(),
        "the document route trained"
    );
    let card = std::fs::read_to_string(final_dir.join("README.md")).unwrap();
    assert!(
        card.contains("Router(") && card.contains("(sparse_query): SparseStaticEmbedding"),
        "{card}"
    );
}

#[test]
fn a_router_run_resumed_from_a_checkpoint_ends_as_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let with_mappings = |mut o: TrainOptions| {
        o.router_mapping = Some(
            "question=query,answer=document,negative=document"
                .parse()
                .unwrap(),
        );
        o.learning_rate_mapping = Some(r"sub_modules\.query\.0\.weight=0.05".parse().unwrap());
        o.eval_steps = Some(1);
        o
    };
    let full = with_mappings(options(tmp.path()));
    full.run(false, None, &mut Quiet).unwrap();
    let checkpoint = tmp.path().join("run/checkpoint-1");
    assert!(checkpoint.join("router_config.json").is_file());
    let mut resumed = with_mappings(options(tmp.path()));
    resumed.output = Some(tmp.path().join("resumed"));
    resumed.resume_from = Some(checkpoint);
    resumed.run(false, None, &mut Quiet).unwrap();
    let a = SparseEncoder::load(&tmp.path().join("run/final"), &Device::Cpu).unwrap();
    let b = SparseEncoder::load(&tmp.path().join("resumed/final"), &Device::Cpu).unwrap();
    let options = EncodeOptions::default();
    assert_eq!(
        a.encode_query(&QUERIES, &options).unwrap(),
        b.encode_query(&QUERIES, &options).unwrap()
    );
    assert_eq!(
        a.encode_document(&DOCUMENTS, &options).unwrap(),
        b.encode_document(&DOCUMENTS, &options).unwrap()
    );
}

/// GradCache on a Router model: each cached chunk goes through its column's route (the static
/// query route for `anchor`), so the loss and every gradient equal the uncached step's.
#[test]
fn gradient_cache_routes_each_column_like_the_uncached_step() {
    let f = fixture();
    let (plain, texts, lambdas) = step_for(&f);
    let (plain_losses, plain_grads) = plain.gradients(0, &batch(&texts), lambdas).unwrap();
    for mini in [1, 3] {
        let (mut cached, _, _) = step_for(&f);
        cached.set_gradient_cache(Some(mini)).unwrap();
        let (losses, grads) = cached.gradients(0, &batch(&texts), lambdas).unwrap();
        assert!(
            (losses.total - plain_losses.total).abs() <= 1e-6 * plain_losses.total.abs(),
            "chunks of {mini}: loss {} vs {}",
            losses.total,
            plain_losses.total
        );
        // Gradients zero in exact arithmetic (attention key biases) are float noise: held to
        // 1e-6 of the largest gradient norm of the model.
        let largest = plain
            .vars()
            .iter()
            .filter_map(|(_, v)| plain_grads.get(v.as_tensor()))
            .map(norm)
            .fold(0.0, f64::max);
        for ((name, a), (_, b)) in plain.vars().iter().zip(cached.vars()) {
            let (Some(ga), Some(gb)) = (plain_grads.get(a.as_tensor()), grads.get(b.as_tensor()))
            else {
                assert!(
                    plain_grads.get(a.as_tensor()).is_none() == grads.get(b.as_tensor()).is_none(),
                    "{name}: a gradient on one side only"
                );
                continue;
            };
            let diff = norm(&(ga - gb).unwrap());
            assert!(
                diff <= 1e-5 * norm(ga) + 1e-6 * largest,
                "chunks of {mini}: gradient of {name} differs by {diff} (norm {})",
                norm(ga)
            );
        }
    }
}
