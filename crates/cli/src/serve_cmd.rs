//! `splade serve`: parses text-embeddings-inference's router flags (same names and
//! defaults, but `--hostname 127.0.0.1` and `--port 8080`) and runs the server of the
//! `splade-server` crate.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use splade_server::{Server, ServerConfig};

/// `splade serve` flags.
#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    model: crate::ModelArg,
    /// Serve search and live updates of this index (an empty or missing folder gets a new
    /// index of the model's dimension).
    #[arg(long, value_name = "DIR")]
    index: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    hostname: String,
    /// Port to listen on (0: any free port; the address is printed on stderr).
    #[arg(long, short, default_value_t = 8080)]
    port: u16,
    /// Require `Authorization: Bearer KEY` on every route but /health, /ping and /metrics.
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// Inputs in flight at once; beyond it requests get 429 at once.
    #[arg(long, default_value_t = 512)]
    max_concurrent_requests: usize,
    /// Tokens per forward pass.
    #[arg(long, default_value_t = 16384)]
    max_batch_tokens: usize,
    /// Inputs per forward pass (default: no limit but the token budget).
    #[arg(long)]
    max_batch_requests: Option<usize>,
    /// Inputs per request.
    #[arg(long, default_value_t = 32)]
    max_client_batch_size: usize,
    /// Truncate too-long inputs when a request does not say (`--auto-truncate false`: refuse
    /// them with 422).
    #[arg(long, default_value = "true", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    auto_truncate: bool,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 2_000_000)]
    payload_limit: usize,
    /// The prompt used when a request names none (`query`, `document` or one of the model's
    /// prompts).
    #[arg(long, value_name = "NAME")]
    default_prompt_name: Option<String>,
    /// Log as JSON lines.
    #[arg(long)]
    pub json_output: bool,
    /// Allow these CORS origins (`*` for any); no CORS headers without it.
    #[arg(long, value_name = "ORIGIN")]
    cors_allow_origin: Vec<String>,
    /// Tokenizer threads (default: the cores, at most 8).
    #[arg(long)]
    tokenization_workers: Option<usize>,
    /// Seconds a request may wait for the model before it is answered 429.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    request_timeout: f64,
    /// Most documents one group commit of the index writes.
    #[arg(long, default_value_t = 10_000)]
    max_commit_documents: usize,
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> Result<()> {
    let encoder = crate::load(&args.model)?;
    let defaults = ServerConfig::default();
    if !(args.request_timeout > 0.0 && args.request_timeout.is_finite()) {
        anyhow::bail!("--request-timeout must be a positive number of seconds");
    }
    let config = ServerConfig {
        model_id: args.model.model.clone(),
        max_concurrent_requests: args.max_concurrent_requests,
        max_batch_tokens: args.max_batch_tokens,
        max_batch_requests: args.max_batch_requests,
        max_client_batch_size: args.max_client_batch_size,
        auto_truncate: args.auto_truncate,
        payload_limit: args.payload_limit,
        default_prompt_name: args.default_prompt_name,
        api_key: args.api_key,
        cors_allow_origin: args.cors_allow_origin,
        tokenization_workers: args
            .tokenization_workers
            .unwrap_or(defaults.tokenization_workers),
        request_timeout: Duration::from_secs_f64(args.request_timeout),
        max_commit_documents: args.max_commit_documents,
    };
    let server =
        Server::new(encoder, args.index.as_deref(), config).with_context(|| match &args.index {
            Some(dir) => format!("starting the server with the index {}", dir.display()),
            None => "starting the server".to_string(),
        })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("splade-http")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let address = format!("{}:{}", args.hostname, args.port);
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .with_context(|| format!("listening on {address}"))?;
        let local = listener.local_addr().context("reading the bound address")?;
        // Tests and scripts wait for this line (with --port 0 it is the only way to learn
        // the port).
        eprintln!("splade serve: listening on http://{local}");
        tracing::info!("Ready");
        server
            .serve(listener, splade_server::shutdown_signal())
            .await
    })
}
