//! The training loop: batches from a sampler, SpladeLoss with the regulariser warm-up, AdamW
//! with a linear learning-rate schedule, gradient clipping and accumulation, logging,
//! periodic evaluation with checkpoints, and keeping the best model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::DType;
use splade_encoder::{SparseEncoder, TrainableEncoder};

use crate::checkpoint::{
    checkpoint_dir, last_checkpoint, read_checkpoint, write_checkpoint, TrainerState,
};
use crate::data::TrainingData;
use crate::error::{Result, TrainError};
use crate::loss::{BaseLoss, CsrLossConfig, SpladeLossConfig};
use crate::optim::AdamWConfig;
use crate::sampler::{batches, BatchSampler};
use crate::save::save_model;
use crate::schedule::{linear_lr, regularizer_weight, WarmupShape};
use crate::step::{DecayFilter, MicroBatch, StepConfig, StepLosses, TrainStep};

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
    /// A CSR model's CSRLoss (beta, gamma) and autoencoder `k` / `k_aux` overrides; a SPLADE
    /// model ignores it.
    pub csr: CsrLossConfig,
    /// Fraction of steps over which the regulariser weights warm up (1/3), and how.
    pub regularizer_warmup: (f64, WarmupShape),
    /// Log every N steps.
    pub logging_steps: usize,
    /// Rows per batch of the evaluation loss (`per_device_eval_batch_size`, 8).
    pub eval_batch_size: usize,
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
    /// Precision of the activations: `F32` (default) or `BF16` (mixed precision, for GPUs).
    pub precision: DType,
    /// `Some(m)`: `CachedSpladeLoss` (GradCache) with mini-batches of `m` rows, for large
    /// batches in small memory (same loss and gradients; see
    /// [`TrainStep::set_gradient_cache`]); `None` (default): plain SpladeLoss.
    pub gradient_cache: Option<usize>,
    /// sentence-transformers' `router_mapping`: training column name → task (`query`,
    /// `document`, ...), which a Router model resolves to the route encoding that column. A
    /// Router model needs it (as sentence-transformers' trainer does); columns left out take
    /// the default route. A plain model ignores it.
    pub router_mapping: Vec<(String, String)>,
    /// sentence-transformers' `learning_rate_mapping`: `(regex, learning rate)` pairs (see
    /// [`StepConfig::learning_rate_mapping`]).
    pub learning_rate_mapping: Vec<(String, f64)>,
}

impl TrainConfig {
    /// Refuses hyper-parameters that would train nothing or a NaN model: non-finite or
    /// out-of-range numbers and zero counts. The message names the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, expected: &str, value: String| {
            Err(TrainError::Config {
                field: field.to_string(),
                expected: expected.to_string(),
                value,
            })
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
        match self.loss.base {
            BaseLoss::CoSent { scale } | BaseLoss::AnglE { scale } => {
                finite("loss.scale", scale, 0.0, false, f64::INFINITY)?;
            }
            BaseLoss::Triplet { margin, .. } => {
                finite(
                    "loss.margin",
                    margin,
                    f64::NEG_INFINITY,
                    false,
                    f64::INFINITY,
                )?;
            }
            BaseLoss::DistillKlDiv {
                student_temperature,
                teacher_temperature,
            } => {
                finite(
                    "loss.student_temperature",
                    student_temperature,
                    0.0,
                    false,
                    f64::INFINITY,
                )?;
                finite(
                    "loss.teacher_temperature",
                    teacher_temperature,
                    0.0,
                    false,
                    f64::INFINITY,
                )?;
            }
            _ => {}
        }
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
            ("gradient_cache", self.gradient_cache),
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
            csr: CsrLossConfig::default(),
            regularizer_warmup: (1.0 / 3.0, WarmupShape::Quadratic),
            logging_steps: 50,
            eval_batch_size: 8,
            eval_steps: None,
            best_metric: None,
            stop: None,
            resume_from: None,
            show_progress: false,
            precision: DType::F32,
            gradient_cache: None,
            router_mapping: Vec::new(),
            learning_rate_mapping: Vec::new(),
        }
    }
}

