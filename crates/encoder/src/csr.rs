//! CSR models (Contrastive Sparse Representation, "Beyond Matryoshka", arXiv 2503.01776):
//! sentence-transformers' `Transformer` (feature-extraction) + `Pooling` + `SparseAutoEncoder`.
//!
//! A dense sentence embedding (the [`SentencePooling`] of the backbone's last hidden states) goes
//! through a top-k sparse autoencoder ([`SparseAutoEncoder`]): `latents = W·(x − pre_bias) +
//! latent_bias`, keep the `k` largest, `relu`. The output dimensions are latent ids, not
//! vocabulary tokens (see [`crate::SparseEncoder::decode`]).
//!
//! As the reference:
//! - `Pooling` modes `cls`, `max`, `mean`, `mean_sqrt_len_tokens`, `weightedmean`, `lasttoken`
//!   (several modes concatenate), `include_prompt: false` leaving the prompt's tokens (its
//!   tokenization without the trailing special token) out;
//! - `SparseAutoEncoder.normalize` standardises the input (mean, unbiased standard deviation +
//!   1e-5) first; at inference `k` is the encode call's `max_active_dims`, else the model's
//!   (`config_sentence_transformers.json`), else the module's `k`; a `k` above `hidden_dim` is an
//!   error (PyTorch's `topk` refuses it too); ties go to the smaller latent id.

use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor, D};
use serde_json::Value;
use splade_sparse::SparseVector;

use crate::error::{EncoderError, Result};
use crate::layout::optional_json;
use crate::model::check_safetensors_header;
use crate::paths::check_inside;

/// One of sentence-transformers' `Pooling` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolingMode {
    /// The first (non-prompt) token.
    Cls,
    /// Element-wise maximum over the tokens.
    Max,
    /// Mean over the tokens.
    Mean,
    /// Sum over the tokens divided by the square root of their number.
    MeanSqrtLen,
    /// Mean weighted by position (1, 2, …).
    WeightedMean,
    /// The last token.
    LastToken,
}

impl PoolingMode {
    /// The name sentence-transformers saves (`pooling_mode`).
    pub fn name(self) -> &'static str {
        match self {
            PoolingMode::Cls => "cls",
            PoolingMode::Max => "max",
            PoolingMode::Mean => "mean",
            PoolingMode::MeanSqrtLen => "mean_sqrt_len_tokens",
            PoolingMode::WeightedMean => "weightedmean",
            PoolingMode::LastToken => "lasttoken",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "cls" => PoolingMode::Cls,
            "max" => PoolingMode::Max,
            "mean" => PoolingMode::Mean,
            "mean_sqrt_len_tokens" => PoolingMode::MeanSqrtLen,
            "weightedmean" => PoolingMode::WeightedMean,
            "lasttoken" => PoolingMode::LastToken,
            _ => return None,
        })
    }
}

/// The legacy boolean keys of `Pooling`'s config and the mode each turns on.
const LEGACY_MODE_KEYS: [(&str, PoolingMode); 6] = [
    ("pooling_mode_cls_token", PoolingMode::Cls),
    ("pooling_mode_max_tokens", PoolingMode::Max),
    ("pooling_mode_mean_tokens", PoolingMode::Mean),
    (
        "pooling_mode_mean_sqrt_len_tokens",
        PoolingMode::MeanSqrtLen,
    ),
    (
        "pooling_mode_weightedmean_tokens",
        PoolingMode::WeightedMean,
    ),
    ("pooling_mode_lasttoken", PoolingMode::LastToken),
];

fn config_err(path: &Path, field: &str, message: impl ToString) -> EncoderError {
    EncoderError::Config {
        path: path.to_path_buf(),
        field: field.to_string(),
        message: message.to_string(),
    }
}

