//! Bad model folders and odd inputs: clear errors that name the file, never a panic.

mod common;

use std::path::Path;

use common::{copy_dir, fixture_model};

use candle_core::Device;
use proptest::prelude::*;
use splade_encoder::{EncodeOptions, EncoderError, SparseEncoder};

/// Copies a fixture model folder (one level of subfolders) into a temporary folder.
fn copy_model(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture_model(name), tmp.path());
    tmp
}

fn load_err(dir: &Path) -> String {
    match SparseEncoder::load(dir, &Device::Cpu) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_weights_name_the_file() {
    let tmp = copy_model("bert-tied-v6");
    std::fs::remove_file(tmp.path().join("model.safetensors")).unwrap();
    let err = load_err(tmp.path());
    assert!(
        err.contains("model.safetensors") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn truncated_weights_name_the_file() {
    let tmp = copy_model("bert-tied-v6");
    let path = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_err(tmp.path());
    assert!(
        err.contains("model.safetensors") && err.contains("truncated"),
        "{err}"
    );
    std::fs::write(&path, b"garbage").unwrap();
    let err = load_err(tmp.path());
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn corrupt_config_names_the_file() {
    let tmp = copy_model("distilbert-untied-v6");
    std::fs::write(tmp.path().join("config.json"), "{ not json").unwrap();
    let err = load_err(tmp.path());
    assert!(
        err.contains("config.json") && err.contains("invalid JSON"),
        "{err}"
    );
    std::fs::write(
        tmp.path().join("1_SpladePooling/config.json"),
        r#"{"pooling_strategy": "mean"}"#,
    )
    .unwrap();
    std::fs::copy(
        fixture_model("distilbert-untied-v6/config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();
    let err = load_err(tmp.path());
    assert!(
        err.contains("1_SpladePooling") && err.contains("pooling_strategy") && err.contains("mean"),
        "{err}"
    );
}

#[test]
fn unsupported_architecture_names_itself_and_the_supported_list() {
    let tmp = copy_model("bert-tied-v6");
    let path = tmp.path().join("config.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("BertForMaskedLM", "ElectraForMaskedLM");
    std::fs::write(&path, text).unwrap();
    let err = load_err(tmp.path());
    assert!(
        err.contains("ElectraForMaskedLM")
            && err.contains("BertForMaskedLM, DistilBertForMaskedLM")
            && err.contains("XLMRobertaForMaskedLM, ModernBertForMaskedLM"),
        "{err}"
    );
}

#[test]
fn unsupported_module_names_itself() {
    let tmp = copy_model("bert-tied-v6");
    let path = tmp.path().join("modules.json");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "sentence_transformers.sparse_encoder.modules.splade_pooling.SpladePooling",
        "sentence_transformers.sparse_encoder.modules.SparseStaticEmbedding",
    );
    std::fs::write(&path, text).unwrap();
    let err = load_err(tmp.path());
    assert!(
        err.contains("SparseStaticEmbedding") && err.contains("modules.json"),
        "{err}"
    );
}

#[test]
fn missing_tokenizer_names_both_candidates() {
    let tmp = copy_model("bert-untied-seedlayout");
    std::fs::remove_file(tmp.path().join("vocab.txt")).unwrap();
    let err = load_err(tmp.path());
    assert!(
        err.contains("tokenizer.json") && err.contains("vocab.txt"),
        "{err}"
    );
}

#[test]
fn missing_folder_is_reported() {
    let err = match SparseEncoder::from_pretrained("./no/such/model") {
        Ok(_) => panic!("should fail"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("no/such/model"), "{err}");
}

#[test]
fn offline_hub_id_names_the_id_and_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    // Child-process-free: the variables are read when the call is made.
    std::env::set_var("HF_HUB_OFFLINE", "1");
    std::env::set_var("HF_HOME", cache.path());
    let err = SparseEncoder::from_pretrained(
        "sparse-encoder/example-splade-distilbert-base-uncased-quora-duplicates",
    );
    std::env::remove_var("HF_HUB_OFFLINE");
    std::env::remove_var("HF_HOME");
    let err = match err {
        Ok(_) => panic!("an uncached Hub id cannot load offline"),
        Err(e) => e,
    };
    assert!(matches!(err, EncoderError::Hub { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("sparse-encoder/example-splade-distilbert-base-uncased-quora-duplicates"),
        "{msg}"
    );
    assert!(msg.contains(&cache.path().display().to_string()), "{msg}");
}

#[test]
fn invalid_arguments_are_errors() {
    let enc = SparseEncoder::load(&fixture_model("bert-tied-v6"), &Device::Cpu).unwrap();
    let bad = |o: EncodeOptions| enc.encode(&["x"], &o).unwrap_err().to_string();
    assert!(bad(EncodeOptions {
        batch_size: 0,
        ..Default::default()
    })
    .contains("batch size"));
    assert!(bad(EncodeOptions {
        max_active_dims: Some(0),
        ..Default::default()
    })
    .contains("max_active_dims"));
    assert!(bad(EncodeOptions {
        prompt_name: Some("nope".into()),
        ..Default::default()
    })
    .contains("'nope'"));
    assert_eq!(
        enc.encode(&Vec::<String>::new(), &EncodeOptions::default())
            .unwrap()
            .len(),
        0
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Any text at all encodes without a panic, to a valid vector.
    #[test]
    fn any_text_encodes(texts in proptest::collection::vec(any::<String>(), 1..6), long in 0usize..3000) {
        thread_local! {
            static ENC: SparseEncoder = SparseEncoder::load(&fixture_model("distilbert-tied-seedlayout"), &Device::Cpu).unwrap();
        }
        let mut texts = texts;
        texts.push("\u{200d}".repeat(long));
        ENC.with(|enc| {
            let batch = enc.encode(&texts, &EncodeOptions { batch_size: 4, max_active_dims: Some(50), ..Default::default() }).unwrap();
            prop_assert_eq!(batch.len(), texts.len());
            for row in batch.rows() {
                prop_assert!(row.nnz() <= 50);
                prop_assert!(row.values().iter().all(|v| v.is_finite() && *v > 0.0));
            }
            Ok(())
        })?;
    }
}
