//! Replacing every document of an index in one commit (a rebuild over an existing index),
//! and the index's write lock.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::error::{IndexError, Result};
use crate::format::{
    self, segment_dir_name, IndexManifest, Manifest, Referenced, SegmentEntry, SegmentsManifest,
    LOCK_FILE, MANIFEST_FILE,
};
use crate::index::{Index, OpenOptions as IndexOpenOptions};

/// Replaces every document of the index in `dir` by a new segment in one commit: under the
/// write lock, `write_segment` writes the new documents as a new segment directory (the
/// path it is given) and returns its manifest, the new state is
/// opened and verified, and a manifest naming only that segment is renamed over the old
/// one; the old index's files are removed afterwards. A crash before the rename leaves the
/// old index (plus a partial segment the next commit removes), after it the new one.
pub(crate) fn replace_index(
    dir: &Path,
    dim: u64,
    write_segment: impl FnOnce(&Path) -> Result<Manifest>,
) -> Result<Index> {
    let _lock = lock(dir)?;
    let path = dir.join(MANIFEST_FILE);
    let bytes = format::read_manifest_bytes(&path)?;
    let (generation, mut next_segment, referenced) = match IndexManifest::parse(&bytes, &path) {
        Ok(IndexManifest::Segments(m)) => (m.generation, m.next_segment, Some(Referenced::of(&m))),
        Ok(IndexManifest::Single(_)) => (
            0,
            1,
            Some(Referenced {
                top_arrays: true,
                ..Referenced::default()
            }),
        ),
        // An index of an older version (which this build cannot open): replaced whole, its
        // files removed after the commit like any unreferenced file of ours.
        Err(e) => match format::older_index(&bytes) {
            Some((generation, next_segment)) => (generation, next_segment, None),
            None => {
                let reason = format!(
                    "the index to replace cannot be read ({e}); remove it by hand if it is no \
                     longer needed"
                );
                return Err(IndexError::corrupt(&path, reason));
            }
        },
    };
    // Leftovers of an interrupted commit (an older index's are left to the commit's cleanup).
    if let Some(referenced) = &referenced {
        format::remove_unreferenced(dir, referenced)?;
    }
    // A directory of that name that survived the cleanup is not ours: skip its number.
    while dir.join(segment_dir_name(next_segment)).exists() {
        next_segment += 1;
    }
    let id = next_segment;
    let seg_dir = segment_dir_name(id);
    let seg_manifest = write_segment(&dir.join(&seg_dir))?;
    format::sync_dir(dir)?;
    let next = SegmentsManifest {
        generation: generation + 1,
        next_segment: id + 1,
        segments: vec![SegmentEntry {
            id,
            dir: seg_dir,
            deletes: None,
            manifest: seg_manifest,
        }],
        ..SegmentsManifest::empty(dim)
    };
    let index = Index::from_manifest(
        dir,
        IndexManifest::Segments(next.clone()),
        &HashMap::new(),
        &IndexOpenOptions::new(),
    )?;
    let new_bytes = next.to_bytes()?;
    if format::read_manifest_bytes(&path)? != bytes {
        return Err(IndexError::Conflict { path });
    }
    format::write_atomic(dir, MANIFEST_FILE, &new_bytes)?;
    format::sync_dir(dir)?;
    // Committed; leftovers are harmless (the next commit removes them).
    let _ = format::remove_unreferenced(dir, &Referenced::of(&next));
    Ok(index)
}

/// Takes the exclusive write lock of the index in `dir`.
pub(crate) fn lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| IndexError::io(&path, e))?;
    match splade_sparse::files::try_lock_exclusive(&file) {
        Ok(true) => Ok(file),
        Ok(false) => Err(IndexError::Locked { path }),
        Err(e) => Err(IndexError::io(&path, e)),
    }
}
