//! Line outputs that survive a crash and can be resumed (`--resume`).
//!
//! A [`PartialOutput`] for the file `FILE` writes its lines to `FILE.part`, never to `FILE`
//! itself:
//!
//! - [`PartialOutput::checkpoint`] flushes and syncs what was written, so after a crash
//!   `FILE.part` holds every line up to the last checkpoint, possibly followed by more
//!   lines and a **torn last line** (a line without its `\n`, cut by the crash).
//! - [`PartialOutput::resume`] reopens `FILE.part`: every complete line is handed to a
//!   check (which can refuse a line that does not belong), the complete lines are kept up
//!   to a multiple of the caller's unit (the lines of an unfinished chunk are dropped, so
//!   the resumed run re-encodes that chunk whole, exactly as an uninterrupted run does), a
//!   torn last line is dropped with them (the file is truncated and synced), and writing
//!   continues after the kept lines. The caller skips that many records of its input, so
//!   the finished output has no duplicate and no gap.
//! - [`PartialOutput::finish`] syncs and renames `FILE.part` to `FILE` (atomic: `FILE` is
//!   complete or absent, never partial), or [`PartialOutput::discard`] removes it (for a
//!   checkpoint whose content went elsewhere, such as an index).
//!
//! While a `PartialOutput` is open it holds an exclusive lock on `FILE.part`, so two
//! processes never append to the same file.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// A line-by-line output written to `FILE.part` and renamed to `FILE` when complete.
#[derive(Debug)]
pub struct PartialOutput {
    path: PathBuf,
    part: PathBuf,
    out: BufWriter<File>,
    lines: usize,
}

/// What [`PartialOutput::resume`] found in `FILE.part`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resumed {
    /// Whether `FILE.part` existed (otherwise it was created empty).
    pub existed: bool,
    /// Complete lines kept (a multiple of the unit).
    pub lines: usize,
    /// Complete lines dropped because their unit was unfinished.
    pub dropped_lines: usize,
    /// Bytes of a torn last line that were dropped (0: the file ended with a `\n`).
    pub torn_bytes: u64,
}

/// `FILE.part` for `FILE`.
pub fn part_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens `part` for writing and locks it (an error when another process holds it).
fn open_locked(part: &Path, truncate: bool) -> Result<File> {
    let io = io_error(part);
    if let Some(parent) = part.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(part)
        .map_err(&io)?;
    if !splade_sparse::files::try_lock_exclusive(&file).map_err(&io)? {
        return Err(DataError::InvalidData(format!(
            "{}: another process is writing this file (a second run on the same shard?)",
            part.display()
        )));
    }
    if truncate {
        file.set_len(0).map_err(&io)?;
    }
    Ok(file)
}

impl PartialOutput {
    /// Starts `FILE.part` afresh (an earlier one is emptied).
    pub fn create(path: &Path) -> Result<Self> {
        let part = part_path(path);
        let file = open_locked(&part, true)?;
        Ok(Self {
            path: path.to_path_buf(),
            part,
            out: BufWriter::new(file),
            lines: 0,
        })
    }

