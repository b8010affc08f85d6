//! The pair-score losses of sentence-transformers: `SparseCosineSimilarityLoss`,
//! `SparseCoSENTLoss` and `SparseAnglELoss`. Each takes two `[batch, vocab]` embedding
//! columns and one gold score per pair.

use candle_core::{DType, Result, Tensor};

/// `torch.nn.functional.normalize(x, p=2, dim=1)`: rows divided by `max(‖row‖, 1e-12)`.
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(1)?
        .sqrt()?
        .clamp(1e-12, f64::INFINITY)?;
    x.broadcast_div(&norm)
}

/// `util.pairwise_cos_sim`: the cosine of each row pair, `[batch]`.
pub fn pairwise_cosine(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    (l2_normalize(a)? * l2_normalize(b)?)?.sum(1)
}

/// `util.pairwise_angle_sim`: `|cos(x, y) + sin(x, y)|` after L2 normalisation, where the sine
/// term pairs dimension `i` of the first half with dimension `i` of the second
/// (`Σ last_x·first_y − first_x·last_y`); an odd dimension is padded with one zero.
pub fn pairwise_angle(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (a, b) = if a.dim(1)? % 2 == 1 {
        (a.pad_with_zeros(1, 0, 1)?, b.pad_with_zeros(1, 0, 1)?)
    } else {
        (a.clone(), b.clone())
    };
    let (na, nb) = (l2_normalize(&a)?, l2_normalize(&b)?);
    let cos = (&na * &nb)?.sum(1)?;
    let half = na.dim(1)? / 2;
    let (first_a, last_a) = (na.narrow(1, 0, half)?, na.narrow(1, half, half)?);
    let (first_b, last_b) = (nb.narrow(1, 0, half)?, nb.narrow(1, half, half)?);
    let sin = ((last_a * first_b)? - (first_a * last_b)?)?.sum(1)?;
    (cos + sin)?.abs()
}

/// The labels as a `[batch]` f32 tensor without gradient; an error naming `loss` when their
/// count is not `batch`.
pub(crate) fn pair_labels(labels: &Tensor, batch: usize, loss: &str) -> Result<Tensor> {
    if labels.elem_count() != batch {
        candle_core::bail!(
            "{loss} expects {batch} labels (one per example), but got {} labels with shape {:?}",
            labels.elem_count(),
            labels.dims()
        );
    }
    labels.detach().to_dtype(DType::F32)?.reshape(batch)
}

fn two_columns<'a>(columns: &'a [Tensor], loss: &str) -> Result<(&'a Tensor, &'a Tensor)> {
    match columns {
        [a, b, ..] => Ok((a, b)),
        _ => candle_core::bail!("{loss} needs two text columns, got {}", columns.len()),
    }
}

/// `SparseCosineSimilarityLoss` (loss_fct `MSELoss`, identity transformation): the mean
/// squared error between the cosine of each pair (`torch.cosine_similarity`) and its label.
pub fn cosine_similarity_loss(columns: &[Tensor], labels: &Tensor) -> Result<Tensor> {
    let (a, b) = two_columns(columns, "SparseCosineSimilarityLoss")?;
    let labels = pair_labels(labels, a.dim(0)?, "SparseCosineSimilarityLoss")?;
    // torch.cosine_similarity: x·y / sqrt(max(‖x‖²·‖y‖², eps²)), eps = 1e-8.
    let dot = (a * b)?.sum(1)?;
    let w = (a.sqr()?.sum(1)? * b.sqr()?.sum(1)?)?;
    let cos = (dot / w.clamp(1e-16, f64::INFINITY)?.sqrt()?)?;
    (cos - labels)?.sqr()?.mean_all()
}

/// The CoSENT objective on pair scores already computed: with `s = scale · scores`,
/// `log(1 + Σ_{(i, j): label_i < label_j} exp(s_i − s_j))`, pairs of equal labels excluded.
pub fn cosent_from_scores(scores: &Tensor, labels: &Tensor, scale: f64) -> Result<Tensor> {
    let n = scores.dim(0)?;
    let labels = pair_labels(labels, n, "SparseCoSENTLoss")?;
    let s = (scores.to_dtype(DType::F32)? * scale)?;
    // diff[i, j] = s_i - s_j, kept where label_i < label_j.
    let diff = s.unsqueeze(1)?.broadcast_sub(&s.unsqueeze(0)?)?;
    let l: Vec<f32> = labels.to_vec1()?;
    let mask: Vec<f32> = (0..n * n)
        .map(|k| f32::from(u8::from(l[k / n] < l[k % n])))
        .collect();
    let mask = Tensor::from_vec(mask, (n, n), s.device())?;
    // Excluded entries become -1e12 (no gradient flows through them), as the reference's
    // original formulation; the log-sum-exp also holds the constant 0.
    let masked = ((diff * &mask)? + ((mask - 1.0)? * 1e12)?)?;
    let flat = Tensor::cat(
        &[
            Tensor::zeros(1, DType::F32, s.device())?,
            masked.flatten_all()?,
        ],
        0,
    )?;
    let max = flat.max(0)?.detach();
    let shifted = flat.broadcast_sub(&max)?.exp()?.sum(0)?.log()?;
    shifted + max
}

/// `SparseCoSENTLoss` (default `scale` 20, `pairwise_cos_sim`).
pub fn cosent_loss(columns: &[Tensor], labels: &Tensor, scale: f64) -> Result<Tensor> {
    let (a, b) = two_columns(columns, "SparseCoSENTLoss")?;
    cosent_from_scores(&pairwise_cosine(a, b)?, labels, scale)
}

/// `SparseAnglELoss`: CoSENT on [`pairwise_angle`] (default `scale` 20).
pub fn angle_loss(columns: &[Tensor], labels: &Tensor, scale: f64) -> Result<Tensor> {
    let (a, b) = two_columns(columns, "SparseAnglELoss")?;
    cosent_from_scores(&pairwise_angle(a, b)?, labels, scale)
}
