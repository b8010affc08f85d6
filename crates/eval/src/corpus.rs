//! Encoding a corpus into an index: the one implementation behind `splade index build
//! --corpus` / `index add --corpus`, the index ranker of the IR evaluator and the
//! hard-negative mining of `splade data triplets`.

use splade_encoder::{EncodeOptions, SparseEncoder};
use splade_index::{Index, IndexBuilder};
use splade_sparse::SparseView;

use crate::error::{EvalError, Result};

/// Texts per encode call in [`encode_documents`]: output starts early and memory stays
/// bounded on large corpora (the encoder batches within a call).
pub const ENCODE_CHUNK: usize = 4096;

/// Encodes `documents` (`(id, text)`, in order) with the model's document route
/// (`encode_document`), [`ENCODE_CHUNK`] texts per call, and hands each id with its vector
/// to `sink`, in input order. Returns the number of documents.
pub fn encode_documents<I, T, E>(
    encoder: &SparseEncoder,
    documents: &[(I, T)],
    options: &EncodeOptions,
    mut sink: impl FnMut(&str, SparseView<'_>) -> std::result::Result<(), E>,
) -> std::result::Result<usize, E>
where
    I: AsRef<str>,
    T: AsRef<str>,
    E: From<splade_encoder::EncoderError>,
{
    for chunk in documents.chunks(ENCODE_CHUNK) {
        let texts: Vec<&str> = chunk.iter().map(|(_, t)| t.as_ref()).collect();
        let batch = encoder.encode_document(&texts, options)?;
        for ((id, _), row) in chunk.iter().zip(batch.rows()) {
            sink(id.as_ref(), row)?;
        }
    }
    Ok(documents.len())
}

/// An in-memory index of `documents` (`(id, vector)`, numbered in this order, which breaks
/// score ties) of dimension `dim`.
pub fn index_vectors<'a, I>(
    dim: usize,
    documents: impl IntoIterator<Item = (I, SparseView<'a>)>,
) -> Result<Index>
where
    I: AsRef<str>,
{
    let mut builder = IndexBuilder::new(dim);
    for (id, vector) in documents {
        builder.add(id.as_ref(), vector)?;
    }
    Ok(builder.build()?)
}

/// Encodes `documents` (`(id, text)`) with the document route and indexes them in memory,
/// in this order (see [`encode_documents`], [`index_vectors`]).
pub fn encode_corpus_index<I, T>(
    encoder: &SparseEncoder,
    documents: &[(I, T)],
    options: &EncodeOptions,
) -> Result<Index>
where
    I: AsRef<str>,
    T: AsRef<str>,
{
    let mut builder = IndexBuilder::new(encoder.dim());
    encode_documents(encoder, documents, options, |id, v| {
        builder.add(id, v).map(|_| ()).map_err(EvalError::from)
    })?;
    Ok(builder.build()?)
}
