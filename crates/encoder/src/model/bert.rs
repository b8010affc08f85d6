//! `BertForMaskedLM`, and `RobertaForMaskedLM` / `XLMRobertaForMaskedLM` which share its
//! layers: embeddings, transformer encoder and the MLM head transform.
//!
//! RoBERTa differs only around the layers: weights under `roberta.` and `lm_head.`, position
//! ids that start at `pad_token_id + 1` (transformers numbers the real tokens of a
//! right-padded text from there), one token type (always 0), and a head whose activation is
//! always the exact GELU.

use candle_core::{DType, Tensor, D};
use candle_nn::VarBuilder;

use super::dropout::{self, Dropout};
use super::layers::{
    as_dtype, attention_bias, embed, get_any, ForwardMode, LayerNorm, LayerParts, Linear,
    SelfAttention,
};
use super::packing::Packing;
use super::{MlmHead, TokenBatch};
use crate::config::{BackboneConfig, HiddenAct};

struct BertLayer {
    attention: SelfAttention,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
    act: HiddenAct,
}

impl BertLayer {
    fn load(vb: VarBuilder, c: &BackboneConfig) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        let att = vb.pp("attention");
        let sa = att.pp("self");
        Ok(Self {
            attention: SelfAttention {
                query: Linear::load(sa.pp("query"), h, h)?,
                key: Linear::load(sa.pp("key"), h, h)?,
                value: Linear::load(sa.pp("value"), h, h)?,
                num_heads: c.num_heads,
                head_dim: h / c.num_heads,
            },
            attention_out: Linear::load(att.pp("output").pp("dense"), h, h)?,
            attention_norm: LayerNorm::load(att.pp("output").pp("LayerNorm"), h, c.layer_norm_eps)?,
            intermediate: Linear::load(vb.pp("intermediate").pp("dense"), h, c.intermediate_size)?,
            output: Linear::load(vb.pp("output").pp("dense"), c.intermediate_size, h)?,
            output_norm: LayerNorm::load(vb.pp("output").pp("LayerNorm"), h, c.layer_norm_eps)?,
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
        let a = self.attention.forward(x, packing, bias, mode, drop)?;
        let a = dropout::hidden(drop, self.attention_out.forward(&a)?)?;
        let x = self.attention_norm.forward(&(a + x)?, mode)?;
        let inner = self.intermediate.forward_activated(&x, self.act)?;
        let out = dropout::hidden(drop, self.output.forward(&inner)?)?;
        self.output_norm.forward(&(out + x)?, mode)
    }
}

impl BertLayer {
    /// Inference on the CPU in f32 activations: the fused attention, then each dense layer
    /// with what follows it (bias, residual and LayerNorm; bias and activation) in one pass
    /// over its product. `None` when `x` is not f32 on the CPU.
    fn forward_cpu(
        &self,
        x: &Tensor,
        packing: &Packing,
        bias: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        LayerParts {
            attention: &self.attention,
            attention_out: &self.attention_out,
            attention_norm: &self.attention_norm,
            ffn_in: &self.intermediate,
            act: self.act,
            ffn_out: &self.output,
            output_norm: &self.output_norm,
        }
        .forward_cpu(x, packing, bias)
    }
}

/// The masked-language-model head: the transform (dense, activation, LayerNorm) before the
/// vocabulary projection.
struct BertHead {
    transform: Linear,
    transform_norm: LayerNorm,
    act: HiddenAct,
    head: MlmHead,
}

/// A BERT encoder with its masked-language-model head (or without, for a CSR model).
pub struct BertMaskedLm {
    word_embeddings: Tensor,
    position_embeddings: Tensor,
    token_type_embeddings: Option<Tensor>,
    embeddings_norm: LayerNorm,
    layers: Vec<BertLayer>,
    /// The MLM head (`None` for a bare `BertModel`, whose features are the last hidden states).
    mlm: Option<BertHead>,
    /// RoBERTa: token type 0 for every token, whatever the tokenizer says.
    single_token_type: bool,
    /// RoBERTa's `padding_idx`: position ids count the tokens other than it from
    /// `padding_idx + 1`, and the pad token itself takes position `padding_idx`.
    roberta_padding_idx: Option<u32>,
}

impl BertMaskedLm {
    /// Loads the weights under the `bert.` and `cls.predictions.` prefixes (RoBERTa and
    /// XLM-RoBERTa: `roberta.` and `lm_head.`).
    pub fn load(vb: VarBuilder, c: &BackboneConfig) -> candle_core::Result<Self> {
        if c.architecture.is_roberta() {
            return Self::load_roberta(vb, c);
        }
        let h = c.hidden_size;
        let emb = vb.pp("bert").pp("embeddings");
        let word_embeddings = emb.pp("word_embeddings").get((c.vocab_size, h), "weight")?;
        let token_type_embeddings = if c.type_vocab_size > 0 {
            Some(
                emb.pp("token_type_embeddings")
                    .get((c.type_vocab_size, h), "weight")?,
            )
        } else {
            None
        };
        let layers = (0..c.num_layers)
            .map(|i| BertLayer::load(vb.pp("bert").pp("encoder").pp("layer").pp(i), c))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let position_embeddings = emb
            .pp("position_embeddings")
            .get((c.max_position_embeddings, h), "weight")?;
        let embeddings_norm = LayerNorm::load(emb.pp("LayerNorm"), h, c.layer_norm_eps)?;
        if !c.mlm_head {
            return Ok(Self {
                position_embeddings,
                token_type_embeddings,
                embeddings_norm,
                word_embeddings,
                layers,
                mlm: None,
                single_token_type: false,
                roberta_padding_idx: None,
            });
        }
        let pred = vb.pp("cls").pp("predictions");
        let decoder = pred.pp("decoder");
        // As transformers 5 loads it: a decoder matrix stored in the file is used (even when the
        // config says tied); otherwise the decoder is the word-embedding matrix.
        let decoder_weight = if decoder.contains_tensor("weight") {
            decoder.get((c.vocab_size, h), "weight")?
        } else if c.tie_word_embeddings {
            word_embeddings.clone()
        } else {
            return Err(candle_core::Error::Msg(
                "config says tie_word_embeddings=false but cls.predictions.decoder.weight is missing".into(),
            ));
        };
        // The forward pass of transformers uses the decoder's own bias; older checkpoints only
        // store `cls.predictions.bias`, which is tied to it.
        let decoder_bias = if decoder.contains_tensor("bias") {
            decoder.get(c.vocab_size, "bias")?
        } else {
            get_any(&pred, &[c.vocab_size], &["bias"])?
        };
        Ok(Self {
            position_embeddings,
            token_type_embeddings,
            embeddings_norm,
            word_embeddings,
            layers,
            mlm: Some(BertHead {
                transform: Linear::load(pred.pp("transform").pp("dense"), h, h)?,
                transform_norm: LayerNorm::load(
                    pred.pp("transform").pp("LayerNorm"),
                    h,
                    c.layer_norm_eps,
                )?,
                act: c.hidden_act,
                head: MlmHead {
                    weight: decoder_weight,
                    bias: decoder_bias,
                },
            }),
            single_token_type: false,
            roberta_padding_idx: None,
        })
    }

