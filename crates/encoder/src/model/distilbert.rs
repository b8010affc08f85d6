//! `DistilBertForMaskedLM`: embeddings, transformer and the vocabulary transform.

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

use super::dropout::{self, Dropout};
use super::layers::{
    as_dtype, attention_bias, embed, ForwardMode, LayerNorm, LayerParts, Linear, SelfAttention,
};
use super::packing::Packing;
use super::{MlmHead, TokenBatch};
use crate::config::{BackboneConfig, HiddenAct};

struct DistilBertLayer {
    attention: SelfAttention,
    out: Linear,
    sa_norm: LayerNorm,
    lin1: Linear,
    lin2: Linear,
    output_norm: LayerNorm,
    act: HiddenAct,
}

impl DistilBertLayer {
    fn load(vb: VarBuilder, c: &BackboneConfig) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        let att = vb.pp("attention");
        Ok(Self {
            attention: SelfAttention {
                query: Linear::load(att.pp("q_lin"), h, h)?,
                key: Linear::load(att.pp("k_lin"), h, h)?,
                value: Linear::load(att.pp("v_lin"), h, h)?,
                num_heads: c.num_heads,
                head_dim: h / c.num_heads,
            },
            out: Linear::load(att.pp("out_lin"), h, h)?,
            sa_norm: LayerNorm::load(vb.pp("sa_layer_norm"), h, c.layer_norm_eps)?,
            lin1: Linear::load(vb.pp("ffn").pp("lin1"), h, c.intermediate_size)?,
            lin2: Linear::load(vb.pp("ffn").pp("lin2"), c.intermediate_size, h)?,
            output_norm: LayerNorm::load(vb.pp("output_layer_norm"), h, c.layer_norm_eps)?,
            act: c.hidden_act,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        packing: &Packing,
        bias: &Tensor,
        mode: ForwardMode,
        drop: Option<&Dropout>,
    ) -> candle_core::Result<Tensor> {
        if mode == ForwardMode::Inference && drop.is_none() {
            if let Some(y) = self.forward_cpu(x, packing, bias)? {
                return Ok(y);
            }
        }
        // As transformers' DistilBERT: no dropout after the attention output projection, one
        // after the feed-forward block.
        let a = self
            .out
            .forward(&self.attention.forward(x, packing, bias, mode, drop)?)?;
        let x = self.sa_norm.forward(&(a + x)?, mode)?;
        let ffn = self
            .lin2
            .forward(&self.lin1.forward_activated(&x, self.act)?)?;
        let ffn = dropout::hidden(drop, ffn)?;
        self.output_norm.forward(&(ffn + x)?, mode)
    }
}

impl DistilBertLayer {
    /// Inference on the CPU in f32 activations: the fused attention, then each dense layer
    /// with what follows it (bias, residual and LayerNorm; bias and GELU) in one pass over
    /// its product. `None` when `x` is not f32 on the CPU.
    fn forward_cpu(
        &self,
        x: &Tensor,
        packing: &Packing,
        bias: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        LayerParts {
            attention: &self.attention,
            attention_out: &self.out,
            attention_norm: &self.sa_norm,
            ffn_in: &self.lin1,
            act: self.act,
            ffn_out: &self.lin2,
            output_norm: &self.output_norm,
        }
        .forward_cpu(x, packing, bias)
    }
}

/// A DistilBERT encoder with its masked-language-model head.
pub struct DistilBertMaskedLm {
    word_embeddings: Tensor,
    position_embeddings: Tensor,
    embeddings_norm: LayerNorm,
    layers: Vec<DistilBertLayer>,
    transform: Linear,
    transform_norm: LayerNorm,
    act: HiddenAct,
    head: MlmHead,
}

impl DistilBertMaskedLm {
    /// Loads the weights under the `distilbert.` and `vocab_*` prefixes.
    pub fn load(vb: VarBuilder, c: &BackboneConfig) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        let emb = vb.pp("distilbert").pp("embeddings");
        let word_embeddings = emb.pp("word_embeddings").get((c.vocab_size, h), "weight")?;
        let layers = (0..c.num_layers)
            .map(|i| {
                DistilBertLayer::load(vb.pp("distilbert").pp("transformer").pp("layer").pp(i), c)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let projector = vb.pp("vocab_projector");
        // A projector matrix stored in the file is used; otherwise it is tied to the embeddings.
        let weight = if projector.contains_tensor("weight") || !c.tie_word_embeddings {
            projector.get((c.vocab_size, h), "weight")?
        } else {
            word_embeddings.clone()
        };
        Ok(Self {
            position_embeddings: emb
                .pp("position_embeddings")
                .get((c.max_position_embeddings, h), "weight")?,
            embeddings_norm: LayerNorm::load(emb.pp("LayerNorm"), h, c.layer_norm_eps)?,
            word_embeddings,
            layers,
            transform: Linear::load(vb.pp("vocab_transform"), h, h)?,
            transform_norm: LayerNorm::load(vb.pp("vocab_layer_norm"), h, c.layer_norm_eps)?,
            act: c.hidden_act,
            head: MlmHead {
                weight,
                bias: projector.get(c.vocab_size, "bias")?,
            },
        })
    }

    /// The transformed features `[n, hidden]` of the real tokens of the batch `packing`
    /// describes (see [`Packing`]), computed in `activations` (f32, or bf16 with the
    /// normalisations and softmax in f32); DistilBERT has no token types. `drop` applies
    /// training-time dropout where DistilBERT has it.
    pub fn features(
        &self,
        batch: &TokenBatch,
        packing: &Packing,
        mode: ForwardMode,
        drop: Option<&Dropout>,
        activations: DType,
    ) -> candle_core::Result<Tensor> {
        let x = (embed(&self.word_embeddings, &packing.pack(&batch.input_ids)?)?
            + embed(&self.position_embeddings, packing.positions())?)?;
        let mut x = dropout::hidden(
            drop,
            as_dtype(&self.embeddings_norm.forward(&x, mode)?, activations)?,
        )?;
        let bias = attention_bias(&batch.attention_mask)?;
        for layer in &self.layers {
            x = layer.forward(&x, packing, &bias, mode, drop)?;
        }
        let y = match mode {
            ForwardMode::Inference => self.transform.forward_activated_cpu(&x, self.act)?,
            ForwardMode::Differentiable => None,
        };
        let y = match y {
            Some(y) => y,
            None => self.transform.forward_activated(&x, self.act)?,
        };
        self.transform_norm.forward(&y, mode)
    }

    /// Rows of the position-embedding table (the longest input the model takes).
    pub fn max_positions(&self) -> usize {
        self.position_embeddings
            .dims()
            .first()
            .copied()
            .unwrap_or(0)
    }

    /// The vocabulary projection.
    pub fn head(&self) -> &MlmHead {
        &self.head
    }
}

impl DistilBertMaskedLm {
    /// The linear layers of the transformer layers, not the MLM head's (for
    /// `--quantize int8`; enc-int8).
    pub(crate) fn linears_mut(&mut self) -> Vec<&mut Linear> {
        let mut all = Vec::new();
        for l in &mut self.layers {
            all.push(&mut l.attention.query);
            all.push(&mut l.attention.key);
            all.push(&mut l.attention.value);
            all.push(&mut l.out);
            all.push(&mut l.lin1);
            all.push(&mut l.lin2);
        }
        all
    }
}