    /// Reopens `FILE.part` after an interruption (or starts it when there is none): hands
    /// each complete line (1-based number, text without the `\n`) to `check`, whose error
    /// message is reported with the file and line; keeps the complete lines up to a
    /// multiple of `unit` (0 counts as 1), dropping the rest and a torn last line; appends
    /// after the kept lines. A line that is not UTF-8 is an error.
    pub fn resume(
        path: &Path,
        unit: usize,
        mut check: impl FnMut(usize, &str) -> std::result::Result<(), String>,
    ) -> Result<(Self, Resumed)> {
        let part = part_path(path);
        let existed = part.exists();
        let mut file = open_locked(&part, false)?;
        let io = io_error(&part);
        let len = file.metadata().map_err(&io)?.len();
        let mut reader = BufReader::new(&file);
        let mut line = Vec::new();
        let unit = unit.max(1);
        // Complete lines and their bytes; the same at the last multiple of `unit`.
        let (mut lines, mut end) = (0usize, 0u64);
        let (mut kept_lines, mut kept) = (0usize, 0u64);
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(&io)?;
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            lines += 1;
            let parse = |message: String| DataError::Parse {
                path: part.clone(),
                line: lines,
                message,
            };
            let text = std::str::from_utf8(&line[..n - 1])
                .map_err(|e| parse(format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
            check(lines, text).map_err(parse)?;
            end += n as u64;
            if lines % unit == 0 {
                (kept_lines, kept) = (lines, end);
            }
        }
        drop(reader);
        if kept < len {
            file.set_len(kept).map_err(&io)?;
            file.sync_all().map_err(&io)?;
        }
        file.seek(SeekFrom::Start(kept)).map_err(&io)?;
        drop(io);
        let resumed = Resumed {
            existed,
            lines: kept_lines,
            dropped_lines: lines - kept_lines,
            torn_bytes: len - end,
        };
        Ok((
            Self {
                path: path.to_path_buf(),
                part,
                out: BufWriter::new(file),
                lines: kept_lines,
            },
            resumed,
        ))
    }

    /// The final path `FILE`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file written, `FILE.part`.
    pub fn part(&self) -> &Path {
        &self.part
    }

    /// Lines in the output so far (kept ones included).
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// Appends one line; `line` must not hold a `\n` (one is added).
    pub fn write_line(&mut self, line: &[u8]) -> Result<()> {
        if line.contains(&b'\n') {
            return Err(DataError::InvalidData(format!(
                "{}: line {} would hold a newline",
                self.part.display(),
                self.lines + 1
            )));
        }
        let io = io_error(&self.part);
        self.out.write_all(line).map_err(&io)?;
        self.out.write_all(b"\n").map_err(&io)?;
        self.lines += 1;
        Ok(())
    }

    /// Flushes and syncs: every line written so far survives a crash.
    pub fn checkpoint(&mut self) -> Result<()> {
        let io = io_error(&self.part);
        self.out.flush().map_err(&io)?;
        self.out.get_ref().sync_data().map_err(&io)
    }

    /// Syncs `FILE.part` and renames it to `FILE` (replacing it), then syncs the folder.
    pub fn finish(mut self) -> Result<PathBuf> {
        self.checkpoint()?;
        std::fs::rename(&self.part, &self.path).map_err(io_error(&self.path))?;
        sync_parent(&self.path);
        Ok(self.path)
    }

    /// Removes `FILE.part` (its lines are no longer needed).
    pub fn discard(self) -> Result<()> {
        let Self { part, out, .. } = self;
        drop(out);
        std::fs::remove_file(&part).map_err(io_error(&part))?;
        sync_parent(&part);
        Ok(())
    }
}

/// Syncs the folder holding `path`, so a rename or removal in it is durable (best effort:
/// some platforms cannot open folders).
fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(parent) {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, lines: &[&str]) -> PartialOutput {
        let mut out = PartialOutput::create(path).unwrap();
        for l in lines {
            out.write_line(l.as_bytes()).unwrap();
        }
        out.checkpoint().unwrap();
        out
    }

    #[test]
    fn a_finished_output_is_renamed_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let out = write(&path, &["a", "b"]);
        assert!(!path.exists());
        assert_eq!(out.finish().unwrap(), path);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nb\n");
        assert!(!part_path(&path).exists());
    }

    #[test]
    fn resume_keeps_complete_lines_and_drops_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        drop(write(&path, &["one", "two"]));
        let part = part_path(&path);
        let mut f = OpenOptions::new().append(true).open(&part).unwrap();
        f.write_all(b"thr").unwrap();
        drop(f);
        let mut seen = Vec::new();
        let (mut out, r) = PartialOutput::resume(&path, 1, |n, l| {
            seen.push((n, l.to_string()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![(1, "one".into()), (2, "two".into())]);
        assert_eq!(
            r,
            Resumed {
                existed: true,
                lines: 2,
                dropped_lines: 0,
                torn_bytes: 3
            }
        );
        out.write_line(b"three").unwrap();
        assert_eq!(out.lines(), 3);
        out.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\nthree\n");
    }

    #[test]
    fn resume_keeps_whole_units_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        drop(write(&path, &["1", "2", "3", "4", "5"]));
        let (out, r) = PartialOutput::resume(&path, 2, |_, _| Ok(())).unwrap();
        assert_eq!((r.lines, r.dropped_lines, r.torn_bytes), (4, 1, 0));
        assert_eq!(out.lines(), 4);
        out.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n2\n3\n4\n");
    }

    #[test]
    fn resume_without_a_part_file_starts_one_and_checks_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.jsonl");
        let (out, r) = PartialOutput::resume(&path, 1, |_, _| Ok(())).unwrap();
        assert!(!r.existed && r.lines == 0 && r.torn_bytes == 0);
        drop(out);
        drop(write(&path, &["ok", "bad"]));
        let e = PartialOutput::resume(&path, 1, |_, l| {
            if l == "bad" {
                Err("not ours".into())
            } else {
                Ok(())
            }
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("v.jsonl.part: line 2: not ours"), "{e}");
    }

    #[test]
    fn a_second_writer_is_refused_and_discard_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.jsonl");
        let out = write(&path, &["x"]);
        let e = PartialOutput::resume(&path, 1, |_, _| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("another process is writing"), "{e}");
        out.discard().unwrap();
        assert!(!part_path(&path).exists() && !path.exists());
    }
}
