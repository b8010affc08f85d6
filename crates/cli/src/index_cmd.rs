//! `splade index`: build a splade-index directory from sparse vectors (JSONL or Seismic
//! binary) or from a corpus encoded with a model, add, replace and delete documents without
//! a rebuild (segments, merged by `index optimize`), and inspect it; build one shard of a
//! corpus (`--shard`, resumable with `--resume`: `checkpoint`) and merge shard indexes
//! (`index merge`). Searching is `search_cmd`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Args, Subcommand};
use splade_data::shard::Shard;
use splade_encoder::{EncodeOptions, SparseEncoder};
use splade_index::format::{
    FORMAT_VERSION, MANIFEST_FILE, MAX_DIM, MAX_INFERRED_DIM, SEGMENTS_VERSION,
};
use splade_index::merge::{merge_indexes, MergeOptions};
use splade_index::readers::{open_jsonl, open_seismic, read_ahead, Document, READ_AHEAD_DOCS};
use splade_index::{DiskIndexBuilder, Index, IndexBuilder, IndexWriter, MergePolicy, Reorder};
use splade_sparse::SparseView;

use crate::{checkpoint, input};
use splade_eval::corpus::{encode_documents, ENCODE_CHUNK};

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
    /// Merge indexes built from shards of one corpus (`index build --shard`) into the index
    /// of the whole corpus: byte for byte what `index build` writes from the whole corpus.
    Merge(MergeArgs),
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
    /// (WordNet glosses), 32 on 1M longer ones and on 537k short ones (Quora questions;
    /// BENCHMARKS.md, "Block size"). Default: chosen from the documents, 16 when they
    /// average fewer than 64 terms and number at most 131,072, else 32.
    #[arg(long)]
    block_size: Option<usize>,
    /// Keep documents in input order in the blocks instead of clustering similar ones
    /// together (results are the same; pruning is usually weaker). Without it, collections
    /// of more than 131,072 documents are clustered only when clustering a sample of 32,768
    /// cuts its (block, term) pairs by at least 2 % (on vectors with flat weights it does
    /// not, and the clustering would only cost build time).
    #[arg(long)]
    no_reorder: bool,
    /// With --corpus: index only shard I of N (counted from 0), one contiguous range of the
    /// corpus's documents; `index merge` of the shard indexes in shard order gives the
    /// index of the whole corpus.
    #[arg(long, value_name = "I/N", requires = "corpus")]
    shard: Option<Shard>,
    /// With --corpus: documents per encode call (batched by length inside it), the unit of
    /// --shard and of --resume's checkpoints (as `splade encode --chunk-size`; give the
    /// same value to every shard).
    #[arg(long, value_name = "N", default_value_t = ENCODE_CHUNK, requires = "corpus",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    chunk_size: usize,
    /// With --corpus: checkpoint the encoded vectors in OUT.vectors.jsonl.part (beside
    /// --out, synced after every chunk) and continue from it after an interruption: its
    /// complete chunks are kept (checked against the corpus's ids), an unfinished chunk and
    /// a torn last line are dropped, the remaining documents are encoded and the index is
    /// written; the checkpoint is removed once the index is complete. A first run with --resume starts
    /// the checkpoint; an index already complete at --out is left as it is.
    #[arg(long, requires = "corpus")]
    resume: bool,
}

#[derive(Args)]
struct MergeArgs {
    /// The merged index directory: new or empty (as for `index build`).
    #[arg(long)]
    out: PathBuf,
    /// Replace an index already in --out (atomically, as `index build --overwrite`).
    #[arg(long)]
    overwrite: bool,
    /// The indexes to merge, in shard order (0/N first): the merged index holds their live
    /// documents in this order.
    #[arg(required = true, value_name = "DIR")]
    inputs: Vec<PathBuf>,
    /// Documents per block (default: chosen from all the documents, as `index build` does).
    #[arg(long)]
    block_size: Option<usize>,
    /// Keep documents in input order in the blocks (see `index build`).
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
    #[command(flatten)]
    run: crate::RunArgs,
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
        IndexCommand::Merge(m) => merge(m),
    }
}

