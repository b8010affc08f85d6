//! Inference-free (asymmetric) models: parity with sentence-transformers 6.2 on the committed
//! fixtures of `scripts/parity/generate_router_fixtures.py` (a `Router` with a
//! `SparseStaticEmbedding` query route and a Transformer + SpladePooling document route), and
//! the errors of bad Router folders.

mod common;
use common::{fixtures, read_json, sparse, texts};

use std::path::Path;

use serde_json::Value;
use splade_encoder::{
    EncodeOptions, EncoderError, RouteChoice, SparseBatch, SparseEncoder, SparseVector,
};

fn tol(v: f32) -> f32 {
    1e-4 * v.abs().max(1.0)
}

/// Identical active sets (|value| > 1e-6 on both sides, or below 1e-4 on both) and values
/// within 1e-4·max(1, |v|).
fn assert_vectors_match(ours: SparseVector, expected: SparseVector, what: &str) {
    let a: std::collections::BTreeMap<u32, f32> = ours.view().iter().collect();
    let b: std::collections::BTreeMap<u32, f32> = expected.view().iter().collect();
    let keys: std::collections::BTreeSet<u32> = a.keys().chain(b.keys()).copied().collect();
    for k in keys {
        let x = a.get(&k).copied().unwrap_or(0.0);
        let y = b.get(&k).copied().unwrap_or(0.0);
        if (x.abs() > 1e-6) != (y.abs() > 1e-6) {
            assert!(
                x.abs().max(y.abs()) < 1e-4,
                "{what}: index {k} active on one side only: ours {x}, reference {y}"
            );
        }
        assert!(
            (x - y).abs() <= tol(y),
            "{what}: index {k}: ours {x}, reference {y}"
        );
    }
}

fn assert_rows(ours: &SparseBatch, expected: &Value, labels: &[usize], what: &str) {
    let expected = expected.as_array().unwrap();
    assert_eq!(ours.len(), expected.len(), "{what}: row count");
    for (r, (row, exp)) in ours.rows().zip(expected).enumerate() {
        assert_vectors_match(
            row.to_owned(),
            sparse(exp),
            &format!("{what}, text #{}", labels[r]),
        );
    }
}

fn load(name: &str) -> (SparseEncoder, Value) {
    let encoder =
        SparseEncoder::load(&common::fixture_model(name), &candle_core::Device::Cpu).unwrap();
    (
        encoder,
        read_json(&fixtures().join(name).join("expected.json")),
    )
}

fn options() -> EncodeOptions {
    EncodeOptions {
        batch_size: 16,
        ..EncodeOptions::default()
    }
}