    /// Loads `RobertaForMaskedLM` / `XLMRobertaForMaskedLM` weights.
    fn load_roberta(vb: VarBuilder, c: &BackboneConfig) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        let emb = vb.pp("roberta").pp("embeddings");
        let word_embeddings = emb.pp("word_embeddings").get((c.vocab_size, h), "weight")?;
        let type_rows = c.type_vocab_size.max(1);
        let token_type_embeddings = Some(
            emb.pp("token_type_embeddings")
                .get((type_rows, h), "weight")?
                .narrow(0, 0, 1)?,
        );
        let position_embeddings = emb
            .pp("position_embeddings")
            .get((c.max_position_embeddings, h), "weight")?;
        let layers = (0..c.num_layers)
            .map(|i| BertLayer::load(vb.pp("roberta").pp("encoder").pp("layer").pp(i), c))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let embeddings_norm = LayerNorm::load(emb.pp("LayerNorm"), h, c.layer_norm_eps)?;
        let roberta_padding_idx = Some((c.position_offset - 1) as u32);
        if !c.mlm_head {
            return Ok(Self {
                position_embeddings,
                token_type_embeddings,
                embeddings_norm,
                word_embeddings,
                layers,
                mlm: None,
                single_token_type: true,
                roberta_padding_idx,
            });
        }
        let head = vb.pp("lm_head");
        let decoder = head.pp("decoder");
        let decoder_weight = if decoder.contains_tensor("weight") {
            decoder.get((c.vocab_size, h), "weight")?
        } else if c.tie_word_embeddings {
            word_embeddings.clone()
        } else {
            return Err(candle_core::Error::Msg(
                "config says tie_word_embeddings=false but lm_head.decoder.weight is missing"
                    .into(),
            ));
        };
        // `lm_head.decoder.bias` is what the forward pass adds; `lm_head.bias` is tied to it
        // (checkpoints saved by transformers 5 with a tied decoder store only the latter).
        let decoder_bias = if decoder.contains_tensor("bias") {
            decoder.get(c.vocab_size, "bias")?
        } else {
            head.get(c.vocab_size, "bias")?
        };
        Ok(Self {
            position_embeddings,
            token_type_embeddings,
            embeddings_norm,
            word_embeddings,
            layers,
            mlm: Some(BertHead {
                transform: Linear::load(head.pp("dense"), h, h)?,
                transform_norm: LayerNorm::load(head.pp("layer_norm"), h, c.layer_norm_eps)?,
                // RobertaLMHead applies `gelu` whatever the config's hidden_act.
                act: HiddenAct::GeluErf,
                head: MlmHead {
                    weight: decoder_weight,
                    bias: decoder_bias,
                },
            }),
            single_token_type: true,
            roberta_padding_idx,
        })
    }

