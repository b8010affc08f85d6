//! Building training rows: (anchor, positive, negative) triplets from labelled sentence pairs,
//! (query, relevant document) pairs from BEIR qrels, and hard negatives mined with the index.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use splade_encoder::{EncodeOptions, SparseEncoder};

use crate::error::Result;
use splade_index::SearchOptions;

/// Reads labelled sentence pairs as `(sentence1, sentence2, duplicate)`, from either
/// - a `pairs.tsv` (header `sentence1 sentence2 label`, tab-separated, no quoting), or
/// - the Quora release file (header `id qid1 qid2 question1 question2 is_duplicate`,
///   tab-separated with CSV quoting),
///
/// plain or gzip-compressed (`.gz`). Errors name the file and line.
pub fn read_labelled_pairs(
    path: &Path,
) -> std::result::Result<Vec<(String, String, bool)>, crate::data::DataError> {
    use crate::data::DataError;
    let name = path.display().to_string();
    let io = |source: std::io::Error| DataError::Io {
        path: name.clone(),
        source,
    };
    let raw = std::fs::read(path).map_err(io)?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(io)?;
        out
    } else {
        raw
    };
    let header_line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let header: Vec<String> = String::from_utf8_lossy(header_line)
        .trim_end()
        .split('\t')
        .map(str::to_string)
        .collect();
    let (a, b, label, quoted) = if header.iter().any(|h| h == "question1") {
        ("question1", "question2", "is_duplicate", true)
    } else {
        ("sentence1", "sentence2", "label", false)
    };
    let position = |col: &str| {
        header
            .iter()
            .position(|h| h == col)
            .ok_or_else(|| DataError::Columns {
                path: name.clone(),
                message: format!("no column '{col}' (columns: {})", header.join(", ")),
            })
    };
    let (pa, pb, pl) = (position(a)?, position(b)?, position(label)?);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .quoting(quoted)
        .flexible(true)
        .from_reader(bytes.as_slice());
    let mut pairs = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| DataError::Record {
            path: name.clone(),
            line: e.position().map_or(0, |p| p.line() as usize),
            message: e.to_string(),
        })?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let field = |i: usize| {
            record.get(i).ok_or_else(|| DataError::Record {
                path: name.clone(),
                line,
                message: format!("{} fields, expected at least {}", record.len(), i + 1),
            })
        };
        let duplicate = match field(pl)?.trim() {
            "1" | "1.0" => true,
            "0" | "0.0" => false,
            other => {
                return Err(DataError::Record {
                    path: name.clone(),
                    line,
                    message: format!("label '{other}' is not 0 or 1"),
                })
            }
        };
        let (s1, s2) = (field(pa)?, field(pb)?);
        if s1.is_empty() || s2.is_empty() {
            continue;
        }
        pairs.push((s1.to_string(), s2.to_string(), duplicate));
    }
    Ok(pairs)
}

/// Drops pairs that also occur (in either order) in `exclude`, e.g. evaluation pairs that a
/// raw release file contains too.
pub fn exclude_pairs(
    pairs: Vec<(String, String, bool)>,
    exclude: &[(String, String, bool)],
) -> Vec<(String, String, bool)> {
    let banned: HashSet<(&str, &str)> = exclude
        .iter()
        .flat_map(|(a, b, _)| [(a.as_str(), b.as_str()), (b.as_str(), a.as_str())])
        .collect();
    pairs
        .into_iter()
        .filter(|(a, b, _)| !banned.contains(&(a.as_str(), b.as_str())))
        .collect()
}

/// Triplets from labelled pairs, the way the quora-duplicates triplets were built: every
/// duplicate pair (a, p) gives anchor a and positive p, and a's hard negative is a question
/// labelled *not* a duplicate of a (the first one, in file order). Pairs whose anchor has no
/// labelled non-duplicate are skipped. With `both_directions`, (p, a) is used as well.
pub fn triplets_from_pairs(
    pairs: &[(String, String, bool)],
    both_directions: bool,
) -> Vec<Vec<String>> {
    let mut non_duplicates: HashMap<&str, Vec<&str>> = HashMap::new();
    for (a, b, duplicate) in pairs {
        if !duplicate {
            non_duplicates.entry(a).or_default().push(b);
            non_duplicates.entry(b).or_default().push(a);
        }
    }
    let mut rows = Vec::new();
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    for (a, b, duplicate) in pairs {
        if !duplicate || a == b {
            continue;
        }
        let directions: &[(&str, &str)] = if both_directions {
            &[(a, b), (b, a)]
        } else {
            &[(a, b)]
        };
        for &(anchor, positive) in directions {
            if !seen.insert((anchor, positive)) {
                continue;
            }
            let negative = non_duplicates
                .get(anchor)
                .and_then(|n| n.iter().find(|n| **n != positive && **n != anchor));
            if let Some(negative) = negative {
                rows.push(vec![
                    anchor.to_string(),
                    positive.to_string(),
                    negative.to_string(),
                ]);
            }
        }
    }
    rows
}

