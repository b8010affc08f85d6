//! The bounded fuzz pass over what the encoder reads from outside: model folders with
//! mutated configuration files (numbers replaced by hostile values, fields dropped,
//! bytes flipped) and mutated safetensors headers, and the tokenizer + encoder over
//! arbitrary text. Every case ends in a model or a clean error, never a panic; whatever
//! loads encodes to finite vectors inside its dimension (or errors cleanly).
//! `SPLADE_FUZZ_CASES` sets the cases per property (default 24 here, what CI runs);
//! `scripts/fuzz.sh` runs a long pass.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use splade_encoder::{EncodeOptions, SparseEncoder};

#[path = "../../../tests/support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{alone, peak_of, Counting};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn cases() -> u32 {
    std::env::var("SPLADE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .map_or(24, |n| (n / 2).max(1))
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/encoder/models")
}

const MODELS: [&str; 4] = [
    "bert-tied-v6",
    "bert-untied-seedlayout",
    "distilbert-tied-seedlayout",
    "distilbert-untied-v6",
];

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// Hostile JSON values for a configuration field.
fn hostile_value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        prop::sample::select(vec![
            serde_json::json!(0),
            serde_json::json!(1),
            serde_json::json!(-1),
            serde_json::json!(2),
            serde_json::json!(7),
            serde_json::json!(1e-300),
            serde_json::json!(1e300),
            serde_json::json!(4294967296u64),
            serde_json::json!(u64::MAX),
            serde_json::json!(1.5),
            serde_json::json!(null),
            serde_json::json!("gelu"),
            serde_json::json!("relu"),
            serde_json::json!("../../etc"),
            serde_json::json!("/etc/passwd"),
            serde_json::json!(""),
            serde_json::json!([]),
            serde_json::json!({}),
            serde_json::json!(true),
        ]),
        any::<i64>().prop_map(serde_json::Value::from),
    ]
}

/// Replaces the `pick`-th leaf (or drops it when `drop`) anywhere in `v`.
fn mutate_leaf(
    v: &mut serde_json::Value,
    pick: &mut usize,
    with: &serde_json::Value,
    drop: bool,
) -> bool {
    match v {
        serde_json::Value::Object(o) => {
            let keys: Vec<String> = o.keys().cloned().collect();
            for k in keys {
                let child = o.get_mut(&k).unwrap();
                let is_leaf = !child.is_object() && !child.is_array();
                if is_leaf {
                    if *pick == 0 {
                        if drop {
                            o.remove(&k);
                        } else {
                            *child = with.clone();
                        }
                        return true;
                    }
                    *pick -= 1;
                } else if mutate_leaf(child, pick, with, drop) {
                    return true;
                }
            }
            false
        }
        serde_json::Value::Array(a) => {
            for child in a.iter_mut() {
                if child.is_object() || child.is_array() {
                    if mutate_leaf(child, pick, with, drop) {
                        return true;
                    }
                } else {
                    if *pick == 0 {
                        *child = with.clone();
                        return true;
                    }
                    *pick -= 1;
                }
            }
            false
        }
        _ => false,
    }
}

fn count_leaves(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Object(o) => o
            .values()
            .map(|c| {
                if c.is_object() || c.is_array() {
                    count_leaves(c)
                } else {
                    1
                }
            })
            .sum(),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|c| {
                if c.is_object() || c.is_array() {
                    count_leaves(c)
                } else {
                    1
                }
            })
            .sum(),
        _ => 0,
    }
}

/// Encodes a few texts with a model that loaded; outputs must be finite and in range.
fn check_encodes(encoder: &SparseEncoder) -> Result<(), TestCaseError> {
    let texts = ["what is sparse retrieval?", "", "ünïcödé 数据 🚀"];
    if let Ok(batch) = encoder.encode(&texts, &EncodeOptions::default()) {
        for row in batch.rows() {
            prop_assert!(row.values().iter().all(|v| v.is_finite()));
            prop_assert!(row.indices().iter().all(|&i| (i as usize) < encoder.dim()));
        }
    }
    Ok(())
}

