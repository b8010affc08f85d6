//! The masked-language-model backbones: each turns token ids into per-token features, and an
//! [`MlmHead`] projects features onto the vocabulary (the logits SpladePooling consumes).

mod attention_kernel;
mod bert;
mod dense_cpu;
mod distilbert;
pub mod dropout;
pub(crate) mod fused;
pub mod layers;
mod modernbert;
mod packing;
pub mod simd;
mod softmax_row;
#[cfg(test)]
mod test_data;
mod vector_gelu;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::pickle::PthTensors;
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

pub use bert::BertMaskedLm;
pub use distilbert::DistilBertMaskedLm;
pub use dropout::Dropout;
pub use layers::ForwardMode;
pub use modernbert::ModernBertMaskedLm;
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
    /// `BertForMaskedLM`, `RobertaForMaskedLM` and `XLMRobertaForMaskedLM`.
    Bert(BertMaskedLm),
    /// `DistilBertForMaskedLM`.
    DistilBert(DistilBertMaskedLm),
    /// `ModernBertForMaskedLM`.
    ModernBert(ModernBertMaskedLm),
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
    /// `.bin` pickle) in f32 on `device`. Every tensor of the file must be finite, and every
    /// one must be used by the model (besides [`IGNORED_TENSORS`]); the layer count and the
    /// token-type table of `config` must match the file.
    pub fn load(weights: &Path, config: &BackboneConfig, device: &Device) -> Result<Self> {
        let wrap = weights_error(weights);
        let is_safetensors = weights.extension().is_some_and(|e| e == "safetensors");
        let (backend, names): (Box<dyn SimpleBackend>, Vec<String>) = if is_safetensors {
            check_safetensors_header(weights)?;
            // SAFETY: the file is memory-mapped read-only; the header was validated above and
            // candle validates every tensor's bounds against the mapping.
            let st = unsafe { MmapedSafetensors::new(weights) }.map_err(&wrap)?;
            let mut names = Vec::new();
            for (name, _) in st.tensors() {
                let tensor = st.load(&name, &Device::Cpu).map_err(&wrap)?;
                check_finite(weights, &name, &tensor)?;
                names.push(name);
            }
            (Box::new(st), names)
        } else {
            let pth = PthTensors::new(weights, None).map_err(&wrap)?;
            let mut names: Vec<String> = pth.tensor_infos().keys().cloned().collect();
            names.sort();
            for name in &names {
                if let Some(tensor) = pth.get(name).map_err(&wrap)? {
                    check_finite(weights, name, &tensor)?;
                }
            }
            (Box::new(pth), names)
        };
        Self::build(backend, &names, weights, config, device)
    }

    /// Builds the model from `backend`, whose tensors are `names`, checking the config
    /// against them and that every tensor is used.
    fn build(
        backend: Box<dyn SimpleBackend>,
        names: &[String],
        weights: &Path,
        config: &BackboneConfig,
        device: &Device,
    ) -> Result<Self> {
        let wrap = weights_error(weights);
        if !config.mlm_head
            && !matches!(
                config.architecture,
                Architecture::Bert | Architecture::Roberta | Architecture::XlmRoberta
            )
        {
            return Err(EncoderError::UnsupportedArchitecture {
                architecture: format!(
                    "{} without its MLM head (feature-extraction)",
                    config.architecture.class_name()
                ),
                path: weights.to_path_buf(),
                supported:
                    "BertModel, RobertaModel, XLMRobertaModel (or their *ForMaskedLM checkpoints)"
                        .into(),
            });
        }
        check_config_against_weights(names, weights, config)?;
        let used = std::sync::Arc::new(std::sync::Mutex::new(HashSet::new()));
        let tracked: Box<dyn SimpleBackend> = Box::new(Tracked {
            inner: backend,
            used: used.clone(),
        });
        // A bare encoder (`BertModel`) stores its tensors without the `bert.` / `roberta.`
        // prefix the MLM class adds; either layout loads.
        let tracked = if config.mlm_head {
            tracked
        } else {
            Box::new(Unprefixed {
                inner: tracked,
                prefix: if config.architecture.is_roberta() {
                    "roberta."
                } else {
                    "bert."
                },
            })
        };
        let vb = VarBuilder::from_backend(tracked, DType::F32, device.clone());
        let model = match config.architecture {
            Architecture::Bert | Architecture::Roberta | Architecture::XlmRoberta => {
                MaskedLm::Bert(BertMaskedLm::load(vb, config).map_err(&wrap)?)
            }
            Architecture::ModernBert => {
                MaskedLm::ModernBert(ModernBertMaskedLm::load(vb, config).map_err(&wrap)?)
            }
            Architecture::DistilBert => {
                MaskedLm::DistilBert(DistilBertMaskedLm::load(vb, config).map_err(&wrap)?)
            }
        };
        let used = used.lock().map(|u| u.clone()).unwrap_or_default();
        let unused: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| {
                !used.contains(*n) && !is_ignored(n) && (config.mlm_head || !is_head_or_pooler(n))
            })
            .collect();
        if !unused.is_empty() {
            const SHOWN: usize = 10;
            let mut list = unused[..unused.len().min(SHOWN)].join(", ");
            if unused.len() > SHOWN {
                list.push_str(&format!(", … ({} more)", unused.len() - SHOWN));
            }
            return Err(EncoderError::UnusedWeights {
                path: weights.to_path_buf(),
                count: unused.len(),
                names: list,
            });
        }
        Ok(model)
    }

    /// Loads the backbone with every floating-point weight as a trainable [`Var`] (a copy in
    /// memory, not a memory map). Returns the model and its variables by checkpoint name; tied
    /// weights are one variable, so their gradients add up as in PyTorch. The weights are
    /// checked as [`Self::load`] checks them.
    pub fn load_trainable(
        weights: &Path,
        config: &BackboneConfig,
        device: &Device,
    ) -> Result<(Self, Vec<(String, Var)>)> {
        let wrap = weights_error(weights);
        let tensors: Vec<(String, Tensor)> =
            if weights.extension().is_some_and(|e| e == "safetensors") {
                check_safetensors_header(weights)?;
                candle_core::safetensors::load(weights, device)
                    .map_err(&wrap)?
                    .into_iter()
                    .collect()
            } else {
                candle_core::pickle::read_all(weights).map_err(&wrap)?
            };
        let mut vars = Vec::new();
        let mut map = std::collections::HashMap::new();
        let mut names = Vec::new();
        for (name, tensor) in tensors {
            check_finite(weights, &name, &tensor)?;
            names.push(name.clone());
            if !tensor.dtype().is_float() {
                continue;
            }
            let var = Var::from_tensor(
                &tensor
                    .to_dtype(DType::F32)
                    .map_err(&wrap)?
                    .to_device(device)
                    .map_err(&wrap)?,
            )
            .map_err(&wrap)?;
            map.insert(name.clone(), var.as_tensor().clone());
            vars.push((name, var));
        }
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        names.sort();
        let model = Self::build(Box::new(map), &names, weights, config, device)?;
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
            MaskedLm::ModernBert(m) => m.max_positions(),
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
            MaskedLm::ModernBert(m) => m.features(batch, &packing, mode, dropout, activations),
        }?;
        Ok((packed, packing))
    }

    /// Makes every linear layer of the transformer layers run on int8 weights in CPU
    /// inference, on the kernel `path` (`--quantize int8`). The MLM head (its dense transform
    /// and the vocabulary projection) stays f32: keeping the transform f32 raised splade-tiny's
    /// mean active-set Jaccard vs f32 from 0.956 to 0.971 (the fixture texts) for about 1.4 %
    /// of a base model's transformer FLOPs.
    pub fn quantize_int8(&mut self, path: crate::quant::Int8Path) -> candle_core::Result<()> {
        let linears = match self {
            MaskedLm::Bert(m) => m.linears_mut(),
            MaskedLm::DistilBert(m) => m.linears_mut(),
            MaskedLm::ModernBert(m) => m.linears_mut(),
        };
        for linear in linears {
            linear.quantize_int8(path)?;
        }
        Ok(())
    }

    /// The vocabulary projection (`None` for a backbone loaded without its MLM head, as a
    /// CSR model's is).
    pub fn head(&self) -> Option<&MlmHead> {
        match self {
            MaskedLm::Bert(m) => m.head(),
            MaskedLm::DistilBert(m) => Some(m.head()),
            MaskedLm::ModernBert(m) => Some(m.head()),
        }
    }

    /// The vocabulary projection, or an error saying the model has none.
    pub fn mlm_head(&self) -> Result<&MlmHead> {
        self.head().ok_or_else(|| {
            EncoderError::InvalidArgument(
                "the backbone was loaded without its MLM head (a CSR model's feature-extraction \
                 Transformer): it has no vocabulary projection"
                    .into(),
            )
        })
    }

    /// The width of [`Self::packed_features`]' rows.
    pub fn hidden_size(&self) -> usize {
        match self {
            MaskedLm::Bert(m) => m.hidden_size(),
            MaskedLm::DistilBert(m) => m.head().weight.dims()[1],
            MaskedLm::ModernBert(m) => m.head().weight.dims()[1],
        }
    }
}

