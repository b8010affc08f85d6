//! Building training rows: (anchor, positive, negative) triplets from labelled sentence pairs,
//! (query, relevant document) pairs from BEIR qrels, and hard negatives mined with the index.

use std::collections::{BTreeMap, HashMap, HashSet};

use splade_encoder::{EncodeOptions, EncoderError, Result, SparseEncoder};
use splade_index::{IndexBuilder, SearchOptions};

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
    let doc_ids: Vec<&String> = corpus.keys().collect();
    let doc_texts: Vec<&String> = corpus.values().collect();
    let doc_vectors = encoder.encode_document(&doc_texts, options)?;
    let index_error =
        |e: splade_index::IndexError| EncoderError::InvalidArgument(format!("index: {e}"));
    let mut builder = IndexBuilder::new(encoder.dim());
    for (id, row) in doc_ids.iter().zip(doc_vectors.rows()) {
        builder.add(id, row).map_err(index_error)?;
    }
    let index = builder.build().map_err(index_error)?;
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