/// The metric key of the loss on the evaluation rows ([`Trainer::set_eval_data`]).
pub const EVAL_LOSS: &str = "eval_loss";

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
    /// A CSR model's mean `reconstruction_loss_k`, `reconstruction_loss_4k` and
    /// `reconstruction_loss_aux` (CSRLoss; 0 otherwise).
    #[serde(default)]
    pub reconstruction_losses: [f64; 3],
    /// Learning rate used by this step.
    pub learning_rate: f64,
    /// Current λ_query and λ_document.
    pub lambdas: (f64, f64),
    /// Seconds per step since the last log.
    pub seconds_per_step: f64,
}

/// Evaluation results at a step: metric name to value.
pub type Metrics = BTreeMap<String, f64>;

/// What [`Trainer::run_observed`] tells its caller while a run goes on (a progress display, a
/// Python callback). Every method has an empty default.
pub trait TrainObserver {
    /// After each optimiser step: `step` (1-based) of `total`.
    fn stepped(&mut self, _step: usize, _total: usize) {}
    /// After each log entry (every `logging_steps`).
    fn logged(&mut self, _entry: &LogEntry) {}
    /// After each evaluation, with its metrics.
    fn evaluated(&mut self, _step: usize, _metrics: &Metrics) {}
}

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

/// The step counts of a run, fixed before it starts.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Optimiser steps per epoch.
    steps_per_epoch: usize,
    /// Optimiser steps of the run.
    total_steps: usize,
    /// Steps with a rising learning rate.
    warmup_steps: usize,
}

/// Running sums of the losses since the last log entry.
#[derive(Debug, Clone, Copy)]
struct Window {
    losses: StepLosses,
    steps: usize,
    start: Instant,
}

impl Window {
    fn new() -> Self {
        Self {
            losses: StepLosses::default(),
            steps: 0,
            start: Instant::now(),
        }
    }
}

/// A training run in phases: [`Trainer::new`] (checks, the optimiser), [`Trainer::resume`]
/// (from a checkpoint), [`Trainer::step`] (one optimiser step through [`TrainStep::step`],
/// the step the PyTorch parity tests check, and the log), [`Trainer::evaluate`] (metrics, the
/// best step, a checkpoint), [`Trainer::checkpoint`] and [`Trainer::finish`] (the final or
/// best model into `output/final`). [`Trainer::run`] runs them in order; [`train`] is the
/// one-call form.
pub struct Trainer<'a> {
    data: &'a TrainingData,
    /// Evaluation rows and their batch size, whose loss each evaluation adds as `eval_loss`.
    eval_data: Option<(&'a TrainingData, usize)>,
    config: &'a TrainConfig,
    output: PathBuf,
    step: TrainStep,
    plan: Plan,
    /// Optimiser steps taken.
    steps_done: usize,
    /// Epochs whose batch order has been drawn.
    epoch: u64,
    /// The current epoch's remaining micro-batches, next last.
    queue: Vec<Vec<usize>>,
    best: Option<(f64, usize)>,
    report: TrainReport,
    window: Window,
}

