//! `_bulk` requests: one `index` action per document, keyed by the document id (`_id`), so
//! sending the same documents again replaces them instead of adding copies.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::bodies::{document_source, mapping, LuceneEngine};
use super::tokens::TokenMap;
use crate::atomic::write_atomic;
use crate::document::{check_unique_ids, ExportDocument};
use crate::error::{EngineError, Result};

/// The action and source lines of one document.
fn bulk_pair(
    engine: LuceneEngine,
    tokens: Option<&TokenMap>,
    doc: &ExportDocument,
    index: &str,
    field: &str,
    with_text: bool,
) -> Result<String> {
    let action = json!({"index": {"_index": index, "_id": doc.id}});
    let source = document_source(engine, tokens, doc, field, with_text)?;
    Ok(format!("{action}\n{source}\n"))
}

/// Writes the `_bulk` body of `docs` to `path` (ndjson, atomically) and, when `mapping_path`
/// is given, the body creating the index to it.
#[allow(clippy::too_many_arguments)]
pub fn write_bulk_file(
    path: &Path,
    mapping_path: Option<&Path>,
    engine: LuceneEngine,
    tokens: Option<&TokenMap>,
    docs: &[ExportDocument],
    index: &str,
    field: &str,
    with_text: bool,
) -> Result<()> {
    check_unique_ids(docs, "the documents to export")?;
    write_atomic(path, |out| {
        for doc in docs {
            let pair = bulk_pair(engine, tokens, doc, index, field, with_text)?;
            out.write_all(pair.as_bytes())
                .map_err(|e| EngineError::io(path, e))?;
        }
        Ok(())
    })?;
    if let Some(m) = mapping_path {
        let body = serde_json::to_string_pretty(&mapping(engine, field, with_text))
            .map_err(|e| EngineError::Input(e.to_string()))?;
        write_atomic(m, |out| {
            out.write_all(body.as_bytes())
                .and_then(|_| out.write_all(b"\n"))
                .map_err(|e| EngineError::io(m, e))
        })?;
    }
    Ok(())
}

/// Sends `docs` to the engine at `url`: creates `index` with the mapping if it does not
/// exist (`HEAD /INDEX` answering 404), then `POST /_bulk` in requests of `batch_size`
/// documents; an answer with `"errors": true` is an error quoting the first failed item.
/// `progress` gets the number of documents sent.
#[allow(clippy::too_many_arguments)]
pub fn post_bulk(
    url: &str,
    auth: Option<(&str, &str)>,
    engine: LuceneEngine,
    tokens: Option<&TokenMap>,
    docs: &[ExportDocument],
    index: &str,
    field: &str,
    with_text: bool,
    batch_size: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<()> {
    check_unique_ids(docs, "the documents to export")?;
    let url = url.trim_end_matches('/');
    let http = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(300))
        .build()
        .map_err(|e| EngineError::Input(format!("cannot start an HTTP client: {e}")))?;
    let with_auth = |b: reqwest::blocking::RequestBuilder| match auth {
        Some((user, password)) => b.basic_auth(user, Some(password)),
        None => b,
    };
    let fail = |method: &str, target: &str, message: String| EngineError::Http {
        method: method.into(),
        url: target.into(),
        message,
    };
    let index_url = format!("{url}/{index}");
    let head = with_auth(http.head(&index_url))
        .send()
        .map_err(|e| fail("HEAD", &index_url, e.to_string()))?;
    if head.status() == reqwest::StatusCode::NOT_FOUND {
        let r = with_auth(http.put(&index_url))
            .json(&mapping(engine, field, with_text))
            .send()
            .map_err(|e| fail("PUT", &index_url, e.to_string()))?;
        if !r.status().is_success() {
            let status = r.status();
            return Err(fail(
                "PUT",
                &index_url,
                format!("{status}: {}", r.text().unwrap_or_default()),
            ));
        }
    }
    let bulk_url = format!("{url}/_bulk");
    let mut sent = 0;
    for batch in docs.chunks(batch_size.max(1)) {
        let mut body = String::new();
        for doc in batch {
            body.push_str(&bulk_pair(engine, tokens, doc, index, field, with_text)?);
        }
        let r = with_auth(http.post(&bulk_url))
            .header("Content-Type", "application/x-ndjson")
            .body(body)
            .send()
            .map_err(|e| fail("POST", &bulk_url, e.to_string()))?;
        let status = r.status();
        let text = r
            .text()
            .map_err(|e| fail("POST", &bulk_url, e.to_string()))?;
        if !status.is_success() {
            return Err(fail(
                "POST",
                &bulk_url,
                format!("{status}: {}", text.chars().take(500).collect::<String>()),
            ));
        }
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if answer.get("errors") == Some(&Value::Bool(true)) {
            let first = answer["items"]
                .as_array()
                .and_then(|items| items.iter().find(|i| i["index"]["error"].is_object()))
                .map(|i| i["index"].to_string())
                .unwrap_or_default();
            return Err(fail(
                "POST",
                &bulk_url,
                format!("documents {}..{}: {first}", sent + 1, sent + batch.len()),
            ));
        }
        sent += batch.len();
        progress(sent);
    }
    Ok(())
}