/// Everything the fixture pins down for one model.
fn check_model(name: &str) {
    let (encoder, e) = load(name);
    let texts = texts();
    let all: Vec<usize> = (0..texts.len()).collect();
    assert!(encoder.is_inference_free(), "{name}: a static route");
    let router = encoder.folder().router.as_ref().expect("a Router");
    let routes: Vec<&str> = router.routes.iter().map(|r| r.name.as_str()).collect();
    let expected_routes: Vec<&str> = e["routes"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = routes.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, expected_routes, "{name}: routes");
    assert_eq!(
        router.default_route.as_deref(),
        e["default_route"].as_str(),
        "{name}: default route"
    );

    // The query route: no transformer, its own tokens, its frozen flag and max length.
    let RouteChoice::Static(query) = encoder.route_for(Some("query")).unwrap() else {
        panic!("{name}: the query route must be the static one");
    };
    assert_eq!(query.frozen(), e["query_frozen"].as_bool().unwrap());
    assert_eq!(
        query.max_length() as u64,
        e["query_max_seq_length"].as_u64().unwrap()
    );
    let prompt = e["prompts"]["query"].as_str().unwrap_or("");
    for (i, expected) in e["query_tokens"].as_array().unwrap().iter().enumerate() {
        let expected: Vec<u32> = serde_json::from_value(expected.clone()).unwrap();
        let ours = query.tokenize(&format!("{prompt}{}", texts[i]), i).unwrap();
        assert_eq!(ours, expected, "{name}: query tokens of text #{i}");
    }
    assert!(matches!(
        encoder.route_for(Some("document")).unwrap(),
        RouteChoice::Splade
    ));

    let q = encoder.encode_query(&texts, &options()).unwrap();
    assert_rows(
        &q,
        &e["encode_query"],
        &all,
        &format!("{name} encode_query"),
    );
    let d = encoder.encode_document(&texts, &options()).unwrap();
    assert_rows(
        &d,
        &e["encode_document"],
        &all,
        &format!("{name} encode_document"),
    );
    match e["encode"].as_array() {
        Some(_) => {
            let all_default = encoder.encode(&texts, &options()).unwrap();
            assert_rows(&all_default, &e["encode"], &all, &format!("{name} encode"));
        }
        None => {
            let err = encoder.encode(&texts[..2], &options()).unwrap_err();
            let message = err.to_string();
            let reference = e["encode_error"].as_str().unwrap();
            let available = reference
                .split("Available routes: ")
                .nth(1)
                .unwrap()
                .split(". ")
                .next()
                .unwrap();
            assert!(matches!(err, EncoderError::NoRoute { task: None, .. }));
            assert!(
                message.contains(&format!("Available routes: {available}")),
                "{name}: {message} vs the reference's {reference}"
            );
            assert!(message.contains("task=None, modality='text'"), "{message}");
        }
    }
    let err = encoder
        .encode_task(&texts[..2], &options(), Some("classification"))
        .unwrap_err();
    let reference = e["unknown_task_error"].as_str().unwrap();
    assert!(
        err.to_string()
            .ends_with(&reference.replace("No route found", "no route found")),
        "{name}: {err} vs the reference's {reference}"
    );

    for (k, m) in e["max_active_dims"].as_object().unwrap() {
        let k: usize = k.parse().unwrap();
        let opts = EncodeOptions {
            max_active_dims: Some(k),
            ..options()
        };
        for (side, what) in [("query", "query"), ("document", "document")] {
            let ids: Vec<usize> =
                serde_json::from_value(m[format!("{side}_text_ids")].clone()).unwrap();
            let sub: Vec<&str> = ids.iter().map(|&i| texts[i].as_str()).collect();
            let ours = if side == "query" {
                encoder.encode_query(&sub, &opts).unwrap()
            } else {
                encoder.encode_document(&sub, &opts).unwrap()
            };
            assert_rows(
                &ours,
                &m[what],
                &ids,
                &format!("{name} {side} max_active_dims {k}"),
            );
        }
    }
}

#[test]
fn learned_static_query_route_matches_sentence_transformers() {
    check_model("router-learned");
}

#[test]
fn idf_static_query_route_with_route_mappings_matches_sentence_transformers() {
    check_model("router-idf");
}

/// A copy of a Router fixture to break.
fn broken_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::copy_dir(&common::fixture_model(name), dir.path());
    dir
}

