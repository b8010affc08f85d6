//! Segments beyond the exact term-at-a-time limit (32,768 documents): the screening
//! term-at-a-time search and the automatic choice between it and block-max pruning, on a
//! flat collection (stopword-like terms in every document, flat weights, random topic
//! order) and on a clustered, peaked one; every result bit-identical to the brute force,
//! ties, deleted documents and several segments included.

mod common;

use common::{bits, reference, xorshift};
use splade_index::{Index, IndexBuilder, IndexWriter, Method, SearchOptions, Searcher, Traversal};
use splade_sparse::SparseVector;

const DIM: u32 = 2000;
/// Above the exact term-at-a-time limit.
const DOCS: usize = 40_000;

/// A flat document: the 8 head terms (in almost every document), about 20 terms of one
/// of 100 topics (random order) and 5 random ones; weights in 0.25..1.0 on a coarse grid,
/// so that equal scores (ties) are common. Every 997th document repeats an earlier one.
fn flat_docs(next: &mut impl FnMut() -> u64) -> Vec<SparseVector> {
    let mut docs: Vec<SparseVector> = Vec::with_capacity(DOCS);
    for d in 0..DOCS {
        if d % 997 == 996 {
            let earlier = docs[(next() % d as u64) as usize].clone();
            docs.push(earlier);
            continue;
        }
        let topic = (next() % 100) as u32;
        let mut pairs: Vec<(u32, f32)> = Vec::new();
        for t in 0..8u32 {
            if !next().is_multiple_of(50) {
                pairs.push((t, 0.25 + (next() % 4) as f32 / 4.0));
            }
        }
        for _ in 0..20 {
            pairs.push((
                100 + topic * 15 + (next() % 15) as u32,
                0.25 + (next() % 4) as f32 / 4.0,
            ));
        }
        for _ in 0..5 {
            pairs.push((
                8 + (next() % (DIM as u64 - 8)) as u32,
                0.25 + (next() % 4) as f32 / 4.0,
            ));
        }
        pairs.sort_by_key(|p| p.0);
        pairs.dedup_by_key(|p| p.0);
        docs.push(SparseVector::from_pairs(pairs).unwrap());
    }
    docs
}

/// A flat query: the 8 head terms, weighing most (as stopword-like expansion terms of
/// a long query together do), 10 lighter terms of one topic, 2 random ones. Its top
/// documents are those with heavy head terms, spread over every block whatever the
/// clustering: block bounds prune little.
fn flat_query(next: &mut impl FnMut() -> u64) -> SparseVector {
    let topic = (next() % 100) as u32;
    let mut pairs: Vec<(u32, f32)> = (0..8).map(|t| (t, 1.0)).collect();
    for _ in 0..10 {
        pairs.push((
            100 + topic * 15 + (next() % 15) as u32,
            0.125 + (next() % 4) as f32 / 16.0,
        ));
    }
    for _ in 0..2 {
        pairs.push(((next() % DIM as u64) as u32, 0.75));
    }
    pairs.sort_by_key(|p| p.0);
    pairs.dedup_by_key(|p| p.0);
    SparseVector::from_pairs(pairs).unwrap()
}

fn build(docs: &[SparseVector]) -> Index {
    let mut b = IndexBuilder::new(DIM as usize);
    for (d, v) in docs.iter().enumerate() {
        b.add(&format!("d{d}"), v.view()).unwrap();
    }
    b.build().unwrap()
}

fn options(k: usize, traversal: Traversal) -> SearchOptions {
    SearchOptions {
        k,
        traversal,
        ..SearchOptions::default()
    }
}

/// On the flat collection every traversal equals the brute force bit for bit (ties to the
/// earlier document); the screening search rescores a small fraction of the documents; the
/// automatic traversal chooses term at a time.
#[test]
fn flat_large_segment_goes_term_at_a_time_and_stays_exact() {
    let mut next = xorshift(0x51ad_e000_0000_0017);
    let docs = flat_docs(&mut next);
    let index = build(&docs);
    let mut searcher = Searcher::new(&index);
    let mut auto_taat = 0;
    for i in 0..30 {
        let q = flat_query(&mut next);
        let k = [1, 10, 100][i % 3];
        let want = bits(&reference(&docs, &q, k));
        assert_eq!(want.len(), k);
        let got = searcher.search(q.view(), &options(k, Traversal::TermAtATime));
        assert_eq!(bits(&got), want, "term at a time, query {i}");
        let stats = searcher.stats();
        assert_eq!(stats.segments_term_at_a_time, 1);
        assert!(
            stats.documents_rescored >= k && stats.documents_rescored < DOCS / 20,
            "{} documents rescored",
            stats.documents_rescored
        );
        let got = searcher.search(q.view(), &options(k, Traversal::BlockMax));
        assert_eq!(bits(&got), want, "block-max, query {i}");
        let got = searcher.search(q.view(), &options(k, Traversal::Auto));
        assert_eq!(bits(&got), want, "automatic, query {i}");
        auto_taat += searcher.stats().segments_term_at_a_time;
    }
    assert!(
        auto_taat >= 25,
        "the cost model chose term at a time {auto_taat} times of 30"
    );
    // A query with a negative weight cannot be screened: exact term at a time instead.
    let mut q: Vec<(u32, f32)> = flat_query(&mut next).view().iter().collect();
    q[0].1 = -0.5;
    let q = SparseVector::from_pairs(q).unwrap();
    let got = searcher.search(q.view(), &options(10, Traversal::TermAtATime));
    assert_eq!(bits(&got), bits(&reference(&docs, &q, 10)));
    assert_eq!(searcher.stats().documents_rescored, 0);
}

