//! sentence-transformers' `SparseStaticEmbedding`: the query side of inference-free models.
//! A text's vector is the static weight (learned, or an IDF) of every distinct token the text
//! tokenizes into; no transformer runs, so encoding costs microseconds.
//!
//! As the reference: the module's own tokenizer (its folder's `tokenizer.json`), no special
//! tokens, truncation to the tokenizer's `model_max_length`, each token counted once, the
//! prompt prepended to the text; weights of 0 are not stored.

use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device};
use serde_json::Value;
use splade_sparse::SparseVector;

use crate::error::{EncoderError, Result};
use crate::layout::optional_json;
use crate::paths::check_inside;
use crate::tokenize::{tokenizer_source, TextTokenizer, Truncation};

/// Token limit when the tokenizer names none (transformers' "very large integer").
const UNLIMITED: usize = 1 << 30;

/// A loaded `SparseStaticEmbedding` module.
#[derive(Clone)]
pub struct StaticEmbedding {
    dir: PathBuf,
    tokenizer: TextTokenizer,
    weights: Vec<f32>,
    frozen: bool,
    max_length: usize,
}

impl std::fmt::Debug for StaticEmbedding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticEmbedding")
            .field("dir", &self.dir)
            .field("dim", &self.weights.len())
            .field("frozen", &self.frozen)
            .field("max_length", &self.max_length)
            .finish()
    }
}