/// Adds `negatives` hard negatives to each (query id, document id) pair: the highest-ranked
/// documents of an exact SPLADE search for the query (`encode_query` against `encode_document`
/// of the whole corpus) that are not judged relevant to it. Returns rows of texts
/// `[query, positive, negative_1, …]`; a pair with fewer candidates than asked is dropped so
/// every row has the same columns.
pub fn mine_hard_negatives(
    encoder: &SparseEncoder,
    queries: &BTreeMap<String, String>,
    corpus: &BTreeMap<String, String>,
    pairs: &[(String, String)],
    negatives: usize,
    options: &EncodeOptions,
) -> Result<Vec<Vec<String>>> {
    let documents: Vec<(&String, &String)> = corpus.iter().collect();
    let index = splade_eval::corpus::encode_corpus_index(encoder, &documents, options)?;
    let mut relevant: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    for (q, d) in pairs {
        if queries.contains_key(q) {
            relevant.entry(q).or_default().insert(d);
        }
    }
    let query_ids: Vec<&str> = relevant.keys().copied().collect();
    let query_texts: Vec<&String> = query_ids.iter().map(|q| &queries[*q]).collect();
    let query_vectors = encoder.encode_query(&query_texts, options)?;
    let mut mined: HashMap<&str, Vec<&str>> = HashMap::new();
    for (qid, qv) in query_ids.iter().zip(query_vectors.rows()) {
        let judged = &relevant[qid];
        let hits = index.search(qv, &SearchOptions::new(negatives + judged.len()));
        let found: Vec<&str> = hits
            .iter()
            .filter_map(|h| index.id(h.doc))
            .filter(|id| !judged.contains(id))
            .take(negatives)
            .filter_map(|id| corpus.get_key_value(id).map(|(k, _)| k.as_str()))
            .collect();
        mined.insert(qid, found);
    }
    let mut rows = Vec::new();
    for (q, d) in pairs {
        let Some(found) = mined.get(q.as_str()) else {
            continue;
        };
        if found.len() < negatives {
            continue;
        }
        let mut row = vec![queries[q].clone(), corpus[d].clone()];
        row.extend(found.iter().map(|id| corpus[*id].clone()));
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &str, b: &str, d: bool) -> (String, String, bool) {
        (a.into(), b.into(), d)
    }

    #[test]
    fn reads_both_pair_layouts_plain_and_gzipped_and_excludes_pairs() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("pairs.tsv");
        std::fs::write(
            &plain,
            "sentence1\tsentence2\tlabel\na\tb\t1\nc \"q\"\td\t0\n",
        )
        .unwrap();
        let raw = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n0\t1\t2\ta\tb\t1\n1\t3\t4\t\"When do you use \"\"&\"\"?\"\te\t0\n2\t5\t6\tf\t\t0\n";
        let gz = dir.path().join("raw.tsv.gz");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::default(),
        );
        enc.write_all(raw.as_bytes()).unwrap();
        enc.finish().unwrap();
        let p = read_labelled_pairs(&plain).unwrap();
        assert_eq!(p, vec![p_("a", "b", true), p_("c \"q\"", "d", false)]);
        let r = read_labelled_pairs(&gz).unwrap();
        assert_eq!(
            r,
            vec![p_("a", "b", true), p_("When do you use \"&\"?", "e", false)]
        );
        assert_eq!(
            exclude_pairs(r, &[p_("b", "a", true)]),
            vec![p_("When do you use \"&\"?", "e", false)]
        );
        std::fs::write(&plain, "sentence1\tsentence2\tlabel\na\tb\tyes\n").unwrap();
        let e = read_labelled_pairs(&plain).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("'yes'"), "{e}");
    }

    fn p_(a: &str, b: &str, d: bool) -> (String, String, bool) {
        (a.into(), b.into(), d)
    }

    #[test]
    fn duplicates_become_triplets_with_a_labelled_negative() {
        let pairs = vec![
            p("how to learn rust", "best way to learn rust", true),
            p("how to learn rust", "how to learn go", false),
            p("why is the sky blue", "what makes the sky blue", true),
            p("what makes the sky blue", "why is grass green", false),
        ];
        let one = triplets_from_pairs(&pairs, false);
        assert_eq!(
            one,
            vec![vec![
                "how to learn rust",
                "best way to learn rust",
                "how to learn go"
            ]]
        );
        let both = triplets_from_pairs(&pairs, true);
        assert_eq!(
            both,
            vec![
                vec![
                    "how to learn rust",
                    "best way to learn rust",
                    "how to learn go"
                ],
                vec![
                    "what makes the sky blue",
                    "why is the sky blue",
                    "why is grass green"
                ],
            ]
        );
    }
}
