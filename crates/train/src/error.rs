//! [`TrainError`]: why training (or one of its helpers: saving, plotting, mining negatives)
//! failed. Errors of the crates training builds on are kept as sources, not flattened into
//! strings, so a caller can match on them and the command line prints the whole chain.

use std::path::PathBuf;

/// Why a training run, or a piece of one, failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Loading, running or checking the model failed.
    #[error(transparent)]
    Encoder(#[from] splade_encoder::EncoderError),
    /// Reading the training rows failed.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// An evaluation during training failed.
    #[error("evaluation")]
    Eval(#[from] splade_eval::EvalError),
    /// Building or searching an index (hard-negative mining) failed.
    #[error("index")]
    Index(#[from] splade_index::IndexError),
    /// A tensor computation failed.
    #[error("tensor computation")]
    Candle(#[from] candle_core::Error),
    /// A file could not be read or written.
    #[error("{action} {path}")]
    Io {
        /// `cannot read` or `cannot write`.
        action: &'static str,
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Writing a weights file failed.
    #[error("cannot write weights {path}")]
    SaveWeights {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: candle_core::Error,
    },
    /// A JSON file (a checkpoint's trainer state) is malformed, or a value could not be
    /// written as JSON.
    #[error("JSON {path}")]
    Json {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// A hyper-parameter is out of range (non-finite, zero counts, an unknown best metric…).
    #[error("training option {field}: expected {expected}, got {value}")]
    Config {
        /// The field.
        field: String,
        /// What was expected.
        expected: String,
        /// The value found.
        value: String,
    },
    /// A required option is missing (`train`, `output`).
    #[error("training option {field} ({what}) is required")]
    MissingOption {
        /// The option's name (the TOML key; the flag is the same with dashes).
        field: &'static str,
        /// What it names.
        what: &'static str,
    },
    /// A `config` TOML file is malformed or names an unknown option.
    #[error("invalid config {path}: {message}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
    /// The output folder's path is taken by something that is not a folder.
    #[error("{path}: exists and is not a folder (training writes a folder there)")]
    OutputNotAFolder {
        /// The file or folder involved.
        path: PathBuf,
    },
    /// The output folder holds an earlier run's models (`final/`, `checkpoint-N/`), which a
    /// new run would replace.
    #[error(
        "{path}: already holds a training run ({}); choose another folder, resume that run \
         from one of its checkpoints, or allow overwriting its models",
        found.join(", ")
    )]
    EarlierRun {
        /// The file or folder involved.
        path: PathBuf,
        /// What was found.
        found: Vec<String>,
    },
    /// The metric chosen to pick the best checkpoint is not among the evaluation's.
    #[error("best metric '{name}' is not among the evaluation's metrics ({available})")]
    UnknownMetric {
        /// The name given.
        name: String,
        /// The names available.
        available: String,
    },
    /// The training rows cannot be trained on with this configuration (none, no positive
    /// column, no labels for a loss that needs them).
    #[error("{0}")]
    InvalidData(String),
    /// The loss, the gradients or the activations stopped being finite at `step` (1-based):
    /// nothing of that step was saved.
    #[error(
        "training step {step}: {what} (NaN or infinite): training diverged, stopping without \
         saving this step; {} (try a lower learning rate, or check the data and labels)",
        match last_checkpoint {
            Some(dir) => format!("the last good checkpoint is {}", dir.display()),
            None => "no checkpoint was written yet".to_string(),
        }
    )]
    Diverged {
        /// The training step.
        step: usize,
        /// What went wrong.
        what: String,
        /// The last good checkpoint, if any.
        last_checkpoint: Option<PathBuf>,
        /// The forward pass's error, when the activations were found not finite there.
        #[source]
        source: Option<Box<splade_encoder::EncoderError>>,
    },
    /// The forward pass of a step failed for another reason.
    #[error("training step {step}")]
    Step {
        /// The training step.
        step: usize,
        /// The underlying error.
        #[source]
        source: Box<TrainError>,
    },
    /// Drawing the training chart failed.
    #[error("cannot draw {path}: {message}")]
    Plot {
        /// The file or folder involved.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Shorthand result type of the training crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

impl TrainError {
    pub(crate) fn read(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| TrainError::Io {
            action: "cannot read",
            path,
            source,
        }
    }

    pub(crate) fn write(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| TrainError::Io {
            action: "cannot write",
            path,
            source,
        }
    }
}
