//! `splade train`: SpladeLoss fine-tuning from the command line or a TOML config.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::Deserialize;
use splade_encoder::{
    default_model::DEFAULT_MODEL, hub::resolve_model, SparseEncoder, TrainableEncoder,
};
use splade_eval::{BinaryClassificationEvaluator, InformationRetrievalEvaluator};
use splade_train::data::{ColumnMapping, TrainingData};
use splade_train::output::{run_to_folder, RunInfo};
use splade_train::sampler::BatchSampler;
use splade_train::trainer::{Metrics, TrainConfig};
use splade_train::{BaseLoss, SpladeLossConfig, TrainError};

/// `--sampler` values (and the `sampler` key of a `--config` file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
pub enum SamplerArg {
    /// No text twice in a batch (sentence-transformers' NO_DUPLICATES).
    #[value(alias = "no_duplicates")]
    #[serde(rename = "no-duplicates", alias = "no_duplicates")]
    NoDuplicates,
    /// Plain shuffling.
    #[serde(rename = "shuffled")]
    Shuffled,
    /// File order, no shuffling.
    #[serde(rename = "sequential")]
    Sequential,
}

impl From<SamplerArg> for BatchSampler {
    fn from(s: SamplerArg) -> Self {
        match s {
            SamplerArg::NoDuplicates => BatchSampler::NoDuplicates,
            SamplerArg::Shuffled => BatchSampler::Shuffled,
            SamplerArg::Sequential => BatchSampler::Sequential,
        }
    }
}

/// `--loss` values (and the `loss` key of a `--config` file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
pub enum LossArg {
    /// SparseMultipleNegativesRankingLoss.
    #[serde(rename = "mnrl")]
    Mnrl,
    /// SparseMarginMSELoss: distillation onto teacher margins.
    #[value(alias = "margin_mse")]
    #[serde(rename = "margin-mse", alias = "margin_mse")]
    MarginMse,
}

impl From<LossArg> for BaseLoss {
    fn from(l: LossArg) -> Self {
        match l {
            LossArg::Mnrl => BaseLoss::MultipleNegativesRanking,
            LossArg::MarginMse => BaseLoss::MarginMse,
        }
    }
}

/// `--precision` values (and the `precision` key of a `--config` file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
pub enum PrecisionArg {
    /// f32 activations.
    #[serde(rename = "f32")]
    F32,
    /// bf16 activations, f32 weights (mixed precision; GPU only).
    #[serde(rename = "bf16")]
    Bf16,
}

