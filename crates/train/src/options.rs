//! Every option of a training run in one place, as `splade train` takes them (flags and the
//! keys of a `--config` TOML file) and as the Python package's `splade_rs.train(**options)`
//! does, and [`TrainOptions::run`]: a whole run from those options, the same folder
//! `splade train` writes. Callers only parse and print; a [`TrainObserver`] hears of each step,
//! log entry and evaluation.
//!
//! The field names are the TOML keys and the Python keyword arguments; the flags are the same
//! names with dashes. With the `clap` feature the struct is also the command line's argument
//! group, so the three stay one list.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde::Deserialize;
use splade_encoder::{default_model::DEFAULT_MODEL, hub::resolve_model, TrainableEncoder};
use splade_eval::{
    BinaryClassificationEvaluator, EmbeddingSimilarityEvaluator, EvalError,
    InformationRetrievalEvaluator, KeyedResult, NanoBeirEvaluator, RerankingEvaluator,
    RerankingSample, TripletEvaluator,
};

use crate::card::KeyedCard;

use crate::data::{ColumnMapping, TrainingData};
use crate::error::{Result, TrainError};
use crate::loss::CsrLossConfig;
use crate::output::{check_earlier_run, prepare_folder, write_run_files, RunInfo};
use crate::sampler::BatchSampler;
use crate::trainer::{Metrics, TrainConfig, TrainObserver, TrainReport, Trainer};
use crate::{BaseLoss, SpladeLossConfig};

/// The batch order (`sampler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum SamplerOption {
    /// No text twice in a batch (sentence-transformers' NO_DUPLICATES).
    #[cfg_attr(feature = "clap", value(alias = "no_duplicates"))]
    #[serde(rename = "no-duplicates", alias = "no_duplicates")]
    NoDuplicates,
    /// Plain shuffling.
    #[serde(rename = "shuffled")]
    Shuffled,
    /// File order, no shuffling.
    #[serde(rename = "sequential")]
    Sequential,
}

impl From<SamplerOption> for BatchSampler {
    fn from(s: SamplerOption) -> Self {
        match s {
            SamplerOption::NoDuplicates => BatchSampler::NoDuplicates,
            SamplerOption::Shuffled => BatchSampler::Shuffled,
            SamplerOption::Sequential => BatchSampler::Sequential,
        }
    }
}

/// The loss SpladeLoss wraps (`loss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum LossOption {
    /// SparseMultipleNegativesRankingLoss.
    #[serde(rename = "mnrl")]
    Mnrl,
    /// SparseMarginMSELoss: distillation onto teacher margins.
    #[cfg_attr(feature = "clap", value(alias = "margin_mse"))]
    #[serde(rename = "margin-mse", alias = "margin_mse")]
    MarginMse,
    /// SparseMSELoss: distillation onto teacher embeddings (labels of vocabulary width).
    #[serde(rename = "mse")]
    Mse,
    /// SparseCosineSimilarityLoss: pair cosines regress onto a score per pair.
    #[cfg_attr(feature = "clap", value(alias = "cosine_similarity"))]
    #[serde(rename = "cosine-similarity", alias = "cosine_similarity")]
    CosineSimilarity,
    /// SparseCoSENTLoss (scale 20): ranks the pairs by their scores.
    #[serde(rename = "cosent")]
    Cosent,
    /// SparseAnglELoss (scale 20): CoSENT on the angle similarity.
    #[serde(rename = "angle")]
    Angle,
    /// SparseTripletLoss (Euclidean distance, margin 5) on (anchor, positive, negative) rows.
    #[serde(rename = "triplet")]
    Triplet,
    /// SparseDistillKLDivLoss (temperature 2): teacher scores of every candidate column.
    #[cfg_attr(feature = "clap", value(alias = "distill_kl_div"))]
    #[serde(rename = "distill-kl-div", alias = "distill_kl_div")]
    DistillKlDiv,
}

impl From<LossOption> for BaseLoss {
    /// Each loss with sentence-transformers' default settings.
    fn from(l: LossOption) -> Self {
        match l {
            LossOption::Mnrl => BaseLoss::MultipleNegativesRanking,
            LossOption::MarginMse => BaseLoss::MarginMse,
            LossOption::Mse => BaseLoss::Mse,
            LossOption::CosineSimilarity => BaseLoss::CosineSimilarity,
            LossOption::Cosent => BaseLoss::cosent(),
            LossOption::Angle => BaseLoss::angle(),
            LossOption::Triplet => BaseLoss::triplet(),
            LossOption::DistillKlDiv => BaseLoss::distill_kl_div(),
        }
    }
}

