//! Qdrant's REST API: the requests an export and a search make ([`Request`], pure values
//! the tests check against Qdrant's OpenAPI schema) and a blocking client that sends them.

use std::time::Duration;

use serde_json::Value;
use splade_sparse::SparseView;

use super::bodies::{collection_body, count_body, query_batch_body, upsert_body, QdrantVectors};
use super::DOC_ID_KEY;
use crate::error::{EngineError, Result};
use crate::EngineHit;

/// One REST request: method, path (with the collection name filled in) and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `GET`, `PUT` or `POST`.
    pub method: &'static str,
    /// The path below the server's URL, query string included.
    pub path: String,
    /// The path as the OpenAPI document names it (`/collections/{collection_name}/...`).
    pub template: &'static str,
    /// The JSON body, if any.
    pub body: Option<Value>,
}

impl Request {
    /// `GET /collections/{name}/exists`.
    pub fn exists(collection: &str) -> Self {
        Self {
            method: "GET",
            path: format!("/collections/{collection}/exists"),
            template: "/collections/{collection_name}/exists",
            body: None,
        }
    }

    /// `PUT /collections/{name}`: a collection with one named sparse vector.
    pub fn create_collection(collection: &str, vectors: &QdrantVectors) -> Self {
        Self {
            method: "PUT",
            path: format!("/collections/{collection}"),
            template: "/collections/{collection_name}",
            body: Some(collection_body(vectors)),
        }
    }

    /// `PUT /collections/{name}/points?wait=true`: upsert, answered once applied.
    pub fn upsert(collection: &str, points: Vec<Value>) -> Self {
        Self {
            method: "PUT",
            path: format!("/collections/{collection}/points?wait=true"),
            template: "/collections/{collection_name}/points",
            body: Some(upsert_body(points)),
        }
    }

    /// `POST /collections/{name}/points/count` (exact).
    pub fn count(collection: &str) -> Self {
        Self {
            method: "POST",
            path: format!("/collections/{collection}/points/count"),
            template: "/collections/{collection_name}/points/count",
            body: Some(count_body()),
        }
    }

    /// `POST /collections/{name}/points/query/batch`: the `k` best points per query.
    pub fn query_batch(
        collection: &str,
        queries: &[SparseView<'_>],
        vector_name: &str,
        k: usize,
    ) -> Self {
        Self {
            method: "POST",
            path: format!("/collections/{collection}/points/query/batch"),
            template: "/collections/{collection_name}/points/query/batch",
            body: Some(query_batch_body(queries, vector_name, k)),
        }
    }
}

/// A Qdrant server's REST API.
pub struct QdrantRest {
    url: String,
    api_key: Option<String>,
    http: reqwest::blocking::Client,
}

impl QdrantRest {
    /// A client for `url` (`http://HOST:6333` or `https://...`), with an API key if given.
    pub fn new(url: &str, api_key: Option<String>) -> Result<Self> {
        let url = url.trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(EngineError::Address {
                address: url.to_string(),
                message: "a Qdrant URL starts with http:// or https://".into(),
            });
        }
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| EngineError::Input(format!("cannot start an HTTP client: {e}")))?;
        Ok(Self {
            url: url.to_string(),
            api_key,
            http,
        })
    }

    /// Sends `request`; returns the `result` of Qdrant's answer. A status other than 2xx is
    /// an error with the status and Qdrant's message.
    pub fn send(&self, request: &Request) -> Result<Value> {
        let url = format!("{}{}", self.url, request.path);
        let err = |message: String| EngineError::Http {
            method: request.method.to_string(),
            url: url.clone(),
            message,
        };
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|e| err(e.to_string()))?;
        let mut builder = self.http.request(method, &url);
        if let Some(key) = &self.api_key {
            builder = builder.header("api-key", key);
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let response = builder.send().map_err(|e| err(e.to_string()))?;
        let status = response.status();
        let text = response.text().map_err(|e| err(e.to_string()))?;
        if !status.is_success() {
            return Err(err(format!(
                "{status}: {}",
                text.chars().take(500).collect::<String>()
            )));
        }
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            err(format!(
                "answer is not JSON ({e}): {}",
                text.chars().take(200).collect::<String>()
            ))
        })?;
        Ok(value.get("result").cloned().unwrap_or(Value::Null))
    }

    /// Whether the collection exists.
    pub fn exists(&self, collection: &str) -> Result<bool> {
        let result = self.send(&Request::exists(collection))?;
        Ok(result
            .get("exists")
            .and_then(Value::as_bool)
            .unwrap_or(false))
    }

    /// Exact number of points in the collection.
    pub fn count(&self, collection: &str) -> Result<u64> {
        let result = self.send(&Request::count(collection))?;
        result.get("count").and_then(Value::as_u64).ok_or_else(|| {
            EngineError::Collection(format!(
                "Qdrant collection {collection}: count answer {result}"
            ))
        })
    }

    /// The `k` best documents per query (ids from the `doc_id` payload), best first.
    pub fn search(
        &self,
        collection: &str,
        queries: &[SparseView<'_>],
        vector_name: &str,
        k: usize,
    ) -> Result<Vec<Vec<EngineHit>>> {
        let result = self.send(&Request::query_batch(collection, queries, vector_name, k))?;
        parse_query_batch(&result, queries.len())
    }
}

/// The hits of a `query/batch` answer: `[{"points": [{"score", "payload": {"doc_id"}}]}]`.
pub(crate) fn parse_query_batch(result: &Value, expected: usize) -> Result<Vec<Vec<EngineHit>>> {
    let bad = |what: &str| EngineError::Collection(format!("Qdrant query answer: {what}"));
    let lists = result.as_array().ok_or_else(|| bad("not a list"))?;
    if lists.len() != expected {
        return Err(bad(&format!(
            "{} result lists for {expected} queries",
            lists.len()
        )));
    }
    lists
        .iter()
        .map(|list| {
            list.get("points")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("no points"))?
                .iter()
                .map(|p| {
                    let id = p
                        .pointer(&format!("/payload/{DOC_ID_KEY}"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad("a point without doc_id payload"))?;
                    let score = p
                        .get("score")
                        .and_then(Value::as_f64)
                        .ok_or_else(|| bad("a point without score"))?;
                    Ok(EngineHit {
                        id: id.to_string(),
                        score: score as f32,
                    })
                })
                .collect()
        })
        .collect()
}
