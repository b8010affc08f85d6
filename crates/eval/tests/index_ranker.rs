//! Ranking through the index crate gives exactly the brute-force ranking (documents, scores,
//! sentence-transformers' tie order by corpus id), so IR metrics are identical either way.

use proptest::prelude::*;
use splade_eval::ranking::id_ranks;
use splade_eval::{BruteForceRanker, IndexRanker, Ranker};
use splade_sparse::{Similarity, SparseBatch, SparseVector};

const DIM: usize = 40;

fn vector() -> impl Strategy<Value = SparseVector> {
    proptest::collection::btree_map(
        0u32..DIM as u32,
        prop_oneof![Just(0.5f32), Just(1.0f32), 0.01f32..3.0],
        0..8,
    )
    .prop_map(|m| SparseVector::from_pairs(m.into_iter().collect()).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn index_and_brute_force_rankings_are_identical(
        docs in proptest::collection::vec(vector(), 1..60),
        dupes in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        queries in proptest::collection::vec(vector(), 1..6),
        ids in proptest::collection::vec("[a-z0-9]{1,4}", 70),
        k in 1usize..30,
    ) {
        // Duplicated documents create exact score ties.
        let mut docs = docs;
        for d in &dupes {
            let copy = docs[d.index(docs.len())].clone();
            docs.push(copy);
        }
        // Distinct string ids whose order differs from the corpus order.
        let ids: Vec<String> = docs.iter().enumerate().map(|(i, _)| format!("{}-{i}", ids[i % ids.len()])).collect();
        let corpus = SparseBatch::from_vectors(DIM, &docs).unwrap();
        let queries = SparseBatch::from_vectors(DIM, &queries).unwrap();
        let ranks = id_ranks(&ids);
        let brute = BruteForceRanker::new(&corpus, Similarity::Dot, ranks.clone()).unwrap().top_k(&queries, k).unwrap();
        let index = IndexRanker::new(&corpus, &ranks).unwrap().top_k(&queries, k).unwrap();
        prop_assert_eq!(&brute, &index);
        // Approximate search with alpha = beta = 1 is the exact search.
        let approx = IndexRanker::new(&corpus, &ranks)
            .unwrap()
            .with_method(splade_index::Method::approximate(1.0, 1.0).unwrap())
            .top_k(&queries, k)
            .unwrap();
        prop_assert_eq!(brute, approx);
    }
}
