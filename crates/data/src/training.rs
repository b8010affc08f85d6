//! Training rows: (anchor, positive[, negative…]) texts read from JSONL, CSV/TSV or Parquet
//! files (a Hugging Face dataset's `*.parquet` files, one file or a folder of them) with a
//! column mapping.

use std::path::Path;

use thiserror::Error;

/// Why a training file could not be read.
#[derive(Debug, Error)]
pub enum TrainingDataError {
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
    /// The column holding each row's label (teacher margins or scores for
    /// `SparseMarginMSELoss`); `None` picks `label` or `score` when the file has one, as
    /// sentence-transformers does.
    pub label: Option<String>,
}

impl Default for ColumnMapping {
    fn default() -> Self {
        Self {
            anchor: "anchor".into(),
            positive: "positive".into(),
            negatives: Vec::new(),
            label: None,
        }
    }
}

/// Training rows with a fixed number of columns (anchor, positive, negatives…) and, when the
/// file has a label column, a fixed number of label values per row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingData {
    /// Column names in order: anchor, positive, negatives.
    pub columns: Vec<String>,
    /// One entry per row, `columns.len()` texts each.
    pub rows: Vec<Vec<String>>,
    /// The label column's name, when there is one.
    pub label_column: Option<String>,
    /// One entry per row when there is a label column (a number gives one value, a list
    /// several); empty otherwise.
    pub labels: Vec<Vec<f32>>,
}

/// The column names sentence-transformers treats as labels, in its order of preference.
pub const LABEL_COLUMNS: [&str; 2] = ["label", "score"];

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
    fn resolve(&self, available: &[String], path: &str) -> Result<Vec<String>, TrainingDataError> {
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
                return Err(TrainingDataError::Columns {
                    path: path.to_string(),
                    message: format!("no column '{c}' (columns: {})", available.join(", ")),
                });
            }
        }
        Ok(columns)
    }

    /// The label column for a file whose columns are `available`: the mapped one (which must
    /// exist), else `label` or `score` when present.
    fn resolve_label(
        &self,
        available: &[String],
        path: &str,
    ) -> Result<Option<String>, TrainingDataError> {
        match &self.label {
            Some(l) if available.contains(l) => Ok(Some(l.clone())),
            Some(l) => Err(TrainingDataError::Columns {
                path: path.to_string(),
                message: format!("no label column '{l}' (columns: {})", available.join(", ")),
            }),
            None => Ok(LABEL_COLUMNS
                .iter()
                .find(|c| available.iter().any(|a| a == *c))
                .map(|c| c.to_string())),
        }
    }
}

/// Parses a label cell: a number, or a JSON list of numbers.
fn parse_label_text(text: &str) -> Result<Vec<f32>, String> {
    let t = text.trim();
    if t.starts_with('[') {
        let v: serde_json::Value =
            serde_json::from_str(t).map_err(|e| format!("invalid label list '{t}': {e}"))?;
        return label_from_json(&v);
    }
    t.parse::<f32>()
        .map(|x| vec![x])
        .map_err(|_| format!("label '{t}' is not a number or a list of numbers"))
}

/// A JSON label: a number or an array of numbers.
fn label_from_json(v: &serde_json::Value) -> Result<Vec<f32>, String> {
    match v {
        serde_json::Value::Number(n) => Ok(vec![n.as_f64().unwrap_or(f64::NAN) as f32]),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|x| {
                x.as_f64()
                    .map(|f| f as f32)
                    .ok_or_else(|| format!("label list holds a non-number: {x}"))
            })
            .collect(),
        other => Err(format!(
            "label is not a number or a list of numbers: {other}"
        )),
    }
}

/// A parquet label cell: a number or a list of numbers.
fn parquet_label(f: &crate::parquet::Field) -> Option<Vec<f32>> {
    use crate::parquet::Field;
    let number = |f: &Field| match f {
        Field::Float(x) => Some(*x),
        Field::Double(x) => Some(*x as f32),
        Field::Int(x) => Some(*x as f32),
        Field::Long(x) => Some(*x as f32),
        Field::Short(x) => Some(*x as f32),
        _ => None,
    };
    match f {
        Field::ListInternal(list) => list.elements().iter().map(number).collect(),
        other => number(other).map(|x| vec![x]),
    }
}

