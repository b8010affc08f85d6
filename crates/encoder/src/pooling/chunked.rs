//! The chunked vocabulary projection shared by inference and training: logits are computed
//! for real tokens only, a block of vocabulary columns and token rows at a time, and folded
//! into one accumulator per text, so `batch × tokens × vocab` never exists.

use candle_core::{Device, Tensor};
use splade_sparse::SparseVector;

use super::screened::{pool_max_screened, HeadScreen};
use super::{PoolingConfig, PoolingStrategy};
use crate::model::MlmHead;

/// Vocabulary columns projected at once.
const VOCAB_CHUNK: usize = 4096;
/// Token rows projected at once.
const TOKEN_CHUNK: usize = 1024;

/// The real tokens of a padded batch, gathered into one matrix.
pub(super) struct RealTokens<'a> {
    /// `[n, hidden]`: row `starts[r] + i` is token `i` of text `r` (a differentiable gather).
    pub tokens: Tensor,
    /// `starts[r]..starts[r + 1]` are text `r`'s rows; `starts.len() == batch + 1`.
    pub starts: std::borrow::Cow<'a, [usize]>,
}

impl<'a> RealTokens<'a> {
    /// Packed token rows `[n, hidden]` whose text `r` is rows `starts[r]..starts[r + 1]`.
    pub(super) fn packed(tokens: &Tensor, starts: &'a [usize]) -> candle_core::Result<Self> {
        let n = tokens.dim(0)?;
        if starts.first() != Some(&0)
            || starts.last() != Some(&n)
            || starts.windows(2).any(|w| w[0] > w[1])
        {
            candle_core::bail!("pooling: text offsets {starts:?} do not fit {n} token rows");
        }
        Ok(Self {
            tokens: tokens.clone(),
            starts: std::borrow::Cow::Borrowed(starts),
        })
    }

    /// Texts in the batch.
    pub(super) fn batch(&self) -> usize {
        self.starts.len() - 1
    }
}

/// Gathers the first `lengths[r]` tokens of every row of `features` `[batch, seq, hidden]`.
pub(super) fn real_tokens(
    features: &Tensor,
    lengths: &[usize],
) -> candle_core::Result<RealTokens<'static>> {
    let (b, t, h) = features.dims3()?;
    if lengths.len() != b || lengths.iter().any(|&l| l > t) {
        candle_core::bail!("pooling: lengths {lengths:?} do not fit features [{b}, {t}, {h}]");
    }
    let mut rows = Vec::with_capacity(lengths.iter().sum());
    let mut starts = vec![0usize; b + 1];
    for (r, &len) in lengths.iter().enumerate() {
        rows.extend((0..len).map(|j| (r * t + j) as u32));
        starts[r + 1] = starts[r] + len;
    }
    let n = rows.len();
    let index = Tensor::from_vec(rows, n, features.device())?;
    let tokens = features.reshape((b * t, h))?.index_select(&index, 0)?;
    Ok(RealTokens {
        tokens,
        starts: std::borrow::Cow::Owned(starts),
    })
}

/// What [`fold_logits`] accumulates per (text, vocabulary entry).
pub(super) struct Folded {
    /// `[batch * vocab]`: the max raw logit (bias not added) for max pooling, or the sum of
    /// activated weights for sum pooling.
    pub acc: Vec<f32>,
    /// For max pooling with argmax tracking: the token row (in `RealTokens::tokens`) holding
    /// each maximum (the first one on ties).
    pub argmax: Option<Vec<u32>>,
    /// The decoder bias on the CPU.
    pub bias: Vec<f32>,
    /// The first text (position in the batch) whose folded logits hold a NaN (kept by the fold:
    /// `f32::max` would silently drop it) or an infinity.
    pub non_finite: Option<usize>,
}

