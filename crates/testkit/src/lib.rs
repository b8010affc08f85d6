//! Test support shared by the workspace's test suites.
//!
//! The data sets in `../shared/data` are under research and non-commercial licences, so the
//! repository's fixtures do not copy their texts: a fixture stores a reference string
//! instead, written by `scripts/parity/shared_text.py`,
//!
//! ```text
//! @shared:<path>:<line>:<selector>[:<chars>]
//! ```
//!
//! - `<path>`: the file, relative to the shared data folder (`.gz` files read decompressed);
//! - `<line>`: its 1-based line;
//! - `<selector>`: `c<N>` the N-th (0-based) tab-separated column; `f.<name>` the JSON field
//!   `<name>`; `tt` the BEIR document text (`title + " " + text`, or `text` when the title is
//!   empty);
//! - `<chars>`: keep the first `<chars>` characters (Unicode scalar values).
//!
//! [`read_fixture`] reads a JSON fixture and replaces every reference by its text, so the
//! tests see exactly the texts the reference library saw when the fixture was generated.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

/// The prefix of a reference string.
pub const PREFIX: &str = "@shared:";

/// The shared data folder: `SPLADE_RS_SHARED_DATA`, or `../shared/data` beside the repository.
pub fn shared_data_dir() -> PathBuf {
    match std::env::var_os("SPLADE_RS_SHARED_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    }
}

/// Lines of the files read so far, by path.
fn cache() -> &'static Mutex<HashMap<PathBuf, std::sync::Arc<Vec<String>>>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, std::sync::Arc<Vec<String>>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn lines(path: &Path) -> Result<std::sync::Arc<Vec<String>>, String> {
    if let Some(lines) = cache().lock().unwrap().get(path) {
        return Ok(lines.clone());
    }
    let bytes =
        std::fs::read(path).map_err(|e| format!("shared data file {}: {e}", path.display()))?;
    let text = if path.extension().is_some_and(|e| e == "gz") {
        let mut out = String::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut out)
            .map_err(|e| format!("shared data file {}: {e}", path.display()))?;
        out
    } else {
        String::from_utf8(bytes).map_err(|e| format!("shared data file {}: {e}", path.display()))?
    };
    // Python's universal line split with `newline=""` and `rstrip("\r\n")`: split on '\n'
    // and drop a trailing '\r'.
    let lines: Vec<String> = text
        .split_inclusive('\n')
        .map(|l| l.trim_end_matches(['\r', '\n']).to_string())
        .collect();
    let lines = std::sync::Arc::new(lines);
    cache()
        .lock()
        .unwrap()
        .insert(path.to_path_buf(), lines.clone());
    Ok(lines)
}

/// The string a selector picks from one line.
fn select(line: &str, selector: &str) -> Option<String> {
    if let Some(field) = selector.strip_prefix("f.") {
        let record: Value = serde_json::from_str(line).ok()?;
        return record.get(field)?.as_str().map(str::to_string);
    }
    if selector == "tt" {
        let record: Value = serde_json::from_str(line).ok()?;
        let text = record.get("text")?.as_str()?;
        return Some(match record.get("title").and_then(Value::as_str) {
            Some(title) if !title.is_empty() => format!("{title} {text}"),
            _ => text.to_string(),
        });
    }
    let column: usize = selector.strip_prefix('c')?.parse().ok()?;
    line.split('\t').nth(column).map(str::to_string)
}

/// The text that one reference string names, read from `data`.
pub fn resolve_reference(reference: &str, data: &Path) -> Result<String, String> {
    let body = reference
        .strip_prefix(PREFIX)
        .ok_or_else(|| format!("{reference:?} is not a shared-data reference"))?;
    let parts: Vec<&str> = body.split(':').collect();
    let malformed = || format!("malformed shared-data reference {reference:?}");
    if !(3..=4).contains(&parts.len()) {
        return Err(malformed());
    }
    let line: usize = parts[1].parse().map_err(|_| malformed())?;
    let path = data.join(parts[0]);
    let lines = lines(&path)?;
    let text = line
        .checked_sub(1)
        .and_then(|i| lines.get(i))
        .ok_or_else(|| {
            format!(
                "{reference:?}: {} has {} lines",
                path.display(),
                lines.len()
            )
        })?;
    let mut out = select(text, parts[2]).ok_or_else(|| {
        format!(
            "{reference:?}: line {line} of {} has no {}",
            path.display(),
            parts[2]
        )
    })?;
    if let Some(chars) = parts.get(3) {
        let chars: usize = chars.parse().map_err(|_| malformed())?;
        out = out.chars().take(chars).collect();
    }
    Ok(out)
}

