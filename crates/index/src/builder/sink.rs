//! Where a build's output arrays go: vectors in memory ([`Sink::Memory`], for an index built
//! in memory) or files written as the arrays grow ([`FileSink`]: buffered, checksummed on
//! the way, synced when finished), so that a build written to disk never holds its large
//! arrays in memory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{IndexError, Result};
use crate::format::FileEntry;
use crate::storage::OwnedArray;

/// Bytes buffered per file before a write.
const BUFFER_BYTES: usize = 1 << 20;

/// A file written front to back, with its length and CRC32 kept on the way.
#[derive(Debug)]
pub(crate) struct FileSink {
    out: BufWriter<File>,
    path: PathBuf,
    crc: crc32fast::Hasher,
    size: u64,
}

impl FileSink {
    /// Creates (or truncates) `path`.
    pub(crate) fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(|e| IndexError::io(path, e))?;
        Ok(Self {
            out: BufWriter::with_capacity(BUFFER_BYTES, file),
            path: path.to_path_buf(),
            crc: crc32fast::Hasher::new(),
            size: 0,
        })
    }

    /// Appends `items` (native byte order: index files are little-endian, and the crate
    /// refuses big-endian platforms when reading).
    pub(crate) fn write<T: bytemuck::Pod>(&mut self, items: &[T]) -> Result<()> {
        let bytes: &[u8] = bytemuck::cast_slice(items);
        self.crc.update(bytes);
        self.size += bytes.len() as u64;
        self.out
            .write_all(bytes)
            .map_err(|e| IndexError::io(&self.path, e))
    }

    /// The path being written.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes the buffer (the file is readable afterwards) without syncing it.
    pub(crate) fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| IndexError::io(&self.path, e))
    }

    /// Flushes the file and syncs it in the background (the disk works while the build
    /// goes on); [`Synced::wait`] gives its size and checksum once it is durable.
    pub(crate) fn finish(self) -> Result<Synced> {
        let entry = FileEntry {
            size: self.size,
            crc32: self.crc.finalize(),
        };
        let file = self
            .out
            .into_inner()
            .map_err(|e| IndexError::io(&self.path, e.into_error()))?;
        let handle = std::thread::Builder::new()
            .name("splade-index-sync".into())
            .spawn(move || file.sync_all())
            .map_err(|e| IndexError::io(&self.path, e))?;
        Ok(Synced {
            entry,
            handle,
            path: self.path,
        })
    }
}

/// A written file being synced in the background.
#[derive(Debug)]
pub(crate) struct Synced {
    entry: FileEntry,
    handle: std::thread::JoinHandle<std::io::Result<()>>,
    path: PathBuf,
}

impl Synced {
    /// Waits until the file is durable; its size and checksum.
    pub(crate) fn wait(self) -> Result<FileEntry> {
        match self.handle.join() {
            Ok(Ok(())) => Ok(self.entry),
            Ok(Err(e)) => Err(IndexError::io(&self.path, e)),
            Err(_) => Err(IndexError::io(
                &self.path,
                std::io::Error::other("the thread syncing the file panicked"),
            )),
        }
    }
}

/// One output array of a build.
#[derive(Debug)]
pub(crate) enum Sink<T> {
    /// Kept in memory.
    Memory(Vec<T>),
    /// Written to a file as it grows.
    File(FileSink),
}

impl<T: bytemuck::Pod> Sink<T>
where
    OwnedArray: From<Vec<T>>,
{
    /// A sink to `dir/name` when `dir` is given, else in memory.
    pub(crate) fn new(dir: Option<&Path>, name: &str) -> Result<Self> {
        Ok(match dir {
            Some(dir) => Sink::File(FileSink::create(&dir.join(name))?),
            None => Sink::Memory(Vec::new()),
        })
    }

    /// Appends `items`.
    pub(crate) fn extend(&mut self, items: &[T]) -> Result<()> {
        match self {
            Sink::Memory(v) => {
                v.extend_from_slice(items);
                Ok(())
            }
            Sink::File(f) => f.write(items),
        }
    }

    /// Finishes the array (a file is flushed and synced in the background).
    pub(crate) fn finish(self) -> Result<Output> {
        Ok(match self {
            Sink::Memory(v) => Output::Array(OwnedArray::from(v)),
            Sink::File(f) => Output::File(f.finish()?),
        })
    }
}

/// An array that is either kept (as an [`OwnedArray`]) or already written.
#[derive(Debug)]
pub(crate) enum Output {
    /// In memory, to be written (or kept) by the caller.
    Array(OwnedArray),
    /// Written, being synced.
    File(Synced),
}