/// Tensors a checkpoint may hold that the MLM model does not use (as transformers'
/// `_keys_to_ignore_on_load_unexpected`): BERT's pooler and next-sentence head (pre-training
/// checkpoints), `position_ids` / `token_type_ids` buffers of older transformers versions, and
/// `cls.predictions.bias` beside the `cls.predictions.decoder.bias` the forward pass uses
/// (RoBERTa: `lm_head.bias` beside `lm_head.decoder.bias`).
pub const IGNORED_TENSORS: &[&str] = &[
    "bert.pooler.*",
    "roberta.pooler.*",
    "lm_head.bias",
    "lm_head.decoder.bias",
    "cls.seq_relationship.*",
    "*.position_ids",
    "*.token_type_ids",
    "cls.predictions.bias",
    "cls.predictions.decoder.bias",
];

/// Tensors a bare encoder loaded from any checkpoint leaves unused, as transformers'
/// `AutoModel` does: the pooler of `BertModel` and the MLM head of a `*ForMaskedLM` file.
fn is_head_or_pooler(name: &str) -> bool {
    ["pooler.", "cls.", "lm_head."]
        .iter()
        .any(|p| name.starts_with(p))
}

fn is_ignored(name: &str) -> bool {
    IGNORED_TENSORS.iter().any(|pattern| {
        if let Some(prefix) = pattern.strip_suffix('*') {
            name.starts_with(prefix)
        } else if let Some(suffix) = pattern.strip_prefix('*') {
            name.ends_with(suffix)
        } else {
            name == *pattern
        }
    })
}

