//! The masked-language-model backbones: each turns token ids into per-token features, and an
//! [`MlmHead`] projects features onto the vocabulary (the logits SpladePooling consumes).

mod bert;
mod distilbert;
pub mod dropout;
pub(crate) mod fused;
pub mod layers;
mod packing;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;

pub use bert::BertMaskedLm;
pub use distilbert::DistilBertMaskedLm;
pub use dropout::Dropout;
pub use layers::ForwardMode;
pub use packing::Packing;

use crate::config::{Architecture, BackboneConfig};
use crate::error::{EncoderError, Result};

/// The decoder of an MLM head: logits = features · weightᵀ + bias, weight `[vocab, hidden]`.
#[derive(Debug, Clone)]
pub struct MlmHead {
    /// `[vocab, hidden]` (the word-embedding matrix when tied).
    pub weight: Tensor,
    /// `[vocab]`.
    pub bias: Tensor,
}

/// A padded batch of token ids, ready for a backbone.
#[derive(Debug, Clone)]
pub struct TokenBatch {
    /// `[batch, seq]` u32 token ids (padding holds the pad id).
    pub input_ids: Tensor,
    /// `[batch, seq]` u32 token type ids.
    pub token_type_ids: Tensor,
    /// `[batch, seq]` u32, 1 for real tokens and 0 for padding.
    pub attention_mask: Tensor,
    /// Real (unpadded) length of each row.
    pub lengths: Vec<usize>,
}

/// One of the supported masked-language-model backbones.
pub enum MaskedLm {
    /// `BertForMaskedLM`.
    Bert(BertMaskedLm),
    /// `DistilBertForMaskedLM`.
    DistilBert(DistilBertMaskedLm),
}

/// Finds the weights file of a transformer folder: `model.safetensors`, else `pytorch_model.bin`.
pub fn find_weights(dir: &Path) -> Result<PathBuf> {
    for name in ["model.safetensors", "pytorch_model.bin"] {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(EncoderError::MissingFile {
        path: dir.join("model.safetensors"),
        hint: " (nor pytorch_model.bin)".to_string(),
    })
}

impl MaskedLm {
    /// Loads the backbone from a weights file (`.safetensors`, memory-mapped, or a PyTorch
    /// `.bin` pickle) in f32 on `device`.
    pub fn load(weights: &Path, config: &BackboneConfig, device: &Device) -> Result<Self> {
        let wrap = |e: candle_core::Error| EncoderError::Weights {
            path: weights.to_path_buf(),
            message: e.to_string(),
        };
        let is_safetensors = weights.extension().is_some_and(|e| e == "safetensors");
        let vb = if is_safetensors {
            check_safetensors_header(weights)?;
            // SAFETY: the file is memory-mapped read-only; the header was validated above and
            // candle validates every tensor's bounds against the mapping.
            unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, device) }
                .map_err(wrap)?
        } else {
            VarBuilder::from_pth(weights, DType::F32, device).map_err(wrap)?
        };
        let model = match config.architecture {
            Architecture::Bert => MaskedLm::Bert(BertMaskedLm::load(vb, config).map_err(wrap)?),
            Architecture::DistilBert => {
                MaskedLm::DistilBert(DistilBertMaskedLm::load(vb, config).map_err(wrap)?)
            }
        };
        Ok(model)
    }

    /// Loads the backbone with every floating-point weight as a trainable [`Var`] (a copy in
    /// memory, not a memory map). Returns the model and its variables by checkpoint name; tied
    /// weights are one variable, so their gradients add up as in PyTorch.
    pub fn load_trainable(
        weights: &Path,
        config: &BackboneConfig,
        device: &Device,
    ) -> Result<(Self, Vec<(String, Var)>)> {
        let wrap = |e: candle_core::Error| EncoderError::Weights {
            path: weights.to_path_buf(),
            message: e.to_string(),
        };
        let tensors: Vec<(String, Tensor)> =
            if weights.extension().is_some_and(|e| e == "safetensors") {
                check_safetensors_header(weights)?;
                candle_core::safetensors::load(weights, device)
                    .map_err(wrap)?
                    .into_iter()
                    .collect()
            } else {
                candle_core::pickle::read_all(weights).map_err(wrap)?
            };
        let mut vars = Vec::new();
        let mut map = std::collections::HashMap::new();
        for (name, tensor) in tensors {
            if !tensor.dtype().is_float() {
                continue;
            }
            let var = Var::from_tensor(
                &tensor
                    .to_dtype(DType::F32)
                    .map_err(wrap)?
                    .to_device(device)
                    .map_err(wrap)?,
            )
            .map_err(wrap)?;
            map.insert(name.clone(), var.as_tensor().clone());
            vars.push((name, var));
        }
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let vb = VarBuilder::from_tensors(map, DType::F32, device);
        let model = match config.architecture {
            Architecture::Bert => MaskedLm::Bert(BertMaskedLm::load(vb, config).map_err(wrap)?),
            Architecture::DistilBert => {
                MaskedLm::DistilBert(DistilBertMaskedLm::load(vb, config).map_err(wrap)?)
            }
        };
        Ok((model, vars))
    }

    /// Per-token features `[batch, seq, hidden]` before the vocabulary projection;
    /// `dropout` (training only) applies the architecture's dropout. Padding positions hold a
    /// copy of their text's first token (the model runs on real tokens only; see
    /// [`Self::packed_features`]).
    pub fn features(
        &self,
        batch: &TokenBatch,
        mode: ForwardMode,
        dropout: Option<&Dropout>,
    ) -> candle_core::Result<Tensor> {
        let (packed, packing) = self.packed_features(batch, mode, dropout, DType::F32)?;
        packing.pad(&packed)
    }

    /// The features `[n, hidden]` of the batch's real tokens only, text after text, and the
    /// [`Packing`] that maps them to the padded batch. Every per-token layer runs on these `n`
    /// rows; only the attention product sees the padded layout. `activations` is the
    /// precision of the hidden states and matrix products: f32, or bf16 for mixed-precision
    /// training on a GPU (weights stay f32 and receive f32 gradients; LayerNorm and softmax run
    /// in f32).
    pub fn packed_features(
        &self,
        batch: &TokenBatch,
        mode: ForwardMode,
        dropout: Option<&Dropout>,
        activations: DType,
    ) -> candle_core::Result<(Tensor, Packing)> {
        let (_, seq) = batch.input_ids.dims2()?;
        let max_positions = match self {
            MaskedLm::Bert(m) => m.max_positions(),
            MaskedLm::DistilBert(m) => m.max_positions(),
        };
        if seq > max_positions {
            candle_core::bail!(
                "a batch of {seq} tokens exceeds the model's {max_positions} position embeddings"
            );
        }
        check_right_padded(batch)?;
        let packing = Packing::new(&batch.lengths, seq, batch.input_ids.device())?;
        let packed = match self {
            MaskedLm::Bert(m) => m.features(batch, &packing, mode, dropout, activations),
            MaskedLm::DistilBert(m) => m.features(batch, &packing, mode, dropout, activations),
        }?;
        Ok((packed, packing))
    }

    /// The vocabulary projection.
    pub fn head(&self) -> &MlmHead {
        match self {
            MaskedLm::Bert(m) => m.head(),
            MaskedLm::DistilBert(m) => m.head(),
        }
    }
}

