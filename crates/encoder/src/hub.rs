//! Resolving what a user names as a model: a local folder, the default model's name, or a
//! Hugging Face Hub id (through the `hf-hub` crate and its standard cache).

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use crate::default_model::{ensure_default_model, DEFAULT_MODEL};
use crate::error::{EncoderError, Result};

/// Turns a model argument into a local folder:
/// 1. an existing folder is used as is;
/// 2. `splade-tiny` fetches (once) and returns the default model;
/// 3. anything else is a Hugging Face Hub id (`owner/name`, optionally `@revision`), taken
///    from the hf-hub cache (`HF_HOME`, default `~/.cache/huggingface/hub`) or downloaded.
///    With `HF_HUB_OFFLINE=1`, or when the Hub cannot be reached, only the cache is used.
pub fn resolve_model(name_or_path: &str) -> Result<PathBuf> {
    let path = Path::new(name_or_path);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    if name_or_path == DEFAULT_MODEL {
        return ensure_default_model();
    }
    let looks_like_path = name_or_path.starts_with(['.', '/', '~'])
        || name_or_path.matches('/').count() > 1
        || name_or_path.contains('\\')
        || path.exists();
    if looks_like_path || name_or_path.is_empty() {
        return Err(EncoderError::MissingFile {
            path: path.to_path_buf(),
            hint: " (model folder)".into(),
        });
    }
    from_hub(name_or_path)
}

fn is_wanted(file: &str) -> bool {
    let depth = file.matches('/').count();
    let name = file.rsplit('/').next().unwrap_or(file);
    let top = file.split('/').next().unwrap_or("");
    if depth > 1 || top.starts_with("onnx") || top.starts_with("openvino") {
        return false;
    }
    name.ends_with(".json")
        || name == "vocab.txt"
        || name == "model.safetensors"
        || name == "pytorch_model.bin"
}

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn from_hub(spec: &str) -> Result<PathBuf> {
    let (id, revision) = match spec.split_once('@') {
        Some((id, rev)) => (id.to_string(), rev.to_string()),
        None => (spec.to_string(), "main".to_string()),
    };
    let cache = Cache::from_env();
    let repo = Repo::with_revision(id.clone(), RepoType::Model, revision);
    let hub_error = |message: String| EncoderError::Hub {
        id: spec.to_string(),
        cache: cache.path().clone(),
        message,
    };
    let from_cache = || -> Option<PathBuf> {
        let cached = cache.repo(repo.clone());
        ["modules.json", "config.json"]
            .iter()
            .find_map(|f| cached.get(f))
            .and_then(|p| p.parent().map(Path::to_path_buf))
    };
    if offline() {
        return from_cache().ok_or_else(|| {
            hub_error("HF_HUB_OFFLINE is set and the model is not in the cache".into())
        });
    }
    let api = ApiBuilder::from_env()
        .with_progress(true)
        .build()
        .map_err(|e| hub_error(e.to_string()))?;
    let api_repo = api.repo(repo.clone());
    let info = match api_repo.info() {
        Ok(info) => info,
        Err(e) => {
            return from_cache().ok_or_else(|| {
                hub_error(format!(
                    "the Hub is unreachable and the model is not cached: {e}"
                ))
            });
        }
    };
    let files: Vec<&str> = info
        .siblings
        .iter()
        .map(|s| s.rfilename.as_str())
        .filter(|f| is_wanted(f))
        .collect();
    let mut root = None;
    for file in &files {
        // Prefer safetensors: skip a .bin whose folder also has model.safetensors.
        if file.ends_with("pytorch_model.bin") {
            let st = file.replace("pytorch_model.bin", "model.safetensors");
            if files.contains(&st.as_str()) {
                continue;
            }
        }
        let local = api_repo
            .get(file)
            .map_err(|e| hub_error(format!("downloading {file}: {e}")))?;
        if *file == "config.json" || *file == "modules.json" {
            root = local.parent().map(Path::to_path_buf);
        }
    }
    root.ok_or_else(|| hub_error("the repository has neither modules.json nor config.json".into()))
}