/// Checks that every row has as many label values as the first, and that every value is
/// finite (a NaN or infinite teacher score would train a NaN model).
fn check_label_widths(
    labels: &[Vec<f32>],
    path: &str,
    first_line: impl Fn(usize) -> usize,
) -> Result<(), TrainingDataError> {
    if let Some((i, l)) = labels
        .iter()
        .enumerate()
        .find(|(_, l)| l.iter().any(|x| !x.is_finite()))
    {
        return Err(TrainingDataError::Record {
            path: path.to_string(),
            line: first_line(i),
            message: format!("label {l:?} is not finite (NaN or infinite)"),
        });
    }
    if let Some(width) = labels.first().map(Vec::len) {
        if let Some((i, l)) = labels.iter().enumerate().find(|(_, l)| l.len() != width) {
            return Err(TrainingDataError::Record {
                path: path.to_string(),
                line: first_line(i),
                message: format!("{} label values, the first row has {width}", l.len()),
            });
        }
    }
    Ok(())
}

impl TrainingData {
    /// Reads a training file by extension: `.jsonl`/`.json` (one object per line), `.tsv`
    /// (tab-separated with a header, no quoting), `.csv` (comma-separated with a header,
    /// RFC 4180 quoting) or `.parquet`; a folder is read as all the `*.parquet` files under it
    /// in path order (the layout of a Hugging Face dataset split).
    pub fn read(path: &Path, mapping: &ColumnMapping) -> Result<Self, TrainingDataError> {
        let name = path.display().to_string();
        if path.is_dir() || path.extension().is_some_and(|e| e == "parquet") {
            return Self::from_parquet(path, mapping);
        }
        let text = std::fs::read_to_string(path).map_err(|source| TrainingDataError::Io {
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
    pub fn from_jsonl(
        text: &str,
        mapping: &ColumnMapping,
        path: &str,
    ) -> Result<Self, TrainingDataError> {
        let mut columns: Option<Vec<String>> = None;
        let mut label_column: Option<String> = None;
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        let mut lines = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let err = |message: String| TrainingDataError::Record {
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
                    label_column = mapping.resolve_label(&keys, path)?;
                    columns = Some(c.clone());
                    c
                }
            };
            if let Some(l) = &label_column {
                let v = object
                    .get(l)
                    .ok_or_else(|| err(format!("no field '{l}'")))?;
                labels.push(label_from_json(v).map_err(err)?);
                lines.push(i + 1);
            }
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
        check_label_widths(&labels, path, |i| lines[i])?;
        Ok(Self {
            columns: columns.unwrap_or_default(),
            rows,
            label_column,
            labels,
        })
    }

    /// Reads string columns from a `.parquet` file or every `*.parquet` file under a folder
    /// (all must have the mapped columns). Errors name the file, the row (1-based) and the
    /// column.
    pub fn from_parquet(path: &Path, mapping: &ColumnMapping) -> Result<Self, TrainingDataError> {
        use crate::parquet::{self as hf_parquet, Field};
        let name = path.display().to_string();
        let to_columns = |e: crate::DataError| TrainingDataError::Columns {
            path: name.clone(),
            message: e.to_string(),
        };
        let files = if path.is_dir() {
            hf_parquet::parquet_files(path).map_err(to_columns)?
        } else {
            vec![path.to_path_buf()]
        };
        let Some(first) = files.first() else {
            return Err(TrainingDataError::Columns {
                path: name,
                message: "no *.parquet files in this folder".into(),
            });
        };
        let available = hf_parquet::column_names(first).map_err(to_columns)?;
        let columns = mapping.resolve(&available, &first.display().to_string())?;
        let label_column = mapping.resolve_label(&available, &first.display().to_string())?;
        let mut wanted: Vec<&str> = columns.iter().map(String::as_str).collect();
        if let Some(l) = &label_column {
            wanted.push(l.as_str());
        }
        let texts = columns.len();
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for file in &files {
            let file_name = file.display().to_string();
            let mut bad: Option<TrainingDataError> = None;
            hf_parquet::read_columns(file, &wanted, |n, fields| {
                let mut fail = |message: String| {
                    bad = Some(TrainingDataError::Record {
                        path: file_name.clone(),
                        line: n + 1,
                        message,
                    });
                    Err(crate::DataError::InvalidData(String::new()))
                };
                let mut row = Vec::with_capacity(texts);
                for (c, f) in wanted.iter().zip(fields).take(texts) {
                    match f {
                        Field::Str(s) => row.push(s.clone()),
                        other => {
                            return fail(format!("column '{c}' is not a string (found {other})"))
                        }
                    }
                }
                if let (Some(l), Some(f)) = (&label_column, fields.get(texts)) {
                    match parquet_label(f) {
                        Some(v) => labels.push(v),
                        None => {
                            return fail(format!(
                            "label column '{l}' is not a number or a list of numbers (found {f})"
                        ))
                        }
                    }
                }
                rows.push(row);
                Ok(())
            })
            .map_err(|e| {
                bad.take().unwrap_or_else(|| TrainingDataError::Columns {
                    path: file_name.clone(),
                    message: e.to_string(),
                })
            })?;
        }
        check_label_widths(&labels, &name, |i| i + 1)?;
        Ok(Self {
            columns,
            rows,
            label_column,
            labels,
        })
    }

    fn from_delimited(
        text: &str,
        sep: char,
        mapping: &ColumnMapping,
        path: &str,
    ) -> Result<Self, TrainingDataError> {
        // TSV files of this field (e.g. the pair sets) are unquoted; CSV uses RFC 4180 quoting.
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(sep as u8)
            .quoting(sep != '\t')
            .flexible(true)
            .from_reader(text.as_bytes());
        let record_error = |line: u64, message: String| TrainingDataError::Record {
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
        let label_column = mapping.resolve_label(&header, path)?;
        let label_position = label_column
            .as_ref()
            .and_then(|l| header.iter().position(|h| h == l));
        let positions: Vec<usize> = columns
            .iter()
            .map(|c| header.iter().position(|h| h == c).unwrap_or(0))
            .collect();
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        let mut lines = Vec::new();
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
            if let Some(p) = label_position {
                labels.push(parse_label_text(&record[p]).map_err(|m| record_error(line, m))?);
                lines.push(line as usize);
            }
        }
        check_label_widths(&labels, path, |i| lines[i])?;
        Ok(Self {
            columns,
            rows,
            label_column,
            labels,
        })
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
            label: None,
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

    #[test]
    fn labels_from_jsonl_tsv_and_csv() {
        let text = "{\"anchor\":\"a\",\"positive\":\"p\",\"negative\":\"n\",\"label\":1.5}\n\
                    {\"anchor\":\"b\",\"positive\":\"q\",\"negative\":\"m\",\"label\":-2}\n";
        let d = TrainingData::from_jsonl(text, &ColumnMapping::default(), "t.jsonl").unwrap();
        assert_eq!(d.label_column.as_deref(), Some("label"));
        assert_eq!(d.labels, vec![vec![1.5], vec![-2.0]]);
        assert_eq!(d.columns, vec!["anchor", "positive", "negative"]);
        // Teacher scores as lists, in a `score` column.
        let text = "{\"anchor\":\"a\",\"positive\":\"p\",\"negative\":\"n\",\"score\":[9.0,2.5]}\n";
        let d = TrainingData::from_jsonl(text, &ColumnMapping::default(), "t.jsonl").unwrap();
        assert_eq!(d.labels, vec![vec![9.0, 2.5]]);
        // No label column: no labels.
        let d = TrainingData::from_jsonl(
            "{\"anchor\":\"a\",\"positive\":\"p\"}\n",
            &ColumnMapping::default(),
            "t.jsonl",
        )
        .unwrap();
        assert!(d.labels.is_empty() && d.label_column.is_none());
        let tsv = "anchor\tpositive\tnegative\tmargin\na\tp\tn\t3.25\nb\tq\tm\t[1, 2]\n";
        let mapping = ColumnMapping {
            label: Some("margin".into()),
            ..ColumnMapping::default()
        };
        let e = TrainingData::from_delimited(tsv, '\t', &mapping, "t.tsv").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.tsv: line 3: 2 label values, the first row has 1"
        );
        let csv = "anchor,positive,negative,margin\na,p,n,3.25\nb,q,m,x\n";
        let e = TrainingData::from_delimited(csv, ',', &mapping, "t.csv").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.csv: line 3: label 'x' is not a number or a list of numbers"
        );
        let csv = "anchor,positive,negative,margin\na,p,n,3.25\nb,q,m,\"[0.5]\"\n";
        let d = TrainingData::from_delimited(csv, ',', &mapping, "t.csv").unwrap();
        assert_eq!(d.labels, vec![vec![3.25], vec![0.5]]);
        let missing = ColumnMapping {
            label: Some("teacher".into()),
            ..ColumnMapping::default()
        };
        let e = TrainingData::from_delimited(csv, ',', &missing, "t.csv").unwrap_err();
        assert!(e.to_string().contains("no label column 'teacher'"), "{e}");
    }
}