/// sentence-transformers' `Pooling` module: token embeddings to one sentence embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct SentencePooling {
    /// The modes, concatenated in this order.
    pub modes: Vec<PoolingMode>,
    /// Whether the prompt's tokens are pooled too.
    pub include_prompt: bool,
    /// The token embedding width.
    pub embedding_dimension: usize,
}

impl SentencePooling {
    /// Reads `config.json` of a `Pooling` folder (`pooling_mode` as a name or a list, or the
    /// legacy `pooling_mode_*` booleans); `hidden` is the backbone's width, which
    /// `embedding_dimension` (or the legacy `word_embedding_dimension`) must equal.
    pub fn read(root: &Path, path: &Path, hidden: usize) -> Result<Self> {
        let json = optional_json(root, path)?.unwrap_or(Value::Null);
        let mut modes = Vec::new();
        match json.get("pooling_mode") {
            None | Some(Value::Null) => {
                for (key, mode) in LEGACY_MODE_KEYS {
                    if json.get(key).and_then(Value::as_bool) == Some(true) {
                        modes.push(mode);
                    }
                }
                if modes.is_empty() {
                    modes.push(PoolingMode::Mean);
                }
            }
            Some(v) => {
                let names: Vec<&Value> = match v {
                    Value::Array(list) => list.iter().collect(),
                    other => vec![other],
                };
                for name in names {
                    let mode = name.as_str().and_then(PoolingMode::parse).ok_or_else(|| {
                        config_err(
                            path,
                            "pooling_mode",
                            format!(
                                "{name} is not one of cls, max, mean, mean_sqrt_len_tokens, \
                                 weightedmean, lasttoken"
                            ),
                        )
                    })?;
                    modes.push(mode);
                }
                if modes.is_empty() {
                    return Err(config_err(path, "pooling_mode", "empty list"));
                }
            }
        }
        for key in ["embedding_dimension", "word_embedding_dimension"] {
            if let Some(v) = json.get(key).filter(|v| !v.is_null()) {
                let dim = v
                    .as_u64()
                    .ok_or_else(|| config_err(path, key, "expected an integer"))?;
                if dim as usize != hidden {
                    return Err(config_err(
                        path,
                        key,
                        format!("{dim} does not match the transformer's hidden size {hidden}"),
                    ));
                }
            }
        }
        let include_prompt = match json.get("include_prompt") {
            None | Some(Value::Null) => true,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| config_err(path, "include_prompt", "expected true or false"))?,
        };
        Ok(Self {
            modes,
            include_prompt,
            embedding_dimension: hidden,
        })
    }

    /// The sentence embedding's width: the token width times the number of modes.
    pub fn output_dim(&self) -> usize {
        self.embedding_dimension * self.modes.len()
    }

    /// Pools packed token features `[n, hidden]` (text `t` holds rows `starts[t]..starts[t +
    /// 1]`) into `[texts, output_dim]`; the first `prompt_tokens[t]` tokens of text `t` are
    /// left out when the prompt is not included. Differentiable (a weight matrix times the
    /// features, and `max`).
    pub fn forward(
        &self,
        packed: &Tensor,
        starts: &[usize],
        prompt_tokens: &[usize],
    ) -> candle_core::Result<Tensor> {
        let texts = starts.len().saturating_sub(1);
        let n = packed.dim(0)?;
        let mut outputs = Vec::with_capacity(self.modes.len());
        for &mode in &self.modes {
            if mode == PoolingMode::Max {
                let mut rows = Vec::with_capacity(texts);
                for t in 0..texts {
                    let (first, len) = self.valid(starts, prompt_tokens, t);
                    rows.push(if first < len {
                        packed
                            .narrow(0, starts[t] + first, len - first)?
                            .max_keepdim(0)?
                    } else {
                        Tensor::full(f32::NEG_INFINITY, (1, packed.dim(1)?), packed.device())?
                            .to_dtype(packed.dtype())?
                    });
                }
                outputs.push(Tensor::cat(&rows, 0)?);
                continue;
            }
            let mut weights = vec![0f32; texts * n];
            for t in 0..texts {
                let (first, len) = self.valid(starts, prompt_tokens, t);
                let row = &mut weights[t * n + starts[t]..t * n + starts[t] + len];
                let count = (len - first) as f32;
                match mode {
                    PoolingMode::Cls => row[if first < len { first } else { 0 }] = 1.0,
                    PoolingMode::LastToken => {
                        if first < len {
                            row[len - 1] = 1.0;
                        }
                    }
                    PoolingMode::Mean | PoolingMode::MeanSqrtLen => {
                        let denominator = count.max(1e-9);
                        let w = if mode == PoolingMode::Mean {
                            1.0 / denominator
                        } else {
                            1.0 / denominator.sqrt()
                        };
                        row[first..len].fill(w);
                    }
                    PoolingMode::WeightedMean => {
                        let total: f32 = (first..len).map(|p| (p + 1) as f32).sum();
                        let denominator = total.max(1e-9);
                        for (p, w) in row.iter_mut().enumerate().take(len).skip(first) {
                            *w = (p + 1) as f32 / denominator;
                        }
                    }
                    PoolingMode::Max => unreachable!("handled above"),
                }
            }
            let w =
                Tensor::from_vec(weights, (texts, n), packed.device())?.to_dtype(packed.dtype())?;
            outputs.push(w.matmul(packed)?);
        }
        if outputs.len() == 1 {
            Ok(outputs.remove(0))
        } else {
            Tensor::cat(&outputs, D::Minus1)
        }
    }

    /// The first pooled position and the length of text `t`.
    fn valid(&self, starts: &[usize], prompt_tokens: &[usize], t: usize) -> (usize, usize) {
        let len = starts[t + 1] - starts[t];
        let skip = if self.include_prompt {
            0
        } else {
            prompt_tokens.get(t).copied().unwrap_or(0)
        };
        (skip.min(len), len)
    }
}

