//! `splade export ENGINE ...`: documents into a distributed engine (Milvus over gRPC,
//! Qdrant over REST or as a points file, OpenSearch and Elasticsearch as `_bulk` requests;
//! see `splade_engines`). This module only names the flags, reads the inputs with the
//! shared readers and prints; the work is in `splade-engines`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Args, Subcommand};
use splade_encoder::{default_model::DEFAULT_MODEL, EncodeOptions};
use splade_engines::lucene::{post_bulk, write_bulk_file, LuceneEngine, TokenMap};
use splade_engines::milvus::{export_milvus, MilvusExportOptions, MilvusTarget};
use splade_engines::qdrant::{
    export_qdrant, write_points_file, QdrantExportOptions, QdrantRest, QdrantVectors,
};
use splade_engines::{DocumentSource, ExportDocument};
use splade_eval::corpus::encode_documents;
use splade_sparse::SparseVector;

use crate::input;

/// Arguments of `splade export`.
#[derive(Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    engine: Engine,
}

#[derive(Subcommand)]
enum Engine {
    /// Into a Milvus collection (created if absent: VarChar primary key `id`,
    /// SPARSE_FLOAT_VECTOR `vector`, SPARSE_INVERTED_INDEX with metric IP), upserting by id
    /// in batches with retries, then flush and load. Running it again changes nothing.
    Milvus(MilvusArgs),
    /// Into a Qdrant collection over its REST API (--url), or into a points file in
    /// Qdrant's JSON shape (--out). Points are keyed by a UUID derived from the document id
    /// (kept in the payload as `doc_id`): running it again changes nothing.
    Qdrant(QdrantArgs),
    /// For OpenSearch: a `_bulk` file (--out, plus the index mapping with --mapping-out) or
    /// straight to a cluster (--url). `rank_features` with token keys from --model's
    /// vocabulary (searched by `neural_sparse`), or with --sparse-vector-field the 3.3+ `sparse_vector`
    /// field (method `seismic`) keyed by token id. Documents are keyed by id (`_id`).
    Opensearch(LuceneArgs),
    /// For Elasticsearch: a `sparse_vector` field with token keys from --model's vocabulary;
    /// a `_bulk` file (--out) or straight to a cluster (--url).
    Elasticsearch(LuceneArgs),
}

/// The documents to export: the inputs of `splade index build`, or an index.
#[derive(Args)]
#[command(group(ArgGroup::new("documents").required(true).args(["vectors", "seismic", "index", "corpus"])))]
pub(crate) struct DocumentArgs {
    /// Vectors, JSONL `{"id", "indices", "values"}` (what `splade encode --id-field` writes).
    #[arg(long)]
    vectors: Option<PathBuf>,
    /// Seismic/kANNolo binary vectors (with --ids).
    #[arg(long, requires = "ids")]
    seismic: Option<PathBuf>,
    /// The ids of --seismic, one per line.
    #[arg(long, requires = "seismic")]
    ids: Option<PathBuf>,
    /// The live documents of a splade index (deleted documents are not exported).
    #[arg(long)]
    index: Option<PathBuf>,
    /// A corpus to encode with --model: BEIR corpus.jsonl (`_id`, `title`, `text`; the text
    /// is the title and text joined) or one text per line (id = line number).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Model for --corpus, and whose vocabulary names the tokens for OpenSearch and
    /// Elasticsearch (folder, Hugging Face Hub id, or `splade-tiny`).
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub(crate) model: String,
    /// Where --model runs: cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
    /// Texts per forward pass (--corpus).
    #[arg(long, default_value_t = 32)]
    encode_batch_size: usize,
    /// Keep only the K largest weights of each document vector (--corpus).
    #[arg(long, value_name = "K")]
    max_active_dims: Option<usize>,
}

impl DocumentArgs {
    /// Reads (or encodes) every document, with its text when `with_text` (--corpus only).
    pub(crate) fn read(&self, with_text: bool) -> Result<Vec<ExportDocument>> {
        let source = match (&self.vectors, &self.seismic, &self.ids, &self.index) {
            (Some(v), ..) => Some(DocumentSource::Jsonl(v.clone())),
            (None, Some(v), Some(ids), _) => Some(DocumentSource::Seismic {
                vectors: v.clone(),
                ids: ids.clone(),
            }),
            (None, None, None, Some(dir)) => Some(DocumentSource::Index(dir.clone())),
            _ => None,
        };
        if let Some(source) = source {
            if with_text {
                bail!("--store-text needs the texts: give --corpus FILE (with --model)");
            }
            return Ok(source.read_all()?);
        }
        let corpus = self
            .corpus
            .as_ref()
            .context("give --vectors, --seismic with --ids, --index or --corpus")?;
        let texts = input::read_texts(corpus, true)?;
        let encoder = crate::load_encoder(&self.model, &self.device)?;
        let options = EncodeOptions {
            batch_size: self.encode_batch_size,
            max_active_dims: self.max_active_dims,
            ..EncodeOptions::default()
        };
        let mut docs = Vec::with_capacity(texts.len());
        let bar = progress_bar(texts.len(), "encoding");
        encode_documents(&encoder, &texts, &options, |id, row| -> Result<()> {
            let vector = SparseVector::new(row.indices().to_vec(), row.values().to_vec())?;
            docs.push(ExportDocument::new(id, vector));
            bar.inc(1);
            Ok(())
        })?;
        bar.finish_and_clear();
        if with_text {
            for (doc, (_, text)) in docs.iter_mut().zip(texts) {
                doc.text = Some(text);
            }
        }
        Ok(docs)
    }
}

