//! Training rows: (anchor, positive[, negative…]) texts read from JSONL or CSV/TSV files with
//! a column mapping.

use std::path::Path;

use thiserror::Error;

/// Why a training file could not be read.
#[derive(Debug, Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line or record is malformed.
    #[error("{path}: line {line}: {message}")]
    Record {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The file's columns do not provide what the mapping asks for.
    #[error("{path}: {message}")]
    Columns {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Which input columns give the anchor, the positive and the negatives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMapping {
    /// Anchor (query) column.
    pub anchor: String,
    /// Positive column.
    pub positive: String,
    /// Negative columns, in order; empty means "every column named `negative` or
    /// `negative_N` present in the file".
    pub negatives: Vec<String>,
}

impl Default for ColumnMapping {
    fn default() -> Self {
        Self {
            anchor: "anchor".into(),
            positive: "positive".into(),
            negatives: Vec::new(),
        }
    }
}

/// Training rows with a fixed number of columns (anchor, positive, negatives…).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingData {
    /// Column names in order: anchor, positive, negatives.
    pub columns: Vec<String>,
    /// One entry per row, `columns.len()` texts each.
    pub rows: Vec<Vec<String>>,
}

fn is_negative_column(name: &str) -> bool {
    name == "negative"
        || name
            .strip_prefix("negative_")
            .is_some_and(|n| n.parse::<u32>().is_ok())
}

fn negative_order(name: &str) -> u32 {
    name.strip_prefix("negative_")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl ColumnMapping {
    /// The ordered column list for a file whose columns are `available`.
    fn resolve(&self, available: &[String], path: &str) -> Result<Vec<String>, DataError> {
        let mut columns = vec![self.anchor.clone(), self.positive.clone()];
        if self.negatives.is_empty() {
            let mut negatives: Vec<&String> =
                available.iter().filter(|c| is_negative_column(c)).collect();
            negatives.sort_by_key(|c| negative_order(c));
            columns.extend(negatives.into_iter().cloned());
        } else {
            columns.extend(self.negatives.iter().cloned());
        }
        for c in &columns {
            if !available.contains(c) {
                return Err(DataError::Columns {
                    path: path.to_string(),
                    message: format!("no column '{c}' (columns: {})", available.join(", ")),
                });
            }
        }
        Ok(columns)
    }
}

impl TrainingData {
    /// Reads a training file by extension: `.jsonl`/`.json` (one object per line), `.tsv`
    /// (tab-separated with a header, no quoting) or `.csv` (comma-separated with a header,
    /// RFC 4180 quoting).
    pub fn read(path: &Path, mapping: &ColumnMapping) -> Result<Self, DataError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
            path: name.clone(),
            source,
        })?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("tsv") => Self::from_delimited(&text, '\t', mapping, &name),
            Some("csv") => Self::from_delimited(&text, ',', mapping, &name),
            _ => Self::from_jsonl(&text, mapping, &name),
        }
    }

    /// Parses JSONL text: each line an object whose mapped fields are strings.
    pub fn from_jsonl(text: &str, mapping: &ColumnMapping, path: &str) -> Result<Self, DataError> {
        let mut columns: Option<Vec<String>> = None;
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let err = |message: String| DataError::Record {
                path: path.to_string(),
                line: i + 1,
                message,
            };
            let value: serde_json::Value =
                serde_json::from_str(line).map_err(|e| err(format!("invalid JSON: {e}")))?;
            let object = value
                .as_object()
                .ok_or_else(|| err("expected a JSON object".into()))?;
            let cols = match &columns {
                Some(c) => c.clone(),
                None => {
                    let keys: Vec<String> = object.keys().cloned().collect();
                    let c = mapping.resolve(&keys, path)?;
                    columns = Some(c.clone());
                    c
                }
            };
            let mut row = Vec::with_capacity(cols.len());
            for c in &cols {
                let v = object
                    .get(c)
                    .ok_or_else(|| err(format!("no field '{c}'")))?;
                let s = v
                    .as_str()
                    .ok_or_else(|| err(format!("field '{c}' is not a string")))?;
                row.push(s.to_string());
            }
            rows.push(row);
        }
        Ok(Self {
            columns: columns.unwrap_or_default(),
            rows,
        })
    }

    fn from_delimited(
        text: &str,
        sep: char,
        mapping: &ColumnMapping,
        path: &str,
    ) -> Result<Self, DataError> {
        // TSV files of this field (e.g. the pair sets) are unquoted; CSV uses RFC 4180 quoting.
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(sep as u8)
            .quoting(sep != '\t')
            .flexible(true)
            .from_reader(text.as_bytes());
        let record_error = |line: u64, message: String| DataError::Record {
            path: path.to_string(),
            line: line as usize,
            message,
        };
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| record_error(1, e.to_string()))?
            .iter()
            .map(str::to_string)
            .collect();
        if header.is_empty() || header == [""] {
            return Ok(Self::default());
        }
        let columns = mapping.resolve(&header, path)?;
        let positions: Vec<usize> = columns
            .iter()
            .map(|c| header.iter().position(|h| h == c).unwrap_or(0))
            .collect();
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                record_error(line, e.to_string())
            })?;
            let line = record.position().map_or(0, |p| p.line());
            if record.len() != header.len() {
                return Err(record_error(
                    line,
                    format!("{} fields, the header has {}", record.len(), header.len()),
                ));
            }
            rows.push(positions.iter().map(|&p| record[p].to_string()).collect());
        }
        Ok(Self { columns, rows })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_with_default_mapping_finds_negatives_in_order() {
        let text =
            "{\"anchor\":\"a\",\"positive\":\"p\",\"negative_2\":\"n2\",\"negative_1\":\"n1\"}\n";
        let d = TrainingData::from_jsonl(text, &ColumnMapping::default(), "t.jsonl").unwrap();
        assert_eq!(
            d.columns,
            vec!["anchor", "positive", "negative_1", "negative_2"]
        );
        assert_eq!(d.rows, vec![vec!["a", "p", "n1", "n2"]]);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let text = "{\"anchor\":\"a\",\"positive\":\"p\"}\n{\"anchor\":\"a\"}\n";
        let e = TrainingData::from_jsonl(text, &ColumnMapping::default(), "t.jsonl").unwrap_err();
        assert_eq!(e.to_string(), "t.jsonl: line 2: no field 'positive'");
        let e = TrainingData::from_jsonl("{\"q\":\"a\"}\n", &ColumnMapping::default(), "t.jsonl")
            .unwrap_err();
        assert!(e.to_string().contains("no column 'anchor'"), "{e}");
    }

    #[test]
    fn tsv_and_csv_with_a_column_mapping() {
        let mapping = ColumnMapping {
            anchor: "question".into(),
            positive: "duplicate".into(),
            negatives: vec!["other".into()],
        };
        let tsv = "question\tduplicate\tother\nq1\td1\to1\n";
        let d = TrainingData::from_delimited(tsv, '\t', &mapping, "t.tsv").unwrap();
        assert_eq!(d.rows, vec![vec!["q1", "d1", "o1"]]);
        let csv = "other,question,duplicate\n\"o, 1\",\"q \"\"1\"\"\",\"multi\nline\"\n";
        let d = TrainingData::from_delimited(csv, ',', &mapping, "t.csv").unwrap();
        assert_eq!(d.rows, vec![vec!["q \"1\"", "multi\nline", "o, 1"]]);
        let bad = "question\tduplicate\tother\nq1\td1\n";
        let e = TrainingData::from_delimited(bad, '\t', &mapping, "t.tsv").unwrap_err();
        assert_eq!(e.to_string(), "t.tsv: line 2: 2 fields, the header has 3");
    }
}
