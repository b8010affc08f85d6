//! A blocking Milvus client over the SDK's async `ClientV2`: the collection layout
//! splade-rs writes, upserts, flush and load, counting, and sparse inner-product search.

use std::collections::BTreeMap;
use std::time::Duration;

use milvus::v2::prelude::*;
use milvus::v2::ConsistencyLevel;
use splade_sparse::SparseView;

use super::{MilvusTarget, ID_FIELD, MAX_ID_BYTES, MAX_TEXT_BYTES, TEXT_FIELD, VECTOR_FIELD};
use crate::document::ExportDocument;
use crate::error::{EngineError, Result};
use crate::retry::RetryPolicy;
use crate::EngineHit;

/// Most hits asked for per query. Milvus allows 16,384, but through this SDK a search
/// answer of more than about 1,100 hits (all queries of a request together) never arrives
/// from milvus-lite 3.2 (seen here: one query with k = 2,000, or 16 queries with k = 120,
/// hang while pymilvus gets the same answers), so k stays at most 1,000 and queries are
/// sent in requests of at most [`MAX_HITS_PER_REQUEST`] hits.
pub const MAX_K: usize = 1_000;

/// Most hits (queries x k) one search request asks for; see [`MAX_K`].
pub const MAX_HITS_PER_REQUEST: usize = 1_000;

/// A connection to one collection of a Milvus server.
pub struct MilvusCollection {
    runtime: tokio::runtime::Runtime,
    client: ClientV2,
    target: MilvusTarget,
    /// How batches are retried.
    pub retry: RetryPolicy,
}

/// The layout of an existing collection, as far as an export cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectionLayout {
    /// Whether it has the text field.
    pub has_text: bool,
}

