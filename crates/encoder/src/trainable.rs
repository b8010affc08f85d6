//! [`TrainableEncoder`]: a [`SparseEncoder`] whose weights are trainable variables, with the
//! differentiable forward pass training needs (dropout, mixed precision, dense `[batch, vocab]`
//! weights whose graph reaches every parameter). Inference code never needs this type; the
//! training crate (`splade-train`) drives it.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};

use crate::csr::SaeTrainingOutput;
use crate::encoder::{load_csr_head, load_static_routes, EncodeOptions, SparseEncoder};
use crate::error::{EncoderError, Result};
use crate::model::{Dropout, ForwardMode, MaskedLm};
use crate::pooling::{pool_dense, pool_max_differentiable_packed, PoolingStrategy};
use crate::router::RouteKind;
use crate::tokenize::TokenizedText;

/// A SPLADE encoder loaded for training: every weight is a [`Var`], listed by checkpoint name.
/// It dereferences to the [`SparseEncoder`] it wraps, so the inference API (`encode`, the
/// evaluators) runs on the weights as they are being trained.
pub struct TrainableEncoder {
    encoder: SparseEncoder,
    vars: Vec<(String, Var)>,
    /// Precision of the differentiable forward pass's activations.
    activations: DType,
    /// The `SparseStaticEmbedding` routes of a Router model, in the order of
    /// [`SparseEncoder::static_routes`].
    statics: Vec<StaticRoute>,
    /// A CSR model's autoencoder state: its variables' name prefix and the dead-latent
    /// statistics the training forward passes update.
    csr: Option<CsrTraining>,
}

/// The training state of a CSR model's `SparseAutoEncoder`.
struct CsrTraining {
    /// `<module folder>.`, e.g. `2_SparseAutoEncoder.`: the prefix of its variables' names.
    prefix: String,
    /// The module's index in `modules.json` (sentence-transformers' parameter names).
    module_index: usize,
    /// `stats_last_nonzero`, updated by every training forward pass.
    stats: std::sync::Mutex<Vec<i64>>,
}

/// A `SparseStaticEmbedding` route being trained (or frozen).
struct StaticRoute {
    /// The route's name.
    route: String,
    /// The weights: a trainable variable (also in `vars`, named [`Self::var_name`]) or, for a
    /// frozen module, a constant.
    weight: Tensor,
    /// Whether `weight` is a variable.
    trainable: bool,
}

/// The suffix of a static route's variable name: `<module folder>.weight`, e.g.
/// `query_0_SparseStaticEmbedding.weight`.
pub const STATIC_WEIGHT: &str = ".weight";

