//! Inference as text-embeddings-inference does it: a permit per input (429 when none is
//! left, never an unbounded queue), tokenization on worker threads, and one model thread
//! that packs queued inputs into batches by a token budget (`--max-batch-tokens`) and a
//! request count (`--max-batch-requests`). The model never runs on the async runtime.
//!
//! A request whose client went away is dropped from the queue when its turn comes (its
//! reply channel is closed), so a disconnect cancels the queued work.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use splade_encoder::{
    EncodeOptions, RouteChoice, SparseEncoder, SparseVector, TokenizedText, Truncation,
};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::config::ServerConfig;
use crate::error::{ApiError, ErrorType};
use crate::metrics::Metrics;
use crate::types::InputType;

type Job = Box<dyn FnOnce() + Send>;
type Reply = Result<(SparseVector, Duration, Duration), ApiError>;

/// One tokenized input waiting for the model.
struct Entry {
    tokens: TokenizedText,
    reply: oneshot::Sender<Reply>,
    enqueued: Instant,
}

/// How a request's texts are encoded: the options (prompt) and the task, which picks the
/// route of an inference-free model.
#[derive(Debug, Clone)]
pub struct RequestEncoding {
    /// The encode options (prompt).
    pub options: EncodeOptions,
    /// `query`, `document`, or none (the model's default route).
    pub task: Option<&'static str>,
}

/// What the model made of a request's inputs.
#[derive(Debug)]
pub struct Encoded {
    /// One vector per input, in order.
    pub vectors: Vec<SparseVector>,
    /// Tokens given to the model.
    pub tokens: usize,
    /// Time spent tokenizing.
    pub tokenization: Duration,
    /// Mean time an input waited in the queue.
    pub queue: Duration,
    /// Mean time of the forward passes that held the inputs.
    pub inference: Duration,
}

/// The batching limits the model thread packs by.
#[derive(Debug, Clone, Copy)]
struct BatchLimits {
    max_tokens: usize,
    max_requests: usize,
}

/// The inference side of the server: permits, tokenizer workers, the model thread.
pub struct Infer {
    encoder: Arc<SparseEncoder>,
    permits: Arc<Semaphore>,
    jobs: Sender<Job>,
    queue: Sender<Entry>,
    model_alive: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    timeout: Duration,
    default_prompt_name: Option<String>,
    max_token_id: u32,
}

