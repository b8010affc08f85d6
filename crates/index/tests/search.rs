//! Exact search against the brute-force reference on random collections.

mod common;

use common::{bits, build, builder, collection, query, reference, xorshift};
use proptest::prelude::*;
use splade_index::{
    brute_force_top_k, prune_query, Method, Reorder, SearchOptions, Searcher, Traversal,
};
use splade_sparse::SparseVector;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Pruned exact search returns exactly the brute-force top k: same documents, same
    /// order, bit-identical scores, ties to the smaller document number.
    #[test]
    fn exact_search_equals_brute_force(
        (c, queries, k) in collection().prop_flat_map(|c| {
            let dim = c.dim;
            (Just(c), prop::collection::vec(query(dim), 1..6), 1usize..30)
        })
    ) {
        let index = build(&c);
        let forced = |traversal| SearchOptions { k, traversal, ..SearchOptions::default() };
        let (blocks, terms) = (forced(Traversal::BlockMax), forced(Traversal::TermAtATime));
        for q in &queries {
            let expected = reference(&c.docs, q, k);
            prop_assert_eq!(bits(&index.top_k(q.view(), k)), bits(&expected));
            prop_assert_eq!(bits(&index.search(q.view(), &blocks)), bits(&expected));
            prop_assert_eq!(bits(&index.search(q.view(), &terms)), bits(&expected));
            prop_assert_eq!(bits(&index.brute_force_top_k(q.view(), k)), bits(&expected));
            let views = c.docs.iter().map(|d| d.view());
            prop_assert_eq!(bits(&brute_force_top_k(views, q.view(), k)), bits(&expected));
        }
    }

    /// With and without reordering, and approximate search with alpha = beta = 1, return
    /// the brute-force top k (document numbers stay insertion numbers; ties to the smaller
    /// one). Approximate search with other knobs returns a subset of documents with exact
    /// scores, ranked consistently.
    #[test]
    fn reordering_and_approximate_knobs(
        (c, queries, k, alpha, beta) in collection().prop_flat_map(|c| {
            let dim = c.dim;
            (Just(c), prop::collection::vec(query(dim), 1..6), 1usize..30, 0.05f32..=1.0, 0.05f32..=1.0)
        })
    ) {
        let plain = builder(&c).reorder(Reorder::None).build().unwrap();
        let reordered = builder(&c).reorder(Reorder::HeaviestTerms).build().unwrap();
        let clustered = builder(&c).reorder(Reorder::Clustered).build().unwrap();
        let same = SearchOptions { k, method: Method::approximate(1.0, 1.0).unwrap(), max_query_terms: None, ..SearchOptions::default() };
        let approx = SearchOptions { k, method: Method::approximate(alpha, beta).unwrap(), max_query_terms: None, ..SearchOptions::default() };
        for q in &queries {
            let expected = bits(&reference(&c.docs, q, k));
            prop_assert_eq!(bits(&plain.top_k(q.view(), k)), expected.clone());
            prop_assert_eq!(bits(&reordered.top_k(q.view(), k)), expected.clone());
            prop_assert_eq!(bits(&plain.search(q.view(), &same)), expected.clone());
            prop_assert_eq!(bits(&reordered.search(q.view(), &same)), expected.clone());
            prop_assert_eq!(bits(&clustered.top_k(q.view(), k)), expected.clone());
            prop_assert_eq!(bits(&clustered.search(q.view(), &same)), expected.clone());
            let mut searcher = Searcher::new(&reordered);
            let got = searcher.search(q.view(), &approx);
            prop_assert!(searcher.stats().blocks_scored <= searcher.stats().blocks_candidate);
            prop_assert!(got.len() <= k);
            prop_assert!(got.windows(2).all(|w| w[0].rank_cmp(&w[1]).is_lt()));
            for h in &got {
                let exact = q.view().dot(&c.docs[h.doc as usize].view());
                prop_assert_eq!(h.score.to_bits(), exact.to_bits(), "approximate scores are exact");
            }
        }
    }

    /// Query term pruning is exact for the pruned query; batch search equals one by one.
    #[test]
    fn pruning_and_batches_are_consistent(
        (c, queries, k, n) in collection().prop_flat_map(|c| {
            let dim = c.dim;
            (Just(c), prop::collection::vec(query(dim), 1..8), 1usize..30, 1usize..10)
        })
    ) {
        let index = build(&c);
        let options = SearchOptions { k, method: Method::Exact, max_query_terms: Some(n), ..SearchOptions::default() };
        let views: Vec<_> = queries.iter().map(|q| q.view()).collect();
        let batch = index.search_batch(&views, &options, Some(2)).unwrap();
        let brute = index
            .search_batch(&views, &SearchOptions { method: Method::BruteForce, ..options }, None)
            .unwrap();
        for ((q, got), brute) in queries.iter().zip(&batch).zip(&brute) {
            let pruned = prune_query(q.view(), n);
            prop_assert!(pruned.nnz() <= n);
            let expected = reference(&c.docs, &pruned, k);
            prop_assert_eq!(bits(got), bits(&expected));
            prop_assert_eq!(bits(brute), bits(&expected));
            prop_assert_eq!(bits(&index.search(q.view(), &options)), bits(&expected));
        }
    }

    /// Queries with negative weights (not SPLADE output, but valid vectors) are still exact.
    #[test]
    fn negative_query_weights_are_exact(
        (c, q, signs, k) in collection().prop_flat_map(|c| {
            let dim = c.dim;
            (Just(c), query(dim), prop::collection::vec(any::<bool>(), 50), 1usize..30)
        })
    ) {
        let index = build(&c);
        let (idx, vals) = q.clone().into_parts();
        let vals = vals.iter().zip(&signs).map(|(v, s)| if *s { -v } else { *v }).collect();
        let q = SparseVector::new(idx, vals).unwrap();
        let expected = bits(&reference(&c.docs, &q, k));
        prop_assert_eq!(bits(&index.top_k(q.view(), k)), expected.clone());
        for traversal in [Traversal::BlockMax, Traversal::TermAtATime] {
            let options = SearchOptions { k, traversal, ..SearchOptions::default() };
            prop_assert_eq!(bits(&index.search(q.view(), &options)), expected.clone());
        }
    }
}

