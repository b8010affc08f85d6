//! Reading small metadata files safely: a manifest, a configuration, a deletion file. Such a
//! file must be a regular file (a FIFO would block the reader forever, a device never end)
//! and no larger than a limit chosen for its kind, so a damaged or hostile folder cannot
//! hang a command or make it allocate without bound.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Limit for JSON metadata (manifests, model configurations): 64 MiB.
pub const MAX_METADATA_BYTES: u64 = 64 << 20;

/// Reads `path` whole, after checking that it is a regular file (symlinks are followed) of
/// at most `max_bytes` bytes. Errors are `io::Error`s whose message says what is wrong
/// (kind `InvalidInput` for a non-regular or oversized file); callers add the path.
pub fn read_regular_file(path: &Path, max_bytes: u64) -> io::Result<Vec<u8>> {
    // `metadata` does not open the file, so a FIFO is detected before it could block.
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a regular file ({})", file_kind(&meta)),
        ));
    }
    if meta.len() > max_bytes {
        return Err(too_large(meta.len(), max_bytes));
    }
    let file = File::open(path)?;
    // The file may have grown since `metadata`: never read more than the limit allows.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(bytes.len() as u64, max_bytes));
    }
    Ok(bytes)
}

/// [`read_regular_file`] decoded as UTF-8 (an `InvalidData` error otherwise).
pub fn read_regular_text(path: &Path, max_bytes: u64) -> io::Result<String> {
    String::from_utf8(read_regular_file(path, max_bytes)?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("not UTF-8: {e}")))
}

/// Checks that `path` can be read as a data stream: a regular file, a FIFO or a socket
/// (`<(cmd)`, `/dev/stdin` on a pipe) or a terminal, but not a directory or a device such
/// as `/dev/zero`, which would be read forever.
pub fn check_readable_stream(path: &Path) -> io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.is_file() || is_pipe_like(&meta) {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "not a regular file or a pipe ({}); give a file of data",
            file_kind(&meta)
        ),
    ))
}

fn too_large(len: u64, max: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{len} bytes, more than the {max} bytes such a file may have (damaged?)"),
    )
}

#[cfg(unix)]
fn is_pipe_like(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    t.is_fifo() || t.is_socket()
}

#[cfg(not(unix))]
fn is_pipe_like(_meta: &std::fs::Metadata) -> bool {
    false
}

/// A short name for what a path is, for error messages.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// Takes an exclusive advisory lock on `file` without waiting (`flock(LOCK_EX | LOCK_NB)`):
/// `Ok(false)` when another open file description holds it. The lock is released when
/// `file` is closed or its process ends (a crash included). Without `flock` (not Unix) it
/// always succeeds.
#[cfg(unix)]
pub fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    use std::os::raw::c_int;
    use std::os::unix::io::AsRawFd;
    extern "C" {
        fn flock(fd: c_int, operation: c_int) -> c_int;
    }
    const LOCK_EX: c_int = 2;
    const LOCK_NB: c_int = 4;
    // SAFETY: `flock` takes a descriptor and flags, no pointers; the descriptor belongs to
    // `file`, which outlives the call.
    if unsafe { flock(file.as_raw_fd(), LOCK_EX | LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Without `flock`, no lock is taken.
#[cfg(not(unix))]
pub fn try_lock_exclusive(_file: &File) -> io::Result<bool> {
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_small_regular_files_and_refuses_the_rest() {
        let dir = std::env::temp_dir().join(format!("splade-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.json");
        std::fs::write(&f, b"{\"a\": 1}").unwrap();
        assert_eq!(read_regular_file(&f, 100).unwrap(), b"{\"a\": 1}");
        let e = read_regular_file(&f, 3).unwrap_err();
        assert!(e.to_string().contains("more than the 3 bytes"), "{e}");
        let e = read_regular_file(&dir, 100).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        #[cfg(unix)]
        {
            let e = read_regular_file(Path::new("/dev/zero"), 100).unwrap_err();
            assert!(e.to_string().contains("character device"), "{e}");
            let e = check_readable_stream(Path::new("/dev/zero")).unwrap_err();
            assert!(e.to_string().contains("character device"), "{e}");
            let fifo = dir.join("fifo");
            let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            extern "C" {
                fn mkfifo(path: *const std::os::raw::c_char, mode: u32) -> i32;
            }
            // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
            assert_eq!(unsafe { mkfifo(c.as_ptr(), 0o600) }, 0);
            // Would block forever if it were opened.
            let e = read_regular_file(&fifo, 100).unwrap_err();
            assert!(e.to_string().contains("a FIFO"), "{e}");
            assert!(check_readable_stream(&fifo).is_ok());
        }
        assert!(check_readable_stream(&f).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
