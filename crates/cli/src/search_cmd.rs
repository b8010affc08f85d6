//! `splade search`: search an index with query texts (encoded with a model) or query
//! vectors, and print a TREC run or, for one query text, a table with explanations.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Args, ValueEnum};
use splade_encoder::{EncodeOptions, SparseEncoder, SparseVector};
use splade_engines::lucene::{msearch_lines, query_body, LuceneEngine};
use splade_engines::milvus::{MilvusCollection, MilvusTarget};
use splade_eval::trec::run_line;
use splade_index::readers::open_jsonl;
use splade_index::{Hit, Index, Method, OpenOptions, Residency, SearchOptions, Traversal};

use crate::input;

/// `splade search ...`
#[derive(Args)]
#[command(group(ArgGroup::new("input").required(true).args(["query", "queries", "query_vectors"])))]
#[command(group(ArgGroup::new("target").required(true).args(["index", "engine", "emit_query"])))]
pub struct SearchArgs {
    /// The index directory.
    #[arg(long)]
    index: Option<PathBuf>,
    /// Search a Milvus collection instead of an index: milvus://HOST:PORT/COLLECTION
    /// (what `splade export milvus` wrote). Queries are encoded here; Milvus ranks by inner
    /// product; the output is the same TREC run or table.
    #[arg(long, value_name = "ADDRESS", conflicts_with_all = ["exact", "brute_force", "approx_alpha", "approx_beta", "explain", "no_verify", "in_memory", "max_query_terms"])]
    engine: Option<String>,
    /// Print the search request instead of searching: the body for one query text, or
    /// `_msearch` lines (header `{"index": --index-name}`, body) for several. Token keys
    /// come from --model's vocabulary; `opensearch-seismic` keys by token id.
    #[arg(long, value_enum, value_name = "ENGINE", conflicts_with_all = ["exact", "brute_force", "approx_alpha", "approx_beta", "explain", "no_verify", "in_memory", "max_query_terms"])]
    emit_query: Option<EmitQuery>,
    /// With --emit-query: the engine's vector field.
    #[arg(long, default_value = splade_engines::lucene::DEFAULT_FIELD, requires = "emit_query")]
    field: String,
    /// With --emit-query: the engine's index, named in `_msearch` headers.
    #[arg(long, default_value = "splade", requires = "emit_query")]
    index_name: String,
    /// One query text (needs --model): prints a table of rank, score and id.
    query: Option<String>,
    /// Model to encode query texts with (its `query` prompt applies).
    #[arg(long)]
    model: Option<String>,
    /// Where --model runs: cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Queries to encode with --model: BEIR queries.jsonl (`_id`, `text`) or, for any other
    /// extension, one query per line (qid = 1-based line number). Prints a TREC run.
    #[arg(long, requires = "model")]
    queries: Option<PathBuf>,
    /// Query vectors, JSONL {"id", "indices", "values"}. Prints a TREC run.
    #[arg(long, conflicts_with = "model")]
    query_vectors: Option<PathBuf>,
    /// Hits per query (at least 1).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    k: u32,
    /// Check every result list against a brute-force scan of all documents and fail on
    /// any difference (the pruned search is exact; this proves it on your data).
    #[arg(long)]
    exact: bool,
    /// Score every document instead of using block-max pruning.
    #[arg(long, conflicts_with = "exact")]
    brute_force: bool,
    /// Approximate search: score a block only while ALPHA x its score bound reaches the
    /// current k-th score (0 < ALPHA <= 1; lower is faster, recall may drop). Returned
    /// scores stay exact; documents may be missed.
    #[arg(long, value_name = "ALPHA", conflicts_with_all = ["exact", "brute_force"])]
    approx_alpha: Option<f32>,
    /// Approximate search: compute block bounds from the heaviest BETA fraction of each
    /// query's terms only (0 < BETA <= 1; lower is faster, recall may drop).
    #[arg(long, value_name = "BETA", conflicts_with_all = ["exact", "brute_force"])]
    approx_beta: Option<f32>,
    /// Keep only the N heaviest terms of each query.
    #[arg(long, value_name = "N")]
    max_query_terms: Option<usize>,
    /// How to go through each segment (same results, different speed): `auto` goes term at
    /// a time when block bounds would prune little (long queries on long documents, e.g.
    /// SciFact; stopword-like terms and flat weights), block-max pruning otherwise.
    /// `term-at-a-time` is always exact, even with --approx-*.
    #[arg(long, value_enum, default_value_t = TraversalArg::Auto)]
    traversal: TraversalArg,
    /// Run tag, the last column of TREC lines (no whitespace).
    #[arg(long, default_value = "splade", value_parser = parse_run_tag)]
    run_tag: String,
    /// With a query text: show each hit's N largest term contributions (tokens from --model).
    #[arg(long, value_name = "N")]
    explain: Option<usize>,
    /// Skip checksum verification when opening the index (structure is still checked).
    #[arg(long)]
    no_verify: bool,
    /// Read the index into memory (on transparent huge pages where the system allows)
    /// instead of memory-mapping it: faster searches on a large index, for the time to read
    /// it first (worth it for a --queries file).
    #[arg(long)]
    in_memory: bool,
}

