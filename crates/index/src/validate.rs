//! Structural validation of an index's arrays. Once it passes, every offset is monotone and
//! in range, every term id is `< dim`, every block position is inside its block and every
//! weight is finite and non-negative, so search code may index the arrays directly without
//! risking a panic. The passes over large arrays run in parallel (rayon); each reports the
//! first fault in array order, as a sequential pass would.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{IndexError, Result};
use crate::format::{FileId, Manifest};
use crate::storage::Bytes;

/// Where a file lives (for error messages): its path, or `<memory>/name` for an index built
/// in memory.
pub(crate) fn file_path(dir: Option<&Path>, id: FileId) -> PathBuf {
    match dir {
        Some(d) => d.join(id.name()),
        None => Path::new("<memory>").join(id.name()),
    }
}

struct Checker<'a> {
    dir: Option<&'a Path>,
    files: &'a [Bytes],
}

impl<'a> Checker<'a> {
    fn err(&self, id: FileId, reason: impl Into<String>) -> IndexError {
        IndexError::corrupt(file_path(self.dir, id), reason)
    }

    fn typed<T: bytemuck::Pod>(&self, id: FileId) -> Result<&'a [T]> {
        let bytes = self
            .files
            .get(id.slot())
            .ok_or_else(|| self.err(id, "file missing"))?;
        bytes.try_typed().ok_or_else(|| {
            self.err(
                id,
                format!(
                    "size {} is not a whole number of {}-byte little-endian elements",
                    bytes.bytes().len(),
                    std::mem::size_of::<T>()
                ),
            )
        })
    }

    /// An offsets array: `len` entries, starting at 0, non-decreasing, ending at `end`.
    fn offsets(&self, id: FileId, len: usize, end: usize) -> Result<&'a [u64]> {
        self.offsets_of(id, len, end)
    }

    /// [`Self::offsets`] for offsets of any unsigned width.
    fn offsets_of<T>(&self, id: FileId, len: usize, end: usize) -> Result<&'a [T]>
    where
        T: bytemuck::Pod + Into<u64> + PartialOrd,
    {
        let offs: &[T] = self.typed(id)?;
        if offs.len() != len {
            return Err(self.err(id, format!("{} entries, expected {len}", offs.len())));
        }
        if offs.first().map(|&o| o.into()) != Some(0) {
            return Err(self.err(id, "first offset is not 0"));
        }
        if let Some(p) = offs.windows(2).position(|w| w[0] > w[1]) {
            return Err(self.err(id, format!("offsets decrease at entry {}", p + 1)));
        }
        if offs.last().map(|&o| o.into()) != Some(end as u64) {
            return Err(self.err(id, format!("last offset is not {end}")));
        }
        Ok(offs)
    }

    fn weights(&self, id: FileId, len: usize) -> Result<&'a [f32]> {
        let v: &[f32] = self.typed(id)?;
        if v.len() != len {
            return Err(self.err(id, format!("{} entries, expected {len}", v.len())));
        }
        if let Some(p) = first_in_chunks(v.len(), |i| {
            !(0.0..=crate::format::MAX_WEIGHT).contains(&v[i])
        }) {
            return Err(self.err(
                id,
                format!(
                    "entry {p} ({}) is negative, not finite or above the largest weight {:e}",
                    v[p],
                    crate::format::MAX_WEIGHT
                ),
            ));
        }
        Ok(v)
    }

    /// Within each range of `offs`, `items` strictly ascend and stay below `limit`; the
    /// ranges are checked in parallel, the first faulty one reported.
    fn ascending_runs<O, T>(
        &self,
        id: FileId,
        offs: &[O],
        items: &[T],
        limit: impl Fn(usize) -> u64 + Sync,
    ) -> Result<()>
    where
        O: Copy + Into<u64> + Sync,
        T: Copy + PartialOrd + Into<u64> + Sync,
    {
        let runs = offs.len().saturating_sub(1);
        let fault = first_map_in_chunks(runs, |r| run_fault(r, &offs[r..r + 2], items, &limit));
        match fault {
            Some(reason) => Err(self.err(id, reason)),
            None => Ok(()),
        }
    }
}

/// What is wrong with run `r` (`items[w[0]..w[1]]`), if anything: not strictly ascending,
/// or its last item not below `limit(r)`.
fn run_fault<O, T>(r: usize, w: &[O], items: &[T], limit: impl Fn(usize) -> u64) -> Option<String>
where
    O: Copy + Into<u64>,
    T: Copy + PartialOrd + Into<u64>,
{
    let run = &items[w[0].into() as usize..w[1].into() as usize];
    if run.windows(2).any(|p| p[0] >= p[1]) {
        return Some(format!("run {r} is not strictly ascending"));
    }
    match run.last() {
        Some(&last) if last.into() >= limit(r) => {
            Some(format!("run {r} has an entry out of range"))
        }
        _ => None,
    }
}

