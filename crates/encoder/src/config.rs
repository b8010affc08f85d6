//! The backbone's Hugging Face `config.json`: which architecture, and its sizes.

use std::path::Path;

use serde_json::Value;

use crate::error::{read_json, EncoderError, Result};

/// The masked-language-model architectures this crate implements.
pub const SUPPORTED_ARCHITECTURES: &str = "BertForMaskedLM, DistilBertForMaskedLM";

/// A supported backbone architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// `BertForMaskedLM` (BERT, and checkpoints that share its layout).
    Bert,
    /// `DistilBertForMaskedLM`.
    DistilBert,
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
    /// Number of learned positions.
    pub max_position_embeddings: usize,
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

impl BackboneConfig {
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
        let architecture = match (architecture_name.as_deref(), model_type) {
            (Some("BertForMaskedLM"), _) => Architecture::Bert,
            (Some("DistilBertForMaskedLM"), _) => Architecture::DistilBert,
            (None, "bert") => Architecture::Bert,
            (None, "distilbert") => Architecture::DistilBert,
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
        let config = match architecture {
            Architecture::Bert => {
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
                    type_vocab_size: optional_usize(json, path, "type_vocab_size", 2)?,
                    layer_norm_eps: layer_norm_eps(json, path, "layer_norm_eps", 1e-12)?,
                    tie_word_embeddings: tie,
                    hidden_dropout: probability(json, path, "hidden_dropout_prob")?,
                    attention_dropout: probability(json, path, "attention_probs_dropout_prob")?,
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
                type_vocab_size: 0,
                layer_norm_eps: 1e-12,
                tie_word_embeddings: json
                    .get("tie_weights_")
                    .and_then(Value::as_bool)
                    .unwrap_or(tie),
                hidden_dropout: probability(json, path, "dropout")?,
                attention_dropout: probability(json, path, "attention_dropout")?,
            },
        };
        let (vocab, hidden, layers, inner) = match architecture {
            Architecture::Bert => (
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
