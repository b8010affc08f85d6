//! Reading (and writing) collections of sparse vectors with external ids:
//!
//! - JSONL: one object per line, `{"id": "...", "indices": [...], "values": [...]}`
//!   (`id` may also be an integer); blank lines are skipped.
//! - The Seismic / kANNolo binary layout: little-endian `u32` vector count, then per vector
//!   `u32 nnz`, `nnz` u32 component ids and `nnz` f32 values; the ids live in a separate
//!   text file, one per line, in the same order.
//!
//! Every vector is checked as it is read: indices strictly ascending (and `< dim` when a
//! dimension is given), values finite and `>= 0` (SPLADE weights are non-negative). Errors
//! name the file, the 1-based line or vector number and, for JSONL, the field.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use splade_sparse::SparseVector;

use crate::error::{IndexError, Result};
use crate::format::MAX_WEIGHT;

/// One input record: an external id and its vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// External id.
    pub id: String,
    /// The sparse vector.
    pub vector: SparseVector,
}

/// The CSR arrays of `docs` (`indptr`, `indices`, `values`: document `d` holds
/// `indices[indptr[d]..indptr[d + 1]]`), in the shape [`crate::IndexBuilder::from_csr`]
/// takes, with the ids in the same order.
///
/// ```
/// use splade_index::readers::{csr_arrays, Document};
/// use splade_sparse::SparseVector;
/// let docs = vec![
///     Document { id: "a".into(), vector: SparseVector::new(vec![1, 4], vec![0.5, 2.0])? },
///     Document { id: "b".into(), vector: SparseVector::new(vec![4], vec![1.0])? },
/// ];
/// let (ids, indptr, indices, values) = csr_arrays(&docs);
/// assert_eq!((ids, indptr, indices), (vec!["a", "b"], vec![0, 2, 3], vec![1, 4, 4]));
/// assert_eq!(values, vec![0.5, 2.0, 1.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn csr_arrays(docs: &[Document]) -> (Vec<&str>, Vec<u64>, Vec<u32>, Vec<f32>) {
    let nnz = docs.iter().map(|d| d.vector.nnz()).sum();
    let ids = docs.iter().map(|d| d.id.as_str()).collect();
    let mut indptr = Vec::with_capacity(docs.len() + 1);
    indptr.push(0u64);
    let (mut indices, mut values) = (Vec::with_capacity(nnz), Vec::with_capacity(nnz));
    for d in docs {
        indices.extend_from_slice(d.vector.indices());
        values.extend_from_slice(d.vector.values());
        indptr.push(indices.len() as u64);
    }
    (ids, indptr, indices, values)
}

/// Checks indices/values of one record. `Err((field, message))`.
fn check_vector(
    indices: &[u32],
    values: &[f32],
    dim: Option<usize>,
) -> std::result::Result<(), (&'static str, String)> {
    if indices.len() != values.len() {
        return Err((
            "values",
            format!("{} values for {} indices", values.len(), indices.len()),
        ));
    }
    if let Some(p) = indices.windows(2).position(|w| w[0] >= w[1]) {
        return Err((
            "indices",
            format!(
                "not strictly ascending at position {}: {} follows {}",
                p + 1,
                indices[p + 1],
                indices[p]
            ),
        ));
    }
    if let (Some(dim), Some(&last)) = (dim, indices.last()) {
        if last as usize >= dim {
            return Err((
                "indices",
                format!("index {last} is out of range for dimension {dim}"),
            ));
        }
    }
    if let Some(p) = values.iter().position(|v| !(0.0..=MAX_WEIGHT).contains(v)) {
        return Err((
            "values",
            format!(
                "value {} at position {p} is negative, not finite or above {MAX_WEIGHT:e} (SPLADE weights must be finite and in 0..={MAX_WEIGHT:e})",
                values[p]
            ),
        ));
    }
    Ok(())
}

