//! `splade index` and `splade search`: build a splade-index directory from sparse vectors
//! (JSONL or Seismic binary) or from a corpus encoded with a model, add, replace and delete
//! documents without a rebuild (segments, merged by `index optimize`), and search it.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use splade_encoder::{EncodeOptions, SparseEncoder, SparseVector};
use splade_index::format::{
    FORMAT_VERSION, MANIFEST_FILE, MAX_DIM, MAX_INFERRED_DIM, SEGMENTS_VERSION,
};
use splade_index::readers::{open_jsonl, read_seismic, Document};
use splade_index::{
    Hit, Index, IndexBuilder, IndexWriter, MergePolicy, Method, Reorder, SearchOptions, Traversal,
};
use splade_sparse::SparseView;

use crate::input;

/// `splade index ...`
#[derive(Args)]
pub struct IndexArgs {
    #[command(subcommand)]
    command: IndexCommand,
}

#[derive(Subcommand)]
enum IndexCommand {
    /// Build an index directory from vectors, or from a corpus encoded with --model.
    Build(BuildArgs),
    /// Print an index's shape, segments and manifest after verifying its checksums and
    /// structure.
    Info(InfoArgs),
    /// Add documents to an index without rebuilding it (a new segment). A document whose id
    /// is already in the index replaces it (upsert).
    Add(AddArgs),
    /// Delete documents by id (recorded per segment; `index optimize` drops them for good).
    Delete(DeleteArgs),
    /// Merge all segments of an index into one, dropping deleted documents.
    Optimize(OptimizeArgs),
}

#[derive(Args)]
struct BuildArgs {
    /// The index directory to write: new, or an empty directory. A directory holding
    /// anything else is refused (nothing is touched), an existing index too unless
    /// --overwrite is given.
    #[arg(long)]
    out: PathBuf,
    /// Replace the index already in --out. The rebuild is atomic: searches during it, and a
    /// crash at any moment, see the old index or the new one (committed as its only
    /// segment); files in --out that the index did not write are kept.
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    source: SourceArgs,
    /// Vector dimension, at most 16,777,216 (2^24). Default: the model's, or the largest
    /// index read + 1 when that is at most 262,144 (2^18, the largest known vocabulary);
    /// above that --dim is required.
    #[arg(long)]
    dim: Option<usize>,
    /// Documents per block of the block-max index (1..=256). Smaller blocks give tighter
    /// bounds but a longer bound pass per query: 16 was faster on ~100k short documents
    /// (WordNet glosses), 32 on 1M longer ones (BENCHMARKS.md, "Block size"). Default:
    /// chosen from the documents, 16 when they average fewer than 64 terms, else 32.
    #[arg(long)]
    block_size: Option<usize>,
    /// Keep documents in input order in the blocks instead of clustering similar ones
    /// together (results are the same; pruning is usually weaker).
    #[arg(long)]
    no_reorder: bool,
}

/// Where documents come from (`index build`, `index add`).
#[derive(Args)]
#[command(group(ArgGroup::new("source").required(true).args(["vectors", "seismic", "corpus"])))]
struct SourceArgs {
    /// JSONL vectors: {"id": ..., "indices": [...], "values": [...]} per line (what
    /// `splade encode --id-field` writes).
    #[arg(long)]
    vectors: Option<PathBuf>,
    /// Seismic / kANNolo binary vectors (with --ids: one id per line).
    #[arg(long, requires = "ids")]
    seismic: Option<PathBuf>,
    /// The ids of --seismic vectors, one per line.
    #[arg(long)]
    ids: Option<PathBuf>,
    /// A corpus to encode with --model: BEIR corpus.jsonl (`_id`, `title`, `text`; the text
    /// is title + " " + text when the title is non-empty) or, for any other extension, plain
    /// text with one document per line (id = 1-based line number).
    #[arg(long, requires = "model")]
    corpus: Option<PathBuf>,
    /// Model for --corpus (folder, Hugging Face Hub id, or `splade-tiny`).
    #[arg(long)]
    model: Option<String>,
    /// Where --model runs: cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Texts per forward pass (--corpus).
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Keep only the K largest weights of each document vector (--corpus).
    #[arg(long, value_name = "K")]
    max_active_dims: Option<usize>,
}