impl<'a> Trainer<'a> {
    /// Checks the configuration against the data and builds the step (optimiser, precision,
    /// dropout). Checkpoints go to `output/checkpoint-STEP`, the final (or best) model to
    /// `output/final`.
    pub fn new(
        encoder: TrainableEncoder,
        data: &'a TrainingData,
        config: &'a TrainConfig,
        output: &Path,
    ) -> Result<Self> {
        config.validate()?;
        check_data(data, config)?;
        let column_tasks = column_tasks(&encoder, data, config)?;
        let step = TrainStep::new(
            encoder,
            StepConfig {
                adamw: AdamWConfig {
                    lr: config.learning_rate,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: config.weight_decay,
                },
                // Weight decay as sentence-transformers' trainer groups it: not on biases and
                // LayerNorms.
                decay: DecayFilter::LikeHfTrainer,
                loss: config.loss,
                max_grad_norm: config.max_grad_norm,
                dropout_seed: config.dropout.then_some(config.seed),
                precision: config.precision,
                column_tasks,
                learning_rate_mapping: config.learning_rate_mapping.clone(),
            },
        )?;
        let mut step = step;
        step.set_gradient_cache(config.gradient_cache)?;
        if step.encoder().is_csr() {
            step.set_csr_loss(config.csr)?;
        }
        let micro_per_epoch = batches(
            &data.rows,
            config.batch_size,
            config.sampler,
            config.seed,
            0,
            false,
        )
        .len();
        let steps_per_epoch = micro_per_epoch
            .div_ceil(config.gradient_accumulation.max(1))
            .max(1);
        let total_steps = config
            .max_steps
            .unwrap_or_else(|| (config.epochs * steps_per_epoch as f64).ceil() as usize)
            .max(1);
        let warmup_steps = (config.warmup_ratio * total_steps as f64).ceil() as usize;
        Ok(Self {
            data,
            eval_data: None,
            config,
            output: output.to_path_buf(),
            step,
            plan: Plan {
                steps_per_epoch,
                total_steps,
                warmup_steps,
            },
            steps_done: 0,
            epoch: 0,
            queue: Vec::new(),
            best: None,
            report: TrainReport {
                output: output.to_path_buf(),
                ..TrainReport::default()
            },
            window: Window::new(),
        })
    }

    /// The step being driven (its encoder, variables and optimiser).
    pub fn train_step(&self) -> &TrainStep {
        &self.step
    }

    /// Optimiser steps taken so far.
    pub fn steps_done(&self) -> usize {
        self.steps_done
    }

    /// Optimiser steps of the whole run.
    pub fn total_steps(&self) -> usize {
        self.plan.total_steps
    }

    /// Whether every step of the run has been taken.
    pub fn is_done(&self) -> bool {
        self.steps_done >= self.plan.total_steps
    }

    /// Phase *resume*: continues from a checkpoint folder (its optimiser state, step, batch
    /// position and logs). The encoder given to [`Self::new`] must hold the same folder's
    /// weights.
    pub fn resume(&mut self, checkpoint: &Path) -> Result<()> {
        let state = read_checkpoint(checkpoint, &mut self.step)?;
        self.steps_done = state.step;
        self.epoch = state.epochs_started;
        self.queue.clear();
        if self.epoch > 0 {
            self.queue = self.epoch_batches(self.epoch - 1);
            self.queue.reverse();
            for _ in 0..state.consumed_in_epoch {
                self.queue.pop();
            }
        }
        self.best = state.best;
        self.report.log = state.log;
        self.report.evaluations = state.evaluations;
        Ok(())
    }

    fn epoch_batches(&self, epoch: u64) -> Vec<Vec<usize>> {
        batches(
            &self.data.rows,
            self.config.batch_size,
            self.config.sampler,
            self.config.seed,
            epoch,
            false,
        )
    }

    /// The next micro-batch's rows, drawing the next epoch's order when one ends.
    fn next_batch(&mut self) -> Option<Vec<usize>> {
        if self.queue.is_empty() {
            self.queue = self.epoch_batches(self.epoch);
            self.queue.reverse();
            self.epoch += 1;
        }
        self.queue.pop()
    }

    /// The regulariser weights (λ_query, λ_document) at the current step.
    fn lambdas(&self) -> (f64, f64) {
        let (fraction, shape) = self.config.regularizer_warmup;
        let at = |lambda| {
            regularizer_weight(
                lambda,
                self.steps_done,
                self.plan.total_steps,
                fraction,
                shape,
            )
        };
        (
            at(self.config.loss.lambda_query),
            at(self.config.loss.lambda_document),
        )
    }

