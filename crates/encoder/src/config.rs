//! The backbone's Hugging Face `config.json`: which architecture, and its sizes.

use std::path::Path;

use serde_json::Value;

use crate::error::{read_json, EncoderError, Result};

/// The masked-language-model architectures this crate implements.
pub const SUPPORTED_ARCHITECTURES: &str = "BertForMaskedLM, DistilBertForMaskedLM, \
     RobertaForMaskedLM, XLMRobertaForMaskedLM, ModernBertForMaskedLM; without the MLM head \
     (a CSR model's feature-extraction Transformer): BertModel, RobertaModel, XLMRobertaModel";

/// A supported backbone architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// `BertForMaskedLM` (BERT, and checkpoints that share its layout).
    Bert,
    /// `DistilBertForMaskedLM`.
    DistilBert,
    /// `RobertaForMaskedLM` (BERT layers; positions offset by the padding index, one token
    /// type, the `lm_head` MLM head).
    Roberta,
    /// `XLMRobertaForMaskedLM` (the RoBERTa model under another name).
    XlmRoberta,
    /// `ModernBertForMaskedLM` (rotary positions, alternating global and local attention,
    /// GeGLU feed-forward blocks, pre-normalisation).
    ModernBert,
}

impl Architecture {
    /// The transformers class name (`config.json`'s `architectures[0]`).
    pub fn class_name(self) -> &'static str {
        match self {
            Architecture::Bert => "BertForMaskedLM",
            Architecture::DistilBert => "DistilBertForMaskedLM",
            Architecture::Roberta => "RobertaForMaskedLM",
            Architecture::XlmRoberta => "XLMRobertaForMaskedLM",
            Architecture::ModernBert => "ModernBertForMaskedLM",
        }
    }

    /// Whether the model is RoBERTa or XLM-RoBERTa (same weights layout and forward pass).
    pub fn is_roberta(self) -> bool {
        matches!(self, Architecture::Roberta | Architecture::XlmRoberta)
    }
}

/// The ModernBERT options of `config.json` ([`BackboneConfig::modernbert`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ModernBertOptions {
    /// Per layer: whether it attends globally (`full_attention`) rather than over the local
    /// window (`sliding_attention`); from `layer_types`, else `global_attn_every_n_layers`.
    pub global_layers: Vec<bool>,
    /// Rotary base of the global layers (`rope_parameters.full_attention.rope_theta`, or the
    /// older `global_rope_theta`).
    pub global_rope_theta: f64,
    /// Rotary base of the local layers (`rope_parameters.sliding_attention.rope_theta`, or
    /// `local_rope_theta`).
    pub local_rope_theta: f64,
    /// Half the local window: a token attends to those at most this far (`local_attention / 2`).
    pub half_window: usize,
    /// Whether the LayerNorms have a bias (`norm_bias`).
    pub norm_bias: bool,
    /// Whether `Wqkv`/`Wo` of the attention have biases (`attention_bias`).
    pub attention_bias: bool,
    /// Whether `Wi`/`Wo` of the MLP have biases (`mlp_bias`).
    pub mlp_bias: bool,
    /// Whether the decoder has a bias (`decoder_bias`).
    pub decoder_bias: bool,
    /// Whether the head's dense layer has a bias (`classifier_bias`).
    pub classifier_bias: bool,
    /// The head's activation (`classifier_activation`).
    pub classifier_act: HiddenAct,
}

/// The activation inside the feed-forward blocks and the MLM head transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HiddenAct {
    /// Exact GELU with erf (`"gelu"` in Hugging Face configs).
    GeluErf,
    /// The tanh approximation (`"gelu_new"`, `"gelu_pytorch_tanh"`, `"gelu_fast"`).
    GeluTanh,
    /// ReLU.
    Relu,
}

