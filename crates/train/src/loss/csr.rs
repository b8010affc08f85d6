//! sentence-transformers' `CSRLoss` for CSR models (`Transformer` + `Pooling` +
//! `SparseAutoEncoder`): the reconstruction terms of `CSRReconstructionLoss` plus a base loss
//! (`SparseMultipleNegativesRankingLoss` by default) on the sparse latents, weighted by `gamma`.
//!
//! Per column, with x the pooled embedding: `L_k = mse(x, decode(top-k))`,
//! `L_4k = mse(x, decode(top-4k))`, `L_aux = nmse(decode_aux(top-k_aux of the dead latents),
//! x − (decode(top-k) − decoder bias).detach())`, where nmse divides by the target's batch
//! variance (1 when it is 0 or every row is the same); each is averaged over the columns, and
//! the parts are `L_k`, `L_4k / 8`, `beta · L_aux` and `gamma · base`.

use candle_core::{DType, Result, Tensor};
use splade_encoder::csr::SaeTrainingOutput;

use super::{base_loss, SpladeLossConfig, SpladeLossParts};

/// `CSRLoss`'s settings, and the autoencoder's `k` / `k_aux` to train with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CsrLossConfig {
    /// Weight of the auxiliary (dead-latent) reconstruction (0.1 in the reference).
    pub beta: f64,
    /// Weight of the base loss (1 in the reference).
    pub gamma: f64,
    /// Overrides the model's `SparseAutoEncoder.k` (also its default `max_active_dims`).
    pub k: Option<usize>,
    /// Overrides the model's `SparseAutoEncoder.k_aux`.
    pub k_aux: Option<usize>,
}

impl Default for CsrLossConfig {
    fn default() -> Self {
        Self {
            beta: 0.1,
            gamma: 1.0,
            k: None,
            k_aux: None,
        }
    }
}

/// The reconstruction parts of a `CSRLoss` evaluation.
#[derive(Debug, Clone)]
pub struct ReconstructionParts {
    /// `reconstruction_loss_k`.
    pub k: Tensor,
    /// `reconstruction_loss_4k` (already divided by 8).
    pub four_k: Tensor,
    /// `reconstruction_loss_aux` (already multiplied by beta).
    pub aux: Tensor,
}

fn mse(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    (a - b)?.sqr()?.mean_all()
}

/// `normalized_mean_squared_error(reconstruction, original_input)` of the reference.
pub fn normalized_mse(reconstruction: &Tensor, original: &Tensor) -> Result<Tensor> {
    let mean = original.mean_keepdim(0)?;
    let normalization = mse(&mean.broadcast_as(original.shape())?, original)?;
    let host: Vec<Vec<f32>> = original.to_dtype(DType::F32)?.to_vec2()?;
    let all_equal_first = host.iter().all(|row| row == &host[0]);
    let loss = mse(reconstruction, original)?;
    if all_equal_first || normalization.to_scalar::<f32>()? == 0.0 {
        Ok(loss)
    } else {
        loss.div(&normalization)
    }
}

/// `CSRLoss` over the training outputs of each column (anchors, positives, negatives…):
/// `base` is the parts' base loss (its `base` and MNRL `scale`; FLOPS does not apply);
/// `labels` as [`super::configured_splade_loss`] takes them. In the returned parts, `base` is
/// `gamma · base`, the regularisers are 0, and `reconstruction` holds the three terms.
pub fn csr_loss(
    columns: &[SaeTrainingOutput],
    labels: Option<&Tensor>,
    base: &SpladeLossConfig,
    config: &CsrLossConfig,
) -> Result<SpladeLossParts> {
    if columns.is_empty() {
        candle_core::bail!("CSRLoss needs at least one column");
    }
    let n = columns.len() as f64;
    let (mut total_k, mut total_4k, mut total_aux) = (None, None, None);
    let add = |acc: &mut Option<Tensor>, t: Tensor| -> Result<()> {
        *acc = Some(match acc.take() {
            None => t,
            Some(a) => (a + t)?,
        });
        Ok(())
    };
    for c in columns {
        let x = &c.backbone;
        add(&mut total_k, mse(x, &c.decoded_k)?)?;
        add(&mut total_4k, mse(x, &c.decoded_4k)?)?;
        let aux = match &c.decoded_aux {
            Some(aux) => normalized_mse(aux, &(x - c.decoded_k_pre_bias.detach())?)?,
            None => Tensor::zeros((), DType::F32, x.device())?,
        };
        add(&mut total_aux, aux)?;
    }
    let take = |t: Option<Tensor>| t.ok_or_else(|| candle_core::Error::Msg("no column".into()));
    let k = (take(total_k)? / n)?;
    let four_k = ((take(total_4k)? / n)? / 8.0)?;
    let aux = ((take(total_aux)? / n)? * config.beta)?;
    let embeddings: Vec<Tensor> = columns.iter().map(|c| c.latents_k.clone()).collect();
    let base_part = (base_loss(&embeddings, labels, base)? * config.gamma)?;
    let zero = base_part.zeros_like()?;
    let total = (((&k + &four_k)? + &aux)? + &base_part)?;
    Ok(SpladeLossParts {
        base: base_part,
        query_regularizer: zero.clone(),
        document_regularizer: zero,
        total,
        reconstruction: Some(ReconstructionParts { k, four_k, aux }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn normalized_mse_divides_by_the_batch_variance_unless_it_is_zero() {
        let dev = Device::Cpu;
        let original = Tensor::new(&[[1f32, 2.0], [3.0, 6.0]], &dev).unwrap();
        let recon = Tensor::new(&[[1f32, 3.0], [3.0, 6.0]], &dev).unwrap();
        // mse 0.25; variance term: mean [2, 4], squared deviations 1, 4, 1, 4 -> 2.5.
        let v = normalized_mse(&recon, &original)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((v - 0.1).abs() < 1e-7, "{v}");
        let same = Tensor::new(&[[1f32, 2.0], [1.0, 2.0]], &dev).unwrap();
        let v = normalized_mse(&recon, &same)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((v - (0.0 + 1.0 + 4.0 + 16.0) / 4.0).abs() < 1e-6, "{v}");
    }
}
