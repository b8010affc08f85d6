//! The server's settings: text-embeddings-inference's router flags with its defaults, plus
//! the search and update settings of splade-rs.

use std::time::Duration;

/// How a server runs (the `splade serve` flags).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The model name reported by `/info` (`model_id` and `served_model_name`).
    pub model_id: String,
    /// Inputs in flight at once (queued, tokenizing or in the model); an input beyond this
    /// is refused with 429 at once, never queued (TEI's `--max-concurrent-requests`).
    pub max_concurrent_requests: usize,
    /// Tokens per forward pass (TEI's `--max-batch-tokens`).
    pub max_batch_tokens: usize,
    /// Inputs per forward pass (TEI's `--max-batch-requests`; unbounded when `None`).
    pub max_batch_requests: Option<usize>,
    /// Inputs per request (TEI's `--max-client-batch-size`).
    pub max_client_batch_size: usize,
    /// Truncate inputs longer than the model's max length when a request does not say
    /// (TEI's `--auto-truncate`, on by default since TEI 1.8).
    pub auto_truncate: bool,
    /// Largest request body in bytes (TEI's `--payload-limit`).
    pub payload_limit: usize,
    /// The prompt used when a request names none (TEI's `--default-prompt-name`).
    pub default_prompt_name: Option<String>,
    /// When set, every route but `/health`, `/ping`, `/` (GET) and `/metrics` needs
    /// `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Origins allowed by CORS (`*` for any); CORS headers are sent only when set.
    pub cors_allow_origin: Vec<String>,
    /// Threads that tokenize (TEI's `--tokenization-workers`).
    pub tokenization_workers: usize,
    /// How long a request may wait for its results before it is answered 429.
    pub request_timeout: Duration,
    /// Most documents written by one group commit of the live index.
    pub max_commit_documents: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            model_id: String::new(),
            max_concurrent_requests: 512,
            max_batch_tokens: 16384,
            max_batch_requests: None,
            max_client_batch_size: 32,
            auto_truncate: true,
            payload_limit: 2_000_000,
            default_prompt_name: None,
            api_key: None,
            cors_allow_origin: Vec::new(),
            tokenization_workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(8),
            request_timeout: Duration::from_secs(60),
            max_commit_documents: 10_000,
        }
    }
}

impl ServerConfig {
    /// Checks the limits: each must be at least 1.
    pub fn validate(&self) -> anyhow::Result<()> {
        let positive = [
            ("--max-concurrent-requests", self.max_concurrent_requests),
            ("--max-batch-tokens", self.max_batch_tokens),
            ("--max-client-batch-size", self.max_client_batch_size),
            ("--payload-limit", self.payload_limit),
            ("--tokenization-workers", self.tokenization_workers),
            ("--max-commit-documents", self.max_commit_documents),
            ("--max-batch-requests", self.max_batch_requests.unwrap_or(1)),
        ];
        if let Some((flag, _)) = positive.iter().find(|(_, v)| *v == 0) {
            anyhow::bail!("{flag} must be at least 1");
        }
        if self.request_timeout.is_zero() {
            anyhow::bail!("--request-timeout must be above 0");
        }
        if matches!(&self.api_key, Some(k) if k.is_empty()) {
            anyhow::bail!("--api-key must not be empty");
        }
        Ok(())
    }
}
