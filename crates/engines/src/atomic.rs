//! Output files written atomically: a temporary file beside the target, written through a
//! buffer, synced, then renamed over the target (and the directory synced), so a crash or an
//! error leaves the previous file or the complete new one, never a part.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{EngineError, Result};

/// Writes `path` atomically with what `write` puts into the buffered writer it is given.
/// On any error the temporary file is removed and the target is left as it was.
pub fn write_atomic<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> Result<()>,
{
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| EngineError::Input(format!("{}: not a file name", path.display())))?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let file = File::create(&tmp).map_err(|e| EngineError::io(&tmp, e))?;
        let mut out = BufWriter::new(file);
        write(&mut out)?;
        out.flush().map_err(|e| EngineError::io(&tmp, e))?;
        let file = out
            .into_inner()
            .map_err(|e| EngineError::io(&tmp, e.into_error()))?;
        file.sync_all().map_err(|e| EngineError::io(&tmp, e))
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        EngineError::io(path, e)
    })?;
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, "old\n").unwrap();
        let err = write_atomic(&path, |w| {
            w.write_all(b"partial").unwrap();
            Err(EngineError::Input("stopped".into()))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        write_atomic(&path, |w| {
            w.write_all(b"new\n").map_err(|e| EngineError::io(&path, e))
        })
        .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
    }
}
