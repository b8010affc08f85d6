//! TREC run files: `qid Q0 docid rank score tag`, one hit per line, six whitespace-separated
//! fields (what trec_eval and pytrec_eval read).

use std::borrow::Cow;

/// A query or document id as one TREC run field: as it is, unless it holds whitespace; then
/// each whitespace character and each `%` is percent-encoded (its UTF-8 bytes as `%XX`:
/// `"Global warming:14"` becomes `"Global%20warming:14"`), so that every line keeps its six
/// fields. Ids never hold control characters (the readers refuse them).
///
/// ```
/// use splade_eval::trec::trec_field;
/// assert_eq!(trec_field("doc7"), "doc7");
/// assert_eq!(trec_field("100%"), "100%");
/// assert_eq!(trec_field("Global warming:14"), "Global%20warming:14");
/// assert_eq!(trec_field("a b%"), "a%20b%25");
/// ```
pub fn trec_field(id: &str) -> Cow<'_, str> {
    if !id.chars().any(char::is_whitespace) {
        return Cow::Borrowed(id);
    }
    let mut out = String::with_capacity(id.len() + 8);
    for c in id.chars() {
        if c.is_whitespace() || c == '%' {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One run line (without the line end): `qid Q0 docid rank score tag`, ids through
/// [`trec_field`], the score as Rust prints an `f32` (shortest round-trip form).
pub fn run_line(qid: &str, docid: &str, rank: usize, score: f32, tag: &str) -> String {
    format!(
        "{} Q0 {} {rank} {score} {tag}",
        trec_field(qid),
        trec_field(docid)
    )
}
