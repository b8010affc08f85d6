//! Text inputs: one UTF-8 text per line, or one JSON object per line with the text in a
//! named field (`--jsonl-field`), from a file or standard input; and corpus or queries
//! files that are BEIR JSONL (by extension) or plain lines.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// The bytes of an input: the file `path` (a regular file or a pipe; a directory or a
/// device such as `/dev/zero` is an error), or standard input when `None`.
pub fn read_input(path: Option<&Path>) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    match path {
        Some(p) => {
            let io = |source| DataError::Io {
                path: p.to_path_buf(),
                source,
            };
            splade_sparse::files::check_readable_stream(p).map_err(io)?;
            bytes = std::fs::read(p).map_err(io)?;
        }
        None => {
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|source| DataError::Io {
                    path: PathBuf::from("<stdin>"),
                    source,
                })?;
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

fn parse_error(source: &str, line: usize, message: impl Into<String>) -> DataError {
    DataError::Parse {
        path: PathBuf::from(source),
        line,
        message: message.into(),
    }
}

/// The input's lines decoded as UTF-8, with 1-based line numbers.
fn utf8_lines<'a>(
    bytes: &'a [u8],
    source: &'a str,
) -> impl Iterator<Item = Result<(usize, &'a str)>> + 'a {
    lines(bytes).enumerate().map(move |(i, line)| {
        let n = i + 1;
        std::str::from_utf8(line).map(|l| (n, l)).map_err(|e| {
            parse_error(
                source,
                n,
                format!("invalid UTF-8 at byte {}", e.valid_up_to()),
            )
        })
    })
}

/// A JSONL line's field, or an error naming the source, line and field.
fn json_field(line: &str, field: &str, n: usize, source: &str) -> Result<serde_json::Value> {
    let mut value: serde_json::Value = serde_json::from_str(line)
        .map_err(|e| parse_error(source, n, format!("invalid JSON: {e}")))?;
    value
        .get_mut(field)
        .map(serde_json::Value::take)
        .ok_or_else(|| parse_error(source, n, format!("no field '{field}'")))
}

/// Whether a line is skipped: in JSONL (`jsonl`), a blank line holds no record; in plain
/// text every line is a text (an empty line an empty text).
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
                    _ => Err(parse_error(
                        source,
                        n,
                        format!("field '{field}' is not a string"),
                    )),
                },
            }
        })
        .collect()
}

/// Reads an id field (a string or an integer) from every non-blank line of a JSONL input.
/// Ids must be non-empty and free of control characters ([`crate::check_id`]).
pub fn parse_ids(bytes: &[u8], id_field: &str, source: &str) -> Result<Vec<String>> {
    utf8_lines(bytes, source)
        .filter(|line| !skipped(line, true))
        .map(|line| {
            let (n, line) = line?;
            let id = match json_field(line, id_field, n, source)? {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(x) => x.to_string(),
                _ => {
                    return Err(parse_error(
                        source,
                        n,
                        format!("field '{id_field}' is not a string or number"),
                    ))
                }
            };
            crate::check_id(&id)
                .map_err(|m| parse_error(source, n, format!("field '{id_field}': {m}")))?;
            Ok(id)
        })
        .collect()
}

/// Names an input for error messages: its path, or `<stdin>`.
pub fn source_name(path: Option<&Path>) -> String {
    path.map_or_else(|| "<stdin>".to_string(), |p| p.display().to_string())
}

/// `(id, text)` of a corpus or queries file: BEIR JSONL when the extension is `.jsonl`
/// (`_id`, `text`, and with `join_title` a non-empty `title` before the text), else plain
/// text with one text per line (id = 1-based line number).
pub fn read_texts(path: &Path, join_title: bool) -> Result<Vec<(String, String)>> {
    let is_jsonl = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
    if is_jsonl {
        return crate::beir::read_jsonl_texts(path, join_title);
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
        assert_eq!(
            parse_texts(b"\xef\xbb\xbfa\n", None, "x").unwrap(),
            vec!["a"]
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
    fn ids_are_strings_or_numbers_without_control_characters() {
        let ids = parse_ids(b"{\"_id\":\"a\"}\n\n{\"_id\":7}\n", "_id", "f").unwrap();
        assert_eq!(ids, vec!["a", "7"]);
        let e = parse_ids(b"{\"_id\":[1]}\n", "_id", "f").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        let e = parse_ids(b"{\"_id\":\"a\\tb\"}\n", "_id", "f").unwrap_err();
        assert!(e.to_string().contains("control character"), "{e}");
    }

    #[test]
    fn jsonl_errors_name_line_and_field() {
        let ok = parse_texts(b"{\"text\":\"hi\"}\n\n{\"text\":\"\"}\n", Some("text"), "f").unwrap();
        assert_eq!(ok, vec!["hi", ""]);
        let e = parse_texts(b"{\"text\":\"hi\"}\n{\"body\":1}\n", Some("text"), "f").unwrap_err();
        assert!(e.to_string().contains("f: line 2: no field 'text'"), "{e}");
        let e = parse_texts(b"{\"text\":3}\n", Some("text"), "f").unwrap_err();
        assert!(e.to_string().contains("not a string"), "{e}");
        let e = parse_texts(b"{oops\n", Some("text"), "f").unwrap_err();
        assert!(e.to_string().contains("line 1: invalid JSON"), "{e}");
    }

    #[test]
    fn devices_are_refused() {
        #[cfg(unix)]
        {
            let e = read_input(Some(Path::new("/dev/zero"))).unwrap_err();
            assert!(e.to_string().contains("character device"), "{e}");
        }
    }
}