fn weights_error(weights: &Path) -> impl Fn(candle_core::Error) -> EncoderError + '_ {
    move |e| EncoderError::Weights {
        path: weights.to_path_buf(),
        message: e.to_string(),
    }
}

/// A [`SimpleBackend`] that serves `prefix`ed names from a file that stores them without the
/// prefix (a bare `BertModel` checkpoint), and as they are otherwise.
struct Unprefixed {
    inner: Box<dyn SimpleBackend>,
    prefix: &'static str,
}

impl Unprefixed {
    fn name<'a>(&self, name: &'a str) -> &'a str {
        match name.strip_prefix(self.prefix) {
            Some(rest) if !self.inner.contains_tensor(name) => rest,
            _ => name,
        }
    }
}

impl SimpleBackend for Unprefixed {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.inner.get(s, self.name(name), h, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.inner.get_unchecked(self.name(name), dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.contains_tensor(self.name(name))
    }
}

/// A [`SimpleBackend`] that records which tensors the model asked for.
struct Tracked {
    inner: Box<dyn SimpleBackend>,
    used: Arc<Mutex<HashSet<String>>>,
}

impl Tracked {
    fn record(&self, name: &str) {
        if let Ok(mut used) = self.used.lock() {
            used.insert(name.to_string());
        }
    }
}

impl SimpleBackend for Tracked {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.record(name);
        self.inner.get(s, name, h, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.record(name);
        self.inner.get_unchecked(name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.contains_tensor(name)
    }
}

/// Whether every value of an f32 slice is finite (vectorisable: no early exit inside a block).
pub(crate) fn all_finite(data: &[f32]) -> bool {
    data.chunks(1024)
        .all(|block| block.iter().fold(true, |ok, v| ok & v.is_finite()))
}

/// Errors when a floating-point weight tensor holds a NaN or an infinity.
fn check_finite(weights: &Path, name: &str, tensor: &Tensor) -> Result<()> {
    if !tensor.dtype().is_float() {
        return Ok(());
    }
    let wrap = weights_error(weights);
    let host = tensor
        .to_device(&Device::Cpu)
        .and_then(|t| t.to_dtype(DType::F32))
        .map_err(&wrap)?;
    if fused::with_data(&host, |d| Ok(all_finite(d))).map_err(&wrap)? {
        Ok(())
    } else {
        Err(EncoderError::NonFiniteWeights {
            path: weights.to_path_buf(),
            tensor: name.to_string(),
        })
    }
}

/// The first row of a 2-D float tensor (`[rows, width]`) holding a NaN or an infinity.
pub(crate) fn first_non_finite_row(t: &Tensor) -> candle_core::Result<Option<usize>> {
    let width = t.dim(1)?.max(1);
    let t = t.to_dtype(DType::F32)?;
    let host = if t.device().is_cpu() {
        t
    } else {
        // One reduction on the device (0·x is 0 for finite x, NaN otherwise); the rows are
        // looked at on the host only when something is wrong.
        if (&t * 0.0)?.sum_all()?.to_scalar::<f32>()? == 0.0 {
            return Ok(None);
        }
        t.to_device(&Device::Cpu)?
    };
    fused::with_data(&host, |d| {
        Ok(d.chunks(width).position(|row| !all_finite(row)))
    })
}

/// The transformer layer numbers present in the weights (`bert.encoder.layer.N.…`,
/// `distilbert.transformer.layer.N.…`).
fn weight_layers(names: &[String], config: &BackboneConfig) -> Vec<usize> {
    let prefix = match config.architecture {
        Architecture::Bert => "bert.encoder.layer.",
        Architecture::DistilBert => "distilbert.transformer.layer.",
        Architecture::Roberta | Architecture::XlmRoberta => "roberta.encoder.layer.",
        Architecture::ModernBert => "model.layers.",
    };
    // A bare encoder's checkpoint (`BertModel`) has no `bert.` / `roberta.` prefix.
    let bare = prefix.split_once('.').map_or(prefix, |(_, rest)| rest);
    let mut layers: Vec<usize> = names
        .iter()
        .filter_map(|n| {
            n.strip_prefix(prefix).or_else(|| {
                if config.mlm_head {
                    None
                } else {
                    n.strip_prefix(bare)
                }
            })
        })
        .filter_map(|rest| rest.split('.').next()?.parse().ok())
        .collect();
    layers.sort_unstable();
    layers.dedup();
    layers
}

/// Config values that would silently change the model: a layer count other than the weights',
/// or no token types while the weights hold a token-type table.
fn check_config_against_weights(
    names: &[String],
    weights: &Path,
    config: &BackboneConfig,
) -> Result<()> {
    let config_path = weights
        .parent()
        .map(|d| d.join("config.json"))
        .unwrap_or_else(|| PathBuf::from("config.json"));
    let layers = weight_layers(names, config);
    let (layers_field, type_field) = match config.architecture {
        Architecture::DistilBert => ("n_layers", "type_vocab_size"),
        _ => ("num_hidden_layers", "type_vocab_size"),
    };
    let in_weights = layers.last().map_or(0, |&l| l + 1);
    if in_weights != config.num_layers || layers.len() != in_weights {
        return Err(EncoderError::Config {
            path: config_path,
            field: layers_field.into(),
            message: format!(
                "{} layer(s) configured, but {} holds {} (layers {:?}); the model would {}",
                config.num_layers,
                weights.display(),
                layers.len(),
                layers,
                if config.num_layers < in_weights {
                    "silently ignore the extra layers"
                } else {
                    "miss layer weights"
                }
            ),
        });
    }
    if config.architecture == Architecture::Bert
        && config.type_vocab_size == 0
        && names
            .iter()
            .any(|n| n == "bert.embeddings.token_type_embeddings.weight")
    {
        return Err(EncoderError::Config {
            path: config_path,
            field: type_field.into(),
            message: format!(
                "0, but {} holds bert.embeddings.token_type_embeddings.weight (the model would \
                 silently skip the token-type embeddings)",
                weights.display()
            ),
        });
    }
    Ok(())
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
pub(crate) fn check_safetensors_header(path: &Path) -> Result<()> {
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