/// Every option is a flag and may also be set in the `--config` TOML file (same names, with
/// underscores); flags win over the file, the file over the defaults (the seed's recipe).
#[derive(Args, Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct TrainArgs {
    /// TOML file with any of these options.
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Model to fine-tune: folder, Hub id or `splade-tiny` (default).
    #[arg(long)]
    model: Option<String>,
    /// Training rows: JSONL (`anchor`, `positive`, optional `negative`/`negative_N` fields),
    /// TSV or CSV with a header, or Parquet (a `.parquet` file or a folder of them, as a
    /// Hugging Face dataset split stores them).
    #[arg(long)]
    train: Option<PathBuf>,
    /// Output folder: `checkpoint-STEP/` per evaluation and `final/` (the best or last model).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Column holding the anchor.
    #[arg(long)]
    anchor_column: Option<String>,
    /// Column holding the positive.
    #[arg(long)]
    positive_column: Option<String>,
    /// Columns holding hard negatives, comma-separated (default: `negative`, `negative_N`).
    #[arg(long, value_delimiter = ',')]
    negative_columns: Option<Vec<String>>,
    /// Column holding the labels of `--loss margin-mse` (teacher margins, or the teacher
    /// scores of the positive then each negative; default: `label` or `score`).
    #[arg(long)]
    label_column: Option<String>,
    /// The loss SpladeLoss wraps: `mnrl` (SparseMultipleNegativesRankingLoss, default) or
    /// `margin-mse` (SparseMarginMSELoss: distillation onto teacher margins).
    #[arg(long, value_enum)]
    loss: Option<LossArg>,
    /// Passes over the data (default 1).
    #[arg(long)]
    epochs: Option<f64>,
    /// Stop after this many optimiser steps.
    #[arg(long)]
    max_steps: Option<usize>,
    /// Rows per batch (default 12).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate (default 2e-5).
    #[arg(long)]
    lr: Option<f64>,
    /// Fraction of steps with a rising learning rate (default 0).
    #[arg(long)]
    warmup_ratio: Option<f64>,
    /// AdamW weight decay (default 0).
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Gradient clipping max norm (default 1.0; 0 disables).
    #[arg(long)]
    max_grad_norm: Option<f64>,
    /// Micro-batches per optimiser step (default 1).
    #[arg(long)]
    gradient_accumulation: Option<usize>,
    /// Seed of the batch order (default 42).
    #[arg(long)]
    seed: Option<u64>,
    /// `no-duplicates` (default), `shuffled`, or `sequential` (file order, no shuffling).
    #[arg(long, value_enum)]
    sampler: Option<SamplerArg>,
    /// Apply the model config's dropout while training, as PyTorch's train mode does (default
    /// true); `--dropout false` trains without it.
    #[arg(long)]
    dropout: Option<bool>,
    /// λ_query of the FLOPS regulariser (default 5e-5).
    #[arg(long)]
    lambda_query: Option<f64>,
    /// λ_document of the FLOPS regulariser (default 3e-5).
    #[arg(long)]
    lambda_document: Option<f64>,
    /// Log every N steps (default 50).
    #[arg(long)]
    logging_steps: Option<usize>,
    /// Evaluate and checkpoint every N steps.
    #[arg(long)]
    eval_steps: Option<usize>,
    /// Evaluate and checkpoint every this fraction of the run (e.g. 0.2).
    #[arg(long)]
    eval_ratio: Option<f64>,
    /// Binary-classification evaluation pairs (TSV `sentence1 sentence2 label`).
    #[arg(long)]
    eval_pairs: Option<PathBuf>,
    /// One retrieval dataset for IR evaluation, in any layout `splade eval beir` reads: a
    /// BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) or a Hugging Face parquet
    /// folder (corpus/, queries/, qrels/), or a folder holding exactly one of those.
    #[arg(long)]
    eval_beir: Option<PathBuf>,
    /// Continue an interrupted or finished run from one of its `checkpoint-STEP` folders
    /// (weights, optimizer state, batch position and logs); use the run's other options.
    #[arg(long)]
    resume_from: Option<PathBuf>,
    /// Metric selecting the best checkpoint (e.g. `eval_dot_ap`, `scifact_dot_ndcg@10`).
    #[arg(long)]
    best_metric: Option<String>,
    /// Where to train: `cpu` (default), `cuda`, `cuda:N` or `auto` (a GPU when this build has
    /// the `cuda` feature and one is present).
    #[arg(long)]
    device: Option<String>,
    /// Activation precision: `f32` (default) or `bf16` (mixed precision: f32 weights,
    /// optimizer and normalisations; GPU only, compute capability 8.0 (Ampere) or newer; a CPU
    /// runs bf16 slower than f32).
    #[arg(long, value_enum)]
    precision: Option<PrecisionArg>,
    /// Train into an `--output` folder that already holds a run (`final/`, `checkpoint-N/`),
    /// replacing its models; without it such a folder is refused (unless resuming).
    #[arg(long)]
    #[serde(default)]
    overwrite: bool,
}

macro_rules! merge {
    ($flags:ident, $file:ident, $($field:ident),*) => {
        $( if $flags.$field.is_none() { $flags.$field = $file.$field.take(); } )*
    };
}

fn load_args(mut flags: TrainArgs) -> Result<TrainArgs> {
    if let Some(path) = flags.config.clone() {
        let text = splade_sparse::files::read_regular_text(
            &path,
            splade_sparse::files::MAX_METADATA_BYTES,
        )
        .with_context(|| format!("cannot read {}", path.display()))?;
        let mut file: TrainArgs =
            toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?;
        flags.overwrite |= file.overwrite;
        merge!(
            flags,
            file,
            model,
            train,
            output,
            anchor_column,
            positive_column,
            negative_columns,
            label_column,
            loss,
            epochs,
            max_steps,
            batch_size,
            lr,
            warmup_ratio,
            weight_decay,
            max_grad_norm,
            gradient_accumulation,
            seed,
            sampler,
            dropout,
            lambda_query,
            lambda_document,
            logging_steps,
            eval_steps,
            eval_ratio,
            eval_pairs,
            eval_beir,
            best_metric,
            resume_from,
            device,
            precision
        );
    }
    Ok(flags)
}

fn evaluator_metrics(
    encoder: &SparseEncoder,
    pairs: Option<&BinaryClassificationEvaluator>,
    ir: Option<&InformationRetrievalEvaluator>,
) -> splade_train::Result<Metrics> {
    let mut metrics = Metrics::new();
    if let Some(evaluator) = pairs {
        let result = evaluator.evaluate(encoder)?;
        metrics.extend(splade_eval::report::binary_keys(&result));
    }
    if let Some(evaluator) = ir {
        let result = evaluator.evaluate(encoder)?;
        metrics.extend(splade_eval::report::ir_keys(&result, true));
    }
    Ok(metrics)
}

