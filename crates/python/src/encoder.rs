//! `NativeEncoder`: a splade-encoder `SparseEncoder` for Python. The Python class
//! `splade_rs.SparseEncoder` wraps it with sentence-transformers' names and arguments.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use splade_encoder::{EncodeOptions, Similarity, SparseEncoder};

use crate::csr::{self, CsrBytes};
use crate::errors;

/// A loaded SPLADE model (see `splade_rs.SparseEncoder`).
#[pyclass(module = "splade_rs._native", frozen)]
pub struct NativeEncoder {
    encoder: SparseEncoder,
}

impl NativeEncoder {
    /// The Rust encoder.
    pub(crate) fn inner(&self) -> &SparseEncoder {
        &self.encoder
    }
}

/// Which prompt route an encode call takes.
fn route(kind: &str) -> PyResult<u8> {
    match kind {
        "plain" => Ok(0),
        "query" => Ok(1),
        "document" => Ok(2),
        other => Err(errors::value(format!(
            "unknown encode route '{other}' (plain, query or document)"
        ))),
    }
}

#[pymethods]
impl NativeEncoder {
    /// Loads `model_name_or_path` (a model folder, a Hugging Face Hub id, or `splade-tiny`)
    /// onto `device` (`cpu`, `cuda[:N]`, `auto`), with the GIL released; `quantize` is
    /// `None`/`"none"` (f32) or `"int8"` (int8 linear layers on the CPU).
    #[new]
    #[pyo3(signature = (model_name_or_path, device, quantize=None))]
    fn new(
        py: Python<'_>,
        model_name_or_path: String,
        device: String,
        quantize: Option<String>,
    ) -> PyResult<Self> {
        let quantize: splade_encoder::Quantize = quantize
            .as_deref()
            .unwrap_or("none")
            .parse()
            .map_err(errors::value)?;
        let options = splade_encoder::LoadOptions {
            quantize,
            ..splade_encoder::LoadOptions::default()
        };
        let encoder = py
            .detach(|| {
                let device = splade_encoder::device::parse_device(&device)?;
                SparseEncoder::from_pretrained_with(&model_name_or_path, &device, &options)
            })
            .map_err(errors::encoder)?;
        Ok(Self { encoder })
    }

    /// Encodes `texts` through the `kind` route (`plain`, `query` or `document`) and
    /// returns the CSR matrix as byte buffers; the GIL is released while encoding.
    #[pyo3(signature = (texts, kind, batch_size, prompt_name=None, prompt=None, max_active_dims=None, show_progress=false))]
    #[allow(clippy::too_many_arguments)]
    fn encode(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        kind: &str,
        batch_size: usize,
        prompt_name: Option<String>,
        prompt: Option<String>,
        max_active_dims: Option<usize>,
        show_progress: bool,
    ) -> PyResult<CsrBytes> {
        let route = route(kind)?;
        let options = EncodeOptions {
            batch_size,
            prompt_name,
            prompt,
            max_active_dims,
            show_progress,
        };
        let batch = py
            .detach(|| match route {
                1 => self.encoder.encode_query(&texts, &options),
                2 => self.encoder.encode_document(&texts, &options),
                _ => self.encoder.encode(&texts, &options),
            })
            .map_err(errors::encoder)?;
        Ok(csr::to_python(py, &batch))
    }

    /// The `top_k` heaviest `(token, weight)` pairs of each row of a CSR matrix, heaviest
    /// first (all terms when `top_k` is None).
    #[pyo3(signature = (indptr, indices, data, cols, top_k=None))]
    fn decode(
        &self,
        py: Python<'_>,
        indptr: &[u8],
        indices: &[u8],
        data: &[u8],
        cols: usize,
        top_k: Option<usize>,
    ) -> PyResult<Vec<Vec<(String, f32)>>> {
        let batch = csr::from_bytes(indptr, indices, data, cols)?;
        Ok(py.detach(|| {
            batch
                .rows()
                .map(|row| self.encoder.decode(row, top_k))
                .collect()
        }))
    }

