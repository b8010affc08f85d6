//! Retrieval datasets in the Hugging Face parquet layout of NanoBEIR, read from a local folder
//! (a snapshot of a dataset repository: the `hf-hub` cache's `snapshots/<commit>/` folder or a
//! `huggingface-cli download --repo-type dataset` target).
//!
//! Two layouts exist in the wild; both are three *configs* (`corpus`, `queries`, `qrels`), each
//! a folder of parquet files:
//!
//! * one dataset per repository (`zeta-alpha-ai/NanoMSMARCO`, ...): one split, usually `train`,
//!   e.g. `corpus/train-00000-of-00001.parquet`;
//! * several datasets in one repository (`sentence-transformers/NanoBEIR-en`): one split per
//!   dataset, named `Nano{Name}`, e.g. `corpus/NanoMSMARCO-00000-of-00001.parquet`.
//!
//! A file's split is the part of its name before `-NNNNN-of-NNNNN.parquet` (or its whole stem),
//! or, for the `refs/convert/parquet` layout (`corpus/NanoMSMARCO/0000.parquet`), the name of
//! the folder it is in. Columns: `_id`, `text` (corpus and queries), `query-id`, `corpus-id`
//! (qrels); other columns (`title`, `score`, ...) are ignored. Ids may be strings or integers
//! (written in decimal).
//!
//! Semantics of sentence-transformers' `NanoBEIREvaluator._load_dataset` (6.2):
//! documents and queries with an empty `text` are dropped; a repeated `_id` keeps its first
//! position and its last text (a Python dict); every qrels row is relevant (no score filter),
//! a list-valued `corpus-id` adds all its ids; qrels may name unknown documents or queries
//! (they count in recall's denominator / are ignored, as in the reference). Titles are **not**
//! joined to the text (the reference uses `text` only).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use parquet::basic::Compression;
use parquet::file::reader::{FileReader, SerializedFileReader};
pub use parquet::record::Field;
use parquet::schema::types::Type;

use crate::beir::RetrievalData;
use crate::error::{DataError, Result};

/// The three configs of the layout.
pub const CONFIGS: [&str; 3] = ["corpus", "queries", "qrels"];

