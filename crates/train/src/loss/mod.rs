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

/// `SparseMarginMSELoss` (distillation from a teacher's score margins): with dot-product
/// scores s(q, d), the student's margins s(q, pos) − s(q, neg_i) regress onto `labels` by mean
/// squared error. `columns` are `[queries, positives, negatives…]`; `labels` is `[batch]`
/// (one negative), `[batch, negatives]` (margins), or `[batch, negatives + 1]` (teacher scores
/// of the positive then each negative, turned into margins), as sentence-transformers accepts.
pub fn margin_mse(columns: &[Tensor], labels: &Tensor) -> Result<Tensor> {
    if columns.len() < 3 {
        candle_core::bail!(
            "SparseMarginMSELoss needs queries, positives and at least one negative column"
        );
    }
    let (queries, positives, negatives) = (&columns[0], &columns[1], &columns[2..]);
    let b = queries.dim(0)?;
    let n = negatives.len();
    let labels = labels.detach().to_dtype(DType::F32)?;
    let labels = match labels.dims() {
        [x] if *x == b => labels.reshape((b, 1))?,
        [x, y] if *x == b && *y == n + 1 => labels
            .narrow(1, 0, 1)?
            .broadcast_sub(&labels.narrow(1, 1, n)?)?,
        [x, y] if *x == b && *y == n => labels,
        other => {
            candle_core::bail!("labels of shape {other:?} do not fit {b} rows with {n} negative(s)")
        }
    };
    if labels.dims() != [b, n] {
        candle_core::bail!("labels do not fit {b} rows with {n} negative(s)");
    }
    let dot = |a: &Tensor, d: &Tensor| -> Result<Tensor> { (a * d)?.sum(1) };
    let positive = dot(queries, positives)?;
    let margins = negatives
        .iter()
        .map(|neg| positive.sub(&dot(queries, neg)?))
        .collect::<Result<Vec<_>>>()?;
    let margins = Tensor::stack(&margins, 1)?;
    (margins - labels)?.sqr()?.mean_all()
}

/// The loss SpladeLoss wraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BaseLoss {
    /// `SparseMultipleNegativesRankingLoss` (the seed's): in-batch and hard negatives, no labels.
    #[default]
    MultipleNegativesRanking,
    /// `SparseMarginMSELoss`: distillation onto teacher margins given as labels.
    MarginMse,
}

/// SpladeLoss's settings: the wrapped loss, the regulariser weights λ_query and λ_document and
/// the MNRL scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpladeLossConfig {
    /// Weight of FLOPS on anchor (query) embeddings; the seed uses 5e-5.
    pub lambda_query: f64,
    /// Weight of FLOPS on positive and negative (document) embeddings; the seed uses 3e-5.
    pub lambda_document: f64,
    /// Multiplier of the dot products inside MNRL; the seed uses 1.
    pub scale: f64,
    /// The wrapped loss (MNRL by default).
    pub base: BaseLoss,
}

impl Default for SpladeLossConfig {
    fn default() -> Self {
        Self {
            lambda_query: 5e-5,
            lambda_document: 3e-5,
            scale: 1.0,
            base: BaseLoss::MultipleNegativesRanking,
        }
    }
}

/// SpladeLoss with the configured base loss: `labels` (`[batch]` or `[batch, k]` teacher
/// margins or scores) are required by [`BaseLoss::MarginMse`] and ignored by MNRL.
pub fn configured_splade_loss(
    columns: &[Tensor],
    labels: Option<&Tensor>,
    config: &SpladeLossConfig,
    lambdas: (f64, f64),
) -> Result<SpladeLossParts> {
    match config.base {
        BaseLoss::MultipleNegativesRanking => splade_loss(columns, config, lambdas),
        BaseLoss::MarginMse => match labels {
            Some(labels) => splade_margin_mse_loss(columns, labels, lambdas),
            None => candle_core::bail!(
                "SparseMarginMSELoss needs labels (teacher margins or scores) for every row"
            ),
        },
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
    let base = multiple_negatives_ranking(&columns[0], &columns[1..], config.scale)?;
    with_regularizers(base, columns, lambdas)
}

/// `SpladeLoss(SparseMarginMSELoss)`: the distillation loss plus the same FLOPS regularisers.
pub fn splade_margin_mse_loss(
    columns: &[Tensor],
    labels: &Tensor,
    lambdas: (f64, f64),
) -> Result<SpladeLossParts> {
    let base = margin_mse(columns, labels)?;
    with_regularizers(base, columns, lambdas)
}

/// Adds λ_query · FLOPS(queries) and λ_document · FLOPS(every other column) to a base loss.
fn with_regularizers(
    base: Tensor,
    columns: &[Tensor],
    lambdas: (f64, f64),
) -> Result<SpladeLossParts> {
    let (lambda_query, lambda_document) = lambdas;
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn margin_mse_matches_a_hand_computation() {
        let dev = Device::Cpu;
        let q = Tensor::new(&[[1f32, 0.0, 2.0], [0.0, 1.0, 1.0]], &dev).unwrap();
        let p = Tensor::new(&[[1f32, 1.0, 1.0], [0.0, 2.0, 0.0]], &dev).unwrap();
        let n1 = Tensor::new(&[[0f32, 0.0, 1.0], [1.0, 0.0, 0.0]], &dev).unwrap();
        let n2 = Tensor::new(&[[2f32, 0.0, 0.0], [0.0, 0.0, 3.0]], &dev).unwrap();
        // s(q,p) = [3, 2]; s(q,n1) = [2, 0]; s(q,n2) = [2, 3]; margins [[1, 1], [2, -1]].
        let cols = [q.clone(), p.clone(), n1.clone(), n2.clone()];
        let margins = Tensor::new(&[[0.5f32, 1.0], [2.0, 1.0]], &dev).unwrap();
        let loss = margin_mse(&cols, &margins)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            (loss - (0.25 + 0.0 + 0.0 + 4.0) / 4.0).abs() < 1e-6,
            "{loss}"
        );
        // Teacher scores [pos, neg1, neg2] give the same margins.
        let scores = Tensor::new(&[[3.5f32, 3.0, 2.5], [4.0, 2.0, 3.0]], &dev).unwrap();
        let same = margin_mse(&cols, &scores)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((same - loss).abs() < 1e-6);
        // One negative with 1-D labels.
        let one = margin_mse(&cols[..3], &Tensor::new(&[1f32, 2.0], &dev).unwrap())
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((one - (0.0 + 0.0) / 2.0).abs() < 1e-6, "{one}");
        assert!(margin_mse(&cols, &Tensor::new(&[1f32, 2.0, 3.0], &dev).unwrap()).is_err());
        let parts = splade_margin_mse_loss(&cols, &margins, (0.1, 0.2)).unwrap();
        let expected_q = 0.1 * (0.25f32 + 0.25 + 2.25);
        assert!((parts.query_regularizer.to_scalar::<f32>().unwrap() - expected_q).abs() < 1e-6);
    }
}
