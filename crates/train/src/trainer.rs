//! The training loop: batches from a sampler, SpladeLoss with the regulariser warm-up, AdamW
//! with a linear learning-rate schedule, gradient clipping and accumulation, logging,
//! periodic evaluation with checkpoints, and keeping the best model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::optim::{AdamW, AdamWConfig};
use candle_core::backprop::GradStore;
use candle_core::{DType, Var};
use splade_encoder::{EncodeOptions, EncoderError, Result, SparseEncoder};

use crate::data::TrainingData;
use crate::loss::{configured_splade_loss, BaseLoss, SpladeLossConfig};
use crate::sampler::{batches, BatchSampler};
use crate::save::save_model;
use crate::schedule::{linear_lr, regularizer_weight, WarmupShape};

/// Hyperparameters of a run. The defaults are the seed model card's recipe.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Rows per batch (12).
    pub batch_size: usize,
    /// Passes over the data (1); ignored when `max_steps` is set.
    pub epochs: f64,
    /// Stop after this many optimiser steps.
    pub max_steps: Option<usize>,
    /// Peak learning rate (2e-5).
    pub learning_rate: f64,
    /// Fraction of steps with a rising learning rate (0).
    pub warmup_ratio: f64,
    /// AdamW decoupled weight decay (0).
    pub weight_decay: f64,
    /// Clip the global gradient norm to this (1.0); `None` disables clipping.
    pub max_grad_norm: Option<f64>,
    /// Micro-batches per optimiser step (1).
    pub gradient_accumulation: usize,
    /// Seed of the batch order and of the dropout masks (42).
    pub seed: u64,
    /// Apply the dropout of the model's `config.json` during training, as PyTorch does in
    /// train mode (true). Masks come from a stream seeded by `seed` and the micro-batch number,
    /// so runs are reproducible and resumable.
    pub dropout: bool,
    /// NO_DUPLICATES (default) or plain shuffling.
    pub sampler: BatchSampler,
    /// SpladeLoss weights (λ_query 5e-5, λ_document 3e-5, scale 1).
    pub loss: SpladeLossConfig,
    /// Fraction of steps over which the regulariser weights warm up (1/3), and how.
    pub regularizer_warmup: (f64, WarmupShape),
    /// Log every N steps.
    pub logging_steps: usize,
    /// Evaluate (and checkpoint) every N steps; `None` evaluates only at the end.
    pub eval_steps: Option<usize>,
    /// The metric that picks the best checkpoint (higher is better), e.g. `dot_ap`.
    pub best_metric: Option<String>,
    /// When set (e.g. by a Ctrl-C handler), the run saves a checkpoint of the last finished
    /// step and stops before the next one.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Continue the run from this checkpoint folder (its optimizer state, step, batch position
    /// and logs); the caller loads the model weights from the same folder.
    pub resume_from: Option<PathBuf>,
    /// Show a progress bar with the step, the ETA and the last logged loss on stderr (false);
    /// log callbacks and evaluations print above it.
    pub show_progress: bool,
}

