//! Readers for evaluation data: sentence-pair TSV files and BEIR retrieval folders.
//! Every error names the file and, for malformed content, the 1-based line.
//!
//! * Pairs (`pairs.tsv`): header `sentence1<TAB>sentence2<TAB>label`, tab-separated, no quoting
//!   (a `"` is an ordinary character), one pair per line, `\n` or `\r\n` line ends.
//! * BEIR: `corpus.jsonl` (`_id`, optional `title`, `text`), `queries.jsonl` (`_id`, `text`),
//!   `qrels/<split>.tsv` (`query-id<TAB>corpus-id<TAB>score`, header line optional). A qrel is
//!   relevant when its score is > 0. Ids may be JSON strings or numbers (numbers are
//!   written as in the file). A document's text is `title + " " + text` when the title is
//!   non-empty, else `text`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // A UTF-8 byte-order mark is not part of the first line.
    let bytes = match bytes.strip_prefix(b"\xef\xbb\xbf") {
        Some(rest) => rest.to_vec(),
        None => bytes,
    };
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        DataError::Parse {
            path: path.to_path_buf(),
            line,
            message: "invalid UTF-8".into(),
        }
    })
}

/// Lines with their 1-based numbers, without line ends; a final empty line (after the last
/// `\n`) is not yielded.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let empty = text.is_empty();
    body.split('\n')
        .enumerate()
        .filter(move |_| !empty)
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
}

fn parse_error(path: &Path, line: usize, message: impl Into<String>) -> DataError {
    DataError::Parse {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}

/// Sentence pairs with 0/1 labels, for binary classification.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabeledPairs {
    /// First sentences.
    pub sentences1: Vec<String>,
    /// Second sentences.
    pub sentences2: Vec<String>,
    /// `true` for label 1 (duplicate / paraphrase).
    pub labels: Vec<bool>,
}

/// Reads a `pairs.tsv` file whose labels are 0 or 1 (`0.0` / `1.0` accepted).
pub fn read_binary_pairs(path: &Path) -> Result<LabeledPairs> {
    let text = read_text(path)?;
    let mut out = LabeledPairs::default();
    let mut it = lines(&text);
    match it.next() {
        Some((_, header))
            if header.split('\t').collect::<Vec<_>>() == ["sentence1", "sentence2", "label"] => {}
        Some((n, header)) => {
            return Err(parse_error(
                path,
                n,
                format!(
                    "expected the header 'sentence1<TAB>sentence2<TAB>label', found {header:?}"
                ),
            ))
        }
        None => return Err(parse_error(path, 1, "empty file: expected a header line")),
    }
    for (n, line) in it {
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != 3 {
            return Err(parse_error(
                path,
                n,
                format!("expected 3 tab-separated fields, found {}", fields.len()),
            ));
        }
        let label: f64 = fields[2]
            .trim()
            .parse()
            .map_err(|_| parse_error(path, n, format!("label {:?} is not a number", fields[2])))?;
        let label = if label == 0.0 {
            false
        } else if label == 1.0 {
            true
        } else {
            return Err(parse_error(
                path,
                n,
                format!(
                    "label {} is not 0 or 1 (binary classification needs 0/1 labels)",
                    fields[2]
                ),
            ));
        };
        out.sentences1.push(fields[0].to_string());
        out.sentences2.push(fields[1].to_string());
        out.labels.push(label);
    }
    Ok(out)
}

/// The columns of a tab-separated file with a header line (no quoting), by header name, in
/// the order asked; `None` for a name asks for the column at that position (0-based) whatever
/// its header says. Every line must have as many fields as the header. Errors name the file
/// and line.
pub fn read_tsv_columns(path: &Path, wanted: &[(Option<&str>, usize)]) -> Result<Vec<Vec<String>>> {
    let text = read_text(path)?;
    let mut it = lines(&text);
    let Some((_, header)) = it.next() else {
        return Err(parse_error(path, 1, "empty file: expected a header line"));
    };
    let header: Vec<&str> = header.split('\t').collect();
    let positions = wanted
        .iter()
        .map(|(name, at)| match name {
            Some(n) => header.iter().position(|h| h == n).ok_or_else(|| {
                parse_error(
                    path,
                    1,
                    format!(
                        "no column '{n}' in the header (columns: {})",
                        header.join(", ")
                    ),
                )
            }),
            None if *at < header.len() => Ok(*at),
            None => Err(parse_error(
                path,
                1,
                format!(
                    "expected at least {} columns, found {}",
                    at + 1,
                    header.len()
                ),
            )),
        })
        .collect::<Result<Vec<usize>>>()?;
    let mut out = vec![Vec::new(); wanted.len()];
    for (n, line) in it {
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != header.len() {
            return Err(parse_error(
                path,
                n,
                format!(
                    "expected {} tab-separated fields (as the header), found {}",
                    header.len(),
                    fields.len()
                ),
            ));
        }
        for (col, &p) in out.iter_mut().zip(&positions) {
            col.push(fields[p].to_string());
        }
    }
    Ok(out)
}

