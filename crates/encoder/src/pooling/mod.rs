//! SpladePooling: turns MLM logits into one vocabulary-sized weight vector per text.
//!
//! weight_j = pool over real tokens t of act(logit_tj), where act is `log1p(relu(x))`
//! (`relu`) or `log1p(log1p(relu(x)))` (`log1p_relu`), and pool is `max` or `sum`, as
//! sentence-transformers' `SpladePooling` computes it (padding contributes nothing).
//!
//! Two implementations:
//! - [`pool_sparse`], the inference path: projects only real (unpadded) tokens onto the
//!   vocabulary, in vocabulary and token chunks, so the `batch × tokens × vocab` logits tensor
//!   never exists. For `max` pooling it takes the max of the raw logits and applies the
//!   activation once per vocabulary entry afterwards, which is exact because the activation is
//!   monotone and float rounding preserves order.
//!   With max pooling on the CPU, a [`HeadScreen`] makes it the *screened* projection
//!   (`screened.rs`): approximate int8 logits with a rigorous error bound, and the exact f32
//!   logit only for the (token, entry) pairs that can be positive and their text's maximum.
//! - [`pool_dense`], the differentiable path on candle's autograd (training).

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device, Tensor, D};
use splade_sparse::SparseVector;

use crate::model::MlmHead;

mod chunked;
mod fused_max;
mod screen_row;
mod screened;

pub(crate) use chunked::pool_sparse_packed_checked;
pub use chunked::{pool_sparse, pool_sparse_packed, pool_sparse_packed_screened};
pub use fused_max::{pool_max_differentiable, pool_max_differentiable_packed};
pub use screened::{HeadScreen, ScreenStats};

/// How token weights are combined over the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoolingStrategy {
    /// Maximum over tokens (SPLADE v2 and later).
    #[default]
    Max,
    /// Sum over tokens (the original SPLADE).
    Sum,
}

/// The activation applied to the logits before pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoolingActivation {
    /// `log1p(relu(x))`.
    #[default]
    Relu,
    /// `log1p(log1p(relu(x)))`.
    Log1pRelu,
}

/// SpladePooling's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolingConfig {
    /// Max or sum.
    pub strategy: PoolingStrategy,
    /// Relu or log1p_relu.
    pub activation: PoolingActivation,
}

impl PoolingStrategy {
    /// The name sentence-transformers writes in `pooling_strategy`.
    pub fn name(self) -> &'static str {
        match self {
            PoolingStrategy::Max => "max",
            PoolingStrategy::Sum => "sum",
        }
    }
}

impl PoolingActivation {
    /// The name sentence-transformers writes in `activation_function`.
    pub fn name(self) -> &'static str {
        match self {
            PoolingActivation::Relu => "relu",
            PoolingActivation::Log1pRelu => "log1p_relu",
        }
    }

    /// The full per-logit weight function.
    #[inline]
    pub fn weight(self, logit: f32) -> f32 {
        let r = logit.max(0.0).ln_1p();
        match self {
            PoolingActivation::Relu => r,
            PoolingActivation::Log1pRelu => r.ln_1p(),
        }
    }

    fn weight_tensor(self, logits: &Tensor) -> candle_core::Result<Tensor> {
        let r = (logits.relu()? + 1.0)?.log()?;
        match self {
            PoolingActivation::Relu => Ok(r),
            PoolingActivation::Log1pRelu => (r + 1.0)?.log(),
        }
    }
}

impl FromStr for PoolingStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "max" => Ok(Self::Max),
            "sum" => Ok(Self::Sum),
            other => Err(format!(
                "unsupported pooling_strategy '{other}' (supported: max, sum)"
            )),
        }
    }
}

impl FromStr for PoolingActivation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "relu" => Ok(Self::Relu),
            "log1p_relu" => Ok(Self::Log1pRelu),
            other => Err(format!(
                "unsupported activation_function '{other}' (supported: relu, log1p_relu)"
            )),
        }
    }
}

impl fmt::Display for PoolingConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SpladePooling({}, {})",
            self.strategy.name(),
            self.activation.name()
        )
    }
}

/// The differentiable path: `[batch, vocab]` pooled weights from `features` `[batch, seq, hidden]`
/// and the 0/1 `attention_mask` `[batch, seq]`, with every op recorded for backpropagation.
/// This materialises `[batch, seq, vocab]`, as the PyTorch reference does during training.
pub fn pool_dense(
    features: &Tensor,
    attention_mask: &Tensor,
    head: &MlmHead,
    config: PoolingConfig,
) -> candle_core::Result<Tensor> {
    let (b, t, h) = features.dims3()?;
    // The projection runs in the features' dtype (bf16 in mixed precision), the activation
    // and pooling in f32.
    let dtype = features.dtype();
    let cast = |w: &Tensor| -> candle_core::Result<Tensor> {
        if w.dtype() == dtype {
            Ok(w.clone())
        } else {
            w.to_dtype(dtype)
        }
    };
    let logits = features
        .reshape((b * t, h))?
        .matmul(&cast(&head.weight)?.t()?)?
        .broadcast_add(&cast(&head.bias)?)?
        .to_dtype(DType::F32)?
        .reshape((b, t, ()))?;
    let weights = config.activation.weight_tensor(&logits)?;
    let mask = attention_mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
    let masked = weights.broadcast_mul(&mask)?;
    match config.strategy {
        PoolingStrategy::Max => masked.max(1),
        PoolingStrategy::Sum => masked.sum(1),
    }
}

/// Converts `[batch, vocab]` dense weights to sparse vectors keeping strictly positive entries.
/// A NaN or an infinity is an error (it would be dropped, or kept, silently).
pub fn dense_to_sparse(dense: &Tensor) -> candle_core::Result<Vec<SparseVector>> {
    dense
        .to_device(&Device::Cpu)?
        .to_vec2::<f32>()?
        .iter()
        .enumerate()
        .map(|(r, row)| {
            if !crate::model::all_finite(row) {
                candle_core::bail!("dense weights of row {r} {}", crate::NON_FINITE);
            }
            let (indices, values): (Vec<u32>, Vec<f32>) = row
                .iter()
                .enumerate()
                .filter(|(_, &v)| v > 0.0)
                .map(|(j, &v)| (j as u32, v))
                .unzip();
            SparseVector::new(indices, values).map_err(|e| candle_core::Error::Msg(e.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_to_sparse_refuses_non_finite_weights() {
        let dev = Device::Cpu;
        let ok = Tensor::new(&[[0f32, 1.5, 0.0]], &dev).unwrap();
        assert_eq!(dense_to_sparse(&ok).unwrap()[0].nnz(), 1);
        for bad in [f32::NAN, f32::INFINITY] {
            let t = Tensor::new(&[[0f32, 1.0, 0.0], [0.5, bad, 0.0]], &dev).unwrap();
            let err = dense_to_sparse(&t).unwrap_err().to_string();
            assert!(err.contains("row 1") && err.contains("NaN"), "{err}");
        }
    }
}