/// Checks an external id read from an input: non-empty, without control characters
/// (newlines, tabs, ...), which no line-based format of ids (TREC runs, qrels, id files)
/// can hold. `Err(message)`.
pub fn check_id(id: &str) -> std::result::Result<(), String> {
    if id.is_empty() {
        return Err("empty id".into());
    }
    if let Some(c) = id.chars().find(|c| c.is_control()) {
        return Err(format!(
            "id {id:?} contains the control character {c:?} (ids may not hold newlines, tabs or other control characters)"
        ));
    }
    Ok(())
}

/// Lines parsed together (in parallel) by [`JsonlReader`].
const JSONL_BATCH_LINES: usize = 2048;

/// Streams [`Document`]s from JSONL text. Lines are read in batches and parsed in
/// parallel; records (and the first error) come out in input order.
pub struct JsonlReader<R> {
    lines: std::io::Lines<R>,
    parser: LineParser,
    /// Lines read so far.
    read: usize,
    /// The 1-based line of the record returned last.
    line: usize,
    /// Parsed records not returned yet, with their lines.
    ready: std::collections::VecDeque<(usize, Result<Document>)>,
    /// The input ended or failed: nothing more to read.
    done: bool,
}

/// A JSONL record as it should be; anything else is parsed again as a JSON value, which
/// names the field at fault.
#[derive(serde::Deserialize)]
struct Record {
    id: RecordId,
    indices: Vec<u32>,
    values: Vec<f64>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum RecordId {
    Text(String),
    Unsigned(u64),
    Signed(i64),
}

impl<R: BufRead> JsonlReader<R> {
    /// Reads from `reader`; `source` names it in errors; `dim`, when given, bounds indices.
    pub fn new(reader: R, source: impl Into<String>, dim: Option<usize>) -> Self {
        Self {
            lines: reader.lines(),
            parser: LineParser {
                source: source.into(),
                dim,
            },
            read: 0,
            line: 0,
            ready: std::collections::VecDeque::new(),
            done: false,
        }
    }

    /// The 1-based line number of the record returned last (blank lines counted).
    pub fn line(&self) -> usize {
        self.line
    }

    /// Reads the next batch of non-blank lines and parses them in parallel.
    fn fill(&mut self) {
        use rayon::prelude::*;
        let mut batch: Vec<(usize, String)> = Vec::new();
        let mut failed = None;
        while batch.len() < JSONL_BATCH_LINES {
            let Some(text) = self.lines.next() else {
                self.done = true;
                break;
            };
            self.read += 1;
            let text = match text {
                Ok(t) => t,
                Err(e) => {
                    failed = Some((
                        self.read,
                        Err(self
                            .parser
                            .err(self.read, None, format!("cannot read: {e}"))),
                    ));
                    self.done = true;
                    break;
                }
            };
            // A byte-order mark at the start of the file is not part of the first line.
            let text = match (self.read, text.strip_prefix('\u{feff}')) {
                (1, Some(rest)) => rest.to_string(),
                _ => text,
            };
            if !text.trim().is_empty() {
                batch.push((self.read, text));
            }
        }
        let parser = &self.parser;
        let parse = |(line, text): &(usize, String)| (*line, parser.parse(*line, text));
        // Small inputs are not worth the threads (nor their allocations).
        let parsed: Vec<(usize, Result<Document>)> = if batch.len() < 256 {
            batch.iter().map(parse).collect()
        } else {
            batch.par_iter().map(parse).collect()
        };
        self.ready.extend(parsed);
        self.ready.extend(failed);
    }
}

/// Parses one JSONL line (shared by the threads of a batch).
struct LineParser {
    source: String,
    dim: Option<usize>,
}

impl LineParser {
    fn err(&self, line: usize, field: Option<&str>, message: impl Into<String>) -> IndexError {
        IndexError::Input {
            source_name: self.source.clone(),
            location: match field {
                Some(f) => format!("line {line}, field '{f}'"),
                None => format!("line {line}"),
            },
            message: message.into(),
        }
    }