fn parquet_error(path: &Path, message: impl Into<String>) -> DataError {
    DataError::Parquet {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn io_error(path: &Path, source: std::io::Error) -> DataError {
    DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// True if `dir` looks like the parquet layout: a `corpus/` folder holding at least one
/// `*.parquet` file (at any depth), and `queries/` and `qrels/` folders.
pub fn is_parquet_dataset_dir(dir: &Path) -> bool {
    CONFIGS.iter().all(|c| dir.join(c).is_dir())
        && parquet_files(&dir.join("corpus"))
            .map(|f| !f.is_empty())
            .unwrap_or(false)
}

/// Every `*.parquet` file under `dir` (recursively), sorted by path.
pub fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| io_error(&d, e))? {
            let p = entry.map_err(|e| io_error(&d, e))?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The split of a parquet file under a config folder (see the module documentation).
fn split_of(config_dir: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(config_dir).unwrap_or(file);
    let mut components = rel.components();
    if rel.components().count() > 1 {
        if let Some(first) = components.next() {
            return first.as_os_str().to_string_lossy().into_owned();
        }
    }
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    // `{split}-00000-of-00001`
    let parts: Vec<&str> = stem.rsplitn(4, '-').collect();
    if parts.len() == 4
        && parts[1] == "of"
        && [parts[0], parts[2]]
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        return parts[3].to_string();
    }
    stem
}

/// The files of each split of one config, by split name.
fn config_splits(dir: &Path, config: &str) -> Result<HashMap<String, Vec<PathBuf>>> {
    let config_dir = dir.join(config);
    if !config_dir.is_dir() {
        return Err(parquet_error(
            &config_dir,
            format!("missing the '{config}' folder of the parquet layout"),
        ));
    }
    let mut out: HashMap<String, Vec<PathBuf>> = HashMap::new();
    for f in parquet_files(&config_dir)? {
        out.entry(split_of(&config_dir, &f)).or_default().push(f);
    }
    Ok(out)
}

/// The splits present in all three configs of a parquet dataset folder, sorted.
pub fn parquet_splits(dir: &Path) -> Result<Vec<String>> {
    let mut common: Option<BTreeSet<String>> = None;
    for config in CONFIGS {
        let names: BTreeSet<String> = config_splits(dir, config)?.into_keys().collect();
        common = Some(match common {
            None => names,
            Some(c) => c.intersection(&names).cloned().collect(),
        });
    }
    Ok(common.unwrap_or_default().into_iter().collect())
}

/// The files of `split` in one config, or an error naming the folder and the splits found.
fn split_files(dir: &Path, config: &str, split: &str) -> Result<Vec<PathBuf>> {
    let mut splits = config_splits(dir, config)?;
    match splits.remove(split) {
        Some(files) => Ok(files),
        None => {
            let mut found: Vec<String> = splits.into_keys().collect();
            found.sort();
            Err(parquet_error(
                &dir.join(config),
                format!("no parquet file for split '{split}' (splits found: {found:?})"),
            ))
        }
    }
}

/// The top-level column names of one parquet file, in schema order.
pub fn column_names(path: &Path) -> Result<Vec<String>> {
    let file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| parquet_error(path, format!("not a readable parquet file: {e}")))?;
    let schema = reader.metadata().file_metadata().schema();
    Ok(schema
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect())
}

/// Reads the given top-level columns of every row of one parquet file, calling `row` with the
/// 0-based row number and the fields in `columns` order (`Field::Null` when null). Snappy and
/// uncompressed files are supported (other codecs give an error naming the column).
pub fn read_columns(
    path: &Path,
    columns: &[&str],
    mut row: impl FnMut(usize, &[&Field]) -> Result<()>,
) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| parquet_error(path, format!("not a readable parquet file: {e}")))?;
    let schema = reader.metadata().file_metadata().schema();
    let mut fields = Vec::new();
    for c in columns {
        match schema.get_fields().iter().find(|f| f.name() == *c) {
            Some(f) => fields.push(f.clone()),
            None => {
                let found: Vec<&str> = schema.get_fields().iter().map(|f| f.name()).collect();
                return Err(parquet_error(
                    path,
                    format!("missing column '{c}' (columns: {found:?})"),
                ));
            }
        }
    }
    for rg in reader.metadata().row_groups() {
        for col in rg.columns() {
            let codec = col.compression();
            if !matches!(codec, Compression::UNCOMPRESSED | Compression::SNAPPY)
                && columns.contains(&col.column_path().string().as_str())
            {
                return Err(parquet_error(
                    path,
                    format!(
                        "column '{}' is compressed with {codec}; splade-rs reads Snappy (the \
                         Hugging Face default) and uncompressed parquet files",
                        col.column_path().string()
                    ),
                ));
            }
        }
    }
    let projection = Type::group_type_builder(schema.name())
        .with_fields(fields)
        .build()
        .map_err(|e| parquet_error(path, e.to_string()))?;
    let rows = reader
        .get_row_iter(Some(projection))
        .map_err(|e| parquet_error(path, e.to_string()))?;
    let null = Field::Null;
    for (n, r) in rows.enumerate() {
        let r = r.map_err(|e| parquet_error(path, format!("row {n}: {e}")))?;
        let values: Vec<&Field> = columns
            .iter()
            .map(|c| {
                r.get_column_iter()
                    .find(|(name, _)| name.as_str() == *c)
                    .map(|(_, v)| v)
                    .unwrap_or(&null)
            })
            .collect();
        row(n, &values)?;
    }
    Ok(())
}

/// An id column value: a string or an integer (written in decimal).
fn field_id(path: &Path, row: usize, column: &str, v: &Field) -> Result<String> {
    match v {
        Field::Str(s) => Ok(s.clone()),
        Field::Byte(i) => Ok(i.to_string()),
        Field::Short(i) => Ok(i.to_string()),
        Field::Int(i) => Ok(i.to_string()),
        Field::Long(i) => Ok(i.to_string()),
        Field::UByte(i) => Ok(i.to_string()),
        Field::UShort(i) => Ok(i.to_string()),
        Field::UInt(i) => Ok(i.to_string()),
        Field::ULong(i) => Ok(i.to_string()),
        other => Err(parquet_error(
            path,
            format!("row {row}: column '{column}' must be a string or an integer, found {other}"),
        )),
    }
}