/// Approximate results depend on the query alone: a searcher whose segment has learned to go
/// term at a time (many exact searches handed over) returns the same hits for an
/// approximate search as a fresh searcher, one query at a time or in a batch.
#[test]
fn approximate_hits_do_not_depend_on_earlier_searches() {
    let mut next = xorshift(0x51ad_e000_0000_0018);
    let docs = flat_docs(&mut next);
    let queries: Vec<SparseVector> = (0..12).map(|_| flat_query(&mut next)).collect();
    let approx = SearchOptions {
        k: 10,
        method: Method::Approximate {
            alpha: 0.6,
            beta: 0.6,
        },
        traversal: Traversal::Auto,
        ..SearchOptions::default()
    };
    let fresh: Vec<_> = queries
        .iter()
        .map(|q| bits(&Searcher::new(&build(&docs)).search(q.view(), &approx)))
        .collect();
    let index = build(&docs);
    let mut searcher = Searcher::new(&index);
    for q in &queries {
        searcher.search(q.view(), &options(10, Traversal::Auto));
    }
    for (i, q) in queries.iter().enumerate() {
        assert_eq!(
            bits(&searcher.search(q.view(), &approx)),
            fresh[i],
            "query {i} after exact searches"
        );
    }
}

/// On a clustered, peaked collection (each document a few heavy terms of its topic) the
/// automatic traversal keeps block-max pruning, which scores few blocks, and equals the
/// brute force.
#[test]
fn peaked_large_segment_stays_with_block_max() {
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    let mut docs = Vec::with_capacity(DOCS);
    for _ in 0..DOCS {
        let topic = (next() % 1000) as u32;
        let mut pairs: Vec<(u32, f32)> = (0..6)
            .map(|_| {
                (
                    topic + 1000 * (next() % 2) as u32,
                    0.05 + (next() % 100) as f32 / 1000.0,
                )
            })
            .collect();
        pairs.push((topic, 3.0 + (next() % 100) as f32 / 50.0));
        pairs.sort_by_key(|p| p.0);
        pairs.dedup_by_key(|p| p.0);
        docs.push(SparseVector::from_pairs(pairs).unwrap());
    }
    let index = build(&docs);
    let mut searcher = Searcher::new(&index);
    let mut taat = 0;
    for _ in 0..20 {
        let t = (next() % 1000) as u32;
        let q = SparseVector::from_pairs(vec![(t, 2.0), (t + 1000, 0.3)]).unwrap();
        let got = searcher.search(q.view(), &options(10, Traversal::Auto));
        assert_eq!(bits(&got), bits(&reference(&docs, &q, 10)));
        taat += searcher.stats().segments_term_at_a_time;
        let got = searcher.search(q.view(), &options(10, Traversal::TermAtATime));
        assert_eq!(bits(&got), bits(&reference(&docs, &q, 10)));
    }
    assert_eq!(taat, 0, "block bounds prune here: no term at a time");
}

/// Several segments (a large one and a small one) with deleted documents, among them
/// top hits: the screening search skips the deleted ones and equals the brute force over
/// the live documents.
#[test]
fn screening_with_deletions_and_several_segments() {
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
    let docs = flat_docs(&mut next);
    let tmp = tempfile::tempdir().unwrap();
    let mut w = IndexWriter::create(&tmp.path().join("idx"), DIM as usize).unwrap();
    for (d, v) in docs.iter().enumerate() {
        w.add(&format!("d{d}"), v.view()).unwrap();
    }
    w.commit().unwrap();
    let extra: Vec<SparseVector> = (0..500).map(|_| flat_docs_one(&mut next)).collect();
    for (d, v) in extra.iter().enumerate() {
        w.add(&format!("e{d}"), v.view()).unwrap();
    }
    w.commit().unwrap();
    assert_eq!(w.index().num_segments(), 2);
    let queries: Vec<SparseVector> = (0..12).map(|_| flat_query(&mut next)).collect();
    // Delete the current top 3 of every query, and every 7th document.
    for q in &queries {
        for h in w.index().brute_force_top_k(q.view(), 3) {
            let id = w.index().id(h.doc).unwrap().to_string();
            w.delete(&id);
        }
    }
    for d in (0..DOCS).step_by(7) {
        w.delete(&format!("d{d}"));
    }
    w.commit().unwrap();
    let index = w.index();
    let mut searcher = Searcher::new(index);
    for q in &queries {
        let want = bits(&index.brute_force_top_k(q.view(), 10));
        assert_eq!(want.len(), 10);
        for traversal in [Traversal::TermAtATime, Traversal::Auto, Traversal::BlockMax] {
            let got = searcher.search(q.view(), &options(10, traversal));
            assert_eq!(bits(&got), want, "{traversal:?}");
        }
    }
}

fn flat_docs_one(next: &mut impl FnMut() -> u64) -> SparseVector {
    let mut pairs: Vec<(u32, f32)> = (0..8u32)
        .map(|t| (t, 0.25 + (next() % 4) as f32 / 4.0))
        .collect();
    for _ in 0..20 {
        pairs.push((100 + (next() % 1500) as u32, 1.0));
    }
    pairs.sort_by_key(|p| p.0);
    pairs.dedup_by_key(|p| p.0);
    SparseVector::from_pairs(pairs).unwrap()
}
