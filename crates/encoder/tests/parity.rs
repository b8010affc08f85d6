//! Parity with sentence-transformers 6.x on the committed fixtures of
//! `scripts/parity/generate_encoder_fixtures.py`: splade-tiny (a plain BertForMaskedLM folder)
//! on real Quora and SciFact texts plus edge cases, and four tiny random models covering
//! BERT/DistilBERT, tied/untied decoders, max/sum pooling, relu/log1p_relu, both folder
//! layouts, prompts, a vocab.txt tokenizer and different max lengths.

mod common;
use common::{fixtures, read_json, sparse, texts};

use serde_json::Value;
use splade_encoder::{
    default_model, EncodeOptions, Similarity, SparseBatch, SparseEncoder, SparseVector,
};

fn ids(v: &Value) -> Vec<usize> {
    serde_json::from_value(v.clone()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    serde_json::from_value(v.clone()).unwrap()
}

fn tol(v: f32) -> f32 {
    1e-4 * v.abs().max(1.0)
}

/// The criterion: identical active sets above 1e-6 (an index on one side only must be
/// below 1e-4 on the other), and |error| <= 1e-4 * max(1, |value|).
fn assert_vectors_match(ours: &SparseVector, expected: &SparseVector, what: &str) {
    let dense =
        |v: &SparseVector| -> std::collections::BTreeMap<u32, f32> { v.view().iter().collect() };
    let (a, b) = (dense(ours), dense(expected));
    let keys: std::collections::BTreeSet<u32> = a.keys().chain(b.keys()).copied().collect();
    for k in keys {
        let (x, y) = (
            a.get(&k).copied().unwrap_or(0.0),
            b.get(&k).copied().unwrap_or(0.0),
        );
        if x <= 1e-6 && y <= 1e-6 {
            continue;
        }
        if (x > 1e-6) != (y > 1e-6) {
            assert!(
                x.max(y) < 1e-4,
                "{what}: index {k} active on one side only: ours {x}, reference {y}"
            );
        }
        assert!(
            (x - y).abs() <= tol(y),
            "{what}: index {k}: ours {x}, reference {y}"
        );
    }
}

fn assert_batch_matches(ours: &SparseBatch, expected: &Value, labels: &[usize], what: &str) {
    let expected = expected.as_array().unwrap();
    assert_eq!(ours.len(), expected.len(), "{what}: row count");
    for (r, (row, exp)) in ours.rows().zip(expected).enumerate() {
        assert_vectors_match(
            &row.to_owned(),
            &sparse(exp),
            &format!("{what}, text #{}", labels[r]),
        );
    }
}

fn assert_close(ours: f32, expected: f32, what: &str) {
    assert!(
        (ours - expected).abs() <= tol(expected),
        "{what}: ours {ours}, reference {expected}"
    );
}

struct Case {
    name: &'static str,
    encoder: SparseEncoder,
    expected: Value,
    texts: Vec<String>,
}

impl Case {
    fn load(name: &'static str) -> Case {
        let dir = if name == "splade-tiny" {
            default_model::ensure_default_model().expect("fetch the default model")
        } else {
            fixtures().join("models").join(name)
        };
        let encoder = SparseEncoder::load(&dir, &candle_core::Device::Cpu).unwrap();
        Case {
            name,
            encoder,
            expected: read_json(&fixtures().join(name).join("expected.json")),
            texts: texts(),
        }
    }

    fn subset(&self, ids_value: &Value) -> (Vec<usize>, Vec<String>) {
        let ids = ids(ids_value);
        let texts = ids.iter().map(|&i| self.texts[i].clone()).collect();
        (ids, texts)
    }

    fn opts() -> EncodeOptions {
        EncodeOptions::default()
    }

    fn run(&mut self) {
        let e = &self.expected;
        let name = self.name;
        // Configuration read from the folder.
        assert_eq!(
            self.encoder.max_seq_length() as u64,
            e["max_seq_length"].as_u64().unwrap(),
            "{name}: max_seq_length"
        );
        assert_eq!(
            self.encoder.pooling().strategy.name(),
            e["pooling_strategy"],
            "{name}: pooling"
        );
        assert_eq!(
            self.encoder.pooling().activation.name(),
            e["activation_function"],
            "{name}: activation"
        );
        assert_eq!(
            self.encoder.similarity_fn().name(),
            e["similarity_fn_name"],
            "{name}: similarity_fn_name"
        );

        // encode, and the token ids behind it.
        let (text_ids, sub) = self.subset(&e["text_ids"]);
        let batch = self.encoder.encode(&sub, &Self::opts()).unwrap();
        assert_batch_matches(&batch, &e["encode"], &text_ids, &format!("{name} encode"));
        if let Some(expected_ids) = e.get("input_ids") {
            let ours = self.encoder.tokenize(&sub, &Self::opts()).unwrap();
            for ((t, exp), id) in ours
                .iter()
                .zip(expected_ids.as_array().unwrap())
                .zip(&text_ids)
            {
                let exp: Vec<u32> = serde_json::from_value(exp.clone()).unwrap();
                assert_eq!(
                    t.ids, exp,
                    "{name}: input ids of text #{id} {:?}",
                    self.texts[*id]
                );
            }
        }
        // Same vectors whatever the batch size (length-sorted batching keeps input order).
        let one_by_one = self
            .encoder
            .encode(
                &sub[..6.min(sub.len())],
                &EncodeOptions {
                    batch_size: 1,
                    ..Self::opts()
                },
            )
            .unwrap();
        for r in 0..one_by_one.len() {
            assert_vectors_match(
                &one_by_one.row(r).unwrap().to_owned(),
                &batch.row(r).unwrap().to_owned(),
                &format!("{name}: batch size 1, row {r}"),
            );
        }
        // Pre-tokenized rows through `encode_tokens`, in another grouping: the same vectors.
        let tokens = self.encoder.tokenize(&sub, &Self::opts()).unwrap();
        let mut rows: Vec<&splade_encoder::TokenizedText> = tokens.iter().collect();
        rows.reverse();
        let reversed = self.encoder.encode_tokens(&rows, None).unwrap();
        for (r, v) in reversed.iter().rev().enumerate() {
            assert_vectors_match(
                v,
                &batch.row(r).unwrap().to_owned(),
                &format!("{name}: encode_tokens row {r}"),
            );
        }
        // Truncation: left keeps the end, refusing names the length, right is `tokenize`.
        let long = vec!["word"; 2 * self.encoder.max_seq_length()].join(" ") + " last";
        let max = self.encoder.max_seq_length();
        let right = self
            .encoder
            .tokenize_truncating(&[&long], &Self::opts(), splade_encoder::Truncation::Right)
            .unwrap();
        assert_eq!(
            right,
            self.encoder.tokenize(&[&long], &Self::opts()).unwrap()
        );
        let left = self
            .encoder
            .tokenize_truncating(&[&long], &Self::opts(), splade_encoder::Truncation::Left)
            .unwrap();
        assert_eq!((right[0].ids.len(), left[0].ids.len()), (max, max));
        assert_ne!(
            right[0].ids, left[0].ids,
            "{name}: left truncation keeps the end"
        );
        match self.encoder.tokenize_truncating(
            &[&long],
            &Self::opts(),
            splade_encoder::Truncation::Refuse,
        ) {
            Err(splade_encoder::EncoderError::InputTooLong { limit, given, .. }) => {
                assert_eq!(limit, max);
                assert!(given > max);
            }
            other => panic!("{name}: a too-long text was not refused: {other:?}"),
        }
        let short = self
            .encoder
            .tokenize_truncating(&sub[..1], &Self::opts(), splade_encoder::Truncation::Refuse)
            .unwrap();
        assert_eq!(
            short,
            self.encoder.tokenize(&sub[..1], &Self::opts()).unwrap()
        );
        assert!(matches!(
            self.encoder.encode_tokens(&[&left[0]], Some(0)),
            Err(splade_encoder::EncoderError::InvalidArgument(_))
        ));

        // Prompts.
        if let Some(prompt_ids) = e.get("prompt_text_ids") {
            let (pids, ptexts) = self.subset(prompt_ids);
            let q = self.encoder.encode_query(&ptexts, &Self::opts()).unwrap();
            assert_batch_matches(
                &q,
                &e["encode_query"],
                &pids,
                &format!("{name} encode_query"),
            );
            let d = self
                .encoder
                .encode_document(&ptexts, &Self::opts())
                .unwrap();
            assert_batch_matches(
                &d,
                &e["encode_document"],
                &pids,
                &format!("{name} encode_document"),
            );
            for (key, prompt_name) in [
                ("encode_query_input_ids", "query"),
                ("encode_document_input_ids", "document"),
            ] {
                let opts = EncodeOptions {
                    prompt_name: self
                        .encoder
                        .prompts()
                        .contains_key(prompt_name)
                        .then(|| prompt_name.to_string()),
                    ..Self::opts()
                };
                let ours = self.encoder.tokenize(&ptexts, &opts).unwrap();
                let exp: Vec<Vec<u32>> = serde_json::from_value(e[key].clone()).unwrap();
                assert_eq!(
                    ours.iter().map(|t| t.ids.clone()).collect::<Vec<_>>(),
                    exp,
                    "{name}: {key}"
                );
            }
        }

        // max_active_dims.
        let mad = &e["max_active_dims"];
        let (mad_ids, mad_texts) = self.subset(&mad["text_ids"]);
        for k in [1usize, 8, 32] {
            let opts = EncodeOptions {
                max_active_dims: Some(k),
                ..Self::opts()
            };
            let ours = self.encoder.encode(&mad_texts, &opts).unwrap();
            assert_batch_matches(
                &ours,
                &mad[k.to_string()],
                &mad_ids,
                &format!("{name} max_active_dims={k}"),
            );
        }

        // similarity and similarity_pairwise, with every function, including zero vectors.
        let pos = |id: usize| text_ids.iter().position(|&t| t == id).unwrap();
        let sims = &e["similarity"];
        let rows = |key: &str| -> SparseBatch {
            let mut b = SparseBatch::new(self.encoder.dim());
            for id in ids(&sims[key]) {
                b.push(batch.row(pos(id)).unwrap()).unwrap();
            }
            b
        };
        let (queries, docs) = (rows("query_ids"), rows("doc_ids"));
        let zero = SparseVector::default();
        let mut zero1 = SparseBatch::new(self.encoder.dim());
        zero1.push(zero.view()).unwrap();
        let mut zero2 = zero1.clone();
        zero2.push(zero.view()).unwrap();
        let mut zero_vs = SparseBatch::new(self.encoder.dim());
        zero_vs.push(docs.row(0).unwrap()).unwrap();
        zero_vs.push(zero.view()).unwrap();
        let original = self.encoder.similarity_fn();
        for f in Similarity::ALL {
            self.encoder.set_similarity_fn(f);
            let exp = &sims[f.name()];
            let m = self.encoder.similarity(&queries, &docs);
            for (r, row) in exp["matrix"].as_array().unwrap().iter().enumerate() {
                for (c, v) in floats(row).into_iter().enumerate() {
                    assert_close(m.get(r, c), v, &format!("{name} {f} similarity [{r},{c}]"));
                }
            }
            let pw = self.encoder.similarity_pairwise(&queries, &docs);
            for (i, v) in floats(&exp["pairwise"]).into_iter().enumerate() {
                assert_close(pw[i], v, &format!("{name} {f} similarity_pairwise [{i}]"));
            }
            let zm = self.encoder.similarity(&zero1, &docs);
            for (i, v) in floats(&exp["zero_matrix"]).into_iter().enumerate() {
                assert_close(
                    zm.data[i],
                    v,
                    &format!("{name} {f} zero-vector similarity [{i}]"),
                );
            }
            let zp = self.encoder.similarity_pairwise(&zero2, &zero_vs);
            for (i, v) in floats(&exp["zero_pairwise"]).into_iter().enumerate() {
                assert_close(zp[i], v, &format!("{name} {f} zero-vector pairwise [{i}]"));
            }
        }
        self.encoder.set_similarity_fn(original);

        // decode: same tokens in the same order (equal weights may swap), same weights.
        let check_decode = |ours: Vec<(String, f32)>, exp: &Value, what: String| {
            let exp: Vec<(String, f32)> = serde_json::from_value(exp.clone()).unwrap();
            assert_eq!(ours.len(), exp.len(), "{what}: length");
            for (i, ((t, w), (et, ew))) in ours.iter().zip(&exp).enumerate() {
                assert_close(*w, *ew, &format!("{what}: weight at rank {i}"));
                if t != et {
                    let tied = exp.iter().any(|(x, xw)| x == t && (xw - ew).abs() <= 1e-5);
                    assert!(
                        tied,
                        "{what}: rank {i}: ours {t} ({w}), reference {et} ({ew})"
                    );
                }
            }
        };
        let dec = &e["decode"];
        let top_k = dec["top_k"].as_u64().unwrap() as usize;
        for (id, exp) in ids(&dec["text_ids"])
            .into_iter()
            .zip(dec["tokens"].as_array().unwrap())
        {
            check_decode(
                self.encoder
                    .decode(batch.row(pos(id)).unwrap(), Some(top_k)),
                exp,
                format!("{name} decode text #{id}"),
            );
        }
        let all = &e["decode_all"];
        for (id, exp) in ids(&all["text_ids"])
            .into_iter()
            .zip(all["tokens"].as_array().unwrap())
        {
            check_decode(
                self.encoder.decode(batch.row(pos(id)).unwrap(), None),
                exp,
                format!("{name} decode(top_k=None) text #{id}"),
            );
        }

        // sparsity over the encoded subset.
        let stats = SparseEncoder::sparsity(&batch);
        let exp_active = e["sparsity"]["active_dims"].as_f64().unwrap();
        assert!(
            (stats.active_dims - exp_active).abs() <= 0.01 * exp_active.max(1.0),
            "{name}: active_dims {} vs {exp_active}",
            stats.active_dims
        );
        let exp_ratio = e["sparsity"]["sparsity_ratio"].as_f64().unwrap();
        assert!(
            (stats.sparsity_ratio - exp_ratio).abs() < 1e-4,
            "{name}: sparsity_ratio"
        );

        // intersection.
        for item in e["intersection"].as_array().unwrap() {
            let pair = ids(&item["text_ids"]);
            let ours = SparseEncoder::intersection(
                batch.row(pos(pair[0])).unwrap(),
                batch.row(pos(pair[1])).unwrap(),
            );
            assert_vectors_match(
                &ours,
                &sparse(item),
                &format!("{name} intersection {pair:?}"),
            );
        }
    }
}

#[test]
fn splade_tiny_matches_sentence_transformers() {
    Case::load("splade-tiny").run();
}

#[test]
fn random_distilbert_tied_seed_layout_matches() {
    Case::load("distilbert-tied-seedlayout").run();
}

#[test]
fn random_distilbert_untied_v6_layout_matches() {
    Case::load("distilbert-untied-v6").run();
}

#[test]
fn random_bert_tied_v6_layout_with_prompts_matches() {
    Case::load("bert-tied-v6").run();
}

#[test]
fn random_bert_untied_seed_layout_vocab_txt_matches() {
    Case::load("bert-untied-seedlayout").run();
}