fn load_err(dir: &Path) -> String {
    match SparseEncoder::load(dir, &candle_core::Device::Cpu) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut v = read_json(path);
    edit(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn bad_router_folders_are_errors_naming_the_file() {
    // A default route that is not a route.
    let dir = broken_copy("router-learned");
    let config = dir.path().join("router_config.json");
    edit_json(&config, |v| {
        v["parameters"]["default_route"] = "passage".into()
    });
    let message = load_err(dir.path());
    assert!(
        message.contains("router_config.json") && message.contains("'passage'"),
        "{message}"
    );

    // A route module whose folder is missing.
    let dir = broken_copy("router-learned");
    std::fs::remove_dir_all(dir.path().join("query_0_SparseStaticEmbedding")).unwrap();
    let message = load_err(dir.path());
    assert!(
        message.contains("query_0_SparseStaticEmbedding"),
        "{message}"
    );

    // A module path climbing out of the folder.
    let dir = broken_copy("router-learned");
    let config = dir.path().join("router_config.json");
    edit_json(&config, |v| {
        v["structure"]["query"] = serde_json::json!(["../query_0_SparseStaticEmbedding"]);
        v["types"]["../query_0_SparseStaticEmbedding"] =
            v["types"]["query_0_SparseStaticEmbedding"].clone();
    });
    let message = load_err(dir.path());
    assert!(message.contains("relative, without '..'"), "{message}");

    // A route of modules this crate does not run.
    let dir = broken_copy("router-learned");
    let config = dir.path().join("router_config.json");
    edit_json(&config, |v| {
        v["types"]["query_0_SparseStaticEmbedding"] =
            "sentence_transformers.sentence_transformer.modules.StaticEmbedding".into()
    });
    let message = load_err(dir.path());
    assert!(
        message.contains("route 'query'") && message.contains("StaticEmbedding"),
        "{message}"
    );

    // Static weights of the wrong size.
    let dir = broken_copy("router-learned");
    let weights = dir
        .path()
        .join("query_0_SparseStaticEmbedding/model.safetensors");
    let short =
        candle_core::Tensor::ones(100, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
    candle_core::safetensors::save(
        &std::collections::HashMap::from([("weight", short)]),
        &weights,
    )
    .unwrap();
    let message = load_err(dir.path());
    assert!(
        message.contains("model.safetensors") && message.contains("100 entries"),
        "{message}"
    );

    // A non-finite static weight.
    let dir = broken_copy("router-learned");
    let weights = dir
        .path()
        .join("query_0_SparseStaticEmbedding/model.safetensors");
    let mut w = vec![1f32; 30522];
    w[7] = f32::NAN;
    let t = candle_core::Tensor::from_vec(w, 30522, &candle_core::Device::Cpu).unwrap();
    candle_core::safetensors::save(&std::collections::HashMap::from([("weight", t)]), &weights)
        .unwrap();
    let message = load_err(dir.path());
    assert!(message.contains("non-finite value at token 7"), "{message}");

    // A malformed route mapping key.
    let dir = broken_copy("router-idf");
    let config = dir.path().join("router_config.json");
    edit_json(&config, |v| {
        v["parameters"]["route_mappings"] = serde_json::json!({"query": "sparse_query"})
    });
    let message = load_err(dir.path());
    assert!(
        message.contains("route_mappings.query") && message.contains("router_config.json"),
        "{message}"
    );

    // The trainable loader keeps both routes: the static query weights become one more
    // variable (named after their module folder), and `frozen` ones stay constants.
    let trainable = splade_encoder::TrainableEncoder::load(
        &common::fixture_model("router-learned"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let names: Vec<&str> = trainable.vars().iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"query_0_SparseStaticEmbedding.weight"),
        "{names:?}"
    );
    assert_eq!(
        trainable.reference_name("query_0_SparseStaticEmbedding.weight"),
        "model.0.sub_modules.query.0.weight"
    );
    let frozen = splade_encoder::TrainableEncoder::load(
        &common::fixture_model("router-idf"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert!(frozen
        .vars()
        .iter()
        .all(|(n, _)| !n.ends_with("SparseStaticEmbedding.weight")));
}

#[test]
fn plain_models_ignore_the_task() {
    let encoder = SparseEncoder::load(
        &common::fixture_model("bert-tied-v6"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert!(!encoder.is_inference_free());
    assert!(matches!(
        encoder.route_for(Some("anything")).unwrap(),
        RouteChoice::Splade
    ));
}

/// A `max_active_dims` saved in `config_sentence_transformers.json` is the model's default
/// on every route (sentence-transformers applies `model.max_active_dims` to whatever route
/// the task takes): without an explicit value, the vectors equal the reference's for that k.
#[test]
fn a_saved_max_active_dims_applies_to_both_routes() {
    let name = "router-learned";
    let e = read_json(&fixtures().join(name).join("expected.json"));
    let texts = texts();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    common::copy_dir(&common::fixture_model(name), &dir);
    for (k, m) in e["max_active_dims"].as_object().unwrap() {
        let path = dir.join("config_sentence_transformers.json");
        let mut config = read_json(&path);
        config["max_active_dims"] = k.parse::<u64>().unwrap().into();
        std::fs::write(&path, config.to_string()).unwrap();
        let encoder = SparseEncoder::load(&dir, &candle_core::Device::Cpu).unwrap();
        for side in ["query", "document"] {
            let ids: Vec<usize> =
                serde_json::from_value(m[format!("{side}_text_ids")].clone()).unwrap();
            let sub: Vec<&str> = ids.iter().map(|&i| texts[i].as_str()).collect();
            let ours = if side == "query" {
                encoder.encode_query(&sub, &options()).unwrap()
            } else {
                encoder.encode_document(&sub, &options()).unwrap()
            };
            assert_rows(
                &ours,
                &m[side],
                &ids,
                &format!("{name} {side}, saved max_active_dims {k}"),
            );
        }
    }
}