/// Refuses hyper-parameters that would train nothing or a NaN model (non-finite or
/// out-of-range numbers, zero counts), naming the option, before any work starts.
fn validate_args(args: &TrainArgs) -> Result<()> {
    fn number(
        name: &str,
        value: Option<f64>,
        ok: impl Fn(f64) -> bool,
        expected: &str,
    ) -> Result<()> {
        match value {
            Some(v) if !v.is_finite() || !ok(v) => bail!(
                "--{name} (`{}` in a --config file): expected {expected}, got {v}",
                name.replace('-', "_")
            ),
            _ => Ok(()),
        }
    }
    number("lr", args.lr, |v| v > 0.0, "a finite number > 0")?;
    number("epochs", args.epochs, |v| v > 0.0, "a finite number > 0")?;
    number(
        "warmup-ratio",
        args.warmup_ratio,
        |v| (0.0..=1.0).contains(&v),
        "a number in [0, 1]",
    )?;
    number(
        "weight-decay",
        args.weight_decay,
        |v| v >= 0.0,
        "a finite number >= 0",
    )?;
    number(
        "max-grad-norm",
        args.max_grad_norm,
        |v| v >= 0.0,
        "a finite number >= 0 (0 disables clipping)",
    )?;
    number(
        "lambda-query",
        args.lambda_query,
        |v| v >= 0.0,
        "a finite number >= 0",
    )?;
    number(
        "lambda-document",
        args.lambda_document,
        |v| v >= 0.0,
        "a finite number >= 0",
    )?;
    number(
        "eval-ratio",
        args.eval_ratio,
        |v| v > 0.0 && v <= 1.0,
        "a number in (0, 1]",
    )?;
    for (name, value) in [
        ("max-steps", args.max_steps),
        ("batch-size", args.batch_size),
        ("gradient-accumulation", args.gradient_accumulation),
        ("logging-steps", args.logging_steps),
        ("eval-steps", args.eval_steps),
    ] {
        if value == Some(0) {
            bail!(
                "--{name} (`{}` in a --config file): expected at least 1, got 0",
                name.replace('-', "_")
            );
        }
    }
    Ok(())
}

/// Checks `--output` before any work (see [`splade_train::output::prepare_folder`]).
fn prepare_output(output: &Path) -> Result<()> {
    splade_train::output::prepare_folder(output).context("--output")
}

/// Refuses an `--output` folder holding an earlier run's models, unless resuming or
/// `--overwrite` (see [`splade_train::output::check_earlier_run`]); names the flags.
fn check_earlier_run(output: &Path, resuming: bool, overwrite: bool) -> Result<()> {
    match splade_train::output::check_earlier_run(output, resuming, overwrite) {
        Err(TrainError::EarlierRun { path, found }) => bail!(
            "--output {}: already holds a training run ({}); choose another folder, \
             continue it with --resume-from, or pass --overwrite to replace its models",
            path.display(),
            found.join(", ")
        ),
        other => other.context("--output"),
    }
}