/// `SparseAutoEncoder`'s `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseAutoEncoderConfig {
    /// Width of the dense input.
    pub input_dim: usize,
    /// Number of latents: the output dimension.
    pub hidden_dim: usize,
    /// Latents kept per text.
    pub k: usize,
    /// Latents of the auxiliary (dead-latent) reconstruction in training (0: none).
    pub k_aux: usize,
    /// Whether the input is standardised first.
    pub normalize: bool,
    /// A latent not active for more than this many training forward passes counts as dead.
    pub dead_threshold: u64,
}

impl SparseAutoEncoderConfig {
    /// Reads the module's `config.json` (absent keys take sentence-transformers' defaults:
    /// hidden_dim 512, k 8, k_aux 512, normalize false, dead_threshold 30; `input_dim` is
    /// required).
    pub fn read(root: &Path, path: &Path) -> Result<Self> {
        let json = optional_json(root, path)?.ok_or_else(|| EncoderError::MissingFile {
            path: path.to_path_buf(),
            hint: " (the SparseAutoEncoder's config)".into(),
        })?;
        let int = |key: &str, default: Option<u64>| -> Result<u64> {
            match json.get(key) {
                None | Some(Value::Null) => default.ok_or_else(|| config_err(path, key, "missing")),
                Some(v) => v
                    .as_u64()
                    .ok_or_else(|| config_err(path, key, "expected a non-negative integer")),
            }
        };
        let config = Self {
            input_dim: int("input_dim", None)? as usize,
            hidden_dim: int("hidden_dim", Some(512))? as usize,
            k: int("k", Some(8))? as usize,
            k_aux: int("k_aux", Some(512))? as usize,
            normalize: match json.get("normalize") {
                None | Some(Value::Null) => false,
                Some(v) => v
                    .as_bool()
                    .ok_or_else(|| config_err(path, "normalize", "expected true or false"))?,
            },
            dead_threshold: int("dead_threshold", Some(30))?,
        };
        for (key, value) in [
            ("input_dim", config.input_dim),
            ("hidden_dim", config.hidden_dim),
            ("k", config.k),
        ] {
            if value == 0 {
                return Err(config_err(path, key, "must be at least 1"));
            }
        }
        if config.k > config.hidden_dim {
            return Err(config_err(
                path,
                "k",
                format!("{} exceeds hidden_dim {}", config.k, config.hidden_dim),
            ));
        }
        if config.k_aux > config.hidden_dim {
            return Err(config_err(
                path,
                "k_aux",
                format!("{} exceeds hidden_dim {}", config.k_aux, config.hidden_dim),
            ));
        }
        Ok(config)
    }
}