#[derive(Args)]
struct MilvusArgs {
    /// The server's gRPC endpoint, http://HOST:PORT (https:// for TLS).
    #[arg(long)]
    uri: String,
    /// The collection (letters, digits, underscores).
    #[arg(long)]
    collection: String,
    /// API key or user:password.
    #[arg(long)]
    token: Option<String>,
    /// Database (default: the server's `default`).
    #[arg(long)]
    db: Option<String>,
    /// Documents per upsert request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Store each document's text in a `text` field (needs --corpus).
    #[arg(long)]
    store_text: bool,
    #[command(flatten)]
    documents: DocumentArgs,
}

#[derive(Args)]
#[command(group(ArgGroup::new("destination").required(true).args(["url", "out"])))]
struct QdrantArgs {
    /// The server's REST endpoint, http://HOST:6333 (or https://).
    #[arg(long, requires = "collection")]
    url: Option<String>,
    /// Write the points to this file instead (one Qdrant `PointStruct` per line).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The collection (created if absent, with one named sparse vector).
    #[arg(long)]
    collection: Option<String>,
    /// Qdrant API key (sent as the `api-key` header).
    #[arg(long)]
    api_key: Option<String>,
    /// Name of the sparse vector.
    #[arg(long, default_value = splade_engines::qdrant::DEFAULT_VECTOR_NAME)]
    vector_name: String,
    /// Create the collection with Qdrant's IDF modifier (query weights multiplied by an IDF
    /// from the collection: scores are then no longer our dot products).
    #[arg(long, requires = "url")]
    idf: bool,
    /// Points per upsert request.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Store each document's text in the payload (needs --corpus).
    #[arg(long)]
    store_text: bool,
    #[command(flatten)]
    documents: DocumentArgs,
}

#[derive(Args)]
#[command(group(ArgGroup::new("destination").required(true).args(["url", "out"])))]
struct LuceneArgs {
    /// Write the `_bulk` request body (ndjson) to this file.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// With --out: also write the body creating the index (mappings) to this file.
    #[arg(long, value_name = "FILE", requires = "out")]
    mapping_out: Option<PathBuf>,
    /// Send to the cluster at this URL (http(s)://HOST:9200): the index is created with the
    /// mapping if absent, then `_bulk` requests.
    #[arg(long)]
    url: Option<String>,
    /// User for --url (HTTP basic authentication; with --password).
    #[arg(long, requires = "password")]
    user: Option<String>,
    /// Password for --user.
    #[arg(long, requires = "user")]
    password: Option<String>,
    /// The engine's index name.
    #[arg(long)]
    index_name: String,
    /// The vector field's name.
    #[arg(long, default_value = splade_engines::lucene::DEFAULT_FIELD)]
    field: String,
    /// OpenSearch 3.3+ `sparse_vector` field with the `seismic` method (token ids as keys;
    /// no vocabulary needed) instead of `rank_features`.
    #[arg(long)]
    sparse_vector_field: bool,
    /// Documents per `_bulk` request (--url).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Store each document's text in a `text` field (needs --corpus).
    #[arg(long)]
    store_text: bool,
    #[command(flatten)]
    documents: DocumentArgs,
}

/// Runs `splade export`.
pub fn run(args: ExportArgs) -> Result<()> {
    match args.engine {
        Engine::Milvus(a) => milvus(a),
        Engine::Qdrant(a) => qdrant(a),
        Engine::Opensearch(a) => {
            let engine = if a.sparse_vector_field {
                LuceneEngine::OpenSearchSeismic
            } else {
                LuceneEngine::OpenSearchRankFeatures
            };
            lucene(a, engine)
        }
        Engine::Elasticsearch(a) => {
            if a.sparse_vector_field {
                bail!("--sparse-vector-field is OpenSearch's seismic field; Elasticsearch's sparse_vector is the default here");
            }
            lucene(a, LuceneEngine::Elasticsearch)
        }
    }
}

