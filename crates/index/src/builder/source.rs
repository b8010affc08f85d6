//! Where a build reads its documents from: slices in memory ([`InMemory`]) or the forward
//! files a [`crate::builder::DiskIndexBuilder`] has written ([`FileDocs`], read with
//! positioned reads, so the documents never occupy the process's memory beyond the chunk
//! being read: the page cache holds them, and the kernel may drop it under pressure).

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{IndexError, Result};
use crate::hint::prefetch_slice;

/// Documents `first..first + indptr.len() - 1`, read together.
pub(crate) struct Chunk<'b> {
    first: usize,
    indptr: &'b [u64],
    terms: &'b [u32],
    values: &'b [f32],
}

impl<'b> Chunk<'b> {
    /// Term ids and weights of document `d` (which must be in the chunk).
    pub(crate) fn doc(&self, d: usize) -> (&'b [u32], &'b [f32]) {
        let i = d - self.first;
        let base = self.indptr[0];
        let (s, e) = (
            (self.indptr[i] - base) as usize,
            (self.indptr[i + 1] - base) as usize,
        );
        (&self.terms[s..e], &self.values[s..e])
    }
}

/// Scratch space for reading a chunk that is not in memory.
#[derive(Debug, Default)]
pub(crate) struct DocBuf {
    terms: Vec<u32>,
    values: Vec<f32>,
}

/// Read access to a build's documents by number.
pub(crate) trait DocSource: Sync {
    /// The number of documents.
    fn len(&self) -> usize;
    /// The number of postings of document `d`.
    fn doc_len(&self, d: usize) -> usize;
    /// Documents `first..end`, read into `buf` when they are not in memory.
    fn chunk<'b>(&'b self, first: usize, end: usize, buf: &'b mut DocBuf) -> Result<Chunk<'b>>;
    /// Hints that document `d` is read soon (sources in memory fetch its first cache
    /// lines; no effect on what is read).
    fn prefetch(&self, _d: usize) {}
}

/// Documents held in memory as forward arrays.
pub(crate) struct InMemory<'a> {
    pub indptr: &'a [u64],
    pub terms: &'a [u32],
    pub values: &'a [f32],
}

impl DocSource for InMemory<'_> {
    fn len(&self) -> usize {
        self.indptr.len() - 1
    }

    fn doc_len(&self, d: usize) -> usize {
        (self.indptr[d + 1] - self.indptr[d]) as usize
    }

    fn chunk<'b>(&'b self, first: usize, end: usize, _: &'b mut DocBuf) -> Result<Chunk<'b>> {
        let indptr = &self.indptr[first..=end];
        let (s, e) = (indptr[0] as usize, indptr[end - first] as usize);
        Ok(Chunk {
            first,
            indptr,
            terms: &self.terms[s..e],
            values: &self.values[s..e],
        })
    }

    fn prefetch(&self, d: usize) {
        if let (Some(&s), Some(&e)) = (self.indptr.get(d), self.indptr.get(d + 1)) {
            let (s, e) = (s as usize, e as usize);
            if let (Some(terms), Some(values)) = (self.terms.get(s..e), self.values.get(s..e)) {
                prefetch_slice(terms, PREFETCH_LINES);
                prefetch_slice(values, PREFETCH_LINES);
            }
        }
    }
}

/// Cache lines of each array [`InMemory::prefetch`] fetches for a document (16 hold 256
/// postings).
const PREFETCH_LINES: usize = 16;

/// Documents in forward files on disk (`forward.terms`, `forward.values`: u32 and f32,
/// little-endian), read with positioned reads.
pub(crate) struct FileDocs<'a> {
    indptr: &'a [u64],
    terms: (File, PathBuf),
    values: (File, PathBuf),
}

impl<'a> FileDocs<'a> {
    /// Opens the two files for reading; `indptr` gives the documents' offsets in them.
    pub(crate) fn open(indptr: &'a [u64], terms: &Path, values: &Path) -> Result<Self> {
        let open = |p: &Path| {
            File::open(p)
                .map(|f| (f, p.to_path_buf()))
                .map_err(|e| IndexError::io(p, e))
        };
        Ok(Self {
            indptr,
            terms: open(terms)?,
            values: open(values)?,
        })
    }
}

/// Fills `buf` from `file` at byte `offset`.
fn read_at(file: &(File, PathBuf), buf: &mut [u8], offset: u64) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.0
            .read_exact_at(buf, offset)
            .map_err(|e| IndexError::io(&file.1, e))
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        let mut done = 0;
        while done < buf.len() {
            match file.0.seek_read(&mut buf[done..], offset + done as u64) {
                Ok(0) => {
                    return Err(IndexError::io(
                        &file.1,
                        std::io::ErrorKind::UnexpectedEof.into(),
                    ))
                }
                Ok(n) => done += n,
                Err(e) => return Err(IndexError::io(&file.1, e)),
            }
        }
        Ok(())
    }
}

impl DocSource for FileDocs<'_> {
    fn len(&self) -> usize {
        self.indptr.len() - 1
    }

    fn doc_len(&self, d: usize) -> usize {
        (self.indptr[d + 1] - self.indptr[d]) as usize
    }

    fn chunk<'b>(&'b self, first: usize, end: usize, buf: &'b mut DocBuf) -> Result<Chunk<'b>> {
        let indptr = &self.indptr[first..=end];
        let (s, e) = (indptr[0], indptr[end - first]);
        let n = (e - s) as usize;
        buf.terms.resize(n, 0);
        buf.values.resize(n, 0.0);
        read_at(&self.terms, bytemuck::cast_slice_mut(&mut buf.terms), s * 4)?;
        read_at(
            &self.values,
            bytemuck::cast_slice_mut(&mut buf.values),
            s * 4,
        )?;
        Ok(Chunk {
            first,
            indptr,
            terms: &buf.terms,
            values: &buf.values,
        })
    }
}

/// Runs `f` on every chunk of at most `docs_per_chunk` consecutive documents, in parallel,
/// and returns the results in document order.
pub(crate) fn map_chunks<T: Send>(
    src: &dyn DocSource,
    docs_per_chunk: usize,
    f: impl Fn(&Chunk<'_>, std::ops::Range<usize>) -> T + Sync,
) -> Result<Vec<T>> {
    use rayon::prelude::*;
    let n = src.len();
    let step = docs_per_chunk.max(1);
    (0..n.div_ceil(step))
        .into_par_iter()
        .map_init(DocBuf::default, |buf, c| {
            let (first, end) = (c * step, ((c + 1) * step).min(n));
            let chunk = src.chunk(first, end, buf)?;
            Ok(f(&chunk, first..end))
        })
        .collect()
}