/// The default fixture model, loaded once.
fn base_model() -> &'static SparseEncoder {
    static MODEL: OnceLock<SparseEncoder> = OnceLock::new();
    MODEL.get_or_init(|| {
        SparseEncoder::from_pretrained(fixtures().join("bert-tied-v6").to_str().unwrap())
            .expect("fixture model")
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Mutated JSON files of a model folder (config.json, modules.json,
    /// sentence_bert_config.json, tokenizer_config.json, the pooling config): a model or
    /// a clean error.
    #[test]
    fn model_loader_survives_mutated_configs(
        model in 0usize..MODELS.len(),
        file in any::<prop::sample::Index>(),
        pick in any::<prop::sample::Index>(),
        with in hostile_value(),
        drop in any::<bool>(),
        flip in prop::option::of((any::<prop::sample::Index>(), 1u8..=255)),
    ) {
        let _alone = alone();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("m");
        copy_dir(&fixtures().join(MODELS[model]), &dir);
        let mut jsons: Vec<PathBuf> = Vec::new();
        for e in walk(&dir) {
            let name = e.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".json") && name != "tokenizer.json" {
                jsons.push(e);
            }
        }
        jsons.sort();
        let target = &jsons[file.index(jsons.len())];
        let mut bytes = std::fs::read(target).unwrap();
        if let Some((at, x)) = flip {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        } else if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            let n = count_leaves(&v);
            if n > 0 {
                let mut p = pick.index(n);
                mutate_leaf(&mut v, &mut p, &with, drop);
                bytes = serde_json::to_vec_pretty(&v).unwrap();
            }
        }
        std::fs::write(target, &bytes).unwrap();
        let result = std::panic::catch_unwind(|| SparseEncoder::from_pretrained(dir.to_str().unwrap()));
        prop_assert!(result.is_ok(), "loading panicked on a mutated {}", target.display());
        if let Ok(Ok(encoder)) = result {
            let encoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_encodes(&encoder)));
            prop_assert!(encoded.is_ok(), "encoding panicked after a mutated {}", target.display());
            encoded.unwrap()?;
        } else if let Ok(Err(e)) = result {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    /// A mutated safetensors header (its length field or its JSON: shapes, dtypes,
    /// offsets): a clean error, or a model that encodes.
    #[test]
    fn model_loader_survives_mutated_safetensors_headers(
        model in 0usize..MODELS.len(),
        length in prop::option::of(prop::sample::select(vec![0u64, 1, 7, 1 << 20, 1 << 40, u64::MAX])),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
    ) {
        let _alone = alone();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("m");
        copy_dir(&fixtures().join(MODELS[model]), &dir);
        let path = dir.join("model.safetensors");
        let mut bytes = std::fs::read(&path).unwrap();
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        match length {
            Some(l) => bytes[..8].copy_from_slice(&l.to_le_bytes()),
            None => {
                for (at, x) in flips {
                    let i = 8 + at.index(header_len);
                    bytes[i] ^= x;
                }
            }
        }
        std::fs::write(&path, &bytes).unwrap();
        let folder_bytes: usize = walk(&dir).iter().map(|p| std::fs::metadata(p).unwrap().len() as usize).sum();
        let (result, peak) = peak_of(|| {
            std::panic::catch_unwind(|| SparseEncoder::from_pretrained(dir.to_str().unwrap()))
        });
        prop_assert!(result.is_ok(), "loading panicked on a mutated safetensors header");
        // A loaded model holds its weights and tokenizer a few times over while loading;
        // a length field must not add to that.
        prop_assert!(
            peak <= 16 * folder_bytes + (64 << 20),
            "loading allocated {peak} bytes for a {folder_bytes}-byte folder"
        );
        if let Ok(Ok(encoder)) = result {
            let encoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_encodes(&encoder)));
            prop_assert!(encoded.is_ok(), "encoding panicked after a mutated header");
            encoded.unwrap()?;
        }
    }

    /// Arbitrary text (any Unicode, control characters, very long words, empty) through
    /// the tokenizer and the model: finite vectors inside the dimension, never a panic.
    #[test]
    fn tokenizer_and_encoder_survive_any_text(
        raw in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..6),
        chars in prop::collection::vec(any::<char>(), 0..200),
    ) {
        let _alone = alone();
        let mut texts: Vec<String> = raw.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
        texts.push(chars.into_iter().collect());
        texts.push("a".repeat(5000));
        let encoder = base_model();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            encoder.encode(&texts, &EncodeOptions::default())
        }));
        prop_assert!(result.is_ok(), "encoding panicked");
        let batch = result.unwrap();
        prop_assert!(batch.is_ok(), "{:?}", batch.err());
        let batch = batch.unwrap();
        prop_assert_eq!(batch.rows().count(), texts.len());
        for row in batch.rows() {
            prop_assert!(row.values().iter().all(|v| v.is_finite() && *v >= 0.0));
            prop_assert!(row.indices().iter().all(|&i| (i as usize) < encoder.dim()));
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