    fn parse(&self, line: usize, text: &str) -> Result<Document> {
        // The usual record: typed, without building a JSON value.
        if let Ok(r) = serde_json::from_str::<Record>(text) {
            let id = match r.id {
                RecordId::Text(s) => s,
                RecordId::Unsigned(n) => n.to_string(),
                RecordId::Signed(n) => n.to_string(),
            };
            if check_id(&id).is_ok() {
                let values: Vec<f32> = r.values.iter().map(|&x| x as f32).collect();
                if check_vector(&r.indices, &values, self.dim).is_ok() {
                    if let Ok(vector) = SparseVector::new(r.indices, values) {
                        return Ok(Document { id, vector });
                    }
                }
            }
        }
        // Anything else: the same checks on the JSON value, for an error naming the field.
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| self.err(line, None, format!("invalid JSON: {e}")))?;
        let field = |name: &str| {
            value
                .get(name)
                .ok_or_else(|| self.err(line, Some(name), "missing"))
        };
        let id = match field("id")? {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
            _ => return Err(self.err(line, Some("id"), "must be a string or an integer")),
        };
        check_id(&id).map_err(|m| self.err(line, Some("id"), m))?;
        let array = |name: &str| {
            field(name)?
                .as_array()
                .ok_or_else(|| self.err(line, Some(name), "must be an array"))
        };
        let indices = array("indices")?
            .iter()
            .enumerate()
            .map(|(p, v)| {
                v.as_u64()
                    .and_then(|i| u32::try_from(i).ok())
                    .ok_or_else(|| {
                        self.err(
                            line,
                            Some("indices"),
                            format!("entry {p} ({v}) is not an integer in 0..2^32"),
                        )
                    })
            })
            .collect::<Result<Vec<u32>>>()?;
        let values = array("values")?
            .iter()
            .enumerate()
            .map(|(p, v)| {
                v.as_f64().map(|x| x as f32).ok_or_else(|| {
                    self.err(
                        line,
                        Some("values"),
                        format!("entry {p} ({v}) is not a number"),
                    )
                })
            })
            .collect::<Result<Vec<f32>>>()?;
        check_vector(&indices, &values, self.dim).map_err(|(f, m)| self.err(line, Some(f), m))?;
        let vector =
            SparseVector::new(indices, values).map_err(|e| self.err(line, None, e.to_string()))?;
        Ok(Document { id, vector })
    }
}

impl<R: BufRead> Iterator for JsonlReader<R> {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.ready.is_empty() && !self.done {
            self.fill();
        }
        let (line, item) = self.ready.pop_front()?;
        self.line = line;
        if item.is_err() {
            // Nothing is read past an error.
            self.ready.clear();
            self.done = true;
        }
        Some(item)
    }
}

/// Opens a JSONL vectors file for streaming.
pub fn open_jsonl(path: &Path, dim: Option<usize>) -> Result<JsonlReader<BufReader<File>>> {
    splade_sparse::files::check_readable_stream(path).map_err(|e| IndexError::io(path, e))?;
    let file = File::open(path).map_err(|e| IndexError::io(path, e))?;
    Ok(JsonlReader::new(
        BufReader::new(file),
        path.display().to_string(),
        dim,
    ))
}

/// Reads a whole JSONL vectors file.
pub fn read_jsonl(path: &Path, dim: Option<usize>) -> Result<Vec<Document>> {
    open_jsonl(path, dim)?.collect()
}

/// Reads a Seismic / kANNolo binary vectors file and its ids file (one id per line, same
/// order). Errors name the file and the 1-based vector (or line) number: truncation,
/// trailing bytes, a count that disagrees with the ids file, invalid vectors.
pub fn read_seismic(vectors: &Path, ids: &Path, dim: Option<usize>) -> Result<Vec<Document>> {
    open_seismic(vectors, ids, dim)?.collect()
}