/// Runs `splade train`.
pub fn run(args: TrainArgs) -> Result<()> {
    let args = load_args(args)?;
    validate_args(&args)?;
    let Some(train_path) = args.train.as_deref() else {
        bail!("--train FILE is required")
    };
    let Some(output) = args.output.as_deref() else {
        bail!("--output DIR is required")
    };
    prepare_output(output)?;
    let model = args
        .model
        .clone()
        .unwrap_or_else(|| DEFAULT_MODEL.to_string());
    let defaults = TrainConfig::default();
    let sampler = args.sampler.map_or(defaults.sampler, BatchSampler::from);
    let mapping = ColumnMapping {
        anchor: args
            .anchor_column
            .clone()
            .unwrap_or_else(|| "anchor".into()),
        positive: args
            .positive_column
            .clone()
            .unwrap_or_else(|| "positive".into()),
        negatives: args.negative_columns.clone().unwrap_or_default(),
        label: args.label_column.clone(),
    };
    let base_loss = args.loss.map_or(defaults.loss.base, BaseLoss::from);
    let data = TrainingData::read(train_path, &mapping)?;
    if data.rows.is_empty() {
        bail!("{}: no training rows", train_path.display());
    }
    check_earlier_run(output, args.resume_from.is_some(), args.overwrite)?;
    let mut config = TrainConfig {
        batch_size: args.batch_size.unwrap_or(defaults.batch_size),
        epochs: args.epochs.unwrap_or(defaults.epochs),
        max_steps: args.max_steps,
        learning_rate: args.lr.unwrap_or(defaults.learning_rate),
        warmup_ratio: args.warmup_ratio.unwrap_or(defaults.warmup_ratio),
        weight_decay: args.weight_decay.unwrap_or(defaults.weight_decay),
        max_grad_norm: match args.max_grad_norm {
            Some(x) if x <= 0.0 => None,
            Some(x) => Some(x),
            None => defaults.max_grad_norm,
        },
        gradient_accumulation: args.gradient_accumulation.unwrap_or(1),
        seed: args.seed.unwrap_or(defaults.seed),
        dropout: args.dropout.unwrap_or(defaults.dropout),
        sampler,
        loss: SpladeLossConfig {
            lambda_query: args.lambda_query.unwrap_or(defaults.loss.lambda_query),
            lambda_document: args
                .lambda_document
                .unwrap_or(defaults.loss.lambda_document),
            scale: 1.0,
            base: base_loss,
        },
        logging_steps: args.logging_steps.unwrap_or(defaults.logging_steps),
        eval_steps: args.eval_steps,
        best_metric: args.best_metric.clone(),
        show_progress: true,
        ..defaults
    };
    if let Some(ratio) = args.eval_ratio {
        let steps = config.max_steps.unwrap_or_else(|| {
            let per_epoch = data.rows.len().div_ceil(config.batch_size.max(1));
            (config.epochs * per_epoch as f64).ceil() as usize
        });
        config.eval_steps = Some(((steps as f64 * ratio).round() as usize).max(1));
    }
    let pairs = match &args.eval_pairs {
        Some(p) => Some(BinaryClassificationEvaluator::new(
            splade_eval::data::read_binary_pairs(p)?,
            "eval",
        )?),
        None => None,
    };
    let ir = match &args.eval_beir {
        Some(dir) => {
            // The layouts `splade eval beir` reads: a BEIR folder or a parquet one.
            let found = splade_eval::datasets::find_datasets(dir, "test", &[])?;
            let [dataset] = found.as_slice() else {
                let names: Vec<&str> = found.iter().map(|d| d.name.as_str()).collect();
                bail!(
                    "--eval-beir {}: {} datasets there ({}); give the folder of one",
                    dir.display(),
                    names.len(),
                    names.join(", ")
                );
            };
            Some(InformationRetrievalEvaluator::new(
                dataset.read("test")?,
                dataset.name.clone(),
            )?)
        }
        None => None,
    };
    // Ctrl-C: finish the step in flight, save a checkpoint, stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    config.stop = Some(stop);
    config.resume_from = args.resume_from.clone();
    let dir = match &args.resume_from {
        Some(checkpoint) => checkpoint.clone(),
        None => resolve_model(&model)?,
    };
    let device = splade_encoder::device::parse_device(args.device.as_deref().unwrap_or("cpu"))?;
    config.precision = match args.precision.unwrap_or(PrecisionArg::F32) {
        PrecisionArg::F32 => candle_core::DType::F32,
        PrecisionArg::Bf16 if device.supports_bf16() => candle_core::DType::BF16,
        PrecisionArg::Bf16 => {
            bail!("--precision bf16 needs a GPU (--device cuda); on the CPU f32 is the faster path")
        }
    };
    let encoder = TrainableEncoder::load(&dir, &device)?;
    eprintln!(
        "training {} on {} rows ({} columns: {}), batch {}, lr {}, output {}",
        model,
        data.rows.len(),
        data.columns.len(),
        data.columns.join(", "),
        config.batch_size,
        config.learning_rate,
        output.display()
    );
    let report = run_to_folder(
        encoder,
        &data,
        &config,
        output,
        RunInfo {
            base_model: &model,
            train_path,
        },
        |encoder, step| {
            let metrics = evaluator_metrics(encoder, pairs.as_ref(), ir.as_ref())?;
            let shown: Vec<String> = metrics
                .iter()
                .take(6)
                .map(|(k, v)| format!("{k} {v:.4}"))
                .collect();
            if !shown.is_empty() {
                eprintln!("step {step}: {}", shown.join(", "));
            }
            Ok(metrics)
        },
        |entry| {
            eprintln!(
                "step {} epoch {:.3} loss {:.4} (mnrl {:.4}, flops q {:.5} d {:.5}) lr {:.3e} {:.2}s/step",
                entry.step,
                entry.epoch,
                entry.loss,
                entry.base_loss,
                entry.query_regularizer_loss,
                entry.document_regularizer_loss,
                entry.learning_rate,
                entry.seconds_per_step
            );
        },
    )?;
    if let Some(checkpoint) = &report.interrupted_at {
        eprintln!(
            "interrupted after step {}: checkpoint saved in {}",
            report.steps,
            checkpoint.display()
        );
        return Ok(());
    }
    eprintln!(
        "done: {} steps; model in {}{}",
        report.steps,
        output.join("final").display(),
        report
            .best_step
            .map(|s| format!(" (best checkpoint: step {s})"))
            .unwrap_or_default()
    );
    Ok(())
}
