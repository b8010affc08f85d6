//! SPLADE losses on candle's autograd, with sentence-transformers' definitions: the FLOPS
//! regulariser and the base losses SpladeLoss wraps ([`BaseLoss`]): MNRL and MarginMSE here,
//! the pair-score losses in [`pairs`], the triplet loss in [`triplet`], the distillation losses
//! in [`distill`].

use candle_core::{DType, Result, Tensor, D};

pub mod csr;
pub mod distill;
pub mod pairs;
pub mod triplet;

pub use csr::{csr_loss, CsrLossConfig, ReconstructionParts};
pub use distill::{distill_kl_div_loss, mse_loss};
pub use pairs::{
    angle_loss, cosent_from_scores, cosent_loss, cosine_similarity_loss, pairwise_angle,
    pairwise_cosine,
};
pub use triplet::{triplet_loss, TripletDistance};

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

/// The loss SpladeLoss wraps, with its settings (the reference's defaults from
/// [`BaseLoss::cosent`], [`BaseLoss::angle`], [`BaseLoss::triplet`],
/// [`BaseLoss::distill_kl_div`]).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum BaseLoss {
    /// `SparseMultipleNegativesRankingLoss` (the seed's): in-batch and hard negatives, no labels.
    #[default]
    MultipleNegativesRanking,
    /// `SparseMarginMSELoss`: distillation onto teacher margins given as labels.
    MarginMse,
    /// `SparseMSELoss`: distillation onto teacher embeddings given as labels (`[batch, vocab]`
    /// shared by every column, or `[batch, columns, vocab]`).
    Mse,
    /// `SparseCosineSimilarityLoss`: MSE between pair cosines and labels (one per pair).
    CosineSimilarity,
    /// `SparseCoSENTLoss` with its scale (20 in the reference).
    CoSent {
        /// Multiplier of the cosines.
        scale: f64,
    },
    /// `SparseAnglELoss` with its scale (20 in the reference).
    AnglE {
        /// Multiplier of the angle similarities.
        scale: f64,
    },
    /// `SparseTripletLoss` (Euclidean, margin 5 in the reference); no labels.
    Triplet {
        /// The distance.
        distance: TripletDistance,
        /// The margin.
        margin: f64,
    },
    /// `SparseDistillKLDivLoss` (temperature 2 in the reference): labels are the teacher's
    /// scores of each candidate column, `[batch, candidates]`.
    DistillKlDiv {
        /// Divides the student's scores (and its square multiplies the loss).
        student_temperature: f64,
        /// Divides the teacher's scores.
        teacher_temperature: f64,
    },
}

impl BaseLoss {
    /// `SparseCoSENTLoss(model)`: scale 20.
    pub const fn cosent() -> Self {
        BaseLoss::CoSent { scale: 20.0 }
    }

    /// `SparseAnglELoss(model)`: scale 20.
    pub const fn angle() -> Self {
        BaseLoss::AnglE { scale: 20.0 }
    }

    /// `SparseTripletLoss(model)`: Euclidean distance, margin 5.
    pub const fn triplet() -> Self {
        BaseLoss::Triplet {
            distance: TripletDistance::Euclidean,
            margin: 5.0,
        }
    }

    /// `SparseDistillKLDivLoss(model)`: temperature 2.
    pub const fn distill_kl_div() -> Self {
        BaseLoss::DistillKlDiv {
            student_temperature: 2.0,
            teacher_temperature: 2.0,
        }
    }

    /// The sentence-transformers class name.
    pub fn class_name(&self) -> &'static str {
        match self {
            BaseLoss::MultipleNegativesRanking => "SparseMultipleNegativesRankingLoss",
            BaseLoss::MarginMse => "SparseMarginMSELoss",
            BaseLoss::Mse => "SparseMSELoss",
            BaseLoss::CosineSimilarity => "SparseCosineSimilarityLoss",
            BaseLoss::CoSent { .. } => "SparseCoSENTLoss",
            BaseLoss::AnglE { .. } => "SparseAnglELoss",
            BaseLoss::Triplet { .. } => "SparseTripletLoss",
            BaseLoss::DistillKlDiv { .. } => "SparseDistillKLDivLoss",
        }
    }

    /// Whether the loss needs labels for every row.
    pub fn needs_labels(&self) -> bool {
        !matches!(
            self,
            BaseLoss::MultipleNegativesRanking | BaseLoss::Triplet { .. }
        )
    }
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

