//! Reading texts: one UTF-8 text per line, or one JSON object per line (`--jsonl-field`).

use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

/// Where texts come from: a file, or stdin when `path` is `None`.
pub fn read_input(path: Option<&Path>) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    match path {
        Some(p) => {
            splade_sparse::files::check_readable_stream(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
        }
        None => {
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("cannot read standard input")?;
        }
    }
    Ok(bytes)
}

/// Splits input into lines: `\n` or `\r\n` separated, a final newline ends the last line
/// (it does not start an empty one), an empty line is an empty text. A UTF-8 byte-order
/// mark at the start is not part of the first line.
fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let empty = bytes.is_empty();
    body.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(move |_| !empty)
}

/// The input's lines decoded as UTF-8, with 1-based line numbers.
fn utf8_lines<'a>(
    bytes: &'a [u8],
    source: &'a str,
) -> impl Iterator<Item = Result<(usize, &'a str)>> + 'a {
    lines(bytes).enumerate().map(move |(i, line)| {
        let n = i + 1;
        std::str::from_utf8(line).map(|l| (n, l)).map_err(|e| {
            anyhow!(
                "{source}: line {n}: invalid UTF-8 at byte {}",
                e.valid_up_to()
            )
        })
    })
}

/// A JSONL line's field, or an error naming the source, line and field.
fn json_field(line: &str, field: &str, n: usize, source: &str) -> Result<serde_json::Value> {
    let mut value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| anyhow!("{source}: line {n}: invalid JSON: {e}"))?;
    value
        .get_mut(field)
        .map(serde_json::Value::take)
        .ok_or_else(|| anyhow!("{source}: line {n}: no field '{field}'"))
}

/// Whether a line is skipped: in JSONL (`jsonl`), a blank line holds no record and is
/// skipped, as every JSONL reader of splade-rs does; in plain text every line is a text
/// (an empty line an empty text).
fn skipped(line: &Result<(usize, &str)>, jsonl: bool) -> bool {
    jsonl && matches!(line, Ok((_, l)) if l.trim().is_empty())
}

/// Decodes the texts of an input; `source` names it in errors (with 1-based line numbers).
/// Plain text: one text per line. JSONL (`jsonl_field`): one object per non-blank line.
pub fn parse_texts(bytes: &[u8], jsonl_field: Option<&str>, source: &str) -> Result<Vec<String>> {
    utf8_lines(bytes, source)
        .filter(|line| !skipped(line, jsonl_field.is_some()))
        .map(|line| {
            let (n, line) = line?;
            match jsonl_field {
                None => Ok(line.to_string()),
                Some(field) => match json_field(line, field, n, source)? {
                    serde_json::Value::String(s) => Ok(s),
                    _ => bail!("{source}: line {n}: field '{field}' is not a string"),
                },
            }
        })
        .collect()
}

/// Reads an id field (a string or an integer) from every non-blank line of a JSONL input.
/// Ids must be non-empty and free of control characters (newlines, tabs), which no line
/// format of ids can hold.
pub fn parse_ids(bytes: &[u8], id_field: &str, source: &str) -> Result<Vec<String>> {
    utf8_lines(bytes, source)
        .filter(|line| !skipped(line, true))
        .map(|line| {
            let (n, line) = line?;
            let id = match json_field(line, id_field, n, source)? {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(x) => x.to_string(),
                _ => bail!("{source}: line {n}: field '{id_field}' is not a string or number"),
            };
            splade_index::readers::check_id(&id)
                .map_err(|m| anyhow!("{source}: line {n}: field '{id_field}': {m}"))?;
            Ok(id)
        })
        .collect()
}

/// Names an input for error messages.
pub fn source_name(path: Option<&Path>) -> String {
    path.map_or_else(|| "<stdin>".to_string(), |p| p.display().to_string())
}

/// Texts and ids of a corpus or queries file: BEIR JSONL (by extension) or plain lines.
pub fn read_texts(path: &Path, join_title: bool) -> Result<Vec<(String, String)>> {
    let is_jsonl = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
    if is_jsonl {
        return Ok(splade_eval::data::read_jsonl_texts(path, join_title)?);
    }
    let source = path.display().to_string();
    let texts = parse_texts(&read_input(Some(path))?, None, &source)?;
    Ok(texts
        .into_iter()
        .enumerate()
        .map(|(i, t)| ((i + 1).to_string(), t))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_empty_texts_and_drop_the_final_newline() {
        let t = parse_texts(b"a\n\nb\r\n", None, "x").unwrap();
        assert_eq!(t, vec!["a", "", "b"]);
        assert_eq!(parse_texts(b"", None, "x").unwrap(), Vec::<String>::new());
        assert_eq!(parse_texts(b"\n", None, "x").unwrap(), vec![""]);
        assert_eq!(
            parse_texts(b"no newline", None, "x").unwrap(),
            vec!["no newline"]
        );
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let err = parse_texts(b"ok\nbad \xff\n", None, "in.txt")
            .unwrap_err()
            .to_string();
        assert!(err.contains("in.txt: line 2: invalid UTF-8"), "{err}");
    }

    #[test]
    fn ids_are_strings_or_numbers() {
        let ids = parse_ids(b"{\"_id\":\"a\"}\n{\"_id\":7}\n", "_id", "f").unwrap();
        assert_eq!(ids, vec!["a", "7"]);
        let e = parse_ids(b"{\"_id\":[1]}\n", "_id", "f").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn jsonl_errors_name_line_and_field() {
        let ok = parse_texts(b"{\"text\":\"hi\"}\n{\"text\":\"\"}\n", Some("text"), "f").unwrap();
        assert_eq!(ok, vec!["hi", ""]);
        let e = parse_texts(b"{\"text\":\"hi\"}\n{\"body\":1}\n", Some("text"), "f").unwrap_err();
        assert!(e.to_string().contains("f: line 2: no field 'text'"), "{e}");
        let e = parse_texts(b"{\"text\":3}\n", Some("text"), "f").unwrap_err();
        assert!(e.to_string().contains("not a string"), "{e}");
        let e = parse_texts(b"{oops\n", Some("text"), "f").unwrap_err();
        assert!(e.to_string().contains("line 1: invalid JSON"), "{e}");
    }
}