impl TrainConfig {
    /// Refuses hyper-parameters that would train nothing or a NaN model: non-finite or
    /// out-of-range numbers and zero counts. The message names the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, expected: &str, value: String| {
            Err(EncoderError::InvalidArgument(format!(
                "training option {field}: expected {expected}, got {value}"
            )))
        };
        let finite = |field: &str, value: f64, min: f64, min_inclusive: bool, max: f64| {
            let low_ok = if min_inclusive {
                value >= min
            } else {
                value > min
            };
            if value.is_finite() && low_ok && value <= max {
                Ok(())
            } else {
                let range = match (min_inclusive, max.is_finite()) {
                    (true, true) => format!("a number in [{min}, {max}]"),
                    (false, true) => format!("a number in ({min}, {max}]"),
                    (true, false) => format!("a finite number >= {min}"),
                    (false, false) => format!("a finite number > {min}"),
                };
                bad(field, &range, value.to_string())
            }
        };
        finite(
            "learning_rate",
            self.learning_rate,
            0.0,
            false,
            f64::INFINITY,
        )?;
        finite("epochs", self.epochs, 0.0, false, f64::INFINITY)?;
        finite("warmup_ratio", self.warmup_ratio, 0.0, true, 1.0)?;
        finite("weight_decay", self.weight_decay, 0.0, true, f64::INFINITY)?;
        if let Some(norm) = self.max_grad_norm {
            finite("max_grad_norm", norm, 0.0, false, f64::INFINITY)?;
        }
        finite(
            "lambda_query",
            self.loss.lambda_query,
            0.0,
            true,
            f64::INFINITY,
        )?;
        finite(
            "lambda_document",
            self.loss.lambda_document,
            0.0,
            true,
            f64::INFINITY,
        )?;
        finite("loss.scale", self.loss.scale, 0.0, false, f64::INFINITY)?;
        finite(
            "regularizer_warmup",
            self.regularizer_warmup.0,
            0.0,
            true,
            1.0,
        )?;
        for (field, value) in [
            ("batch_size", Some(self.batch_size)),
            ("gradient_accumulation", Some(self.gradient_accumulation)),
            ("logging_steps", Some(self.logging_steps)),
            ("max_steps", self.max_steps),
            ("eval_steps", self.eval_steps),
        ] {
            if value == Some(0) {
                return bad(field, "at least 1", "0".into());
            }
        }
        Ok(())
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            batch_size: 12,
            epochs: 1.0,
            max_steps: None,
            learning_rate: 2e-5,
            warmup_ratio: 0.0,
            weight_decay: 0.0,
            max_grad_norm: Some(1.0),
            gradient_accumulation: 1,
            seed: 42,
            dropout: true,
            sampler: BatchSampler::NoDuplicates,
            loss: SpladeLossConfig::default(),
            regularizer_warmup: (1.0 / 3.0, WarmupShape::Quadratic),
            logging_steps: 50,
            eval_steps: None,
            best_metric: None,
            stop: None,
            resume_from: None,
            show_progress: false,
        }
    }
}

/// One logged step.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogEntry {
    /// Optimiser step (1-based).
    pub step: usize,
    /// Fractional epoch.
    pub epoch: f64,
    /// Mean total loss over the steps since the last log.
    pub loss: f64,
    /// Mean MNRL part.
    pub base_loss: f64,
    /// Mean weighted query FLOPS part.
    pub query_regularizer_loss: f64,
    /// Mean weighted document FLOPS part.
    pub document_regularizer_loss: f64,
    /// Learning rate used by this step.
    pub learning_rate: f64,
    /// Current λ_query and λ_document.
    pub lambdas: (f64, f64),
    /// Seconds per step since the last log.
    pub seconds_per_step: f64,
}

/// Evaluation results at a step: metric name to value.
pub type Metrics = BTreeMap<String, f64>;

/// What a run produced.
#[derive(Debug, Clone, Default)]
pub struct TrainReport {
    /// Optimiser steps taken.
    pub steps: usize,
    /// The training log.
    pub log: Vec<LogEntry>,
    /// Evaluations by step.
    pub evaluations: Vec<(usize, Metrics)>,
    /// The step whose checkpoint was kept as best, if a best metric was set.
    pub best_step: Option<usize>,
    /// The checkpoint written when the run was stopped early through `TrainConfig::stop`.
    pub interrupted_at: Option<PathBuf>,
    /// Where the final model was written.
    pub output: PathBuf,
}

/// What a checkpoint records besides the weights, to resume the run exactly.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct TrainerState {
    step: usize,
    /// Epochs whose batch order has been drawn (the current one is `epochs_started - 1`).
    epochs_started: u64,
    /// Micro-batches of the current epoch already used.
    consumed_in_epoch: usize,
    optimizer_step: i32,
    best: Option<(f64, usize)>,
    log: Vec<LogEntry>,
    evaluations: Vec<(usize, Metrics)>,
}

const TRAINER_STATE: &str = "trainer_state.json";
const OPTIMIZER_STATE: &str = "optimizer.safetensors";