/// Replaces every reference string inside `value` by its text.
pub fn resolve(value: &mut Value, data: &Path) -> Result<(), String> {
    match value {
        Value::String(s) if s.starts_with(PREFIX) => *s = resolve_reference(s, data)?,
        Value::Array(items) => {
            for item in items {
                resolve(item, data)?;
            }
        }
        Value::Object(map) => {
            for item in map.values_mut() {
                resolve(item, data)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Reads a JSON fixture and resolves its shared-data references; panics with the file named
/// (these are tests).
pub fn read_fixture(path: impl AsRef<Path>) -> Value {
    let path = path.as_ref();
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    let mut value: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    resolve(&mut value, &shared_data_dir()).unwrap_or_else(|e| {
        panic!(
            "fixture {}: {e} (the shared data folder is {}; set SPLADE_RS_SHARED_DATA)",
            path.display(),
            shared_data_dir().display()
        )
    });
    value
}

/// Writes a stored BEIR subset (`{"corpus": [record...], "queries": [record...], "qrels":
/// [[query id, document id]...]}`, every pair relevant) as a BEIR folder under `dir`:
/// `corpus.jsonl`, `queries.jsonl`, `qrels/test.tsv`.
pub fn write_beir_folder(dir: &Path, data: &Value) {
    std::fs::create_dir_all(dir.join("qrels")).unwrap();
    let lines = |rows: &Value| -> String {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| format!("{r}\n"))
            .collect()
    };
    std::fs::write(dir.join("corpus.jsonl"), lines(&data["corpus"])).unwrap();
    std::fs::write(dir.join("queries.jsonl"), lines(&data["queries"])).unwrap();
    let mut qrels = String::from("query-id\tcorpus-id\tscore\n");
    for pair in data["qrels"].as_array().unwrap() {
        qrels.push_str(&format!(
            "{}\t{}\t1\n",
            pair[0].as_str().unwrap(),
            pair[1].as_str().unwrap()
        ));
    }
    std::fs::write(dir.join("qrels/test.tsv"), qrels).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> tempfile_dir::Dir {
        tempfile_dir::Dir::new()
    }

    /// A throw-away folder (no extra dependency for one test).
    mod tempfile_dir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                let p = std::env::temp_dir().join(format!(
                    "splade-testkit-{}-{:?}",
                    std::process::id(),
                    std::thread::current().id()
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn every_selector_resolves_and_bad_references_are_errors() {
        let dir = data();
        std::fs::write(
            dir.0.join("a.tsv"),
            "h1\th2\r\nfirst cell\tsecond cell été\r\n",
        )
        .unwrap();
        std::fs::write(
            dir.0.join("c.jsonl"),
            "{\"_id\": \"1\", \"title\": \"T\", \"text\": \"body text\"}\n{\"_id\": \"2\", \"title\": \"\", \"text\": \"only text\"}\n",
        )
        .unwrap();
        let r = |s: &str| resolve_reference(s, &dir.0);
        assert_eq!(r("@shared:a.tsv:2:c1").unwrap(), "second cell été");
        assert_eq!(r("@shared:a.tsv:2:c1:14").unwrap(), "second cell ét");
        assert_eq!(r("@shared:c.jsonl:1:tt").unwrap(), "T body text");
        assert_eq!(r("@shared:c.jsonl:2:tt").unwrap(), "only text");
        assert_eq!(r("@shared:c.jsonl:1:f._id").unwrap(), "1");
        assert!(r("@shared:a.tsv:3:c0").unwrap_err().contains("has 2 lines"));
        assert!(r("@shared:a.tsv:2:c9").unwrap_err().contains("has no c9"));
        assert!(r("@shared:a.tsv:x:c0").unwrap_err().contains("malformed"));
        assert!(r("@shared:missing.tsv:1:c0")
            .unwrap_err()
            .contains("missing.tsv"));
        let mut v = serde_json::json!({"a": ["@shared:a.tsv:2:c0", "literal"], "n": 1});
        resolve(&mut v, &dir.0).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": ["first cell", "literal"], "n": 1})
        );
    }

    #[test]
    fn the_committed_fixtures_resolve_against_the_shared_data() {
        // One reference of each kind the fixtures use, checked against the real files.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        let texts = read_fixture(root.join("encoder/texts.json"));
        let texts = texts.as_array().unwrap();
        assert!(texts.len() > 200);
        assert!(texts
            .iter()
            .all(|t| t.as_str().is_some_and(|s| !s.starts_with(PREFIX))));
    }
}