#[derive(Args)]
struct InfoArgs {
    /// The index directory.
    #[arg(long)]
    index: PathBuf,
}

#[derive(Args)]
struct AddArgs {
    /// The index directory (built by `index build`, or already updated).
    #[arg(long)]
    index: PathBuf,
    #[command(flatten)]
    source: SourceArgs,
    /// Fail (committing nothing) if an id is already in the index instead of replacing
    /// that document.
    #[arg(long)]
    no_replace: bool,
    /// Documents per block of the new segment (default: the index's first segment's).
    #[arg(long)]
    block_size: Option<usize>,
    /// Keep the new documents in input order in the blocks (see `index build`).
    #[arg(long)]
    no_reorder: bool,
    /// Merge neighbouring segments (the smallest first) while the index has more than N.
    #[arg(long, value_name = "N", default_value_t = MergePolicy::DEFAULT_MAX_SEGMENTS)]
    max_segments: usize,
}

#[derive(Args)]
#[command(group(ArgGroup::new("which").required(true).args(["ids", "ids_file"])))]
struct DeleteArgs {
    /// The index directory.
    #[arg(long)]
    index: PathBuf,
    /// Ids to delete, comma-separated (an id holding a comma needs --ids-file).
    #[arg(long, value_delimiter = ',')]
    ids: Vec<String>,
    /// Ids to delete, one per line, exactly as written: nothing is trimmed but the line end
    /// (`\n` or `\r\n`); blank lines are skipped. Any id can be given this way.
    #[arg(long, value_name = "FILE")]
    ids_file: Option<PathBuf>,
}

#[derive(Args)]
struct OptimizeArgs {
    /// The index directory.
    #[arg(long)]
    index: PathBuf,
    /// Documents per block of the merged segment (default: the index's first segment's).
    #[arg(long)]
    block_size: Option<usize>,
    /// Keep documents in index order in the blocks (see `index build`).
    #[arg(long)]
    no_reorder: bool,
}

/// `splade search ...`
#[derive(Args)]
#[command(group(ArgGroup::new("input").required(true).args(["query", "queries", "query_vectors"])))]
pub struct SearchArgs {
    /// The index directory.
    #[arg(long)]
    index: PathBuf,
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
    /// a time on small segments (at most 32,768 documents) when block bounds would prune
    /// little (long queries on long documents, e.g. SciFact), block-max pruning otherwise.
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
}

fn reorder(no_reorder: bool) -> Reorder {
    if no_reorder {
        Reorder::None
    } else {
        Reorder::default()
    }
}

/// Runs `splade index`.
pub fn run_index(args: IndexArgs) -> Result<()> {
    match args.command {
        IndexCommand::Build(b) => build(b),
        IndexCommand::Info(i) => info(&i.index),
        IndexCommand::Add(a) => add(a),
        IndexCommand::Delete(d) => delete(d),
        IndexCommand::Optimize(o) => optimize(o),
    }
}