impl Infer {
    /// Starts the tokenizer workers and the model thread.
    pub fn start(
        encoder: Arc<SparseEncoder>,
        config: &ServerConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        let capacity = 2 * config.max_concurrent_requests;
        let (jobs, job_rx) = bounded::<Job>(capacity);
        for i in 0..config.tokenization_workers {
            let rx = job_rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("splade-tokenizer-{i}"))
                .spawn(move || {
                    for job in rx {
                        job();
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("could not start tokenizer thread {i}: {e}");
            }
        }
        let (queue, queue_rx) = bounded::<Entry>(capacity);
        let model_alive = Arc::new(AtomicBool::new(true));
        let limits = BatchLimits {
            max_tokens: config.max_batch_tokens,
            max_requests: config.max_batch_requests.unwrap_or(usize::MAX),
        };
        {
            let encoder = encoder.clone();
            let metrics = metrics.clone();
            let alive = model_alive.clone();
            let spawned = std::thread::Builder::new()
                .name("splade-model".into())
                .spawn(move || {
                    model_loop(&encoder, &queue_rx, limits, &metrics);
                    alive.store(false, Ordering::SeqCst);
                });
            if let Err(e) = spawned {
                tracing::error!("could not start the model thread: {e}");
                model_alive.store(false, Ordering::SeqCst);
            }
        }
        let max_token_id = encoder
            .tokenizer()
            .max_token_id()
            .unwrap_or(0)
            .min(encoder.folder().backbone.vocab_size.saturating_sub(1) as u32);
        Self {
            encoder,
            permits: Arc::new(Semaphore::new(config.max_concurrent_requests)),
            jobs,
            queue,
            model_alive,
            metrics,
            timeout: config.request_timeout,
            default_prompt_name: config.default_prompt_name.clone(),
            max_token_id,
        }
    }

    /// The encoder.
    pub fn encoder(&self) -> &SparseEncoder {
        &self.encoder
    }

    /// Whether the model thread is running.
    pub fn is_healthy(&self) -> bool {
        self.model_alive.load(Ordering::SeqCst)
    }

    /// Takes `n` permits at once, or answers 429 (TEI's `try_acquire`: no waiting).
    pub fn try_acquire(&self, n: usize) -> Result<OwnedSemaphorePermit, ApiError> {
        let n = u32::try_from(n).map_err(|_| ApiError::overloaded())?;
        self.permits.clone().try_acquire_many_owned(n).map_err(|_| {
            self.metrics
                .count("te_request_failure", &[("err", "overloaded")]);
            ApiError::overloaded()
        })
    }

    /// Encode options for a request's `prompt_name` (or the server's
    /// `--default-prompt-name` when it names none): `query` and `document` select the
    /// model's query and document encoding (their prompts when the model has them); any
    /// other name must be one of the model's prompts.
    pub fn options_for(&self, prompt_name: Option<&str>) -> Result<EncodeOptions, ApiError> {
        self.request_encoding(prompt_name).map(|r| r.options)
    }

    /// The options of [`Self::options_for`] and the task they encode for: `query` and
    /// `document` for those prompt names, none otherwise. An inference-free model takes the
    /// route its Router gives the task.
    pub fn request_encoding(&self, prompt_name: Option<&str>) -> Result<RequestEncoding, ApiError> {
        let name = prompt_name.or(self.default_prompt_name.as_deref());
        let task = match name {
            Some("query") => Some("query"),
            Some("document") => Some("document"),
            _ => None,
        };
        Ok(RequestEncoding {
            options: self.prompt_options(name)?,
            task,
        })
    }

    fn prompt_options(&self, name: Option<&str>) -> Result<EncodeOptions, ApiError> {
        let base = EncodeOptions::default();
        match name {
            None => Ok(base),
            Some("query") => Ok(self.encoder.query_options(&base)),
            Some("document") => Ok(self.encoder.document_options(&base)),
            Some(other) if self.encoder.prompts().contains_key(other) => Ok(EncodeOptions {
                prompt_name: Some(other.to_string()),
                ..base
            }),
            Some(other) => {
                let mut names: Vec<&str> = vec!["query", "document"];
                names.extend(self.encoder.prompts().keys().map(String::as_str));
                names.dedup();
                Err(ApiError::validation(format!(
                    "Input validation error: prompt_name '{other}' is not known: use one of {}",
                    names.join(", ")
                )))
            }
        }
    }

    /// Runs `work` on a tokenizer worker thread and waits for it.
    pub async fn run_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(ApiError::overloaded()),
            Err(TrySendError::Disconnected(_)) => {
                return Err(ApiError::new(
                    ErrorType::Unhealthy,
                    "the tokenizer workers have stopped",
                ))
            }
        }
        rx.await.map_err(|_| {
            ApiError::new(
                ErrorType::Backend,
                "Backend error: a tokenizer worker failed",
            )
        })
    }

    /// Tokenizes inputs on a worker thread: texts with the prompt of `options`, truncated
    /// as `truncation` says; token ids are taken as given (special tokens included, as TEI
    /// takes them), checked against the vocabulary, and truncated likewise, or decoded and
    /// re-tokenized with the prompt when one applies.
    pub async fn tokenize(
        &self,
        inputs: Vec<InputType>,
        options: EncodeOptions,
        truncation: Truncation,
    ) -> Result<Vec<TokenizedText>, ApiError> {
        let encoder = self.encoder.clone();
        let max_token_id = self.max_token_id;
        self.run_blocking(move || {
            tokenize_inputs(&encoder, inputs, &options, truncation, max_token_id)
        })
        .await?
    }

    /// Encodes inputs: tokenizes them, queues each for the model and waits for all (at most
    /// `--request-timeout`, then 429). The caller holds one permit per input.
    pub async fn encode(
        &self,
        inputs: Vec<InputType>,
        encoding: RequestEncoding,
        truncation: Truncation,
        _permit: &OwnedSemaphorePermit,
    ) -> Result<Encoded, ApiError> {
        let RequestEncoding { options, task } = encoding;
        if let RouteChoice::Static(_) = self.encoder.route_for(task)? {
            // An inference-free route: no model forward, so no queue; a worker thread
            // tokenizes and looks the weights up.
            let encoder = self.encoder.clone();
            let start = Instant::now();
            let (vectors, tokens) = self
                .run_blocking(move || encode_static(&encoder, inputs, &options, task, truncation))
                .await??;
            let tokenization = start.elapsed();
            self.metrics
                .time("te_request_tokenization_duration", tokenization);
            return Ok(Encoded {
                vectors,
                tokens,
                tokenization,
                queue: Duration::ZERO,
                inference: Duration::ZERO,
            });
        }
        let work = async {
            let start = Instant::now();
            let tokenized = self.tokenize(inputs, options, truncation).await?;
            let tokenization = start.elapsed();
            self.metrics
                .time("te_request_tokenization_duration", tokenization);
            let tokens: usize = tokenized.iter().map(|t| t.ids.len()).sum();
            let input_length = self.metrics.histogram("te_request_input_length", &[]);
            let mut waiting = Vec::with_capacity(tokenized.len());
            for t in tokenized {
                input_length.record(t.ids.len() as f64);
                let (tx, rx) = oneshot::channel();
                let entry = Entry {
                    tokens: t,
                    reply: tx,
                    enqueued: Instant::now(),
                };
                match self.queue.try_send(entry) {
                    Ok(()) => self.metrics.gauge("te_queue_size", &[]).increment(1.0),
                    Err(TrySendError::Full(_)) => return Err(ApiError::overloaded()),
                    Err(TrySendError::Disconnected(_)) => {
                        return Err(ApiError::new(
                            ErrorType::Unhealthy,
                            "the model thread has stopped",
                        ))
                    }
                }
                waiting.push(rx);
            }
            let n = waiting.len().max(1) as u32;
            let mut vectors = Vec::with_capacity(waiting.len());
            let (mut queue, mut inference) = (Duration::ZERO, Duration::ZERO);
            for rx in waiting {
                let (vector, q, i) = rx.await.map_err(|_| {
                    ApiError::new(
                        ErrorType::Backend,
                        "Backend error: the model thread stopped",
                    )
                })??;
                vectors.push(vector);
                queue += q;
                inference += i;
            }
            let (queue, inference) = (queue / n, inference / n);
            self.metrics.time("te_request_queue_duration", queue);
            self.metrics
                .time("te_request_inference_duration", inference);
            Ok(Encoded {
                vectors,
                tokens,
                tokenization,
                queue,
                inference,
            })
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(ApiError::new(
                ErrorType::Overloaded,
                format!(
                    "Model is overloaded: no answer within {} s (--request-timeout)",
                    self.timeout.as_secs_f64()
                ),
            )),
        }
    }
}