/// Projects `tokens` onto the vocabulary in chunks and folds each text's rows.
pub(super) fn fold_logits(
    real: &RealTokens,
    head: &MlmHead,
    config: PoolingConfig,
    track_argmax: bool,
) -> candle_core::Result<Folded> {
    let b = real.starts.len() - 1;
    let vocab = head.weight.dim(0)?;
    let bias = head.bias.to_device(&Device::Cpu)?.to_vec1::<f32>()?;
    let init = match config.strategy {
        PoolingStrategy::Max => f32::NEG_INFINITY,
        PoolingStrategy::Sum => 0.0,
    };
    let mut acc = vec![init; b * vocab];
    let mut argmax =
        (track_argmax && config.strategy == PoolingStrategy::Max).then(|| vec![0u32; b * vocab]);
    let tokens = real.tokens.detach();
    let weight = head.weight.detach();
    let n = real.starts[b];
    let mut v0 = 0;
    while v0 < vocab {
        let c = VOCAB_CHUNK.min(vocab - v0);
        let w_t = weight.narrow(0, v0, c)?.t()?;
        let bias_chunk = &bias[v0..v0 + c];
        let mut t0 = 0;
        while t0 < n {
            let m = TOKEN_CHUNK.min(n - t0);
            let logits = tokens
                .narrow(0, t0, m)?
                .matmul(&w_t)?
                .to_device(&Device::Cpu)?;
            let (storage, layout) = logits.storage_and_layout();
            let data = match &*storage {
                candle_core::Storage::Cpu(cpu) => cpu.as_slice::<f32>()?,
                _ => candle_core::bail!("logits were not moved to the CPU"),
            };
            let data = match layout.contiguous_offsets() {
                Some((start, end)) => &data[start..end],
                None => candle_core::bail!("logits block is not contiguous"),
            };
            for r in 0..b {
                let lo = real.starts[r].max(t0);
                let hi = real.starts[r + 1].min(t0 + m);
                let range = r * vocab + v0..r * vocab + v0 + c;
                for token in lo..hi {
                    let row = &data[(token - t0) * c..(token - t0 + 1) * c];
                    match (config.strategy, argmax.as_mut()) {
                        // A NaN logit sticks in the accumulator (`f32::max` would drop it), to be
                        // found once the fold is done.
                        (PoolingStrategy::Max, None) => {
                            for (o, &x) in acc[range.clone()].iter_mut().zip(row) {
                                *o = if x > *o || x.is_nan() { x } else { *o };
                            }
                        }
                        (PoolingStrategy::Max, Some(arg)) => {
                            let arg = &mut arg[range.clone()];
                            for ((o, a), &x) in
                                acc[range.clone()].iter_mut().zip(arg.iter_mut()).zip(row)
                            {
                                if x > *o || x.is_nan() {
                                    *o = x;
                                    *a = token as u32;
                                }
                            }
                        }
                        (PoolingStrategy::Sum, _) => {
                            for ((o, &x), &bj) in
                                acc[range.clone()].iter_mut().zip(row).zip(bias_chunk)
                            {
                                let v = x + bj;
                                // `weight` maps NaN to 0: keep it NaN instead.
                                *o += if v.is_nan() {
                                    v
                                } else {
                                    config.activation.weight(v)
                                };
                            }
                        }
                    }
                }
            }
            t0 += m;
        }
        v0 += c;
    }
    // Texts whose logits held a NaN (sticky in `acc`) or, for sum pooling, an infinity.
    // (A text without tokens keeps its initial values: it has no logits to check.)
    let non_finite = acc
        .chunks(vocab.max(1))
        .enumerate()
        .position(|(r, row)| real.starts[r] < real.starts[r + 1] && !crate::model::all_finite(row));
    Ok(Folded {
        acc,
        argmax,
        bias,
        non_finite,
    })
}

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
    pool_real_tokens(&real_tokens(features, lengths)?, head, config)
}

/// [`pool_sparse`] on packed features `[n, hidden]` (real tokens only, text after text) whose
/// text `r` is rows `starts[r]..starts[r + 1]`, as [`crate::model::MaskedLm::packed_features`]
/// returns them.
pub fn pool_sparse_packed(
    tokens: &Tensor,
    starts: &[usize],
    head: &MlmHead,
    config: PoolingConfig,
) -> candle_core::Result<Vec<SparseVector>> {
    pool_real_tokens(&RealTokens::packed(tokens, starts)?, head, config)
}

/// [`pool_sparse_packed`] through the screened projection of `screen` (max pooling on the
/// CPU; other cases, and features that could overflow, take the unscreened path). Same active
/// entries, values within float rounding of the unscreened path's.
pub fn pool_sparse_packed_screened(
    tokens: &Tensor,
    starts: &[usize],
    head: &MlmHead,
    screen: &HeadScreen,
    config: PoolingConfig,
) -> candle_core::Result<Vec<SparseVector>> {
    match pool_sparse_packed_checked(tokens, starts, head, Some(screen), config)? {
        Ok(vectors) => Ok(vectors),
        Err(text) => candle_core::bail!(
            "pooling: the vocabulary logits of text {text} of the batch {}",
            crate::NON_FINITE
        ),
    }
}

