//! `ModernBertForMaskedLM`: token embeddings and a norm (no learned positions), pre-norm layers
//! with rotary attention (global on every `global_attn_every_n_layers`-th layer, a sliding
//! window of `local_attention / 2` tokens each side on the others, each kind with its own rotary
//! base) and a GeGLU feed-forward block, a final norm, then the MLM head (`head.dense`, its
//! activation, `head.norm`) and the decoder (tied to the token embeddings by default).
//!
//! As everywhere in this crate, every per-token layer runs on the real tokens only; attention
//! runs text by text grouped by length (no padding at all), so a text's vector does not depend
//! on the other texts of its batch.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;

use super::dropout::Dropout;
use super::fused;
use super::layers::{activate, as_dtype, embed, ForwardMode, LayerNorm, Linear};
use super::packing::Packing;
use super::{MlmHead, TokenBatch};
use crate::config::{BackboneConfig, HiddenAct, ModernBertOptions};

/// The cos and sin tables of one rotary base, `[max_positions, head_dim]`.
struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    /// The tables transformers' default RoPE computes: `inv_freq[i] = 1 / theta^(2i / d)` (f32),
    /// angles `position · inv_freq` (f32), the halves repeated (`cat(freqs, freqs)`).
    fn new(
        theta: f64,
        head_dim: usize,
        positions: usize,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| {
                let exponent = (2 * i) as f32 / head_dim as f32;
                1.0 / (theta as f32).powf(exponent)
            })
            .collect();
        let mut cos = Vec::with_capacity(positions * head_dim);
        let mut sin = Vec::with_capacity(positions * head_dim);
        for p in 0..positions {
            for _ in 0..2 {
                for f in &inv_freq {
                    let angle = p as f32 * f;
                    cos.push(angle.cos());
                    sin.push(angle.sin());
                }
            }
        }
        Ok(Self {
            cos: Tensor::from_vec(cos, (positions, head_dim), device)?,
            sin: Tensor::from_vec(sin, (positions, head_dim), device)?,
        })
    }

    /// Rotates `x` `[n, heads, head_dim]` by the angles of `positions` `[n]`.
    fn apply(&self, x: &Tensor, positions: &Tensor) -> candle_core::Result<Tensor> {
        let d = x.dim(D::Minus1)?;
        let cos = embed(&self.cos, positions)?.unsqueeze(1)?;
        let sin = embed(&self.sin, positions)?.unsqueeze(1)?;
        let x1 = x.narrow(D::Minus1, 0, d / 2)?;
        let x2 = x.narrow(D::Minus1, d / 2, d - d / 2)?;
        let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        x.broadcast_mul(&as_dtype(&cos, x.dtype())?)?
            .add(&rotated.broadcast_mul(&as_dtype(&sin, x.dtype())?)?)
    }
}

struct ModernBertLayer {
    attn_norm: Option<LayerNorm>,
    wqkv: Linear,
    wo: Linear,
    mlp_norm: LayerNorm,
    wi: Linear,
    mlp_wo: Linear,
    global: bool,
    num_heads: usize,
    head_dim: usize,
    intermediate: usize,
    act: HiddenAct,
}