/// The token map of `model`'s vocabulary (token id -> key), for token-keyed engines.
pub(crate) fn token_map(model: &str, device: &str) -> Result<TokenMap> {
    let encoder = crate::load_encoder(model, device)?;
    let vocabulary: Vec<String> = (0..encoder.dim() as u32)
        .map(|id| {
            if encoder.is_csr() {
                encoder.dimension_name(id)
            } else {
                encoder.tokenizer().id_to_token(id).unwrap_or_default()
            }
        })
        .collect();
    let map = TokenMap::from_vocabulary(&vocabulary);
    if map.renamed() > 0 {
        eprintln!(
            "note: {} tokens of {model}'s vocabulary are empty or repeated; they are written as %id:N",
            map.renamed()
        );
    }
    Ok(map)
}

fn lucene(a: LuceneArgs, engine: LuceneEngine) -> Result<()> {
    let docs = a.documents.read(a.store_text)?;
    let tokens = if engine.needs_vocabulary() {
        Some(token_map(&a.documents.model, &a.documents.device)?)
    } else {
        None
    };
    if let Some(out) = &a.out {
        write_bulk_file(
            out,
            a.mapping_out.as_deref(),
            engine,
            tokens.as_ref(),
            &docs,
            &a.index_name,
            &a.field,
            a.store_text,
        )?;
        eprintln!(
            "wrote {} documents as _bulk lines to {}",
            docs.len(),
            out.display()
        );
        return Ok(());
    }
    let url = a.url.as_deref().context("give --out or --url")?;
    let auth = a.user.as_deref().zip(a.password.as_deref());
    let bar = progress_bar(docs.len(), "exporting");
    post_bulk(
        url,
        auth,
        engine,
        tokens.as_ref(),
        &docs,
        &a.index_name,
        &a.field,
        a.store_text,
        a.batch_size as usize,
        &mut |n| bar.set_position(n as u64),
    )?;
    bar.finish_and_clear();
    eprintln!("sent {} documents to {url}/{}", docs.len(), a.index_name);
    Ok(())
}

fn qdrant(a: QdrantArgs) -> Result<()> {
    let docs = a.documents.read(a.store_text)?;
    if let Some(out) = &a.out {
        write_points_file(out, &docs, &a.vector_name, a.store_text)?;
        eprintln!("wrote {} points to {}", docs.len(), out.display());
        return Ok(());
    }
    let url = a.url.as_deref().context("give --url or --out")?;
    let collection = a
        .collection
        .as_deref()
        .context("--url needs --collection")?;
    let client = QdrantRest::new(url, a.api_key.clone())?;
    let options = QdrantExportOptions {
        vectors: QdrantVectors {
            name: a.vector_name.clone(),
            idf: a.idf,
        },
        batch_size: a.batch_size as usize,
        store_text: a.store_text,
        ..QdrantExportOptions::default()
    };
    let bar = progress_bar(docs.len(), "exporting");
    let report = export_qdrant(&client, collection, &docs, &options, &mut |n| {
        bar.set_position(n as u64)
    })?;
    bar.finish_and_clear();
    eprintln!(
        "exported {} documents to Qdrant collection {collection} ({}; {} points there now) in {:.2} s",
        report.documents,
        if report.created { "created" } else { "existing" },
        report.count,
        report.seconds
    );
    Ok(())
}

fn milvus(a: MilvusArgs) -> Result<()> {
    let mut target = MilvusTarget::new(&a.uri, &a.collection)?;
    target.token = a.token;
    target.database = a.db;
    let docs = a.documents.read(a.store_text)?;
    let options = MilvusExportOptions {
        batch_size: a.batch_size as usize,
        store_text: a.store_text,
        ..MilvusExportOptions::default()
    };
    let bar = progress_bar(docs.len(), "exporting");
    let report = export_milvus(&target, &docs, &options, &mut |n| {
        bar.set_position(n as u64)
    })?;
    bar.finish_and_clear();
    eprintln!(
        "exported {} documents to Milvus collection {} ({}; {} documents there now) in {:.2} s ({:.0} documents/s upserting)",
        report.documents,
        target.collection,
        if report.created { "created" } else { "existing" },
        report.count,
        report.seconds,
        report.documents as f64 / report.upsert_seconds.max(1e-9)
    );
    Ok(())
}

/// A progress bar on standard error (hidden when it is not a terminal).
pub(crate) fn progress_bar(len: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    let template = format!(
        "{{spinner}} {what} [{{bar:40}}] {{pos}}/{{len}} documents ({{per_sec}}, eta {{eta}})"
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}
