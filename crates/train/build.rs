//! Records the versions the model card's "Framework Versions" lists: rustc, and the
//! `candle-core` and `tokenizers` versions `splade-encoder` resolved to in the workspace's
//! `Cargo.lock` ("unknown" when there is none, e.g. a build from a published crate).

use std::path::Path;
use std::process::Command;

/// The version of `package` that `dependent` uses, from a `Cargo.lock` text.
fn locked_version(lock: &str, dependent: &str, package: &str) -> Option<String> {
    let blocks: Vec<&str> = lock.split("[[package]]").collect();
    let field = |block: &str, key: &str| -> Option<String> {
        block.lines().find_map(|l| {
            l.strip_prefix(&format!("{key} = \""))
                .and_then(|r| r.strip_suffix('"'))
                .map(str::to_string)
        })
    };
    let dep_block = blocks
        .iter()
        .find(|b| field(b, "name").as_deref() == Some(dependent))?;
    // `"tokenizers 0.22.2"` when several versions are locked, else `"tokenizers"`.
    let entry = dep_block.lines().map(str::trim).find_map(|l| {
        let l = l.trim_end_matches(',').trim_matches('"');
        (l == package || l.starts_with(&format!("{package} "))).then(|| l.to_string())
    })?;
    if let Some((_, v)) = entry.split_once(' ') {
        return Some(v.to_string());
    }
    blocks
        .iter()
        .find(|b| field(b, "name").as_deref() == Some(package))
        .and_then(|b| field(b, "version"))
}

fn main() {
    // Read when the script runs (not baked in when it is compiled: a script binary reused
    // from a build of another checkout must still read this one's lock file).
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let lock_path = Path::new(&manifest_dir).join("../../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock_path.display());
    let lock = std::fs::read_to_string(&lock_path).unwrap_or_default();
    for (var, package) in [
        ("SPLADE_CANDLE_VERSION", "candle-core"),
        ("SPLADE_TOKENIZERS_VERSION", "tokenizers"),
    ] {
        let v = locked_version(&lock, "splade-encoder", package).unwrap_or("unknown".into());
        println!("cargo:rustc-env={var}={v}");
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SPLADE_RUSTC_VERSION={version}");
}