/// Opens a Seismic / kANNolo binary vectors file and its ids file for streaming: the
/// header and the ids are read and checked now (the ids file must hold one id per vector),
/// the vectors one at a time as the iterator is driven (errors as [`read_seismic`]'s; the
/// last item checks that nothing follows the last vector).
pub fn open_seismic(vectors: &Path, ids: &Path, dim: Option<usize>) -> Result<SeismicReader> {
    let source = vectors.display().to_string();
    for p in [vectors, ids] {
        let meta = std::fs::metadata(p).map_err(|e| IndexError::io(p, e))?;
        if !meta.is_file() {
            return Err(IndexError::io(
                p,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
            ));
        }
    }
    let file = File::open(vectors).map_err(|e| IndexError::io(vectors, e))?;
    let len = file
        .metadata()
        .map_err(|e| IndexError::io(vectors, e))?
        .len();
    let mut reader = SeismicReader {
        path: vectors.to_path_buf(),
        source,
        // A large buffer for large files; small files allocate no more than they hold.
        reader: BufReader::with_capacity((len as usize).clamp(64, 1 << 20), file),
        len,
        pos: 0,
        count: 0,
        next: 1,
        dim,
        ids: Vec::new().into_iter(),
        done: false,
    };
    reader.count = reader
        .read_u32s(1)?
        .ok_or_else(|| reader.err("header".into(), "truncated: no vector count".into()))?[0]
        as usize;
    let text = std::fs::read(ids).map_err(|e| IndexError::io(ids, e))?;
    let text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&text);
    let ids_source = ids.display().to_string();
    let text = std::str::from_utf8(text).map_err(|e| IndexError::Input {
        source_name: ids_source.clone(),
        location: format!("byte {}", e.valid_up_to()),
        message: "invalid UTF-8".into(),
    })?;
    let names: Vec<String> = text
        .strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .filter(|_| !text.is_empty())
        .collect();
    if names.len() != reader.count {
        return Err(IndexError::Input {
            source_name: ids_source,
            location: format!("line {}", names.len().min(reader.count) + 1),
            message: format!(
                "{} ids for {} vectors in {}",
                names.len(),
                reader.count,
                reader.source
            ),
        });
    }
    for (p, name) in names.iter().enumerate() {
        check_id(name).map_err(|message| IndexError::Input {
            source_name: ids_source.clone(),
            location: format!("line {}", p + 1),
            message,
        })?;
    }
    reader.ids = names.into_iter();
    Ok(reader)
}

/// A Seismic / kANNolo binary vectors file read one vector at a time ([`open_seismic`]).
#[derive(Debug)]
pub struct SeismicReader {
    path: std::path::PathBuf,
    source: String,
    reader: BufReader<File>,
    len: u64,
    pos: u64,
    count: usize,
    /// The 1-based number of the next vector.
    next: usize,
    dim: Option<usize>,
    ids: std::vec::IntoIter<String>,
    done: bool,
}

impl SeismicReader {
    /// The number of vectors the header announces.
    pub fn count(&self) -> usize {
        self.count
    }

    fn err(&self, location: String, message: String) -> IndexError {
        IndexError::Input {
            source_name: self.source.clone(),
            location,
            message,
        }
    }

    /// `n` little-endian u32s, or `None` when fewer bytes are left (a count read from a
    /// damaged file allocates nothing it cannot fill).
    fn read_u32s(&mut self, n: usize) -> Result<Option<Vec<u32>>> {
        let bytes = n as u64 * 4;
        if self.len - self.pos < bytes {
            return Ok(None);
        }
        let mut buf = vec![0u8; n * 4];
        self.reader
            .read_exact(&mut buf)
            .map_err(|e| IndexError::io(&self.path, e))?;
        self.pos += bytes;
        Ok(Some(
            buf.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ))
    }

    fn read_vector(&mut self) -> Result<Document> {
        let (v, count) = (self.next, self.count);
        let loc = || format!("vector {v} of {count}");
        let nnz = self
            .read_u32s(1)?
            .ok_or_else(|| self.err(loc(), "truncated: no nnz".into()))?[0]
            as usize;
        let indices = self
            .read_u32s(nnz)?
            .ok_or_else(|| self.err(loc(), format!("truncated: {nnz} component ids expected")))?;
        let values: Vec<f32> = self
            .read_u32s(nnz)?
            .ok_or_else(|| self.err(loc(), format!("truncated: {nnz} values expected")))?
            .into_iter()
            .map(f32::from_bits)
            .collect();
        check_vector(&indices, &values, self.dim)
            .map_err(|(f, m)| self.err(loc(), format!("{f}: {m}")))?;
        let vector =
            SparseVector::new(indices, values).map_err(|e| self.err(loc(), e.to_string()))?;
        let id = self.ids.next().unwrap_or_default();
        self.next += 1;
        Ok(Document { id, vector })
    }
}

