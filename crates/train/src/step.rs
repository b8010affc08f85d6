//! One training step, the only one: encode each micro-batch's columns differentiably (with the
//! model's dropout), compute SpladeLoss, backpropagate, accumulate the micro-batches'
//! gradients, clip their global norm, and update the weights with AdamW. A NaN or an infinity
//! in the activations, the loss or the gradient norm stops the step with
//! [`TrainError::Diverged`] before the weights change.
//!
//! [`crate::trainer::Trainer`] drives `splade train` through [`TrainStep::step`], and the
//! PyTorch parity tests (`crates/train/tests/parity.rs`) call the same method.

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};
use splade_encoder::{Dropout, EncodeOptions, EncoderError, TrainableEncoder};

use crate::error::{Result, TrainError};
use crate::loss::{
    configured_splade_loss, csr_loss, CsrLossConfig, SpladeLossConfig, SpladeLossParts,
};
use crate::optim::{decays_like_hf_trainer, AdamW, AdamWConfig};

/// Loss values of one step (the mean over its micro-batches), as plain numbers.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepLosses {
    /// Total loss.
    pub total: f64,
    /// The base loss part (MNRL or MarginMSE).
    pub base: f64,
    /// Weighted query FLOPS part.
    pub query_regularizer: f64,
    /// Weighted document FLOPS part.
    pub document_regularizer: f64,
    /// CSRLoss's `reconstruction_loss_k`, `reconstruction_loss_4k` (divided by 8) and
    /// `reconstruction_loss_aux` (times beta); 0 for SpladeLoss.
    pub reconstruction: [f64; 3],
}

impl StepLosses {
    /// Adds one micro-batch's parts, each divided by `micro_batches`.
    fn add(&mut self, parts: &SpladeLossParts, micro_batches: usize) -> Result<()> {
        let scalar =
            |t: &Tensor| -> Result<f64> { Ok(t.to_scalar::<f32>()? as f64 / micro_batches as f64) };
        self.total += scalar(&parts.total)?;
        self.base += scalar(&parts.base)?;
        self.query_regularizer += scalar(&parts.query_regularizer)?;
        self.document_regularizer += scalar(&parts.document_regularizer)?;
        if let Some(r) = &parts.reconstruction {
            for (acc, t) in self
                .reconstruction
                .iter_mut()
                .zip([&r.k, &r.four_k, &r.aux])
            {
                *acc += scalar(t)?;
            }
        }
        Ok(())
    }
}

/// Which variables AdamW's weight decay applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecayFilter {
    /// Every variable, as `torch.optim.AdamW(model.parameters())`.
    All,
    /// Not biases and LayerNorms, as sentence-transformers' (Hugging Face's) trainer groups
    /// them ([`decays_like_hf_trainer`]).
    LikeHfTrainer,
}

/// How a [`TrainStep`] trains.
#[derive(Debug, Clone)]
pub struct StepConfig {
    /// AdamW's hyper-parameters (the learning rate is the initial one; the trainer sets it
    /// before every step with [`TrainStep::set_learning_rate`]).
    pub adamw: AdamWConfig,
    /// Which variables decay.
    pub decay: DecayFilter,
    /// SpladeLoss: base loss, λ maxima, scale.
    pub loss: SpladeLossConfig,
    /// Clip the global gradient norm to this, as `torch.nn.utils.clip_grad_norm_`; `None`
    /// disables clipping.
    pub max_grad_norm: Option<f64>,
    /// `Some(seed)`: apply the dropout of the model's `config.json`, with masks seeded by
    /// `seed`, the step and the micro-batch (so a resumed run draws the masks of an
    /// uninterrupted one); `None`: the deterministic forward pass.
    pub dropout_seed: Option<u64>,
    /// Precision of the activations: `F32` or `BF16` (mixed precision, see
    /// [`TrainableEncoder::set_precision`]).
    pub precision: DType,
    /// The task of each column (by position: anchors, positives, negatives), from the
    /// `router_mapping`: a Router model encodes column i with the route `column_tasks[i]`
    /// resolves to (`None` or a missing entry: the default route). A plain model ignores it.
    pub column_tasks: Vec<Option<String>>,
    /// sentence-transformers' `learning_rate_mapping`: `(regex, learning rate)` in order; a
    /// variable whose name (ours or sentence-transformers', see
    /// [`TrainableEncoder::reference_name`]) the regex matches (`re.search`) trains at that
    /// rate (following the schedule) instead of AdamW's; the last matching pattern wins. A
    /// pattern matching no variable is an error, as there.
    pub learning_rate_mapping: Vec<(String, f64)>,
}

