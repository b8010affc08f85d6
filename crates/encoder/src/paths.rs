//! Keeping every path read from a model folder inside that folder: module paths from
//! `modules.json` may not climb out (`..`, absolute paths), and files or folders that are
//! symlinks must resolve inside the folder. The one exception is the Hugging Face Hub cache,
//! whose snapshot folders hold symlinks into the repository's `blobs/` folder.

use std::path::{Component, Path, PathBuf};

use crate::error::{EncoderError, Result};

fn outside(path: &Path, root: &Path, detail: String) -> EncoderError {
    EncoderError::OutsideModelFolder {
        path: path.to_path_buf(),
        root: root.to_path_buf(),
        detail,
    }
}

/// Where symlinks of a folder may lead besides the folder itself: the `blobs/` folder of a
/// Hugging Face Hub cache repository when `root` is one of its `snapshots/<revision>` folders.
fn hub_blobs(canonical_root: &Path) -> Option<PathBuf> {
    let snapshots = canonical_root.parent()?;
    if snapshots.file_name()? != "snapshots" {
        return None;
    }
    let repo = snapshots.parent()?;
    let blobs = repo.join("blobs");
    blobs.is_dir().then_some(blobs)
}

/// Checks that `path` (an existing file or folder under `root`) resolves inside `root` once
/// symlinks are followed. A path that does not exist passes (its reader reports it missing).
pub(crate) fn check_inside(root: &Path, path: &Path) -> Result<()> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    let canonical_root = root.canonicalize().map_err(|source| EncoderError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    let resolved = match path.canonicalize() {
        Ok(p) => p,
        // A dangling symlink: reading it fails with "not found" later.
        Err(_) => return Ok(()),
    };
    if resolved.starts_with(&canonical_root) {
        return Ok(());
    }
    // Hub cache snapshot files are symlinks to `../../blobs/<hash>`: files only.
    if let Some(blobs) = hub_blobs(&canonical_root) {
        if resolved.starts_with(&blobs) && resolved.is_file() {
            return Ok(());
        }
    }
    Err(outside(
        path,
        root,
        format!(" (it resolves to {})", resolved.display()),
    ))
}

/// The folder a `modules.json` entry names: a relative path without `..` that stays inside
/// `root`. `field` names the entry in messages.
pub(crate) fn module_dir(
    root: &Path,
    raw: &str,
    modules_path: &Path,
    field: &str,
) -> Result<PathBuf> {
    let relative = Path::new(raw);
    let climbs = relative.components().any(|c| {
        matches!(
            c,
            Component::ParentDir | Component::RootDir | Component::Prefix(_)
        )
    });
    if climbs {
        return Err(outside(
            relative,
            root,
            format!(
                " (module path '{raw}' in {}, field '{field}': module paths must be relative, without '..')",
                modules_path.display()
            ),
        ));
    }
    let dir = root.join(relative);
    check_inside(root, &dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_inside_pass_and_climbing_ones_fail() {
        let tmp = std::env::temp_dir().join(format!("splade-paths-{}", std::process::id()));
        let root = tmp.join("model");
        std::fs::create_dir_all(root.join("1_SpladePooling")).unwrap();
        let modules = root.join("modules.json");
        assert!(module_dir(&root, "1_SpladePooling", &modules, "[1].path").is_ok());
        assert!(module_dir(&root, "", &modules, "[0].path").is_ok());
        for bad in ["../other", "/etc", "a/../../b"] {
            let e = module_dir(&root, bad, &modules, "[1].path").unwrap_err();
            assert!(e.to_string().contains("outside the model folder"), "{e}");
        }
        #[cfg(unix)]
        {
            std::fs::create_dir_all(tmp.join("elsewhere")).unwrap();
            std::os::unix::fs::symlink(tmp.join("elsewhere"), root.join("link")).unwrap();
            let e = module_dir(&root, "link", &modules, "[1].path").unwrap_err();
            assert!(e.to_string().contains("resolves to"), "{e}");
        }
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