/// Checks every array of an index against the manifest and each other.
pub(crate) fn validate(manifest: &Manifest, files: &[Bytes], dir: Option<&Path>) -> Result<()> {
    let c = Checker { dir, files };
    if files.len() != FileId::ALL.len() {
        return Err(IndexError::InvalidArgument(format!(
            "expected {} index files, got {}",
            FileId::ALL.len(),
            files.len()
        )));
    }
    let manifest_err = |reason: String| {
        let path = dir.map_or_else(
            || PathBuf::from("<memory>/manifest.json"),
            |d| d.join(crate::format::MANIFEST_FILE),
        );
        IndexError::corrupt(path, reason)
    };
    if !(1..=crate::format::MAX_BLOCK_SIZE as u32).contains(&manifest.block_size) {
        return Err(manifest_err(format!(
            "block size {} is not in 1..=256",
            manifest.block_size
        )));
    }
    if manifest.dim > u64::from(u32::MAX) + 1 || manifest.num_docs >= u64::from(u32::MAX) {
        return Err(manifest_err("dimension or document count too large".into()));
    }
    let to_usize = |v: u64| {
        usize::try_from(v).map_err(|_| manifest_err(format!("{v} does not fit this platform")))
    };
    let n = to_usize(manifest.num_docs)?;
    let dim = to_usize(manifest.dim)?;
    let nnz = to_usize(manifest.nnz)?;
    let bs = manifest.block_size as usize;
    let nb = n.div_ceil(bs);
    for id in FileId::ALL {
        let expected = manifest.entry(id).map(|e| e.size);
        let actual = files[id.slot()].bytes().len() as u64;
        if expected != Some(actual) {
            return Err(c.err(
                id,
                format!(
                    "size {actual} bytes, manifest says {}",
                    expected.map_or_else(|| "nothing".into(), |s| s.to_string())
                ),
            ));
        }
    }

    // Forward index.
    let indptr = c.offsets(FileId::ForwardIndptr, n + 1, nnz)?;
    let terms: &[u32] = c.typed(FileId::ForwardTerms)?;
    if terms.len() != nnz {
        return Err(c.err(FileId::ForwardTerms, format!("expected {nnz} entries")));
    }
    c.weights(FileId::ForwardValues, nnz)?;
    c.ascending_runs(FileId::ForwardTerms, indptr, terms, |_| dim as u64)?;

    // Ids.
    let id_data: &[u8] = c.typed(FileId::IdData)?;
    let id_offs = c.offsets(FileId::IdOffsets, n + 1, id_data.len())?;
    let bad_id = first_in_chunks(id_offs.len().saturating_sub(1), |d| {
        let raw = &id_data[id_offs[d] as usize..id_offs[d + 1] as usize];
        raw.is_empty() || std::str::from_utf8(raw).is_err()
    });
    if let Some(d) = bad_id {
        return Err(c.err(
            FileId::IdData,
            format!("id of document {d} is empty or not UTF-8"),
        ));
    }

    // Block forward index: per block its range of entries.
    if nnz > crate::format::MAX_SEGMENT_POSTINGS {
        return Err(manifest_err(format!(
            "{nnz} postings, more than a segment holds ({})",
            crate::format::MAX_SEGMENT_POSTINGS
        )));
    }
    let block_offsets = c.offsets(FileId::BlockOffsets, nb + 1, nnz)?;
    let entry_docs: &[u8] = c.typed(FileId::BlockEntryDocs)?;
    if entry_docs.len() != nnz {
        return Err(c.err(FileId::BlockEntryDocs, format!("expected {nnz} entries")));
    }
    c.weights(FileId::BlockEntryValues, nnz)?;

    // Block maxima.
    let bound_blocks: &[u32] = c.typed(FileId::BoundBlocks)?;
    // Terms after the last one that occurs are not stored (an index of a large dimension
    // stays small).
    let stored_terms = c
        .typed::<u64>(FileId::BoundOffsets)?
        .len()
        .saturating_sub(1);
    if stored_terms > dim {
        return Err(c.err(
            FileId::BoundOffsets,
            format!(
                "{} entries, more than dimension {dim} + 1",
                stored_terms + 1
            ),
        ));
    }
    let bo = c.offsets(FileId::BoundOffsets, stored_terms + 1, bound_blocks.len())?;
    c.ascending_runs(FileId::BoundBlocks, bo, bound_blocks, |_| nb as u64)?;
    let pairs = bound_blocks.len();
    let codes: &[u8] = c.typed(FileId::BoundCodes)?;
    let starts: &[u32] = c.typed(FileId::BoundStarts)?;
    let lengths: &[u8] = c.typed(FileId::BoundLengths)?;
    for (id, len) in [
        (FileId::BoundCodes, codes.len()),
        (FileId::BoundStarts, starts.len()),
        (FileId::BoundLengths, lengths.len()),
    ] {
        if len != pairs {
            return Err(c.err(id, format!("expected {pairs} entries")));
        }
    }
    c.weights(FileId::BoundScales, stored_terms)?;
    check_pair_entries(
        &c,
        n,
        bs,
        block_offsets,
        bound_blocks,
        starts,
        lengths,
        entry_docs,
    )?;

    // Block positions -> document numbers: a permutation of 0..n.
    let order: &[u32] = c.typed(FileId::DocOrder)?;
    if order.len() != n {
        return Err(c.err(FileId::DocOrder, format!("expected {n} entries")));
    }
    let mut seen = vec![false; n];
    for (p, &d) in order.iter().enumerate() {
        match seen.get_mut(d as usize) {
            Some(s) if !*s => *s = true,
            _ => {
                return Err(c.err(
                    FileId::DocOrder,
                    format!("entry {p} ({d}) is out of range or repeated"),
                ))
            }
        }
    }
    Ok(())
}