/// Runs `splade search`.
pub fn run_search(args: SearchArgs) -> Result<()> {
    if let Some(emit) = args.emit_query {
        return emit_query(emit, &args);
    }
    if let Some(engine) = &args.engine {
        return engine_search(engine, &args);
    }
    let index_dir = args
        .index
        .as_ref()
        .context("give --index DIR or --engine ADDRESS")?;
    let residency = if args.in_memory {
        Residency::Memory
    } else {
        Residency::Mapped
    };
    let index = OpenOptions::new()
        .verify(!args.no_verify)
        .residency(residency)
        .open(index_dir)?;
    let encoder = match &args.model {
        Some(m) => {
            let e = crate::load_encoder(m, &args.device)?;
            if e.dim() < index.dim() {
                bail!(
                    "the model's dimension {} is smaller than the index's {} ({}): the index was \
                     not built for this model's vocabulary",
                    e.dim(),
                    index.dim(),
                    index_dir.display()
                );
            }
            if e.dim() > index.dim() {
                // An index built from vectors without --dim records largest index + 1:
                // query terms beyond it occur in no document and score nothing.
                eprintln!(
                    "note: the index's dimension {} is below the model's {}; query terms beyond it \
                     match no document",
                    index.dim(),
                    e.dim()
                );
            }
            Some(e)
        }
        None => None,
    };
    let (qids, queries) = query_inputs(&args, encoder.as_ref())?;
    let options = SearchOptions {
        k: args.k as usize,
        method: if args.brute_force {
            Method::BruteForce
        } else if args.approx_alpha.is_some() || args.approx_beta.is_some() {
            Method::approximate(
                args.approx_alpha.unwrap_or(1.0),
                args.approx_beta.unwrap_or(1.0),
            )?
        } else {
            Method::Exact
        },
        max_query_terms: args.max_query_terms,
        traversal: args.traversal.into(),
    };
    let views: Vec<_> = queries.iter().map(|q| q.view()).collect();
    let results = index.search_batch(&views, &options, None)?;
    if args.exact {
        let brute = index.search_batch(
            &views,
            &SearchOptions {
                method: Method::BruteForce,
                ..options
            },
            None,
        )?;
        if let Some(q) = (0..results.len()).find(|&q| results[q] != brute[q]) {
            bail!(
                "query {}: block-max search differs from brute force (please report this)",
                qids[q]
            );
        }
        eprintln!(
            "verified: all {} result lists equal brute force",
            results.len()
        );
    }
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if args.query.is_some() {
        write_table(
            &mut out,
            &index,
            &queries[0],
            &results[0],
            args.explain,
            encoder.as_ref(),
        )?;
    } else {
        for (qid, hits) in qids.iter().zip(&results) {
            for (rank, hit) in hits.iter().enumerate() {
                let id = index.id(hit.doc).context("document id out of range")?;
                writeln!(
                    out,
                    "{}",
                    run_line(qid, id, rank + 1, hit.score, &args.run_tag)
                )?;
            }
        }
    }
    out.flush().context("writing to standard output")?;
    Ok(())
}