/// Checks that a batch's `lengths` agree with its attention mask and that padding is on the
/// right, which packing relies on.
fn check_right_padded(batch: &TokenBatch) -> candle_core::Result<()> {
    let mask: Vec<Vec<u32>> = batch
        .attention_mask
        .to_device(&Device::Cpu)?
        .to_dtype(DType::U32)?
        .to_vec2()?;
    if mask.len() != batch.lengths.len() {
        candle_core::bail!(
            "token batch: {} lengths for {} rows",
            batch.lengths.len(),
            mask.len()
        );
    }
    for (r, (row, &len)) in mask.iter().zip(&batch.lengths).enumerate() {
        if row.iter().enumerate().any(|(i, &m)| (m != 0) != (i < len)) {
            candle_core::bail!(
                "token batch row {r}: the attention mask does not match its length {len} \
                 (batches must be right-padded)"
            );
        }
    }
    Ok(())
}

/// Rejects a truncated or corrupt safetensors file with a message naming it, before mapping.
fn check_safetensors_header(path: &Path) -> Result<()> {
    use std::io::Read;
    let bad = |message: String| EncoderError::Weights {
        path: path.to_path_buf(),
        message,
    };
    let mut file = std::fs::File::open(path).map_err(|source| EncoderError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let len = file
        .metadata()
        .map_err(|source| EncoderError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    let mut n = [0u8; 8];
    file.read_exact(&mut n)
        .map_err(|_| bad("file is too short to be safetensors".into()))?;
    let header_len = u64::from_le_bytes(n);
    if header_len > len.saturating_sub(8) || header_len > 100_000_000 {
        return Err(bad(format!(
            "corrupt safetensors header (header length {header_len}, file length {len})"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(|e| bad(format!("reading header: {e}")))?;
    let json: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| bad(format!("corrupt safetensors header: {e}")))?;
    let data_len = len - 8 - header_len;
    if let Some(map) = json.as_object() {
        for (name, info) in map {
            if name == "__metadata__" {
                continue;
            }
            let end = info
                .get("data_offsets")
                .and_then(|o| o.get(1))
                .and_then(|v| v.as_u64())
                .ok_or_else(|| bad(format!("tensor '{name}' has no data_offsets")))?;
            if end > data_len {
                return Err(bad(format!(
                    "file is truncated: tensor '{name}' ends at byte {end} of a {data_len}-byte data section"
                )));
            }
        }
    }
    Ok(())
}
