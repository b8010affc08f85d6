//! Parity with sentence-transformers 6.2 for the RoBERTa, XLM-RoBERTa and ModernBERT backbones,
//! on the tiny random models of `scripts/parity/generate_backbone_fixtures.py` (each with its
//! own trained tokenizer: byte-level BPE, SentencePiece-style Unigram, ModernBERT-style BPE):
//! identical token ids, identical active sets and values within 1e-4·max(1,|v|), for short
//! questions, passages longer than the max length (and than ModernBERT's local window) and
//! edge cases; plus errors naming the bad config field.

mod common;
use common::{fixtures, read_json, sparse};

use std::path::Path;

use serde_json::Value;
use splade_encoder::config::Architecture;
use splade_encoder::{EncodeOptions, EncoderError, SparseEncoder, SparseVector};

const MODELS: [(&str, Architecture); 3] = [
    ("roberta-bpe-v6", Architecture::Roberta),
    ("xlm-roberta-unigram-v6", Architecture::XlmRoberta),
    ("modernbert-bpe-v6", Architecture::ModernBert),
];

fn texts_of(expected: &Value) -> Vec<String> {
    let all: Vec<String> =
        serde_json::from_value(read_json(&fixtures().join("texts.json"))).unwrap();
    let ids: Vec<usize> = serde_json::from_value(expected["text_ids"].clone()).unwrap();
    let mut texts: Vec<String> = ids.iter().map(|&i| all[i].clone()).collect();
    // Texts holding the pad token (RoBERTa numbers the positions around it differently).
    let extra: Vec<String> = serde_json::from_value(expected["extra_texts"].clone()).unwrap();
    texts.extend(extra);
    texts
}

/// Identical active sets above 1e-6 (an index active on one side only must be below 1e-4 on
/// the other) and |error| <= 1e-4 * max(1, |value|).
fn assert_vectors_match(ours: &SparseVector, expected: &SparseVector, what: &str) -> f32 {
    let dense =
        |v: &SparseVector| -> std::collections::BTreeMap<u32, f32> { v.view().iter().collect() };
    let (a, b) = (dense(ours), dense(expected));
    let keys: std::collections::BTreeSet<u32> = a.keys().chain(b.keys()).copied().collect();
    let mut worst = 0f32;
    for k in keys {
        let (x, y) = (
            a.get(&k).copied().unwrap_or(0.0),
            b.get(&k).copied().unwrap_or(0.0),
        );
        if x <= 1e-6 && y <= 1e-6 {
            continue;
        }
        if (x > 1e-6) != (y > 1e-6) {
            assert!(
                x.max(y) < 1e-4,
                "{what}: index {k} active on one side only: ours {x}, reference {y}"
            );
        }
        assert!(
            (x - y).abs() <= 1e-4 * y.abs().max(1.0),
            "{what}: index {k}: ours {x}, reference {y}"
        );
        worst = worst.max((x - y).abs());
    }
    worst
}

