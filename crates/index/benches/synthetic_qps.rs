//! Single-thread QPS of exact (block-max) search vs brute force on a synthetic SPLADE-like
//! collection: Zipfian term popularity, `--docs` documents (default 100,000) of about 120
//! terms over 30,522 dimensions, queries of about 30 terms. Checks that both agree.
//!
//! Runs with documents in insertion order and reordered by heaviest terms (the default),
//! and reports the blocks scored per query.
//!
//! `cargo bench -p splade-index --bench synthetic_qps -- [DOCS] [QUERIES] [BLOCK]`

mod common;

use std::time::Instant;

use splade_index::{Index, IndexBuilder, Method, Reorder, SearchOptions, Searcher};
use splade_sparse::SparseVector;

const DIM: usize = 30_522;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Cumulative Zipf(s = 1) distribution over ranks, and a random rank → term permutation.
struct Zipf {
    cdf: Vec<f64>,
    term_of_rank: Vec<u32>,
}

impl Zipf {
    fn new(rng: &mut Rng) -> Self {
        let mut cdf = Vec::with_capacity(DIM);
        let mut total = 0.0;
        for r in 0..DIM {
            total += 1.0 / (r as f64 + 10.0);
            cdf.push(total);
        }
        cdf.iter_mut().for_each(|c| *c /= total);
        let mut term_of_rank: Vec<u32> = (0..DIM as u32).collect();
        for i in (1..DIM).rev() {
            term_of_rank.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        Self { cdf, term_of_rank }
    }

    fn vector(&self, rng: &mut Rng, terms: usize) -> SparseVector {
        let mut pairs = Vec::with_capacity(terms);
        for _ in 0..terms {
            let u = rng.unit();
            let rank = self.cdf.partition_point(|&c| c < u).min(DIM - 1);
            let w = (rng.unit() * rng.unit() * 3.0) as f32 + 0.01;
            pairs.push((self.term_of_rank[rank], w));
        }
        pairs.sort_by_key(|p| p.0);
        pairs.dedup_by_key(|p| p.0);
        SparseVector::from_pairs(pairs).expect("deduplicated")
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = common::bench_args()
        .iter()
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let docs = args.first().copied().unwrap_or(100_000);
    let num_queries = args.get(1).copied().unwrap_or(200);
    let block = args
        .get(2)
        .copied()
        .unwrap_or(splade_index::DEFAULT_BLOCK_SIZE);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let zipf = Zipf::new(&mut rng);
    let vectors: Vec<SparseVector> = (0..docs)
        .map(|_| {
            let terms = 80 + (rng.next() % 90) as usize;
            zipf.vector(&mut rng, terms)
        })
        .collect();
    let queries: Vec<SparseVector> = (0..num_queries)
        .map(|_| zipf.vector(&mut rng, 32))
        .collect();
    let avg_q = queries.iter().map(|q| q.nnz()).sum::<usize>() as f64 / queries.len() as f64;
    for reorder in [Reorder::None, Reorder::HeaviestTerms] {
        let start = Instant::now();
        let mut builder = IndexBuilder::new(DIM).block_size(block).reorder(reorder);
        for (d, v) in vectors.iter().enumerate() {
            builder.add(&format!("doc{d}"), v.view())?;
        }
        let index = builder.build()?;
        println!(
            "{reorder:?}: built {} docs, {:.1} terms/doc, block {block}, in {:.1}s",
            index.len(),
            index.nnz() as f64 / index.len() as f64,
            start.elapsed().as_secs_f64()
        );
        for k in [10, 100, 1000] {
            run(&index, &queries, k, avg_q)?;
        }
    }
    Ok(())
}

fn run(
    index: &Index,
    queries: &[SparseVector],
    k: usize,
    avg_q: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let n = queries.len() as f64;
    let mut searcher = Searcher::new(index);
    let t = Instant::now();
    let mut blocks = 0usize;
    let exact: Vec<_> = queries
        .iter()
        .map(|q| {
            let hits = searcher.search(q.view(), &SearchOptions::new(k));
            blocks += searcher.stats().blocks_scored;
            hits
        })
        .collect();
    let exact_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let brute: Vec<_> = queries
        .iter()
        .map(|q| index.brute_force_top_k(q.view(), k))
        .collect();
    let brute_s = t.elapsed().as_secs_f64();
    assert_eq!(exact, brute, "exact search disagrees with brute force");
    println!(
        "  k={k:>4}: exact {:>8.1} QPS ({:.2} ms/q, {:.0}/{} blocks scored), brute force {:>7.1} QPS ({:.2} ms/q), {avg_q:.1} query terms, results identical",
        n / exact_s,
        1e3 * exact_s / n,
        blocks as f64 / n,
        index.num_blocks(),
        n / brute_s,
        1e3 * brute_s / n,
    );
    if k == 10 {
        for (alpha, beta) in [(0.9, 1.0), (0.8, 1.0), (0.8, 0.5), (0.6, 0.5)] {
            let options = SearchOptions {
                k,
                method: Method::approximate(alpha, beta)?,
                max_query_terms: None,
                ..SearchOptions::default()
            };
            let t = Instant::now();
            let mut found = 0usize;
            let mut blocks = 0usize;
            for (q, e) in queries.iter().zip(&exact) {
                let hits = searcher.search(q.view(), &options);
                blocks += searcher.stats().blocks_scored;
                found += hits
                    .iter()
                    .filter(|h| e.iter().any(|x| x.doc == h.doc))
                    .count();
            }
            let s = t.elapsed().as_secs_f64();
            let total: usize = exact.iter().map(|e| e.len()).sum();
            println!(
                "    approx alpha={alpha} beta={beta}: {:>8.1} QPS, {:.0} blocks scored, recall@{k} {:.4}",
                n / s,
                blocks as f64 / n,
                found as f64 / total.max(1) as f64
            );
        }
    }
    Ok(())
}
