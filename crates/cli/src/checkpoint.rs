//! The encoding checkpoint of `splade index build --corpus ... --resume`.
//!
//! An index is written in one piece at the end (a temporary directory renamed into place),
//! so a build interrupted while encoding leaves no index at all. What survives is the
//! checkpoint: the vectors encoded so far, as `OUT.vectors.jsonl.part` beside `--out`
//! (`{"id", "indices", "values"}` lines, the format `splade encode --id-field` writes and
//! `index build --vectors` reads), synced after every chunk of `--chunk-size` documents by
//! a [`PartialOutput`]. A resumed build keeps its complete chunks (every line must carry the
//! id of the corpus document at its position, so a checkpoint of another corpus or shard is
//! refused), drops an unfinished chunk and a torn last line, indexes the kept vectors as
//! read back from the file, encodes the remaining documents from the chunk boundary (so
//! with the same batches as an uninterrupted build) and writes the index; the checkpoint is
//! removed once the index is in place.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use splade_data::partial::{part_path, PartialOutput};
use splade_index::readers::{open_jsonl, Document};
use splade_index::Index;
use splade_sparse::SparseView;

/// `OUT.vectors.jsonl` beside the index directory `out` (the checkpoint is written as
/// `OUT.vectors.jsonl.part`).
pub fn vectors_path(out: &Path) -> Result<PathBuf> {
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| *n != "." && *n != "..")
        .with_context(|| {
            format!(
                "{}: give the index directory a name (a path ending in a folder name)",
                out.display()
            )
        })?;
    Ok(out.with_file_name(format!("{name}.vectors.jsonl")))
}

/// Opens (or starts) the checkpoint of the build of `out` over `texts` (`(id, text)` of
/// this shard), encoded `chunk` documents per call: returns it, positioned after its
/// complete chunks, and the documents those hold, read back and checked (dimension `dim`).
pub fn resume(
    out: &Path,
    texts: &[(String, String)],
    dim: usize,
    chunk: usize,
) -> Result<(PartialOutput, Vec<Document>)> {
    let path = vectors_path(out)?;
    let (log, resumed) = PartialOutput::resume(&path, chunk, |n, line| check_line(line, n, texts))?;
    let part = log.part().to_path_buf();
    let kept = open_jsonl(&part, Some(dim))?
        .take(resumed.lines)
        .collect::<Result<Vec<_>, _>>()?;
    if kept.len() != resumed.lines {
        bail!(
            "{}: {} documents read back, {} lines kept",
            part.display(),
            kept.len(),
            resumed.lines
        );
    }
    if resumed.existed {
        eprintln!(
            "resuming from {}: {} of {} documents already encoded{}",
            part.display(),
            kept.len(),
            texts.len(),
            crate::encode_cmd::dropped_note(resumed.dropped_lines, resumed.torn_bytes)
        );
    }
    Ok((log, kept))
}

/// Checks line `n` (1-based) of a checkpoint: a JSON object whose `id` is that of the
/// corpus document at position `n`.
fn check_line(line: &str, n: usize, texts: &[(String, String)]) -> std::result::Result<(), String> {
    let Some((expected, _)) = texts.get(n - 1) else {
        return Err(format!(
            "more lines than this shard has documents ({}): not the checkpoint of this corpus \
             and shard",
            texts.len()
        ));
    };
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not a JSON vector ({e})"))?;
    let found = value.get("id").and_then(serde_json::Value::as_str);
    if found != Some(expected.as_str()) {
        return Err(format!(
            "{} where document {n} of this shard has id {expected:?}: not the \
             checkpoint of this corpus and shard",
            found.map_or("no id".to_string(), |f| format!("id {f:?}"))
        ));
    }
    Ok(())
}

/// One checkpoint line: `{"id", "indices", "values"}`.
pub fn vector_line(id: &str, vector: SparseView<'_>) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(
        &serde_json::json!({"id": id, "indices": vector.indices(), "values": vector.values()}),
    )?)
}

/// `--resume` when `out` already holds an index: complete when it holds exactly this
/// shard's documents (same ids, same order); then a checkpoint left beside it (the build
/// was interrupted between writing the index and removing it) is removed. Anything else is
/// an error: the index is not this build's.
pub fn already_built(out: &Path, texts: &[(String, String)]) -> Result<()> {
    let index = Index::open(out)?;
    let same = index.len() == texts.len()
        && index.max_doc() == texts.len()
        && texts
            .iter()
            .enumerate()
            .all(|(d, (id, _))| index.id(d as u32) == Some(id.as_str()));
    if !same {
        bail!(
            "{}: already holds an index that is not this corpus shard's ({} documents, the \
             shard has {}); choose another --out, or --overwrite to replace it",
            out.display(),
            index.len(),
            texts.len()
        );
    }
    let part = part_path(&vectors_path(out)?);
    if part.exists() {
        std::fs::remove_file(&part).with_context(|| format!("removing {}", part.display()))?;
    }
    eprintln!(
        "{} already holds this shard's complete index ({} documents); nothing to do",
        out.display(),
        index.len()
    );
    Ok(())
}
