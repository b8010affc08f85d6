//! [`SparseEncoder`]: the library API that mirrors sentence-transformers' `SparseEncoder`.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use splade_sparse::{
    ScoreMatrix, Similarity, SparseBatch, SparseVector, SparseView, SparsityStats,
};

use crate::csr::{CsrHead, SparseAutoEncoder};
use crate::error::{EncoderError, Result};
use crate::hub::resolve_model;
use crate::layout::ModelFolder;
use crate::model::{find_weights, first_non_finite_row, ForwardMode, MaskedLm, TokenBatch};
use crate::paths::check_inside;
use crate::pooling::{
    pool_sparse_packed_checked, HeadScreen, PoolingConfig, PoolingStrategy, ScreenStats,
};
use crate::quant::Int8Path;
use crate::router::RouteKind;
use crate::static_embedding::StaticEmbedding;
use crate::tokenize::{tokenizer_source, TextTokenizer, TokenizedText, Truncation};

/// Options of one `encode` call.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    /// Texts per forward pass (default 32; 0 is an error). Texts are sorted by length first,
    /// so batches hold texts of similar length; results always come back in input order.
    pub batch_size: usize,
    /// A named prompt from the model's `prompts` to prepend.
    pub prompt_name: Option<String>,
    /// A literal prompt to prepend (wins over `prompt_name`).
    pub prompt: Option<String>,
    /// Keep only the `k` largest weights of each vector.
    pub max_active_dims: Option<usize>,
    /// Show a progress bar on stderr.
    pub show_progress: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            batch_size: 32,
            prompt_name: None,
            prompt: None,
            max_active_dims: None,
            show_progress: false,
        }
    }
}

/// How the CPU runs a model: the options of [`SparseEncoder::load_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Weight precision of the transformer's linear layers (default f32).
    pub quantize: Quantize,
    /// The exact screened vocabulary projection for max pooling (default on): approximate int8
    /// logits with a rigorous error bound pick the few (token, entry) pairs whose exact f32
    /// logit can matter. Same active entries as the unscreened projection.
    pub screened_projection: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            quantize: Quantize::None,
            screened_projection: true,
        }
    }
}

/// The weight precision of the linear layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quantize {
    /// f32 weights (exact parity with sentence-transformers).
    #[default]
    None,
    /// int8 weights per output channel with dynamic per-token activation quantization
    /// ([`crate::quant`]) for every linear layer of the transformer; the vocabulary
    /// projection stays f32 (screened). Faster, with a measured quality cost.
    Int8,
}

impl std::str::FromStr for Quantize {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "none" | "f32" => Ok(Quantize::None),
            "int8" => Ok(Quantize::Int8),
            other => Err(format!(
                "unknown quantization '{other}' (expected none or int8)"
            )),
        }
    }
}

impl Quantize {
    /// The name `--quantize` takes.
    pub fn name(self) -> &'static str {
        match self {
            Quantize::None => "none",
            Quantize::Int8 => "int8",
        }
    }
}

/// Prompt names `encode_document` looks for, in order (as sentence-transformers does).
const DOCUMENT_PROMPT_NAMES: [&str; 3] = ["document", "passage", "corpus"];

/// The route a task takes through a model (see [`SparseEncoder::route_for`]).
#[derive(Debug, Clone, Copy)]
pub enum RouteChoice<'a> {
    /// The MLM backbone + SpladePooling (every task of a plain SPLADE model).
    Splade,
    /// An inference-free `SparseStaticEmbedding` route (no forward pass).
    Static(&'a StaticEmbedding),
}

/// A SPLADE encoder: MLM backbone + SpladePooling, producing vocabulary-sized sparse vectors.
/// An inference-free model (a sentence-transformers `Router`) also holds its
/// `SparseStaticEmbedding` routes: `encode_query`, `encode_document` and `encode` take the
/// route the Router gives the task `query`, `document` or none.
pub struct SparseEncoder {
    folder: ModelFolder,
    tokenizer: TextTokenizer,
    model: MaskedLm,
    device: Device,
    /// The static routes of a Router, by route name.
    statics: Vec<(String, StaticEmbedding)>,
    /// A CSR model's pooling and sparse autoencoder (`None`: SpladePooling over the MLM head).
    csr: Option<CsrHead>,
    /// The screened vocabulary projection (CPU inference; none for trainable weights).
    screen: Option<HeadScreen>,
    /// The options the model was loaded with.
    options: LoadOptions,
}

