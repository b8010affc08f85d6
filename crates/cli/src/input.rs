//! Text inputs: the readers of `splade-data` (`splade_data::text`), re-exported for the
//! commands.

pub use splade_data::text::{parse_ids, parse_texts, read_input, read_texts, source_name};
