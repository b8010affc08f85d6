//! The bytes behind an index file: a read-only memory map of the file on disk, a copy of it
//! read into anonymous memory (on huge pages where the system allows: [`Residency`]), or an
//! owned, naturally aligned array built in memory. Typed views never panic: a length or alignment
//! that does not fit the element type is reported at load time (see `validate`) and reads
//! as an empty slice afterwards.

use std::fs::File;
use std::path::Path;

use memmap2::{Mmap, MmapMut};

use crate::error::{IndexError, Result};

/// Where an opened index's files live ([`crate::OpenOptions::residency`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Residency {
    /// Memory-mapped from disk (the default): opening costs no reading, the page cache holds
    /// what searches touch (shared between processes, dropped under memory pressure).
    #[default]
    Mapped,
    /// Read into the process's own memory when opened, asking the system for transparent
    /// huge pages (Linux `MADV_HUGEPAGE`; a hint, ignored where huge pages are off). A search
    /// reads its blocks at random places of a large index: with 2 MiB pages instead of 4 KiB
    /// ones those reads miss the address translation cache far less often. Costs the index's
    /// size in process memory and the time to read it at open.
    Memory,
}

/// An owned array, kept in its element type so that typed views are always aligned.
#[derive(Debug)]
pub(crate) enum OwnedArray {
    U8(Vec<u8>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    F32(Vec<f32>),
}

macro_rules! owned_from {
    ($($t:ty => $v:ident),*) => {$(
        impl From<Vec<$t>> for OwnedArray {
            fn from(v: Vec<$t>) -> Self {
                OwnedArray::$v(v)
            }
        }
    )*};
}
owned_from!(u8 => U8, u32 => U32, u64 => U64, f32 => F32);

/// The contents of one index file.
#[derive(Debug)]
pub(crate) enum Bytes {
    /// A read-only memory map (files of non-zero length).
    Mapped(Mmap),
    /// An array built in memory, or an empty file.
    Owned(OwnedArray),
}

impl Bytes {
    /// Opens `path` as `residency` says ([`Self::map`] or [`Self::load`]).
    pub(crate) fn open(path: &Path, residency: Residency) -> Result<Self> {
        match residency {
            Residency::Mapped => Self::map(path),
            Residency::Memory => Self::load(path),
        }
    }

    /// Reads `path` into anonymous memory advised for transparent huge pages (see
    /// [`Residency::Memory`]), then makes that memory read-only. An empty file becomes an empty
    /// owned array.
    pub(crate) fn load(path: &Path) -> Result<Self> {
        use std::io::Read;
        let (mut file, len) = open_regular(path)?;
        if len == 0 {
            return Ok(Bytes::Owned(OwnedArray::U8(Vec::new())));
        }
        let len = usize::try_from(len).map_err(|_| {
            IndexError::io(
                path,
                std::io::Error::other("the file is larger than this platform's address space"),
            )
        })?;
        let mut memory = MmapMut::map_anon(len).map_err(|e| IndexError::io(path, e))?;
        // A hint: refused (and harmless) where transparent huge pages are disabled.
        #[cfg(target_os = "linux")]
        let _ = memory.advise(memmap2::Advice::HugePage);
        // A file cut short meanwhile is an error here, never a silent tail of zeros.
        file.read_exact(&mut memory[..])
            .map_err(|e| IndexError::io(path, e))?;
        let memory = memory
            .make_read_only()
            .map_err(|e| IndexError::io(path, e))?;
        Ok(Bytes::Mapped(memory))
    }

    /// Maps `path` read-only. An empty file becomes an empty owned array (mapping zero bytes
    /// fails on some platforms).
    pub(crate) fn map(path: &Path) -> Result<Self> {
        let (file, len) = open_regular(path)?;
        if len == 0 {
            return Ok(Bytes::Owned(OwnedArray::U8(Vec::new())));
        }
        // SAFETY: the map is read-only and private to this process. Like every memory-mapped
        // reader, we rely on index files not being truncated or rewritten in place while they
        // are open; the writer of this crate never does that (it writes new files and renames
        // them over the old ones, which leaves existing maps intact).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| IndexError::io(path, e))?;
        Ok(Bytes::Mapped(map))
    }

    /// Maps every page of a mapped file in one call, ahead of a pass that reads all of it
    /// (checksums on open): one system call instead of a page fault a 4 KiB page (on the
    /// flat 1M collection's 2.5 GB, 640k faults). A no-op for owned bytes, and where the
    /// kernel lacks `MADV_POPULATE_READ` (Linux 5.14) or the platform is not Linux: the pages
    /// then fault in as they are read, as before.
    pub(crate) fn populate(&self) {
        #[cfg(target_os = "linux")]
        if let Bytes::Mapped(map) = self {
            let _ = map.advise(memmap2::Advice::PopulateRead);
        }
    }

    /// The raw bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(OwnedArray::U8(v)) => v,
            Bytes::Owned(OwnedArray::U32(v)) => bytemuck::cast_slice(v),
            Bytes::Owned(OwnedArray::U64(v)) => bytemuck::cast_slice(v),
            Bytes::Owned(OwnedArray::F32(v)) => bytemuck::cast_slice(v),
        }
    }

    /// The bytes as a slice of `T`, or `None` when the length or alignment does not fit
    /// (or the platform is big-endian: index files are little-endian).
    pub(crate) fn try_typed<T: bytemuck::Pod>(&self) -> Option<&[T]> {
        if cfg!(target_endian = "big") && std::mem::size_of::<T>() > 1 {
            return None;
        }
        let bytes = self.bytes();
        if bytes.is_empty() {
            // An empty file (e.g. no postings at all) may come with a dangling, unaligned
            // pointer, which bytemuck rejects; it is simply zero elements.
            return Some(&[]);
        }
        bytemuck::try_cast_slice(bytes).ok()
    }

    /// The bytes as a slice of `T`; empty when [`Self::try_typed`] fails (which `validate`
    /// rules out before an index is handed out).
    pub(crate) fn typed<T: bytemuck::Pod>(&self) -> &[T] {
        self.try_typed().unwrap_or(&[])
    }
}

/// Opens `path`, which must be a regular file, and its length.
fn open_regular(path: &Path) -> Result<(File, u64)> {
    // Checked before opening: opening a FIFO would block, and a device has no size.
    let meta = std::fs::metadata(path).map_err(|e| IndexError::io(path, e))?;
    if !meta.is_file() {
        return Err(IndexError::corrupt(path, "not a regular file"));
    }
    let file = File::open(path).map_err(|e| IndexError::io(path, e))?;
    let len = file.metadata().map_err(|e| IndexError::io(path, e))?.len();
    Ok((file, len))
}