impl ModernBertLayer {
    fn load(
        vb: VarBuilder,
        index: usize,
        c: &BackboneConfig,
        o: &ModernBertOptions,
    ) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        let norm =
            |name: &str| LayerNorm::load_with_bias(vb.pp(name), h, c.layer_norm_eps, o.norm_bias);
        Ok(Self {
            // The first layer's attention norm is an identity (the embeddings are normalised).
            attn_norm: if index == 0 {
                None
            } else {
                Some(norm("attn_norm")?)
            },
            wqkv: Linear::load_with_bias(vb.pp("attn").pp("Wqkv"), h, 3 * h, o.attention_bias)?,
            wo: Linear::load_with_bias(vb.pp("attn").pp("Wo"), h, h, o.attention_bias)?,
            mlp_norm: norm("mlp_norm")?,
            wi: Linear::load_with_bias(
                vb.pp("mlp").pp("Wi"),
                h,
                2 * c.intermediate_size,
                o.mlp_bias,
            )?,
            mlp_wo: Linear::load_with_bias(
                vb.pp("mlp").pp("Wo"),
                c.intermediate_size,
                h,
                o.mlp_bias,
            )?,
            global: o.global_layers.get(index).copied().unwrap_or(true),
            num_heads: c.num_heads,
            head_dim: h / c.num_heads,
            intermediate: c.intermediate_size,
            act: c.hidden_act,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        x: &Tensor,
        packing: &Packing,
        rotary: &Rotary,
        half_window: usize,
        mode: ForwardMode,
        drop: Option<&Dropout>,
    ) -> candle_core::Result<Tensor> {
        let normed = match &self.attn_norm {
            Some(norm) => norm.forward(x, mode)?,
            None => x.clone(),
        };
        let n = normed.dim(0)?;
        let qkv = self
            .wqkv
            .forward(&normed)?
            .reshape((n, 3, self.num_heads, self.head_dim))?;
        let positions = packing.positions();
        // The rotation runs in f32, as transformers does it.
        let rotate = |t: Tensor| -> candle_core::Result<Tensor> {
            let dtype = t.dtype();
            as_dtype(&rotary.apply(&as_dtype(&t, DType::F32)?, positions)?, dtype)
        };
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let q = (rotate(qkv.narrow(1, 0, 1)?.squeeze(1)?)? * scale)?;
        let k = rotate(qkv.narrow(1, 1, 1)?.squeeze(1)?)?;
        let v = qkv.narrow(1, 2, 1)?.squeeze(1)?;
        let window = if self.global { None } else { Some(half_window) };
        let attended = attend_by_length(&q, &k, &v, packing, window, mode, drop)?;
        // transformers drops the attention output with `attention_dropout` too (`out_drop`).
        let out = self.wo.forward(&attended)?;
        let out = match drop {
            Some(d) => d.attention(&out)?,
            None => out,
        };
        let x = (x + out)?;
        let inner = self.wi.forward(&self.mlp_norm.forward(&x, mode)?)?;
        let input = inner.narrow(D::Minus1, 0, self.intermediate)?;
        let gate = inner.narrow(D::Minus1, self.intermediate, self.intermediate)?;
        let glu = activate(&input, self.act)?.mul(&gate)?;
        x + self.mlp_wo.forward(&glu)?
    }
}

/// Queries per attention block: a longer text attends block by block, so the scores of one
/// block (`[texts, heads, block, keys]`) are all that exists at a time, and a local layer's
/// block only meets the keys of its window (ModernBERT takes up to 8,192 tokens).
const QUERY_BLOCK: usize = 256;

/// Self-attention of packed `q`, `k`, `v` `[n, heads, head_dim]` (`q` already scaled), text by
/// text, the texts of one length together; `half_window` (local layers) limits each token to
/// the keys at most that far. Returns `[n, heads · head_dim]` in packed order.
fn attend_by_length(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    packing: &Packing,
    half_window: Option<usize>,
    mode: ForwardMode,
    drop: Option<&Dropout>,
) -> candle_core::Result<Tensor> {
    let device = q.device();
    let (n, heads, head_dim) = q.dims3()?;
    let starts = packing.starts();
    let mut by_length: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for r in 0..packing.batch() {
        by_length
            .entry(starts[r + 1] - starts[r])
            .or_default()
            .push(r);
    }
    let single = by_length.len() == 1;
    let mut outputs = Vec::with_capacity(by_length.len());
    let mut order: Vec<u32> = Vec::with_capacity(n);
    for (len, texts) in by_length {
        let g = texts.len();
        let rows: Vec<u32> = texts
            .iter()
            .flat_map(|&r| (starts[r]..starts[r + 1]).map(|i| i as u32))
            .collect();
        let index = Tensor::from_vec(rows.clone(), rows.len(), device)?;
        let split = |y: &Tensor| -> candle_core::Result<Tensor> {
            let y = if single {
                y.clone()
            } else {
                y.contiguous()?.index_select(&index, 0)?
            };
            y.reshape((g, len, heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (qg, kg, vg) = (split(q)?, split(k)?, split(v)?);
        outputs.push(
            attend_group(&qg, &kg, &vg, half_window, mode, drop, QUERY_BLOCK)?
                .transpose(1, 2)?
                .reshape((g * len, heads * head_dim))?,
        );
        order.extend(rows);
    }
    if single {
        return outputs
            .pop()
            .ok_or_else(|| candle_core::Error::Msg("empty batch".into()));
    }
    let mut inverse = vec![0u32; n];
    for (position, &row) in order.iter().enumerate() {
        inverse[row as usize] = position as u32;
    }
    Tensor::cat(&outputs, 0)?.index_select(&Tensor::from_vec(inverse, n, device)?, 0)
}

/// Attention of texts of one length, `q`, `k`, `v` `[texts, heads, len, head_dim]`, by blocks
/// of `block` queries (each with the keys its window allows). Returns `[texts, heads, len,
/// head_dim]`.
fn attend_group(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    half_window: Option<usize>,
    mode: ForwardMode,
    drop: Option<&Dropout>,
    block: usize,
) -> candle_core::Result<Tensor> {
    let (g, _, len, _) = q.dims4()?;
    let device = q.device();
    let mut outputs = Vec::with_capacity(len.div_ceil(block.max(1)));
    let mut start = 0;
    while start < len {
        let b = block.max(1).min(len - start);
        let (key_start, key_end) = match half_window {
            Some(w) => (start.saturating_sub(w), (start + b + w).min(len)),
            None => (0, len),
        };
        let keys = key_end - key_start;
        let take = |t: &Tensor, from: usize, count: usize| -> candle_core::Result<Tensor> {
            if from == 0 && count == len {
                Ok(t.clone())
            } else {
                t.narrow(2, from, count)?.contiguous()
            }
        };
        let (qb, kb, vb) = (
            take(q, start, b)?,
            take(k, key_start, keys)?,
            take(v, key_start, keys)?,
        );
        let mut scores = as_dtype(&qb.matmul(&kb.t()?)?, DType::F32)?;
        if let Some(w) = half_window {
            // The farthest query-key pair of the block; no mask when it is inside the window.
            let farthest = (start + b - 1 - key_start).max(key_end - 1 - start);
            if farthest > w {
                scores = scores.broadcast_add(&band_mask(start, b, key_start, keys, w, device)?)?;
            }
        }
        let probs = match mode {
            ForwardMode::Inference if fused::supported(&scores) => {
                let zeros = Tensor::zeros((g, 1, 1, keys), DType::F32, device)?;
                fused::masked_softmax(&scores, &zeros)?
            }
            ForwardMode::Inference => candle_nn::ops::softmax_last_dim(&scores)?,
            ForwardMode::Differentiable => candle_nn::ops::softmax(&scores, D::Minus1)?,
        };
        let probs = match drop {
            Some(d) => d.attention(&probs)?,
            None => probs,
        };
        outputs.push(as_dtype(&probs, vb.dtype())?.matmul(&vb)?);
        start += b;
    }
    if outputs.len() == 1 {
        return outputs
            .pop()
            .ok_or_else(|| candle_core::Error::Msg("empty text".into()));
    }
    Tensor::cat(&outputs, 2)
}

/// The additive band mask `[queries, keys]` of a local layer for queries `q0..q0 + queries`
/// and keys `k0..k0 + keys`: 0 where `|i - j| <= half_window`, the most negative f32 elsewhere.
fn band_mask(
    q0: usize,
    queries: usize,
    k0: usize,
    keys: usize,
    half_window: usize,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let data: Vec<f32> = (0..queries * keys)
        .map(|ij| {
            let (i, j) = (q0 + ij / keys, k0 + ij % keys);
            if i.abs_diff(j) <= half_window {
                0.0
            } else {
                f32::MIN
            }
        })
        .collect();
    Tensor::from_vec(data, (queries, keys), device)
}

/// A ModernBERT encoder with its masked-language-model head.
pub struct ModernBertMaskedLm {
    tok_embeddings: Tensor,
    embeddings_norm: LayerNorm,
    layers: Vec<ModernBertLayer>,
    final_norm: LayerNorm,
    head_dense: Linear,
    head_act: HiddenAct,
    head_norm: LayerNorm,
    global_rotary: Rotary,
    local_rotary: Rotary,
    half_window: usize,
    max_positions: usize,
    head: MlmHead,
}

impl ModernBertMaskedLm {
    /// Loads the weights under the `model.`, `head.` and `decoder.` prefixes.
    pub fn load(vb: VarBuilder, c: &BackboneConfig) -> candle_core::Result<Self> {
        let o = c
            .modernbert
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("ModernBERT options missing".into()))?;
        let h = c.hidden_size;
        let model = vb.pp("model");
        let tok_embeddings = model
            .pp("embeddings")
            .pp("tok_embeddings")
            .get((c.vocab_size, h), "weight")?;
        let layers = (0..c.num_layers)
            .map(|i| ModernBertLayer::load(model.pp("layers").pp(i), i, c, o))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let decoder = vb.pp("decoder");
        let weight = if decoder.contains_tensor("weight") {
            decoder.get((c.vocab_size, h), "weight")?
        } else if c.tie_word_embeddings {
            tok_embeddings.clone()
        } else {
            return Err(candle_core::Error::Msg(
                "config says tie_word_embeddings=false but decoder.weight is missing".into(),
            ));
        };
        let bias = if o.decoder_bias {
            decoder.get(c.vocab_size, "bias")?
        } else {
            Tensor::zeros(c.vocab_size, DType::F32, tok_embeddings.device())?
        };
        let head_dim = h / c.num_heads;
        let device = tok_embeddings.device().clone();
        let norm = |vb: VarBuilder| LayerNorm::load_with_bias(vb, h, c.layer_norm_eps, o.norm_bias);
        Ok(Self {
            embeddings_norm: norm(model.pp("embeddings").pp("norm"))?,
            layers,
            final_norm: norm(model.pp("final_norm"))?,
            head_dense: Linear::load_with_bias(vb.pp("head").pp("dense"), h, h, o.classifier_bias)?,
            head_act: o.classifier_act,
            head_norm: norm(vb.pp("head").pp("norm"))?,
            global_rotary: Rotary::new(o.global_rope_theta, head_dim, c.max_positions(), &device)?,
            local_rotary: Rotary::new(o.local_rope_theta, head_dim, c.max_positions(), &device)?,
            half_window: o.half_window,
            max_positions: c.max_positions(),
            tok_embeddings,
            head: MlmHead { weight, bias },
        })
    }

    /// The head's features `[n, hidden]` of the real tokens of the batch `packing` describes,
    /// computed in `activations` (the norms and softmax in f32), which the decoder projects
    /// onto the vocabulary. `drop` applies `attention_dropout` to the attention probabilities
    /// and the attention output, as transformers does (ModernBERT's other dropouts must be 0,
    /// which the config reader checks).
    pub fn features(
        &self,
        batch: &TokenBatch,
        packing: &Packing,
        mode: ForwardMode,
        drop: Option<&Dropout>,
        activations: DType,
    ) -> candle_core::Result<Tensor> {
        let x = embed(&self.tok_embeddings, &packing.pack(&batch.input_ids)?)?;
        let mut x = as_dtype(&self.embeddings_norm.forward(&x, mode)?, activations)?;
        for layer in &self.layers {
            let rotary = if layer.global {
                &self.global_rotary
            } else {
                &self.local_rotary
            };
            x = layer.forward(&x, packing, rotary, self.half_window, mode, drop)?;
        }
        let x = self.final_norm.forward(&x, mode)?;
        let y = self.head_dense.forward_activated(&x, self.head_act)?;
        self.head_norm.forward(&y, mode)
    }

    /// The longest input the model takes (`max_position_embeddings`).
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// The vocabulary projection.
    pub fn head(&self) -> &MlmHead {
        &self.head
    }
}

impl ModernBertMaskedLm {
    /// The linear layers of the transformer layers, not the MLM head's (for
    /// `--quantize int8`; enc-int8).
    pub(crate) fn linears_mut(&mut self) -> Vec<&mut Linear> {
        let mut all = Vec::new();
        for l in &mut self.layers {
            all.push(&mut l.wqkv);
            all.push(&mut l.wo);
            all.push(&mut l.wi);
            all.push(&mut l.mlp_wo);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_data::max_diff;

    fn random(seed: u64, shape: (usize, usize, usize, usize)) -> Tensor {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        let mut state = seed;
        let data: Vec<f32> = (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            })
            .collect();
        Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn blocked_attention_equals_attention_over_the_whole_text() {
        let shape = (2, 3, 301, 8);
        let (q, k, v) = (random(1, shape), random(2, shape), random(3, shape));
        for window in [None, Some(4), Some(70), Some(400)] {
            for mode in [ForwardMode::Inference, ForwardMode::Differentiable] {
                let whole = attend_group(&q, &k, &v, window, mode, None, 10_000).unwrap();
                for block in [1, 64, 256] {
                    let blocked = attend_group(&q, &k, &v, window, mode, None, block).unwrap();
                    let diff = max_diff(&whole, &blocked);
                    assert!(diff < 1e-5, "window {window:?} block {block}: {diff}");
                }
            }
        }
        // The window really limits attention: a far key's value does not reach a query.
        let changed = v
            .slice_assign(
                &[0..2, 0..3, 300..301, 0..8],
                &Tensor::ones((2, 3, 1, 8), DType::F32, &Device::Cpu).unwrap(),
            )
            .unwrap();
        let a = attend_group(&q, &k, &v, Some(4), ForwardMode::Inference, None, 64).unwrap();
        let b = attend_group(&q, &k, &changed, Some(4), ForwardMode::Inference, None, 64).unwrap();
        let head = |t: &Tensor| {
            t.narrow(2, 0, 290)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(head(&a), head(&b));
        let tail = |t: &Tensor| {
            t.narrow(2, 299, 1)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_ne!(tail(&a), tail(&b));
    }
}
