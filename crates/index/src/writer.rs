//! Adding and deleting documents without a rebuild: new segments, deletion files and
//! merges, committed atomically (the protocol is documented on [`IndexWriter`]).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use splade_sparse::{SparseVector, SparseView};

use crate::builder::{check_document, refusal, IndexBuilder, Reorder};
use crate::deletes::DeleteSet;
use crate::error::{IndexError, Result};
use crate::format::{
    self, deletes_file_name, segment_dir_name, DeletesEntry, DirState, IndexManifest, Referenced,
    SegmentEntry, SegmentsManifest, MANIFEST_FILE,
};
use crate::index::{Index, OpenOptions};
use crate::replace::{lock, replace_index};
use crate::segment::Segment;

/// When [`IndexWriter::commit`] merges segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergePolicy {
    max_segments: usize,
}

impl Default for MergePolicy {
    /// At most [`MergePolicy::DEFAULT_MAX_SEGMENTS`] segments.
    fn default() -> Self {
        Self {
            max_segments: Self::DEFAULT_MAX_SEGMENTS,
        }
    }
}

impl MergePolicy {
    /// The default segment limit.
    pub const DEFAULT_MAX_SEGMENTS: usize = 10;

    /// Keep at most `n` segments (at least 1): while a commit would leave more, the two
    /// neighbouring segments with the fewest live documents between them are merged
    /// (neighbours only, so documents keep their relative order and score ties keep
    /// going to the same document).
    pub fn max_segments(n: usize) -> Self {
        Self {
            max_segments: n.max(1),
        }
    }

    /// Never merge on commit ([`IndexWriter::optimize`] still merges everything).
    pub fn never() -> Self {
        Self {
            max_segments: usize::MAX,
        }
    }

    /// The segment limit.
    pub fn limit(&self) -> usize {
        self.max_segments
    }
}

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitSummary {
    /// The generation now on disk (unchanged when there was nothing to commit).
    pub generation: u64,
    /// Documents added (replacements included).
    pub added: usize,
    /// Previously committed documents deleted (replaced ones included).
    pub deleted: usize,
    /// New segment directories written (the added documents' and merged ones).
    pub segments_written: usize,
    /// Existing segments rewritten into merged ones (their deleted documents dropped).
    pub segments_merged: usize,
    /// Segments in the index now.
    pub segments: usize,
    /// Live documents in the index now.
    pub live: usize,
    /// Leftover files and directories removed (superseded ones, or partial ones from an
    /// interrupted commit).
    pub removed_files: usize,
}

/// Adds, replaces and deletes documents of an index directory and commits the changes
/// atomically.
///
/// - [`Self::add`] is an **upsert**: adding an id that already exists deletes the old
///   document and adds the new one at the end (it then ranks after earlier documents in
///   ties, like any newly added document).
/// - [`Self::delete`] deletes by id.
/// - Nothing is visible (to [`Index::open`] or [`Self::index`]) before [`Self::commit`],
///   which writes the added documents as a new segment, the deletions as per-segment
///   deletion files, merges segments according to the [`MergePolicy`] and switches the
///   manifest. Dropping a writer discards uncommitted changes.
/// - [`Self::optimize`] commits and merges every segment into one, dropping deleted
///   documents.
///
/// One writer at a time: [`Self::open`] takes an exclusive lock on `write.lock` in the
/// directory (released when the writer is dropped or its process ends), and every commit
/// also checks that the manifest did not change under it. Readers need no lock.
///
/// # Crash safety
///
/// A commit never modifies a file the current manifest names. It
///
/// 1. removes what an interrupted earlier commit left behind (files and segment
///    directories the current manifest does not name);
/// 2. writes the new segments (added documents, merged segments) into new directories and
///    the changed deletion sets into new files named after the new generation, each synced,
///    and opens (verifies) the new state;
/// 3. checks that `manifest.json` is still the one this writer started from;
/// 4. writes the new manifest to a temporary file, syncs it and renames it over
///    `manifest.json` (the commit point), then syncs the directory;
/// 5. removes the files and directories the new manifest no longer names.
///
/// A crash before step 4 leaves the previous manifest and every file it names intact
/// (readers see the previous state; the next commit removes the partial files); a crash
/// after it leaves the new state complete (the next commit removes the leftovers).
///
/// ```
/// use splade_index::{Index, IndexBuilder, IndexWriter};
/// use splade_sparse::SparseVector;
/// let dir = tempfile::tempdir()?;
/// let v = |pairs: Vec<(u32, f32)>| SparseVector::from_pairs(pairs).unwrap();
/// let mut b = IndexBuilder::new(8);
/// b.add("a", v(vec![(1, 1.0)]).view())?;
/// b.add("b", v(vec![(1, 2.0)]).view())?;
/// b.write(dir.path())?;
///
/// let mut w = IndexWriter::open(dir.path())?;
/// w.add("c", v(vec![(1, 3.0)]).view())?;
/// assert!(w.delete("b"));
/// w.commit()?;
///
/// let index = Index::open(dir.path())?;
/// let q = v(vec![(1, 1.0)]);
/// let ids: Vec<_> = index.top_k(q.view(), 10).iter().map(|h| index.id(h.doc).unwrap()).collect();
/// assert_eq!(ids, ["c", "a"]);
/// assert_eq!((index.len(), index.num_segments()), (2, 2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct IndexWriter {
    dir: PathBuf,
    _lock: File,
    index: Index,
    manifest: SegmentsManifest,
    /// `manifest.json` as this writer last read or wrote it.
    manifest_bytes: Vec<u8>,
    pending: Vec<Option<(String, SparseVector)>>,
    pending_ids: HashMap<String, usize>,
    /// Global numbers of committed documents deleted since the last commit.
    pending_deletes: HashSet<u32>,
    /// `None`: chosen per new segment ([`crate::auto_block_size`]).
    block_size: Option<usize>,
    reorder: Reorder,
    policy: MergePolicy,
}

