//! CSR models (`Transformer` feature-extraction + `Pooling` + `SparseAutoEncoder`): parity with
//! sentence-transformers 6.2 on the seeded random model of
//! `scripts/parity/generate_csr_fixtures.py`, and on the variants it encodes (the same folder
//! with one config edited: every pooling mode, `normalize`, `include_prompt: false`, `k`; and
//! `max_active_dims` at encode time): identical token ids, identical active sets, values within
//! 1e-4·max(1,|v|). Plus the errors a broken CSR folder gives.

mod common;
use common::{copy_dir, fixture_model, fixtures, read_json, sparse};

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use candle_core::Device;
use serde_json::Value;
use splade_encoder::{EncodeOptions, EncoderError, Similarity, SparseEncoder, SparseVector};

const NAME: &str = "csr-bert";

fn expected() -> Value {
    read_json(&fixtures().join(NAME).join("expected.json"))
}

fn texts(expected: &Value) -> Vec<String> {
    let all = common::texts();
    let ids: Vec<usize> = serde_json::from_value(expected["text_ids"].clone()).unwrap();
    ids.iter().map(|&i| all[i].clone()).collect()
}

/// Identical active sets and |error| <= 1e-4 * max(1, |value|); returns the largest error.
fn assert_vectors_match(ours: &SparseVector, expected: &SparseVector, what: &str) -> f32 {
    let a: BTreeMap<u32, f32> = ours.view().iter().collect();
    let b: BTreeMap<u32, f32> = expected.view().iter().collect();
    assert_eq!(
        a.keys().collect::<BTreeSet<_>>(),
        b.keys().collect::<BTreeSet<_>>(),
        "{what}: active sets differ: ours {a:?}, reference {b:?}"
    );
    let mut worst = 0f32;
    for (k, y) in &b {
        let x = a[k];
        assert!(
            (x - y).abs() <= 1e-4 * y.abs().max(1.0),
            "{what}: dimension {k}: ours {x}, reference {y}"
        );
        worst = worst.max((x - y).abs());
    }
    worst
}

/// Applies a variant's config edit to a copy of the model.
fn variant_folder(variant: &Value, tmp: &Path) -> std::path::PathBuf {
    let dir = tmp.join(NAME);
    copy_dir(&fixture_model(NAME), &dir);
    if let Some(file) = variant["file"].as_str() {
        let path = dir.join(file);
        let mut config = read_json(&path);
        for (key, value) in variant["edits"].as_object().unwrap() {
            config[key] = value.clone();
        }
        std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    }
    dir
}

#[test]
fn csr_model_loads_as_sentence_transformers_does() {
    let expected = expected();
    let model = SparseEncoder::load(&fixture_model(NAME), &Device::Cpu).unwrap();
    assert!(model.is_csr());
    assert_eq!(model.dim() as u64, expected["dimension"].as_u64().unwrap());
    assert_eq!(model.similarity_fn(), Similarity::Dot);
    assert_eq!(expected["similarity_fn_name"], "dot");
    assert_eq!(
        model.effective_max_active_dims(None).map(|k| k as u64),
        expected["max_active_dims"].as_u64()
    );
    assert!(!model.folder().backbone.mlm_head);
    // Token ids as the reference tokenizes them.
    let texts = texts(&expected);
    let ours = model.tokenize(&texts, &EncodeOptions::default()).unwrap();
    for (i, (row, ids)) in ours
        .iter()
        .zip(expected["input_ids"].as_array().unwrap())
        .enumerate()
    {
        let ids: Vec<u32> = serde_json::from_value(ids.clone()).unwrap();
        assert_eq!(row.ids, ids, "text {i}");
    }
}