impl SparseEncoder {
    /// Loads a model named as the CLI accepts it: a local folder, `splade-tiny` (the default
    /// model) or a Hugging Face Hub id. Runs on the CPU.
    pub fn from_pretrained(name_or_path: &str) -> Result<Self> {
        Self::load(&resolve_model(name_or_path)?, &Device::Cpu)
    }

    /// [`Self::from_pretrained`] onto `device` (see [`crate::device::parse_device`] for the
    /// `cpu` / `cuda[:N]` / `auto` names the command line accepts).
    pub fn from_pretrained_on(name_or_path: &str, device: &Device) -> Result<Self> {
        Self::load(&resolve_model(name_or_path)?, device)
    }

    /// [`Self::from_pretrained_on`] with [`LoadOptions`].
    pub fn from_pretrained_with(
        name_or_path: &str,
        device: &Device,
        options: &LoadOptions,
    ) -> Result<Self> {
        Self::load_with(&resolve_model(name_or_path)?, device, options)
    }

    /// Loads a local model folder onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        Self::load_with(dir, device, &LoadOptions::default())
    }

    /// Loads a local model folder onto `device` with [`LoadOptions`]. The int8 kernels and the
    /// screened projection run on the CPU; on another device they are not used.
    pub fn load_with(dir: &Path, device: &Device, options: &LoadOptions) -> Result<Self> {
        let (folder, tokenizer, weights) = Self::read_parts(dir)?;
        let statics = load_static_routes(&folder)?;
        let mut model = MaskedLm::load(&weights, &folder.backbone, device)?;
        let on_cpu = device.is_cpu();
        let path = if on_cpu
            && (options.quantize != Quantize::None
                || (options.screened_projection && folder.pooling.strategy == PoolingStrategy::Max))
        {
            Some(Int8Path::selected().map_err(EncoderError::InvalidArgument)?)
        } else {
            None
        };
        if let (Quantize::Int8, Some(path)) = (options.quantize, path) {
            model
                .quantize_int8(path)
                .map_err(|e| EncoderError::Weights {
                    path: weights.clone(),
                    message: e.to_string(),
                })?;
        }
        let csr = load_csr_head(&folder, device)?;
        // A CSR model has no vocabulary projection to screen.
        let screen = match (path, model.head()) {
            (Some(path), Some(head))
                if options.screened_projection
                    && csr.is_none()
                    && folder.pooling.strategy == PoolingStrategy::Max =>
            {
                Some(HeadScreen::new(head, path)?)
            }
            _ => None,
        };
        tracing::debug!(
            "loaded {} ({:?}, {:?}, max_seq_length {}, {})",
            dir.display(),
            folder.layout,
            folder.backbone.architecture,
            folder.max_seq_length,
            folder.pooling
        );
        Ok(Self {
            folder,
            tokenizer,
            model,
            device: device.clone(),
            statics,
            csr,
            screen,
            options: options.clone(),
        })
    }

    /// An encoder from its parts (the trainable loader builds one around trainable weights).
    pub(crate) fn from_parts(
        folder: ModelFolder,
        tokenizer: TextTokenizer,
        model: MaskedLm,
        device: &Device,
        statics: Vec<(String, StaticEmbedding)>,
        csr: Option<CsrHead>,
    ) -> Self {
        Self {
            folder,
            tokenizer,
            model,
            device: device.clone(),
            statics,
            csr,
            screen: None,
            options: LoadOptions {
                screened_projection: false,
                ..LoadOptions::default()
            },
        }
    }

    /// The options the model was loaded with (a trainable encoder's: no screening).
    pub fn load_options(&self) -> &LoadOptions {
        &self.options
    }

    /// Counters of the screened vocabulary projection since loading (`None` without one).
    pub fn screen_stats(&self) -> Option<ScreenStats> {
        self.screen.as_ref().map(HeadScreen::stats)
    }

    /// A CSR model's head (the trainable encoder updates its statistics).
    pub(crate) fn csr_mut(&mut self) -> Option<&mut CsrHead> {
        self.csr.as_mut()
    }

    /// Sets a CSR model's `k` (latents kept, which also becomes the model's default
    /// `max_active_dims`, as sentence-transformers sets it from the autoencoder) and, when
    /// given, `k_aux`. Values above `hidden_dim`, a `k` of 0, or a SPLADE model are errors.
    pub fn set_csr_sparsity(&mut self, k: usize, k_aux: Option<usize>) -> Result<()> {
        let Some(csr) = self.csr.as_mut() else {
            return Err(EncoderError::InvalidArgument(
                "k and k_aux are settings of a CSR model's SparseAutoEncoder; this model has none"
                    .into(),
            ));
        };
        let h = csr.sae.config.hidden_dim;
        let k_aux = k_aux.unwrap_or(csr.sae.config.k_aux);
        if k == 0 || k > h || k_aux > h {
            return Err(EncoderError::InvalidArgument(format!(
                "k {k} and k_aux {k_aux} must be at most the autoencoder's hidden_dim {h} (k at least 1)"
            )));
        }
        csr.sae.config.k = k;
        csr.sae.config.k_aux = k_aux;
        if let Some(layout) = self.folder.csr.as_mut() {
            layout.sae = csr.sae.config.clone();
        }
        self.folder.max_active_dims = Some(k);
        Ok(())
    }

    /// A CSR model's `Pooling` and `SparseAutoEncoder` (`None` for a SPLADE model).
    pub fn csr(&self) -> Option<&CsrHead> {
        self.csr.as_ref()
    }

    /// Whether this is a CSR model: its dimensions are autoencoder latents, not vocabulary
    /// tokens.
    pub fn is_csr(&self) -> bool {
        self.csr.is_some()
    }

    /// The `max_active_dims` an encode call with `requested` uses: the request, else the
    /// model's saved default (a CSR model: else its autoencoder's `k`).
    pub fn effective_max_active_dims(&self, requested: Option<usize>) -> Option<usize> {
        requested
            .or(self.folder.max_active_dims)
            .or(self.csr.as_ref().map(|c| c.sae.config.k))
    }

    /// The static routes, by route name (the trainable encoder refreshes their weights).
    pub(crate) fn statics_mut(&mut self) -> &mut [(String, StaticEmbedding)] {
        &mut self.statics
    }

    /// The static routes of a Router model, by route name (empty for a plain model).
    pub fn static_routes(&self) -> &[(String, StaticEmbedding)] {
        &self.statics
    }

    /// The folder's settings, its tokenizer and the path of its weights.
    /// Every file read stays inside the model folder, and the tokenizer's ids fit the model's
    /// vocabulary.
    pub(crate) fn read_parts(
        dir: &Path,
    ) -> Result<(ModelFolder, TextTokenizer, std::path::PathBuf)> {
        let folder = ModelFolder::read(dir)?;
        for name in [
            "tokenizer.json",
            "vocab.txt",
            "tokenizer_config.json",
            "special_tokens_map.json",
        ] {
            check_inside(&folder.root, &folder.transformer_dir.join(name))?;
        }
        let tokenizer = TextTokenizer::load(
            &folder.transformer_dir,
            folder.max_seq_length,
            folder.do_lower_case,
        )?;
        let rows = folder.backbone.vocab_size;
        if let Some(max_id) = tokenizer.max_token_id().filter(|&id| id as usize >= rows) {
            return Err(EncoderError::TokenizerVocabulary {
                tokenizer: tokenizer_source(&folder.transformer_dir),
                config: folder.transformer_dir.join("config.json"),
                max_id,
                rows,
            });
        }
        let weights = find_weights(&folder.transformer_dir)?;
        check_inside(&folder.root, &weights)?;
        Ok((folder, tokenizer, weights))
    }

    /// What was read from the model folder.
    pub fn folder(&self) -> &ModelFolder {
        &self.folder
    }

    /// The dimension of every vector: the vocabulary size (a CSR model: the autoencoder's
    /// `hidden_dim`).
    pub fn dim(&self) -> usize {
        match &self.csr {
            Some(csr) => csr.dim(),
            None => self.folder.backbone.vocab_size,
        }
    }

    /// Token limit per text; longer texts are truncated.
    pub fn max_seq_length(&self) -> usize {
        self.folder.max_seq_length
    }

    /// The model's similarity function (`similarity_fn_name`).
    pub fn similarity_fn(&self) -> Similarity {
        self.folder.similarity
    }

    /// Overrides the similarity function used by [`Self::similarity`].
    pub fn set_similarity_fn(&mut self, function: Similarity) {
        self.folder.similarity = function;
    }

    /// The model's named prompts.
    pub fn prompts(&self) -> &BTreeMap<String, String> {
        &self.folder.prompts
    }

    /// SpladePooling settings.
    pub fn pooling(&self) -> PoolingConfig {
        self.folder.pooling
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The backbone.
    pub fn model(&self) -> &MaskedLm {
        &self.model
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The prompt text `options` prepend to every text (empty for none): the literal
    /// `prompt`, else the named prompt, else the model's default prompt. An unknown prompt
    /// name is an error.
    pub fn prompt_text(&self, options: &EncodeOptions) -> Result<String> {
        self.resolve_prompt(options)
    }

    fn resolve_prompt(&self, options: &EncodeOptions) -> Result<String> {
        if let Some(prompt) = &options.prompt {
            return Ok(prompt.clone());
        }
        let name = options
            .prompt_name
            .as_ref()
            .or(self.folder.default_prompt_name.as_ref());
        match name {
            None => Ok(String::new()),
            Some(name) => self.folder.prompts.get(name).cloned().ok_or_else(|| {
                EncoderError::InvalidArgument(format!(
                    "prompt name '{name}' is not among the model's prompts ({})",
                    self.folder
                        .prompts
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }),
        }
    }

    /// Tokenizes texts exactly as [`Self::encode`] does (prompt prepended, lower-cased if
    /// configured, truncated).
    pub fn tokenize(
        &self,
        texts: &[impl AsRef<str>],
        options: &EncodeOptions,
    ) -> Result<Vec<TokenizedText>> {
        self.tokenize_truncating(texts, options, Truncation::Right)
    }

    /// Whether the model has an inference-free (`SparseStaticEmbedding`) route.
    pub fn is_inference_free(&self) -> bool {
        !self.statics.is_empty()
    }

    /// The route `task` takes (`None`: plain [`Self::encode`]): for a Router model as
    /// sentence-transformers resolves it (an error names the routes when none fits); always
    /// [`RouteChoice::Splade`] for a plain SPLADE model, which ignores the task.
    pub fn route_for(&self, task: Option<&str>) -> Result<RouteChoice<'_>> {
        let Some(router) = &self.folder.router else {
            return Ok(RouteChoice::Splade);
        };
        let route = router.resolve(task)?;
        match &route.kind {
            RouteKind::Splade { .. } => Ok(RouteChoice::Splade),
            RouteKind::Static { .. } => self
                .statics
                .iter()
                .find(|(name, _)| *name == route.name)
                .map(|(_, s)| RouteChoice::Static(s))
                .ok_or_else(|| {
                    EncoderError::InvalidArgument(format!(
                        "static route '{}' was not loaded",
                        route.name
                    ))
                }),
        }
    }

    /// Encodes texts for `task` (`Some("query")`, `Some("document")`, `None`: the default
    /// route) without adding the task's prompt (see [`Self::encode_query`] for that): the
    /// route [`Self::route_for`] gives, one row per text in input order.
    pub fn encode_task(
        &self,
        texts: &[impl AsRef<str>],
        options: &EncodeOptions,
        task: Option<&str>,
    ) -> Result<SparseBatch> {
        check_options(options)?;
        match self.route_for(task)? {
            RouteChoice::Splade => self.encode_splade(texts, options),
            RouteChoice::Static(route) => {
                let prompt = self.resolve_prompt(options)?;
                // The model's saved default applies to every route, as in sentence-transformers.
                let k = self.effective_max_active_dims(options.max_active_dims);
                let vectors = route.encode(texts, &prompt, k)?;
                let mut batch = SparseBatch::new(self.dim());
                for v in &vectors {
                    batch.push(v.view())?;
                }
                Ok(batch)
            }
        }
    }

    /// Encodes texts into sparse vectors, one row per text in input order (a Router model:
    /// its default route).
    pub fn encode(
        &self,
        texts: &[impl AsRef<str>],
        options: &EncodeOptions,
    ) -> Result<SparseBatch> {
        self.encode_task(texts, options, None)
    }

    /// The SPLADE route: batches through the backbone and SpladePooling.
    fn encode_splade(
        &self,
        texts: &[impl AsRef<str>],
        options: &EncodeOptions,
    ) -> Result<SparseBatch> {
        if options.batch_size == 0 {
            return Err(EncoderError::InvalidArgument(
                "batch size must be at least 1".into(),
            ));
        }
        if options.max_active_dims == Some(0) {
            return Err(EncoderError::InvalidArgument(
                "max_active_dims must be at least 1".into(),
            ));
        }
        let tokenized = self.tokenize(texts, options)?;
        let mut order: Vec<usize> = (0..tokenized.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(tokenized[i].ids.len()));
        let progress = if options.show_progress {
            let bar = ProgressBar::new(texts.len() as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} encoding [{bar:40}] {pos}/{len} texts ({per_sec}, eta {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        let max_active_dims = self.effective_max_active_dims(options.max_active_dims);
        let mut results: Vec<Option<SparseVector>> = vec![None; tokenized.len()];
        for chunk in order.chunks(options.batch_size) {
            let rows: Vec<&TokenizedText> = chunk.iter().map(|&i| &tokenized[i]).collect();
            let vectors = self
                .encode_tokenized(&rows, max_active_dims)
                .map_err(|e| match e {
                    EncoderError::NonFiniteActivations { model, what, text } => {
                        EncoderError::NonFiniteActivations {
                            model,
                            what,
                            text: chunk[text],
                        }
                    }
                    other => other,
                })?;
            for (&i, v) in chunk.iter().zip(vectors) {
                results[i] = Some(match max_active_dims {
                    Some(k) => v.view().top_k(k),
                    None => v,
                });
            }
            progress.inc(chunk.len() as u64);
        }
        progress.finish_and_clear();
        let mut batch = SparseBatch::new(self.dim());
        for v in results.into_iter().flatten() {
            batch.push(v.view())?;
        }
        Ok(batch)
    }

    /// Encodes queries: uses the model's `query` prompt when it has one.
    pub fn encode_query(
        &self,
        texts: &[impl AsRef<str>],
        options: &EncodeOptions,
    ) -> Result<SparseBatch> {
        self.encode_task(texts, &self.query_options(options), Some("query"))
    }

    /// Encodes documents: uses the model's `document` (or `passage`, `corpus`) prompt when it
    /// has one.
    pub fn encode_document(
        &self,
        texts: &[impl AsRef<str>],
        options: &EncodeOptions,
    ) -> Result<SparseBatch> {
        self.encode_task(texts, &self.document_options(options), Some("document"))
    }

    /// The options [`Self::encode_query`] encodes with: `options` plus the model's `query`
    /// prompt when it has one and none is set.
    pub fn query_options(&self, options: &EncodeOptions) -> EncodeOptions {
        let mut options = options.clone();
        if options.prompt.is_none()
            && options.prompt_name.is_none()
            && self.folder.prompts.contains_key("query")
        {
            options.prompt_name = Some("query".into());
        }
        options
    }

    /// The options [`Self::encode_document`] encodes with: `options` plus the model's
    /// `document` (or `passage`, `corpus`) prompt when it has one and none is set.
    pub fn document_options(&self, options: &EncodeOptions) -> EncodeOptions {
        let mut options = options.clone();
        if options.prompt.is_none() && options.prompt_name.is_none() {
            options.prompt_name = DOCUMENT_PROMPT_NAMES
                .iter()
                .find(|n| self.folder.prompts.contains_key(**n))
                .map(|n| n.to_string());
        }
        options
    }

    /// Tokenizes texts as [`Self::tokenize`] does, truncating as `truncation` says
    /// ([`Truncation::Refuse`]: a text longer than [`Self::max_seq_length`] tokens is an
    /// error). With [`Truncation::Right`] this is [`Self::tokenize`].
    pub fn tokenize_truncating(
        &self,
        texts: &[impl AsRef<str>],
        options: &EncodeOptions,
        truncation: Truncation,
    ) -> Result<Vec<TokenizedText>> {
        let prompt = self.resolve_prompt(options)?;
        if prompt.is_empty() {
            return self.tokenizer.encode_truncating(texts, truncation);
        }
        let prompted: Vec<String> = texts
            .iter()
            .map(|t| format!("{prompt}{}", t.as_ref()))
            .collect();
        let mut rows = self.tokenizer.encode_truncating(&prompted, truncation)?;
        let prompt_tokens = self.prompt_length(&prompt)?;
        for row in &mut rows {
            row.prompt_tokens = prompt_tokens;
        }
        Ok(rows)
    }

    /// The number of tokens a prompt takes at the start of a text, as sentence-transformers
    /// counts them for `Pooling(include_prompt=False)`: the prompt tokenized alone, without a
    /// trailing special token.
    pub fn prompt_length(&self, prompt: &str) -> Result<usize> {
        let encoding = self.tokenizer.encoding(prompt, true)?;
        let n = encoding.get_ids().len();
        let trailing_special = encoding.get_special_tokens_mask().last() == Some(&1);
        Ok(n - usize::from(trailing_special && n > 0))
    }

    /// Encodes tokenized texts (from [`Self::tokenize`] or [`Self::tokenize_truncating`])
    /// in one forward pass, one vector per row in order, keeping the `max_active_dims`
    /// heaviest weights of each when set. A caller that batches texts itself (a server)
    /// uses this; [`Self::encode`] is tokenization plus this, in batches.
    pub fn encode_tokens(
        &self,
        rows: &[&TokenizedText],
        max_active_dims: Option<usize>,
    ) -> Result<Vec<SparseVector>> {
        if max_active_dims == Some(0) {
            return Err(EncoderError::InvalidArgument(
                "max_active_dims must be at least 1".into(),
            ));
        }
        let max_length = self.max_seq_length();
        if let Some(index) = rows.iter().position(|r| r.ids.len() > max_length) {
            return Err(EncoderError::InputTooLong {
                index,
                what: "tokens",
                limit: max_length,
                given: rows[index].ids.len(),
            });
        }
        let max_active_dims = self.effective_max_active_dims(max_active_dims);
        let vectors = self.encode_tokenized(rows, max_active_dims)?;
        Ok(match max_active_dims {
            Some(k) => vectors.into_iter().map(|v| v.view().top_k(k)).collect(),
            None => vectors,
        })
    }

    /// Pads tokenized texts into a batch on the model's device.
    pub fn token_batch(&self, rows: &[&TokenizedText]) -> Result<TokenBatch> {
        let width = rows.iter().map(|r| r.ids.len()).max().unwrap_or(0);
        let n = rows.len();
        let mut ids = vec![self.tokenizer.pad_id(); n * width];
        let mut types = vec![0u32; n * width];
        let mut mask = vec![0u32; n * width];
        for (r, row) in rows.iter().enumerate() {
            let len = row.ids.len();
            ids[r * width..r * width + len].copy_from_slice(&row.ids);
            types[r * width..r * width + len].copy_from_slice(&row.type_ids);
            mask[r * width..r * width + len].fill(1);
        }
        Ok(TokenBatch {
            input_ids: Tensor::from_vec(ids, (n, width), &self.device)?,
            token_type_ids: Tensor::from_vec(types, (n, width), &self.device)?,
            attention_mask: Tensor::from_vec(mask, (n, width), &self.device)?,
            lengths: rows.iter().map(|r| r.ids.len()).collect(),
        })
    }

    /// Sparse vectors of a batch of tokenized texts. A NaN or an infinity in the final hidden
    /// states, the logits or the pooled weights is an error ([`EncoderError::NonFiniteActivations`]
    /// with the text's position in `rows`), never a silently emptied vector.
    fn encode_tokenized(
        &self,
        rows: &[&TokenizedText],
        max_active_dims: Option<usize>,
    ) -> Result<Vec<SparseVector>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let batch = self.token_batch(rows)?;
        let (tokens, packing) =
            self.model
                .packed_features(&batch, ForwardMode::Inference, None, DType::F32)?;
        let text_of_row = |row: usize| packing.starts().partition_point(|&s| s <= row).max(1) - 1;
        if let Some(row) = first_non_finite_row(&tokens)? {
            return Err(self.non_finite("hidden states", text_of_row(row)));
        }
        if let Some(csr) = &self.csr {
            let prompt_tokens: Vec<usize> = rows.iter().map(|r| r.prompt_tokens).collect();
            let k = max_active_dims.unwrap_or(csr.sae.config.k);
            return match csr.encode(&tokens, packing.starts(), &prompt_tokens, k)? {
                Ok(vectors) => Ok(vectors),
                Err(text) => Err(self.non_finite("pooled embedding or autoencoder latents", text)),
            };
        }
        match pool_sparse_packed_checked(
            &tokens,
            packing.starts(),
            self.model.mlm_head()?,
            self.screen.as_ref(),
            self.folder.pooling,
        )? {
            Ok(vectors) => Ok(vectors),
            Err(text) => Err(self.non_finite("vocabulary logits or pooled weights", text)),
        }
    }

    fn non_finite(&self, what: &str, text: usize) -> EncoderError {
        EncoderError::NonFiniteActivations {
            model: self.folder.root.clone(),
            what: what.to_string(),
            text,
        }
    }

    /// Every row of `a` against every row of `b` with the model's similarity function.
    pub fn similarity(&self, a: &SparseBatch, b: &SparseBatch) -> ScoreMatrix {
        splade_sparse::similarity(a, b, self.folder.similarity)
    }

    /// Row `i` of `a` against row `i` of `b` with the model's similarity function.
    pub fn similarity_pairwise(&self, a: &SparseBatch, b: &SparseBatch) -> Vec<f32> {
        splade_sparse::similarity_pairwise(a, b, self.folder.similarity)
    }

    /// The `top_k` heaviest terms of a vector as `(token, weight)`, heaviest first (all terms
    /// when `top_k` is `None`). A CSR model's dimensions are autoencoder latents, not tokens:
    /// each is named `dimension N` (see [`Self::dimension_name`]).
    pub fn decode(&self, vector: SparseView<'_>, top_k: Option<usize>) -> Vec<(String, f32)> {
        vector
            .top_positions(top_k.unwrap_or(vector.nnz()))
            .into_iter()
            .map(|p| {
                let id = vector.indices()[p];
                (self.dimension_name(id), vector.values()[p])
            })
            .collect()
    }

    /// What dimension `id` stands for: its vocabulary token (`[id]` when the tokenizer has
    /// none), or `dimension id` for a CSR model, whose dimensions are latents.
    pub fn dimension_name(&self, id: u32) -> String {
        if self.csr.is_some() {
            return format!("dimension {id}");
        }
        self.tokenizer
            .id_to_token(id)
            .unwrap_or_else(|| format!("[{id}]"))
    }

    /// Mean active dimensions and sparsity ratio of a batch.
    pub fn sparsity(batch: &SparseBatch) -> SparsityStats {
        splade_sparse::sparsity(batch)
    }

    /// The element-wise product of two vectors: which terms match, and how much each adds
    /// to their dot product.
    pub fn intersection(a: SparseView<'_>, b: SparseView<'_>) -> SparseVector {
        a.intersection(&b)
    }
}

/// The checks every encode call makes on its options.
fn check_options(options: &EncodeOptions) -> Result<()> {
    if options.batch_size == 0 {
        return Err(EncoderError::InvalidArgument(
            "batch size must be at least 1".into(),
        ));
    }
    if options.max_active_dims == Some(0) {
        return Err(EncoderError::InvalidArgument(
            "max_active_dims must be at least 1".into(),
        ));
    }
    Ok(())
}

/// Loads a CSR folder's `SparseAutoEncoder` (none for a SPLADE model).
pub(crate) fn load_csr_head(folder: &ModelFolder, device: &Device) -> Result<Option<CsrHead>> {
    let Some(csr) = &folder.csr else {
        return Ok(None);
    };
    let sae =
        SparseAutoEncoder::load(&folder.root, &csr.sae_dir, csr.pooling.output_dim(), device)?;
    Ok(Some(CsrHead {
        pooling: csr.pooling.clone(),
        sae,
    }))
}

/// Loads the `SparseStaticEmbedding` routes of a Router folder (none for a plain model); their
/// weights must match the SPLADE route's vocabulary.
pub(crate) fn load_static_routes(folder: &ModelFolder) -> Result<Vec<(String, StaticEmbedding)>> {
    let Some(router) = &folder.router else {
        return Ok(Vec::new());
    };
    router
        .routes
        .iter()
        .filter_map(|route| match &route.kind {
            RouteKind::Static { dir } => Some(
                StaticEmbedding::load(&folder.root, dir, Some(folder.backbone.vocab_size))
                    .map(|s| (route.name.clone(), s)),
            ),
            RouteKind::Splade { .. } => None,
        })
        .collect()
}
