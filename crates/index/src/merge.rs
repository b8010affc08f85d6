//! Merging indexes built from shards of one corpus into the index of the whole corpus
//! (`splade index merge`).
//!
//! The live documents of the inputs are added to one [`IndexBuilder`] in input order (each
//! input's documents in its own order, deleted ones left out), so with the inputs given in
//! shard order the merged index numbers its documents exactly as an index built from the
//! whole corpus does. The builder is deterministic (the block size follows from all the
//! documents, the clustering is seeded by document order), so the merged directory is
//! **equal, file for file and byte for byte, to the directory [`IndexBuilder::write`]
//! writes from the whole corpus** with the same block size and [`Reorder`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::builder::{IndexBuilder, Reorder};
use crate::error::{IndexError, Result};
use crate::format::MANIFEST_FILE;
use crate::index::Index;

/// How [`merge_indexes`] lays out and writes the merged index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeOptions {
    /// Documents per block (`None`: [`crate::auto_block_size`] of all the documents, as a
    /// build of the whole corpus chooses it).
    pub block_size: Option<usize>,
    /// The block layout (default [`Reorder::Auto`], as [`IndexBuilder`]'s).
    pub reorder: Reorder,
    /// Replace an index already at the output (as [`IndexBuilder::write_over`] does).
    pub overwrite: bool,
}

/// What [`merge_indexes`] did.
#[derive(Debug)]
pub struct MergeSummary {
    /// The merged index, opened from the output directory.
    pub index: Index,
    /// Live documents taken from each input, in input order.
    pub documents: Vec<usize>,
}

/// An [`IndexBuilder`] holding the live documents of `inputs` (`(name, index)`; the name
/// appears in errors) in order: each input's documents in document-number order, deleted
/// ones skipped. Errors: no input, inputs of different dimensions, an id in two inputs
/// (naming both).
pub fn concatenate<'a>(
    inputs: impl IntoIterator<Item = (&'a Path, &'a Index)>,
    options: &MergeOptions,
) -> Result<IndexBuilder> {
    let inputs: Vec<(&Path, &Index)> = inputs.into_iter().collect();
    let Some(&(first_path, first)) = inputs.first() else {
        return Err(IndexError::InvalidArgument(
            "nothing to merge: give at least one index".into(),
        ));
    };
    for &(path, index) in &inputs[1..] {
        if index.dim() != first.dim() {
            return Err(IndexError::InvalidArgument(format!(
                "{} has dimension {} but {} has dimension {}: indexes of different models (or \
                 --dim) cannot be merged",
                path.display(),
                index.dim(),
                first_path.display(),
                first.dim()
            )));
        }
    }
    let mut builder = IndexBuilder::new(first.dim()).reorder(options.reorder);
    if let Some(b) = options.block_size {
        builder = builder.block_size(b);
    }
    // Which input each id came from, to name both sides of a duplicate.
    let mut origin: HashMap<&str, usize> = HashMap::new();
    for (i, &(path, index)) in inputs.iter().enumerate() {
        for doc in 0..index.max_doc() as u32 {
            let (Some(id), Some(vector)) = (index.id(doc), index.document(doc)) else {
                continue; // deleted
            };
            if let Some(&j) = origin.get(id) {
                let place = if i == j {
                    format!("twice in {}", path.display())
                } else {
                    format!(
                        "in input {} ({}) and in input {} ({})",
                        j + 1,
                        inputs[j].0.display(),
                        i + 1,
                        path.display()
                    )
                };
                return Err(IndexError::InvalidDocument {
                    id: id.to_string(),
                    message: format!(
                        "{place}: ids must be unique across the merged indexes (were shards \
                         built from overlapping inputs, or one shard given twice?)"
                    ),
                });
            }
            origin.insert(id, i);
            builder.add(id, vector).map_err(|e| match e {
                IndexError::InvalidDocument { id, message } => IndexError::InvalidDocument {
                    id,
                    message: format!("{message} (in {})", path.display()),
                },
                other => other,
            })?;
        }
    }
    Ok(builder)
}

/// Merges the index directories `inputs`, in this order, into a new index at `out` (see
/// the module documentation): opens and verifies every input, concatenates their live
/// documents ([`concatenate`]) and writes the result as [`IndexBuilder::write`] does (or
/// [`IndexBuilder::write_over`] with [`MergeOptions::overwrite`]). The output may not be one
/// of the inputs; nothing is written when an input is refused.
pub fn merge_indexes(
    inputs: &[PathBuf],
    out: &Path,
    options: &MergeOptions,
) -> Result<MergeSummary> {
    IndexBuilder::check_target(out, options.overwrite)?;
    let out_canonical = std::fs::canonicalize(out).ok();
    let mut opened = Vec::with_capacity(inputs.len());
    for path in inputs {
        if out_canonical.is_some() && std::fs::canonicalize(path).ok() == out_canonical {
            return Err(IndexError::InvalidArgument(format!(
                "{}: the output of a merge cannot be one of its inputs",
                out.display()
            )));
        }
        if !path.join(MANIFEST_FILE).is_file() {
            return Err(IndexError::InvalidArgument(format!(
                "{}: no index there (no {MANIFEST_FILE}); give index directories to merge",
                path.display()
            )));
        }
        opened.push(Index::open(path)?);
    }
    let documents = opened.iter().map(Index::len).collect();
    let builder = concatenate(
        inputs.iter().map(PathBuf::as_path).zip(opened.iter()),
        options,
    )?;
    drop(opened);
    let index = if options.overwrite {
        builder.write_over(out)?
    } else {
        builder.write(out)?
    };
    Ok(MergeSummary { index, documents })
}
