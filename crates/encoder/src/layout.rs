//! Reading a model folder: a sentence-transformers SparseEncoder folder (the v4/v5 layout of
//! the seed model card, or the v6 layout) or a plain Hugging Face `*ForMaskedLM` folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use splade_sparse::Similarity;

use crate::config::BackboneConfig;
use crate::csr::{SentencePooling, SparseAutoEncoderConfig};
use crate::error::{read_json, EncoderError, Result};
use crate::paths::{check_inside, module_dir};
use crate::pooling::{PoolingActivation, PoolingConfig, PoolingStrategy};
use crate::router::{RouteKind, RouterLayout};

/// Module types of a sentence-transformers pipeline that this crate runs.
pub const SUPPORTED_MODULES: &str =
    "MLMTransformer / Transformer (fill-mask) followed by SpladePooling, a Router of \
     SparseStaticEmbedding and Transformer (fill-mask) + SpladePooling routes, or a CSR model: \
     Transformer (feature-extraction) + Pooling + SparseAutoEncoder";

/// Which kind of folder a model came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderLayout {
    /// A plain Hugging Face `*ForMaskedLM` folder (no `modules.json`).
    PlainMaskedLm,
    /// sentence-transformers v4/v5 (`sentence_transformers.sparse_encoder.models.*`).
    SentenceTransformersV5,
    /// sentence-transformers v6 (`sentence_transformers.sparse_encoder.modules.*` and later).
    SentenceTransformersV6,
}

/// Everything needed to build an encoder, read from a model folder.
#[derive(Debug, Clone)]
pub struct ModelFolder {
    /// The folder given.
    pub root: PathBuf,
    /// The folder holding the transformer's `config.json`, weights and tokenizer.
    pub transformer_dir: PathBuf,
    /// Which layout the folder uses.
    pub layout: FolderLayout,
    /// The backbone's configuration.
    pub backbone: BackboneConfig,
    /// Token limit per text (special tokens included); longer texts are truncated.
    pub max_seq_length: usize,
    /// Whether texts are lower-cased before tokenization.
    pub do_lower_case: bool,
    /// SpladePooling settings.
    pub pooling: PoolingConfig,
    /// Named prompts prepended to texts (`config_sentence_transformers.json`).
    pub prompts: BTreeMap<String, String>,
    /// The prompt used by `encode` when none is named.
    pub default_prompt_name: Option<String>,
    /// The similarity function the model was trained for.
    pub similarity: Similarity,
    /// The Router of an inference-free (asymmetric) model; `transformer_dir` and `pooling`
    /// then describe its SPLADE route. `None` for a plain SPLADE model.
    pub router: Option<RouterLayout>,
    /// A CSR model's `Pooling` and `SparseAutoEncoder` (then `pooling` is unused and the
    /// backbone has no MLM head). `None` for a SPLADE model.
    pub csr: Option<CsrLayout>,
    /// The model's default `max_active_dims` (`config_sentence_transformers.json`; for a CSR
    /// model sentence-transformers saves the autoencoder's `k` there).
    pub max_active_dims: Option<usize>,
}

/// The CSR modules of a model folder.
#[derive(Debug, Clone)]
pub struct CsrLayout {
    /// The `Pooling` module's folder.
    pub pooling_dir: PathBuf,
    /// Its settings.
    pub pooling: SentencePooling,
    /// The `SparseAutoEncoder` module's folder.
    pub sae_dir: PathBuf,
    /// Its settings.
    pub sae: SparseAutoEncoderConfig,
}

fn config_err(path: &Path, field: &str, message: impl ToString) -> EncoderError {
    EncoderError::Config {
        path: path.to_path_buf(),
        field: field.to_string(),
        message: message.to_string(),
    }
}