    /// The transformed features (without the MLM head: the last hidden states) `[n, hidden]`
    /// of the real tokens of the batch `packing`
    /// describes (see [`Packing`]), computed in `activations` (f32, or bf16 with the
    /// normalisations and softmax in f32), which the decoder projects onto the vocabulary; `drop`
    /// applies training-time dropout where BERT has it.
    pub fn features(
        &self,
        batch: &TokenBatch,
        packing: &Packing,
        mode: ForwardMode,
        drop: Option<&Dropout>,
        activations: DType,
    ) -> candle_core::Result<Tensor> {
        let ids = packing.pack(&batch.input_ids)?;
        let positions = match self.roberta_padding_idx {
            Some(pad) => roberta_positions(&ids, packing, pad)?,
            None => packing.positions().clone(),
        };
        let mut x =
            (embed(&self.word_embeddings, &ids)? + embed(&self.position_embeddings, &positions)?)?;
        if let Some(tt) = &self.token_type_embeddings {
            x = if self.single_token_type {
                x.broadcast_add(tt)?
            } else {
                (x + embed(tt, &packing.pack(&batch.token_type_ids)?)?)?
            };
        }
        x = dropout::hidden(
            drop,
            as_dtype(&self.embeddings_norm.forward(&x, mode)?, activations)?,
        )?;
        let bias = attention_bias(&batch.attention_mask)?;
        for layer in &self.layers {
            x = layer.forward(&x, packing, &bias, mode, drop)?;
        }
        let Some(mlm) = &self.mlm else {
            return Ok(x);
        };
        let y = match mode {
            ForwardMode::Inference => mlm.transform.forward_activated_cpu(&x, mlm.act)?,
            ForwardMode::Differentiable => None,
        };
        let y = match y {
            Some(y) => y,
            None => mlm.transform.forward_activated(&x, mlm.act)?,
        };
        let y = mlm.transform_norm.forward(&y, mode)?;
        debug_assert_eq!(y.dims()[1], mlm.head.weight.dim(D::Minus1)?);
        Ok(y)
    }

    /// The longest input the model takes: the rows of the position-embedding table (RoBERTa:
    /// those after `padding_idx`).
    pub fn max_positions(&self) -> usize {
        let rows = self
            .position_embeddings
            .dims()
            .first()
            .copied()
            .unwrap_or(0);
        match self.roberta_padding_idx {
            Some(pad) => rows.saturating_sub(pad as usize + 1),
            None => rows,
        }
    }

    /// The hidden size (the width of the features without the MLM head).
    pub fn hidden_size(&self) -> usize {
        self.word_embeddings.dims().get(1).copied().unwrap_or(0)
    }

    /// The vocabulary projection (`None` without the MLM head).
    pub fn head(&self) -> Option<&MlmHead> {
        self.mlm.as_ref().map(|m| &m.head)
    }
}

/// RoBERTa's position ids of packed `ids` `[n]`, as transformers'
/// `create_position_ids_from_input_ids`: in each text, the k-th token that is not the pad token
/// gets `padding_idx + k` (k from 1), and a pad token gets `padding_idx`.
fn roberta_positions(ids: &Tensor, packing: &Packing, pad: u32) -> candle_core::Result<Tensor> {
    let host: Vec<u32> = ids.to_device(&candle_core::Device::Cpu)?.to_vec1()?;
    let starts = packing.starts();
    let mut positions = Vec::with_capacity(host.len());
    for text in starts.windows(2) {
        let mut count = 0u32;
        for &id in &host[text[0]..text[1]] {
            if id == pad {
                positions.push(pad);
            } else {
                count += 1;
                positions.push(pad + count);
            }
        }
    }
    Tensor::from_vec(positions, host.len(), ids.device())
}

impl BertMaskedLm {
    /// The linear layers of the transformer layers, not the MLM head's (for
    /// `--quantize int8`; enc-int8).
    pub(crate) fn linears_mut(&mut self) -> Vec<&mut Linear> {
        let mut all = Vec::new();
        for l in &mut self.layers {
            all.push(&mut l.attention.query);
            all.push(&mut l.attention.key);
            all.push(&mut l.attention.value);
            all.push(&mut l.attention_out);
            all.push(&mut l.intermediate);
            all.push(&mut l.output);
        }
        all
    }
}
