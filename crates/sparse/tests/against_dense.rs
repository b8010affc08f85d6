//! Every sparse operation checked against a straightforward dense computation.

use proptest::prelude::*;
use splade_sparse::{
    similarity, similarity_pairwise, sparsity, Similarity, SparseBatch, SparseError, SparseVector,
};

const DIM: usize = 64;

fn dense_vec() -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(
        prop_oneof![3 => Just(0.0f32), 2 => 0.0f32..5.0, 1 => Just(1.5f32)],
        DIM,
    )
}

fn dense_dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

fn close(a: f32, b: f64) -> bool {
    (a as f64 - b).abs() <= 1e-4 * b.abs().max(1.0)
}

proptest! {
    #[test]
    fn dense_round_trip(a in dense_vec()) {
        let v = SparseVector::from_dense(&a);
        prop_assert_eq!(v.view().to_dense(DIM).unwrap(), a.clone());
        prop_assert_eq!(v.view().active_dims(), a.iter().filter(|x| **x != 0.0).count());
    }

    #[test]
    fn similarities_match_dense(a in dense_vec(), b in dense_vec()) {
        let (va, vb) = (SparseVector::from_dense(&a), SparseVector::from_dense(&b));
        let (sa, sb) = (va.view(), vb.view());
        let dot = dense_dot(&a, &b);
        prop_assert!(close(Similarity::Dot.score(&sa, &sb), dot));
        let na = dense_dot(&a, &a).sqrt().max(1e-12);
        let nb = dense_dot(&b, &b).sqrt().max(1e-12);
        prop_assert!(close(Similarity::Cosine.score(&sa, &sb), dot / (na * nb)));
        let eu: f64 = a.iter().zip(&b).map(|(x, y)| ((*x - *y) as f64).powi(2)).sum::<f64>().sqrt();
        prop_assert!(close(Similarity::Euclidean.score(&sa, &sb), -eu));
        let man: f64 = a.iter().zip(&b).map(|(x, y)| ((*x - *y) as f64).abs()).sum();
        prop_assert!(close(Similarity::Manhattan.score(&sa, &sb), -man));
        let inter = sa.intersection(&sb).view().to_dense(DIM).unwrap();
        let expected: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
        prop_assert_eq!(inter, expected);
    }

    #[test]
    fn top_k_keeps_the_largest(a in dense_vec(), k in 0usize..80) {
        let v = SparseVector::from_dense(&a);
        let top = v.view().top_k(k);
        prop_assert_eq!(top.nnz(), k.min(v.nnz()));
        // Every kept value is >= every dropped value, and among equal values smaller indices win.
        let kept: std::collections::HashSet<u32> = top.indices().iter().copied().collect();
        for (i, x) in v.view().iter() {
            if kept.contains(&i) { continue; }
            for (j, y) in top.view().iter() {
                prop_assert!(y > x || (y == x && j < i));
            }
        }
        prop_assert!(top.indices().windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn batch_similarity_matches_pairs(rows_a in proptest::collection::vec(dense_vec(), 0..5), rows_b in proptest::collection::vec(dense_vec(), 0..5)) {
        let va: Vec<SparseVector> = rows_a.iter().map(|d| SparseVector::from_dense(d)).collect();
        let vb: Vec<SparseVector> = rows_b.iter().map(|d| SparseVector::from_dense(d)).collect();
        let ba = SparseBatch::from_vectors(DIM, &va).unwrap();
        let bb = SparseBatch::from_vectors(DIM, &vb).unwrap();
        for f in Similarity::ALL {
            let m = similarity(&ba, &bb, f);
            prop_assert_eq!((m.rows, m.cols), (va.len(), vb.len()));
            for (r, x) in va.iter().enumerate() {
                for (c, y) in vb.iter().enumerate() {
                    prop_assert_eq!(m.get(r, c), f.score(&x.view(), &y.view()));
                }
            }
            let p = similarity_pairwise(&ba, &bb, f);
            prop_assert_eq!(p.len(), va.len().min(vb.len()));
        }
        let stats = sparsity(&ba);
        if !va.is_empty() {
            let mean = va.iter().map(|v| v.nnz()).sum::<usize>() as f64 / va.len() as f64;
            prop_assert!((stats.active_dims - mean).abs() < 1e-12);
            prop_assert!((stats.sparsity_ratio - (1.0 - mean / DIM as f64)).abs() < 1e-12);
        }
    }
}

#[test]
fn invalid_vectors_are_rejected_with_the_reason() {
    assert!(matches!(
        SparseVector::new(vec![1, 2], vec![1.0]),
        Err(SparseError::LengthMismatch { .. })
    ));
    assert!(matches!(
        SparseVector::new(vec![2, 1], vec![1.0, 1.0]),
        Err(SparseError::NotAscending { position: 1, .. })
    ));
    assert!(matches!(
        SparseVector::new(vec![1, 1], vec![1.0, 1.0]),
        Err(SparseError::NotAscending { .. })
    ));
    assert!(matches!(
        SparseVector::new(vec![1], vec![f32::NAN]),
        Err(SparseError::NonFinite { .. })
    ));
    let err =
        serde_json::from_str::<SparseVector>(r#"{"indices":[5,3],"values":[1,2]}"#).unwrap_err();
    assert!(err.to_string().contains("strictly ascending"), "{err}");
    let v = SparseVector::from_pairs(vec![(9, 1.0), (2, 3.0)]).unwrap();
    assert_eq!(v.indices(), &[2, 9]);
    assert!(SparseBatch::from_vectors(5, [&v]).is_err());
    assert_eq!("Cosine".parse::<Similarity>().unwrap(), Similarity::Cosine);
    assert!("jaccard".parse::<Similarity>().is_err());
}

#[test]
fn cosine_of_zero_vector_is_zero() {
    let z = SparseVector::default();
    let v = SparseVector::new(vec![1], vec![2.0]).unwrap();
    assert_eq!(Similarity::Cosine.score(&z.view(), &v.view()), 0.0);
    assert_eq!(Similarity::Cosine.score(&z.view(), &z.view()), 0.0);
}
