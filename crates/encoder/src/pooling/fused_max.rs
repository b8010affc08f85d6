//! The training path for max pooling: a fused op whose forward is the chunked projection (no
//! `batch × tokens × vocab` tensor) and whose backward is sparse.
//!
//! With max pooling, weight (r, j) depends only on the token t* that holds text r's largest
//! logit for entry j, and only when that logit is positive (the activation is flat below 0).
//! So the gradient reaches logit (t*, j) for the few hundred active entries per text, and
//! from there dX[t*] += d·W[j], dW[j] += d·X[t*], db[j] += d. Ties go to the first token (as
//! `torch.max` picks one index).

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use super::chunked::{fold_logits, real_tokens, RealTokens};
use super::{PoolingActivation, PoolingConfig, PoolingStrategy};
use crate::model::fused::with_data;
use crate::model::MlmHead;

/// The recorded forward pass of one fused max-pooling call.
struct FusedMaxPool {
    batch: usize,
    vocab: usize,
    activation: PoolingActivation,
    /// `[batch * vocab]` pooled weights (the op's output).
    out: Vec<f32>,
    /// `[batch * vocab]` the winning logit, bias included.
    logit: Vec<f32>,
    /// `[batch * vocab]` the winning token row.
    argmax: Vec<u32>,
}

impl PoolingActivation {
    /// d weight / d logit at a positive logit.
    fn derivative(self, x: f32) -> f32 {
        let inner = 1.0 / (1.0 + x);
        match self {
            PoolingActivation::Relu => inner,
            PoolingActivation::Log1pRelu => inner / (1.0 + x.ln_1p()),
        }
    }
}

impl CustomOp3 for FusedMaxPool {
    fn name(&self) -> &'static str {
        "splade-fused-max-pool"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        // The values were computed by the chunked kernel when the op was built.
        Ok((
            CpuStorage::F32(self.out.clone()),
            Shape::from((self.batch, self.vocab)),
        ))
    }

    fn bwd(
        &self,
        tokens: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, h) = tokens.dims2()?;
        let mut d_tokens = vec![0f32; n * h];
        let mut d_weight = vec![0f32; self.vocab * h];
        let mut d_bias = vec![0f32; self.vocab];
        with_data(grad_res, |grad| {
            with_data(tokens, |x| {
                with_data(weight, |w| {
                    for (i, (&g, &out)) in grad.iter().zip(&self.out).enumerate() {
                        if g == 0.0 || out <= 0.0 {
                            continue;
                        }
                        let j = i % self.vocab;
                        let t = self.argmax[i] as usize;
                        let d = g * self.activation.derivative(self.logit[i]);
                        d_bias[j] += d;
                        let (wj, xt) = (&w[j * h..(j + 1) * h], &x[t * h..(t + 1) * h]);
                        for (dx, &wv) in d_tokens[t * h..(t + 1) * h].iter_mut().zip(wj) {
                            *dx += d * wv;
                        }
                        for (dw, &xv) in d_weight[j * h..(j + 1) * h].iter_mut().zip(xt) {
                            *dw += d * xv;
                        }
                    }
                    Ok(())
                })
            })
        })?;
        let device = tokens.device();
        Ok((
            Some(Tensor::from_vec(d_tokens, (n, h), device)?),
            Some(Tensor::from_vec(d_weight, (self.vocab, h), device)?),
            Some(Tensor::from_vec(d_bias, self.vocab, bias.device())?),
        ))
    }
}

/// Differentiable max pooling `[batch, vocab]` for training, on the CPU: same values as
/// [`super::pool_dense`] with `max` (up to float rounding), gradients to the features, the
/// decoder matrix and its bias, in a fraction of the time and memory.
pub fn pool_max_differentiable(
    features: &Tensor,
    lengths: &[usize],
    head: &MlmHead,
    activation: PoolingActivation,
) -> candle_core::Result<Tensor> {
    fused_max_pool(real_tokens(features, lengths)?, head, activation)
}

/// [`pool_max_differentiable`] on packed features `[n, hidden]` (real tokens only, text after
/// text) whose text `r` is rows `starts[r]..starts[r + 1]`.
pub fn pool_max_differentiable_packed(
    tokens: &Tensor,
    starts: &[usize],
    head: &MlmHead,
    activation: PoolingActivation,
) -> candle_core::Result<Tensor> {
    fused_max_pool(RealTokens::packed(tokens, starts)?, head, activation)
}

fn fused_max_pool(
    real: RealTokens,
    head: &MlmHead,
    activation: PoolingActivation,
) -> candle_core::Result<Tensor> {
    let config = PoolingConfig {
        strategy: PoolingStrategy::Max,
        activation,
    };
    let folded = fold_logits(&real, head, config, true)?;
    if let Some(text) = folded.non_finite {
        candle_core::bail!(
            "pooling: the vocabulary logits of text {text} of the batch {}",
            crate::NON_FINITE
        );
    }
    let vocab = folded.bias.len();
    let batch = real.batch();
    let logit: Vec<f32> = folded
        .acc
        .iter()
        .enumerate()
        .map(|(i, &x)| x + folded.bias[i % vocab])
        .collect();
    let out: Vec<f32> = logit.iter().map(|&x| activation.weight(x)).collect();
    let op = FusedMaxPool {
        batch,
        vocab,
        activation,
        out,
        logit,
        argmax: folded.argmax.unwrap_or_default(),
    };
    real.tokens
        .contiguous()?
        .apply_op3(&head.weight, &head.bias, op)
}
