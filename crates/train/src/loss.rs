//! SPLADE losses on candle's autograd, with sentence-transformers' definitions.

use candle_core::{DType, Result, Tensor, D};

/// The FLOPS regulariser of a `[batch, vocab]` embedding matrix W: Σ_j (mean_i W_ij)², the
/// expected number of floating-point operations of a dot product, made differentiable
/// (sentence-transformers' `FlopsLoss`).
pub fn flops(embeddings: &Tensor) -> Result<Tensor> {
    embeddings.mean(0)?.sqr()?.sum_all()
}

/// `SparseMultipleNegativesRankingLoss` with dot-product similarity: for anchor i the
/// candidates are every positive and every hard negative in the batch (columns
/// `[positives; negatives_1; ...]`), the target is positive i, and the loss is the mean
/// cross-entropy of `scale · anchors · candidatesᵀ`.
pub fn multiple_negatives_ranking(
    anchors: &Tensor,
    candidates: &[Tensor],
    scale: f64,
) -> Result<Tensor> {
    let n = anchors.dim(0)?;
    let all = Tensor::cat(candidates, 0)?;
    let scores = (anchors.matmul(&all.t()?)? * scale)?;
    let log_probs = candle_nn::ops::log_softmax(&scores, D::Minus1)?;
    let targets = Tensor::arange(0u32, n as u32, anchors.device())?;
    let picked = log_probs.gather(&targets.unsqueeze(1)?, 1)?;
    picked.to_dtype(DType::F32)?.sum_all()? / -(n as f64)
}

/// SpladeLoss's weights: the regulariser weights λ_query and λ_document and the MNRL scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpladeLossConfig {
    /// Weight of FLOPS on anchor (query) embeddings; the seed uses 5e-5.
    pub lambda_query: f64,
    /// Weight of FLOPS on positive and negative (document) embeddings; the seed uses 3e-5.
    pub lambda_document: f64,
    /// Multiplier of the dot products inside MNRL; the seed uses 1.
    pub scale: f64,
}

impl Default for SpladeLossConfig {
    fn default() -> Self {
        Self {
            lambda_query: 5e-5,
            lambda_document: 3e-5,
            scale: 1.0,
        }
    }
}

/// The parts of one SpladeLoss evaluation (each a scalar tensor on the graph).
#[derive(Debug, Clone)]
pub struct SpladeLossParts {
    /// MNRL.
    pub base: Tensor,
    /// λ_query · FLOPS(anchors).
    pub query_regularizer: Tensor,
    /// λ_document · FLOPS(positives and negatives).
    pub document_regularizer: Tensor,
    /// The sum of the three, to backpropagate.
    pub total: Tensor,
}

/// `SpladeLoss(SparseMultipleNegativesRankingLoss)`: `columns[0]` are the anchors' embeddings,
/// `columns[1]` the positives', further columns hard negatives'; each `[batch, vocab]`.
/// `lambdas` override the configured weights (the warm-up schedule passes its current values).
pub fn splade_loss(
    columns: &[Tensor],
    config: &SpladeLossConfig,
    lambdas: (f64, f64),
) -> Result<SpladeLossParts> {
    if columns.len() < 2 {
        candle_core::bail!(
            "SpladeLoss needs anchors and positives, got {} column(s)",
            columns.len()
        );
    }
    let (lambda_query, lambda_document) = lambdas;
    let base = multiple_negatives_ranking(&columns[0], &columns[1..], config.scale)?;
    let documents = Tensor::cat(&columns[1..], 0)?;
    let document_regularizer = (flops(&documents)? * lambda_document)?;
    let query_regularizer = (flops(&columns[0])? * lambda_query)?;
    let total = ((&base + &document_regularizer)? + &query_regularizer)?;
    Ok(SpladeLossParts {
        base,
        query_regularizer,
        document_regularizer,
        total,
    })
}