/// Sizes and options of a BERT-family backbone, read from `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct BackboneConfig {
    /// Which architecture.
    pub architecture: Architecture,
    /// Vocabulary size (the sparse dimension).
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Number of transformer layers.
    pub num_layers: usize,
    /// Number of attention heads.
    pub num_heads: usize,
    /// Feed-forward inner size.
    pub intermediate_size: usize,
    /// Feed-forward and MLM-transform activation.
    pub hidden_act: HiddenAct,
    /// Number of position-embedding rows (RoBERTa: including the `padding_idx + 1` rows its
    /// positions skip; see [`Self::max_positions`]).
    pub max_position_embeddings: usize,
    /// The first position id (RoBERTa: `pad_token_id + 1`; 0 otherwise).
    pub position_offset: usize,
    /// Number of token types (0 for DistilBERT).
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Whether the MLM decoder shares the word-embedding matrix.
    pub tie_word_embeddings: bool,
    /// Training-time dropout on hidden states (`hidden_dropout_prob`, DistilBERT `dropout`).
    pub hidden_dropout: f64,
    /// Training-time dropout on attention probabilities (`attention_probs_dropout_prob`,
    /// DistilBERT `attention_dropout`).
    pub attention_dropout: f64,
    /// ModernBERT's options (`None` for the other architectures).
    pub modernbert: Option<ModernBertOptions>,
    /// Whether the checkpoint is a `*ForMaskedLM` with its vocabulary head (`false` for a bare
    /// `BertModel`-style encoder, whose per-token hidden states a CSR model pools). A CSR
    /// model's loader sets it to `false` whatever the class, as sentence-transformers'
    /// feature-extraction `Transformer` loads `AutoModel`.
    pub mlm_head: bool,
}

/// An optional probability field, Hugging Face's default 0.1 when absent.
fn probability(json: &Value, path: &Path, name: &str) -> Result<f64> {
    match json.get(name) {
        None | Some(Value::Null) => Ok(0.1),
        Some(v) => v
            .as_f64()
            .filter(|p| (0.0..1.0).contains(p))
            .ok_or_else(|| EncoderError::Config {
                path: path.to_path_buf(),
                field: name.to_string(),
                message: format!("expected a probability in [0, 1), got {v}"),
            }),
    }
}

fn field<'a>(json: &'a Value, path: &Path, name: &str) -> Result<&'a Value> {
    json.get(name).ok_or_else(|| EncoderError::Config {
        path: path.to_path_buf(),
        field: name.to_string(),
        message: "missing".to_string(),
    })
}

fn usize_field(json: &Value, path: &Path, name: &str) -> Result<usize> {
    field(json, path, name)?
        .as_u64()
        .map(|v| v as usize)
        .ok_or_else(|| EncoderError::Config {
            path: path.to_path_buf(),
            field: name.to_string(),
            message: "expected a non-negative integer".to_string(),
        })
}

/// An optional non-negative integer field (`default` when absent or null).
fn optional_usize(json: &Value, path: &Path, name: &str, default: usize) -> Result<usize> {
    match json.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| EncoderError::Config {
                path: path.to_path_buf(),
                field: name.to_string(),
                message: format!("expected a non-negative integer, got {v}"),
            }),
    }
}

/// LayerNorm's epsilon: a finite number > 0 (`default` when absent or null).
fn layer_norm_eps(json: &Value, path: &Path, name: &str, default: f64) -> Result<f64> {
    match json.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_f64()
            .filter(|e| e.is_finite() && *e > 0.0)
            .ok_or_else(|| EncoderError::Config {
                path: path.to_path_buf(),
                field: name.to_string(),
                message: format!(
                    "expected a finite number > 0, got {v} (it would change every LayerNorm)"
                ),
            }),
    }
}

fn parse_act(json: &Value, path: &Path, name: &str) -> Result<HiddenAct> {
    let raw = json.get(name).and_then(Value::as_str).unwrap_or("gelu");
    match raw {
        "gelu" => Ok(HiddenAct::GeluErf),
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(HiddenAct::GeluTanh),
        "relu" => Ok(HiddenAct::Relu),
        other => Err(EncoderError::Config {
            path: path.to_path_buf(),
            field: name.to_string(),
            message: format!("unsupported activation '{other}' (supported: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu)"),
        }),
    }
}

