//! One training step: encode each column differentiably, compute SpladeLoss, backpropagate,
//! update the weights with AdamW.

use crate::optim::{AdamW, AdamWConfig};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use splade_encoder::{EncodeOptions, Result, SparseEncoder};

use crate::loss::{configured_splade_loss, SpladeLossConfig, SpladeLossParts};

/// Loss values of one step, as plain numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLosses {
    /// Total loss.
    pub total: f32,
    /// MNRL part.
    pub base: f32,
    /// Weighted query FLOPS part.
    pub query_regularizer: f32,
    /// Weighted document FLOPS part.
    pub document_regularizer: f32,
}

impl StepLosses {
    fn from_parts(parts: &SpladeLossParts) -> Result<Self> {
        Ok(Self {
            total: parts.total.to_scalar()?,
            base: parts.base.to_scalar()?,
            query_regularizer: parts.query_regularizer.to_scalar()?,
            document_regularizer: parts.document_regularizer.to_scalar()?,
        })
    }
}

/// A trainable encoder with its optimiser.
pub struct TrainStep {
    encoder: SparseEncoder,
    vars: Vec<(String, Var)>,
    optimizer: AdamW,
    loss: SpladeLossConfig,
}

impl TrainStep {
    /// Wraps an encoder loaded with [`SparseEncoder::load_trainable`] and its variables.
    pub fn new(
        encoder: SparseEncoder,
        vars: Vec<(String, Var)>,
        adamw: AdamWConfig,
        loss: SpladeLossConfig,
    ) -> Result<Self> {
        let optimizer = AdamW::new(vars.iter().map(|(_, v)| v.clone()).collect(), adamw)?;
        Ok(Self {
            encoder,
            vars,
            optimizer,
            loss,
        })
    }

    /// The encoder being trained.
    pub fn encoder(&self) -> &SparseEncoder {
        &self.encoder
    }

    /// The trainable variables by checkpoint name.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// Sets the learning rate of the next steps.
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.optimizer.set_learning_rate(lr);
    }

    /// The loss of a batch: `columns[0]` anchors, `columns[1]` positives, then negatives;
    /// `labels` (`[batch]` or `[batch, k]`, for `SparseMarginMSELoss`) or `None`; `lambdas` are
    /// the current (λ_query, λ_document). No dropout: the forward pass is deterministic.
    pub fn loss(
        &self,
        columns: &[Vec<String>],
        labels: Option<&Tensor>,
        lambdas: (f64, f64),
    ) -> Result<SpladeLossParts> {
        let options = EncodeOptions::default();
        let embeddings = self
            .encoder
            .forward_dense_columns(columns, &options, None)?;
        Ok(configured_splade_loss(
            &embeddings,
            labels,
            &self.loss,
            lambdas,
        )?)
    }

    /// Loss and gradients of a batch, without updating the weights.
    pub fn gradients(
        &self,
        columns: &[Vec<String>],
        labels: Option<&Tensor>,
        lambdas: (f64, f64),
    ) -> Result<(StepLosses, GradStore)> {
        let parts = self.loss(columns, labels, lambdas)?;
        let grads = parts.total.backward()?;
        Ok((StepLosses::from_parts(&parts)?, grads))
    }

    /// One optimisation step on a batch; returns the loss before the update.
    pub fn step(
        &mut self,
        columns: &[Vec<String>],
        labels: Option<&Tensor>,
        lambdas: (f64, f64),
    ) -> Result<StepLosses> {
        let (losses, grads) = self.gradients(columns, labels, lambdas)?;
        self.optimizer.step(&grads)?;
        Ok(losses)
    }
}