/// Encodes inputs on a static (inference-free) route: each text (token ids are decoded back
/// to text first) with the prompt of `options`, tokenized by the route's own tokenizer and
/// truncated as `truncation` says; the vectors and the number of tokens.
fn encode_static(
    encoder: &SparseEncoder,
    inputs: Vec<InputType>,
    options: &EncodeOptions,
    task: Option<&str>,
    truncation: Truncation,
) -> Result<(Vec<SparseVector>, usize), ApiError> {
    let RouteChoice::Static(route) = encoder.route_for(task)? else {
        return Err(ApiError::new(
            ErrorType::Backend,
            "Backend error: the route changed",
        ));
    };
    let prompt = encoder.prompt_text(options)?;
    let mut vectors = Vec::with_capacity(inputs.len());
    let mut tokens = 0;
    for (index, input) in inputs.into_iter().enumerate() {
        let text = match input {
            InputType::String(s) => s,
            InputType::Ids(ids) => encoder
                .tokenizer()
                .inner()
                .decode(&ids, true)
                .map_err(|e| ApiError::new(ErrorType::Tokenizer, format!("tokenizer error {e}")))?,
        };
        let ids = route
            .tokenize_truncating(&format!("{prompt}{text}"), index, truncation)
            .map_err(|e| match e {
                splade_encoder::EncoderError::InputTooLong { what, limit, given, .. } => {
                    ApiError::validation(format!(
                        "Input validation error: `inputs` must have less than {limit} {what}. Given: {given}"
                    ))
                }
                other => ApiError::from(other),
            })?;
        tokens += ids.len();
        vectors.push(route.vector_of_ids(&ids)?);
    }
    Ok((vectors, tokens))
}

fn tokenize_inputs(
    encoder: &SparseEncoder,
    inputs: Vec<InputType>,
    options: &EncodeOptions,
    truncation: Truncation,
    max_token_id: u32,
) -> Result<Vec<TokenizedText>, ApiError> {
    let prompt = encoder.prompt_text(options)?;
    let max_length = encoder.max_seq_length();
    let mut out = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.into_iter().enumerate() {
        let text = match input {
            InputType::String(s) => s,
            InputType::Ids(ids) => {
                if let Some(bad) = ids.iter().find(|&&id| id > max_token_id) {
                    return Err(ApiError::validation(format!(
                        "Input validation error: token id {bad} of input #{index} is not in the vocabulary (ids go up to {max_token_id})"
                    )));
                }
                if ids.is_empty() {
                    return Err(ApiError::empty(format!("input #{index} has no token ids")));
                }
                if prompt.is_empty() {
                    out.push(truncate_ids(ids, max_length, truncation, index)?);
                    continue;
                }
                let decoded = encoder
                    .tokenizer()
                    .inner()
                    .decode(&ids, true)
                    .map_err(|e| {
                        ApiError::new(ErrorType::Tokenizer, format!("tokenizer error {e}"))
                    })?;
                decoded
            }
        };
        let mut one = encoder
            .tokenize_truncating(&[text], options, truncation)
            .map_err(|e| match e {
                splade_encoder::EncoderError::InputTooLong { what, limit, given, .. } => {
                    ApiError::validation(format!(
                        "Input validation error: `inputs` must have less than {limit} {what}. Given: {given}"
                    ))
                }
                other => ApiError::from(other),
            })?;
        out.append(&mut one);
    }
    Ok(out)
}

