//! Finding the retrieval datasets of a data folder, as `splade eval beir` and
//! `splade train --eval-beir` both do: BEIR folders (`corpus.jsonl`, `queries.jsonl`,
//! `qrels/<split>.tsv`) and folders in the Hugging Face parquet layout (`corpus/`,
//! `queries/`, `qrels/` with `*.parquet`, NanoBEIR's one split per dataset included).

use std::path::{Path, PathBuf};

use crate::beir::{find_beir_dirs, read_beir_dir, RetrievalData};
use crate::error::{DataError, Result};
use crate::parquet::{dataset_dir_name, is_parquet_dataset_dir, parquet_splits, read_parquet_dir};

/// NanoBEIR dataset keys and the names sentence-transformers gives them (`Nano` + this).
pub const NANOBEIR_DATASETS: [(&str, &str); 13] = [
    ("climatefever", "ClimateFEVER"),
    ("dbpedia", "DBPedia"),
    ("fever", "FEVER"),
    ("fiqa2018", "FiQA2018"),
    ("hotpotqa", "HotpotQA"),
    ("msmarco", "MSMARCO"),
    ("nfcorpus", "NFCorpus"),
    ("nq", "NQ"),
    ("quoraretrieval", "QuoraRetrieval"),
    ("scidocs", "SCIDOCS"),
    ("arguana", "ArguAna"),
    ("scifact", "SciFact"),
    ("touche2020", "Touche2020"),
];

/// `Nano{Name}` for a NanoBEIR dataset key (case-insensitive), e.g. `scifact` -> `NanoSciFact`.
pub fn nanobeir_name(key: &str) -> Option<String> {
    let key = key.to_ascii_lowercase();
    NANOBEIR_DATASETS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, n)| format!("Nano{n}"))
}

/// Where one dataset comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetSource {
    /// A BEIR folder.
    Beir(PathBuf),
    /// One split of a folder in the Hugging Face parquet layout.
    Parquet(PathBuf, String),
}

/// A dataset found in a data folder: its name (the folder's, or the parquet split's) and
/// where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// The name results are reported under.
    pub name: String,
    /// Where its files are.
    pub source: DatasetSource,
}

impl Dataset {
    /// Reads the dataset (`split`: the BEIR qrels split; parquet datasets carry their own).
    pub fn read(&self, split: &str) -> Result<RetrievalData> {
        match &self.source {
            DatasetSource::Beir(dir) => read_beir_dir(dir, split),
            DatasetSource::Parquet(dir, s) => read_parquet_dir(dir, Some(s)),
        }
    }
}

/// The datasets of a parquet folder: one per split, named by the split, except a folder
/// with a single split that is not a `Nano*` name (`train`), named after the folder (the
/// Hub repository).
fn parquet_datasets(dir: &Path) -> Result<Vec<Dataset>> {
    let splits = parquet_splits(dir)?;
    let single = splits.len() == 1 && !splits[0].starts_with("Nano");
    Ok(splits
        .into_iter()
        .map(|s| Dataset {
            name: if single {
                dataset_dir_name(dir)
            } else {
                s.clone()
            },
            source: DatasetSource::Parquet(dir.to_path_buf(), s),
        })
        .collect())
}

fn folder_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