    /// The model's maximum sequence length in tokens (longer texts are truncated).
    #[getter]
    fn max_seq_length(&self) -> usize {
        self.encoder.max_seq_length()
    }

    /// The vectors' dimension: the vocabulary size (a CSR model: the autoencoder's latents).
    #[getter]
    fn dim(&self) -> usize {
        self.encoder.dim()
    }

    /// The model's default `max_active_dims` (`config_sentence_transformers.json`; a CSR
    /// model: its autoencoder's `k` when none is saved), or `None`.
    #[getter]
    fn default_max_active_dims(&self) -> Option<usize> {
        self.encoder.effective_max_active_dims(None)
    }

    /// Whether this is a CSR model (dimensions are autoencoder latents, not tokens).
    #[getter]
    fn is_csr(&self) -> bool {
        self.encoder.is_csr()
    }

    /// The model's similarity function name (`dot`, `cosine`, `euclidean`, `manhattan`).
    #[getter]
    fn similarity_fn_name(&self) -> &'static str {
        self.encoder.similarity_fn().name()
    }

    /// The model's named prompts.
    #[getter]
    fn prompts(&self) -> Vec<(String, String)> {
        self.encoder
            .prompts()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The model folder the encoder was loaded from.
    #[getter]
    fn folder(&self) -> String {
        self.encoder.folder().root.display().to_string()
    }
}

/// The scores of every row of `a` against every row of `b` (or row `i` against row `i`
/// with `pairwise`) with the similarity function `function`, as f32 bytes (row-major).
#[pyfunction]
#[pyo3(signature = (a, b, function, pairwise=false))]
pub fn similarity(
    py: Python<'_>,
    a: (Vec<u8>, Vec<u8>, Vec<u8>, usize),
    b: (Vec<u8>, Vec<u8>, Vec<u8>, usize),
    function: &str,
    pairwise: bool,
) -> PyResult<Py<PyBytes>> {
    let function: Similarity = function
        .parse()
        .map_err(|e: splade_sparse::SparseError| errors::value(e.to_string()))?;
    let a = csr::from_bytes(&a.0, &a.1, &a.2, a.3)?;
    let b = csr::from_bytes(&b.0, &b.1, &b.2, b.3)?;
    if a.dim() != b.dim() {
        return Err(errors::value(format!(
            "the matrices have {} and {} columns",
            a.dim(),
            b.dim()
        )));
    }
    if pairwise && a.len() != b.len() {
        return Err(errors::value(format!(
            "pairwise similarity needs as many rows on both sides ({} and {})",
            a.len(),
            b.len()
        )));
    }
    let scores = py.detach(|| {
        if pairwise {
            splade_sparse::similarity_pairwise(&a, &b, function)
        } else {
            splade_sparse::similarity(&a, &b, function).data
        }
    });
    let bytes: Vec<u8> = scores.iter().flat_map(|s| s.to_le_bytes()).collect();
    Ok(PyBytes::new(py, &bytes).unbind())
}

/// The element-wise product of two one-row CSR matrices, as `(indices, values)`.
#[pyfunction]
pub fn intersection(
    a: (Vec<u8>, Vec<u8>, Vec<u8>, usize),
    b: (Vec<u8>, Vec<u8>, Vec<u8>, usize),
) -> PyResult<(Vec<u32>, Vec<f32>)> {
    let a = csr::from_bytes(&a.0, &a.1, &a.2, a.3)?;
    let b = csr::from_bytes(&b.0, &b.1, &b.2, b.3)?;
    let (Some(x), Some(y)) = (a.row(0), b.row(0)) else {
        return Err(errors::value("intersection needs one vector on each side"));
    };
    let product = SparseEncoder::intersection(x, y);
    Ok((product.indices().to_vec(), product.values().to_vec()))
}