/// A collection where block bounds cannot prune (every document holds every query term,
/// weights alike), with enough documents that term at a time costs several probes (so the
/// query alone does not send the segment there): the automatic traversal hands the search
/// over to term at a time, then goes there directly, probing block-max pruning now and then;
/// every result equals the brute force. Queries of one term that few documents hold stay
/// with block-max pruning.
#[test]
fn automatic_traversal_hands_dense_queries_over_and_stays_exact() {
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    let (dim, n, common) = (400u32, 12_000usize, 16u32);
    let mut docs = Vec::with_capacity(n);
    let mut b = splade_index::IndexBuilder::new(dim as usize);
    for d in 0..n {
        // Terms 0..16 in every document; a rare term (100 + d % 300) in each.
        let mut pairs: Vec<(u32, f32)> = (0..common)
            .map(|t| (t, 0.5 + (next() % 1000) as f32 / 1000.0))
            .collect();
        pairs.push((100 + (d as u32 % 300), 1.0));
        let v = SparseVector::from_pairs(pairs).unwrap();
        b.add(&format!("d{d}"), v.view()).unwrap();
        docs.push(v);
    }
    let index = b.build().unwrap();
    let mut searcher = Searcher::new(&index);
    let options = SearchOptions::new(10);
    let (mut handed_over, mut direct) = (0, 0);
    for _ in 0..40 {
        let q: Vec<(u32, f32)> = (0..common)
            .map(|t| (t, 0.1 + (next() % 1000) as f32 / 1000.0))
            .collect();
        let q = SparseVector::from_pairs(q).unwrap();
        let got = searcher.search(q.view(), &options);
        assert_eq!(bits(&got), bits(&reference(&docs, &q, 10)));
        let stats = searcher.stats();
        assert_eq!(
            stats.segments_term_at_a_time, 1,
            "dense queries go term at a time"
        );
        assert_eq!(stats.postings_scored, common as usize * n);
        if stats.blocks_candidate > 0 {
            handed_over += 1;
        } else {
            direct += 1;
        }
    }
    assert!(handed_over >= 4, "the first searches probe, then hand over");
    assert!(direct >= 30, "then most go term at a time directly");
    for t in [100u32, 250] {
        let q = SparseVector::from_pairs(vec![(t, 1.0)]).unwrap();
        let got = searcher.search(q.view(), &options);
        assert_eq!(bits(&got), bits(&reference(&docs, &q, 10)));
    }
}

#[test]
fn ties_go_to_the_smaller_document_number() {
    let mut b = splade_index::IndexBuilder::new(4).block_size(2);
    let v = SparseVector::new(vec![1, 2], vec![0.5, 1.5]).unwrap();
    let other = SparseVector::new(vec![3], vec![9.0]).unwrap();
    // Copies in blocks 0, 1 and 2; the best-bounded block is not the first one.
    for (i, doc) in [&v, &other, &other, &v, &v, &other].iter().enumerate() {
        b.add(&format!("d{i}"), doc.view()).unwrap();
    }
    let index = b.build().unwrap();
    let q = SparseVector::new(vec![1, 2], vec![1.0, 1.0]).unwrap();
    let hits = index.top_k(q.view(), 2);
    assert_eq!(
        hits.iter().map(|h| h.doc).collect::<Vec<_>>(),
        vec![0, 3],
        "equal scores rank by document number"
    );
    assert_eq!(hits[0].score, 2.0);
    assert_eq!(
        index.top_k(q.view(), 10).len(),
        3,
        "only matching documents"
    );
}

#[test]
fn edge_cases_return_nothing() {
    let index = splade_index::IndexBuilder::new(5).build().unwrap();
    let q = SparseVector::new(vec![1], vec![1.0]).unwrap();
    assert!(index.top_k(q.view(), 10).is_empty(), "empty index");
    let mut b = splade_index::IndexBuilder::new(5);
    b.add("a", q.view()).unwrap();
    b.add("empty", SparseVector::default().view()).unwrap();
    let index = b.build().unwrap();
    assert!(index.top_k(q.view(), 0).is_empty(), "k = 0");
    assert!(
        index.top_k(SparseVector::default().view(), 3).is_empty(),
        "empty query"
    );
    let outside = SparseVector::new(vec![1, 99], vec![0.0, 1.0]).unwrap();
    assert!(
        index.top_k(outside.view(), 3).is_empty(),
        "zero weight, term >= dim"
    );
    assert!(index
        .search_batch(&[q.view()], &SearchOptions::new(1), Some(0))
        .is_err());
}

#[test]
fn approximate_knobs_are_checked() {
    assert!(Method::approximate(0.0, 1.0).is_err());
    assert!(Method::approximate(1.0, 1.5).is_err());
    assert!(Method::approximate(f32::NAN, 1.0).is_err());
    assert!(Method::approximate(0.5, 0.5).is_ok());
}