/// Every dataset under `data_dir`: the folder itself when it is a BEIR folder (with
/// `qrels/<split>.tsv`) or in the parquet layout, else its BEIR and parquet subfolders,
/// sorted by folder.
pub fn discover(data_dir: &Path, split: &str) -> Result<Vec<Dataset>> {
    if is_parquet_dataset_dir(data_dir) {
        return parquet_datasets(data_dir);
    }
    if data_dir.join("corpus.jsonl").is_file()
        && data_dir.join("queries.jsonl").is_file()
        && data_dir
            .join("qrels")
            .join(format!("{split}.tsv"))
            .is_file()
    {
        return Ok(vec![Dataset {
            name: folder_name(data_dir),
            source: DatasetSource::Beir(data_dir.to_path_buf()),
        }]);
    }
    let beir: Vec<PathBuf> = find_beir_dirs(data_dir, split)?;
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(data_dir)
        .map_err(|source| DataError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort();
    let mut out = Vec::new();
    for dir in subdirs {
        if beir.contains(&dir) {
            out.push(Dataset {
                name: folder_name(&dir),
                source: DatasetSource::Beir(dir),
            });
        } else if is_parquet_dataset_dir(&dir) {
            out.extend(parquet_datasets(&dir)?);
        }
    }
    Ok(out)
}

/// The datasets of `data_dir` to evaluate: all of them when `wanted` is empty (an error
/// when there is none), else the named ones in that order. A name matches a dataset's
/// exactly, case-insensitively, or by its NanoBEIR name (`scifact` finds `NanoSciFact`); a
/// name that matches nothing is taken as a BEIR subfolder, so that reading it names the
/// missing file.
pub fn find_datasets(data_dir: &Path, split: &str, wanted: &[String]) -> Result<Vec<Dataset>> {
    let found = discover(data_dir, split)?;
    if wanted.is_empty() {
        if found.is_empty() {
            return Err(DataError::InvalidData(format!(
                "{}: no subfolder has corpus.jsonl, queries.jsonl and qrels/{split}.tsv, and no \
                 folder has the parquet layout (corpus/, queries/, qrels/ with *.parquet)",
                data_dir.display()
            )));
        }
        return Ok(found);
    }
    let mut found: Vec<Option<Dataset>> = found.into_iter().map(Some).collect();
    let mut out = Vec::new();
    for d in wanted {
        let nano = nanobeir_name(d);
        let matches = |n: &str| {
            n == d
                || n.eq_ignore_ascii_case(d)
                || nano.as_deref().is_some_and(|x| n.eq_ignore_ascii_case(x))
        };
        let hit = found
            .iter()
            .position(|f| f.as_ref().is_some_and(|x| &x.name == d))
            .or_else(|| {
                found
                    .iter()
                    .position(|f| f.as_ref().is_some_and(|x| matches(&x.name)))
            });
        match hit.and_then(|i| found[i].take()) {
            Some(dataset) => out.push(dataset),
            None => out.push(Dataset {
                name: d.clone(),
                source: DatasetSource::Beir(data_dir.join(d)),
            }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beir(dir: &Path) {
        std::fs::create_dir_all(dir.join("qrels")).unwrap();
        std::fs::write(dir.join("corpus.jsonl"), "{\"_id\":\"d\",\"text\":\"x\"}\n").unwrap();
        std::fs::write(
            dir.join("queries.jsonl"),
            "{\"_id\":\"q\",\"text\":\"x\"}\n",
        )
        .unwrap();
        std::fs::write(dir.join("qrels").join("test.tsv"), "q\td\t1\n").unwrap();
    }

    #[test]
    fn a_folder_of_beir_folders_or_one_beir_folder() {
        let tmp = tempfile::tempdir().unwrap();
        beir(&tmp.path().join("b"));
        beir(&tmp.path().join("a"));
        std::fs::create_dir(tmp.path().join("other")).unwrap();
        let all = find_datasets(tmp.path(), "test", &[]).unwrap();
        let names: Vec<&str> = all.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        // The BEIR folder itself.
        let one = find_datasets(&tmp.path().join("a"), "test", &[]).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].read("test").unwrap().corpus.len(), 1);
        // Named, case-insensitively; an unknown name reads as a (missing) BEIR folder.
        let picked = find_datasets(tmp.path(), "test", &["B".into(), "zzz".into()]).unwrap();
        assert_eq!(picked[0].name, "b");
        assert!(picked[1].read("test").is_err());
        let empty = tempfile::tempdir().unwrap();
        let e = find_datasets(empty.path(), "test", &[]).unwrap_err();
        assert!(e.to_string().contains("no subfolder"), "{e}");
    }
}