/// An optional boolean field (`default` when absent or null).
fn optional_bool(json: &Value, path: &Path, name: &str, default: bool) -> Result<bool> {
    match json.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_bool().ok_or_else(|| EncoderError::Config {
            path: path.to_path_buf(),
            field: name.to_string(),
            message: format!("expected true or false, got {v}"),
        }),
    }
}

/// A rotary base: `rope_parameters.<kind>` (type `default` only) when present, else the older
/// flat field `legacy`, else `default`.
fn rope_theta(json: &Value, path: &Path, kind: &str, legacy: &str, default: f64) -> Result<f64> {
    let bad = |field: String, message: String| EncoderError::Config {
        path: path.to_path_buf(),
        field,
        message,
    };
    let (field, value) = match json.get("rope_parameters").and_then(|r| r.get(kind)) {
        Some(params) if !params.is_null() => {
            let kind_field = format!("rope_parameters.{kind}.rope_type");
            match params.get("rope_type").and_then(Value::as_str) {
                None | Some("default") => {}
                Some(other) => {
                    return Err(bad(
                        kind_field,
                        format!("'{other}' is not supported (only 'default')"),
                    ))
                }
            }
            (
                format!("rope_parameters.{kind}.rope_theta"),
                params.get("rope_theta"),
            )
        }
        _ => (legacy.to_string(), json.get(legacy)),
    };
    match value {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_f64()
            .filter(|t| t.is_finite() && *t > 0.0)
            .ok_or_else(|| bad(field, format!("expected a number > 0, got {v}"))),
    }
}

/// Reads a `ModernBertForMaskedLM` config as transformers 5 interprets it.
fn modernbert_config(json: &Value, path: &Path, tie: bool) -> Result<BackboneConfig> {
    let bad = |field: &str, message: String| EncoderError::Config {
        path: path.to_path_buf(),
        field: field.to_string(),
        message,
    };
    let num_layers = usize_field(json, path, "num_hidden_layers")?;
    let global_layers = match json.get("layer_types") {
        None | Some(Value::Null) => {
            let every = optional_usize(json, path, "global_attn_every_n_layers", 3)?;
            if every == 0 {
                return Err(bad(
                    "global_attn_every_n_layers",
                    "must be at least 1".into(),
                ));
            }
            (0..num_layers).map(|i| i % every == 0).collect()
        }
        Some(v) => {
            let list = v.as_array().ok_or_else(|| {
                bad(
                    "layer_types",
                    format!("expected a list of layer types, got {v}"),
                )
            })?;
            if list.len() != num_layers {
                return Err(bad(
                    "layer_types",
                    format!("{} entries for {num_layers} layers", list.len()),
                ));
            }
            list.iter()
                .map(|t| match t.as_str() {
                    Some("full_attention") => Ok(true),
                    Some("sliding_attention") => Ok(false),
                    _ => Err(bad(
                        "layer_types",
                        format!("unsupported layer type {t} (full_attention, sliding_attention)"),
                    )),
                })
                .collect::<Result<Vec<bool>>>()?
        }
    };
    let local_attention = optional_usize(json, path, "local_attention", 128)?;
    let dropout = |name: &str| -> Result<f64> {
        match json.get(name) {
            None | Some(Value::Null) => Ok(0.0),
            Some(_) => probability(json, path, name),
        }
    };
    for name in ["embedding_dropout", "mlp_dropout"] {
        if dropout(name)? != 0.0 {
            return Err(bad(
                name,
                "ModernBERT dropout other than attention_dropout is not supported (must be 0)"
                    .into(),
            ));
        }
    }
    Ok(BackboneConfig {
        architecture: Architecture::ModernBert,
        vocab_size: usize_field(json, path, "vocab_size")?,
        hidden_size: usize_field(json, path, "hidden_size")?,
        num_layers,
        num_heads: usize_field(json, path, "num_attention_heads")?,
        intermediate_size: usize_field(json, path, "intermediate_size")?,
        hidden_act: parse_act(json, path, "hidden_activation")?,
        max_position_embeddings: optional_usize(json, path, "max_position_embeddings", 8192)?,
        position_offset: 0,
        type_vocab_size: 0,
        layer_norm_eps: layer_norm_eps(json, path, "norm_eps", 1e-5)?,
        tie_word_embeddings: tie,
        hidden_dropout: 0.0,
        attention_dropout: dropout("attention_dropout")?,
        mlm_head: true,
        modernbert: Some(ModernBertOptions {
            global_layers,
            global_rope_theta: rope_theta(
                json,
                path,
                "full_attention",
                "global_rope_theta",
                160_000.0,
            )?,
            local_rope_theta: rope_theta(
                json,
                path,
                "sliding_attention",
                "local_rope_theta",
                10_000.0,
            )?,
            half_window: local_attention / 2,
            norm_bias: optional_bool(json, path, "norm_bias", false)?,
            attention_bias: optional_bool(json, path, "attention_bias", false)?,
            mlp_bias: optional_bool(json, path, "mlp_bias", false)?,
            decoder_bias: optional_bool(json, path, "decoder_bias", true)?,
            classifier_bias: optional_bool(json, path, "classifier_bias", false)?,
            classifier_act: parse_act(json, path, "classifier_activation")?,
        }),
    })
}