/// One micro-batch: `columns[0]` anchors, `columns[1]` positives, then negatives; `labels`
/// (`[rows]` or `[rows, k]`, for `SparseMarginMSELoss`) or `None`.
#[derive(Debug, Clone)]
pub struct MicroBatch<'a> {
    /// Texts by column.
    pub columns: Vec<Vec<&'a str>>,
    /// Teacher labels of the rows.
    pub labels: Option<Tensor>,
}

/// A trainable encoder with its optimiser and the settings of its step.
pub struct TrainStep {
    encoder: TrainableEncoder,
    optimizer: AdamW,
    config: StepConfig,
    cache_mini_batch: Option<usize>,
    csr: CsrLossConfig,
}

impl TrainStep {
    /// Wraps an encoder loaded with [`TrainableEncoder::load`]: sets its precision and builds
    /// the optimiser over its variables.
    pub fn new(mut encoder: TrainableEncoder, config: StepConfig) -> Result<Self> {
        encoder.set_precision(config.precision)?;
        let mut optimizer = match config.decay {
            DecayFilter::All => AdamW::with_decay_filter(encoder.vars(), config.adamw, |_| true)?,
            DecayFilter::LikeHfTrainer => {
                AdamW::with_decay_filter(encoder.vars(), config.adamw, decays_like_hf_trainer)?
            }
        };
        for (index, lr) in learning_rates(&encoder, &config.learning_rate_mapping)? {
            optimizer.set_lr_scale(index, lr / config.adamw.lr);
        }
        Ok(Self {
            encoder,
            optimizer,
            config,
            cache_mini_batch: None,
            csr: CsrLossConfig::default(),
        })
    }

    /// `CSRLoss`'s `beta` and `gamma` for a CSR model (the defaults: 0.1 and 1); its `k` /
    /// `k_aux`, when set, replace the autoencoder's. A CSR model always trains with CSRLoss
    /// around the configured base loss (FLOPS does not apply).
    pub fn set_csr_loss(&mut self, config: CsrLossConfig) -> Result<()> {
        if let Some(k) = config.k {
            self.encoder.set_csr_sparsity(k, config.k_aux)?;
        } else if let Some(k_aux) = config.k_aux {
            let k = self.encoder.csr().map_or(0, |c| c.sae.config.k);
            self.encoder.set_csr_sparsity(k, Some(k_aux))?;
        }
        self.csr = config;
        Ok(())
    }

    /// The CSRLoss settings.
    pub fn csr_loss(&self) -> &CsrLossConfig {
        &self.csr
    }

    /// `CachedSpladeLoss` (GradCache, Gao et al. 2021): with `Some(m)`, every micro-batch is
    /// embedded `m` rows of one column at a time without keeping the graph, the loss and its
    /// gradient with respect to the embeddings are computed on the whole batch, and each chunk
    /// is embedded again to backpropagate its cached embedding gradient into the weights. The
    /// loss and the gradients equal the uncached step's (up to float rounding) for any base
    /// loss, with activation memory of `m` rows instead of the whole batch. `None` (the
    /// default): one differentiable forward pass per micro-batch.
    pub fn set_gradient_cache(&mut self, mini_batch_size: Option<usize>) -> Result<()> {
        if mini_batch_size.is_some() && self.encoder.is_csr() {
            return Err(TrainError::InvalidData(
                "GradCache (CachedSpladeLoss) does not apply to a CSR model: it trains with \
                 CSRLoss, which sentence-transformers does not cache"
                    .into(),
            ));
        }
        if mini_batch_size == Some(0) {
            return Err(TrainError::InvalidData(
                "the GradCache mini-batch size must be at least 1".into(),
            ));
        }
        self.cache_mini_batch = mini_batch_size;
        Ok(())
    }

    /// The GradCache mini-batch size, if caching is on.
    pub fn gradient_cache(&self) -> Option<usize> {
        self.cache_mini_batch
    }

    /// The encoder being trained.
    pub fn encoder(&self) -> &TrainableEncoder {
        &self.encoder
    }