/// [`pool_sparse_packed`] (screened by `screen` when given and possible) that reports the
/// first text (position in the batch) whose logits or pooled weights are not finite as
/// `Ok(Err(text))`.
pub(crate) fn pool_sparse_packed_checked(
    tokens: &Tensor,
    starts: &[usize],
    head: &MlmHead,
    screen: Option<&HeadScreen>,
    config: PoolingConfig,
) -> candle_core::Result<Result<Vec<SparseVector>, usize>> {
    let real = RealTokens::packed(tokens, starts)?;
    if let Some(screen) = screen {
        if config.strategy == PoolingStrategy::Max
            && tokens.device().is_cpu()
            && tokens.dtype() == candle_core::DType::F32
        {
            if let Some(vectors) =
                pool_max_screened(tokens, starts, head, screen, config.activation)?
            {
                return Ok(Ok(vectors));
            }
        }
    }
    pool_real_tokens_checked(&real, head, config)
}

fn pool_real_tokens(
    real: &RealTokens,
    head: &MlmHead,
    config: PoolingConfig,
) -> candle_core::Result<Vec<SparseVector>> {
    match pool_real_tokens_checked(real, head, config)? {
        Ok(vectors) => Ok(vectors),
        Err(text) => candle_core::bail!(
            "pooling: the vocabulary logits of text {text} of the batch {}",
            crate::NON_FINITE
        ),
    }
}

fn pool_real_tokens_checked(
    real: &RealTokens,
    head: &MlmHead,
    config: PoolingConfig,
) -> candle_core::Result<Result<Vec<SparseVector>, usize>> {
    let folded = fold_logits(real, head, config, false)?;
    if let Some(text) = folded.non_finite {
        return Ok(Err(text));
    }
    let vocab = folded.bias.len();
    let mut result = Vec::with_capacity(real.batch());
    for r in 0..real.batch() {
        let row = &folded.acc[r * vocab..(r + 1) * vocab];
        let mut indices = Vec::new();
        let mut values = Vec::new();
        for (j, &x) in row.iter().enumerate() {
            let w = match config.strategy {
                PoolingStrategy::Max => config.activation.weight(x + folded.bias[j]),
                PoolingStrategy::Sum => x,
            };
            if w > 0.0 {
                indices.push(j as u32);
                values.push(w);
            }
        }
        // Pooled weights of finite logits are finite; checked all the same (`w > 0.0` above
        // would drop a NaN silently, but not an infinity).
        if !crate::model::all_finite(&values) {
            return Ok(Err(r));
        }
        result.push(
            SparseVector::new(indices, values)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?,
        );
    }
    Ok(Ok(result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Finite tokens and weights whose products overflow: the text is reported, never an
    /// empty or partial vector (max pooling alone would drop the NaN logits).
    #[test]
    fn overflowing_logits_name_their_text() {
        let dev = Device::Cpu;
        let head = MlmHead {
            weight: Tensor::new(&[[1e30f32, -1e30], [1.0, 2.0], [3e38, 3e38]], &dev).unwrap(),
            bias: Tensor::new(&[0f32, 0.0, 0.0], &dev).unwrap(),
        };
        let config = PoolingConfig::default();
        // Text 0: rows 0..2 (small values), text 1: rows 2..3 (huge values).
        let tokens = Tensor::new(&[[1e-3f32, 1e-3], [2e-3, 0.0], [1e30, 1e30]], &dev).unwrap();
        let checked = pool_sparse_packed_checked(&tokens, &[0, 2, 3], &head, None, config).unwrap();
        assert_eq!(checked.err(), Some(1));
        let sum = PoolingConfig {
            strategy: PoolingStrategy::Sum,
            ..config
        };
        let checked = pool_sparse_packed_checked(&tokens, &[0, 2, 3], &head, None, sum).unwrap();
        assert_eq!(checked.err(), Some(1));
        let err = pool_sparse_packed(&tokens, &[0, 2, 3], &head, config).unwrap_err();
        assert!(err.to_string().contains("NaN or infinite"), "{err}");
        // Without the huge text, everything is finite.
        let small = tokens.narrow(0, 0, 2).unwrap();
        let ok = pool_sparse_packed_checked(&small, &[0, 2], &head, None, config).unwrap();
        assert!(ok.is_ok());
        // An infinite pooled weight (finite logit + finite bias overflowing) is caught too.
        let head = MlmHead {
            weight: Tensor::new(&[[1.0f32, 0.0]], &dev).unwrap(),
            bias: Tensor::new(&[3.4e38f32], &dev).unwrap(),
        };
        let big = Tensor::new(&[[3.4e38f32, 0.0]], &dev).unwrap();
        let checked = pool_sparse_packed_checked(&big, &[0, 1], &head, None, config).unwrap();
        assert_eq!(checked.err(), Some(0));
    }
}
