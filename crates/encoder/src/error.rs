//! Errors of model loading and encoding. Every file-related variant names the file.

use std::path::PathBuf;

/// The words every "activations are not finite" message holds (the differentiable pooling
/// reports it as a tensor error; training recognises divergence by it).
pub const NON_FINITE: &str = "hold NaN or infinite values";

/// Why loading a model or encoding text failed.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A required file is absent.
    #[error("missing file {path}{hint}")]
    MissingFile {
        /// The file or folder involved.
        path: PathBuf,
        /// How to get it.
        hint: String,
    },
    /// A JSON configuration file is malformed.
    #[error("invalid JSON in {path}: {source}")]
    Json {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// A configuration field is missing or has an unusable value.
    #[error("{path}: field '{field}': {message}")]
    Config {
        /// The file or folder involved.
        path: PathBuf,
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The model architecture is not one this crate implements.
    #[error("unsupported architecture '{architecture}' in {path} (supported: {supported})")]
    UnsupportedArchitecture {
        /// The architecture named.
        architecture: String,
        /// The file or folder involved.
        path: PathBuf,
        /// What is supported.
        supported: String,
    },
    /// A sentence-transformers module type this crate does not implement.
    #[error(
        "unsupported sentence-transformers module '{module}' in {path} (supported: {supported})"
    )]
    UnsupportedModule {
        /// The module.
        module: String,
        /// The file or folder involved.
        path: PathBuf,
        /// What is supported.
        supported: String,
    },
    /// A Router model has no route for the task asked (or, without a task, no default route).
    #[error("{}", no_route_message(model, task.as_deref(), available))]
    NoRoute {
        /// The Router's configuration file.
        model: PathBuf,
        /// The task asked (`None`: plain `encode`).
        task: Option<String>,
        /// The routes there are, as sentence-transformers lists them.
        available: String,
    },
    /// The weights file is unreadable, or lacks or mis-shapes a tensor.
    #[error("weights {path}: {message}")]
    Weights {
        /// The file or folder involved.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The tokenizer files could not be loaded.
    #[error("tokenizer {path}: {message}")]
    Tokenizer {
        /// The file or folder involved.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Tokenizing a text failed.
    #[error("tokenizing text #{index}: {message}")]
    Tokenize {
        /// The text's position in the input.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// A text exceeds the model's max length and may not be truncated.
    #[error("`inputs` must have less than {limit} {what}. Given: {given} (text #{index})")]
    InputTooLong {
        /// The text's position in the input.
        index: usize,
        /// `tokens` or `characters`.
        what: &'static str,
        /// The largest count allowed.
        limit: usize,
        /// The text's count.
        given: usize,
    },
    /// A Hugging Face Hub id could not be resolved.
    #[error("model '{id}' is not a local folder and could not be fetched from the Hugging Face Hub ({message}); cached files are looked for in {cache}")]
    Hub {
        /// The id.
        id: String,
        /// The cache folder.
        cache: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Fetching the default model failed.
    #[error("fetching the default model: {0}")]
    DefaultModel(String),
    /// An invalid argument to an encoder call.
    #[error("{0}")]
    InvalidArgument(String),
    /// A weight tensor holds NaN or infinite values.
    #[error("weights {path}: tensor '{tensor}' holds NaN or infinite values (a damaged or diverged model)")]
    NonFiniteWeights {
        /// The file or folder involved.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
    },
    /// The forward pass produced NaN or infinite values.
    #[error("model {model}: {what} {NON_FINITE} (text #{text}); the model's weights overflow on it (a damaged or diverged model)")]
    NonFiniteActivations {
        /// The model folder.
        model: PathBuf,
        /// What went wrong.
        what: String,
        /// The text's position in the input.
        text: usize,
    },
    /// The weights file holds tensors the model does not use (a mismatched config or
    /// architecture).
    #[error("weights {path}: {count} tensor(s) the model does not use: {names} (does config.json match these weights?)")]
    UnusedWeights {
        /// The file or folder involved.
        path: PathBuf,
        /// How many.
        count: usize,
        /// The names.
        names: String,
    },
    /// A path read from a model folder leads outside it.
    #[error("{path} leads outside the model folder {root}{detail}; refusing to read it")]
    OutsideModelFolder {
        /// The file or folder involved.
        path: PathBuf,
        /// The model folder.
        root: PathBuf,
        /// Details.
        detail: String,
    },
    /// The tokenizer can produce ids the model has no embedding for.
    #[error("tokenizer {tokenizer} holds token id {max_id} but the model has {rows} vocabulary rows (vocab_size in {config}); the tokenizer does not belong to these weights")]
    TokenizerVocabulary {
        /// The tokenizer file.
        tokenizer: PathBuf,
        /// The configuration file.
        config: PathBuf,
        /// The largest token id.
        max_id: u32,
        /// Rows in the weights.
        rows: usize,
    },
    /// A tensor computation failed.
    #[error("tensor computation: {0}")]
    Candle(#[from] candle_core::Error),
    /// A sparse vector could not be assembled.
    #[error(transparent)]
    Sparse(#[from] splade_sparse::SparseError),
}

/// Shorthand result type.
pub type Result<T, E = EncoderError> = std::result::Result<T, E>;

/// Reads a model-folder metadata file (JSON configuration): a regular file of at most
/// [`splade_sparse::files::MAX_METADATA_BYTES`], so a FIFO or a device errors instead of hanging.
pub(crate) fn read_to_string(path: &std::path::Path) -> Result<String> {
    read_text_limited(path, splade_sparse::files::MAX_METADATA_BYTES)
}

/// Reads a regular file of at most `max_bytes` as UTF-8 text.
pub(crate) fn read_text_limited(path: &std::path::Path, max_bytes: u64) -> Result<String> {
    splade_sparse::files::read_regular_text(path, max_bytes).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            EncoderError::MissingFile {
                path: path.to_path_buf(),
                hint: String::new(),
            }
        } else {
            EncoderError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

pub(crate) fn read_json(path: &std::path::Path) -> Result<serde_json::Value> {
    let text = read_to_string(path)?;
    serde_json::from_str(&text).map_err(|source| EncoderError::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn no_route_message(model: &std::path::Path, task: Option<&str>, available: &str) -> String {
    match task {
        Some(task) => format!(
            "{}: no route found for task type '{task}'. Available routes: {available}",
            model.display()
        ),
        None => format!(
            "{}: could not determine route for task=None, modality='text'. Available routes: \
             {available}. Encode as queries or documents (encode_query / encode_document; \
             --query / --document on the command line), or set a default route in the Router",
            model.display()
        ),
    }
}