    /// The trainable variables by checkpoint name.
    pub fn vars(&self) -> &[(String, candle_core::Var)] {
        self.encoder.vars()
    }

    /// The optimiser (its state goes into checkpoints).
    pub fn optimizer(&self) -> &AdamW {
        &self.optimizer
    }

    /// The optimiser, to restore its state from a checkpoint.
    pub fn optimizer_mut(&mut self) -> &mut AdamW {
        &mut self.optimizer
    }

    /// The step's settings.
    pub fn config(&self) -> &StepConfig {
        &self.config
    }

    /// Sets the learning rate of the next steps.
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.optimizer.set_learning_rate(lr);
    }

    /// The loss parts of one micro-batch of optimiser step `step` (0-based; it seeds the
    /// dropout masks with `micro`), with the regulariser weights `lambdas`. A forward pass
    /// whose activations are not finite is [`TrainError::Diverged`]; another failure is
    /// [`TrainError::Step`].
    pub fn loss(
        &self,
        step: usize,
        micro: usize,
        batch: &MicroBatch<'_>,
        lambdas: (f64, f64),
    ) -> Result<SpladeLossParts> {
        let dropout: Option<Dropout> = self
            .config
            .dropout_seed
            .map(|seed| self.encoder.dropout(dropout_seed(seed, step, micro)))
            .filter(|d| !d.is_noop());
        if self.encoder.is_csr() {
            let outputs = self
                .encoder
                .forward_csr_columns(&batch.columns, &EncodeOptions::default(), dropout.as_ref())
                .map_err(|e| at_step(step, e))?;
            return Ok(csr_loss(
                &outputs,
                batch.labels.as_ref(),
                &self.config.loss,
                &self.csr,
            )?);
        }
        let embeddings = self
            .encoder
            .forward_dense_routed(
                &batch.columns,
                &self.config.column_tasks,
                &EncodeOptions::default(),
                dropout.as_ref(),
            )
            .map_err(|e| at_step(step, e))?;
        Ok(configured_splade_loss(
            &embeddings,
            batch.labels.as_ref(),
            &self.config.loss,
            lambdas,
        )?)
    }

    /// The loss of `batch` as an evaluation computes it (sentence-transformers' `eval_loss`):
    /// no dropout (eval mode), no gradients kept, the total as a number.
    pub fn eval_loss(
        &self,
        step: usize,
        batch: &MicroBatch<'_>,
        lambdas: (f64, f64),
    ) -> Result<f64> {
        let embeddings = self
            .encoder
            .forward_dense_routed(
                &batch.columns,
                &self.config.column_tasks,
                &EncodeOptions::default(),
                None,
            )
            .map_err(|e| at_step(step, e))?;
        let embeddings: Vec<Tensor> = embeddings.iter().map(Tensor::detach).collect();
        let parts = configured_splade_loss(
            &embeddings,
            batch.labels.as_ref(),
            &self.config.loss,
            lambdas,
        )?;
        Ok(parts.total.to_dtype(DType::F64)?.to_scalar::<f64>()?)
    }

    /// Losses (the mean over the micro-batches) and gradients (of that mean) of optimiser step
    /// `step`, clipped to the configured norm, without updating the weights. A non-finite
    /// loss or gradient norm is [`TrainError::Diverged`].
    pub fn gradients(
        &self,
        step: usize,
        micro_batches: &[MicroBatch<'_>],
        lambdas: (f64, f64),
    ) -> Result<(StepLosses, GradStore)> {
        let n = micro_batches.len();
        let mut losses = StepLosses::default();
        let mut grads: Option<GradStore> = None;
        for (micro, batch) in micro_batches.iter().enumerate() {
            if let Some(m) = self.cache_mini_batch {
                let (parts, micro_grads) =
                    self.cached_gradients(step, micro, batch, lambdas, m, n)?;
                match &mut grads {
                    None => grads = Some(micro_grads),
                    Some(acc) => accumulate(self.vars(), acc, micro_grads)?,
                }
                losses.add(&parts, n)?;
                continue;
            }
            let parts = self.loss(step, micro, batch, lambdas)?;
            let loss = parts.total.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !loss.is_finite() {
                return Err(diverged(step, format!("the loss is {loss}")));
            }
            let scaled = (&parts.total / n as f64)?;
            let micro_grads = scaled.backward()?;
            match &mut grads {
                None => grads = Some(micro_grads),
                Some(acc) => accumulate(self.vars(), acc, micro_grads)?,
            }
            losses.add(&parts, n)?;
        }
        let Some(mut grads) = grads else {
            return Err(TrainError::InvalidData(format!(
                "training step {}: no micro-batch",
                step + 1
            )));
        };
        if let Some(max_norm) = self.config.max_grad_norm {
            let norm = clip_gradients(self.vars(), &mut grads, max_norm)?;
            if !norm.is_finite() {
                return Err(diverged(step, format!("the gradient norm is {norm}")));
            }
        }
        Ok((losses, grads))
    }

    /// One micro-batch by GradCache (see [`Self::set_gradient_cache`]): its loss parts and
    /// the weights' gradients of its loss divided by `micro_batches`.
    fn cached_gradients(
        &self,
        step: usize,
        micro: usize,
        batch: &MicroBatch<'_>,
        lambdas: (f64, f64),
        mini_batch: usize,
        micro_batches: usize,
    ) -> Result<(SpladeLossParts, GradStore)> {
        let options = EncodeOptions::default();
        // One dropout stream per (column, chunk), the same in both passes, so the second
        // pass replays the first's masks (the reference's RandContext).
        let dropout = |column: usize, chunk: usize| -> Option<Dropout> {
            self.config
                .dropout_seed
                .map(|seed| {
                    let base = dropout_seed(seed, step, micro);
                    self.encoder
                        .dropout(base ^ ((column as u64 + 1) << 40) ^ ((chunk as u64 + 1) << 20))
                })
                .filter(|d| !d.is_noop())
        };
        let embed = |column: usize, chunk: usize, texts: &[&str]| -> Result<Tensor> {
            let d = dropout(column, chunk);
            // The column's route (a Router model's `router_mapping`; a plain model ignores it).
            let task = [self.config.column_tasks.get(column).cloned().flatten()];
            let mut out = self
                .encoder
                .forward_dense_routed(&[texts.to_vec()], &task, &options, d.as_ref())
                .map_err(|e| at_step(step, e))?;
            Ok(out.remove(0))
        };
        // 1. Embed every chunk without keeping its graph.
        let mut cached: Vec<candle_core::Var> = Vec::with_capacity(batch.columns.len());
        for (c, column) in batch.columns.iter().enumerate() {
            let chunks = column
                .chunks(mini_batch)
                .enumerate()
                .map(|(k, texts)| Ok(embed(c, k, texts)?.detach()))
                .collect::<Result<Vec<_>>>()?;
            cached.push(candle_core::Var::from_tensor(&Tensor::cat(&chunks, 0)?)?);
        }
        // 2. The loss on the cached embeddings, and its gradient with respect to them.
        let embeddings: Vec<Tensor> = cached.iter().map(|v| v.as_tensor().clone()).collect();
        let parts = configured_splade_loss(
            &embeddings,
            batch.labels.as_ref(),
            &self.config.loss,
            lambdas,
        )?;
        let loss = parts.total.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !loss.is_finite() {
            return Err(diverged(step, format!("the loss is {loss}")));
        }
        let embedding_grads = (&parts.total / micro_batches as f64)?.backward()?;
        // 3. Re-embed each chunk with its graph and backpropagate the cached gradient.
        let mut grads: Option<GradStore> = None;
        for (c, column) in batch.columns.iter().enumerate() {
            let Some(g) = embedding_grads.get(cached[c].as_tensor()) else {
                continue;
            };
            for (k, texts) in column.chunks(mini_batch).enumerate() {
                let e = embed(c, k, texts)?;
                let g = g.narrow(0, k * mini_batch, texts.len())?.detach();
                let surrogate = (e.to_dtype(DType::F32)? * g.to_dtype(DType::F32)?)?.sum_all()?;
                let chunk_grads = surrogate.backward()?;
                match &mut grads {
                    None => grads = Some(chunk_grads),
                    Some(acc) => accumulate(self.vars(), acc, chunk_grads)?,
                }
            }
        }
        let grads = match grads {
            Some(g) => g,
            // A loss that does not depend on the embeddings: no weight has a gradient.
            None => parts.total.detach().backward()?,
        };
        Ok((parts, grads))
    }

    /// Optimiser step `step` (0-based) over its micro-batches (gradient accumulation: one
    /// micro-batch each unless configured otherwise): [`Self::gradients`], then AdamW.
    /// Returns the losses before the update.
    pub fn step(
        &mut self,
        step: usize,
        micro_batches: &[MicroBatch<'_>],
        lambdas: (f64, f64),
    ) -> Result<StepLosses> {
        let (losses, grads) = self.gradients(step, micro_batches, lambdas)?;
        self.optimizer.step(&grads)?;
        self.encoder
            .sync_static_weights()
            .map_err(|e| at_step(step, e))?;
        Ok(losses)
    }
}

/// The learning rate of each variable a `learning_rate_mapping` pattern matches (by index in
/// the encoder's variables), as sentence-transformers' trainer groups them: patterns in order,
/// each searched (`re.search`) in the variable's name, ours or sentence-transformers'
/// ([`TrainableEncoder::reference_name`]); a later pattern overrides an earlier one.
pub fn learning_rates(
    encoder: &TrainableEncoder,
    mapping: &[(String, f64)],
) -> Result<Vec<(usize, f64)>> {
    let mut rates: Vec<Option<f64>> = vec![None; encoder.vars().len()];
    for (pattern, lr) in mapping {
        let config_err = |expected: String| TrainError::Config {
            field: "learning_rate_mapping".into(),
            expected,
            value: format!("{pattern}={lr}"),
        };
        if !lr.is_finite() || *lr < 0.0 {
            return Err(config_err("a finite learning rate >= 0".into()));
        }
        let re = regex::Regex::new(pattern)
            .map_err(|e| config_err(format!("a valid regular expression ({e})")))?;
        let mut matched = false;
        for (i, (name, _)) in encoder.vars().iter().enumerate() {
            if re.is_match(name) || re.is_match(&encoder.reference_name(name)) {
                rates[i] = Some(*lr);
                matched = true;
            }
        }
        if !matched {
            let examples: Vec<String> = encoder
                .vars()
                .iter()
                .rev()
                .take(2)
                .map(|(n, _)| format!("{n} ({})", encoder.reference_name(n)))
                .collect();
            return Err(config_err(format!(
                "a pattern matching some parameter's name, e.g. {}",
                examples.join(", ")
            )));
        }
    }
    Ok(rates
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| r.map(|r| (i, r)))
        .collect())
}