/// Names of the encoder matrix in a saved `SparseAutoEncoder` (the decoder is its transpose,
/// and safetensors keeps one name for the shared tensor: sentence-transformers 6.2 writes
/// `decoder.linear.weight`).
pub const ENCODER_WEIGHT_NAMES: [&str; 2] = ["encoder.weight", "decoder.linear.weight"];

/// A loaded `SparseAutoEncoder`: the top-k sparse autoencoder of a CSR model.
#[derive(Debug, Clone)]
pub struct SparseAutoEncoder {
    /// Its settings.
    pub config: SparseAutoEncoderConfig,
    /// `[input_dim]`, subtracted from the input (and added back by the decoder).
    pub pre_bias: Tensor,
    /// `[hidden_dim, input_dim]`: the encoder (the decoder is its transpose).
    pub weight: Tensor,
    /// `[hidden_dim]`.
    pub latent_bias: Tensor,
    /// Per latent, training forward passes since it was last active (`stats_last_nonzero`).
    pub stats_last_nonzero: Vec<i64>,
}

impl SparseAutoEncoder {
    /// Loads the module saved in `dir` inside the model folder `root`: `config.json` and
    /// `model.safetensors` (`pre_bias`, `latent_bias`, the encoder matrix under one of
    /// [`ENCODER_WEIGHT_NAMES`], optionally `stats_last_nonzero`; every value finite, nothing
    /// else). `input_dim` is the pooled embedding's width, which the config must match.
    pub fn load(root: &Path, dir: &Path, input_dim: usize, device: &Device) -> Result<Self> {
        let config_path = dir.join("config.json");
        let config = SparseAutoEncoderConfig::read(root, &config_path)?;
        if config.input_dim != input_dim {
            return Err(config_err(
                &config_path,
                "input_dim",
                format!(
                    "{} does not match the pooled embedding's width {input_dim}",
                    config.input_dim
                ),
            ));
        }
        let path = sae_weights_path(dir)?;
        check_inside(root, &path)?;
        check_safetensors_header(&path)?;
        let wrap = |e: candle_core::Error| EncoderError::Weights {
            path: path.clone(),
            message: e.to_string(),
        };
        // SAFETY: mapped read-only; the header was validated above and candle checks bounds.
        let st = unsafe { MmapedSafetensors::new(&path) }.map_err(wrap)?;
        let mut tensors = std::collections::BTreeMap::new();
        for (name, _) in st.tensors() {
            tensors.insert(name.clone(), st.load(&name, &Device::Cpu).map_err(wrap)?);
        }
        Self::from_tensors(config, tensors, &path, device)
    }

