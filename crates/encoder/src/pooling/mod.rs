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
//! - [`pool_dense`], the differentiable path on candle's autograd (training).

use std::fmt;
use std::str::FromStr;

use candle_core::{Device, Tensor, D};
use splade_sparse::SparseVector;

use crate::model::MlmHead;

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

/// Vocabulary columns projected at once by [`pool_sparse`].
const VOCAB_CHUNK: usize = 4096;
/// Token rows projected at once by [`pool_sparse`].
const TOKEN_CHUNK: usize = 1024;

/// The inference path: pooled sparse vectors for a padded batch of features.
///
/// `features` is `[batch, seq, hidden]`; `lengths[r]` is the number of real tokens of row `r`
/// (they come first). Returns one vector per row holding every strictly positive weight.
pub fn pool_sparse(
    features: &Tensor,
    lengths: &[usize],
    head: &MlmHead,
    config: PoolingConfig,
) -> candle_core::Result<Vec<SparseVector>> {
    let (b, t, h) = features.dims3()?;
    if lengths.len() != b || lengths.iter().any(|&l| l > t) {
        candle_core::bail!("pool_sparse: lengths {lengths:?} do not fit features [{b}, {t}, {h}]");
    }
    let vocab = head.weight.dim(0)?;
    // Gather the real tokens of every row into one [n, hidden] matrix.
    let mut rows = Vec::with_capacity(lengths.iter().sum());
    for (r, &len) in lengths.iter().enumerate() {
        rows.extend((0..len).map(|j| (r * t + j) as u32));
    }
    let index = Tensor::from_vec(rows, lengths.iter().sum::<usize>(), features.device())?;
    let tokens = features.reshape((b * t, h))?.index_select(&index, 0)?;
    let bias = head.bias.to_device(&Device::Cpu)?.to_vec1::<f32>()?;
    // Row r's tokens are tokens[starts[r]..starts[r + 1]].
    let mut starts = vec![0usize; b + 1];
    for r in 0..b {
        starts[r + 1] = starts[r] + lengths[r];
    }

    let init = match config.strategy {
        PoolingStrategy::Max => f32::NEG_INFINITY,
        PoolingStrategy::Sum => 0.0,
    };
    let mut acc = vec![init; b * vocab];
    let n = starts[b];
    let mut v0 = 0;
    while v0 < vocab {
        let c = VOCAB_CHUNK.min(vocab - v0);
        let w_t = head.weight.narrow(0, v0, c)?.t()?;
        let bias_chunk = &bias[v0..v0 + c];
        let mut t0 = 0;
        while t0 < n {
            let m = TOKEN_CHUNK.min(n - t0);
            let logits = tokens.narrow(0, t0, m)?.matmul(&w_t)?;
            let logits = logits.to_device(&Device::Cpu)?;
            let (storage, layout) = logits.storage_and_layout();
            let data = match &*storage {
                candle_core::Storage::Cpu(cpu) => cpu.as_slice::<f32>()?,
                _ => candle_core::bail!("logits were not moved to the CPU"),
            };
            let data = match layout.contiguous_offsets() {
                Some((start, end)) => &data[start..end],
                None => candle_core::bail!("logits block is not contiguous"),
            };
            // Fold each token row into the accumulator of the text it belongs to.
            for r in 0..b {
                let lo = starts[r].max(t0);
                let hi = starts[r + 1].min(t0 + m);
                let out = &mut acc[r * vocab + v0..r * vocab + v0 + c];
                for token in lo..hi {
                    let row = &data[(token - t0) * c..(token - t0 + 1) * c];
                    match config.strategy {
                        PoolingStrategy::Max => {
                            for (o, &x) in out.iter_mut().zip(row) {
                                *o = o.max(x);
                            }
                        }
                        PoolingStrategy::Sum => {
                            for ((o, &x), &bj) in out.iter_mut().zip(row).zip(bias_chunk) {
                                *o += config.activation.weight(x + bj);
                            }
                        }
                    }
                }
            }
            t0 += m;
        }
        v0 += c;
    }

    let mut result = Vec::with_capacity(b);
    for r in 0..b {
        let row = &acc[r * vocab..(r + 1) * vocab];
        let mut indices = Vec::new();
        let mut values = Vec::new();
        for (j, &x) in row.iter().enumerate() {
            let w = match config.strategy {
                PoolingStrategy::Max => config.activation.weight(x + bias[j]),
                PoolingStrategy::Sum => x,
            };
            if w > 0.0 {
                indices.push(j as u32);
                values.push(w);
            }
        }
        result.push(
            SparseVector::new(indices, values)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?,
        );
    }
    Ok(result)
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
    let logits = features
        .reshape((b * t, h))?
        .matmul(&head.weight.t()?)?
        .broadcast_add(&head.bias)?
        .reshape((b, t, ()))?;
    let weights = config.activation.weight_tensor(&logits)?;
    let mask = attention_mask
        .to_dtype(weights.dtype())?
        .unsqueeze(D::Minus1)?;
    let masked = weights.broadcast_mul(&mask)?;
    match config.strategy {
        PoolingStrategy::Max => masked.max(1),
        PoolingStrategy::Sum => masked.sum(1),
    }
}

/// Converts `[batch, vocab]` dense weights to sparse vectors keeping strictly positive entries.
pub fn dense_to_sparse(dense: &Tensor) -> candle_core::Result<Vec<SparseVector>> {
    dense
        .to_device(&Device::Cpu)?
        .to_vec2::<f32>()?
        .iter()
        .map(|row| {
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
