//! Token maps: the keys under which a term's weight goes into an OpenSearch or
//! Elasticsearch document or query, from the model's vocabulary (token id -> token).
//!
//! Rules (one key per token id, and one token id per key, so a map always decodes back to
//! the vector it came from):
//!
//! - Both engines refuse dots in feature names (`[sparse_vector] fields do not support dots
//!   in feature names`; the same for `rank_features`): `.` is written `%2E`, and `%` itself
//!   `%25`, so a key never holds a dot and the escaping cannot collide.
//! - WordPiece continuation pieces keep their `##` (`##ing` and `ing` are different terms
//!   with different weights; stripping the prefix would merge them).
//! - An empty token, and a token string the vocabulary holds twice (its later ids), get the
//!   key `%id:N` (N the token id), which no escaped token can equal (escaping writes `%`
//!   only before `25` or `2E`).
//! - Weights must be strictly positive in both engines: zero weights (no contribution to
//!   any score) are left out, as are weights below the smallest normal f32, which Lucene's
//!   feature fields refuse.

use std::collections::HashMap;

use serde_json::{Map, Value};
use splade_sparse::{SparseVector, SparseView};

use crate::error::{EngineError, Result};

/// The value Lucene stores for a feature weight (`FeatureField`: the float's top 9
/// significant bits, the rest cut off): what OpenSearch `rank_features` and Elasticsearch
/// `sparse_vector` keep of a document weight. Relative error below 2^-8.
pub fn lucene_feature_value(weight: f32) -> f32 {
    f32::from_bits((weight.to_bits() >> 15) << 15)
}

/// Token id <-> key, for one vocabulary.
#[derive(Debug, Clone)]
pub struct TokenMap {
    keys: Vec<String>,
    ids: HashMap<String, u32>,
    renamed: usize,
}

/// `%` and `.` percent-encoded.
fn escape(token: &str) -> String {
    let mut out = String::with_capacity(token.len());
    for c in token.chars() {
        match c {
            '%' => out.push_str("%25"),
            '.' => out.push_str("%2E"),
            c => out.push(c),
        }
    }
    out
}

impl TokenMap {
    /// The map of `vocabulary` (entry i = the token of id i).
    pub fn from_vocabulary(vocabulary: &[String]) -> Self {
        let mut keys = Vec::with_capacity(vocabulary.len());
        let mut ids = HashMap::with_capacity(vocabulary.len());
        let mut renamed = 0;
        for (id, token) in vocabulary.iter().enumerate() {
            let mut key = escape(token);
            if token.is_empty() || ids.contains_key(&key) {
                key = format!("%id:{id}");
                renamed += 1;
            }
            ids.insert(key.clone(), id as u32);
            keys.push(key);
        }
        Self { keys, ids, renamed }
    }

    /// Number of token ids.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Tokens written as `%id:N` (empty or repeated tokens).
    pub fn renamed(&self) -> usize {
        self.renamed
    }

    /// The key of token `id`.
    pub fn key(&self, id: u32) -> Option<&str> {
        self.keys.get(id as usize).map(String::as_str)
    }

    /// The token id of `key`.
    pub fn id(&self, key: &str) -> Option<u32> {
        self.ids.get(key).copied()
    }

    /// `{key: weight}` for `v` (zero and subnormal weights left out). A term id beyond the
    /// vocabulary is an error naming it.
    pub fn encode(&self, v: SparseView<'_>) -> Result<Map<String, Value>> {
        let mut map = Map::with_capacity(v.nnz());
        for (&t, &w) in v.indices().iter().zip(v.values()) {
            if w < f32::MIN_POSITIVE {
                continue;
            }
            let key = self.key(t).ok_or_else(|| {
                EngineError::Input(format!(
                    "term id {t} is beyond the vocabulary ({} tokens): the vectors were not made with this model",
                    self.len()
                ))
            })?;
            map.insert(key.to_string(), Value::from(w));
        }
        Ok(map)
    }

    /// The vector of a `{key: weight}` map (the inverse of [`Self::encode`]).
    pub fn decode(&self, map: &Map<String, Value>) -> Result<SparseVector> {
        let mut pairs = Vec::with_capacity(map.len());
        for (key, w) in map {
            let id = self
                .id(key)
                .ok_or_else(|| EngineError::Input(format!("unknown token key {key:?}")))?;
            let w = w.as_f64().ok_or_else(|| {
                EngineError::Input(format!("token {key:?}: weight {w} is not a number"))
            })?;
            pairs.push((id, w as f32));
        }
        pairs.sort_by_key(|p| p.0);
        let (i, v) = pairs.into_iter().unzip();
        SparseVector::new(i, v).map_err(|e| EngineError::Input(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(tokens: &[&str]) -> Vec<String> {
        tokens.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn keys_never_hold_dots_and_never_collide() {
        let v = vocab(&[
            "[PAD]", ".", "u.s", "%2E", "##ing", "ing", "", "ing", "%id:6", "a%b",
        ]);
        let m = TokenMap::from_vocabulary(&v);
        assert_eq!(m.key(1), Some("%2E"));
        assert_eq!(m.key(2), Some("u%2Es"));
        assert_eq!(m.key(3), Some("%252E"));
        assert_eq!(m.key(4), Some("##ing"));
        assert_eq!(m.key(6), Some("%id:6"));
        assert_eq!(m.key(7), Some("%id:7"), "a repeated token gets its id");
        assert_eq!(m.key(8), Some("%25id:6"));
        assert_eq!(m.renamed(), 2);
        let mut keys: Vec<&str> = (0..v.len() as u32).map(|i| m.key(i).unwrap()).collect();
        assert!(keys.iter().all(|k| !k.contains('.')));
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), v.len());
        for i in 0..v.len() as u32 {
            assert_eq!(m.id(m.key(i).unwrap()), Some(i));
        }
    }

    #[test]
    fn maps_round_trip_and_drop_zero_weights() {
        let m = TokenMap::from_vocabulary(&vocab(&["a", "b.c", "d", "e"]));
        let v = SparseVector::new(vec![0, 1, 2, 3], vec![0.5, 1.25, 0.0, 1e-40]).unwrap();
        let map = m.encode(v.view()).unwrap();
        assert_eq!(
            serde_json::Value::Object(map.clone()),
            serde_json::json!({"a": 0.5, "b%2Ec": 1.25})
        );
        let back = m.decode(&map).unwrap();
        assert_eq!(
            back,
            SparseVector::new(vec![0, 1], vec![0.5, 1.25]).unwrap()
        );
        let beyond = SparseVector::new(vec![9], vec![1.0]).unwrap();
        assert!(m
            .encode(beyond.view())
            .unwrap_err()
            .to_string()
            .contains("term id 9"));
    }

    #[test]
    fn lucene_keeps_nine_significant_bits() {
        for w in [0.001f32, 0.3, 1.0, 1.7, 2.999, 123.456] {
            let q = lucene_feature_value(w);
            assert!(q <= w && (w - q) / w < 1.0 / 256.0, "{w} -> {q}");
            assert_eq!(lucene_feature_value(q), q);
        }
        assert_eq!(lucene_feature_value(1.0), 1.0);
    }
}