impl TrainableEncoder {
    /// Loads a local model folder for training: every weight becomes a trainable variable
    /// (see [`MaskedLm::load_trainable`]).
    ///
    /// An inference-free model (a sentence-transformers `Router`) trains both routes: the
    /// document route's MLM as above, and each `SparseStaticEmbedding` route's weights as one
    /// more variable named `<module folder>.weight` (e.g. `query_0_SparseStaticEmbedding.weight`)
    /// unless its config says `frozen`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let (folder, tokenizer, weights) = SparseEncoder::read_parts(dir)?;
        let static_modules = load_static_routes(&folder)?;
        let (model, mut vars) = MaskedLm::load_trainable(&weights, &folder.backbone, device)?;
        let mut csr_head = load_csr_head(&folder, device)?;
        let mut csr = None;
        if let (Some(head), Some(layout)) = (csr_head.as_mut(), folder.csr.as_ref()) {
            let module = layout
                .sae_dir
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let module_index = module
                .split('_')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(2);
            let prefix = format!("{module}.");
            for (name, tensor) in [
                ("pre_bias", &mut head.sae.pre_bias),
                ("encoder.weight", &mut head.sae.weight),
                ("latent_bias", &mut head.sae.latent_bias),
            ] {
                let var = Var::from_tensor(tensor)?;
                *tensor = var.as_tensor().clone();
                vars.push((format!("{prefix}{name}"), var));
            }
            csr = Some(CsrTraining {
                prefix,
                module_index,
                stats: std::sync::Mutex::new(head.sae.stats_last_nonzero.clone()),
            });
        }
        let mut statics = Vec::new();
        for (route, module) in &static_modules {
            let weight = Tensor::from_slice(module.weights(), module.dim(), device)?;
            if module.frozen() {
                statics.push(StaticRoute {
                    route: route.clone(),
                    weight,
                    trainable: false,
                });
            } else {
                let var = Var::from_tensor(&weight)?;
                vars.push((static_var_name(module.dir()), var.clone()));
                statics.push(StaticRoute {
                    route: route.clone(),
                    weight: var.as_tensor().clone(),
                    trainable: true,
                });
            }
        }
        Ok(Self {
            encoder: SparseEncoder::from_parts(
                folder,
                tokenizer,
                model,
                device,
                static_modules,
                csr_head,
            ),
            vars,
            activations: DType::F32,
            statics,
            csr,
        })
    }

    /// The name sentence-transformers gives variable `name` (one of [`Self::vars`]) in
    /// `SpladeLoss.named_parameters()`, which its `learning_rate_mapping` patterns match:
    /// `model.0.model.<name>` for a plain model; for a Router
    /// `model.0.sub_modules.<route>.0.model.<name>` (the first SPLADE route) and
    /// `model.0.sub_modules.<route>.0.weight` for a static route's weights.
    pub fn reference_name(&self, name: &str) -> String {
        if let Some(csr) = &self.csr {
            // A CSR model: `model.0.model.<backbone name>`, `model.<i>.<autoencoder name>`.
            if let Some(rest) = name.strip_prefix(&csr.prefix) {
                return format!("model.{}.{rest}", csr.module_index);
            }
        }
        let Some(router) = &self.encoder.folder().router else {
            return format!("model.0.model.{name}");
        };
        for route in &router.routes {
            if let RouteKind::Static { dir } = &route.kind {
                if static_var_name(dir) == name {
                    return format!("model.0.sub_modules.{}.0.weight", route.name);
                }
            }
        }
        let splade = router
            .routes
            .iter()
            .find(|r| matches!(r.kind, RouteKind::Splade { .. }))
            .map_or("document", |r| r.name.as_str());
        format!("model.0.sub_modules.{splade}.0.model.{name}")
    }

    /// Whether a variable belongs to a CSR model's `SparseAutoEncoder` (not the backbone).
    pub fn is_autoencoder_var(&self, name: &str) -> bool {
        self.csr
            .as_ref()
            .is_some_and(|c| name.starts_with(&c.prefix))
    }

    /// A CSR model's `k` and `k_aux` (see [`SparseEncoder::set_csr_sparsity`]).
    pub fn set_csr_sparsity(&mut self, k: usize, k_aux: Option<usize>) -> Result<()> {
        self.encoder.set_csr_sparsity(k, k_aux)
    }

    /// A CSR model's dead-latent statistics as the training passes left them.
    pub fn csr_stats(&self) -> Option<Vec<i64>> {
        self.csr
            .as_ref()
            .map(|c| c.stats.lock().map(|s| s.clone()).unwrap_or_default())
    }

    /// The training forward pass of a CSR model over columns of texts (see
    /// [`crate::csr::SparseAutoEncoder::training_forward`]): one packed backbone pass and the
    /// pooling over every text, then the autoencoder column after column (so the dead-latent
    /// statistics update in the reference's order: each column's `k` then `4k` selection).
    pub fn forward_csr_columns<S: AsRef<str>>(
        &self,
        columns: &[Vec<S>],
        options: &EncodeOptions,
        dropout: Option<&Dropout>,
    ) -> Result<Vec<SaeTrainingOutput>> {
        let (Some(head), Some(state)) = (self.encoder.csr(), self.csr.as_ref()) else {
            return Err(EncoderError::InvalidArgument(
                "not a CSR model (Transformer + Pooling + SparseAutoEncoder)".into(),
            ));
        };
        let texts: Vec<&str> = columns
            .iter()
            .flat_map(|c| c.iter().map(|t| t.as_ref()))
            .collect();
        let tokenized = self.encoder.tokenize(&texts, options)?;
        let rows: Vec<&TokenizedText> = tokenized.iter().collect();
        let batch = self.encoder.token_batch(&rows)?;
        let (tokens, packing) = self.encoder.model().packed_features(
            &batch,
            ForwardMode::Differentiable,
            dropout,
            self.activations,
        )?;
        let prompt_tokens: Vec<usize> = rows.iter().map(|r| r.prompt_tokens).collect();
        let pooled = head.pooling.forward(
            &tokens.to_dtype(DType::F32)?,
            packing.starts(),
            &prompt_tokens,
        )?;
        let mut stats = state.stats.lock().map_err(|_| {
            EncoderError::InvalidArgument("the dead-latent statistics were poisoned".into())
        })?;
        let mut start = 0;
        let mut out = Vec::with_capacity(columns.len());
        for column in columns {
            let x = pooled.narrow(0, start, column.len())?;
            start += column.len();
            out.push(head.sae.training_forward(&x, &mut stats)?);
        }
        Ok(out)
    }

    /// Copies the static routes' trained weights into the inference encoder (after an
    /// optimiser step), so `encode_query` and the evaluators see them; a CSR model's
    /// dead-latent statistics likewise (they are saved with the model).
    pub fn sync_static_weights(&mut self) -> Result<()> {
        if let Some(stats) = self.csr_stats() {
            if let Some(head) = self.encoder.csr_mut() {
                head.sae.stats_last_nonzero = stats;
            }
        }
        for (i, route) in self.statics.iter().enumerate() {
            if !route.trainable {
                continue;
            }
            let values: Vec<f32> = route.weight.to_device(&Device::Cpu)?.to_vec1()?;
            if let Some(pos) = values.iter().position(|v| !v.is_finite()) {
                return Err(EncoderError::InvalidArgument(format!(
                    "route '{}': static weight of token {pos} is {} ({})",
                    route.route,
                    values[pos],
                    crate::error::NON_FINITE
                )));
            }
            self.encoder.statics_mut()[i].1.set_weights(values);
        }
        Ok(())
    }

    /// The route (`Some(name)` of a static route, `None` for the SPLADE backbone) a column
    /// with `task` takes while training, as sentence-transformers' Router resolves it: a
    /// plain model has one route; a Router resolves the task (`None`: its default route).
    pub fn training_route(&self, task: Option<&str>) -> Result<Option<usize>> {
        let Some(router) = &self.encoder.folder().router else {
            return Ok(None);
        };
        let route = router.resolve(task)?;
        Ok(match &route.kind {
            RouteKind::Splade { .. } => None,
            RouteKind::Static { .. } => Some(
                self.statics
                    .iter()
                    .position(|s| s.route == route.name)
                    .ok_or_else(|| {
                        EncoderError::InvalidArgument(format!(
                            "static route '{}' was not loaded",
                            route.name
                        ))
                    })?,
            ),
        })
    }

    /// A static route's differentiable forward pass, as `SparseStaticEmbedding.forward`:
    /// `[texts, vocab]` with each row the weight of every distinct token of its text (the
    /// module's tokenizer, no special tokens, truncated to its `model_max_length`) and 0
    /// elsewhere; no activation, so negative weights stay negative. The gradient reaches the
    /// weight variable at the tokens present.
    fn forward_static(&self, index: usize, texts: &[&str]) -> Result<Tensor> {
        let route = &self.statics[index];
        let module = &self.encoder.static_routes()[index].1;
        let dim = module.dim();
        let mut presence = vec![0f32; texts.len() * dim];
        for (row, text) in texts.iter().enumerate() {
            for id in module.tokenize(text, row)? {
                presence[row * dim + id as usize] = 1.0;
            }
        }
        let presence = Tensor::from_vec(presence, (texts.len(), dim), self.encoder.device())?;
        Ok(presence.broadcast_mul(&route.weight.unsqueeze(0)?)?)
    }

    /// [`Self::forward_dense_columns`] with each column sent through the route its task takes
    /// ([`Self::training_route`]; `tasks[i]` for column i, missing entries meaning none): the
    /// SPLADE columns in one packed pass, each static column by its static embedding (the
    /// weights of the tokens present in the text, differentiable). For
    /// a plain model the tasks change nothing.
    pub fn forward_dense_routed<S: AsRef<str>>(
        &self,
        columns: &[Vec<S>],
        tasks: &[Option<String>],
        options: &EncodeOptions,
        dropout: Option<&Dropout>,
    ) -> Result<Vec<Tensor>> {
        if self.encoder.folder().router.is_none() {
            return self.forward_dense_columns(columns, options, dropout);
        }
        let routes = (0..columns.len())
            .map(|c| self.training_route(tasks.get(c).and_then(|t| t.as_deref())))
            .collect::<Result<Vec<_>>>()?;
        let splade: Vec<Vec<&str>> = columns
            .iter()
            .zip(&routes)
            .filter(|(_, r)| r.is_none())
            .map(|(c, _)| c.iter().map(|t| t.as_ref()).collect())
            .collect();
        let mut splade_out = if splade.is_empty() {
            Vec::new()
        } else {
            self.forward_dense_columns(&splade, options, dropout)?
        }
        .into_iter();
        columns
            .iter()
            .zip(&routes)
            .map(|(column, route)| match route {
                None => splade_out.next().ok_or_else(|| {
                    EncoderError::InvalidArgument("a SPLADE column went missing".into())
                }),
                Some(index) => {
                    let texts: Vec<&str> = column.iter().map(|t| t.as_ref()).collect();
                    self.forward_static(*index, &texts)
                }
            })
            .collect()
    }

    /// The inference encoder over the trainable weights.
    pub fn encoder(&self) -> &SparseEncoder {
        &self.encoder
    }

    /// The trainable variables by checkpoint name (tied matrices appear once).
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// The dropout the model's `config.json` asks for during training, with masks drawn from a
    /// stream seeded with `seed` (pass it to [`Self::forward_dense_with_dropout`]).
    pub fn dropout(&self, seed: u64) -> Dropout {
        Dropout::from_config(&self.encoder.folder().backbone, seed)
    }

    /// Sets the precision of the differentiable forward pass's activations and matrix
    /// products: `F32` (the default) or `BF16` for mixed-precision training on a GPU. The
    /// weights stay f32 and receive f32 gradients; LayerNorm, softmax, the pooling activation
    /// and the loss run in f32. bf16 works on the CPU too, but candle widens it to f32 there,
    /// so it is only slower.
    pub fn set_precision(&mut self, activations: DType) -> Result<()> {
        if !matches!(activations, DType::F32 | DType::BF16) {
            return Err(EncoderError::InvalidArgument(format!(
                "training precision must be f32 or bf16, not {activations:?}"
            )));
        }
        self.activations = activations;
        Ok(())
    }

    /// The precision set by [`Self::set_precision`].
    pub fn precision(&self) -> DType {
        self.activations
    }

    /// The differentiable forward pass: `[batch, vocab]` dense SPLADE weights whose graph
    /// reaches every model parameter (for training), without dropout.
    pub fn forward_dense(
        &self,
        texts: &[impl AsRef<str>],
        options: &EncodeOptions,
    ) -> Result<Tensor> {
        self.forward_dense_with_dropout(texts, options, None)
    }

    /// [`Self::forward_dense`] with training-time dropout (see [`Self::dropout`]).
    pub fn forward_dense_with_dropout(
        &self,
        texts: &[impl AsRef<str>],
        options: &EncodeOptions,
        dropout: Option<&Dropout>,
    ) -> Result<Tensor> {
        let tokenized = self.encoder.tokenize(texts, options)?;
        let rows: Vec<&TokenizedText> = tokenized.iter().collect();
        let batch = self.encoder.token_batch(&rows)?;
        let (tokens, packing) = self.encoder.model().packed_features(
            &batch,
            ForwardMode::Differentiable,
            dropout,
            self.activations,
        )?;
        let pooling = self.encoder.pooling();
        // On the CPU in f32, max pooling uses the fused op (chunked forward, sparse backward).
        if pooling.strategy == PoolingStrategy::Max
            && self.encoder.device().is_cpu()
            && tokens.dtype() == DType::F32
        {
            return Ok(pool_max_differentiable_packed(
                &tokens,
                packing.starts(),
                self.encoder.model().mlm_head()?,
                pooling.activation,
            )?);
        }
        Ok(pool_dense(
            &packing.pad(&tokens)?,
            &batch.attention_mask,
            self.encoder.model().mlm_head()?,
            pooling,
        )?)
    }

    /// [`Self::forward_dense_with_dropout`] for several columns of texts at once (a training
    /// batch's anchors, positives and negatives): one forward pass over all of them, split
    /// back into one `[column length, vocab]` tensor per column. The texts do not interact
    /// (each attends only to itself), so the values are those of one pass per column; the
    /// packed batch makes the matrix products larger and the embedding and decoder gradients
    /// (vocabulary × hidden) are formed once instead of once per column.
    pub fn forward_dense_columns<S: AsRef<str>>(
        &self,
        columns: &[Vec<S>],
        options: &EncodeOptions,
        dropout: Option<&Dropout>,
    ) -> Result<Vec<Tensor>> {
        let texts: Vec<&str> = columns
            .iter()
            .flat_map(|c| c.iter().map(|t| t.as_ref()))
            .collect();
        let all = self.forward_dense_with_dropout(&texts, options, dropout)?;
        let mut start = 0;
        columns
            .iter()
            .map(|c| {
                let part = all.narrow(0, start, c.len())?;
                start += c.len();
                Ok(part)
            })
            .collect()
    }
}

/// The variable name of a static route's weights: its module folder's name + `.weight`.
pub fn static_var_name(dir: &Path) -> String {
    let folder = dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    format!("{folder}{STATIC_WEIGHT}")
}

impl std::ops::Deref for TrainableEncoder {
    type Target = SparseEncoder;

    fn deref(&self) -> &SparseEncoder {
        &self.encoder
    }
}