/// One entry of a commit plan: an existing segment with its new deletion set, or the
/// added documents.
enum Part {
    Existing {
        slot: usize,
        deleted: DeleteSet,
        changed: bool,
    },
    Added,
}

impl IndexWriter {
    /// Opens the index in `dir` (single-segment or segmented, checksums verified) for
    /// writing. Errors: no index there, a damaged one, or another writer holding the lock
    /// ([`IndexError::Locked`]).
    pub fn open(dir: &Path) -> Result<Self> {
        let lock = lock(dir)?;
        let path = dir.join(MANIFEST_FILE);
        let bytes = format::read_manifest_bytes(&path)?;
        let parsed = IndexManifest::parse(&bytes, &path)?;
        let index =
            Index::from_manifest(dir, parsed.clone(), &HashMap::new(), &OpenOptions::new())?;
        let manifest = match parsed {
            IndexManifest::Segments(m) => m,
            IndexManifest::Single(m) => {
                // Segment 0: the arrays already at the top of the directory.
                let mut s = SegmentsManifest::empty(m.dim);
                s.segments.push(SegmentEntry {
                    id: 0,
                    dir: segment_dir_name(0),
                    deletes: None,
                    manifest: m,
                });
                s
            }
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            _lock: lock,
            block_size: index.slots().first().map(|s| s.segment.block_size()),
            index,
            manifest,
            manifest_bytes: bytes,
            pending: Vec::new(),
            pending_ids: HashMap::new(),
            pending_deletes: HashSet::new(),
            reorder: Reorder::default(),
            policy: MergePolicy::default(),
        })
    }

    /// Creates an empty segmented index of dimension `dim` in `dir` (created if missing)
    /// and opens it for writing. Error if `dir` already holds an index.
    pub fn create(dir: &Path, dim: usize) -> Result<Self> {
        if dim > format::MAX_DIM {
            return Err(IndexError::InvalidArgument(format!(
                "dimension {dim} is above the largest supported dimension {} (2^24)",
                format::MAX_DIM
            )));
        }
        match format::dir_state(dir)? {
            format::DirState::Missing | format::DirState::Empty => {}
            format::DirState::Index => {
                return Err(IndexError::IndexExists {
                    path: dir.to_path_buf(),
                })
            }
            format::DirState::NotADirectory => {
                return Err(IndexError::NotADirectory {
                    path: dir.to_path_buf(),
                })
            }
            format::DirState::Other { example } => {
                return Err(IndexError::NotAnIndex {
                    path: dir.to_path_buf(),
                    example,
                })
            }
        }
        fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
        let lock_file = lock(dir)?;
        let path = dir.join(MANIFEST_FILE);
        if path.exists() {
            return Err(IndexError::InvalidArgument(format!(
                "{} already holds an index (open it with IndexWriter::open)",
                dir.display()
            )));
        }
        let manifest = SegmentsManifest::empty(dim as u64);
        format::write_atomic(dir, MANIFEST_FILE, &manifest.to_bytes()?)?;
        format::sync_dir(dir)?;
        drop(lock_file);
        Self::open(dir)
    }

    /// Documents per block of the segments this writer writes (default: the first
    /// segment's, or for an index without segments [`crate::auto_block_size`] of each new
    /// segment's documents); 1..=256, checked on commit.
    pub fn block_size(mut self, block_size: usize) -> Self {
        self.block_size = Some(block_size);
        self
    }

    /// Block layout of the segments this writer writes (default [`Reorder::Auto`]).
    pub fn reorder(mut self, reorder: Reorder) -> Self {
        self.reorder = reorder;
        self
    }

    /// When commits merge segments (default [`MergePolicy::default`]).
    pub fn merge_policy(mut self, policy: MergePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The index directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.manifest.dim as usize
    }

    /// The index as of the last commit (or as opened).
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Live documents counting uncommitted changes.
    pub fn len(&self) -> usize {
        self.index.len() - self.pending_deletes.len() + self.pending_ids.len()
    }

    /// Whether [`Self::len`] is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a live document (counting uncommitted changes) has id `id`.
    pub fn contains(&self, id: &str) -> bool {
        self.pending_ids.contains_key(id)
            || self
                .index
                .doc_number(id)
                .is_some_and(|d| !self.pending_deletes.contains(&d))
    }

    /// Whether there are uncommitted changes.
    pub fn has_changes(&self) -> bool {
        !self.pending_ids.is_empty() || !self.pending_deletes.is_empty()
    }

    /// Adds a document; if a live document (committed or not) has the same id, it is
    /// deleted first (**upsert**; returns `true` then). The new document goes after every
    /// existing one. Errors (naming the id): an empty id, an index `>= dim`, a negative
    /// weight.
    pub fn add(&mut self, id: &str, vector: SparseView<'_>) -> Result<bool> {
        check_document(id, vector, self.dim())?;
        let replaced = if let Some(p) = self.pending_ids.remove(id) {
            if let Some(slot) = self.pending.get_mut(p) {
                *slot = None;
            }
            true
        } else {
            match self.index.doc_number(id) {
                Some(d) => self.pending_deletes.insert(d),
                None => false,
            }
        };
        self.pending.push(Some((id.to_string(), vector.to_owned())));
        self.pending_ids
            .insert(id.to_string(), self.pending.len() - 1);
        Ok(replaced)
    }

    /// Deletes the live document with id `id` (committed or added since); `false` when
    /// there is none.
    pub fn delete(&mut self, id: &str) -> bool {
        if let Some(p) = self.pending_ids.remove(id) {
            if let Some(slot) = self.pending.get_mut(p) {
                *slot = None;
            }
            return true;
        }
        match self.index.doc_number(id) {
            Some(d) => self.pending_deletes.insert(d),
            None => false,
        }
    }

    /// Discards the uncommitted changes.
    pub fn rollback(&mut self) {
        self.pending.clear();
        self.pending_ids.clear();
        self.pending_deletes.clear();
    }

    /// Commits the changes (see "Crash safety" above), merging segments as the
    /// [`MergePolicy`] says. With no change, writes nothing (but still removes
    /// leftovers of interrupted commits).
    pub fn commit(&mut self) -> Result<CommitSummary> {
        self.write_generation(false)
    }

    /// Commits the changes and merges all segments into one, dropping deleted documents
    /// (nothing is written when the index already is one segment without deletions and
    /// there is no change).
    pub fn optimize(&mut self) -> Result<CommitSummary> {
        self.write_generation(true)
    }

    fn write_generation(&mut self, merge_all: bool) -> Result<CommitSummary> {
        // Cleaning up on the strength of a stale manifest could delete another writer's
        // files: check first.
        self.check_unchanged()?;
        let referenced = Referenced::of(&self.manifest);
        let mut removed_files = format::remove_unreferenced(&self.dir, &referenced)?;
        let parts = self.plan_parts();
        let live: Vec<usize> = parts.iter().map(|p| self.part_live(p)).collect();
        let groups = if merge_all {
            if parts.is_empty() {
                Vec::new()
            } else {
                vec![(0, parts.len())]
            }
        } else {
            merge_groups(&live, self.policy.max_segments)
        };
        let rewrite = |&(s, e): &(usize, usize)| {
            e - s > 1
                || matches!(parts[s], Part::Added)
                || (merge_all
                    && matches!(&parts[s], Part::Existing { deleted, .. } if !deleted.is_empty()))
        };
        let mut summary = CommitSummary {
            generation: self.manifest.generation,
            added: self.pending_ids.len(),
            deleted: self.pending_deletes.len(),
            segments: self.index.num_segments(),
            live: self.index.len(),
            removed_files,
            ..CommitSummary::default()
        };
        if !self.has_changes() && !groups.iter().any(rewrite) {
            return Ok(summary);
        }
        if let Some(block_size) = self
            .block_size
            .filter(|b| !(1..=format::MAX_BLOCK_SIZE).contains(b))
        {
            return Err(IndexError::InvalidArgument(format!(
                "block size must be in 1..={}, got {block_size}",
                format::MAX_BLOCK_SIZE,
            )));
        }

        let generation = self.manifest.generation + 1;
        let mut next = SegmentsManifest {
            generation,
            segments: Vec::with_capacity(groups.len()),
            ..self.manifest.clone()
        };
        for group in &groups {
            let (s, e) = *group;
            if !rewrite(group) {
                let Part::Existing {
                    slot,
                    deleted,
                    changed,
                } = &parts[s]
                else {
                    continue;
                };
                let mut entry = self.entry_of(*slot)?;
                if *changed {
                    entry.deletes = Some(self.write_deletes(&entry, deleted, generation)?);
                }
                next.segments.push(entry);
                continue;
            }
            let id = next.next_segment;
            next.next_segment += 1;
            let dir_name = segment_dir_name(id);
            let mut builder = IndexBuilder::new(self.dim()).reorder(self.reorder);
            if let Some(block_size) = self.block_size {
                builder = builder.block_size(block_size);
            }
            for part in &parts[s..e] {
                self.feed(part, &mut builder)?;
                if matches!(part, Part::Existing { .. }) {
                    summary.segments_merged += 1;
                }
            }
            let manifest = builder.write_arrays(&self.dir.join(&dir_name))?;
            summary.segments_written += 1;
            next.segments.push(SegmentEntry {
                id,
                dir: dir_name,
                deletes: None,
                manifest,
            });
        }
        format::sync_dir(&self.dir)?;

        // Open (and verify) the new state before it becomes visible: a failure here leaves
        // the previous state in place.
        let reuse: HashMap<String, Arc<Segment>> = self
            .index
            .slots()
            .iter()
            .map(|s| (s.dir.clone(), Arc::clone(&s.segment)))
            .collect();
        let index = Index::from_manifest(
            &self.dir,
            IndexManifest::Segments(next.clone()),
            &reuse,
            &OpenOptions::new(),
        )?;
        let bytes = next.to_bytes()?;
        self.check_unchanged()?;
        format::write_atomic(&self.dir, MANIFEST_FILE, &bytes)?;
        format::sync_dir(&self.dir)?;

        // Committed.
        self.manifest = next;
        self.manifest_bytes = bytes;
        self.index = index;
        self.rollback();
        // Leftovers are harmless and the next commit retries, so a failure to remove them
        // does not fail the commit.
        removed_files +=
            format::remove_unreferenced(&self.dir, &Referenced::of(&self.manifest)).unwrap_or(0);
        summary.generation = generation;
        summary.segments = self.index.num_segments();
        summary.live = self.index.len();
        summary.removed_files = removed_files;
        Ok(summary)
    }

    /// Errors when `manifest.json` is not the one this writer last read or wrote.
    fn check_unchanged(&self) -> Result<()> {
        let path = self.dir.join(MANIFEST_FILE);
        let current = format::read_manifest_bytes(&path)?;
        if current != self.manifest_bytes {
            return Err(IndexError::Conflict { path });
        }
        Ok(())
    }

    /// The existing segments with their new deletion sets (fully deleted ones dropped),
    /// then the added documents, if any.
    fn plan_parts(&self) -> Vec<Part> {
        let mut by_slot: Vec<Vec<u32>> = vec![Vec::new(); self.index.num_segments()];
        let slots = self.index.slots();
        for &d in &self.pending_deletes {
            let i = slots.partition_point(|s| s.base <= d);
            if let Some(j) = i.checked_sub(1) {
                by_slot[j].push(d - slots[j].base);
            }
        }
        let mut parts = Vec::new();
        for (i, (slot, new)) in slots.iter().zip(by_slot).enumerate() {
            let changed = !new.is_empty();
            let deleted = if changed {
                let mut all = slot.deleted.docs().to_vec();
                all.extend(new);
                DeleteSet::new(all, slot.segment.len())
            } else {
                slot.deleted.clone()
            };
            if deleted.len() < slot.segment.len() {
                parts.push(Part::Existing {
                    slot: i,
                    deleted,
                    changed,
                });
            }
        }
        if !self.pending_ids.is_empty() {
            parts.push(Part::Added);
        }
        parts
    }

    fn part_live(&self, part: &Part) -> usize {
        match part {
            Part::Existing { slot, deleted, .. } => {
                self.index.slots()[*slot].segment.len() - deleted.len()
            }
            Part::Added => self.pending_ids.len(),
        }
    }

    /// The manifest entry of the segment in `slot`.
    fn entry_of(&self, slot: usize) -> Result<SegmentEntry> {
        let dir = &self.index.slots()[slot].dir;
        self.manifest
            .segments
            .iter()
            .find(|e| &e.dir == dir)
            .cloned()
            .ok_or_else(|| {
                IndexError::corrupt(
                    self.dir.join(MANIFEST_FILE),
                    format!("segment '{dir}' is not in the manifest"),
                )
            })
    }

    /// Writes the deletion file of `entry`'s segment for `generation`.
    fn write_deletes(
        &self,
        entry: &SegmentEntry,
        deleted: &DeleteSet,
        generation: u64,
    ) -> Result<DeletesEntry> {
        let file = deletes_file_name(entry.id, generation);
        let bytes = deleted.encode(entry.manifest.num_docs as usize);
        format::write_atomic(&self.dir, &file, &bytes)?;
        Ok(DeletesEntry {
            file,
            count: deleted.len() as u64,
            size: bytes.len() as u64,
            crc32: format::crc32(&bytes),
        })
    }

    /// Adds a part's live documents to `builder`, in order.
    fn feed(&self, part: &Part, builder: &mut IndexBuilder) -> Result<()> {
        match part {
            Part::Existing { slot, deleted, .. } => {
                let slot = &self.index.slots()[*slot];
                let segment = &slot.segment;
                for local in 0..segment.len() as u32 {
                    if deleted.contains(local) {
                        continue;
                    }
                    let damaged = || {
                        IndexError::corrupt(
                            self.dir.join(&slot.dir),
                            format!("document {local} cannot be read"),
                        )
                    };
                    let id = segment.id(local).ok_or_else(damaged)?;
                    let (terms, values) = segment.document_slices(local).ok_or_else(damaged)?;
                    let view = SparseView::new(terms, values).map_err(|_| damaged())?;
                    builder.add(id, view)?;
                }
            }
            Part::Added => {
                for (id, vector) in self.pending.iter().flatten() {
                    builder.add(id, vector.view())?;
                }
            }
        }
        Ok(())
    }
}