/// The entries of every (term, block) pair of the lists (`bounds.starts`, `bounds.lengths`)
/// lie inside their block's range of entries (`blocks.offsets`), hold strictly ascending
/// positions inside the block, and cover every entry exactly once (pairs in parallel, the
/// first faulty one in list order reported; an entry claimed twice is reported by one of
/// its pairs).
#[allow(clippy::too_many_arguments)]
fn check_pair_entries(
    c: &Checker<'_>,
    n: usize,
    bs: usize,
    block_offsets: &[u64],
    bound_blocks: &[u32],
    starts: &[u32],
    lengths: &[u8],
    entry_docs: &[u8],
) -> Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let nnz = entry_docs.len();
    let covered: Vec<AtomicU64> = (0..nnz.div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
    let fault = first_map_in_chunks(bound_blocks.len(), |p| {
        // Blocks were checked below the number of blocks.
        let b = bound_blocks[p] as usize;
        let (s, e) = (
            u64::from(starts[p]),
            u64::from(starts[p]) + u64::from(lengths[p]) + 1,
        );
        if s < block_offsets[b] || e > block_offsets[b + 1] {
            return Some((
                FileId::BoundStarts,
                format!("pair {p} points outside the entries of block {b}"),
            ));
        }
        let block_len = (n - b * bs).min(bs) as u64;
        if run_fault(p, &[s, e], entry_docs, |_| block_len).is_some() {
            return Some((
                FileId::BlockEntryDocs,
                format!("pair {p} (block {b}): positions not ascending inside the block"),
            ));
        }
        let (s, e) = (s as usize, e as usize);
        for (word, bits) in (s / 64..).zip(&covered[s / 64..e.div_ceil(64)]) {
            let (lo, hi) = ((word * 64).max(s), ((word + 1) * 64).min(e));
            let mask = (u64::MAX >> (64 - (hi - lo))) << (lo % 64);
            if bits.fetch_or(mask, Ordering::Relaxed) & mask != 0 {
                return Some((
                    FileId::BoundStarts,
                    format!("pair {p} claims entries another pair claims"),
                ));
            }
        }
        None
    });
    if let Some((id, reason)) = fault {
        return Err(c.err(id, reason));
    }
    // No entry claimed twice: every entry is claimed when the lengths add up.
    let claimed: u64 = lengths.par_iter().map(|&l| u64::from(l) + 1).sum();
    if claimed != nnz as u64 {
        return Err(c.err(
            FileId::BoundLengths,
            format!("the pairs hold {claimed} entries, the blocks {nnz}"),
        ));
    }
    Ok(())
}

/// Items a parallel check takes at a time.
const CHECK_CHUNK: usize = 1 << 16;

/// The first `i < len` for which `bad(i)`: chunks of [`CHECK_CHUNK`] checked in parallel,
/// each in order.
fn first_in_chunks(len: usize, bad: impl Fn(usize) -> bool + Sync) -> Option<usize> {
    first_map_in_chunks(len, |i| bad(i).then_some(i))
}

/// The first `Some` of `f(i)` for `i < len`, in index order: chunks of [`CHECK_CHUNK`]
/// checked in parallel, each in order.
fn first_map_in_chunks<R: Send>(len: usize, f: impl Fn(usize) -> Option<R> + Sync) -> Option<R> {
    (0..len.div_ceil(CHECK_CHUNK))
        .into_par_iter()
        .find_map_first(|c| (c * CHECK_CHUNK..((c + 1) * CHECK_CHUNK).min(len)).find_map(&f))
}