/// The error of a forward pass at step `step` (0-based).
fn at_step(step: usize, e: EncoderError) -> TrainError {
    if e.to_string().contains(splade_encoder::NON_FINITE) {
        TrainError::Diverged {
            step: step + 1,
            what: "the activations are not finite".into(),
            last_checkpoint: None,
            source: Some(Box::new(e)),
        }
    } else {
        TrainError::Step {
            step: step + 1,
            source: Box::new(e.into()),
        }
    }
}

/// Divergence at step `step` (0-based); the trainer adds the last checkpoint.
fn diverged(step: usize, what: String) -> TrainError {
    TrainError::Diverged {
        step: step + 1,
        what,
        last_checkpoint: None,
        source: None,
    }
}

/// The seed of the dropout masks of one micro-batch: a function of the run's seed and the
/// position in the run only, so a resumed run draws the same masks as an uninterrupted one.
fn dropout_seed(seed: u64, step: usize, micro: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((step as u64) << 16).wrapping_add(micro as u64)
}

fn global_norm(vars: &[(String, candle_core::Var)], grads: &GradStore) -> Result<f64> {
    let mut total = 0.0;
    for (_, v) in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            total += g
                .to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?;
        }
    }
    Ok(total.sqrt())
}

/// Scales gradients so their global norm is at most `max_norm`, as `torch.nn.utils.clip_grad_norm_`.
fn clip_gradients(
    vars: &[(String, candle_core::Var)],
    grads: &mut GradStore,
    max_norm: f64,
) -> Result<f64> {
    let norm = global_norm(vars, grads)?;
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for (_, v) in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * coef)?);
            }
        }
    }
    Ok(norm)
}

fn accumulate(
    vars: &[(String, candle_core::Var)],
    into: &mut GradStore,
    from: GradStore,
) -> Result<()> {
    for (_, v) in vars {
        if let Some(g) = from.get(v.as_tensor()) {
            let sum = match into.remove(v.as_tensor()) {
                Some(acc) => (acc + g)?,
                None => g.clone(),
            };
            into.insert(v.as_tensor(), sum);
        }
    }
    Ok(())
}