/// The activation precision (`precision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum PrecisionOption {
    /// f32 activations.
    #[serde(rename = "f32")]
    F32,
    /// bf16 activations, f32 weights (mixed precision; GPU only).
    #[serde(rename = "bf16")]
    Bf16,
}

/// `router_mapping`: training column → task, in order. Written `COLUMN=TASK,...` on the
/// command line (or as a TOML string), or as a TOML table / Python dict.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouterMapping(pub Vec<(String, String)>);

/// `learning_rate_mapping`: parameter-name regex → learning rate, in order. Written
/// `REGEX=LR,...` (each entry split at its last `=`; a regex holding a comma needs the TOML
/// table or dict form), or as a TOML table / Python dict.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LearningRateMapping(pub Vec<(String, f64)>);

fn split_pairs(text: &str, option: &str) -> std::result::Result<Vec<(String, String)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            pair.rsplit_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .filter(|(k, v)| !k.is_empty() && !v.is_empty())
                .ok_or_else(|| {
                    format!("{option}: expected KEY=VALUE pairs separated by commas, got '{pair}'")
                })
        })
        .collect()
}

impl std::str::FromStr for RouterMapping {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let pairs = split_pairs(text, "router_mapping")?;
        if pairs.is_empty() {
            return Err(
                "router_mapping: expected COLUMN=TASK pairs, e.g. anchor=query,positive=document"
                    .into(),
            );
        }
        Ok(Self(pairs))
    }
}

impl std::str::FromStr for LearningRateMapping {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let pairs = split_pairs(text, "learning_rate_mapping")?;
        if pairs.is_empty() {
            return Err("learning_rate_mapping: expected REGEX=LR pairs, e.g. 'SparseStaticEmbedding\\.weight=1e-3'".into());
        }
        pairs
            .into_iter()
            .map(|(k, v)| {
                v.parse::<f64>().map(|lr| (k.clone(), lr)).map_err(|_| {
                    format!("learning_rate_mapping: '{v}' (for '{k}') is not a number")
                })
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(Self)
    }
}

/// Deserializes a mapping from a `KEY=VALUE,...` string or a table / dict, keeping order.
struct MappingVisitor<V>(std::marker::PhantomData<V>, &'static str);

impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for MappingVisitor<V> {
    type Value = std::result::Result<Vec<(String, V)>, String>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}: a table (dict) or a 'KEY=VALUE,...' string", self.1)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
        Ok(Err(v.to_string()))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, V>()? {
            out.push((k, v));
        }
        Ok(Ok(out))
    }
}