/// Groups neighbouring parts (half-open ranges) so that at most `max` remain: while there
/// are more, the neighbouring pair with the fewest live documents between them (the first
/// such pair on ties) becomes one group.
fn merge_groups(live: &[usize], max: usize) -> Vec<(usize, usize)> {
    let mut groups: Vec<(usize, usize, usize)> = live
        .iter()
        .enumerate()
        .map(|(i, &n)| (i, i + 1, n))
        .collect();
    while groups.len() > max.max(1) {
        let Some(i) = (0..groups.len() - 1).min_by_key(|&i| groups[i].2 + groups[i + 1].2) else {
            break;
        };
        let (s, _, a) = groups[i];
        let (_, e, b) = groups.remove(i + 1);
        groups[i] = (s, e, a + b);
    }
    groups.into_iter().map(|(s, e, _)| (s, e)).collect()
}

// `IndexBuilder::write_over` lives here, not in `builder.rs`, so that the builder does
// not depend on the writer (which builds its segments with an `IndexBuilder`).
impl IndexBuilder {
    /// Like [`Self::write`], but an index already in `dir` is replaced: the new documents
    /// are committed as the index's only segment (a version-7 directory) by one manifest
    /// switch under the index's write lock, so searches opening the index during the
    /// rebuild, and a crash at any moment, see the old index or the new one, never neither.
    /// Files of the old index are removed after the switch; nothing else in `dir` is.
    pub fn write_over(self, dir: &Path) -> Result<Index> {
        match format::dir_state(dir)? {
            DirState::Missing | DirState::Empty => self.write_new(dir),
            DirState::Index => replace_index(dir, self.dim() as u64, |seg| self.write_arrays(seg)),
            state => Err(refusal(dir, state)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::merge_groups;

    #[test]
    fn merge_groups_joins_the_smallest_neighbours() {
        assert_eq!(
            merge_groups(&[5, 1, 1, 9], 10),
            vec![(0, 1), (1, 2), (2, 3), (3, 4)]
        );
        assert_eq!(merge_groups(&[5, 1, 1, 9], 3), vec![(0, 1), (1, 3), (3, 4)]);
        assert_eq!(merge_groups(&[5, 1, 1, 9], 2), vec![(0, 3), (3, 4)]);
        assert_eq!(merge_groups(&[5, 1, 1, 9], 1), vec![(0, 4)]);
        assert_eq!(merge_groups(&[], 1), vec![]);
    }
}
