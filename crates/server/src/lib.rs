//! `splade serve`: a sparse-embedding and search server, compatible with
//! text-embeddings-inference (TEI) 1.9 so its users can swap it in.
//!
//! - TEI's routes with TEI's JSON shapes, status codes and error bodies: `POST
//!   /embed_sparse` (also `/` and `/invocations`), `/tokenize`, `/decode`, `GET /info`,
//!   `/health`, `/metrics` (Prometheus: TEI's `te_*` families plus `splade_*`).
//! - Engine-facing routes: `POST /elasticsearch/sparse_embedding` and
//!   `/opensearch/sparse_embedding` (token → weight maps).
//! - With an index: `POST /search`, `POST /documents` (upsert), `DELETE /documents`.
//!
//! Inside ([`infer`]): a permit per input (429 when none is left), tokenization on worker
//! threads, one model thread packing queued inputs by a token budget; the live index
//! ([`live_index`]) serves searches from an atomically swapped snapshot while one writer
//! thread group-commits updates.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use splade_server::{Server, ServerConfig};
//! let encoder = splade_encoder::SparseEncoder::from_pretrained("splade-tiny")?;
//! let config = ServerConfig { model_id: "splade-tiny".into(), ..ServerConfig::default() };
//! let server = Server::new(encoder, None, config)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! server.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod error;
pub mod infer;
pub mod json;
pub mod live_index;
pub mod metrics;
pub mod routes;
pub mod state;
pub mod types;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Method};
use axum::routing::{get, post};
use axum::Router;
use splade_encoder::SparseEncoder;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use config::ServerConfig;
pub use error::{ApiError, ErrorType};

use crate::infer::Infer;
use crate::live_index::LiveIndex;
use crate::metrics::Metrics;
use crate::state::{AppState, SharedState};

/// A server ready to serve: the model loaded, the index opened (or created).
pub struct Server {
    state: SharedState,
}

impl Server {
    /// Starts the model and tokenizer threads and opens the index in `index_dir` (creating
    /// an empty one of the model's dimension when the folder holds none).
    pub fn new(
        encoder: SparseEncoder,
        index_dir: Option<&Path>,
        config: ServerConfig,
    ) -> anyhow::Result<Self> {
        config.validate()?;
        let metrics = Arc::new(Metrics::new(encoder.max_seq_length())?);
        let index = match index_dir {
            Some(dir) => Some(Arc::new(LiveIndex::open_or_create(
                dir,
                encoder.dim(),
                config.max_commit_documents,
                metrics.clone(),
            )?)),
            None => None,
        };
        if let Some(live) = &index {
            if live.dim() < encoder.dim() {
                tracing::warn!(
                    "the index's dimension {} is below the model's {}: query terms beyond it match no document, and text documents with such terms are refused",
                    live.dim(),
                    encoder.dim()
                );
            }
        }
        let infer = Infer::start(Arc::new(encoder), &config, metrics.clone());
        Ok(Self {
            state: Arc::new(AppState {
                config,
                infer,
                index,
                metrics,
            }),
        })
    }

    /// The routes.
    pub fn router(&self) -> Router {
        let state = self.state.clone();
        let config = &state.config;
        let mut protected = Router::new()
            .route("/embed_sparse", post(routes::embed::embed_sparse))
            .route("/", post(routes::embed::embed_sparse))
            .route("/invocations", post(routes::embed::embed_sparse))
            .route("/tokenize", post(routes::text::tokenize))
            .route("/decode", post(routes::text::decode))
            .route("/info", get(routes::status::info))
            .route(
                "/elasticsearch/sparse_embedding",
                post(routes::engines::elasticsearch),
            )
            .route(
                "/opensearch/sparse_embedding",
                post(routes::engines::opensearch),
            )
            .route("/search", post(routes::search::search))
            .route(
                "/documents",
                post(routes::documents::upsert).delete(routes::documents::delete),
            );
        if let Some(key) = &config.api_key {
            protected = protected.layer(axum::middleware::from_fn_with_state(
                auth::ApiKey::new(key),
                auth::require_key,
            ));
        }
        let public = Router::new()
            .route("/health", get(routes::status::health))
            .route("/ping", get(routes::status::health))
            .route("/", get(routes::status::health))
            .route("/metrics", get(routes::status::metrics));
        let mut app = protected
            .merge(public)
            .with_state(state.clone())
            .layer(DefaultBodyLimit::max(config.payload_limit));
        if !config.cors_allow_origin.is_empty() {
            let origins = if config.cors_allow_origin.iter().any(|o| o == "*") {
                AllowOrigin::any()
            } else {
                AllowOrigin::list(
                    config
                        .cors_allow_origin
                        .iter()
                        .filter_map(|o| HeaderValue::from_str(o).ok()),
                )
            };
            app = app.layer(
                CorsLayer::new()
                    .allow_methods([Method::GET, Method::POST, Method::DELETE])
                    .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
                    .allow_origin(origins),
            );
        }
        app
    }

    /// Serves on `listener` until `shutdown` completes; then stops accepting connections,
    /// lets the requests in flight finish, commits the updates already queued and releases
    /// the index's write lock.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = self.router();
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        if let Some(index) = &self.state.index {
            index.shutdown();
        }
        served?;
        Ok(())
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("signal received, shutting down gracefully");
}
