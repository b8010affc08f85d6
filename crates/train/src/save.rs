//! Writing a trained model as a sentence-transformers SparseEncoder folder (the v6 layout,
//! which sentence-transformers 6.x and splade-rs both load).

use std::path::{Path, PathBuf};

use candle_core::{Tensor, Var};
use serde_json::json;
use splade_encoder::trainable::static_var_name;
use splade_encoder::{EncoderError, RouteKind, SparseEncoder};

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
    std::fs::create_dir_all(&staging).map_err(io(&staging))?;
    if encoder.folder().router.is_some() {
        write_router(encoder, vars, &staging)?;
    } else if encoder.csr().is_some() {
        write_csr(encoder, vars, &staging)?;
    } else {
        std::fs::create_dir_all(staging.join("1_SpladePooling")).map_err(io(&staging))?;
        write_folder(encoder, vars, &staging)?;
    }
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

/// Copies the regular files of `from` (not folders) into `to`, except `skip`.
fn copy_files(from: &Path, to: &Path, skip: &[&str]) -> Result<()> {
    std::fs::create_dir_all(to).map_err(io(to))?;
    for entry in std::fs::read_dir(from).map_err(TrainError::read(from))? {
        let entry = entry.map_err(TrainError::read(from))?;
        let name = entry.file_name();
        let path = entry.path();
        if path.is_file() && !skip.iter().any(|s| name == std::ffi::OsStr::new(s)) {
            std::fs::copy(&path, to.join(&name)).map_err(TrainError::read(&path))?;
        }
    }
    Ok(())
}

/// The folder of module `dir` relative to the model folder `root` (its name in the Router).
fn relative<'a>(root: &Path, dir: &'a Path) -> &'a Path {
    dir.strip_prefix(root).unwrap_or(dir)
}

/// An inference-free model in sentence-transformers' Router layout, as its `save` writes it:
/// `modules.json` (one Router at the root), `router_config.json` and
/// `config_sentence_transformers.json` as loaded, and one folder per module: the static
/// routes' `config.json`, tokenizer and `model.safetensors` (tensor `weight`, trained), the
/// SPLADE route's Transformer folder (trained weights, `sentence_bert_config.json`, tokenizer)
/// and SpladePooling config.
fn write_router(encoder: &SparseEncoder, vars: &[(String, Var)], dir: &Path) -> Result<()> {
    let folder = encoder.folder();
    let Some(router) = &folder.router else {
        return Ok(());
    };
    let root = &folder.root;
    let mut statics = Vec::new();
    for route in &router.routes {
        match &route.kind {
            RouteKind::Static { dir: module } => {
                let out = dir.join(relative(root, module));
                copy_files(module, &out, &["model.safetensors"])?;
                let name = static_var_name(module);
                let weight = match vars.iter().find(|(n, _)| *n == name) {
                    Some((_, var)) => var.as_tensor().clone(),
                    // A frozen module: its weights as loaded.
                    None => {
                        let loaded = encoder
                            .static_routes()
                            .iter()
                            .find(|(r, _)| *r == route.name)
                            .map(|(_, s)| s.weights().to_vec())
                            .unwrap_or_default();
                        let n = loaded.len();
                        Tensor::from_vec(loaded, n, &candle_core::Device::Cpu)?
                    }
                };
                statics.push(name);
                let path = out.join("model.safetensors");
                let tensors = std::collections::HashMap::from([("weight".to_string(), weight)]);
                candle_core::safetensors::save(&tensors, &path).map_err(|source| {
                    TrainError::SaveWeights {
                        path: path.clone(),
                        source,
                    }
                })?;
            }
            RouteKind::Splade {
                transformer_dir,
                pooling_dir,
                ..
            } => {
                let out = dir.join(relative(root, transformer_dir));
                if !out.exists() {
                    std::fs::create_dir_all(&out).map_err(io(&out))?;
                    let backbone: Vec<(String, Var)> = vars
                        .iter()
                        .filter(|(n, _)| !statics_contains(router, n))
                        .cloned()
                        .collect();
                    write_transformer(encoder, &backbone, &out)?;
                }
                copy_files(pooling_dir, &dir.join(relative(root, pooling_dir)), &[])?;
            }
        }
    }
    for file in ["router_config.json", "config.json"] {
        let from = router.config_path.parent().unwrap_or(root).join(file);
        if from == router.config_path {
            std::fs::copy(&from, dir.join(relative(root, &from)))
                .map_err(TrainError::read(&from))?;
        }
    }
    let st_config = root.join("config_sentence_transformers.json");
    if st_config.is_file() {
        std::fs::copy(&st_config, dir.join("config_sentence_transformers.json"))
            .map_err(TrainError::read(&st_config))?;
    }
    write_json(
        &dir.join("modules.json"),
        &json!([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.router.Router"},
        ]),
    )
}

/// Whether `name` is the variable of one of the Router's static routes.
fn statics_contains(router: &splade_encoder::RouterLayout, name: &str) -> bool {
    router.routes.iter().any(|r| match &r.kind {
        RouteKind::Static { dir } => static_var_name(dir) == name,
        RouteKind::Splade { .. } => false,
    })
}