/// The query ids and vectors: read from --query-vectors, or the query text(s) encoded with
/// the model's query route.
fn query_inputs(
    args: &SearchArgs,
    encoder: Option<&SparseEncoder>,
) -> Result<(Vec<String>, Vec<SparseVector>)> {
    if let Some(path) = &args.query_vectors {
        return read_query_vectors(path);
    }
    let encoder = encoder.context("query texts need --model")?;
    let texts: Vec<(String, String)> = match (&args.query, &args.queries) {
        (Some(q), None) => vec![("1".to_string(), q.clone())],
        (None, Some(path)) => input::read_texts(path, false)?,
        _ => bail!("give a query text, --queries FILE or --query-vectors FILE"),
    };
    let just_texts: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
    let batch = encoder.encode_query(&just_texts, &EncodeOptions::default())?;
    let vectors = batch.to_vectors();
    Ok((texts.into_iter().map(|(id, _)| id).collect(), vectors))
}

/// `splade search --engine milvus://...`: the queries ranked by Milvus, printed as the
/// index search prints them.
fn engine_search(address: &str, args: &SearchArgs) -> Result<()> {
    let target = MilvusTarget::parse(address)?;
    let encoder = match &args.model {
        Some(m) => Some(crate::load_encoder(m, &args.device)?),
        None => None,
    };
    let (qids, queries) = query_inputs(args, encoder.as_ref())?;
    let collection = MilvusCollection::connect(&target)?;
    let views: Vec<_> = queries.iter().map(|q| q.view()).collect();
    let results = collection.search(&views, args.k as usize)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if args.query.is_some() {
        writeln!(out, "{:>4}  {:>10}  id", "rank", "score")?;
        for (rank, hit) in results[0].iter().enumerate() {
            writeln!(out, "{:>4}  {:>10.4}  {}", rank + 1, hit.score, hit.id)?;
        }
        if results[0].is_empty() {
            writeln!(out, "(no document scores above 0 for this query)")?;
        }
    } else {
        for (qid, hits) in qids.iter().zip(&results) {
            for (rank, hit) in hits.iter().enumerate() {
                writeln!(
                    out,
                    "{}",
                    run_line(qid, &hit.id, rank + 1, hit.score, &args.run_tag)
                )?;
            }
        }
    }
    out.flush().context("writing to standard output")?;
    Ok(())
}

/// `--emit-query` engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum EmitQuery {
    /// OpenSearch `neural_sparse` with `query_tokens` (for `rank_features` fields).
    Opensearch,
    /// OpenSearch 3.3+ `neural_sparse` on a `sparse_vector` (seismic) field: token ids.
    OpensearchSeismic,
    /// Elasticsearch `sparse_vector` query with `query_vector`.
    Elasticsearch,
}

