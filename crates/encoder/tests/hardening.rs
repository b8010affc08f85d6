//! Models that would silently encode wrong: non-finite weights or activations, config values
//! that disagree with the weights, unused tensors, paths leading out of the model folder and
//! tokenizers whose ids exceed the embedding matrix are clear errors.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use common::{copy_dir, fixture_model};
use splade_encoder::{default_model, EncodeOptions, EncoderError, SparseEncoder, TrainableEncoder};

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

fn read_weights(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

fn write_weights(path: &Path, tensors: &HashMap<String, Tensor>) {
    candle_core::safetensors::save(tensors, path).unwrap();
}

/// Rewrites one tensor of a safetensors file through `edit` (on its flattened f32 values).
fn edit_tensor(path: &Path, name: &str, edit: impl FnOnce(&mut Vec<f32>)) {
    let mut tensors = read_weights(path);
    let t = tensors
        .get(name)
        .unwrap_or_else(|| panic!("{name} not in {}", path.display()));
    let shape = t.shape().clone();
    let mut values: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
    edit(&mut values);
    tensors.insert(
        name.to_string(),
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap(),
    );
    write_weights(path, &tensors);
}

fn set_json(path: &Path, key: &str, value: serde_json::Value) {
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json[key] = value;
    std::fs::write(path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
}

#[test]
fn a_nan_weight_of_the_default_model_is_refused_at_load_naming_the_tensor() {
    let source = default_model::ensure_default_model().expect("fetch the default model");
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&source, tmp.path());
    let weights = tmp.path().join("model.safetensors");
    let name = "bert.encoder.layer.1.output.dense.weight";
    edit_tensor(&weights, name, |v| v[7] = f32::NAN);
    let err = load_err(tmp.path());
    assert!(
        err.contains(name)
            && err.contains(&tmp.path().display().to_string())
            && err.contains("NaN"),
        "{err}"
    );
    // Training loads the weights its own way: the same check applies.
    let err = TrainableEncoder::load(tmp.path(), &Device::Cpu)
        .err()
        .expect("TrainableEncoder::load should fail")
        .to_string();
    assert!(err.contains(name), "{err}");
    // An infinity too.
    copy_dir(&source, tmp.path());
    edit_tensor(&weights, "bert.embeddings.LayerNorm.gamma", |v| {
        v[0] = f32::NEG_INFINITY
    });
    let err = load_err(tmp.path());
    assert!(err.contains("bert.embeddings.LayerNorm.gamma"), "{err}");
}

#[test]
fn the_default_model_and_the_fixtures_load_without_unused_tensors() {
    let tiny = default_model::ensure_default_model().expect("fetch the default model");
    SparseEncoder::load(&tiny, &Device::Cpu).unwrap();
    for name in [
        "bert-tied-v6",
        "bert-untied-seedlayout",
        "distilbert-tied-seedlayout",
        "distilbert-untied-v6",
    ] {
        SparseEncoder::load(&fixture_model(name), &Device::Cpu)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        TrainableEncoder::load(&fixture_model(name), &Device::Cpu)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// The final LayerNorm's scale at 3e38: every weight is finite, but the hidden states
/// overflow to infinity. Before, the NaN logits were dropped by max pooling and every text
/// came out as an empty (or wrong) vector.
#[test]
fn overflowing_activations_are_an_error_naming_the_model_and_text() {
    let tmp = copy_model("bert-tied-v6");
    let weights = tmp.path().join("model.safetensors");
    let names: Vec<String> = read_weights(&weights).into_keys().collect();
    let gamma = names
        .iter()
        .find(|n| {
            n.starts_with("cls.predictions.transform.LayerNorm.")
                && (n.ends_with("weight") || n.ends_with("gamma"))
        })
        .expect("transform LayerNorm scale")
        .clone();
    edit_tensor(&weights, &gamma, |v| v.iter_mut().for_each(|x| *x = 3e38));
    let encoder = SparseEncoder::load(tmp.path(), &Device::Cpu).expect("finite weights load");
    let err = encoder
        .encode(&["fine", "also fine"], &EncodeOptions::default())
        .expect_err("overflow must not encode");
    assert!(
        matches!(err, EncoderError::NonFiniteActivations { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&tmp.path().display().to_string()) && message.contains("NaN"),
        "{message}"
    );
}

#[test]
fn batch_size_zero_is_an_error_not_a_hang() {
    let encoder = SparseEncoder::load(&fixture_model("bert-tied-v6"), &Device::Cpu).unwrap();
    let options = EncodeOptions {
        batch_size: 0,
        ..EncodeOptions::default()
    };
    let err = encoder.encode(&["a text"], &options).unwrap_err();
    assert!(err.to_string().contains("batch size"), "{err}");
}

#[test]
fn layer_norm_eps_must_be_a_positive_number() {
    for bad in [
        serde_json::json!(0.0),
        serde_json::json!(-1e-12),
        serde_json::json!("nan"),
    ] {
        let tmp = copy_model("bert-tied-v6");
        set_json(
            &tmp.path().join("config.json"),
            "layer_norm_eps",
            bad.clone(),
        );
        let err = load_err(tmp.path());
        assert!(
            err.contains("layer_norm_eps") && err.contains("config.json"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn type_vocab_size_zero_with_token_type_weights_is_an_error() {
    let tmp = copy_model("bert-tied-v6");
    set_json(
        &tmp.path().join("config.json"),
        "type_vocab_size",
        serde_json::json!(0),
    );
    let err = load_err(tmp.path());
    assert!(
        err.contains("type_vocab_size") && err.contains("token_type_embeddings"),
        "{err}"
    );
}

#[test]
fn a_layer_count_other_than_the_weights_is_an_error() {
    for (model, field) in [
        ("bert-tied-v6", "num_hidden_layers"),
        ("distilbert-untied-v6", "n_layers"),
    ] {
        let config = fixture_model(model).join("config.json");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
        let layers = json[field].as_u64().unwrap();
        assert!(layers >= 2, "{model} needs 2+ layers for this test");
        for configured in [layers - 1, layers + 1] {
            let tmp = copy_model(model);
            set_json(
                &tmp.path().join("config.json"),
                field,
                serde_json::json!(configured),
            );
            let err = load_err(tmp.path());
            assert!(
                err.contains(field) && err.contains(&format!("{configured} layer(s) configured")),
                "{model} {configured}: {err}"
            );
            let err = TrainableEncoder::load(tmp.path(), &Device::Cpu)
                .err()
                .expect("TrainableEncoder::load should fail")
                .to_string();
            assert!(err.contains(field), "{err}");
        }
    }
}

#[test]
fn unknown_tensors_are_an_error_and_known_extras_are_ignored() {
    let tmp = copy_model("bert-tied-v6");
    let weights = tmp.path().join("model.safetensors");
    let mut tensors = read_weights(&weights);
    let h = tensors["bert.embeddings.word_embeddings.weight"]
        .dim(1)
        .unwrap();
    // What pre-training checkpoints carry: the pooler and the next-sentence head.
    let zeros = |shape: &[usize]| Tensor::zeros(shape, candle_core::DType::F32, &Device::Cpu);
    tensors.insert("bert.pooler.dense.weight".into(), zeros(&[h, h]).unwrap());
    tensors.insert("bert.pooler.dense.bias".into(), zeros(&[h]).unwrap());
    tensors.insert(
        "cls.seq_relationship.weight".into(),
        zeros(&[2, h]).unwrap(),
    );
    tensors.insert(
        "bert.embeddings.position_ids".into(),
        Tensor::arange(0i64, 8, &Device::Cpu).unwrap(),
    );
    write_weights(&weights, &tensors);
    SparseEncoder::load(tmp.path(), &Device::Cpu).expect("known extras are ignored");

    tensors.insert("bert.adapter.down.weight".into(), zeros(&[4, h]).unwrap());
    write_weights(&weights, &tensors);
    let err = load_err(tmp.path());
    assert!(
        err.contains("bert.adapter.down.weight") && err.contains("does not use"),
        "{err}"
    );
    assert!(!err.contains("pooler"), "{err}");
}

#[test]
fn module_paths_must_stay_inside_the_model_folder() {
    let outside = copy_model("bert-tied-v6");
    for bad in ["../other", "/tmp", "1_SpladePooling/../../x"] {
        let tmp = copy_model("bert-tied-v6");
        let modules = tmp.path().join("modules.json");
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&modules).unwrap()).unwrap();
        json[1]["path"] = serde_json::json!(bad);
        std::fs::write(&modules, json.to_string()).unwrap();
        let err = load_err(tmp.path());
        assert!(
            err.contains("outside the model folder") && err.contains("modules.json"),
            "{bad}: {err}"
        );
    }
    #[cfg(unix)]
    {
        // A module folder that is a symlink to another folder.
        let tmp = copy_model("bert-tied-v6");
        std::fs::remove_dir_all(tmp.path().join("1_SpladePooling")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("1_SpladePooling"),
            tmp.path().join("1_SpladePooling"),
        )
        .unwrap();
        let err = load_err(tmp.path());
        assert!(err.contains("outside the model folder"), "{err}");
        // Files that are symlinks out of the folder.
        for file in ["config.json", "tokenizer.json", "model.safetensors"] {
            let tmp = copy_model("bert-tied-v6");
            std::fs::remove_file(tmp.path().join(file)).unwrap();
            std::os::unix::fs::symlink(outside.path().join(file), tmp.path().join(file)).unwrap();
            let err = load_err(tmp.path());
            assert!(
                err.contains("outside the model folder") && err.contains(file),
                "{file}: {err}"
            );
        }
    }
}

#[test]
fn a_missing_pooling_module_folder_is_an_error() {
    let tmp = copy_model("bert-tied-v6");
    std::fs::remove_dir_all(tmp.path().join("1_SpladePooling")).unwrap();
    let err = load_err(tmp.path());
    assert!(
        err.contains("1_SpladePooling") && err.contains("missing"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn hub_cache_snapshots_may_link_into_their_blobs() {
    let fixture = fixture_model("bert-tied-v6");
    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join("models--owner--tiny");
    let snapshot = repo.join("snapshots").join("0123abcd");
    let blobs = repo.join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::create_dir_all(snapshot.join("1_SpladePooling")).unwrap();
    let mut n = 0;
    let mut link = |rel: &str| {
        n += 1;
        let blob = blobs.join(format!("blob{n}"));
        std::fs::copy(fixture.join(rel), &blob).unwrap();
        std::os::unix::fs::symlink(&blob, snapshot.join(rel)).unwrap();
    };
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            link(entry.file_name().to_str().unwrap());
        }
    }
    link("1_SpladePooling/config.json");
    let from_cache = SparseEncoder::load(&snapshot, &Device::Cpu).unwrap();
    let local = SparseEncoder::load(&fixture, &Device::Cpu).unwrap();
    let texts = ["sparse retrieval"];
    assert_eq!(
        from_cache
            .encode(&texts, &EncodeOptions::default())
            .unwrap(),
        local.encode(&texts, &EncodeOptions::default()).unwrap()
    );
}

#[test]
fn tokenizer_ids_beyond_the_embedding_matrix_are_an_error_at_load() {
    let tmp = copy_model("bert-tied-v6");
    let path = tmp.path().join("tokenizer.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json["added_tokens"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "id": 40000, "content": "[NEWTOKEN]", "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true
        }));
    std::fs::write(&path, json.to_string()).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("config.json")).unwrap())
            .unwrap();
    let vocab = config["vocab_size"].as_u64().unwrap() as usize;
    // Before, encoding "[NEWTOKEN]" failed deep inside: "index-select invalid index 30522
    // with dim size 30522".
    match SparseEncoder::load(tmp.path(), &Device::Cpu) {
        Err(e @ EncoderError::TokenizerVocabulary { .. }) => {
            let EncoderError::TokenizerVocabulary { max_id, rows, .. } = &e else {
                unreachable!()
            };
            assert!(*max_id as usize >= vocab && *rows == vocab, "{e}");
            let message = e.to_string();
            assert!(
                message.contains(&max_id.to_string())
                    && message.contains(&vocab.to_string())
                    && message.contains("tokenizer.json")
                    && message.contains("config.json"),
                "{message}"
            );
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("the tokenizer's id beyond the vocabulary must be refused"),
    }
}

#[cfg(unix)]
#[test]
fn a_fifo_as_config_json_is_an_error_not_a_hang() {
    let tmp = copy_model("bert-tied-v6");
    let config = tmp.path().join("config.json");
    std::fs::remove_file(&config).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&config)
        .status()
        .unwrap();
    assert!(status.success());
    let err = load_err(tmp.path());
    assert!(err.contains("config.json") && err.contains("FIFO"), "{err}");
}