/// Sentence pairs with a float score each (STS-B, SICK relatedness).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoredPairs {
    /// First sentences.
    pub sentences1: Vec<String>,
    /// Second sentences.
    pub sentences2: Vec<String>,
    /// The gold score of each pair.
    pub scores: Vec<f64>,
}

/// Reads a `pairs.tsv` file (header `sentence1<TAB>sentence2<TAB>label`, no quoting) whose
/// labels are finite numbers (gold similarity scores).
pub fn read_scored_pairs(path: &Path) -> Result<ScoredPairs> {
    let mut cols = read_tsv_columns(
        path,
        &[
            (Some("sentence1"), 0),
            (Some("sentence2"), 1),
            (Some("label"), 2),
        ],
    )?;
    let labels = cols.pop().unwrap_or_default();
    let sentences2 = cols.pop().unwrap_or_default();
    let sentences1 = cols.pop().unwrap_or_default();
    let scores = labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            l.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    parse_error(path, i + 2, format!("label {l:?} is not a finite number"))
                })
        })
        .collect::<Result<Vec<f64>>>()?;
    Ok(ScoredPairs {
        sentences1,
        sentences2,
        scores,
    })
}

/// Reads a JSON Lines file into `T` per non-empty line; a line that does not parse as `T` is
/// an error naming the file, the line and what serde says.
pub fn read_jsonl_records<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = read_text(path)?;
    let mut out = Vec::new();
    for (n, line) in lines(&text) {
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(line).map_err(|e| parse_error(path, n, e.to_string()))?);
    }
    Ok(out)
}

/// A retrieval dataset: corpus and queries in file order, and the relevant documents per query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetrievalData {
    /// `(id, text)` of each document, in file order.
    pub corpus: Vec<(String, String)>,
    /// `(id, text)` of each query, in file order.
    pub queries: Vec<(String, String)>,
    /// Query id -> ids of its relevant documents (qrels with score > 0).
    pub relevant: HashMap<String, HashSet<String>>,
}

fn json_id(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn json_str<'a>(
    obj: &'a serde_json::Map<String, serde_json::Value>,
    key: &str,
    required: bool,
    path: &Path,
    line: usize,
) -> Result<&'a str> {
    match obj.get(key) {
        Some(serde_json::Value::String(s)) => Ok(s),
        None | Some(serde_json::Value::Null) if !required => Ok(""),
        None => Err(parse_error(path, line, format!("missing field '{key}'"))),
        Some(other) => Err(parse_error(
            path,
            line,
            format!("field '{key}' must be a string, found {other}"),
        )),
    }
}