/// `splade search --emit-query ENGINE`: the engine's search bodies on standard output.
fn emit_query(emit: EmitQuery, args: &SearchArgs) -> Result<()> {
    let engine = match emit {
        EmitQuery::Opensearch => LuceneEngine::OpenSearchRankFeatures,
        EmitQuery::OpensearchSeismic => LuceneEngine::OpenSearchSeismic,
        EmitQuery::Elasticsearch => LuceneEngine::Elasticsearch,
    };
    let encoder = match &args.model {
        Some(m) => Some(crate::load_encoder(m, &args.device)?),
        None => None,
    };
    let tokens = if engine.needs_vocabulary() {
        let model = args.model.as_deref().context(
            "--emit-query opensearch|elasticsearch names tokens from a vocabulary: give --model (and query texts)",
        )?;
        Some(crate::export_cmd::token_map(model, &args.device)?)
    } else {
        None
    };
    let (_, queries) = query_inputs(args, encoder.as_ref())?;
    let views: Vec<_> = queries.iter().map(|q| q.view()).collect();
    let k = args.k as usize;
    let text = if args.query.is_some() {
        let body = query_body(engine, tokens.as_ref(), views[0], &args.field, k)?;
        format!("{}\n", serde_json::to_string_pretty(&body)?)
    } else {
        msearch_lines(
            engine,
            tokens.as_ref(),
            &views,
            &args.field,
            &args.index_name,
            k,
        )?
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush().context("writing to standard output")?;
    Ok(())
}

/// Query vectors of a JSONL file; a repeated id is an error naming both lines (as for
/// `--queries`).
fn read_query_vectors(path: &Path) -> Result<(Vec<String>, Vec<SparseVector>)> {
    let mut reader = open_jsonl(path, None)?;
    let mut seen = std::collections::HashMap::new();
    let (mut ids, mut vectors) = (Vec::new(), Vec::new());
    while let Some(doc) = reader.next() {
        let doc = doc?;
        if let Some(first) = seen.insert(doc.id.clone(), reader.line()) {
            bail!(
                "{}: line {}: duplicate query id {:?} (first on line {first})",
                path.display(),
                reader.line(),
                doc.id
            );
        }
        ids.push(doc.id);
        vectors.push(doc.vector);
    }
    Ok((ids, vectors))
}

/// `--run-tag`: non-empty, no whitespace or control characters (one TREC field).
fn parse_run_tag(tag: &str) -> std::result::Result<String, String> {
    if tag.is_empty() || tag.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a run tag is one non-empty word: no spaces, tabs or newlines".into());
    }
    Ok(tag.to_string())
}

/// A readable table of one query's hits, optionally with each hit's largest contributions
/// (term ids mapped to tokens by the model's tokenizer).
fn write_table(
    out: &mut impl Write,
    index: &Index,
    query: &SparseVector,
    hits: &[Hit],
    explain: Option<usize>,
    encoder: Option<&SparseEncoder>,
) -> Result<()> {
    writeln!(out, "{:>4}  {:>10}  id", "rank", "score")?;
    for (rank, hit) in hits.iter().enumerate() {
        let id = index.id(hit.doc).context("document id out of range")?;
        writeln!(out, "{:>4}  {:>10.4}  {id}", rank + 1, hit.score)?;
        let Some(n) = explain else { continue };
        let Some(e) = index.explain(query.view(), hit.doc) else {
            continue;
        };
        for t in e.terms.iter().take(n) {
            let token = encoder
                .map(|enc| enc.dimension_name(t.term))
                .unwrap_or_else(|| format!("[{}]", t.term));
            writeln!(
                out,
                "                  {token:<16} {:.3} x {:.3} = {:.4}",
                t.query_weight, t.doc_weight, t.contribution
            )?;
        }
    }
    if hits.is_empty() {
        writeln!(out, "(no document scores above 0 for this query)")?;
    }
    Ok(())
}

/// `--traversal` values (see [`Traversal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TraversalArg {
    /// Per segment and query, whichever is expected to be faster.
    Auto,
    /// Block-max pruning only.
    BlockMax,
    /// Term at a time only.
    TermAtATime,
}

impl From<TraversalArg> for Traversal {
    fn from(t: TraversalArg) -> Self {
        match t {
            TraversalArg::Auto => Traversal::Auto,
            TraversalArg::BlockMax => Traversal::BlockMax,
            TraversalArg::TermAtATime => Traversal::TermAtATime,
        }
    }
}