    /// Phase *step*: one optimiser step over the next `gradient_accumulation` micro-batches,
    /// with the scheduled learning rate and regulariser weights. Returns the log entry when
    /// this step ends a logging window. A divergence names the last good checkpoint.
    pub fn step(&mut self) -> Result<Option<LogEntry>> {
        let lambdas = self.lambdas();
        let lr = linear_lr(
            self.config.learning_rate,
            self.steps_done,
            self.plan.warmup_steps,
            self.plan.total_steps,
        );
        self.step.set_learning_rate(lr);
        let accumulation = self.config.gradient_accumulation.max(1);
        let data = self.data;
        let mut rows = Vec::with_capacity(accumulation);
        for _ in 0..accumulation {
            match self.next_batch() {
                Some(batch) => rows.push(batch),
                None => break,
            }
        }
        let device = self.step.encoder().device().clone();
        let micro_batches = rows
            .iter()
            .map(|batch| {
                Ok(MicroBatch {
                    columns: (0..data.columns.len())
                        .map(|c| batch.iter().map(|&r| data.rows[r][c].as_str()).collect())
                        .collect(),
                    labels: batch_labels(data, batch, &device)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let losses = self
            .step
            .step(self.steps_done, &micro_batches, lambdas)
            .map_err(|e| self.with_last_checkpoint(e))?;
        self.steps_done += 1;
        let w = &mut self.window;
        w.losses.total += losses.total;
        w.losses.base += losses.base;
        w.losses.query_regularizer += losses.query_regularizer;
        w.losses.document_regularizer += losses.document_regularizer;
        for (acc, x) in w
            .losses
            .reconstruction
            .iter_mut()
            .zip(losses.reconstruction)
        {
            *acc += x;
        }
        w.steps += 1;
        let step = self.steps_done;
        if step % self.config.logging_steps.max(1) != 0 && step != self.plan.total_steps {
            return Ok(None);
        }
        let n = w.steps as f64;
        let entry = LogEntry {
            step,
            epoch: step as f64 / self.plan.steps_per_epoch as f64,
            loss: w.losses.total / n,
            base_loss: w.losses.base / n,
            query_regularizer_loss: w.losses.query_regularizer / n,
            document_regularizer_loss: w.losses.document_regularizer / n,
            reconstruction_losses: w.losses.reconstruction.map(|x| x / n),
            learning_rate: lr,
            lambdas,
            seconds_per_step: w.start.elapsed().as_secs_f64() / n,
        };
        self.report.log.push(entry.clone());
        self.window = Window::new();
        Ok(Some(entry))
    }

    /// A divergence error naming the output's last good checkpoint.
    fn with_last_checkpoint(&self, e: TrainError) -> TrainError {
        match e {
            TrainError::Diverged {
                step, what, source, ..
            } => TrainError::Diverged {
                step,
                what,
                last_checkpoint: last_checkpoint(&self.output),
                source,
            },
            other => other,
        }
    }

    /// Whether the configuration asks for an evaluation after the current step (every
    /// `eval_steps`, and after the last step).
    pub fn evaluation_due(&self) -> bool {
        let step = self.steps_done;
        self.config
            .eval_steps
            .is_some_and(|e| e > 0 && step % e == 0)
            || step == self.plan.total_steps
    }

    /// Sets evaluation rows (sentence-transformers' `eval_dataset`): every evaluation then
    /// also computes the loss on them, `batch_size` rows at a time in file order without
    /// dropout, and records it as [`EVAL_LOSS`] (the card's "Validation Loss"). The rows must
    /// suit the loss as the training rows do.
    pub fn set_eval_data(&mut self, data: &'a TrainingData, batch_size: usize) -> Result<()> {
        check_data(data, self.config).map_err(|e| match e {
            TrainError::InvalidData(m) => TrainError::InvalidData(format!("eval_dataset: {m}")),
            e => e,
        })?;
        if data.columns.len() != self.data.columns.len() {
            return Err(TrainError::InvalidData(format!(
                "eval_dataset: {} columns ({}), the training rows have {} ({})",
                data.columns.len(),
                data.columns.join(", "),
                self.data.columns.len(),
                self.data.columns.join(", ")
            )));
        }
        self.eval_data = Some((data, batch_size.max(1)));
        Ok(())
    }

    /// The loss on the evaluation rows: the mean of the batch losses weighted by batch size,
    /// as Hugging Face's evaluation loop averages them; `None` without evaluation rows.
    pub fn eval_loss(&self) -> Result<Option<f64>> {
        let Some((data, batch_size)) = self.eval_data else {
            return Ok(None);
        };
        let device = self.step.encoder().device().clone();
        let lambdas = self.lambdas();
        let (mut sum, mut n) = (0.0, 0usize);
        let order: Vec<usize> = (0..data.rows.len()).collect();
        for batch in order.chunks(batch_size) {
            let micro = MicroBatch {
                columns: (0..data.columns.len())
                    .map(|c| batch.iter().map(|&r| data.rows[r][c].as_str()).collect())
                    .collect(),
                labels: batch_labels(data, batch, &device)?,
            };
            let loss = self.step.eval_loss(self.steps_done, &micro, lambdas)?;
            sum += loss * batch.len() as f64;
            n += batch.len();
        }
        Ok(Some(sum / n.max(1) as f64))
    }

    /// Phase *evaluate*: `evaluate` on the current model (plus [`EVAL_LOSS`] with evaluation
    /// rows), the best step so far by the configured metric (lower is better for a loss), and
    /// a checkpoint of this step; returns the metrics.
    pub fn evaluate(
        &mut self,
        evaluate: impl FnOnce(&SparseEncoder, usize) -> Result<Metrics>,
    ) -> Result<Metrics> {
        let step = self.steps_done;
        let mut metrics = evaluate(self.step.encoder(), step)?;
        if let Some(loss) = self.eval_loss()? {
            metrics.insert(EVAL_LOSS.to_string(), loss);
        }
        if let Some(name) = &self.config.best_metric {
            let value = *metrics.get(name).ok_or_else(|| TrainError::UnknownMetric {
                name: name.clone(),
                available: metrics.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
            // A loss is better lower (Hugging Face's `greater_is_better` default).
            let better = |b: f64| {
                if name.ends_with("loss") {
                    value < b
                } else {
                    value > b
                }
            };
            if self.best.is_none_or(|(b, _)| better(b)) {
                self.best = Some((value, step));
            }
        }
        self.report.evaluations.push((step, metrics.clone()));
        self.checkpoint()?;
        Ok(metrics)
    }

    /// Phase *checkpoint*: saves the weights plus everything needed to resume, atomically,
    /// into `output/checkpoint-STEP`, and returns that folder.
    pub fn checkpoint(&self) -> Result<PathBuf> {
        let consumed_in_epoch = if self.epoch > 0 {
            self.epoch_batches(self.epoch - 1).len() - self.queue.len()
        } else {
            0
        };
        write_checkpoint(
            &self.output,
            &self.step,
            TrainerState {
                step: self.steps_done,
                epochs_started: self.epoch,
                consumed_in_epoch,
                optimizer_step: 0,
                best: self.best,
                log: self.report.log.clone(),
                evaluations: self.report.evaluations.clone(),
            },
        )
    }

    /// Phase *finish*: writes the final model into `output/final` (the best checkpoint's
    /// weights when a best metric was chosen and another step won) and returns the report.
    pub fn finish(mut self) -> Result<TrainReport> {
        self.report.steps = self.steps_done;
        self.report.best_step = self.best.map(|(_, s)| s);
        let final_dir = self.output.join("final");
        match self.report.best_step {
            Some(s) if s != self.steps_done => {
                let best = TrainableEncoder::load(
                    &checkpoint_dir(&self.output, s),
                    &candle_core::Device::Cpu,
                )?;
                save_model(&best, best.vars(), &final_dir, |_| Ok(()))?;
            }
            _ => save_model(
                self.step.encoder(),
                self.step.vars(),
                &final_dir,
                |_| Ok(()),
            )?,
        }
        Ok(self.report)
    }

    /// Stops early: saves a checkpoint of the last finished step and returns the report with
    /// [`TrainReport::interrupted_at`] set.
    pub fn interrupt(mut self) -> Result<TrainReport> {
        let checkpoint = self.checkpoint()?;
        self.report.steps = self.steps_done;
        self.report.interrupted_at = Some(checkpoint);
        Ok(self.report)
    }

    /// Runs the phases: resume (when configured), then steps with logging and evaluations
    /// until the run ends or [`TrainConfig::stop`] is set, then finish. `evaluate` is called
    /// every `eval_steps` and at the end with the current model; `on_log` with each log entry.
    pub fn run(
        self,
        evaluate: impl FnMut(&SparseEncoder, usize) -> Result<Metrics>,
        on_log: impl FnMut(&LogEntry),
    ) -> Result<TrainReport> {
        struct LogOnly<F>(F);
        impl<F: FnMut(&LogEntry)> TrainObserver for LogOnly<F> {
            fn logged(&mut self, entry: &LogEntry) {
                (self.0)(entry)
            }
        }
        self.run_observed(evaluate, &mut LogOnly(on_log))
    }

    /// [`Trainer::run`] telling `observer` of every step, log entry and evaluation.
    pub fn run_observed(
        mut self,
        mut evaluate: impl FnMut(&SparseEncoder, usize) -> Result<Metrics>,
        observer: &mut dyn TrainObserver,
    ) -> Result<TrainReport> {
        if let Some(dir) = &self.config.resume_from {
            self.resume(dir)?;
        }
        let bar = progress_bar(self.config.show_progress, self.plan.total_steps);
        bar.set_position(self.steps_done as u64);
        while !self.is_done() {
            if self
                .config
                .stop
                .as_ref()
                .is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst))
            {
                return self.interrupt();
            }
            let entry = self.step()?;
            bar.inc(1);
            observer.stepped(self.steps_done, self.plan.total_steps);
            if let Some(entry) = entry {
                bar.set_message(format!("loss {:.4}", entry.loss));
                bar.suspend(|| observer.logged(&entry));
            }
            if self.evaluation_due() {
                bar.suspend(|| -> Result<()> {
                    let metrics = self.evaluate(&mut evaluate)?;
                    observer.evaluated(self.steps_done, &metrics);
                    Ok(())
                })?;
            }
        }
        bar.finish_and_clear();
        self.finish()
    }
}

fn progress_bar(show: bool, total_steps: usize) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total_steps as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] step {pos}/{len} ({per_sec}, {eta} left) {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// Refuses data the configured loss cannot train on.
/// The task of each training column from `router_mapping`, as sentence-transformers' data
/// collator looks each column up: a Router model without a mapping is refused as its trainer
/// refuses it; a mapped column that the data does not have is refused (a typo would otherwise
/// silently send it to the default route).
fn column_tasks(
    encoder: &TrainableEncoder,
    data: &TrainingData,
    config: &TrainConfig,
) -> Result<Vec<Option<String>>> {
    let mapping = &config.router_mapping;
    if let Some(router) = &encoder.folder().router {
        if mapping.is_empty() {
            return Err(TrainError::Config {
                field: "router_mapping".into(),
                expected: format!(
                    "a mapping from the training columns to the Router's routes ({}), e.g.                      --router-mapping {}=query,{}=document (the model {} is a Router, as                      sentence-transformers' trainer requires it)",
                    router.routes_string(),
                    data.columns[0],
                    data.columns[1],
                    router.config_path.display()
                ),
                value: "none".into(),
            });
        }
    }
    for (column, task) in mapping {
        if !data.columns.contains(column) {
            return Err(TrainError::Config {
                field: "router_mapping".into(),
                expected: format!(
                    "training column names as keys (columns: {})",
                    data.columns.join(", ")
                ),
                value: format!("{column}={task}"),
            });
        }
    }
    let tasks: Vec<Option<String>> = data
        .columns
        .iter()
        .map(|c| {
            mapping
                .iter()
                .rev()
                .find(|(k, _)| k == c)
                .map(|(_, t)| t.clone())
        })
        .collect();
    for task in &tasks {
        encoder
            .training_route(task.as_deref())
            .map_err(|e| TrainError::Config {
                field: "router_mapping".into(),
                expected: format!("tasks the model's Router resolves ({e})"),
                value: task.clone().unwrap_or_else(|| "(no task)".into()),
            })?;
    }
    Ok(tasks)
}

fn check_data(data: &TrainingData, config: &TrainConfig) -> Result<()> {
    if data.rows.is_empty() {
        return Err(TrainError::InvalidData("no training rows".into()));
    }
    let base = config.loss.base;
    let name = base.class_name();
    if base == BaseLoss::Mse {
        if data.columns.is_empty() {
            return Err(TrainError::InvalidData(
                "SparseMSELoss needs at least one text column".into(),
            ));
        }
    } else if data.columns.len() < 2 {
        return Err(TrainError::InvalidData(
            "training rows need at least an anchor and a positive".into(),
        ));
    }
    if base.needs_labels() && data.labels.len() != data.rows.len() {
        let what = match base {
            BaseLoss::MarginMse => "teacher margins or scores",
            BaseLoss::Mse => "teacher embeddings",
            BaseLoss::DistillKlDiv { .. } => "teacher scores of every candidate column",
            _ => "one gold score per pair",
        };
        return Err(TrainError::InvalidData(format!(
            "{name} needs a label column ({what}: `label` or `score`, or the one named by the \
             column mapping)"
        )));
    }
    let width = data.labels.first().map_or(0, Vec::len);
    match base {
        BaseLoss::MarginMse if data.columns.len() < 3 => {
            return Err(TrainError::InvalidData(
                "SparseMarginMSELoss needs (query, positive, negative…) rows".into(),
            ));
        }
        BaseLoss::Triplet { .. } if data.columns.len() != 3 => {
            return Err(TrainError::InvalidData(format!(
                "{name} needs (anchor, positive, negative) rows, got {} columns",
                data.columns.len()
            )));
        }
        BaseLoss::DistillKlDiv { .. }
            if data.columns.len() < 3 || width != data.columns.len() - 1 =>
        {
            return Err(TrainError::InvalidData(format!(
                "{name} needs (query, candidate_1, candidate_2, …) rows with one teacher score \
                 per candidate, got {} columns and {width} label value(s) per row",
                data.columns.len()
            )));
        }
        BaseLoss::CosineSimilarity | BaseLoss::CoSent { .. } | BaseLoss::AnglE { .. }
            if width != 1 =>
        {
            return Err(TrainError::InvalidData(format!(
                "{name} needs one score per pair, got {width} label value(s) per row"
            )));
        }
        _ => {}
    }
    Ok(())
}

/// Runs training ([`Trainer::new`] then [`Trainer::run`]). `evaluate` is called every
/// `eval_steps` and at the end with the current model; checkpoints go to
/// `output/checkpoint-STEP`, the final (or best) model to `output/final`.
pub fn train(
    encoder: TrainableEncoder,
    data: &TrainingData,
    config: &TrainConfig,
    output: &Path,
    evaluate: impl FnMut(&SparseEncoder, usize) -> Result<Metrics>,
    on_log: impl FnMut(&LogEntry),
) -> Result<TrainReport> {
    Trainer::new(encoder, data, config, output)?.run(evaluate, on_log)
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