impl MilvusCollection {
    /// Connects to the server of `target` (10 s to connect, 120 s per request).
    pub fn connect(target: &MilvusTarget) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| EngineError::Input(format!("cannot start the Milvus client: {e}")))?;
        let mut config = ConnectConfig::new()
            .uri(target.uri.clone())
            .connect_timeout(Duration::from_secs(10))
            .rpc_timeout(Duration::from_secs(120));
        if let Some(token) = &target.token {
            config = config.token(token.clone());
        }
        if let Some(db) = &target.database {
            config = config.database(db.clone());
        }
        let client = runtime
            .block_on(ClientV2::new(&config))
            .map_err(|e| milvus_error(target, "connecting", e))?;
        Ok(Self {
            runtime,
            client,
            target: target.clone(),
            retry: RetryPolicy::default(),
        })
    }

    /// The collection's target.
    pub fn target(&self) -> &MilvusTarget {
        &self.target
    }

    fn err(&self, action: impl Into<String>, e: impl std::fmt::Display) -> EngineError {
        milvus_error(&self.target, action, e)
    }

    /// Whether the collection exists.
    pub fn exists(&self) -> Result<bool> {
        let request = HasCollectionRequest::builder()
            .collection_name(&self.target.collection)
            .build()
            .map_err(|e| self.err("checking the collection", e))?;
        let response = self
            .runtime
            .block_on(self.client.has_collection(request))
            .map_err(|e| self.err("checking the collection", e))?;
        Ok(response.exists())
    }

    /// Creates the collection if absent (primary key `id` VarChar, `vector`
    /// SPARSE_FLOAT_VECTOR, `text` VarChar when `store_text`), and the vector field's
    /// SPARSE_INVERTED_INDEX with metric IP if it has none. An existing collection must have
    /// that layout (the text field only when `store_text`): otherwise an error says what
    /// differs. Returns whether the collection was created.
    pub fn ensure(&self, store_text: bool) -> Result<bool> {
        let created = if self.exists()? {
            let layout = self.layout()?;
            if layout.has_text != store_text {
                return Err(EngineError::Collection(format!(
                    "Milvus collection {} {} {TEXT_FIELD:?} field; export {} --store-text, or to another collection",
                    self.target.collection,
                    if layout.has_text { "has a" } else { "has no" },
                    if layout.has_text { "with" } else { "without" },
                )));
            }
            false
        } else {
            self.create(store_text)?;
            true
        };
        self.ensure_index()?;
        Ok(created)
    }

    fn create(&self, store_text: bool) -> Result<()> {
        let action = format!("creating collection {}", self.target.collection);
        let mut schema = CollectionSchema::new()
            .description("SPLADE sparse vectors exported by splade-rs")
            .add_field(
                FieldSchema::new()
                    .name(ID_FIELD)
                    .data_type(DataType::VarChar)
                    .max_length(MAX_ID_BYTES as u32)
                    .primary_key(true),
            )
            .add_field(
                FieldSchema::new()
                    .name(VECTOR_FIELD)
                    .data_type(DataType::SparseFloatVector),
            );
        if store_text {
            schema = schema.add_field(
                FieldSchema::new()
                    .name(TEXT_FIELD)
                    .data_type(DataType::VarChar)
                    .max_length(MAX_TEXT_BYTES as u32),
            );
        }
        let request = CreateCollectionRequest::builder()
            .collection_name(&self.target.collection)
            .schema(schema)
            .consistency_level(ConsistencyLevel::Strong)
            .build()
            .map_err(|e| self.err(&action, e))?;
        self.runtime
            .block_on(self.client.create_collection(request))
            .map_err(|e| self.err(&action, e))
    }

    /// Checks the layout of the existing collection.
    pub fn layout(&self) -> Result<CollectionLayout> {
        let action = format!("describing collection {}", self.target.collection);
        let request = DescribeCollectionRequest::builder()
            .collection_name(&self.target.collection)
            .build()
            .map_err(|e| self.err(&action, e))?;
        let response = self
            .runtime
            .block_on(self.client.describe_collection(request))
            .map_err(|e| self.err(&action, e))?;
        let fields = response.description().get_schema().get_fields();
        let find = |name: &str| fields.iter().find(|f| f.get_name() == name);
        let wrong = |what: String| {
            EngineError::Collection(format!(
                "Milvus collection {} was not written by splade export: {what} (expected a VarChar primary key {ID_FIELD:?} and a SparseFloatVector field {VECTOR_FIELD:?})",
                self.target.collection
            ))
        };
        match find(ID_FIELD) {
            Some(f) if f.is_primary_key() && f.get_data_type() == DataType::VarChar => {}
            Some(f) => {
                return Err(wrong(format!(
                    "field {ID_FIELD:?} is {:?}{}",
                    f.get_data_type(),
                    if f.is_primary_key() {
                        ""
                    } else {
                        ", not the primary key"
                    }
                )))
            }
            None => return Err(wrong(format!("no field {ID_FIELD:?}"))),
        }
        match find(VECTOR_FIELD) {
            Some(f) if f.get_data_type() == DataType::SparseFloatVector => {}
            Some(f) => {
                return Err(wrong(format!(
                    "field {VECTOR_FIELD:?} is {:?}",
                    f.get_data_type()
                )))
            }
            None => return Err(wrong(format!("no field {VECTOR_FIELD:?}"))),
        }
        Ok(CollectionLayout {
            has_text: find(TEXT_FIELD).is_some(),
        })
    }

    /// Creates SPARSE_INVERTED_INDEX with metric IP on the vector field unless it has an
    /// index; an existing index with another metric is an error (its scores would not be
    /// dot products). The request does not wait for the build (`sync(false)`): milvus-lite
    /// does not implement `AllocTimestamp`, on which the waiting relies; loading waits.
    fn ensure_index(&self) -> Result<()> {
        let action = format!("indexing field {VECTOR_FIELD:?}");
        let describe = DescribeIndexRequest::builder()
            .collection_name(&self.target.collection)
            .field_name(VECTOR_FIELD)
            .build()
            .map_err(|e| self.err(&action, e))?;
        if let Ok(found) = self.runtime.block_on(self.client.describe_index(describe)) {
            if let Some(index) = found.indexes().first() {
                return match index.get_metric_type() {
                    MetricType::Ip => Ok(()),
                    other => Err(EngineError::Collection(format!(
                        "Milvus collection {}: the index on {VECTOR_FIELD:?} uses metric {other:?}; SPLADE scores are inner products (IP)",
                        self.target.collection
                    ))),
                };
            }
        }
        let request = CreateIndexRequest::builder()
            .collection_name(&self.target.collection)
            .index_param(
                IndexParam::new()
                    .field_name(VECTOR_FIELD)
                    .index_type(IndexType::SparseInvertedIndex)
                    .metric_type(MetricType::Ip),
            )
            .sync(false)
            .build()
            .map_err(|e| self.err(&action, e))?;
        self.runtime
            .block_on(self.client.create_index(request))
            .map_err(|e| self.err(&action, e))
    }

    /// Upserts `docs` (one request; retried by [`Self::retry`]): a document whose id is
    /// already stored replaces it, so exporting again changes nothing. `first` numbers the
    /// batch's first document in error messages. Weights equal to 0 are left out (they add
    /// nothing to an inner product).
    pub fn upsert(&self, docs: &[ExportDocument], first: usize, with_text: bool) -> Result<()> {
        let action = format!("upserting documents {}..{}", first + 1, first + docs.len());
        let mut ids = Vec::with_capacity(docs.len());
        let mut vectors = Vec::with_capacity(docs.len());
        let mut texts = Vec::with_capacity(if with_text { docs.len() } else { 0 });
        for d in docs {
            check_id(&d.id)?;
            ids.push(d.id.clone());
            vectors.push(to_milvus(d.vector.view()));
            if with_text {
                let text = d.text.clone().unwrap_or_default();
                if text.len() > MAX_TEXT_BYTES {
                    return Err(EngineError::Input(format!(
                        "document {:?}: its text has {} bytes; a Milvus VarChar field holds at most {MAX_TEXT_BYTES}",
                        d.id,
                        text.len()
                    )));
                }
                texts.push(text);
            }
        }
        let mut columns = vec![
            FieldData::varchar(ID_FIELD, ids),
            FieldData::sparse_float_vector(VECTOR_FIELD, vectors),
        ];
        if with_text {
            columns.push(FieldData::varchar(TEXT_FIELD, texts));
        }
        self.retry
            .run(|| {
                let insert = InsertRequest::builder()
                    .collection_name(&self.target.collection)
                    .columns(columns.clone())
                    .build()
                    .map_err(text)?;
                let request = UpsertRequest::builder()
                    .insert(insert)
                    .build()
                    .map_err(text)?;
                self.runtime
                    .block_on(self.client.upsert(request))
                    .map(|_| ())
                    .map_err(text)
            })
            .map_err(|e| self.err(&action, e))
    }

    /// Flushes the collection (its data durable on the server) and loads it for search,
    /// waiting until it is loaded.
    pub fn flush_and_load(&self) -> Result<()> {
        self.retry
            .run(|| {
                let request = FlushRequest::builder()
                    .collection_names([self.target.collection.as_str()])
                    .build()
                    .map_err(text)?;
                self.runtime
                    .block_on(self.client.flush(request))
                    .map(|_| ())
                    .map_err(text)
            })
            .map_err(|e| self.err("flushing", e))?;
        self.retry
            .run(|| {
                let request = LoadCollectionRequest::builder()
                    .collection_name(&self.target.collection)
                    .build()
                    .map_err(text)?;
                self.runtime
                    .block_on(self.client.load_collection(request))
                    .map_err(text)
            })
            .map_err(|e| self.err("loading", e))
    }

    /// Number of documents in the collection (`count(*)` with strong consistency: every
    /// acknowledged upsert is counted, a replaced document once).
    pub fn count(&self) -> Result<u64> {
        let action = "counting documents";
        let request = QueryRequest::builder()
            .collection_name(&self.target.collection)
            .output_fields(["count(*)"])
            .consistency_level(ConsistencyLevel::Strong)
            .build()
            .map_err(|e| self.err(action, e))?;
        let response = self
            .runtime
            .block_on(self.client.query(request))
            .map_err(|e| self.err(action, e))?;
        let row = response
            .results()
            .rows()
            .map_err(|e| self.err(action, e))?
            .next()
            .ok_or_else(|| self.err(action, "no row returned"))?;
        let n = row.get_i64("count(*)").map_err(|e| self.err(action, e))?;
        u64::try_from(n).map_err(|_| self.err(action, format!("negative count {n}")))
    }

    /// Every id in the collection, in no particular order (a query over all documents in
    /// pages of 10,000, ordered by nothing; for checks, not for large collections).
    pub fn all_ids(&self) -> Result<Vec<String>> {
        let action = "listing ids";
        let total = self.count()? as i64;
        let request = QueryRequest::builder()
            .collection_name(&self.target.collection)
            .filter(format!("{ID_FIELD} != \"\""))
            .output_fields([ID_FIELD])
            .limit(total.max(1))
            .consistency_level(ConsistencyLevel::Strong)
            .build()
            .map_err(|e| self.err(action, e))?;
        let response = self
            .runtime
            .block_on(self.client.query(request))
            .map_err(|e| self.err(action, e))?;
        let mut ids = Vec::with_capacity(total as usize);
        for row in response.results().rows().map_err(|e| self.err(action, e))? {
            let entity = row.to_entity_row().map_err(|e| self.err(action, e))?;
            match entity.get(ID_FIELD) {
                Some(serde_json::Value::String(s)) => ids.push(s.clone()),
                other => return Err(self.err(action, format!("unexpected id {other:?}"))),
            }
        }
        Ok(ids)
    }

    /// The `k` best documents of each query by inner product, best first (Milvus's order;
    /// equal scores in the order Milvus returns them). `k` is at most [`MAX_K`].
    pub fn search(&self, queries: &[SparseView<'_>], k: usize) -> Result<Vec<Vec<EngineHit>>> {
        if k == 0 || k > MAX_K {
            return Err(EngineError::Input(format!(
                "Milvus returns 1 to {MAX_K} hits per query; {k} asked"
            )));
        }
        let mut out = Vec::with_capacity(queries.len());
        let per_request = (MAX_HITS_PER_REQUEST / k).max(1);
        for (c, chunk) in queries.chunks(per_request).enumerate() {
            let first = c * per_request;
            let action = format!("searching queries {}..{}", first + 1, first + chunk.len());
            let vectors: Vec<SparseVector> = chunk.iter().map(|q| to_milvus(*q)).collect();
            let response = self
                .retry
                .run(|| {
                    let request = SearchRequest::builder()
                        .collection_name(&self.target.collection)
                        .vector_field(VECTOR_FIELD)
                        .vectors(SearchVectors::SparseFloat(vectors.clone()))
                        .metric_type(MetricType::Ip)
                        .limit(k as i64)
                        .consistency_level(ConsistencyLevel::Strong)
                        .build()
                        .map_err(text)?;
                    self.runtime
                        .block_on(self.client.search(request))
                        .map_err(text)
                })
                .map_err(|e| self.err(&action, e))?;
            let results = response.results();
            if results.len() != chunk.len() {
                return Err(self.err(
                    &action,
                    format!("{} result lists for {} queries", results.len(), chunk.len()),
                ));
            }
            for result in results.iter() {
                let ids = match result.get_ids() {
                    Ids::VarChar(ids) => ids.clone(),
                    Ids::Int64(ids) => ids.iter().map(|i| i.to_string()).collect(),
                    _ => return Err(self.err(&action, "unknown id type")),
                };
                let hits = ids
                    .into_iter()
                    .zip(result.get_scores())
                    .map(|(id, &score)| EngineHit { id, score })
                    .collect();
                out.push(hits);
            }
        }
        Ok(out)
    }

    /// Drops the collection if it exists (tests, and `--recreate` style workflows).
    pub fn drop_collection(&self) -> Result<()> {
        let action = format!("dropping collection {}", self.target.collection);
        let request = DropCollectionRequest::builder()
            .collection_name(&self.target.collection)
            .build()
            .map_err(|e| self.err(&action, e))?;
        self.runtime
            .block_on(self.client.drop_collection(request))
            .map_err(|e| self.err(&action, e))
    }
}

/// An SDK error as text (what the retries report).
fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A vector as Milvus's sparse map, zero weights left out.
fn to_milvus(v: SparseView<'_>) -> SparseVector {
    v.indices()
        .iter()
        .zip(v.values())
        .filter(|(_, &w)| w != 0.0)
        .map(|(&i, &w)| (i, w))
        .collect::<BTreeMap<u32, f32>>()
}

/// An id Milvus's VarChar primary key can hold.
fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(EngineError::Input(format!(
            "document id {:?}: a Milvus VarChar primary key holds 1 to {MAX_ID_BYTES} bytes, this one has {}",
            id.chars().take(80).collect::<String>(),
            id.len()
        )));
    }
    Ok(())
}

fn milvus_error(
    target: &MilvusTarget,
    action: impl Into<String>,
    e: impl std::fmt::Display,
) -> EngineError {
    EngineError::Milvus {
        uri: target.uri.clone(),
        action: action.into(),
        message: e.to_string(),
    }
}