/// Reads an optional JSON file of the model folder `root` (absent: `None`). Something that
/// exists but is not a regular file (a FIFO, a folder) is an error, not "absent".
pub(crate) fn optional_json(root: &Path, path: &Path) -> Result<Option<Value>> {
    if path.exists() {
        check_inside(root, path)?;
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

/// Reads the required `config.json` of a transformer folder inside `root`.
fn backbone_config(root: &Path, path: &Path) -> Result<BackboneConfig> {
    check_inside(root, path)?;
    BackboneConfig::from_file(path)
}

/// The last dotted component of a module type, e.g. `SpladePooling`.
fn type_name(full: &str) -> &str {
    full.rsplit('.').next().unwrap_or(full)
}

impl ModelFolder {
    /// Reads a model folder, detecting its layout.
    pub fn read(root: &Path) -> Result<Self> {
        if !root.is_dir() {
            return Err(EncoderError::MissingFile {
                path: root.to_path_buf(),
                hint: " (model folder)".into(),
            });
        }
        let modules_path = root.join("modules.json");
        match optional_json(root, &modules_path)? {
            Some(modules) => Self::read_sentence_transformers(root, &modules_path, &modules),
            None => Self::read_plain(root),
        }
    }

    fn read_plain(root: &Path) -> Result<Self> {
        let backbone = backbone_config(root, &root.join("config.json"))?;
        let (max_seq_length, do_lower_case) = transformer_settings(root, root, &backbone)?;
        let mut folder = Self {
            root: root.to_path_buf(),
            transformer_dir: root.to_path_buf(),
            layout: FolderLayout::PlainMaskedLm,
            backbone,
            max_seq_length,
            do_lower_case,
            pooling: PoolingConfig::default(),
            prompts: BTreeMap::new(),
            default_prompt_name: None,
            similarity: Similarity::Dot,
            router: None,
            csr: None,
            max_active_dims: None,
        };
        if !folder.backbone.mlm_head {
            return Err(EncoderError::UnsupportedModule {
                module: format!(
                    "a bare {} without modules.json (sentence-transformers would add a randomly \
                     initialised SparseAutoEncoder)",
                    folder.backbone.architecture.class_name()
                ),
                path: root.join("config.json"),
                supported: SUPPORTED_MODULES.to_string(),
            });
        }
        folder.read_model_settings()?;
        Ok(folder)
    }

    fn read_sentence_transformers(
        root: &Path,
        modules_path: &Path,
        modules: &Value,
    ) -> Result<Self> {
        let list = modules
            .as_array()
            .ok_or_else(|| config_err(modules_path, "modules", "expected a list of modules"))?;
        let mut transformer = None;
        let mut pooling = None;
        let mut layout = FolderLayout::SentenceTransformersV6;
        let mut router = None;
        let mut csr_dirs: (Option<PathBuf>, Option<PathBuf>) = (None, None);
        if let [module] = list.as_slice() {
            let kind = module.get("type").and_then(Value::as_str).unwrap_or("");
            if matches!(type_name(kind), "Router" | "Asym") {
                let raw_path = module.get("path").and_then(Value::as_str).unwrap_or("");
                let dir = module_dir(root, raw_path, modules_path, "[0].path")?;
                let read = RouterLayout::read(root, &dir)?;
                let (t, p, full) = splade_route(&read)?;
                if full.starts_with("sentence_transformers.sparse_encoder.models.") {
                    layout = FolderLayout::SentenceTransformersV5;
                }
                transformer = Some(t);
                pooling = Some(p);
                router = Some(read);
            }
        }
        for (i, module) in list.iter().enumerate().filter(|_| router.is_none()) {
            let kind = module
                .get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| config_err(modules_path, &format!("[{i}].type"), "missing"))?;
            let raw_path = module.get("path").and_then(Value::as_str).unwrap_or("");
            if kind.starts_with("sentence_transformers.sparse_encoder.models.") {
                layout = FolderLayout::SentenceTransformersV5;
            }
            match (type_name(kind), i) {
                ("MLMTransformer" | "Transformer", 0) => {
                    transformer = Some(module_dir(
                        root,
                        raw_path,
                        modules_path,
                        &format!("[{i}].path"),
                    )?)
                }
                ("SpladePooling", 1) => {
                    pooling = Some(module_dir(
                        root,
                        raw_path,
                        modules_path,
                        &format!("[{i}].path"),
                    )?)
                }
                ("Pooling", 1) => {
                    csr_dirs.0 = Some(module_dir(
                        root,
                        raw_path,
                        modules_path,
                        &format!("[{i}].path"),
                    )?)
                }
                ("SparseAutoEncoder", 2) if csr_dirs.0.is_some() => {
                    csr_dirs.1 = Some(module_dir(
                        root,
                        raw_path,
                        modules_path,
                        &format!("[{i}].path"),
                    )?)
                }
                _ => {
                    return Err(EncoderError::UnsupportedModule {
                        module: kind.to_string(),
                        path: modules_path.to_path_buf(),
                        supported: SUPPORTED_MODULES.to_string(),
                    })
                }
            }
        }
        if let (Some(transformer_dir), (Some(pooling_dir), Some(sae_dir))) =
            (transformer.clone(), csr_dirs.clone())
        {
            if list.len() == 3 {
                return Self::read_csr(root, layout, transformer_dir, pooling_dir, sae_dir);
            }
        }
        let (Some(transformer_dir), Some(pooling_dir)) = (transformer, pooling) else {
            return Err(EncoderError::UnsupportedModule {
                module: format!("{} module(s)", list.len()),
                path: modules_path.to_path_buf(),
                supported: SUPPORTED_MODULES.to_string(),
            });
        };
        if !pooling_dir.is_dir() {
            return Err(EncoderError::MissingFile {
                path: pooling_dir,
                hint: format!(
                    " (the SpladePooling module folder named in {})",
                    modules_path.display()
                ),
            });
        }
        check_transformer_task(root, &transformer_dir.join("sentence_bert_config.json"))?;
        let backbone = backbone_config(root, &transformer_dir.join("config.json"))?;
        if !backbone.mlm_head {
            return Err(EncoderError::UnsupportedModule {
                module: format!(
                    "SpladePooling over a bare {} (no MLM head)",
                    backbone.architecture.class_name()
                ),
                path: transformer_dir.join("config.json"),
                supported: SUPPORTED_MODULES.to_string(),
            });
        }
        let (max_seq_length, do_lower_case) =
            transformer_settings(root, &transformer_dir, &backbone)?;
        let pooling = read_pooling(root, &pooling_dir.join("config.json"), backbone.vocab_size)?;
        let mut folder = Self {
            root: root.to_path_buf(),
            transformer_dir,
            layout,
            backbone,
            max_seq_length,
            do_lower_case,
            pooling,
            prompts: BTreeMap::new(),
            default_prompt_name: None,
            similarity: Similarity::Dot,
            router,
            csr: None,
            max_active_dims: None,
        };
        folder.read_model_settings()?;
        Ok(folder)
    }

    /// A CSR folder: `Transformer` (feature-extraction) + `Pooling` + `SparseAutoEncoder`.
    fn read_csr(
        root: &Path,
        layout: FolderLayout,
        transformer_dir: PathBuf,
        pooling_dir: PathBuf,
        sae_dir: PathBuf,
    ) -> Result<Self> {
        for (dir, what) in [(&pooling_dir, "Pooling"), (&sae_dir, "SparseAutoEncoder")] {
            if !dir.is_dir() {
                return Err(EncoderError::MissingFile {
                    path: dir.clone(),
                    hint: format!(" (the {what} module folder named in modules.json)"),
                });
            }
        }
        let sbert_path = transformer_dir.join("sentence_bert_config.json");
        let task = optional_json(root, &sbert_path)?.and_then(|j| {
            j.get("transformer_task")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        if let Some(other) = task.as_deref().filter(|t| *t != "feature-extraction") {
            return Err(EncoderError::UnsupportedModule {
                module: format!("Transformer with transformer_task '{other}' under Pooling"),
                path: sbert_path,
                supported: SUPPORTED_MODULES.to_string(),
            });
        }
        let mut backbone = backbone_config(root, &transformer_dir.join("config.json"))?;
        // sentence-transformers' feature-extraction Transformer loads `AutoModel`: the encoder
        // without any head, whatever class the checkpoint was saved from.
        backbone.mlm_head = false;
        let (max_seq_length, do_lower_case) =
            transformer_settings(root, &transformer_dir, &backbone)?;
        let pooling =
            SentencePooling::read(root, &pooling_dir.join("config.json"), backbone.hidden_size)?;
        let sae_config_path = sae_dir.join("config.json");
        let sae = SparseAutoEncoderConfig::read(root, &sae_config_path)?;
        if sae.input_dim != pooling.output_dim() {
            return Err(config_err(
                &sae_config_path,
                "input_dim",
                format!(
                    "{} does not match the Pooling output's width {}",
                    sae.input_dim,
                    pooling.output_dim()
                ),
            ));
        }
        let mut folder = Self {
            root: root.to_path_buf(),
            transformer_dir,
            layout,
            backbone,
            max_seq_length,
            do_lower_case,
            pooling: PoolingConfig::default(),
            prompts: BTreeMap::new(),
            default_prompt_name: None,
            similarity: Similarity::Dot,
            router: None,
            csr: Some(CsrLayout {
                pooling_dir,
                pooling,
                sae_dir,
                sae,
            }),
            max_active_dims: None,
        };
        folder.read_model_settings()?;
        Ok(folder)
    }

    /// Prompts, default prompt and similarity from `config_sentence_transformers.json`.
    fn read_model_settings(&mut self) -> Result<()> {
        let path = self.root.join("config_sentence_transformers.json");
        let Some(json) = optional_json(&self.root, &path)? else {
            return Ok(());
        };
        if let Some(prompts) = json.get("prompts").and_then(Value::as_object) {
            for (name, prompt) in prompts {
                let text = prompt.as_str().ok_or_else(|| {
                    config_err(&path, &format!("prompts.{name}"), "expected a string")
                })?;
                self.prompts.insert(name.clone(), text.to_string());
            }
        }
        self.default_prompt_name = json
            .get("default_prompt_name")
            .and_then(Value::as_str)
            .map(str::to_string);
        match json.get("max_active_dims") {
            None | Some(Value::Null) => {}
            Some(v) => {
                let k = v.as_u64().filter(|&k| k >= 1).ok_or_else(|| {
                    config_err(&path, "max_active_dims", "expected a positive integer")
                })?;
                self.max_active_dims = Some(k as usize);
            }
        }
        if let Some(name) = json.get("similarity_fn_name").and_then(Value::as_str) {
            self.similarity = name.parse().map_err(|e: splade_sparse::SparseError| {
                config_err(&path, "similarity_fn_name", e)
            })?;
        }
        Ok(())
    }
}

/// A v6 `Transformer` module declares its task; SpladePooling needs MLM logits (`fill-mask`).
fn check_transformer_task(root: &Path, path: &Path) -> Result<()> {
    let task = optional_json(root, path)?.and_then(|j| {
        j.get("transformer_task")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    match task.as_deref() {
        None | Some("fill-mask") => Ok(()),
        Some(other) => Err(EncoderError::UnsupportedModule {
            module: format!("Transformer with transformer_task '{other}'"),
            path: path.to_path_buf(),
            supported: SUPPORTED_MODULES.to_string(),
        }),
    }
}

/// `max_seq_length` and `do_lower_case` of the transformer module, as sentence-transformers
/// derives them: `sentence_bert_config.json` when present; otherwise the smaller of the
/// model's `max_position_embeddings` and the tokenizer's `model_max_length`.
fn transformer_settings(
    root: &Path,
    dir: &Path,
    backbone: &BackboneConfig,
) -> Result<(usize, bool)> {
    let sbert_path = dir.join("sentence_bert_config.json");
    let sbert = optional_json(root, &sbert_path)?;
    let tokenizer_config = optional_json(root, &dir.join("tokenizer_config.json"))?;
    let do_lower_case = sbert
        .as_ref()
        .and_then(|j| j.get("do_lower_case"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let explicit = sbert
        .as_ref()
        .and_then(|j| j.get("max_seq_length"))
        .filter(|v| !v.is_null());
    let max_seq_length =
        match explicit {
            Some(v) => v.as_u64().filter(|&n| n >= 2).ok_or_else(|| {
                config_err(&sbert_path, "max_seq_length", "expected an integer >= 2")
            })? as usize,
            None => {
                let tokenizer_max = tokenizer_config
                    .as_ref()
                    .and_then(|j| j.get("model_max_length"))
                    .and_then(Value::as_f64)
                    .filter(|n| (2.0..1e12).contains(n))
                    .map(|n| n as usize);
                // As sentence-transformers: the smaller of the two (RoBERTa's raw table size
                // counts the rows before padding_idx + 1, so a tokenizer allowing more tokens
                // than the positions after them is an error below, not a silent cut).
                tokenizer_max.map_or(backbone.max_positions(), |t| {
                    t.min(backbone.max_position_embeddings)
                })
            }
        };
    if max_seq_length > backbone.max_positions() {
        return Err(config_err(
            &sbert_path,
            "max_seq_length",
            format!(
                "{max_seq_length} exceeds the {} positions of the model's \
                 max_position_embeddings {}{}",
                backbone.max_positions(),
                backbone.max_position_embeddings,
                if backbone.position_offset > 0 {
                    format!(" (positions start at {})", backbone.position_offset)
                } else {
                    String::new()
                }
            ),
        ));
    }
    Ok((max_seq_length, do_lower_case))
}

fn read_pooling(root: &Path, path: &Path, vocab_size: usize) -> Result<PoolingConfig> {
    let Some(json) = optional_json(root, path)? else {
        return Ok(PoolingConfig::default());
    };
    let strategy = match json.get("pooling_strategy").and_then(Value::as_str) {
        Some(s) => s
            .parse::<PoolingStrategy>()
            .map_err(|e| config_err(path, "pooling_strategy", e))?,
        None => PoolingStrategy::Max,
    };
    let activation = match json.get("activation_function").and_then(Value::as_str) {
        Some(s) => s
            .parse::<PoolingActivation>()
            .map_err(|e| config_err(path, "activation_function", e))?,
        None => PoolingActivation::Relu,
    };
    for key in ["word_embedding_dimension", "embedding_dimension"] {
        if let Some(dim) = json.get(key).and_then(Value::as_u64) {
            if dim as usize != vocab_size {
                return Err(config_err(
                    path,
                    key,
                    format!("{dim} does not match the model's vocabulary size {vocab_size}"),
                ));
            }
        }
    }
    Ok(PoolingConfig {
        strategy,
        activation,
    })
}

/// The transformer and pooling folders of a Router's SPLADE route (every SPLADE route must
/// run the same two modules), and the transformer's saved type.
fn splade_route(router: &RouterLayout) -> Result<(PathBuf, PathBuf, String)> {
    let mut found: Option<(&PathBuf, &PathBuf, &String, &str)> = None;
    for route in &router.routes {
        if let RouteKind::Splade {
            transformer_dir,
            pooling_dir,
            transformer_type,
        } = &route.kind
        {
            match found {
                None => found = Some((transformer_dir, pooling_dir, transformer_type, &route.name)),
                Some((t, p, _, first)) if (t, p) != (transformer_dir, pooling_dir) => {
                    return Err(EncoderError::UnsupportedModule {
                        module: format!(
                            "Router with two different SPLADE encoders (routes '{first}' and '{}')",
                            route.name
                        ),
                        path: router.config_path.clone(),
                        supported: "one Transformer + SpladePooling shared by every SPLADE route"
                            .to_string(),
                    })
                }
                Some(_) => {}
            }
        }
    }
    let (t, p, full, _) = found.ok_or_else(|| EncoderError::UnsupportedModule {
        module: "Router without a Transformer + SpladePooling route".to_string(),
        path: router.config_path.clone(),
        supported: crate::router::SUPPORTED_ROUTES.to_string(),
    })?;
    Ok((t.clone(), p.clone(), full.clone()))
}
