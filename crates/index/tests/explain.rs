//! Explanations: matching terms whose contributions make up the score.

mod common;

use common::{build, collection, query};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn explanations_sum_to_the_score(
        (c, q) in collection().prop_flat_map(|c| { let d = c.dim; (Just(c), query(d)) })
    ) {
        let index = build(&c);
        for hit in index.top_k(q.view(), 10) {
            let e = index.explain(q.view(), hit.doc).unwrap();
            prop_assert_eq!(e.doc, hit.doc);
            prop_assert_eq!(e.score.to_bits(), hit.score.to_bits());
            // The score is the f64 sum of the products in ascending term order.
            let mut terms = e.terms.clone();
            terms.sort_by_key(|t| t.term);
            let sum = terms
                .iter()
                .fold(0.0f64, |a, t| a + t.query_weight as f64 * t.doc_weight as f64);
            prop_assert_eq!((sum as f32).to_bits(), e.score.to_bits());
            let approx: f32 = e.terms.iter().map(|t| t.contribution).sum();
            prop_assert!((approx - e.score).abs() <= 1e-4 * e.score.max(1.0));
            prop_assert!(e.terms.windows(2).all(|w| w[0].contribution >= w[1].contribution));
            let doc = &c.docs[hit.doc as usize];
            for t in &e.terms {
                let p = q.indices().binary_search(&t.term).unwrap();
                prop_assert_eq!(q.values()[p], t.query_weight);
                let p = doc.indices().binary_search(&t.term).unwrap();
                prop_assert_eq!(doc.values()[p], t.doc_weight);
            }
        }
        prop_assert!(index.explain(q.view(), c.docs.len() as u32).is_none());
    }
}