fn load(name: &str) -> SparseEncoder {
    SparseEncoder::load(
        &fixtures().join("models").join(name),
        &candle_core::Device::Cpu,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn each_family_loads_with_its_architecture_and_max_length() {
    for (name, arch) in MODELS {
        let expected = read_json(&fixtures().join(name).join("expected.json"));
        let model = load(name);
        assert_eq!(model.folder().backbone.architecture, arch, "{name}");
        assert_eq!(
            expected["architecture"].as_str(),
            Some(arch.class_name()),
            "{name}"
        );
        assert_eq!(
            model.max_seq_length() as u64,
            expected["max_seq_length"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            model.dim() as u64,
            expected["vocab_size"].as_u64().unwrap(),
            "{name}"
        );
    }
}

#[test]
fn token_ids_match_the_reference_tokenizers() {
    for (name, _) in MODELS {
        let expected = read_json(&fixtures().join(name).join("expected.json"));
        let texts = texts_of(&expected);
        let model = load(name);
        let ours = model.tokenize(&texts, &EncodeOptions::default()).unwrap();
        let reference: Vec<Vec<u32>> =
            serde_json::from_value(expected["input_ids"].clone()).unwrap();
        for (i, (row, want)) in ours.iter().zip(&reference).enumerate() {
            assert_eq!(&row.ids, want, "{name}: text #{i} {:?}", texts[i]);
        }
        // Some texts are truncated to the max length: longer than any window.
        assert!(reference
            .iter()
            .any(|ids| ids.len() == model.max_seq_length()));
    }
}

#[test]
fn vectors_match_sentence_transformers() {
    for (name, _) in MODELS {
        let expected = read_json(&fixtures().join(name).join("expected.json"));
        let texts = texts_of(&expected);
        let model = load(name);
        let rows = expected["vectors"].as_array().unwrap();
        // In batches of mixed lengths, as sentence-transformers encoded them, and one by one.
        for batch_size in [16, 5, 1] {
            let options = EncodeOptions {
                batch_size,
                ..EncodeOptions::default()
            };
            let ours = model.encode(&texts, &options).unwrap();
            assert_eq!(ours.len(), rows.len());
            let mut worst = 0f32;
            for (i, (row, want)) in ours.rows().zip(rows).enumerate() {
                worst = worst.max(assert_vectors_match(
                    &row.to_owned(),
                    &sparse(want),
                    &format!("{name} (batch {batch_size}), text #{i}"),
                ));
            }
            eprintln!("{name} batch {batch_size}: max abs error {worst:e}");
        }
    }
}

/// A copy of a fixture model whose `config.json` was edited by `edit`.
fn with_config(name: &str, edit: impl Fn(&mut Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures().join("models").join(name);
    copy_dir(&src, dir.path());
    let path = dir.path().join("config.json");
    let mut config = read_json(&path);
    edit(&mut config);
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    dir
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

fn config_error(dir: &Path) -> (String, String) {
    match SparseEncoder::load(dir, &candle_core::Device::Cpu) {
        Err(EncoderError::Config { field, path, .. }) => {
            let message = SparseEncoder::load(dir, &candle_core::Device::Cpu)
                .err()
                .unwrap()
                .to_string();
            assert!(path.ends_with("config.json"), "{}", path.display());
            (field, message)
        }
        Err(other) => panic!("expected a config error, got {other}"),
        Ok(_) => panic!("expected a config error, the model loaded"),
    }
}

#[test]
fn bad_modernbert_config_fields_are_named() {
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "layer_types",
            Box::new(|c: &mut Value| c["layer_types"] = serde_json::json!(["full_attention"])),
        ),
        (
            "layer_types",
            Box::new(|c: &mut Value| {
                c["layer_types"] =
                    serde_json::json!(["full_attention", "chunked", "full_attention"])
            }),
        ),
        (
            "rope_parameters.sliding_attention.rope_type",
            Box::new(|c: &mut Value| {
                c["rope_parameters"]["sliding_attention"]["rope_type"] = "yarn".into()
            }),
        ),
        (
            "rope_parameters.full_attention.rope_theta",
            Box::new(|c: &mut Value| {
                c["rope_parameters"]["full_attention"]["rope_theta"] = (-1.0).into()
            }),
        ),
        (
            "mlp_dropout",
            Box::new(|c: &mut Value| c["mlp_dropout"] = 0.1.into()),
        ),
        (
            "norm_bias",
            Box::new(|c: &mut Value| c["norm_bias"] = "no".into()),
        ),
        (
            "hidden_activation",
            Box::new(|c: &mut Value| c["hidden_activation"] = "swish".into()),
        ),
        (
            "num_hidden_layers",
            Box::new(|c: &mut Value| {
                c["num_hidden_layers"] = 2.into();
                c["layer_types"] = serde_json::json!(["full_attention", "sliding_attention"]);
            }),
        ),
    ];
    for (field, edit) in cases {
        let dir = with_config("modernbert-bpe-v6", edit);
        let (got, message) = config_error(dir.path());
        assert_eq!(got, field, "{message}");
    }
}

#[test]
fn a_modernbert_config_without_its_bias_weights_fails_naming_the_tensor() {
    // norm_bias=true asks for LayerNorm biases the checkpoint does not hold.
    let dir = with_config("modernbert-bpe-v6", |c| c["norm_bias"] = true.into());
    let message = SparseEncoder::load(dir.path(), &candle_core::Device::Cpu)
        .err()
        .expect("must fail")
        .to_string();
    assert!(message.contains("model.safetensors"), "{message}");
    assert!(message.contains("norm.bias"), "{message}");
}

#[test]
fn bad_roberta_config_fields_are_named() {
    // Positions start at pad_token_id + 1: a table without room for them is refused.
    let dir = with_config("roberta-bpe-v6", |c| c["pad_token_id"] = 70.into());
    let (field, message) = config_error(dir.path());
    assert_eq!(field, "max_position_embeddings", "{message}");
    // The tokenizer's 64 tokens need 64 positions after padding_idx + 1 = 2.
    let dir = with_config("roberta-bpe-v6", |c| c["pad_token_id"] = 3.into());
    let message = SparseEncoder::load(dir.path(), &candle_core::Device::Cpu)
        .err()
        .expect("must fail")
        .to_string();
    assert!(message.contains("positions start at 4"), "{message}");
    // An untied config needs a decoder matrix.
    let dir = with_config("roberta-bpe-v6", |c| {
        c["tie_word_embeddings"] = false.into()
    });
    let message = SparseEncoder::load(dir.path(), &candle_core::Device::Cpu)
        .err()
        .expect("must fail")
        .to_string();
    assert!(message.contains("lm_head.decoder.weight"), "{message}");
    // A layer count other than the weights'.
    let dir = with_config("xlm-roberta-unigram-v6", |c| {
        c["num_hidden_layers"] = 3.into()
    });
    let (field, message) = config_error(dir.path());
    assert_eq!(field, "num_hidden_layers", "{message}");
}
