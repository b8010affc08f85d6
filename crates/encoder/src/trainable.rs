//! [`TrainableEncoder`]: a [`SparseEncoder`] whose weights are trainable variables, with the
//! differentiable forward pass training needs (dropout, mixed precision, dense `[batch, vocab]`
//! weights whose graph reaches every parameter). Inference code never needs this type; the
//! training crate (`splade-train`) drives it.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};

use crate::encoder::{EncodeOptions, SparseEncoder};
use crate::error::{EncoderError, Result};
use crate::model::{Dropout, ForwardMode, MaskedLm};
use crate::pooling::{pool_dense, pool_max_differentiable_packed, PoolingStrategy};
use crate::tokenize::TokenizedText;

/// A SPLADE encoder loaded for training: every weight is a [`Var`], listed by checkpoint name.
/// It dereferences to the [`SparseEncoder`] it wraps, so the inference API (`encode`, the
/// evaluators) runs on the weights as they are being trained.
pub struct TrainableEncoder {
    encoder: SparseEncoder,
    vars: Vec<(String, Var)>,
    /// Precision of the differentiable forward pass's activations.
    activations: DType,
}

impl TrainableEncoder {
    /// Loads a local model folder for training: every weight becomes a trainable variable
    /// (see [`MaskedLm::load_trainable`]).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let (folder, tokenizer, weights) = SparseEncoder::read_parts(dir)?;
        if let Some(router) = &folder.router {
            return Err(EncoderError::UnsupportedModule {
                module: "Router (inference-free model) for training".to_string(),
                path: router.config_path.clone(),
                supported: "training a plain Transformer (fill-mask) + SpladePooling model"
                    .to_string(),
            });
        }
        let (model, vars) = MaskedLm::load_trainable(&weights, &folder.backbone, device)?;
        Ok(Self {
            encoder: SparseEncoder::from_parts(folder, tokenizer, model, device),
            vars,
            activations: DType::F32,
        })
    }

    /// The inference encoder over the trainable weights.
    pub fn encoder(&self) -> &SparseEncoder {
        &self.encoder
    }

    /// The trainable variables by checkpoint name (tied matrices appear once).
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// The dropout the model's `config.json` asks for during training, with masks drawn from a
    /// stream seeded with `seed` (pass it to [`Self::forward_dense_with_dropout`]).
    pub fn dropout(&self, seed: u64) -> Dropout {
        Dropout::from_config(&self.encoder.folder().backbone, seed)
    }

    /// Sets the precision of the differentiable forward pass's activations and matrix
    /// products: `F32` (the default) or `BF16` for mixed-precision training on a GPU. The
    /// weights stay f32 and receive f32 gradients; LayerNorm, softmax, the pooling activation
    /// and the loss run in f32. bf16 works on the CPU too, but candle widens it to f32 there,
    /// so it is only slower.
    pub fn set_precision(&mut self, activations: DType) -> Result<()> {
        if !matches!(activations, DType::F32 | DType::BF16) {
            return Err(EncoderError::InvalidArgument(format!(
                "training precision must be f32 or bf16, not {activations:?}"
            )));
        }
        self.activations = activations;
        Ok(())
    }

    /// The precision set by [`Self::set_precision`].
    pub fn precision(&self) -> DType {
        self.activations
    }

    /// The differentiable forward pass: `[batch, vocab]` dense SPLADE weights whose graph
    /// reaches every model parameter (for training), without dropout.
    pub fn forward_dense(
        &self,
        texts: &[impl AsRef<str>],
        options: &EncodeOptions,
    ) -> Result<Tensor> {
        self.forward_dense_with_dropout(texts, options, None)
    }

    /// [`Self::forward_dense`] with training-time dropout (see [`Self::dropout`]).
    pub fn forward_dense_with_dropout(
        &self,
        texts: &[impl AsRef<str>],
        options: &EncodeOptions,
        dropout: Option<&Dropout>,
    ) -> Result<Tensor> {
        let tokenized = self.encoder.tokenize(texts, options)?;
        let rows: Vec<&TokenizedText> = tokenized.iter().collect();
        let batch = self.encoder.token_batch(&rows)?;
        let (tokens, packing) = self.encoder.model().packed_features(
            &batch,
            ForwardMode::Differentiable,
            dropout,
            self.activations,
        )?;
        let pooling = self.encoder.pooling();
        // On the CPU in f32, max pooling uses the fused op (chunked forward, sparse backward).
        if pooling.strategy == PoolingStrategy::Max
            && self.encoder.device().is_cpu()
            && tokens.dtype() == DType::F32
        {
            return Ok(pool_max_differentiable_packed(
                &tokens,
                packing.starts(),
                self.encoder.model().head(),
                pooling.activation,
            )?);
        }
        Ok(pool_dense(
            &packing.pad(&tokens)?,
            &batch.attention_mask,
            self.encoder.model().head(),
            pooling,
        )?)
    }

    /// [`Self::forward_dense_with_dropout`] for several columns of texts at once (a training
    /// batch's anchors, positives and negatives): one forward pass over all of them, split
    /// back into one `[column length, vocab]` tensor per column. The texts do not interact
    /// (each attends only to itself), so the values are those of one pass per column; the
    /// packed batch makes the matrix products larger and the embedding and decoder gradients
    /// (vocabulary × hidden) are formed once instead of once per column.
    pub fn forward_dense_columns<S: AsRef<str>>(
        &self,
        columns: &[Vec<S>],
        options: &EncodeOptions,
        dropout: Option<&Dropout>,
    ) -> Result<Vec<Tensor>> {
        let texts: Vec<&str> = columns
            .iter()
            .flat_map(|c| c.iter().map(|t| t.as_ref()))
            .collect();
        let all = self.forward_dense_with_dropout(&texts, options, dropout)?;
        let mut start = 0;
        columns
            .iter()
            .map(|c| {
                let part = all.narrow(0, start, c.len())?;
                start += c.len();
                Ok(part)
            })
            .collect()
    }
}

impl std::ops::Deref for TrainableEncoder {
    type Target = SparseEncoder;

    fn deref(&self) -> &SparseEncoder {
        &self.encoder
    }
}