fn weights_err(path: &Path, message: impl ToString) -> EncoderError {
    EncoderError::Weights {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

impl StaticEmbedding {
    /// Loads the module saved in `dir` (inside the model folder `root`): `config.json`
    /// (`frozen`), the tokenizer, and `model.safetensors` (tensor `weight`, one finite value
    /// per vocabulary entry). `dim`, when given, is the dimension the weights must have (the
    /// document route's vocabulary).
    pub fn load(root: &Path, dir: &Path, dim: Option<usize>) -> Result<Self> {
        let config_path = dir.join("config.json");
        let config = optional_json(root, &config_path)?.unwrap_or(Value::Null);
        let frozen = match config.get("frozen") {
            None | Some(Value::Null) => false,
            Some(v) => v.as_bool().ok_or_else(|| EncoderError::Config {
                path: config_path.clone(),
                field: "frozen".into(),
                message: "expected true or false".into(),
            })?,
        };
        if let Some(path) = config.get("path").and_then(Value::as_str) {
            return Err(EncoderError::Config {
                path: config_path,
                field: "path".into(),
                message: format!(
                    "weights from a JSON file ('{path}') are not read; save the model with \
                     sentence-transformers (model.save) to write them to model.safetensors"
                ),
            });
        }
        for name in ["tokenizer.json", "vocab.txt", "tokenizer_config.json"] {
            check_inside(root, &dir.join(name))?;
        }
        let tokenizer_config = optional_json(root, &dir.join("tokenizer_config.json"))?;
        let max_length = tokenizer_config
            .as_ref()
            .and_then(|j| j.get("model_max_length"))
            .and_then(Value::as_f64)
            .filter(|n| (1.0..UNLIMITED as f64).contains(n))
            .map_or(UNLIMITED, |n| n as usize);
        let tokenizer = TextTokenizer::load(dir, max_length, false)?;
        let path = dir.join("model.safetensors");
        if !path.exists() {
            return Err(EncoderError::MissingFile {
                path,
                hint: " (the SparseStaticEmbedding weights)".into(),
            });
        }
        check_inside(root, &path)?;
        crate::model::check_safetensors_header(&path)?;
        // SAFETY: the file is memory-mapped read-only for the duration of this call; the
        // weights are copied out before it returns.
        let tensors =
            unsafe { MmapedSafetensors::new(&path) }.map_err(|e| weights_err(&path, e))?;
        let weight = tensors
            .load("weight", &Device::Cpu)
            .map_err(|e| weights_err(&path, format!("tensor 'weight': {e}")))?;
        if weight.rank() != 1 {
            return Err(weights_err(
                &path,
                format!(
                    "tensor 'weight' has shape {:?}, expected [vocab]",
                    weight.dims()
                ),
            ));
        }
        let weights: Vec<f32> = weight
            .to_dtype(DType::F32)
            .and_then(|w| w.to_vec1())
            .map_err(|e| weights_err(&path, e))?;
        if let Some(i) = weights.iter().position(|w| !w.is_finite()) {
            return Err(weights_err(
                &path,
                format!("tensor 'weight' holds a non-finite value at token {i}"),
            ));
        }
        if let Some(dim) = dim.filter(|&d| d != weights.len()) {
            return Err(weights_err(
                &path,
                format!(
                    "tensor 'weight' has {} entries, the document route's vocabulary {dim}",
                    weights.len()
                ),
            ));
        }
        if let Some(max_id) = tokenizer
            .max_token_id()
            .filter(|&id| id as usize >= weights.len())
        {
            return Err(EncoderError::TokenizerVocabulary {
                tokenizer: tokenizer_source(dir),
                config: path,
                max_id,
                rows: weights.len(),
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            tokenizer,
            weights,
            frozen,
            max_length,
        })
    }

    /// The module's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// One weight per vocabulary entry.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// Replaces the weights (one per vocabulary entry) with trained values.
    pub(crate) fn set_weights(&mut self, weights: Vec<f32>) {
        debug_assert_eq!(weights.len(), self.weights.len());
        self.weights = weights;
    }

    /// Whether the weights are frozen (not trained).
    pub fn frozen(&self) -> bool {
        self.frozen
    }

    /// Tokens per text kept (the tokenizer's `model_max_length`; `1 << 30` when it has none).
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The vector dimension (the vocabulary size).
    pub fn dim(&self) -> usize {
        self.weights.len()
    }

    /// The module's tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The token ids of `text` (`index`: its position, for messages): no special tokens,
    /// truncated to [`Self::max_length`].
    pub fn tokenize(&self, text: &str, index: usize) -> Result<Vec<u32>> {
        self.tokenize_truncating(text, index, Truncation::Right)
    }

    /// [`Self::tokenize`] truncating as `truncation` says ([`Truncation::Refuse`]: more than
    /// [`Self::max_length`] tokens is an error).
    pub fn tokenize_truncating(
        &self,
        text: &str,
        index: usize,
        truncation: Truncation,
    ) -> Result<Vec<u32>> {
        self.tokenizer
            .encode_without_special_tokens(text, index, truncation)
    }

    /// The vector of a tokenized text: the weight of each distinct token, zeros left out.
    pub fn vector_of_ids(&self, ids: &[u32]) -> Result<SparseVector> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let (indices, values): (Vec<u32>, Vec<f32>) = ids
            .into_iter()
            .map(|id| (id, self.weights[id as usize]))
            .filter(|&(_, w)| w != 0.0)
            .unzip();
        Ok(SparseVector::new(indices, values)?)
    }

    /// Encodes texts with `prompt` prepended, keeping the `max_active_dims` largest weights
    /// (by absolute value, ties to the smaller token id) when set.
    pub fn encode(
        &self,
        texts: &[impl AsRef<str>],
        prompt: &str,
        max_active_dims: Option<usize>,
    ) -> Result<Vec<SparseVector>> {
        texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let ids = if prompt.is_empty() {
                    self.tokenize(text.as_ref(), i)?
                } else {
                    self.tokenize(&format!("{prompt}{}", text.as_ref()), i)?
                };
                let v = self.vector_of_ids(&ids)?;
                match max_active_dims {
                    Some(k) => top_k_abs(&v, k),
                    None => Ok(v),
                }
            })
            .collect()
    }
}

/// The `k` entries of largest absolute value (sentence-transformers' `select_max_active_dims`),
/// ties to the smaller index, in ascending index order.
pub fn top_k_abs(v: &SparseVector, k: usize) -> Result<SparseVector> {
    let view = v.view();
    if k >= view.nnz() {
        return Ok(v.clone());
    }
    let (indices, values) = (view.indices(), view.values());
    let mut order: Vec<usize> = (0..indices.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        values[b]
            .abs()
            .total_cmp(&values[a].abs())
            .then(indices[a].cmp(&indices[b]))
    });
    order.truncate(k);
    order.sort_unstable();
    Ok(SparseVector::new(
        order.iter().map(|&p| indices[p]).collect(),
        order.iter().map(|&p| values[p]).collect(),
    )?)
}