/// SpladeLoss with the configured base loss: `labels` are required by every base loss but
/// MNRL and the triplet loss (see [`BaseLoss`] for their shapes) and ignored by those two.
pub fn configured_splade_loss(
    columns: &[Tensor],
    labels: Option<&Tensor>,
    config: &SpladeLossConfig,
    lambdas: (f64, f64),
) -> Result<SpladeLossParts> {
    let base = base_loss(columns, labels, config)?;
    with_regularizers(base, columns, lambdas)
}

/// The configured base loss alone (no FLOPS regularisers): what SpladeLoss and CSRLoss wrap.
pub fn base_loss(
    columns: &[Tensor],
    labels: Option<&Tensor>,
    config: &SpladeLossConfig,
) -> Result<Tensor> {
    let needs = |labels: Option<&Tensor>| -> Result<Tensor> {
        match labels {
            Some(l) => Ok(l.clone()),
            None => candle_core::bail!("{} needs labels for every row", config.base.class_name()),
        }
    };
    Ok(match config.base {
        BaseLoss::MultipleNegativesRanking => {
            if columns.len() < 2 {
                candle_core::bail!(
                    "{} needs anchors and positives, got {} column(s)",
                    config.base.class_name(),
                    columns.len()
                );
            }
            multiple_negatives_ranking(&columns[0], &columns[1..], config.scale)?
        }
        BaseLoss::MarginMse => margin_mse(columns, &needs(labels)?)?,
        BaseLoss::Mse => {
            let labels = needs(labels)?;
            let teacher = match labels.rank() {
                2 => vec![labels],
                3 => (0..labels.dim(1)?)
                    .map(|i| labels.narrow(1, i, 1)?.squeeze(1))
                    .collect::<Result<Vec<_>>>()?,
                r => candle_core::bail!(
                    "SparseMSELoss expects labels of shape (batch_size, teacher_dim) or (batch_size, columns, teacher_dim), got {r} dimension(s)"
                ),
            };
            mse_loss(columns, &teacher)?
        }
        BaseLoss::CosineSimilarity => cosine_similarity_loss(columns, &needs(labels)?)?,
        BaseLoss::CoSent { scale } => cosent_loss(columns, &needs(labels)?, scale)?,
        BaseLoss::AnglE { scale } => angle_loss(columns, &needs(labels)?, scale)?,
        BaseLoss::Triplet { distance, margin } => triplet_loss(columns, distance, margin)?,
        BaseLoss::DistillKlDiv {
            student_temperature,
            teacher_temperature,
        } => distill_kl_div_loss(
            columns,
            &needs(labels)?,
            student_temperature,
            teacher_temperature,
        )?,
    })
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
    /// The sum of the parts, to backpropagate.
    pub total: Tensor,
    /// `CSRLoss`'s reconstruction terms (`None` for SpladeLoss); `base` is then the weighted
    /// base loss and the regularisers are 0.
    pub reconstruction: Option<ReconstructionParts>,
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
/// A single column (SparseMSELoss on sentences) has no query/document split: it is
/// regularised as documents only, as SpladeLoss(use_document_regularizer_only=True), the
/// only setting in which sentence-transformers accepts one column.
fn with_regularizers(
    base: Tensor,
    columns: &[Tensor],
    lambdas: (f64, f64),
) -> Result<SpladeLossParts> {
    let (lambda_query, lambda_document) = lambdas;
    if columns.len() == 1 {
        let document_regularizer = (flops(&columns[0])? * lambda_document)?;
        let query_regularizer = base.zeros_like()?;
        let total = (&base + &document_regularizer)?;
        return Ok(SpladeLossParts {
            base,
            query_regularizer,
            document_regularizer,
            total,
            reconstruction: None,
        });
    }
    let documents = Tensor::cat(&columns[1..], 0)?;
    let document_regularizer = (flops(&documents)? * lambda_document)?;
    let query_regularizer = (flops(&columns[0])? * lambda_query)?;
    let total = ((&base + &document_regularizer)? + &query_regularizer)?;
    Ok(SpladeLossParts {
        base,
        query_regularizer,
        document_regularizer,
        total,
        reconstruction: None,
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