fn truncate_ids(
    mut ids: Vec<u32>,
    max_length: usize,
    truncation: Truncation,
    index: usize,
) -> Result<TokenizedText, ApiError> {
    if ids.len() > max_length {
        match truncation {
            Truncation::Right => ids.truncate(max_length),
            Truncation::Left => {
                ids.drain(..ids.len() - max_length);
            }
            Truncation::Refuse => {
                return Err(ApiError::validation(format!(
                    "Input validation error: `inputs` must have less than {max_length} tokens. Given: {} (input #{index})",
                    ids.len()
                )))
            }
        }
    }
    let type_ids = vec![0; ids.len()];
    Ok(TokenizedText {
        ids,
        type_ids,
        prompt_tokens: 0,
    })
}

/// The model thread: takes the next input, adds queued ones while the token budget and the
/// request count allow, runs one forward pass, answers each input.
fn model_loop(
    encoder: &SparseEncoder,
    queue: &Receiver<Entry>,
    limits: BatchLimits,
    metrics: &Metrics,
) {
    let queue_size = metrics.gauge("te_queue_size", &[]);
    let dropped = metrics.counter("te_request_failure", &[("err", "dropped")]);
    let mut carry: Option<Entry> = None;
    loop {
        let first = match carry.take() {
            Some(e) => e,
            None => match queue.recv() {
                Ok(e) => {
                    queue_size.decrement(1.0);
                    e
                }
                Err(_) => return,
            },
        };
        let mut batch: Vec<Entry> = Vec::new();
        let mut tokens = 0;
        let consider = |e: Entry, batch: &mut Vec<Entry>, tokens: &mut usize| -> Option<Entry> {
            if e.reply.is_closed() {
                dropped.increment(1);
                return None;
            }
            if !batch.is_empty() && *tokens + e.tokens.ids.len() > limits.max_tokens {
                return Some(e);
            }
            *tokens += e.tokens.ids.len();
            batch.push(e);
            None
        };
        carry = consider(first, &mut batch, &mut tokens);
        while carry.is_none() && batch.len() < limits.max_requests {
            match queue.try_recv() {
                Ok(e) => {
                    queue_size.decrement(1.0);
                    carry = consider(e, &mut batch, &mut tokens);
                }
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        metrics
            .histogram("te_batch_next_size", &[])
            .record(batch.len() as f64);
        metrics
            .histogram("te_batch_next_tokens", &[])
            .record(tokens as f64);
        run_batch(encoder, batch, metrics);
    }
}

/// One forward pass over `batch`, answering every entry. A failed batch is retried one
/// input at a time, so only the input that fails gets the error.
fn run_batch(encoder: &SparseEncoder, batch: Vec<Entry>, metrics: &Metrics) {
    let start = Instant::now();
    let rows: Vec<&TokenizedText> = batch.iter().map(|e| &e.tokens).collect();
    let result = forward(encoder, &rows);
    let inference = start.elapsed();
    metrics.time("te_batch_inference_duration", inference);
    match result {
        Ok(vectors) => {
            metrics.count("te_batch_inference_success", &[]);
            for (entry, vector) in batch.into_iter().zip(vectors) {
                let queued = start.saturating_duration_since(entry.enqueued);
                let _ = entry.reply.send(Ok((vector, queued, inference)));
            }
        }
        Err(error) if batch.len() == 1 => {
            metrics.count("te_request_failure", &[("err", "inference")]);
            if let Some(entry) = batch.into_iter().next() {
                let _ = entry.reply.send(Err(error));
            }
        }
        Err(_) => {
            for entry in batch {
                run_batch(encoder, vec![entry], metrics);
            }
        }
    }
}

fn forward(
    encoder: &SparseEncoder,
    rows: &[&TokenizedText],
) -> Result<Vec<SparseVector>, ApiError> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| encoder.encode_tokens(rows, None))) {
        Ok(result) => result.map_err(ApiError::from),
        Err(_) => Err(ApiError::new(
            ErrorType::Backend,
            "Backend error: the model panicked on this batch (please report this)",
        )),
    }
}
