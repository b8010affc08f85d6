//! Hard-negative mining against an independent brute-force ranking.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Device;
use splade_encoder::{EncodeOptions, SparseEncoder};
use splade_train::triplets::mine_hard_negatives;

#[test]
fn mined_negatives_are_the_best_ranked_non_relevant_documents() {
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/encoder/models/bert-tied-v6");
    let encoder = SparseEncoder::load(&model, &Device::Cpu).unwrap();
    let corpus: BTreeMap<String, String> = [
        "rust is a systems programming language",
        "python is popular for data science",
        "the sky is blue because of rayleigh scattering",
        "grass is green because of chlorophyll",
        "learning a programming language takes practice",
        "the ocean is salty because of dissolved minerals",
        "java runs on the virtual machine",
        "sunsets are red because light travels further",
    ]
    .iter()
    .enumerate()
    .map(|(i, t)| (format!("d{i}"), t.to_string()))
    .collect();
    let queries: BTreeMap<String, String> = [
        ("q1", "how do i learn a programming language"),
        ("q2", "why is the sky blue"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let pairs = vec![
        ("q1".to_string(), "d4".to_string()),
        ("q1".to_string(), "d0".to_string()),
        ("q2".to_string(), "d2".to_string()),
    ];
    let options = EncodeOptions::default();
    let rows = mine_hard_negatives(&encoder, &queries, &corpus, &pairs, 2, &options).unwrap();
    assert_eq!(rows.len(), 3);

    // Independent ranking: every document scored with the model's dot product.
    let docs: Vec<&String> = corpus.values().collect();
    let ids: Vec<&String> = corpus.keys().collect();
    let d = encoder.encode_document(&docs, &options).unwrap();
    for (row, (qid, did)) in rows.iter().zip(&pairs) {
        assert_eq!(row[0], queries[qid]);
        assert_eq!(row[1], corpus[did]);
        let q = encoder.encode_query(&[&queries[qid]], &options).unwrap();
        let scores = splade_encoder::Similarity::Dot;
        let mut ranked: Vec<(f32, usize)> = d
            .rows()
            .enumerate()
            .map(|(i, r)| (scores.score(&q.row(0).unwrap(), &r), i))
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let relevant: Vec<&str> = pairs
            .iter()
            .filter(|(q, _)| q == qid)
            .map(|(_, d)| d.as_str())
            .collect();
        let expected: Vec<&String> = ranked
            .iter()
            .filter(|(s, _)| *s > 0.0)
            .map(|(_, i)| ids[*i])
            .filter(|id| !relevant.contains(&id.as_str()))
            .take(2)
            .map(|id| &corpus[id])
            .collect();
        assert_eq!(row[2..].iter().collect::<Vec<_>>(), expected, "{qid}");
    }
}