fn global_norm(vars: &[(String, Var)], grads: &GradStore) -> Result<f64> {
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
fn clip_gradients(vars: &[(String, Var)], grads: &mut GradStore, max_norm: f64) -> Result<f64> {
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

fn accumulate(vars: &[(String, Var)], into: &mut GradStore, from: GradStore) -> Result<()> {
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

/// Runs training. `evaluate` is called every `eval_steps` and at the end with the current
/// model; checkpoints go to `output/checkpoint-STEP`, the final (or best) model to `output`.
pub fn train(
    encoder: SparseEncoder,
    vars: Vec<(String, Var)>,
    data: &TrainingData,
    config: &TrainConfig,
    output: &Path,
    mut evaluate: impl FnMut(&SparseEncoder, usize) -> Result<Metrics>,
    mut on_log: impl FnMut(&LogEntry),
) -> Result<TrainReport> {
    config.validate()?;
    if data.rows.is_empty() {
        return Err(EncoderError::InvalidArgument("no training rows".into()));
    }
    if data.columns.len() < 2 {
        return Err(EncoderError::InvalidArgument(
            "training rows need at least an anchor and a positive".into(),
        ));
    }
    if config.loss.base == BaseLoss::MarginMse {
        if data.labels.len() != data.rows.len() {
            return Err(EncoderError::InvalidArgument(
                "SparseMarginMSELoss needs a label column (teacher margins or scores: `label` \
                 or `score`, or the one named by the column mapping)"
                    .into(),
            ));
        }
        if data.columns.len() < 3 {
            return Err(EncoderError::InvalidArgument(
                "SparseMarginMSELoss needs (query, positive, negative…) rows".into(),
            ));
        }
    }
    let accumulation = config.gradient_accumulation.max(1);
    let micro_per_epoch = batches(
        &data.rows,
        config.batch_size,
        config.sampler,
        config.seed,
        0,
        false,
    )
    .len();
    let steps_per_epoch = micro_per_epoch.div_ceil(accumulation).max(1);
    let total_steps = config
        .max_steps
        .unwrap_or_else(|| (config.epochs * steps_per_epoch as f64).ceil() as usize)
        .max(1);
    let warmup_steps = (config.warmup_ratio * total_steps as f64).ceil() as usize;
    // Weight decay as sentence-transformers' trainer groups it: not on biases and LayerNorms.
    let mut optimizer = AdamW::with_decay_filter(
        &vars,
        AdamWConfig {
            lr: config.learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: config.weight_decay,
        },
        crate::optim::decays_like_hf_trainer,
    )?;
    let options = EncodeOptions::default();
    let mut report = TrainReport {
        output: output.to_path_buf(),
        ..TrainReport::default()
    };
    let mut best: Option<(f64, usize)> = None;
    let mut window = (0.0, 0.0, 0.0, 0.0, 0usize);
    let mut window_start = Instant::now();
    let mut epoch = 0u64;
    let mut queue: Vec<Vec<usize>> = Vec::new();
    let mut step = 0;
    let names: Vec<String> = vars.iter().map(|(n, _)| n.clone()).collect();
    if let Some(dir) = &config.resume_from {
        let path = dir.join(TRAINER_STATE);
        let text = std::fs::read_to_string(&path).map_err(|source| EncoderError::Io {
            path: path.clone(),
            source,
        })?;
        let state: TrainerState =
            serde_json::from_str(&text).map_err(|source| EncoderError::Json {
                path: path.clone(),
                source,
            })?;
        optimizer.load_state(&names, &dir.join(OPTIMIZER_STATE), state.optimizer_step)?;
        step = state.step;
        epoch = state.epochs_started;
        if epoch > 0 {
            queue = batches(
                &data.rows,
                config.batch_size,
                config.sampler,
                config.seed,
                epoch - 1,
                false,
            );
            queue.reverse();
            for _ in 0..state.consumed_in_epoch {
                queue.pop();
            }
        }
        best = state.best;
        report.log = state.log;
        report.evaluations = state.evaluations;
    }
    let epoch_len = |epoch: u64| {
        batches(
            &data.rows,
            config.batch_size,
            config.sampler,
            config.seed,
            epoch,
            false,
        )
        .len()
    };
    // Saves the weights plus everything needed to resume, atomically, into
    // `output/checkpoint-STEP`, and returns that folder.
    let save_checkpoint = |step: usize,
                           epoch: u64,
                           queue_len: usize,
                           best: Option<(f64, usize)>,
                           report: &TrainReport,
                           optimizer: &AdamW|
     -> Result<PathBuf> {
        let dir = output.join(format!("checkpoint-{step}"));
        save_model(&encoder, &vars, &dir, |staging| {
            let optimizer_step = optimizer.save_state(&names, &staging.join(OPTIMIZER_STATE))?;
            let state = TrainerState {
                step,
                epochs_started: epoch,
                consumed_in_epoch: if epoch > 0 {
                    epoch_len(epoch - 1) - queue_len
                } else {
                    0
                },
                optimizer_step,
                best,
                log: report.log.clone(),
                evaluations: report.evaluations.clone(),
            };
            let text = serde_json::to_string_pretty(&state)
                .map_err(|e| EncoderError::InvalidArgument(e.to_string()))?;
            let path = staging.join(TRAINER_STATE);
            std::fs::write(&path, text).map_err(|source| EncoderError::Io { path, source })
        })?;
        Ok(dir)
    };
    let bar = if config.show_progress {
        let bar = indicatif::ProgressBar::new(total_steps as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] step {pos}/{len} ({per_sec}, {eta} left) {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_position(step as u64);
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    while step < total_steps {
        if config
            .stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst))
        {
            let checkpoint = save_checkpoint(step, epoch, queue.len(), best, &report, &optimizer)?;
            report.steps = step;
            report.interrupted_at = Some(checkpoint);
            return Ok(report);
        }
        let (lambda_q, lambda_d) = (
            regularizer_weight(
                config.loss.lambda_query,
                step,
                total_steps,
                config.regularizer_warmup.0,
                config.regularizer_warmup.1,
            ),
            regularizer_weight(
                config.loss.lambda_document,
                step,
                total_steps,
                config.regularizer_warmup.0,
                config.regularizer_warmup.1,
            ),
        );
        let lr = linear_lr(config.learning_rate, step, warmup_steps, total_steps);
        optimizer.set_learning_rate(lr);
        let mut grads: Option<GradStore> = None;
        for micro in 0..accumulation {
            if queue.is_empty() {
                queue = batches(
                    &data.rows,
                    config.batch_size,
                    config.sampler,
                    config.seed,
                    epoch,
                    false,
                );
                queue.reverse();
                epoch += 1;
            }
            let Some(batch) = queue.pop() else { break };
            let columns: Vec<Vec<&str>> = (0..data.columns.len())
                .map(|c| batch.iter().map(|&r| data.rows[r][c].as_str()).collect())
                .collect();
            let dropout = config
                .dropout
                .then(|| encoder.training_dropout(dropout_seed(config.seed, step, micro)))
                .filter(|d| !d.is_noop());
            let at_step = |e: EncoderError| {
                let message = e.to_string();
                if message.contains(splade_encoder::NON_FINITE) {
                    diverged(step + 1, "the activations are not finite", output)
                } else {
                    EncoderError::Training {
                        step: step + 1,
                        message,
                    }
                }
            };
            let embeddings = encoder
                .forward_dense_columns(&columns, &options, dropout.as_ref())
                .map_err(at_step)?;
            let labels = batch_labels(data, &batch, encoder.device())?;
            let parts = configured_splade_loss(
                &embeddings,
                labels.as_ref(),
                &config.loss,
                (lambda_q, lambda_d),
            )?;
            let loss = parts.total.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !loss.is_finite() {
                return Err(diverged(step + 1, &format!("the loss is {loss}"), output));
            }
            let scaled = (&parts.total / accumulation as f64)?;
            let micro = scaled.backward()?;
            match &mut grads {
                None => grads = Some(micro),
                Some(acc) => accumulate(&vars, acc, micro)?,
            }
            let scalar = |t: &candle_core::Tensor| -> Result<f64> {
                Ok(t.to_scalar::<f32>()? as f64 / accumulation as f64)
            };
            window.0 += scalar(&parts.total)?;
            window.1 += scalar(&parts.base)?;
            window.2 += scalar(&parts.query_regularizer)?;
            window.3 += scalar(&parts.document_regularizer)?;
        }
        let Some(mut grads) = grads else { break };
        if let Some(max_norm) = config.max_grad_norm {
            let norm = clip_gradients(&vars, &mut grads, max_norm)?;
            if !norm.is_finite() {
                return Err(diverged(
                    step + 1,
                    &format!("the gradient norm is {norm}"),
                    output,
                ));
            }
        }
        optimizer.step(&grads)?;
        step += 1;
        bar.inc(1);
        window.4 += 1;
        if step % config.logging_steps.max(1) == 0 || step == total_steps {
            let n = window.4 as f64;
            let entry = LogEntry {
                step,
                epoch: step as f64 / steps_per_epoch as f64,
                loss: window.0 / n,
                base_loss: window.1 / n,
                query_regularizer_loss: window.2 / n,
                document_regularizer_loss: window.3 / n,
                learning_rate: lr,
                lambdas: (lambda_q, lambda_d),
                seconds_per_step: window_start.elapsed().as_secs_f64() / n,
            };
            bar.set_message(format!("loss {:.4}", entry.loss));
            bar.suspend(|| on_log(&entry));
            report.log.push(entry);
            window = (0.0, 0.0, 0.0, 0.0, 0);
            window_start = Instant::now();
        }
        let eval_now =
            config.eval_steps.is_some_and(|e| e > 0 && step % e == 0) || step == total_steps;
        if eval_now {
            let metrics = bar.suspend(|| evaluate(&encoder, step))?;
            if let Some(name) = &config.best_metric {
                let value = *metrics.get(name).ok_or_else(|| {
                    EncoderError::InvalidArgument(format!(
                        "best metric '{name}' is not among the evaluation's metrics ({})",
                        metrics.keys().cloned().collect::<Vec<_>>().join(", ")
                    ))
                })?;
                if best.is_none_or(|(b, _)| value > b) {
                    best = Some((value, step));
                }
            }
            report.evaluations.push((step, metrics));
            save_checkpoint(step, epoch, queue.len(), best, &report, &optimizer)?;
        }
    }
    bar.finish_and_clear();
    report.steps = step;
    report.best_step = best.map(|(_, s)| s);
    // The final model: the best checkpoint's weights when a best metric was chosen.
    let final_source = match report.best_step {
        Some(s) if s != step => Some(output.join(format!("checkpoint-{s}"))),
        _ => None,
    };
    match final_source {
        Some(dir) => {
            let (best_encoder, best_vars) =
                SparseEncoder::load_trainable(&dir, &candle_core::Device::Cpu)?;
            save_model(&best_encoder, &best_vars, &output.join("final"), |_| Ok(()))?;
        }
        None => save_model(&encoder, &vars, &output.join("final"), |_| Ok(()))?,
    }
    Ok(report)
}

/// The error of a run whose loss or gradients stopped being finite at `step`: nothing of that
/// step is saved, so the output keeps its last (finite) checkpoint.
fn diverged(step: usize, what: &str, output: &Path) -> EncoderError {
    let last = std::fs::read_dir(output)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_prefix("checkpoint-")?
                .parse::<usize>()
                .ok()
        })
        .max();
    EncoderError::Training {
        step,
        message: format!(
            "{what} (NaN or infinite): training diverged, stopping without saving this step; {} \
             (try a lower learning rate, or check the data and labels)",
            match last {
                Some(s) => format!(
                    "the last good checkpoint is {}",
                    output.join(format!("checkpoint-{s}")).display()
                ),
                None => "no checkpoint was written yet".to_string(),
            }
        ),
    }
}

/// The seed of the dropout masks of one micro-batch: a function of the run's seed and the
/// position in the run only, so a resumed run draws the same masks as an uninterrupted one.
fn dropout_seed(seed: u64, step: usize, micro: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((step as u64) << 16).wrapping_add(micro as u64)
}

/// The labels of a batch's rows as a `[rows, values]` tensor, when the data has labels.
fn batch_labels(
    data: &TrainingData,
    batch: &[usize],
    device: &candle_core::Device,
) -> Result<Option<candle_core::Tensor>> {
    if data.labels.is_empty() {
        return Ok(None);
    }
    let width = data.labels[0].len();
    let flat: Vec<f32> = batch
        .iter()
        .flat_map(|&r| data.labels[r].iter().copied())
        .collect();
    Ok(Some(candle_core::Tensor::from_vec(
        flat,
        (batch.len(), width),
        device,
    )?))
}