/// Reads `(_id, text)` rows of one split of `corpus` or `queries`, ST's way: empty texts
/// dropped, a repeated id keeps its first position and its last text.
fn read_texts(dir: &Path, config: &str, split: &str) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut position: HashMap<String, usize> = HashMap::new();
    for path in split_files(dir, config, split)? {
        read_columns(&path, &["_id", "text"], |n, v| {
            let id = field_id(&path, n, "_id", v[0])?;
            let text = match v[1] {
                Field::Str(s) => s.clone(),
                Field::Null => String::new(),
                other => {
                    return Err(parquet_error(
                        &path,
                        format!("row {n}: column 'text' must be a string, found {other}"),
                    ))
                }
            };
            if text.is_empty() {
                return Ok(());
            }
            match position.get(&id) {
                Some(&i) => out[i].1 = text,
                None => {
                    position.insert(id.clone(), out.len());
                    out.push((id, text));
                }
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// Reads the qrels of one split: every row relevant; a list-valued `corpus-id` adds all ids.
fn read_parquet_qrels(dir: &Path, split: &str) -> Result<HashMap<String, HashSet<String>>> {
    let mut out: HashMap<String, HashSet<String>> = HashMap::new();
    for path in split_files(dir, "qrels", split)? {
        read_columns(&path, &["query-id", "corpus-id"], |n, v| {
            let q = field_id(&path, n, "query-id", v[0])?;
            let set = out.entry(q).or_default();
            match v[1] {
                Field::ListInternal(list) => {
                    for d in list.elements() {
                        set.insert(field_id(&path, n, "corpus-id", d)?);
                    }
                }
                d => {
                    set.insert(field_id(&path, n, "corpus-id", d)?);
                }
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// Reads one split of a parquet dataset folder. With `split = None` the folder must hold
/// exactly one split (as the one-dataset repositories do).
pub fn read_parquet_dir(dir: &Path, split: Option<&str>) -> Result<RetrievalData> {
    let split = match split {
        Some(s) => s.to_string(),
        None => {
            let splits = parquet_splits(dir)?;
            match splits.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(parquet_error(
                        dir,
                        "no split has parquet files in all of corpus/, queries/ and qrels/",
                    ))
                }
                many => {
                    return Err(parquet_error(
                        dir,
                        format!("several splits ({many:?}): name one"),
                    ))
                }
            }
        }
    };
    Ok(RetrievalData {
        corpus: read_texts(dir, "corpus", &split)?,
        queries: read_texts(dir, "queries", &split)?,
        relevant: read_parquet_qrels(dir, &split)?,
    })
}

/// A name for a one-split parquet folder: the repository name for an `hf-hub` cache snapshot
/// (`datasets--zeta-alpha-ai--NanoMSMARCO/snapshots/<commit>` -> `NanoMSMARCO`), else the
/// folder's name.
pub fn dataset_dir_name(dir: &Path) -> String {
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let parent = canonical.parent();
    if parent
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == "snapshots")
    {
        if let Some(repo) = parent
            .and_then(|p| p.parent())
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
        {
            if let Some(name) = repo.rsplit("--").next() {
                if repo.starts_with("datasets--") {
                    return name.to_string();
                }
            }
        }
    }
    canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_from_file_names() {
        let c = Path::new("/x/corpus");
        let s = |p: &str| split_of(c, &c.join(p));
        assert_eq!(s("train-00000-of-00001.parquet"), "train");
        assert_eq!(s("NanoMSMARCO-00000-of-00001.parquet"), "NanoMSMARCO");
        assert_eq!(s("my-split-00003-of-00010.parquet"), "my-split");
        assert_eq!(s("NanoSciFact/0000.parquet"), "NanoSciFact");
        assert_eq!(s("test.parquet"), "test");
        assert_eq!(s("a-of-b.parquet"), "a-of-b");
    }

    #[test]
    fn hub_cache_snapshot_names() {
        let d = tempfile::tempdir().unwrap();
        let snap = d
            .path()
            .join("datasets--zeta-alpha-ai--NanoMSMARCO/snapshots/abc123");
        std::fs::create_dir_all(&snap).unwrap();
        assert_eq!(dataset_dir_name(&snap), "NanoMSMARCO");
        let plain = d.path().join("NanoSciFact");
        std::fs::create_dir_all(&plain).unwrap();
        assert_eq!(dataset_dir_name(&plain), "NanoSciFact");
    }
}