    /// Builds the module from its named tensors (as saved), checking shapes and finiteness.
    pub fn from_tensors(
        config: SparseAutoEncoderConfig,
        mut tensors: std::collections::BTreeMap<String, Tensor>,
        path: &Path,
        device: &Device,
    ) -> Result<Self> {
        let bad = |message: String| EncoderError::Weights {
            path: path.to_path_buf(),
            message,
        };
        let wrap = |e: candle_core::Error| bad(e.to_string());
        let take = |tensors: &mut std::collections::BTreeMap<String, Tensor>,
                    names: &[&str],
                    shape: &[usize]|
         -> Result<Tensor> {
            let (name, tensor) = names
                .iter()
                .find_map(|n| tensors.remove(*n).map(|t| (*n, t)))
                .ok_or_else(|| bad(format!("missing tensor {}", names.join(" or "))))?;
            if tensor.dims() != shape {
                return Err(bad(format!(
                    "tensor {name} has shape {:?}, expected {shape:?}",
                    tensor.dims()
                )));
            }
            let tensor = tensor.to_dtype(DType::F32).map_err(wrap)?;
            let values: Vec<f32> = tensor
                .flatten_all()
                .and_then(|t| t.to_vec1())
                .map_err(wrap)?;
            if !crate::model::all_finite(&values) {
                return Err(EncoderError::NonFiniteWeights {
                    path: path.to_path_buf(),
                    tensor: name.to_string(),
                });
            }
            tensor.to_device(device).map_err(wrap)
        };
        let (h, i) = (config.hidden_dim, config.input_dim);
        let weight = take(&mut tensors, &ENCODER_WEIGHT_NAMES, &[h, i])?;
        if let Some(other) = ENCODER_WEIGHT_NAMES
            .iter()
            .copied()
            .find(|n| tensors.contains_key(*n))
        {
            // Both names saved: they are one tied tensor and must agree.
            let other = take(&mut tensors, &[other], &[h, i])?;
            let diff = (&weight - &other)
                .and_then(|d| d.abs())
                .and_then(|d| d.max_all())
                .and_then(|d| d.to_scalar::<f32>())
                .map_err(wrap)?;
            if diff != 0.0 {
                return Err(bad(
                    "encoder.weight and decoder.linear.weight differ (they are one tied matrix)"
                        .into(),
                ));
            }
        }
        let pre_bias = take(&mut tensors, &["pre_bias"], &[i])?;
        let latent_bias = take(&mut tensors, &["latent_bias"], &[h])?;
        let stats_last_nonzero = match tensors.remove("stats_last_nonzero") {
            None => vec![0; h],
            Some(t) => {
                if t.dims() != [h] {
                    return Err(bad(format!(
                        "tensor stats_last_nonzero has shape {:?}, expected [{h}]",
                        t.dims()
                    )));
                }
                t.to_dtype(DType::I64)
                    .and_then(|t| t.to_vec1::<i64>())
                    .map_err(wrap)?
            }
        };
        if let Some(name) = tensors.keys().next() {
            return Err(EncoderError::UnusedWeights {
                path: path.to_path_buf(),
                count: tensors.len(),
                names: name.clone(),
            });
        }
        Ok(Self {
            config,
            pre_bias,
            weight,
            latent_bias,
            stats_last_nonzero,
        })
    }

    /// `prepare`: the input standardised (mean, unbiased std + 1e-5) when `normalize`, with
    /// the mean and std to undo it; the input itself otherwise.
    pub fn prepare(&self, x: &Tensor) -> candle_core::Result<(Tensor, Option<(Tensor, Tensor)>)> {
        if !self.config.normalize {
            return Ok((x.clone(), None));
        }
        let width = x.dim(D::Minus1)?;
        let mu = x.mean_keepdim(D::Minus1)?;
        let centered = x.broadcast_sub(&mu)?;
        let var = (centered.sqr()?.sum_keepdim(D::Minus1)? / (width.max(2) - 1) as f64)?;
        let std = var.sqrt()?;
        let out = centered.broadcast_div(&(&std + 1e-5)?)?;
        Ok((out, Some((mu, std))))
    }

    /// `encode_pre_act`: `(x − pre_bias)·Wᵀ + latent_bias`, `[batch, hidden_dim]`.
    pub fn pre_activations(&self, prepared: &Tensor) -> candle_core::Result<Tensor> {
        prepared
            .broadcast_sub(&self.pre_bias)?
            .matmul(&self.weight.t()?)?
            .broadcast_add(&self.latent_bias)
    }