/// A progress bar on stderr for `len` items: `what [bar] pos/len (rate, eta)`.
pub(crate) fn progress_bar(len: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    let template =
        format!("{{spinner}} {what} [{{bar:40}}] {{pos}}/{{len}} ({{per_sec}}, eta {{eta}})");
    bar.set_style(
        indicatif::ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// A stream of documents read (and checked) from a vectors file.
type VectorStream = Box<dyn Iterator<Item = splade_index::Result<Document>>>;

/// The documents of a [`SourceArgs`]: vectors read (and checked) one at a time as they are
/// fed, or texts to encode.
enum Documents {
    Vectors(VectorStream),
    Corpus {
        path: PathBuf,
        texts: Vec<(String, String)>,
        encoder: Box<SparseEncoder>,
        options: EncodeOptions,
        /// Documents per encode call.
        chunk: usize,
    },
}

impl Documents {
    /// Reads `source` (only `shard` of a corpus cut into chunks of `chunk` documents);
    /// `dim` (when known) bounds the vectors' indices.
    fn load(source: &SourceArgs, dim: Option<usize>, shard: Shard, chunk: usize) -> Result<Self> {
        if let Some(corpus) = &source.corpus {
            let model = source.model.as_deref().context("--corpus needs --model")?;
            let mut texts = input::read_texts(corpus, true)?;
            let range = shard.range(texts.len(), chunk);
            if shard != Shard::whole() {
                eprintln!(
                    "shard {shard}: documents {}..{} of {} ({} documents)",
                    range.start + 1,
                    range.end,
                    corpus.display(),
                    range.len()
                );
            }
            texts.truncate(range.end);
            texts.drain(..range.start);
            let encoder = crate::load_encoder_with(model, &source.device, &source.run)?;
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
                chunk,
            });
        }
        let docs: VectorStream = match (&source.vectors, &source.seismic, &source.ids) {
            // Read ahead in a thread: parsing overlaps with the builder's work.
            (Some(v), _, _) => Box::new(read_ahead(open_jsonl(v, dim)?, READ_AHEAD_DOCS)),
            (None, Some(v), Some(ids)) => {
                Box::new(read_ahead(open_seismic(v, ids, dim)?, READ_AHEAD_DOCS))
            }
            _ => {
                bail!("give --vectors FILE, --seismic FILE --ids FILE, or --corpus FILE --model M")
            }
        };
        Ok(Documents::Vectors(docs))
    }

    /// The model's dimension (`None` for vectors: known once they are read).
    fn model_dim(&self) -> Option<usize> {
        match self {
            Documents::Vectors(_) => None,
            Documents::Corpus { encoder, .. } => Some(encoder.dim()),
        }
    }

    /// Hands every document to `add` in input order (encoding a corpus in chunks of
    /// [`ENCODE_CHUNK`], with a progress bar, calling `chunk_done` after each); returns how
    /// many.
    fn feed(
        self,
        mut add: impl FnMut(&str, SparseView<'_>) -> Result<()>,
        mut chunk_done: impl FnMut() -> Result<()>,
    ) -> Result<usize> {
        match self {
            Documents::Vectors(docs) => {
                let mut count = 0;
                for d in docs {
                    let d = d?;
                    add(&d.id, d.vector.view())?;
                    count += 1;
                }
                Ok(count)
            }
            Documents::Corpus {
                path,
                texts,
                encoder,
                options,
                chunk,
            } => {
                let bar = progress_bar(texts.len(), "encoding");
                for chunk in texts.chunks(chunk) {
                    encode_documents(&encoder, chunk, &options, |id, row| {
                        add(id, row).with_context(|| format!("{}", path.display()))?;
                        bar.inc(1);
                        anyhow::Ok(())
                    })?;
                    chunk_done()?;
                }
                bar.finish_and_clear();
                Ok(texts.len())
            }
        }
    }
}

fn build(args: BuildArgs) -> Result<()> {
    let start = std::time::Instant::now();
    let shard = args.shard.unwrap_or_else(Shard::whole);
    // With --resume, an index already at --out may be this run's, finished before a crash.
    let finished = args.resume && !args.overwrite && args.out.join(MANIFEST_FILE).exists();
    // Before any work: where the index goes, and the dimension asked for.
    if !finished {
        IndexBuilder::check_target(&args.out, args.overwrite)?;
    }
    if let Some(dim) = args.dim {
        if dim == 0 || dim > MAX_DIM {
            bail!("--dim {dim}: the dimension must be in 1..={MAX_DIM} (2^24)");
        }
    }
    let mut docs = Documents::load(&args.source, args.dim, shard, args.chunk_size)?;
    if finished {
        let Documents::Corpus { texts, .. } = &docs else {
            bail!("--resume needs --corpus");
        };
        return checkpoint::already_built(&args.out, texts);
    }
    // Vectors without --dim: the dimension is inferred once they are read (the builder
    // accepts any index up to MAX_DIM meanwhile).
    let dim = match (docs.model_dim(), args.dim) {
        (Some(model), Some(dim)) if dim != model => {
            bail!("--dim {dim} differs from the model's dimension {model}")
        }
        (Some(model), _) => model,
        (None, Some(dim)) => dim,
        (None, None) => MAX_DIM,
    };
    let infer_dim = docs.model_dim().is_none() && args.dim.is_none();
    let create = if args.overwrite {
        DiskIndexBuilder::create_over
    } else {
        DiskIndexBuilder::create
    };
    let mut builder = create(&args.out, dim)?.reorder(reorder(args.no_reorder));
    if let Some(b) = args.block_size {
        builder = builder.block_size(b);
    }
    let log = std::cell::RefCell::new(None);
    if args.resume {
        let Documents::Corpus { texts, .. } = &mut docs else {
            bail!("--resume needs --corpus");
        };
        let (out, kept) = checkpoint::resume(&args.out, texts, dim, args.chunk_size)?;
        for doc in &kept {
            builder.add(&doc.id, doc.vector.view())?;
        }
        texts.drain(..kept.len());
        *log.borrow_mut() = Some(out);
    }
    docs.feed(
        |id, v| {
            if let Some(&last) = v.indices().last().filter(|_| infer_dim) {
                if last as usize >= MAX_INFERRED_DIM {
                    bail!(
                        "document '{id}' holds index {last}, beyond every known model vocabulary \
                         ({MAX_INFERRED_DIM} terms): give the dimension with --dim (at most {MAX_DIM})"
                    );
                }
            }
            builder.add(id, v)?;
            if let Some(log) = log.borrow_mut().as_mut() {
                log.write_line(&checkpoint::vector_line(id, v)?)?;
            }
            Ok(())
        },
        || {
            if let Some(log) = log.borrow_mut().as_mut() {
                log.checkpoint()?;
            }
            Ok(())
        },
    )?;
    if infer_dim {
        // At most MAX_INFERRED_DIM: every document was checked as it was added.
        let inferred = builder.indices_used();
        eprintln!(
            "dimension {inferred} inferred from the vectors (largest index + 1); \
             give --dim with the model's vocabulary size to record it"
        );
        builder.set_dim(inferred)?;
    }
    let manifest = builder.finish()?;
    if let Some(log) = log.into_inner() {
        log.discard()?;
    }
    eprintln!(
        "indexed {} documents ({:.1} terms each, dim {}, block size {}) into {} in {:.1}s",
        manifest.num_docs,
        manifest.nnz as f64 / manifest.num_docs.max(1) as f64,
        manifest.dim,
        manifest.block_size,
        args.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn merge(args: MergeArgs) -> Result<()> {
    let start = std::time::Instant::now();
    let options = MergeOptions {
        block_size: args.block_size,
        reorder: reorder(args.no_reorder),
        overwrite: args.overwrite,
    };
    let summary = merge_indexes(&args.inputs, &args.out, &options)?;
    let index = &summary.index;
    eprintln!(
        "merged {} indexes ({} documents: {}) into {} (block size {}) in {:.1}s",
        args.inputs.len(),
        index.len(),
        summary
            .documents
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" + "),
        args.out.display(),
        index.block_size(),
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
    let docs = Documents::load(&args.source, Some(dim), Shard::whole(), ENCODE_CHUNK)?;
    if docs.model_dim().is_some_and(|d| d != dim) {
        bail!(
            "the model's dimension {} differs from the index's {} ({})",
            docs.model_dim().unwrap_or(0),
            dim,
            args.index.display()
        );
    }
    let mut replaced = 0usize;
    let count = docs.feed(
        |id, v| {
            if args.no_replace && writer.contains(id) {
                bail!("document '{id}' is already in the index (--no-replace); nothing was added");
            }
            if writer.add(id, v)? {
                replaced += 1;
            }
            Ok(())
        },
        || Ok(()),
    )?;
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
