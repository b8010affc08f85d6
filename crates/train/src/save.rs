//! Writing a trained model as a sentence-transformers SparseEncoder folder (the v6 layout,
//! which sentence-transformers 6.x and splade-rs both load).

use std::path::{Path, PathBuf};

use candle_core::{Tensor, Var};
use serde_json::json;
use splade_encoder::{EncoderError, SparseEncoder};

use crate::error::{Result, TrainError};

fn io(path: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::write(path)(source)
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, text + "\n").map_err(io(path))
}

/// Saves `encoder` with the current values of `vars` into `out`, atomically: everything is
/// written into a sibling temporary folder that then replaces `out`. Extra files (e.g. a model
/// card) can be added by `extra` before the swap.
pub fn save_model(
    encoder: &SparseEncoder,
    vars: &[(String, Var)],
    out: &Path,
    extra: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    // A diverged run must not leave a NaN model behind: refuse before touching `out`.
    for (name, var) in vars {
        if !is_finite(var.as_tensor())? {
            return Err(EncoderError::NonFiniteWeights {
                path: out.to_path_buf(),
                tensor: name.clone(),
            }
            .into());
        }
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "model".into());
    let staging: PathBuf = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    std::fs::create_dir_all(staging.join("1_SpladePooling")).map_err(io(&staging))?;
    write_folder(encoder, vars, &staging)?;
    extra(&staging)?;
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(io(out))?;
    }
    std::fs::rename(&staging, out).map_err(io(out))
}

/// Whether every value of a float tensor is finite (0·x is 0 for finite x, NaN otherwise).
fn is_finite(t: &Tensor) -> Result<bool> {
    if !t.dtype().is_float() {
        return Ok(true);
    }
    let t = t.to_dtype(candle_core::DType::F32)?;
    Ok((&t * 0.0)?.sum_all()?.to_scalar::<f32>()? == 0.0)
}

fn write_folder(encoder: &SparseEncoder, vars: &[(String, Var)], dir: &Path) -> Result<()> {
    let folder = encoder.folder();
    let source = &folder.transformer_dir;
    // Weights, by their checkpoint names (tied matrices are stored once, as loaded).
    let tensors: std::collections::HashMap<String, Tensor> = vars
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    let weights = dir.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &weights).map_err(|source| {
        TrainError::SaveWeights {
            path: weights.clone(),
            source,
        }
    })?;
    // The backbone config and tokenizer files, unchanged, except the max length.
    for file in [
        "config.json",
        "tokenizer.json",
        "vocab.txt",
        "special_tokens_map.json",
    ] {
        let from = source.join(file);
        if from.is_file() {
            std::fs::copy(&from, dir.join(file)).map_err(TrainError::read(&from))?;
        }
    }
    let tokenizer_config_path = source.join("tokenizer_config.json");
    let mut tokenizer_config = if tokenizer_config_path.is_file() {
        let text = std::fs::read_to_string(&tokenizer_config_path)
            .map_err(TrainError::read(&tokenizer_config_path))?;
        serde_json::from_str(&text).map_err(|source| TrainError::Json {
            path: tokenizer_config_path.clone(),
            source,
        })?
    } else {
        json!({})
    };
    tokenizer_config["model_max_length"] = json!(folder.max_seq_length);
    write_json(&dir.join("tokenizer_config.json"), &tokenizer_config)?;
    write_json(
        &dir.join("sentence_bert_config.json"),
        &json!({
            "transformer_task": "fill-mask",
            "modality_config": {"text": {"method": "forward", "method_output_name": "logits"}},
            "module_output_name": "token_embeddings",
            "max_seq_length": folder.max_seq_length,
            "do_lower_case": folder.do_lower_case,
        }),
    )?;
    write_json(
        &dir.join("modules.json"),
        &json!([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
            {"idx": 1, "name": "1", "path": "1_SpladePooling",
             "type": "sentence_transformers.sparse_encoder.modules.splade_pooling.SpladePooling"},
        ]),
    )?;
    write_json(
        &dir.join("1_SpladePooling").join("config.json"),
        &json!({
            "pooling_strategy": folder.pooling.strategy.name(),
            "activation_function": folder.pooling.activation.name(),
            "embedding_dimension": folder.backbone.vocab_size,
        }),
    )?;
    write_json(
        &dir.join("config_sentence_transformers.json"),
        &json!({
            "__version__": {"splade_rs": env!("CARGO_PKG_VERSION")},
            "model_type": "SparseEncoder",
            "prompts": folder.prompts,
            "default_prompt_name": folder.default_prompt_name,
            "similarity_fn_name": folder.similarity.name(),
        }),
    )
}
