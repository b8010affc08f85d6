//! Request and response bodies. The TEI routes use text-embeddings-inference 1.9's shapes
//! (`router/src/http/types.rs` there); the search and document routes are splade-rs's own.

use serde::{Deserialize, Serialize};

/// One input: a text, or token ids (special tokens included, as TEI takes them).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum InputType {
    /// A text.
    String(String),
    /// Token ids.
    Ids(Vec<u32>),
}

/// `inputs`: one input or a batch.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Input {
    /// One input (the response is still a list of one).
    Single(InputType),
    /// A batch.
    Batch(Vec<InputType>),
}

impl Input {
    /// The inputs as a list, and whether the request was a batch.
    pub fn into_list(self) -> (Vec<InputType>, bool) {
        match self {
            // `[]` parses as an empty list of ids: TEI's untagged shape cannot tell it from
            // an empty batch, and an empty batch is what a client sending `[]` means.
            Input::Single(InputType::Ids(ids)) if ids.is_empty() => (Vec::new(), true),
            Input::Single(i) => (vec![i], false),
            Input::Batch(b) => (b, true),
        }
    }
}

/// Which side a too-long input is cut on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum TruncationDirection {
    /// Keep the last tokens.
    #[serde(alias = "left")]
    Left,
    /// Keep the first tokens.
    #[default]
    #[serde(alias = "right")]
    Right,
}

/// `POST /embed_sparse` (and `/`, `/invocations`).
#[derive(Debug, Deserialize)]
pub struct EmbedSparseRequest {
    /// The inputs.
    pub inputs: Input,
    /// Truncate too-long inputs (`null`: the server's `--auto-truncate`).
    #[serde(default)]
    pub truncate: Option<bool>,
    /// Which side to truncate.
    #[serde(default)]
    pub truncation_direction: TruncationDirection,
    /// `query` or `document` select the model's query or document encoding; any other name
    /// must be one of the model's prompts.
    #[serde(default)]
    pub prompt_name: Option<String>,
}

/// One non-zero weight of a sparse embedding.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SparseValue {
    /// Vocabulary index.
    pub index: u32,
    /// Weight.
    pub value: f32,
}

/// `POST /tokenize`'s `inputs`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum TokenizeInput {
    /// One text.
    Single(String),
    /// A batch.
    Batch(Vec<String>),
}

/// `POST /tokenize`.
#[derive(Debug, Deserialize)]
pub struct TokenizeRequest {
    /// The texts.
    pub inputs: TokenizeInput,
    /// Add `[CLS]`/`[SEP]` (default true).
    #[serde(default = "yes")]
    pub add_special_tokens: bool,
    /// A prompt to prepend (as for `/embed_sparse`).
    #[serde(default)]
    pub prompt_name: Option<String>,
}

fn yes() -> bool {
    true
}

/// One token of `/tokenize`.
#[derive(Debug, Serialize)]
pub struct SimpleToken {
    /// Token id.
    pub id: u32,
    /// The text it covers (the token itself for special tokens).
    pub text: String,
    /// A special token (`[CLS]`, `[SEP]`).
    pub special: bool,
    /// Start byte offset in the input (`null` for special tokens).
    pub start: Option<usize>,
    /// End byte offset (`null` for special tokens).
    pub stop: Option<usize>,
}

/// `POST /decode`'s `ids`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum InputIds {
    /// One sequence.
    Single(Vec<u32>),
    /// A batch.
    Batch(Vec<Vec<u32>>),
}

/// `POST /decode`.
#[derive(Debug, Deserialize)]
pub struct DecodeRequest {
    /// The ids.
    pub ids: InputIds,
    /// Leave special tokens out (default true).
    #[serde(default = "yes")]
    pub skip_special_tokens: bool,
}

/// The engine-facing routes' body: `{"inputs": str | [str]}` (what Elasticsearch's
/// `hugging_face` service sends; OpenSearch connectors are written to send the same).
#[derive(Debug, Deserialize)]
pub struct TokenWeightsRequest {
    /// The texts.
    pub inputs: TokenizeInput,
}

/// The engine-facing routes' query string: `?prompt_name=query|document`.
#[derive(Debug, Default, Deserialize)]
pub struct PromptQuery {
    /// As `/embed_sparse`'s `prompt_name`.
    #[serde(default)]
    pub prompt_name: Option<String>,
}

/// A search query: a text (encoded as a query) or a sparse vector.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum QueryInput {
    /// A text.
    Text(String),
    /// A vector.
    Vector(SparseInput),
}

/// A sparse vector given in a request: ascending indices, one value each.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseInput {
    /// Term ids, strictly ascending.
    pub indices: Vec<u32>,
    /// Weights.
    pub values: Vec<f32>,
}

/// Approximate search: α (fraction of the block bound kept) and β (fraction of the query
/// mass kept), as `splade search --approx-alpha/--approx-beta`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approx {
    /// α in (0, 1] (default 1).
    #[serde(default)]
    pub alpha: Option<f32>,
    /// β in (0, 1] (default 1).
    #[serde(default)]
    pub beta: Option<f32>,
}

/// `POST /search`: `query` or `queries`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// One query.
    #[serde(default)]
    pub query: Option<QueryInput>,
    /// A batch of queries.
    #[serde(default)]
    pub queries: Option<Vec<QueryInput>>,
    /// Hits per query (default 10).
    #[serde(default = "ten")]
    pub k: usize,
    /// Approximate search (exact when absent).
    #[serde(default)]
    pub approx: Option<Approx>,
    /// Add the `n` largest term contributions to each hit.
    #[serde(default)]
    pub explain: Option<usize>,
    /// Encode text queries with this prompt instead of the query route.
    #[serde(default)]
    pub prompt_name: Option<String>,
}

fn ten() -> usize {
    10
}

/// One hit.
#[derive(Debug, Serialize)]
pub struct SearchHit {
    /// Document id.
    pub id: String,
    /// Dot product with the query.
    pub score: f32,
    /// The largest term contributions (with `explain`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<Vec<TermExplanation>>,
}

/// One term's share of a score.
#[derive(Debug, Serialize)]
pub struct TermExplanation {
    /// The vocabulary token.
    pub token: String,
    /// The term id.
    pub term: u32,
    /// Query weight.
    pub query_weight: f32,
    /// Document weight.
    pub doc_weight: f32,
    /// Their product.
    pub contribution: f32,
}

/// The hits of one query.
#[derive(Debug, Serialize)]
pub struct SearchResult {
    /// Best first.
    pub hits: Vec<SearchHit>,
}

/// The answer to a batch search.
#[derive(Debug, Serialize)]
pub struct BatchSearchResponse {
    /// One result per query, in order.
    pub results: Vec<SearchResult>,
}

/// A document of `POST /documents`: a text (encoded as a document) or a vector.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentInput {
    /// The document id (an existing one is replaced).
    pub id: String,
    /// The text.
    #[serde(default)]
    pub text: Option<String>,
    /// Term ids (with `values`, instead of `text`).
    #[serde(default)]
    pub indices: Option<Vec<u32>>,
    /// Weights.
    #[serde(default)]
    pub values: Option<Vec<f32>>,
}

/// `DELETE /documents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    /// Ids to delete (unknown ids are ignored and not counted).
    pub ids: Vec<String>,
}

/// The answer to an update, sent once its commit is durable.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct UpdateResponse {
    /// Documents added or replaced by this request.
    pub upserted: usize,
    /// Documents this request deleted.
    pub deleted: usize,
    /// The index generation that holds the change.
    pub generation: u64,
    /// Live documents in that generation.
    pub documents: usize,
}