impl BackboneConfig {
    /// The longest input the position embeddings allow: the rows after the first position id.
    pub fn max_positions(&self) -> usize {
        self.max_position_embeddings
            .saturating_sub(self.position_offset)
    }

    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let json = read_json(path)?;
        Self::from_json(&json, path)
    }

    /// Interprets an already-parsed `config.json`; `path` is used in error messages.
    pub fn from_json(json: &Value, path: &Path) -> Result<Self> {
        let architecture_name = json
            .get("architectures")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .map(str::to_string);
        let model_type = json.get("model_type").and_then(Value::as_str).unwrap_or("");
        let bare = matches!(
            architecture_name.as_deref(),
            Some("BertModel" | "RobertaModel" | "XLMRobertaModel")
        );
        let architecture = match (architecture_name.as_deref(), model_type) {
            (Some("BertForMaskedLM" | "BertModel"), _) => Architecture::Bert,
            (Some("RobertaModel"), _) => Architecture::Roberta,
            (Some("XLMRobertaModel"), _) => Architecture::XlmRoberta,
            (Some("DistilBertForMaskedLM"), _) => Architecture::DistilBert,
            (Some("RobertaForMaskedLM"), _) => Architecture::Roberta,
            (Some("XLMRobertaForMaskedLM"), _) => Architecture::XlmRoberta,
            (Some("ModernBertForMaskedLM"), _) => Architecture::ModernBert,
            (None, "bert") => Architecture::Bert,
            (None, "distilbert") => Architecture::DistilBert,
            (None, "roberta") => Architecture::Roberta,
            (None, "xlm-roberta") => Architecture::XlmRoberta,
            (None, "modernbert") => Architecture::ModernBert,
            (name, model_type) => {
                return Err(EncoderError::UnsupportedArchitecture {
                    architecture: name.map(str::to_string).unwrap_or_else(|| {
                        format!(
                            "model_type={}",
                            if model_type.is_empty() {
                                "<none>"
                            } else {
                                model_type
                            }
                        )
                    }),
                    path: path.to_path_buf(),
                    supported: SUPPORTED_ARCHITECTURES.to_string(),
                })
            }
        };
        let tie = json
            .get("tie_word_embeddings")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let mut config = match architecture {
            Architecture::Bert | Architecture::Roberta | Architecture::XlmRoberta => {
                if let Some(kind) = json.get("position_embedding_type").and_then(Value::as_str) {
                    if kind != "absolute" {
                        return Err(EncoderError::Config {
                            path: path.to_path_buf(),
                            field: "position_embedding_type".into(),
                            message: format!("'{kind}' is not supported (only 'absolute')"),
                        });
                    }
                }
                BackboneConfig {
                    architecture,
                    vocab_size: usize_field(json, path, "vocab_size")?,
                    hidden_size: usize_field(json, path, "hidden_size")?,
                    num_layers: usize_field(json, path, "num_hidden_layers")?,
                    num_heads: usize_field(json, path, "num_attention_heads")?,
                    intermediate_size: usize_field(json, path, "intermediate_size")?,
                    hidden_act: parse_act(json, path, "hidden_act")?,
                    max_position_embeddings: usize_field(json, path, "max_position_embeddings")?,
                    position_offset: if architecture.is_roberta() {
                        optional_usize(json, path, "pad_token_id", 1)? + 1
                    } else {
                        0
                    },
                    type_vocab_size: optional_usize(
                        json,
                        path,
                        "type_vocab_size",
                        if architecture.is_roberta() { 1 } else { 2 },
                    )?,
                    layer_norm_eps: layer_norm_eps(json, path, "layer_norm_eps", 1e-12)?,
                    tie_word_embeddings: tie,
                    hidden_dropout: probability(json, path, "hidden_dropout_prob")?,
                    attention_dropout: probability(json, path, "attention_probs_dropout_prob")?,
                    modernbert: None,
                    mlm_head: true,
                }
            }
            Architecture::DistilBert => BackboneConfig {
                architecture,
                vocab_size: usize_field(json, path, "vocab_size")?,
                hidden_size: usize_field(json, path, "dim")?,
                num_layers: usize_field(json, path, "n_layers")?,
                num_heads: usize_field(json, path, "n_heads")?,
                intermediate_size: usize_field(json, path, "hidden_dim")?,
                hidden_act: parse_act(json, path, "activation")?,
                max_position_embeddings: usize_field(json, path, "max_position_embeddings")?,
                position_offset: 0,
                type_vocab_size: 0,
                layer_norm_eps: 1e-12,
                tie_word_embeddings: json
                    .get("tie_weights_")
                    .and_then(Value::as_bool)
                    .unwrap_or(tie),
                hidden_dropout: probability(json, path, "dropout")?,
                attention_dropout: probability(json, path, "attention_dropout")?,
                modernbert: None,
                mlm_head: true,
            },
            Architecture::ModernBert => modernbert_config(json, path, tie)?,
        };
        config.mlm_head = !bare;
        let (vocab, hidden, layers, inner) = match architecture {
            Architecture::Bert
            | Architecture::Roberta
            | Architecture::XlmRoberta
            | Architecture::ModernBert => (
                "vocab_size",
                "hidden_size",
                "num_hidden_layers",
                "intermediate_size",
            ),
            Architecture::DistilBert => ("vocab_size", "dim", "n_layers", "hidden_dim"),
        };
        for (field, value) in [
            (vocab, config.vocab_size),
            (hidden, config.hidden_size),
            (layers, config.num_layers),
            (inner, config.intermediate_size),
            ("max_position_embeddings", config.max_position_embeddings),
        ] {
            if value == 0 {
                return Err(EncoderError::Config {
                    path: path.to_path_buf(),
                    field: field.into(),
                    message: "must be at least 1".into(),
                });
            }
        }
        if config.max_position_embeddings <= config.position_offset {
            return Err(EncoderError::Config {
                path: path.to_path_buf(),
                field: "max_position_embeddings".into(),
                message: format!(
                    "{} leaves no position after the padding index (positions start at \
                     pad_token_id + 1 = {})",
                    config.max_position_embeddings, config.position_offset
                ),
            });
        }
        if config.num_heads == 0 || config.hidden_size % config.num_heads != 0 {
            return Err(EncoderError::Config {
                path: path.to_path_buf(),
                field: "num_attention_heads".into(),
                message: format!(
                    "hidden size {} is not divisible by {} heads",
                    config.hidden_size, config.num_heads
                ),
            });
        }
        Ok(config)
    }
}