/// Reads a BEIR `corpus.jsonl` or `queries.jsonl` file (blank lines are skipped; a duplicate
/// `_id` is an error). With `join_title`, a non-empty `title` is prepended to `text` with a space.
pub fn read_jsonl_texts(path: &Path, join_title: bool) -> Result<Vec<(String, String)>> {
    let text = read_text(path)?;
    let mut out = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (n, line) in lines(&text) {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| parse_error(path, n, format!("invalid JSON: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| parse_error(path, n, "expected a JSON object"))?;
        let id = obj
            .get("_id")
            .and_then(json_id)
            .ok_or_else(|| parse_error(path, n, "missing '_id' (a string or number)"))?;
        crate::check_id(&id).map_err(|m| parse_error(path, n, format!("_id: {m}")))?;
        if let Some(first) = seen.insert(id.clone(), n) {
            return Err(parse_error(
                path,
                n,
                format!("duplicate _id {id:?} (first on line {first})"),
            ));
        }
        let body = json_str(obj, "text", true, path, n)?;
        let title = if join_title {
            json_str(obj, "title", false, path, n)?
        } else {
            ""
        };
        let text = if title.is_empty() {
            body.to_string()
        } else {
            format!("{title} {body}")
        };
        out.push((id, text));
    }
    Ok(out)
}

/// Reads a qrels TSV (`query-id<TAB>corpus-id<TAB>score`, optional header line) into
/// query id -> relevant document ids (score > 0). Queries whose qrels are all <= 0 get no entry.
pub fn read_qrels(path: &Path) -> Result<HashMap<String, HashSet<String>>> {
    let text = read_text(path)?;
    let mut out: HashMap<String, HashSet<String>> = HashMap::new();
    for (n, line) in lines(&text) {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != 3 {
            return Err(parse_error(
                path,
                n,
                format!(
                    "expected 3 tab-separated fields (query-id, corpus-id, score), found {}",
                    fields.len()
                ),
            ));
        }
        let score: f64 = match fields[2].trim().parse() {
            Ok(s) => s,
            Err(_) if n == 1 => continue, // header line
            Err(_) => {
                return Err(parse_error(
                    path,
                    n,
                    format!("score {:?} is not a number", fields[2]),
                ))
            }
        };
        if score > 0.0 {
            out.entry(fields[0].to_string())
                .or_default()
                .insert(fields[1].to_string());
        }
    }
    Ok(out)
}

/// Reads a BEIR folder: `corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`.
pub fn read_beir_dir(dir: &Path, split: &str) -> Result<RetrievalData> {
    read_beir_files(
        &dir.join("corpus.jsonl"),
        &dir.join("queries.jsonl"),
        &dir.join("qrels").join(format!("{split}.tsv")),
    )
}

/// Reads the three BEIR files given separately.
pub fn read_beir_files(corpus: &Path, queries: &Path, qrels: &Path) -> Result<RetrievalData> {
    Ok(RetrievalData {
        corpus: read_jsonl_texts(corpus, true)?,
        queries: read_jsonl_texts(queries, false)?,
        relevant: read_qrels(qrels)?,
    })
}

/// The subfolders of `dir` that hold a BEIR dataset with `qrels/<split>.tsv`, sorted by name.
pub fn find_beir_dirs(dir: &Path, split: &str) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| DataError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let p = entry.path();
        if p.join("corpus.jsonl").is_file()
            && p.join("queries.jsonl").is_file()
            && p.join("qrels").join(format!("{split}.tsv")).is_file()
        {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn pairs_are_read_without_quoting() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "pairs.tsv",
            "sentence1\tsentence2\tlabel\r\n\"a\tb\"\t1\nc\t\t0.0\n",
        );
        let pairs = read_binary_pairs(&p).unwrap();
        assert_eq!(pairs.sentences1, vec!["\"a", "c"]);
        assert_eq!(pairs.sentences2, vec!["b\"", ""]);
        assert_eq!(pairs.labels, vec![true, false]);
    }

    #[test]
    fn pair_errors_name_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "p.tsv",
            "sentence1\tsentence2\tlabel\na\tb\t1\nx\ty\t2\n",
        );
        let e = read_binary_pairs(&p).unwrap_err().to_string();
        assert!(
            e.contains("p.tsv: line 3:") && e.contains("not 0 or 1"),
            "{e}"
        );
        let p = write(d.path(), "q.tsv", "sentence1\tsentence2\tlabel\na\tb\n");
        let e = read_binary_pairs(&p).unwrap_err().to_string();
        assert!(
            e.contains("q.tsv: line 2:") && e.contains("3 tab-separated"),
            "{e}"
        );
        let p = write(d.path(), "h.tsv", "s1\ts2\tlabel\n");
        assert!(read_binary_pairs(&p)
            .unwrap_err()
            .to_string()
            .contains("h.tsv: line 1:"));
        let missing = d.path().join("missing.tsv");
        assert!(read_binary_pairs(&missing)
            .unwrap_err()
            .to_string()
            .contains("missing.tsv"));
    }

    #[test]
    fn beir_folder_is_read() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("qrels")).unwrap();
        write(
            d.path(),
            "corpus.jsonl",
            "{\"_id\": \"d1\", \"title\": \"T\", \"text\": \"body\"}\n\n{\"_id\": 7, \"text\": \"x\"}\n",
        );
        write(
            d.path(),
            "queries.jsonl",
            "{\"_id\": \"q1\", \"text\": \"what\"}\n",
        );
        write(
            d.path(),
            "qrels/test.tsv",
            "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\t7\t0\nq2\td1\t-1\n",
        );
        let data = read_beir_dir(d.path(), "test").unwrap();
        assert_eq!(
            data.corpus,
            vec![("d1".into(), "T body".into()), ("7".into(), "x".into())]
        );
        assert_eq!(data.queries, vec![("q1".into(), "what".into())]);
        assert_eq!(data.relevant.len(), 1);
        assert!(data.relevant["q1"].contains("d1") && data.relevant["q1"].len() == 1);
        assert_eq!(
            find_beir_dirs(d.path().parent().unwrap(), "test")
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn beir_errors_name_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "c.jsonl",
            "{\"_id\": \"a\", \"text\": \"x\"}\n{\"_id\": \"a\", \"text\": \"y\"}\n",
        );
        let e = read_jsonl_texts(&p, true).unwrap_err().to_string();
        assert!(
            e.contains("c.jsonl: line 2:") && e.contains("duplicate"),
            "{e}"
        );
        let p = write(d.path(), "b.jsonl", "{\"_id\": \"a\"}\n");
        assert!(read_jsonl_texts(&p, true)
            .unwrap_err()
            .to_string()
            .contains("b.jsonl: line 1: missing field 'text'"));
        let p = write(d.path(), "j.jsonl", "not json\n");
        assert!(read_jsonl_texts(&p, true)
            .unwrap_err()
            .to_string()
            .contains("j.jsonl: line 1:"));
        let p = write(d.path(), "r.tsv", "q\td\t1\nq\td\tx\n");
        assert!(read_qrels(&p)
            .unwrap_err()
            .to_string()
            .contains("r.tsv: line 2:"));
        let p = write(d.path(), "s.tsv", "q d 1\n");
        assert!(read_qrels(&p)
            .unwrap_err()
            .to_string()
            .contains("s.tsv: line 1:"));
    }
}