/// A CSR model as sentence-transformers saves it: the backbone (a bare encoder, feature
/// extraction) at the root, `1_Pooling`, `2_SparseAutoEncoder` (config and weights under the
/// names sentence-transformers writes: `decoder.linear.weight` for the tied encoder matrix,
/// `pre_bias`, `latent_bias`, `stats_last_nonzero`).
fn write_csr(encoder: &SparseEncoder, vars: &[(String, Var)], dir: &Path) -> Result<()> {
    let folder = encoder.folder();
    let (Some(head), Some(layout)) = (encoder.csr(), folder.csr.as_ref()) else {
        return Ok(());
    };
    let module_name = |d: &Path| {
        d.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    };
    let sae_module = module_name(&layout.sae_dir);
    let pooling_module = module_name(&layout.pooling_dir);
    let prefix = format!("{sae_module}.");
    let backbone: Vec<(String, Var)> = vars
        .iter()
        .filter(|(n, _)| !n.starts_with(&prefix))
        .cloned()
        .collect();
    write_transformer(encoder, &backbone, dir)?;
    write_json(
        &dir.join("sentence_bert_config.json"),
        &json!({
            "transformer_task": "feature-extraction",
            "modality_config": {"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
            "module_output_name": "token_embeddings",
            "max_seq_length": folder.max_seq_length,
            "do_lower_case": folder.do_lower_case,
        }),
    )?;
    let pooling_dir = dir.join(&pooling_module);
    std::fs::create_dir_all(&pooling_dir).map_err(io(&pooling_dir))?;
    let modes: Vec<&str> = head.pooling.modes.iter().map(|m| m.name()).collect();
    write_json(
        &pooling_dir.join("config.json"),
        &json!({
            "embedding_dimension": head.pooling.embedding_dimension,
            "pooling_mode": if modes.len() == 1 { json!(modes[0]) } else { json!(modes) },
            "include_prompt": head.pooling.include_prompt,
        }),
    )?;
    let sae_dir = dir.join(&sae_module);
    std::fs::create_dir_all(&sae_dir).map_err(io(&sae_dir))?;
    let c = &head.sae.config;
    write_json(
        &sae_dir.join("config.json"),
        &json!({
            "input_dim": c.input_dim,
            "hidden_dim": c.hidden_dim,
            "k": c.k,
            "k_aux": c.k_aux,
            "normalize": c.normalize,
            "dead_threshold": c.dead_threshold,
        }),
    )?;
    let var = |name: &str, fallback: &Tensor| -> Tensor {
        vars.iter()
            .find(|(n, _)| *n == format!("{prefix}{name}"))
            .map_or_else(|| fallback.clone(), |(_, v)| v.as_tensor().clone())
    };
    let stats = Tensor::from_vec(
        head.sae.stats_last_nonzero.clone(),
        c.hidden_dim,
        &candle_core::Device::Cpu,
    )?;
    let tensors = std::collections::HashMap::from([
        (
            "decoder.linear.weight".to_string(),
            var("encoder.weight", &head.sae.weight),
        ),
        ("pre_bias".to_string(), var("pre_bias", &head.sae.pre_bias)),
        (
            "latent_bias".to_string(),
            var("latent_bias", &head.sae.latent_bias),
        ),
        ("stats_last_nonzero".to_string(), stats),
    ]);
    let path = sae_dir.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &path).map_err(|source| TrainError::SaveWeights {
        path: path.clone(),
        source,
    })?;
    write_json(
        &dir.join("modules.json"),
        &json!([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
            {"idx": 1, "name": "1", "path": pooling_module,
             "type": "sentence_transformers.sentence_transformer.modules.pooling.Pooling"},
            {"idx": 2, "name": "2", "path": sae_module,
             "type": "sentence_transformers.sparse_encoder.modules.sparse_auto_encoder.SparseAutoEncoder"},
        ]),
    )?;
    let mut st_config = json!({
        "__version__": {"splade_rs": env!("CARGO_PKG_VERSION")},
        "model_type": "SparseEncoder",
        "prompts": folder.prompts,
        "default_prompt_name": folder.default_prompt_name,
        "similarity_fn_name": folder.similarity.name(),
    });
    if let Some(k) = encoder.effective_max_active_dims(None) {
        st_config["max_active_dims"] = json!(k);
    }
    write_json(&dir.join("config_sentence_transformers.json"), &st_config)
}

fn write_folder(encoder: &SparseEncoder, vars: &[(String, Var)], dir: &Path) -> Result<()> {
    let folder = encoder.folder();
    write_transformer(encoder, vars, dir)?;
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

/// The Transformer module's files: the trained weights, the backbone config and tokenizer
/// (unchanged but the max length) and `sentence_bert_config.json`.
fn write_transformer(encoder: &SparseEncoder, vars: &[(String, Var)], dir: &Path) -> Result<()> {
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
    )
}