#[test]
fn every_variant_encodes_the_reference_vectors() {
    let expected = expected();
    let texts = texts(&expected);
    let tmp = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    for variant in expected["variants"].as_array().unwrap() {
        let name = variant["name"].as_str().unwrap();
        let sub = tmp.path().join(name);
        let dir = variant_folder(variant, &sub);
        let model =
            SparseEncoder::load(&dir, &Device::Cpu).unwrap_or_else(|e| panic!("{name}: {e}"));
        let encode = &variant["encode"];
        let options = EncodeOptions {
            batch_size: 16,
            prompt_name: encode["prompt_name"].as_str().map(str::to_string),
            max_active_dims: encode["max_active_dims"].as_u64().map(|k| k as usize),
            ..EncodeOptions::default()
        };
        let ours = model.encode(&texts, &options).unwrap();
        let margins = variant["margins"].as_array().unwrap();
        let mut worst = 0f32;
        let mut unstable = 0;
        for (i, reference) in variant["vectors"].as_array().unwrap().iter().enumerate() {
            if margins[i].as_f64().unwrap() < 1e-4 {
                unstable += 1;
                continue;
            }
            let ours_row = SparseVector::new(
                ours.row(i).unwrap().indices().to_vec(),
                ours.row(i).unwrap().values().to_vec(),
            )
            .unwrap();
            worst = worst.max(assert_vectors_match(
                &ours_row,
                &sparse(reference),
                &format!("{name}, text {i}"),
            ));
        }
        assert!(
            unstable * 10 < texts.len(),
            "{name}: {unstable} unstable rows"
        );
        report.push(format!(
            "{name}: max error {worst:.2e}, {unstable} unstable"
        ));
        // One text at a time gives the same vectors as batches of mixed lengths.
        let single = model
            .encode(
                &texts[..5],
                &EncodeOptions {
                    batch_size: 1,
                    ..options.clone()
                },
            )
            .unwrap();
        for i in 0..5 {
            let (a, b) = (single.row(i).unwrap(), ours.row(i).unwrap());
            assert_eq!(a.indices(), b.indices(), "{name}: text {i} alone");
            for (x, y) in a.values().iter().zip(b.values()) {
                assert!(
                    (x - y).abs() <= 1e-5 * y.abs().max(1.0),
                    "{name}: text {i} alone"
                );
            }
        }
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn csr_dimensions_decode_as_latent_ids_not_tokens() {
    let model = SparseEncoder::load(&fixture_model(NAME), &Device::Cpu).unwrap();
    let batch = model
        .encode(&["what causes rain"], &EncodeOptions::default())
        .unwrap();
    let row = batch.row(0).unwrap();
    let decoded = model.decode(row, Some(3));
    assert_eq!(decoded.len(), 3);
    for (name, weight) in &decoded {
        let id: u32 = name
            .strip_prefix("dimension ")
            .unwrap_or_else(|| panic!("{name}"))
            .parse()
            .unwrap();
        let pos = row.indices().iter().position(|&i| i == id).unwrap();
        assert_eq!(row.values()[pos], *weight);
    }
    assert!(decoded[0].1 >= decoded[1].1 && decoded[1].1 >= decoded[2].1);
}

fn load_err(dir: &Path) -> String {
    match SparseEncoder::load(dir, &Device::Cpu) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn broken_csr_folders_are_errors_naming_the_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let edit = |name: &str, file: &str, key: &str, value: Value| {
        let dir = tmp.path().join(name);
        copy_dir(&fixture_model(NAME), &dir);
        let path = dir.join(file);
        let mut config = read_json(&path);
        config[key] = value;
        std::fs::write(&path, config.to_string()).unwrap();
        dir
    };
    let e = load_err(&edit(
        "mode",
        "1_Pooling/config.json",
        "pooling_mode",
        "median".into(),
    ));
    assert!(
        e.contains("1_Pooling/config.json") && e.contains("pooling_mode"),
        "{e}"
    );
    let e = load_err(&edit(
        "dim",
        "2_SparseAutoEncoder/config.json",
        "input_dim",
        31.into(),
    ));
    assert!(
        e.contains("2_SparseAutoEncoder/config.json") && e.contains("input_dim"),
        "{e}"
    );
    let e = load_err(&edit(
        "k",
        "2_SparseAutoEncoder/config.json",
        "k",
        129.into(),
    ));
    assert!(e.contains("hidden_dim"), "{e}");
    let e = load_err(&edit(
        "hidden",
        "2_SparseAutoEncoder/config.json",
        "hidden_dim",
        64.into(),
    ));
    assert!(
        e.contains("model.safetensors") && e.contains("shape"),
        "{e}"
    );
    let e = load_err(&edit(
        "task",
        "sentence_bert_config.json",
        "transformer_task",
        "fill-mask".into(),
    ));
    assert!(e.contains("transformer_task"), "{e}");
    // No weights for the autoencoder.
    let dir = tmp.path().join("noweights");
    copy_dir(&fixture_model(NAME), &dir);
    std::fs::remove_file(dir.join("2_SparseAutoEncoder/model.safetensors")).unwrap();
    let e = load_err(&dir);
    assert!(e.contains("2_SparseAutoEncoder/model.safetensors"), "{e}");
    // A max_active_dims above the latent count.
    let model = SparseEncoder::load(&fixture_model(NAME), &Device::Cpu).unwrap();
    let err = model
        .encode(
            &["a"],
            &EncodeOptions {
                max_active_dims: Some(129),
                ..EncodeOptions::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, EncoderError::InvalidArgument(_)), "{err}");
    assert!(err.to_string().contains("128"), "{err}");
}
