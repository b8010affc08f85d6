//! Training rows: (anchor, positive[, negative…]) texts and labels read from JSONL, CSV/TSV
//! or parquet with a column mapping. The readers live in `splade-data`
//! (`splade_data::training`), with every other dataset reader; re-exported here.

pub use splade_data::training::{
    ColumnMapping, TrainingData, TrainingDataError as DataError, LABEL_COLUMNS,
};