    /// The sparse output of pre-activations `[batch, hidden_dim]`: per row the `k` largest
    /// (ties to the smaller latent id), through `relu` (zeros dropped). `k` above
    /// `hidden_dim` is an error; a non-finite pre-activation gives `Err(Some(row))`.
    pub fn top_k_sparse(
        &self,
        pre: &Tensor,
        k: usize,
    ) -> Result<std::result::Result<Vec<SparseVector>, usize>> {
        let h = self.config.hidden_dim;
        if k == 0 || k > h {
            return Err(EncoderError::InvalidArgument(format!(
                "max_active_dims {k} is out of range for this CSR model's {h} dimensions \
                 (SparseAutoEncoder hidden_dim)"
            )));
        }
        let host: Vec<Vec<f32>> = pre
            .to_device(&Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.to_vec2())?;
        let mut out = Vec::with_capacity(host.len());
        for (r, row) in host.iter().enumerate() {
            if !crate::model::all_finite(row) {
                return Ok(Err(r));
            }
            let top = top_k_indices(row, k);
            let mut pairs: Vec<(u32, f32)> = top
                .into_iter()
                .filter(|&i| row[i] > 0.0)
                .map(|i| (i as u32, row[i]))
                .collect();
            pairs.sort_unstable_by_key(|p| p.0);
            let (indices, values) = pairs.into_iter().unzip();
            out.push(SparseVector::new(indices, values).map_err(|e| {
                EncoderError::InvalidArgument(format!("sparse autoencoder output: {e}"))
            })?);
        }
        Ok(Ok(out))
    }
}

/// What `SparseAutoEncoder.forward` returns in training (sentence-transformers' feature names in
/// brackets), for one batch `[b, ·]`; every tensor is on the graph of the weights and input.
#[derive(Debug, Clone)]
pub struct SaeTrainingOutput {
    /// The pooled input `x` (`sentence_embedding_backbone`).
    pub backbone: Tensor,
    /// The top-`k` latents through relu, dense `[b, hidden_dim]` (`sentence_embedding`).
    pub latents_k: Tensor,
    /// `decode(latents_k)` (`decoded_embedding_k`).
    pub decoded_k: Tensor,
    /// `decode(latents_4k)` (`decoded_embedding_4k`).
    pub decoded_4k: Tensor,
    /// The dead latents' top-`k_aux` decoded, `None` when `k_aux` is 0
    /// (`decoded_embedding_aux`).
    pub decoded_aux: Option<Tensor>,
    /// `decoded_k` without the decoder bias (`decoded_embedding_k_pre_bias`).
    pub decoded_k_pre_bias: Tensor,
}