fn progress_bar(len: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    let template =
        format!("{{spinner}} {what} [{{bar:40}}] {{pos}}/{{len}} ({{per_sec}}, eta {{eta}})");
    bar.set_style(
        indicatif::ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// Texts and ids of a corpus or queries file: BEIR JSONL (by extension) or plain lines.
fn read_texts(path: &Path, join_title: bool) -> Result<Vec<(String, String)>> {
    let is_jsonl = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
    if is_jsonl {
        return Ok(splade_eval::data::read_jsonl_texts(path, join_title)?);
    }
    let source = path.display().to_string();
    let texts = input::parse_texts(&input::read_input(Some(path))?, None, &source)?;
    Ok(texts
        .into_iter()
        .enumerate()
        .map(|(i, t)| ((i + 1).to_string(), t))
        .collect())
}

/// Documents per encode call: output starts early and memory stays bounded.
const ENCODE_CHUNK: usize = 4096;

/// The documents of a [`SourceArgs`]: vectors read (and checked), or texts to encode.
enum Documents {
    Vectors(Vec<Document>),
    Corpus {
        path: PathBuf,
        texts: Vec<(String, String)>,
        encoder: Box<SparseEncoder>,
        options: EncodeOptions,
    },
}

impl Documents {
    /// Reads `source`; `dim` (when known) bounds the vectors' indices.
    fn load(source: &SourceArgs, dim: Option<usize>) -> Result<Self> {
        if let Some(corpus) = &source.corpus {
            let model = source.model.as_deref().context("--corpus needs --model")?;
            let texts = read_texts(corpus, true)?;
            let encoder = crate::load_encoder(model, &source.device)?;
            let options = EncodeOptions {
                batch_size: source.batch_size,
                max_active_dims: source.max_active_dims,
                ..EncodeOptions::default()
            };
            return Ok(Documents::Corpus {
                path: corpus.clone(),
                texts,
                encoder: Box::new(encoder),
                options,
            });
        }
        let docs = match (&source.vectors, &source.seismic, &source.ids) {
            (Some(v), _, _) => open_jsonl(v, dim)?.collect::<Result<_, _>>()?,
            (None, Some(v), Some(ids)) => read_seismic(v, ids, dim)?,
            _ => {
                bail!("give --vectors FILE, --seismic FILE --ids FILE, or --corpus FILE --model M")
            }
        };
        Ok(Documents::Vectors(docs))
    }

    /// The model's dimension, or one more than the largest index read.
    fn dim(&self) -> usize {
        match self {
            Documents::Vectors(docs) => docs
                .iter()
                .filter_map(|d| d.vector.indices().last())
                .max()
                .map_or(0, |&m| m as usize + 1),
            Documents::Corpus { encoder, .. } => encoder.dim(),
        }
    }

    fn is_encoded(&self) -> bool {
        matches!(self, Documents::Corpus { .. })
    }

    /// Hands every document to `add` in input order (encoding a corpus in chunks, with a
    /// progress bar); returns how many.
    fn feed(self, mut add: impl FnMut(&str, SparseView<'_>) -> Result<()>) -> Result<usize> {
        match self {
            Documents::Vectors(docs) => {
                for d in &docs {
                    add(&d.id, d.vector.view())?;
                }
                Ok(docs.len())
            }
            Documents::Corpus {
                path,
                texts,
                encoder,
                options,
            } => {
                let bar = progress_bar(texts.len(), "encoding");
                for chunk in texts.chunks(ENCODE_CHUNK) {
                    let just_texts: Vec<&str> = chunk.iter().map(|(_, t)| t.as_str()).collect();
                    let batch = encoder.encode_document(&just_texts, &options)?;
                    for ((id, _), row) in chunk.iter().zip(batch.rows()) {
                        add(id, row).with_context(|| format!("{}", path.display()))?;
                    }
                    bar.inc(chunk.len() as u64);
                }
                bar.finish_and_clear();
                Ok(texts.len())
            }
        }
    }
}

fn build(args: BuildArgs) -> Result<()> {
    let start = std::time::Instant::now();
    // Before any work: where the index goes, and the dimension asked for.
    IndexBuilder::check_target(&args.out, args.overwrite)?;
    if let Some(dim) = args.dim {
        if dim == 0 || dim > MAX_DIM {
            bail!("--dim {dim}: the dimension must be in 1..={MAX_DIM} (2^24)");
        }
    }
    let docs = Documents::load(&args.source, args.dim)?;
    let dim = if docs.is_encoded() {
        let dim = args.dim.unwrap_or(docs.dim());
        if dim != docs.dim() {
            bail!(
                "--dim {dim} differs from the model's dimension {}",
                docs.dim()
            );
        }
        dim
    } else {
        match args.dim {
            Some(dim) => dim,
            None => {
                let inferred = docs.dim();
                if inferred > MAX_INFERRED_DIM {
                    bail!(
                        "the largest index in the vectors is {}, beyond every known model vocabulary \
                         ({MAX_INFERRED_DIM} terms): give the dimension with --dim (at most {MAX_DIM})",
                        inferred - 1
                    );
                }
                eprintln!(
                    "dimension {inferred} inferred from the vectors (largest index + 1); \
                     give --dim with the model's vocabulary size to record it"
                );
                inferred
            }
        }
    };
    let mut builder = IndexBuilder::new(dim).reorder(reorder(args.no_reorder));
    if let Some(b) = args.block_size {
        builder = builder.block_size(b);
    }
    docs.feed(|id, v| {
        builder.add(id, v)?;
        Ok(())
    })?;
    let index = if args.overwrite {
        builder.write_over(&args.out)?
    } else {
        builder.write(&args.out)?
    };
    eprintln!(
        "indexed {} documents ({:.1} terms each, dim {}, block size {}) into {} in {:.1}s",
        index.len(),
        index.nnz() as f64 / index.len().max(1) as f64,
        index.dim(),
        index.block_size(),
        args.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Opens `dir` for writing, with a clear message when it holds no index.
fn open_writer(dir: &Path) -> Result<IndexWriter> {
    if !dir.join(MANIFEST_FILE).exists() {
        bail!(
            "{}: no index there (build one with `splade index build`)",
            dir.display()
        );
    }
    Ok(IndexWriter::open(dir)?)
}

fn add(args: AddArgs) -> Result<()> {
    let start = std::time::Instant::now();
    let mut writer = open_writer(&args.index)?
        .reorder(reorder(args.no_reorder))
        .merge_policy(MergePolicy::max_segments(args.max_segments));
    if let Some(b) = args.block_size {
        writer = writer.block_size(b);
    }
    let dim = writer.dim();
    let docs = Documents::load(&args.source, Some(dim))?;
    if docs.is_encoded() && docs.dim() != dim {
        bail!(
            "the model's dimension {} differs from the index's {} ({})",
            docs.dim(),
            dim,
            args.index.display()
        );
    }
    let mut replaced = 0usize;
    let count = docs.feed(|id, v| {
        if args.no_replace && writer.contains(id) {
            bail!("document '{id}' is already in the index (--no-replace); nothing was added");
        }
        if writer.add(id, v)? {
            replaced += 1;
        }
        Ok(())
    })?;
    let s = writer.commit()?;
    eprintln!(
        "added {count} documents ({replaced} replaced a document with the same id) to {} in {:.1}s: \
         {} live documents in {} segments{}",
        args.index.display(),
        start.elapsed().as_secs_f64(),
        s.live,
        s.segments,
        merged_note(s.segments_merged)
    );
    Ok(())
}

fn merged_note(merged: usize) -> String {
    if merged > 0 {
        format!(" ({merged} segments merged)")
    } else {
        String::new()
    }
}

fn delete(args: DeleteArgs) -> Result<()> {
    let mut ids = args.ids.clone();
    if let Some(path) = &args.ids_file {
        let bytes = input::read_input(Some(path))?;
        let lines = input::parse_texts(&bytes, None, &path.display().to_string())?;
        ids.extend(lines.into_iter().filter(|l| !l.is_empty()));
    }
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| !id.is_empty() && seen.insert(id.clone()));
    let mut writer = open_writer(&args.index)?;
    let mut unknown = Vec::new();
    let mut deleted = 0usize;
    for id in &ids {
        if writer.delete(id) {
            deleted += 1;
        } else {
            unknown.push(id.as_str());
        }
    }
    let s = writer.commit()?;
    eprintln!(
        "deleted {deleted} documents from {}: {} live documents in {} segments{}",
        args.index.display(),
        s.live,
        s.segments,
        merged_note(s.segments_merged)
    );
    if !unknown.is_empty() {
        eprintln!(
            "{} ids not in the index: {}",
            unknown.len(),
            unknown.join(", ")
        );
    }
    Ok(())
}

fn optimize(args: OptimizeArgs) -> Result<()> {
    let start = std::time::Instant::now();
    let mut writer = open_writer(&args.index)?.reorder(reorder(args.no_reorder));
    if let Some(b) = args.block_size {
        writer = writer.block_size(b);
    }
    let (segments, deleted) = (writer.index().num_segments(), writer.index().num_deleted());
    let s = writer.optimize()?;
    if s.segments_written == 0 {
        eprintln!(
            "{} is already one segment without deleted documents ({} documents)",
            args.index.display(),
            s.live
        );
    } else {
        eprintln!(
            "merged {segments} segments into {} ({} documents, {deleted} deleted documents dropped) in {:.1}s",
            s.segments,
            s.live,
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn info(dir: &Path) -> Result<()> {
    let index = Index::open(dir)?;
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest: serde_json::Value = serde_json::from_slice(
        &splade_sparse::files::read_regular_file(
            &manifest_path,
            splade_index::format::MAX_MANIFEST_BYTES,
        )
        .with_context(|| format!("reading {}", manifest_path.display()))?,
    )?;
    let segments: Vec<serde_json::Value> = index
        .segments()
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id,
                "dir": s.dir,
                "first_doc": s.first_doc,
                "documents": s.num_docs - s.deleted,
                "deleted": s.deleted,
                "stored": s.num_docs,
                "block_size": s.manifest.block_size,
                "blocks": s.manifest.num_blocks(),
            })
        })
        .collect();
    let summary = serde_json::json!({
        "path": dir.display().to_string(),
        "format": splade_index::format::FORMAT_NAME,
        "version": if index.segments_manifest().is_some() { SEGMENTS_VERSION } else { FORMAT_VERSION },
        "generation": index.generation(),
        "dim": index.dim(),
        "documents": index.len(),
        "deleted": index.num_deleted(),
        "nnz": index.nnz(),
        "segments": segments,
        "manifest": manifest,
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string_pretty(&summary)?)?;
    eprintln!("checksums and structure ok");
    Ok(())
}

/// Runs `splade search`.
pub fn run_search(args: SearchArgs) -> Result<()> {
    let index = if args.no_verify {
        Index::open_unverified(&args.index)?
    } else {
        Index::open(&args.index)?
    };
    let encoder = match &args.model {
        Some(m) => {
            let e = crate::load_encoder(m, &args.device)?;
            if e.dim() < index.dim() {
                bail!(
                    "the model's dimension {} is smaller than the index's {} ({}): the index was \
                     not built for this model's vocabulary",
                    e.dim(),
                    index.dim(),
                    args.index.display()
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
    let (qids, queries): (Vec<String>, Vec<SparseVector>) = if let Some(path) = &args.query_vectors
    {
        read_query_vectors(path)?
    } else {
        let encoder = encoder.as_ref().context("query texts need --model")?;
        let texts: Vec<(String, String)> = match (&args.query, &args.queries) {
            (Some(q), None) => vec![("1".to_string(), q.clone())],
            (None, Some(path)) => read_texts(path, false)?,
            _ => bail!("give a query text, --queries FILE or --query-vectors FILE"),
        };
        let just_texts: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
        let batch = encoder.encode_query(&just_texts, &EncodeOptions::default())?;
        let vectors = batch.to_vectors();
        (texts.into_iter().map(|(id, _)| id).collect(), vectors)
    };
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
                    "{} Q0 {} {} {} {}",
                    trec_id(qid),
                    trec_id(id),
                    rank + 1,
                    hit.score,
                    args.run_tag
                )?;
            }
        }
    }
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

/// A query or document id as one TREC run field: as it is, unless it holds whitespace;
/// then each whitespace character and each `%` is percent-encoded (UTF-8 bytes as `%XX`:
/// `"Global warming:14"` becomes `"Global%20warming:14"`), so that every line keeps its
/// six fields. Ids never hold control characters (refused when they are read).
pub(crate) fn trec_id(id: &str) -> std::borrow::Cow<'_, str> {
    if !id.chars().any(char::is_whitespace) {
        return std::borrow::Cow::Borrowed(id);
    }
    let mut out = String::with_capacity(id.len() + 8);
    for c in id.chars() {
        if c.is_whitespace() || c == '%' {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
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
                .and_then(|enc| enc.tokenizer().id_to_token(t.term))
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