impl Iterator for SeismicReader {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.next > self.count {
            self.done = true;
            if self.pos != self.len {
                return Some(Err(self.err(
                    format!("after vector {}", self.count),
                    format!("{} trailing bytes", self.len - self.pos),
                )));
            }
            return None;
        }
        let item = self.read_vector();
        if item.is_err() {
            self.done = true;
        }
        Some(item)
    }
}

/// Writes documents in the Seismic / kANNolo binary layout plus an ids file.
pub fn write_seismic(vectors: &Path, ids: &Path, docs: &[Document]) -> Result<()> {
    let count = u32::try_from(docs.len())
        .map_err(|_| IndexError::InvalidArgument("more than 2^32 - 1 vectors".into()))?;
    let write = |path: &Path, f: &mut dyn FnMut(&mut BufWriter<File>) -> std::io::Result<()>| {
        let file = File::create(path).map_err(|e| IndexError::io(path, e))?;
        let mut w = BufWriter::new(file);
        f(&mut w)
            .and_then(|()| w.flush())
            .map_err(|e| IndexError::io(path, e))
    };
    write(vectors, &mut |w| {
        w.write_all(&count.to_le_bytes())?;
        for d in docs {
            w.write_all(&(d.vector.nnz() as u32).to_le_bytes())?;
            for i in d.vector.indices() {
                w.write_all(&i.to_le_bytes())?;
            }
            for v in d.vector.values() {
                w.write_all(&v.to_le_bytes())?;
            }
        }
        Ok(())
    })?;
    write(ids, &mut |w| {
        for d in docs {
            writeln!(w, "{}", d.id)?;
        }
        Ok(())
    })
}

/// Documents per batch for [`read_ahead`] (a few MB of SPLADE vectors).
pub const READ_AHEAD_DOCS: usize = 4096;

/// Documents of `docs`, read ahead in a background thread: batches of `batch` documents
/// (at least one), at most two batches ahead of the consumer, so that reading and checking
/// the input overlaps with what is done with each document (e.g. [`crate::DiskIndexBuilder::add`]).
/// The items are those of `docs`, in the same order, errors included; the thread stops
/// after the first error, at the end of `docs`, or when the [`ReadAhead`] is dropped.
pub fn read_ahead<I>(docs: I, batch: usize) -> ReadAhead
where
    I: Iterator<Item = Result<Document>> + Send + 'static,
{
    let batch = batch.max(1);
    let (send, receive) = std::sync::mpsc::sync_channel::<Vec<Result<Document>>>(1);
    let thread = std::thread::spawn(move || {
        let mut docs = docs;
        loop {
            let mut items = Vec::with_capacity(batch);
            let mut stop = false;
            for item in docs.by_ref().take(batch) {
                stop = item.is_err();
                items.push(item);
                if stop {
                    break;
                }
            }
            let last = stop || items.len() < batch;
            // An error here means the consumer is gone: nothing more to read for.
            if items.is_empty() || send.send(items).is_err() || last {
                return;
            }
        }
    });
    ReadAhead {
        receive,
        current: Vec::new().into_iter(),
        thread: Some(thread),
    }
}

/// The iterator of [`read_ahead`].
#[derive(Debug)]
pub struct ReadAhead {
    receive: std::sync::mpsc::Receiver<Vec<Result<Document>>>,
    current: std::vec::IntoIter<Result<Document>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Iterator for ReadAhead {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Result<Document>> {
        loop {
            if let Some(item) = self.current.next() {
                return Some(item);
            }
            match self.receive.recv() {
                Ok(items) => self.current = items.into_iter(),
                Err(_) => {
                    // The reader finished, or died: a panic must not pass for the input's end.
                    let thread = self.thread.take()?;
                    return match thread.join() {
                        Ok(()) => None,
                        Err(_) => Some(Err(IndexError::InvalidArgument(
                            "the input reader thread panicked; the input was not read to its end"
                                .into(),
                        ))),
                    };
                }
            }
        }
    }
}