impl SparseAutoEncoder {
    /// The training forward pass of sentence-transformers' `SparseAutoEncoder` on a pooled
    /// batch `x` `[b, input_dim]`, updating the dead-latent statistics `stats` as it does: after
    /// the top-`k` selection each latent selected with a pre-activation above 1e-5 in any row
    /// resets to 0, then every latent counts one more pass; the auxiliary top-`k_aux` runs over
    /// the latents whose count then exceeds `dead_threshold` (the others as 0); the top-`4k`
    /// selection updates the statistics again. Selections are made on the host (ties to the
    /// smaller latent id) and applied as masks, so gradients flow as PyTorch's scatter of the
    /// `topk` values does.
    pub fn training_forward(&self, x: &Tensor, stats: &mut [i64]) -> Result<SaeTrainingOutput> {
        let c = &self.config;
        let h = c.hidden_dim;
        if 4 * c.k > h {
            return Err(EncoderError::InvalidArgument(format!(
                "training a CSR model needs 4·k = {} latents, but hidden_dim is {h} \
                 (sentence-transformers' top-4k reconstruction fails the same way)",
                4 * c.k
            )));
        }
        if stats.len() != h {
            return Err(EncoderError::InvalidArgument(format!(
                "{} dead-latent statistics for {h} latents",
                stats.len()
            )));
        }
        let (prepared, info) = self.prepare(x)?;
        let pre = self.pre_activations(&prepared)?;
        let host: Vec<Vec<f32>> = pre
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .to_vec2()?;
        if let Some(r) = host.iter().position(|row| !crate::model::all_finite(row)) {
            return Err(EncoderError::InvalidArgument(format!(
                "the autoencoder's pre-activations of text {r} {}",
                crate::error::NON_FINITE
            )));
        }
        let b = host.len();
        let device = pre.device();
        // A 0/1 mask of each row's top `k`, updating the statistics as `top_k` does.
        let select = |values: &[Vec<f32>], k: usize, stats: Option<&mut [i64]>| {
            let mut mask = vec![0f32; b * h];
            let mut fired = vec![false; h];
            for (r, row) in values.iter().enumerate() {
                for i in top_k_indices(row, k) {
                    mask[r * h + i] = 1.0;
                    fired[i] |= row[i] > 1e-5;
                }
            }
            if let Some(stats) = stats {
                for (s, f) in stats.iter_mut().zip(&fired) {
                    if *f {
                        *s = 0;
                    }
                    *s += 1;
                }
            }
            Tensor::from_vec(mask, (b, h), device)
        };
        let mask_k = select(&host, c.k, Some(stats))?;
        let latents_k = (&pre * &mask_k)?.relu()?;
        let aux = if c.k_aux > 0 {
            let dead: Vec<f32> = stats
                .iter()
                .map(|&s| {
                    if s > c.dead_threshold as i64 {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect();
            let masked: Vec<Vec<f32>> = host
                .iter()
                .map(|row| row.iter().zip(&dead).map(|(v, d)| v * d).collect())
                .collect();
            let mask_aux = select(&masked, c.k_aux, None)?;
            let dead = Tensor::from_vec(dead, h, device)?;
            Some((pre.broadcast_mul(&dead)? * mask_aux)?.relu()?)
        } else {
            None
        };
        let mask_4k = select(&host, 4 * c.k, Some(stats))?;
        let latents_4k = (&pre * &mask_4k)?.relu()?;
        let decoder = |latents: &Tensor| -> candle_core::Result<Tensor> {
            latents.matmul(&self.weight)?.broadcast_add(&self.pre_bias)
        };
        let decode = |latents: &Tensor| -> candle_core::Result<Tensor> {
            let out = decoder(latents)?;
            match &info {
                Some((mu, std)) => out.broadcast_mul(std)?.broadcast_add(mu),
                None => Ok(out),
            }
        };
        let decoded_k = decode(&latents_k)?;
        let decoded_4k = decode(&latents_4k)?;
        let mut decoded_aux = aux.as_ref().map(decoder).transpose()?;
        let decoder_bias = match &info {
            Some((_, std)) => {
                if let Some(a) = decoded_aux.take() {
                    decoded_aux = Some(a.broadcast_mul(std)?);
                }
                self.pre_bias.unsqueeze(0)?.broadcast_mul(std)?
            }
            None => self.pre_bias.unsqueeze(0)?,
        };
        let decoded_k_pre_bias = decoded_k.broadcast_sub(&decoder_bias)?;
        Ok(SaeTrainingOutput {
            backbone: x.clone(),
            latents_k,
            decoded_k,
            decoded_4k,
            decoded_aux,
            decoded_k_pre_bias,
        })
    }
}

/// The positions of the `k` largest values of `row` (ties: the smaller position first), in no
/// particular order. `k <= row.len()`; values are finite.
pub fn top_k_indices(row: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..row.len()).collect();
    let cmp = |a: &usize, b: &usize| row[*b].total_cmp(&row[*a]).then(a.cmp(b));
    if k < order.len() {
        order.select_nth_unstable_by(k, cmp);
        order.truncate(k);
    }
    order
}

/// The weights file of a `SparseAutoEncoder` folder.
fn sae_weights_path(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("model.safetensors");
    if path.is_file() {
        Ok(path)
    } else {
        Err(EncoderError::MissingFile {
            path,
            hint: " (the SparseAutoEncoder's weights; pytorch_model.bin is not read)".into(),
        })
    }
}

/// A CSR model's head over the backbone: pooling, then the sparse autoencoder.
#[derive(Debug, Clone)]
pub struct CsrHead {
    /// The `Pooling` module.
    pub pooling: SentencePooling,
    /// The `SparseAutoEncoder` module.
    pub sae: SparseAutoEncoder,
}

impl CsrHead {
    /// The output dimension (`hidden_dim`).
    pub fn dim(&self) -> usize {
        self.sae.config.hidden_dim
    }

    /// Sparse vectors of packed token features (see [`SentencePooling::forward`]) with `k`
    /// latents kept; `Err(text)` names a text whose pooled embedding or latents are not finite.
    pub fn encode(
        &self,
        packed: &Tensor,
        starts: &[usize],
        prompt_tokens: &[usize],
        k: usize,
    ) -> Result<std::result::Result<Vec<SparseVector>, usize>> {
        let pooled = self
            .pooling
            .forward(&packed.to_dtype(DType::F32)?, starts, prompt_tokens)?;
        let (prepared, _) = self.sae.prepare(&pooled)?;
        let pre = self.sae.pre_activations(&prepared)?;
        self.sae.top_k_sparse(&pre, k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_breaks_ties_to_the_smaller_position() {
        let row = [1.0, 3.0, 3.0, 2.0, 3.0];
        let mut top = top_k_indices(&row, 2);
        top.sort();
        assert_eq!(top, vec![1, 2]);
        let mut all = top_k_indices(&row, 5);
        all.sort();
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn pooling_modes_on_two_texts() -> candle_core::Result<()> {
        // Text 0: rows [1, 2], [3, 4], [5, 6]; text 1: row [7, 8].
        let packed =
            Tensor::from_vec(vec![1f32, 2., 3., 4., 5., 6., 7., 8.], (4, 2), &Device::Cpu)?;
        let starts = [0, 3, 4];
        let pool = |modes: Vec<PoolingMode>, include_prompt: bool, prompt: [usize; 2]| {
            SentencePooling {
                modes,
                include_prompt,
                embedding_dimension: 2,
            }
            .forward(&packed, &starts, &prompt)
            .and_then(|t| t.to_vec2::<f32>())
        };
        assert_eq!(
            pool(vec![PoolingMode::Mean], true, [0, 0])?,
            vec![vec![3., 4.], vec![7., 8.]]
        );
        assert_eq!(
            pool(vec![PoolingMode::Cls, PoolingMode::LastToken], true, [0, 0])?,
            vec![vec![1., 2., 5., 6.], vec![7., 8., 7., 8.]]
        );
        assert_eq!(
            pool(vec![PoolingMode::Max], true, [0, 0])?,
            vec![vec![5., 6.], vec![7., 8.]]
        );
        // Weights 1, 2, 3: (1 + 6 + 15) / 6, (2 + 8 + 18) / 6.
        let w = pool(vec![PoolingMode::WeightedMean], true, [0, 0])?;
        assert!((w[0][0] - 22.0 / 6.0).abs() < 1e-6 && (w[0][1] - 28.0 / 6.0).abs() < 1e-6);
        // Prompt of 2 tokens left out: text 0 pools its last row; text 1 has none left.
        assert_eq!(
            pool(vec![PoolingMode::Mean, PoolingMode::Cls], false, [2, 2])?,
            vec![vec![5., 6., 5., 6.], vec![0., 0., 7., 8.]]
        );
        Ok(())
    }
}