impl<'de> Deserialize<'de> for RouterMapping {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match d.deserialize_any(MappingVisitor::<String>(
            std::marker::PhantomData,
            "router_mapping",
        ))? {
            Ok(pairs) => Ok(Self(pairs)),
            Err(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl<'de> Deserialize<'de> for LearningRateMapping {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match d.deserialize_any(MappingVisitor::<f64>(
            std::marker::PhantomData,
            "learning_rate_mapping",
        ))? {
            Ok(pairs) => Ok(Self(pairs)),
            Err(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Every option of a training run. Unset options take the seed model card's recipe
/// ([`TrainConfig::default`]); `config` names a TOML file with any of the others (same
/// names), which fills what is unset ([`TrainOptions::with_config_file`]).
#[derive(Deserialize, Default, Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct TrainOptions {
    /// TOML file with any of these options.
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Model to fine-tune: folder, Hub id or `splade-tiny` (default).
    #[cfg_attr(feature = "clap", arg(long))]
    pub model: Option<String>,
    /// Training rows: JSONL (`anchor`, `positive`, optional `negative`/`negative_N` fields),
    /// TSV or CSV with a header, or Parquet (a `.parquet` file or a folder of them, as a
    /// Hugging Face dataset split stores them).
    #[cfg_attr(feature = "clap", arg(long))]
    pub train: Option<PathBuf>,
    /// Output folder: `checkpoint-STEP/` per evaluation and `final/` (the best or last model).
    #[cfg_attr(feature = "clap", arg(long))]
    pub output: Option<PathBuf>,
    /// Column holding the anchor.
    #[cfg_attr(feature = "clap", arg(long))]
    pub anchor_column: Option<String>,
    /// Column holding the positive.
    #[cfg_attr(feature = "clap", arg(long))]
    pub positive_column: Option<String>,
    /// Columns holding hard negatives, comma-separated (default: `negative`, `negative_N`).
    #[cfg_attr(feature = "clap", arg(long, value_delimiter = ','))]
    pub negative_columns: Option<Vec<String>>,
    /// Column holding the labels (default: `label` or `score`): `--loss margin-mse` teacher
    /// margins, or the teacher scores of the positive then each negative; the pair score of
    /// `cosine-similarity`, `cosent`, `angle`; the candidates' teacher scores of
    /// `distill-kl-div`; the teacher embedding of `mse`.
    #[cfg_attr(feature = "clap", arg(long))]
    pub label_column: Option<String>,
    /// The loss SpladeLoss wraps: `mnrl` (SparseMultipleNegativesRankingLoss, default),
    /// `margin-mse` (SparseMarginMSELoss: distillation onto teacher margins), `mse`,
    /// `cosine-similarity`, `cosent`, `angle` (labels: one score per pair), `triplet`
    /// (anchor, positive, negative rows) or `distill-kl-div` (teacher scores per candidate),
    /// each with sentence-transformers' defaults.
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub loss: Option<LossOption>,
    /// CachedSpladeLoss: embed each batch this many rows at a time (GradCache), for large
    /// batches in small memory; the same loss and gradients.
    #[cfg_attr(feature = "clap", arg(long))]
    pub gradient_cache: Option<usize>,
    /// Passes over the data (default 1).
    #[cfg_attr(feature = "clap", arg(long))]
    pub epochs: Option<f64>,
    /// Stop after this many optimiser steps.
    #[cfg_attr(feature = "clap", arg(long))]
    pub max_steps: Option<usize>,
    /// Rows per batch (default 12).
    #[cfg_attr(feature = "clap", arg(long))]
    pub batch_size: Option<usize>,
    /// Peak learning rate (default 2e-5).
    #[cfg_attr(feature = "clap", arg(long))]
    pub lr: Option<f64>,
    /// Fraction of steps with a rising learning rate (default 0).
    #[cfg_attr(feature = "clap", arg(long))]
    pub warmup_ratio: Option<f64>,
    /// AdamW weight decay (default 0).
    #[cfg_attr(feature = "clap", arg(long))]
    pub weight_decay: Option<f64>,
    /// Gradient clipping max norm (default 1.0; 0 disables).
    #[cfg_attr(feature = "clap", arg(long))]
    pub max_grad_norm: Option<f64>,
    /// Micro-batches per optimiser step (default 1).
    #[cfg_attr(feature = "clap", arg(long))]
    pub gradient_accumulation: Option<usize>,
    /// Seed of the batch order (default 42).
    #[cfg_attr(feature = "clap", arg(long))]
    pub seed: Option<u64>,
    /// `no-duplicates` (default), `shuffled`, or `sequential` (file order, no shuffling).
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub sampler: Option<SamplerOption>,
    /// Apply the model config's dropout while training, as PyTorch's train mode does (default
    /// true); `--dropout false` trains without it.
    #[cfg_attr(feature = "clap", arg(long))]
    pub dropout: Option<bool>,
    /// λ_query of the FLOPS regulariser (default 5e-5).
    #[cfg_attr(feature = "clap", arg(long))]
    pub lambda_query: Option<f64>,
    /// λ_document of the FLOPS regulariser (default 3e-5).
    #[cfg_attr(feature = "clap", arg(long))]
    pub lambda_document: Option<f64>,
    /// CSR models: CSRLoss's weight of the auxiliary (dead-latent) reconstruction (default 0.1).
    #[cfg_attr(feature = "clap", arg(long))]
    pub csr_beta: Option<f64>,
    /// CSR models: CSRLoss's weight of the base loss (`--loss`, default MNRL; default 1).
    #[cfg_attr(feature = "clap", arg(long))]
    pub csr_gamma: Option<f64>,
    /// CSR models: the SparseAutoEncoder's k (latents kept; also the saved model's default
    /// max_active_dims); default: the model's.
    #[cfg_attr(feature = "clap", arg(long))]
    pub csr_k: Option<usize>,
    /// CSR models: the SparseAutoEncoder's k_aux (dead latents in the auxiliary
    /// reconstruction; 0 disables it); default: the model's.
    #[cfg_attr(feature = "clap", arg(long))]
    pub csr_k_aux: Option<usize>,
    /// Log every N steps (default 50).
    #[cfg_attr(feature = "clap", arg(long))]
    pub logging_steps: Option<usize>,
    /// Evaluate and checkpoint every N steps.
    #[cfg_attr(feature = "clap", arg(long))]
    pub eval_steps: Option<usize>,
    /// Evaluate and checkpoint every this fraction of the run (e.g. 0.2).
    #[cfg_attr(feature = "clap", arg(long))]
    pub eval_ratio: Option<f64>,
    /// Evaluation rows in the training rows' format and columns (sentence-transformers'
    /// `eval_dataset`): each evaluation computes the loss on them (`eval_loss`, the card's
    /// "Validation Loss").
    #[cfg_attr(feature = "clap", arg(long))]
    pub eval_dataset: Option<PathBuf>,
    /// Rows per batch of the evaluation loss (default 8).
    #[cfg_attr(feature = "clap", arg(long))]
    pub eval_batch_size: Option<usize>,
    /// Binary-classification evaluation pairs (TSV `sentence1 sentence2 label`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub eval_pairs: Option<PathBuf>,
    /// One retrieval dataset for IR evaluation, in any layout `splade eval beir` reads: a
    /// BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) or a Hugging Face parquet
    /// folder (corpus/, queries/, qrels/), or a folder holding exactly one of those.
    #[cfg_attr(feature = "clap", arg(long))]
    pub eval_beir: Option<PathBuf>,
    /// NanoBEIR evaluation (sentence-transformers' `SparseNanoBEIREvaluator`): IR on several
    /// datasets plus their mean (`NanoBEIR_mean_*`). A folder holding one BEIR or Hugging Face
    /// parquet folder per dataset (or a `NanoBEIR-en` snapshot), or a Hub dataset id
    /// (`sentence-transformers/NanoBEIR-en`) read from the local Hugging Face cache (splade-rs
    /// does not download it).
    #[cfg_attr(feature = "clap", arg(long))]
    pub eval_nanobeir: Option<String>,
    /// The datasets of `eval_nanobeir`, comma-separated NanoBEIR keys (`scifact,nfcorpus`) or
    /// folder names (default: every dataset found; all 13 from the Hub cache).
    #[cfg_attr(feature = "clap", arg(long, value_delimiter = ','))]
    pub eval_nanobeir_datasets: Option<Vec<String>>,
    /// Semantic-similarity evaluation (SparseEmbeddingSimilarityEvaluator, keys `sts_*`): a
    /// pairs TSV `sentence1<TAB>sentence2<TAB>label` with gold scores (STS-B, SICK).
    #[cfg_attr(feature = "clap", arg(long))]
    pub eval_similarity: Option<PathBuf>,
    /// Triplet evaluation (SparseTripletEvaluator, keys `triplet_*`): a TSV with `anchor`,
    /// `positive` and `negative` columns.
    #[cfg_attr(feature = "clap", arg(long))]
    pub eval_triplets: Option<PathBuf>,
    /// Reranking evaluation (SparseRerankingEvaluator, cosine, MRR@10 / NDCG@10, keys
    /// `reranking_*`): JSON Lines `{"query", "positive": [...], "negative": [...]}`.
    #[cfg_attr(feature = "clap", arg(long))]
    pub eval_reranking: Option<PathBuf>,
    /// Continue an interrupted or finished run from one of its `checkpoint-STEP` folders
    /// (weights, optimizer state, batch position and logs); use the run's other options.
    #[cfg_attr(feature = "clap", arg(long))]
    pub resume_from: Option<PathBuf>,
    /// Metric selecting the best checkpoint (e.g. `eval_dot_ap`, `scifact_dot_ndcg@10`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub best_metric: Option<String>,
    /// Where to train: `cpu` (default), `cuda`, `cuda:N` or `auto` (a GPU when this build has
    /// the `cuda` feature and one is present).
    #[cfg_attr(feature = "clap", arg(long))]
    pub device: Option<String>,
    /// Activation precision: `f32` (default) or `bf16` (mixed precision: f32 weights,
    /// optimizer and normalisations; GPU only, compute capability 8.0 (Ampere) or newer; a CPU
    /// runs bf16 slower than f32).
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub precision: Option<PrecisionOption>,
    /// sentence-transformers' `router_mapping` for an inference-free (Router) model: which task
    /// (route) encodes each training column, e.g. `anchor=query,positive=document,negative=document`
    /// (a TOML table or string in `--config`, a dict in Python). Required for a Router model;
    /// columns left out take its default route.
    #[cfg_attr(feature = "clap", arg(long))]
    pub router_mapping: Option<RouterMapping>,
    /// sentence-transformers' `learning_rate_mapping`: `REGEX=LR,...` (a TOML table or string
    /// in `--config`, a dict in Python); parameters whose name (ours, e.g.
    /// `query_0_SparseStaticEmbedding.weight`, or sentence-transformers',
    /// `model.0.sub_modules.query.0.weight`) the regex matches train at LR (on the same
    /// schedule), e.g. `'SparseStaticEmbedding\.weight=1e-3'`.
    #[cfg_attr(feature = "clap", arg(long))]
    pub learning_rate_mapping: Option<LearningRateMapping>,
    /// Train into an `output` folder that already holds a run (`final/`, `checkpoint-N/`),
    /// replacing its models; without it such a folder is refused (unless resuming).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default)]
    pub overwrite: bool,
}

macro_rules! fill_unset {
    ($options:ident, $file:ident, $($field:ident),*) => {
        $( if $options.$field.is_none() { $options.$field = $file.$field.take(); } )*
    };
}

/// What [`TrainOptions::run`] is about to train, told to the observer before the first step.
#[derive(Debug, Clone)]
pub struct RunStart {
    /// The model as given (folder, Hub id or `splade-tiny`).
    pub model: String,
    /// Training rows.
    pub rows: usize,
    /// The columns of the rows, in order (anchor, positive, negatives…).
    pub columns: Vec<String>,
    /// Rows per batch.
    pub batch_size: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Optimiser steps of the whole run.
    pub total_steps: usize,
    /// The output folder.
    pub output: PathBuf,
}

/// What a caller of [`TrainOptions::run`] hears: the start, then everything
/// [`TrainObserver`] tells.
pub trait RunObserver: TrainObserver {
    /// Before the first step.
    fn started(&mut self, _run: &RunStart) {}
}

impl TrainOptions {
    /// Fills every unset option from the `config` TOML file, when one is named (the options
    /// already set win; `overwrite` is on when either says so).
    pub fn with_config_file(mut self) -> Result<Self> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = splade_sparse::files::read_regular_text(
            &path,
            splade_sparse::files::MAX_METADATA_BYTES,
        )
        .map_err(TrainError::read(&path))?;
        let mut file: TrainOptions = toml::from_str(&text).map_err(|e| TrainError::ConfigFile {
            path: path.clone(),
            message: e.to_string(),
        })?;
        self.overwrite |= file.overwrite;
        fill_unset!(
            self,
            file,
            model,
            train,
            output,
            anchor_column,
            positive_column,
            negative_columns,
            label_column,
            loss,
            gradient_cache,
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
            csr_beta,
            csr_gamma,
            csr_k,
            csr_k_aux,
            logging_steps,
            eval_steps,
            eval_ratio,
            eval_dataset,
            eval_batch_size,
            eval_pairs,
            eval_beir,
            eval_nanobeir,
            eval_nanobeir_datasets,
            eval_similarity,
            eval_triplets,
            eval_reranking,
            best_metric,
            resume_from,
            device,
            precision,
            router_mapping,
            learning_rate_mapping
        );
        Ok(self)
    }

    /// Refuses hyper-parameters that would train nothing or a NaN model (non-finite or
    /// out-of-range numbers, zero counts), as [`TrainError::Config`] naming the option, before
    /// any work starts.
    pub fn validate(&self) -> Result<()> {
        fn number(
            field: &str,
            value: Option<f64>,
            ok: impl Fn(f64) -> bool,
            expected: &str,
        ) -> Result<()> {
            match value {
                Some(v) if !v.is_finite() || !ok(v) => Err(TrainError::Config {
                    field: field.into(),
                    expected: expected.into(),
                    value: v.to_string(),
                }),
                _ => Ok(()),
            }
        }
        let positive = |v: f64| v > 0.0;
        let non_negative = |v: f64| v >= 0.0;
        number("lr", self.lr, positive, "a finite number > 0")?;
        number("epochs", self.epochs, positive, "a finite number > 0")?;
        number(
            "warmup_ratio",
            self.warmup_ratio,
            |v| (0.0..=1.0).contains(&v),
            "a number in [0, 1]",
        )?;
        let at_least_zero = "a finite number >= 0";
        number(
            "weight_decay",
            self.weight_decay,
            non_negative,
            at_least_zero,
        )?;
        number(
            "max_grad_norm",
            self.max_grad_norm,
            non_negative,
            "a finite number >= 0 (0 disables clipping)",
        )?;
        number(
            "lambda_query",
            self.lambda_query,
            non_negative,
            at_least_zero,
        )?;
        number(
            "lambda_document",
            self.lambda_document,
            non_negative,
            at_least_zero,
        )?;
        number("csr_beta", self.csr_beta, non_negative, at_least_zero)?;
        number("csr_gamma", self.csr_gamma, non_negative, at_least_zero)?;
        if self.csr_k == Some(0) {
            return Err(TrainError::Config {
                field: "csr_k".into(),
                expected: "at least 1".into(),
                value: "0".into(),
            });
        }
        number(
            "eval_ratio",
            self.eval_ratio,
            |v| v > 0.0 && v <= 1.0,
            "a number in (0, 1]",
        )?;
        for (field, value) in [
            ("max_steps", self.max_steps),
            ("batch_size", self.batch_size),
            ("gradient_accumulation", self.gradient_accumulation),
            ("logging_steps", self.logging_steps),
            ("eval_steps", self.eval_steps),
            ("eval_batch_size", self.eval_batch_size),
            ("gradient_cache", self.gradient_cache),
        ] {
            if value == Some(0) {
                return Err(TrainError::Config {
                    field: field.into(),
                    expected: "at least 1".into(),
                    value: "0".into(),
                });
            }
        }
        Ok(())
    }

    /// The run's hyper-parameters: these options over [`TrainConfig::default`] (the seed's
    /// recipe), with `eval_ratio` turned into steps for `rows` training rows.
    pub fn train_config(&self, rows: usize) -> TrainConfig {
        let defaults = TrainConfig::default();
        let mut config = TrainConfig {
            batch_size: self.batch_size.unwrap_or(defaults.batch_size),
            epochs: self.epochs.unwrap_or(defaults.epochs),
            max_steps: self.max_steps,
            learning_rate: self.lr.unwrap_or(defaults.learning_rate),
            warmup_ratio: self.warmup_ratio.unwrap_or(defaults.warmup_ratio),
            weight_decay: self.weight_decay.unwrap_or(defaults.weight_decay),
            max_grad_norm: match self.max_grad_norm {
                Some(x) if x <= 0.0 => None,
                Some(x) => Some(x),
                None => defaults.max_grad_norm,
            },
            gradient_accumulation: self.gradient_accumulation.unwrap_or(1),
            seed: self.seed.unwrap_or(defaults.seed),
            dropout: self.dropout.unwrap_or(defaults.dropout),
            sampler: self.sampler.map_or(defaults.sampler, BatchSampler::from),
            loss: SpladeLossConfig {
                lambda_query: self.lambda_query.unwrap_or(defaults.loss.lambda_query),
                lambda_document: self
                    .lambda_document
                    .unwrap_or(defaults.loss.lambda_document),
                scale: 1.0,
                base: self.loss.map_or(defaults.loss.base, BaseLoss::from),
            },
            csr: CsrLossConfig {
                beta: self.csr_beta.unwrap_or(defaults.csr.beta),
                gamma: self.csr_gamma.unwrap_or(defaults.csr.gamma),
                k: self.csr_k,
                k_aux: self.csr_k_aux,
            },
            logging_steps: self.logging_steps.unwrap_or(defaults.logging_steps),
            eval_batch_size: self.eval_batch_size.unwrap_or(defaults.eval_batch_size),
            eval_steps: self.eval_steps,
            best_metric: self.best_metric.clone(),
            resume_from: self.resume_from.clone(),
            gradient_cache: self.gradient_cache,
            router_mapping: self
                .router_mapping
                .as_ref()
                .map_or_else(Vec::new, |m| m.0.clone()),
            learning_rate_mapping: self
                .learning_rate_mapping
                .as_ref()
                .map_or_else(Vec::new, |m| m.0.clone()),
            ..defaults
        };
        if let Some(ratio) = self.eval_ratio {
            let steps = config.max_steps.unwrap_or_else(|| {
                let per_epoch = rows.div_ceil(config.batch_size.max(1));
                (config.epochs * per_epoch as f64).ceil() as usize
            });
            config.eval_steps = Some(((steps as f64 * ratio).round() as usize).max(1));
        }
        config
    }

    /// The column mapping of the training rows.
    fn column_mapping(&self) -> ColumnMapping {
        ColumnMapping {
            anchor: self
                .anchor_column
                .clone()
                .unwrap_or_else(|| "anchor".into()),
            positive: self
                .positive_column
                .clone()
                .unwrap_or_else(|| "positive".into()),
            negatives: self.negative_columns.clone().unwrap_or_default(),
            label: self.label_column.clone(),
        }
    }

    /// A whole run, as `splade train` does it: reads the config file, validates, checks the
    /// output folder before any work, reads the rows and the evaluation data, loads the model,
    /// trains (evaluating every `eval_steps` and at the end), and writes the run's folder
    /// (checkpoints, `final/`, logs, chart, model card). `stop`, when set during the run, ends
    /// it after the step in flight with a checkpoint (the report's `interrupted_at`).
    pub fn run(
        self,
        show_progress: bool,
        stop: Option<Arc<AtomicBool>>,
        observer: &mut dyn RunObserver,
    ) -> Result<TrainReport> {
        let options = self.with_config_file()?;
        options.validate()?;
        let train_path = options.train.as_deref().ok_or(TrainError::MissingOption {
            field: "train",
            what: "the training rows file",
        })?;
        let output = options.output.as_deref().ok_or(TrainError::MissingOption {
            field: "output",
            what: "the output folder",
        })?;
        prepare_folder(output)?;
        let model = options
            .model
            .clone()
            .unwrap_or_else(|| DEFAULT_MODEL.to_string());
        let data = TrainingData::read(train_path, &options.column_mapping())?;
        if data.rows.is_empty() {
            return Err(TrainError::InvalidData(format!(
                "{}: no training rows",
                train_path.display()
            )));
        }
        check_earlier_run(output, options.resume_from.is_some(), options.overwrite)?;
        let eval_data = match &options.eval_dataset {
            Some(path) => Some(TrainingData::read(path, &options.column_mapping())?),
            None => None,
        };
        let mut config = options.train_config(data.rows.len());
        config.show_progress = show_progress;
        config.stop = stop;
        let pairs = match &options.eval_pairs {
            Some(p) => Some(BinaryClassificationEvaluator::new(
                splade_eval::data::read_binary_pairs(p).map_err(EvalError::from)?,
                "eval",
            )?),
            None => None,
        };
        let ir = match &options.eval_beir {
            Some(dir) => Some(ir_evaluator(dir)?),
            None => None,
        };
        let nano = match &options.eval_nanobeir {
            Some(source) => Some(nanobeir_evaluator(
                source,
                options
                    .eval_nanobeir_datasets
                    .as_deref()
                    .unwrap_or_default(),
            )?),
            None => None,
        };
        // The evaluators' key prefixes in evaluation order, for the card.
        let mut evaluator_order: Vec<String> = Vec::new();
        if pairs.is_some() {
            evaluator_order.push("eval".into());
        }
        if let Some(ev) = &ir {
            evaluator_order.push(ev.name.clone());
        }
        if let Some(ev) = &nano {
            evaluator_order.extend(ev.evaluators.iter().map(|e| e.name.clone()));
            evaluator_order.push(ev.name.clone());
        }
        let keyed = keyed_evaluators(&options)?;
        evaluator_order.extend(keyed.iter().map(|k| k.name().to_string()));
        let keyed_cards = std::cell::RefCell::new(Vec::<KeyedCard>::new());
        let dir = match &options.resume_from {
            Some(checkpoint) => checkpoint.clone(),
            None => resolve_model(&model)?,
        };
        let device =
            splade_encoder::device::parse_device(options.device.as_deref().unwrap_or("cpu"))?;
        config.precision = match options.precision.unwrap_or(PrecisionOption::F32) {
            PrecisionOption::F32 => candle_core::DType::F32,
            PrecisionOption::Bf16 if device.supports_bf16() => candle_core::DType::BF16,
            PrecisionOption::Bf16 => {
                return Err(TrainError::Config {
                    field: "precision".into(),
                    expected: "f32 on the CPU (bf16 needs a GPU, device cuda; a CPU runs bf16 \
                               slower than f32)"
                        .into(),
                    value: "bf16".into(),
                })
            }
        };
        let encoder = TrainableEncoder::load(&dir, &device)?;
        let mut trainer = Trainer::new(encoder, &data, &config, output)?;
        if let Some(rows) = &eval_data {
            trainer.set_eval_data(rows, config.eval_batch_size)?;
        }
        observer.started(&RunStart {
            model: model.clone(),
            rows: data.rows.len(),
            columns: data.columns.clone(),
            batch_size: config.batch_size,
            learning_rate: config.learning_rate,
            total_steps: trainer.total_steps(),
            output: output.to_path_buf(),
        });
        let report = trainer.run_observed(
            |encoder, _step| {
                let mut metrics = Metrics::new();
                if let Some(evaluator) = &pairs {
                    let result = evaluator.evaluate(encoder)?;
                    metrics.extend(splade_eval::report::binary_keys(&result));
                }
                if let Some(evaluator) = &ir {
                    let result = evaluator.evaluate(encoder)?;
                    metrics.extend(splade_eval::report::ir_keys(&result, true));
                }
                if let Some(evaluator) = &nano {
                    metrics.extend(evaluator.evaluate(encoder)?.flat());
                }
                let mut cards = Vec::new();
                for evaluator in &keyed {
                    let (result, card) = evaluator.evaluate(encoder)?;
                    metrics.extend(result.metrics);
                    cards.push(card);
                }
                *keyed_cards.borrow_mut() = cards;
                Ok(metrics)
            },
            observer,
        )?;
        write_run_files(
            output,
            &report,
            &data,
            &config,
            RunInfo {
                base_model: &model,
                train_path,
                eval_data: eval_data.as_ref().zip(options.eval_dataset.as_deref()),
                evaluator_order: &evaluator_order,
                keyed: &keyed_cards.borrow(),
            },
        )?;
        Ok(report)
    }
}

/// A training evaluator returning a flat dictionary, with its card entry.
enum KeyedEvaluator {
    Similarity(EmbeddingSimilarityEvaluator),
    Triplet(TripletEvaluator),
    Reranking(RerankingEvaluator),
}

impl KeyedEvaluator {
    fn name(&self) -> &str {
        match self {
            Self::Similarity(e) => &e.name,
            Self::Triplet(e) => &e.name,
            Self::Reranking(e) => &e.name,
        }
    }

    /// Evaluates, and describes the evaluator for the card (sentence-transformers' class and
    /// description, the primary metric and keys without the prefix).
    fn evaluate(
        &self,
        encoder: &splade_encoder::SparseEncoder,
    ) -> Result<(KeyedResult, KeyedCard)> {
        let (result, class, description) = match self {
            Self::Similarity(e) => (
                e.evaluate(encoder)?,
                "SparseEmbeddingSimilarityEvaluator",
                "Semantic Similarity",
            ),
            Self::Triplet(e) => (
                e.evaluate(encoder)?,
                "SparseTripletEvaluator",
                "Sparse Triplet",
            ),
            Self::Reranking(e) => (
                e.evaluate(encoder)?,
                "SparseRerankingEvaluator",
                "Sparse Reranking",
            ),
        };
        let prefix = format!("{}_", self.name());
        let strip = |k: &str| k.strip_prefix(&prefix).unwrap_or(k).to_string();
        let card = KeyedCard {
            name: self.name().to_string(),
            class,
            description,
            primary: strip(&result.primary_metric),
            keys: result.metrics.iter().map(|(k, _)| strip(k)).collect(),
        };
        Ok((result, card))
    }
}

/// The similarity, triplet and reranking evaluators the options ask for, in that order.
fn keyed_evaluators(options: &TrainOptions) -> Result<Vec<KeyedEvaluator>> {
    let mut out = Vec::new();
    if let Some(path) = &options.eval_similarity {
        let pairs = splade_eval::data::read_scored_pairs(path).map_err(EvalError::from)?;
        let mut e =
            EmbeddingSimilarityEvaluator::new(pairs.sentences1, pairs.sentences2, pairs.scores)?;
        e.name = "sts".into();
        out.push(KeyedEvaluator::Similarity(e));
    }
    if let Some(path) = &options.eval_triplets {
        let mut cols = splade_eval::data::read_tsv_columns(
            path,
            &[
                (Some("anchor"), 0),
                (Some("positive"), 1),
                (Some("negative"), 2),
            ],
        )
        .map_err(EvalError::from)?;
        let negatives = cols.pop().unwrap_or_default();
        let positives = cols.pop().unwrap_or_default();
        let anchors = cols.pop().unwrap_or_default();
        let mut e = TripletEvaluator::new(anchors, positives, negatives)?;
        e.name = "triplet".into();
        out.push(KeyedEvaluator::Triplet(e));
    }
    if let Some(path) = &options.eval_reranking {
        let samples: Vec<RerankingSample> =
            splade_eval::data::read_jsonl_records(path).map_err(EvalError::from)?;
        let mut e = RerankingEvaluator::new(samples)?;
        e.name = "reranking".into();
        out.push(KeyedEvaluator::Reranking(e));
    }
    Ok(out)
}

/// The NanoBEIR evaluator of `eval_nanobeir`: a local folder when `source` is one, else a
/// Hub dataset id read from the Hugging Face cache.
fn nanobeir_evaluator(source: &str, datasets: &[String]) -> Result<NanoBeirEvaluator> {
    let path = Path::new(source);
    Ok(if path.is_dir() {
        NanoBeirEvaluator::from_folder(path, datasets, "test")?
    } else if source.contains('/') && !path.exists() && source.split('/').count() == 2 {
        NanoBeirEvaluator::from_hub_cache(source, datasets)?
    } else {
        return Err(TrainError::InvalidData(format!(
            "eval_nanobeir {source}: neither a folder nor a Hub dataset id (org/name)"
        )));
    })
}

/// The IR evaluator of `eval_beir`: the one dataset in any layout `splade eval beir` reads.
fn ir_evaluator(dir: &Path) -> Result<InformationRetrievalEvaluator> {
    let found = splade_eval::datasets::find_datasets(dir, "test", &[]).map_err(EvalError::from)?;
    let [dataset] = found.as_slice() else {
        let names: Vec<&str> = found.iter().map(|d| d.name.as_str()).collect();
        return Err(TrainError::InvalidData(format!(
            "eval_beir {}: {} datasets there ({}); give the folder of one",
            dir.display(),
            names.len(),
            names.join(", ")
        )));
    };
    Ok(InformationRetrievalEvaluator::new(
        dataset.read("test").map_err(EvalError::from)?,
        dataset.name.clone(),
    )?)
}
