//! `splade encode`: texts (one per line, or a JSONL field) into one JSON vector per line, on
//! standard output or into `--output FILE`; one shard of the input with `--shard I/N`, and
//! continuing an interrupted `--output` with `--resume` (see `splade_data::partial`).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use splade_data::partial::{part_path, PartialOutput};
use splade_data::shard::Shard;
use splade_encoder::{EncodeOptions, SparseBatch, SparseEncoder};
use splade_eval::corpus::ENCODE_CHUNK;
use splade_sparse::SparseView;

use crate::{input, ModelArg};

/// `splade encode` arguments.
#[derive(Args)]
pub struct EncodeArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Encode as queries (the model's `query` prompt).
    #[arg(long, conflicts_with = "document")]
    query: bool,
    /// Encode as documents (the model's `document` prompt).
    #[arg(long)]
    document: bool,
    /// Keep only the K largest weights of each vector.
    #[arg(long, value_name = "K")]
    max_active_dims: Option<usize>,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Input file (default: standard input).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Read JSONL and take the text from this field.
    #[arg(long, value_name = "NAME")]
    jsonl_field: Option<String>,
    /// With --jsonl-field: copy this field (e.g. `_id`) into each output object as "id",
    /// giving the `{"id", "indices", "values"}` lines `splade index build --vectors` reads.
    #[arg(long, value_name = "NAME", requires = "jsonl_field")]
    id_field: Option<String>,
    /// Print the N heaviest tokens of each text instead of JSON.
    #[arg(long, value_name = "N", conflicts_with = "output")]
    top_tokens: Option<usize>,
    /// Show a progress bar on stderr.
    #[arg(long)]
    progress: bool,
    /// Texts per encode call (batched by length inside it): output starts early, memory
    /// stays bounded, --output is synced after each chunk, and shards and resumed runs
    /// start on chunk boundaries. Vectors can differ in their last bits with another chunk
    /// size (or --batch-size): give the same values to every shard.
    #[arg(long, value_name = "N", default_value_t = ENCODE_CHUNK,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    chunk_size: usize,
    /// Encode only shard I of N (counted from 0): one contiguous range of whole chunks of
    /// the input's texts (records of a JSONL input), within one chunk of each other in
    /// size. The shards' outputs concatenated in shard order are the whole input's output,
    /// byte for byte.
    #[arg(long, value_name = "I/N")]
    shard: Option<Shard>,
    /// Write the vectors to FILE instead of standard output: written as FILE.part, synced
    /// after every chunk, and renamed to FILE when complete (FILE is never partial).
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Continue an interrupted --output: keep the complete chunks of FILE.part (every line
    /// checked: a JSON vector, with --id-field the id of the same document), drop an
    /// unfinished chunk and a torn last line, and encode from there. Without FILE.part it
    /// starts one (so a first run with --resume can be resumed); when FILE is already
    /// complete, nothing is done.
    #[arg(long, requires = "output")]
    resume: bool,
}

/// Where encoded lines go.
enum Sink {
    Stdout(BufWriter<std::io::StdoutLock<'static>>),
    File(PartialOutput),
}

impl Sink {
    fn line(&mut self, line: &[u8]) -> Result<()> {
        match self {
            Sink::Stdout(out) => {
                out.write_all(line)?;
                out.write_all(b"\n")?;
            }
            Sink::File(out) => out.write_line(line)?,
        }
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<()> {
        if let Sink::File(out) = self {
            out.checkpoint()?;
        }
        Ok(())
    }
}

/// Runs `splade encode`.
pub fn run(args: EncodeArgs) -> Result<()> {
    let source = input::source_name(args.input.as_deref());
    let bytes = input::read_input(args.input.as_deref())?;
    let mut texts = input::parse_texts(&bytes, args.jsonl_field.as_deref(), &source)?;
    let mut ids = match &args.id_field {
        Some(field) => Some(input::parse_ids(&bytes, field, &source)?),
        None => None,
    };
    drop(bytes);
    let shard = args.shard.unwrap_or_else(Shard::whole);
    let chunk_size = args.chunk_size;
    let range = shard.range(texts.len(), chunk_size);
    let first = range.start;
    texts.truncate(range.end);
    texts.drain(..range.start);
    if let Some(ids) = &mut ids {
        ids.truncate(range.end);
        ids.drain(..range.start);
    }
    if let Some(s) = &args.shard {
        eprintln!(
            "shard {s}: texts {}..{} of {source} ({} texts)",
            range.start + 1,
            range.end,
            texts.len()
        );
    }
    let (mut sink, done) = match &args.output {
        None => (Sink::Stdout(BufWriter::new(std::io::stdout().lock())), 0),
        Some(path) if args.resume => {
            if path.exists() && !part_path(path).exists() {
                return check_complete(path, texts.len());
            }
            let (out, resumed) = PartialOutput::resume(path, chunk_size, |n, line| {
                check_line(line, n, texts.len(), ids.as_deref())
            })?;
            if resumed.existed {
                eprintln!(
                    "resuming {}: {} of {} texts already encoded{}",
                    out.part().display(),
                    resumed.lines,
                    texts.len(),
                    dropped_note(resumed.dropped_lines, resumed.torn_bytes)
                );
            }
            (Sink::File(out), resumed.lines)
        }
        Some(path) => (Sink::File(PartialOutput::create(path)?), 0),
    };
    let encoder = crate::load(&args.model)?;
    let options = EncodeOptions {
        batch_size: args.batch_size,
        max_active_dims: args.max_active_dims,
        show_progress: false,
        ..EncodeOptions::default()
    };
    let bar = args
        .progress
        .then(|| crate::index_cmd::progress_bar(texts.len() - done, "encoding"));
    for (c, chunk) in texts[done..].chunks(chunk_size).enumerate() {
        let start = done + c * chunk_size;
        let batch = if args.query {
            encoder.encode_query(chunk, &options)?
        } else if args.document {
            encoder.encode_document(chunk, &options)?
        } else {
            encoder.encode(chunk, &options)?
        };
        match (args.top_tokens, &mut sink) {
            (Some(n), Sink::Stdout(out)) => {
                write_top_tokens(out, &encoder, chunk, &batch, n, first + start)?
            }
            _ => {
                for (r, row) in batch.rows().enumerate() {
                    let id = ids.as_ref().map(|ids| ids[start + r].as_str());
                    sink.line(&json_line(row, id)?)?;
                }
            }
        }
        sink.checkpoint()?;
        if let Some(bar) = &bar {
            bar.inc(chunk.len() as u64);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match sink {
        Sink::Stdout(mut out) => out.flush().context("writing to standard output")?,
        Sink::File(out) => {
            let lines = out.lines();
            let path = out.finish()?;
            eprintln!("wrote {lines} vectors to {}", path.display());
        }
    }
    Ok(())
}

/// What a resume dropped, for its message (empty when nothing).
pub(crate) fn dropped_note(lines: usize, torn_bytes: u64) -> String {
    let mut parts = Vec::new();
    if lines > 0 {
        parts.push(format!("{lines} lines of an unfinished chunk"));
    }
    if torn_bytes > 0 {
        parts.push(format!("a torn last line of {torn_bytes} bytes"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({} dropped, encoded again)", parts.join(" and "))
    }
}

/// `--resume` when `path` exists and no `path.part` does: the output is complete when it
/// holds one line per text; anything else is an error.
fn check_complete(path: &Path, expected: usize) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let lines = bytes.iter().filter(|&&b| b == b'\n').count();
    if lines != expected || bytes.last().is_some_and(|&b| b != b'\n') {
        bail!(
            "{} exists with {lines} lines but the input has {expected} texts: it is not this \
             run's output (remove it, or run without --resume to replace it)",
            path.display()
        );
    }
    eprintln!(
        "{} is already complete ({expected} vectors); nothing to do",
        path.display()
    );
    Ok(())
}

/// Checks line `n` (1-based) of a partial output being resumed: a JSON object with
/// `indices` and `values` arrays, within the `expected` texts, and, when the run writes
/// ids, the id of text `n`.
fn check_line(
    line: &str,
    n: usize,
    expected: usize,
    ids: Option<&[String]>,
) -> std::result::Result<(), String> {
    if n > expected {
        return Err(format!(
            "more lines than the input has texts ({expected}): this is not the partial output \
             of this input and shard"
        ));
    }
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not a JSON vector ({e})"))?;
    for field in ["indices", "values"] {
        if !value.get(field).is_some_and(serde_json::Value::is_array) {
            return Err(format!(
                "no '{field}' array: not a line `splade encode` wrote"
            ));
        }
    }
    if let Some(ids) = ids {
        let found = value.get("id").and_then(serde_json::Value::as_str);
        if found != Some(ids[n - 1].as_str()) {
            return Err(format!(
                "{} where text {n} of this input has id {:?}: this is not the \
                 partial output of this input and shard",
                found.map_or("no id".to_string(), |f| format!("id {f:?}")),
                ids[n - 1]
            ));
        }
    }
    Ok(())
}

/// One output line: `{"id"?, "indices", "values"}` (keys in this order).
fn json_line(row: SparseView<'_>, id: Option<&str>) -> Result<Vec<u8>> {
    let value = match id {
        Some(id) => {
            serde_json::json!({"id": id, "indices": row.indices(), "values": row.values()})
        }
        None => serde_json::json!({"indices": row.indices(), "values": row.values()}),
    };
    Ok(serde_json::to_vec(&value)?)
}

fn write_top_tokens(
    out: &mut impl Write,
    encoder: &SparseEncoder,
    texts: &[String],
    batch: &SparseBatch,
    n: usize,
    offset: usize,
) -> Result<()> {
    for (i, (text, row)) in texts.iter().zip(batch.rows()).enumerate() {
        let shown: String = text.chars().take(100).collect();
        let more = if text.chars().count() > 100 {
            "…"
        } else {
            ""
        };
        writeln!(out, "[{}] {shown}{more}", offset + i + 1)?;
        writeln!(out, "    {} active dims", row.nnz())?;
        let terms: Vec<String> = encoder
            .decode(row, Some(n))
            .into_iter()
            .map(|(t, w)| format!("{t} {w:.3}"))
            .collect();
        writeln!(out, "    {}", terms.join("  "))?;
    }
    Ok(())
}
