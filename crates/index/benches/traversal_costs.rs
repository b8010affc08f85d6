//! Per query: the postings of its terms (Σ df), the (term, block) pairs of its block lists,
//! the documents a screening search rescored exactly (large segments), and the best of 5
//! timings of block-max, term-at-a-time and automatic ([`Traversal::Auto`]) search (the last
//! two each right after a block-max search); one TSV line each. The sum of the automatic
//! column over the queries compares two versions of the rule far more steadily than QPS on a
//! noisy machine.
//! For choosing [`splade_index::Traversal::Auto`]'s rule.
//!
//! ```text
//! cargo bench -p splade-index --bench traversal_costs -- INDEX_DIR QUERIES.jsonl [K]
//! ```

mod common;

use std::time::Instant;

use splade_index::readers::open_jsonl;
use splade_index::{Index, SearchOptions, Searcher, Traversal};
use splade_sparse::SparseVector;

const USAGE: &str = "usage: traversal_costs INDEX_DIR QUERIES.jsonl [K]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(args) = common::args_or_usage(USAGE) else {
        return Ok(());
    };
    let (Some(dir), Some(qpath)) = (args.first(), args.get(1)) else {
        return Err(USAGE.into());
    };
    let k: usize = args.get(2).map_or(Ok(10), |s| s.parse())?;
    let index = Index::open_unverified(std::path::Path::new(dir))?;
    let queries: Vec<SparseVector> = open_jsonl(std::path::Path::new(qpath), None)?
        .map(|d| d.map(|d| d.vector))
        .collect::<Result<_, _>>()?;
    let mut searcher = Searcher::new(&index);
    let options = |traversal| SearchOptions {
        k,
        traversal,
        ..SearchOptions::default()
    };
    let (bmp, taat, auto) = (
        options(Traversal::BlockMax),
        options(Traversal::TermAtATime),
        options(Traversal::Auto),
    );
    println!(
        "nnz\tpostings\tdocs\tblocks_scored\tblocks_candidate\tbmp_us\ttaat_us\trescored\tauto_us"
    );
    for q in &queries {
        let mut best = [f64::INFINITY; 3];
        for _ in 0..5 {
            // Term at a time and `Auto` are each timed right after a block-max search (an
            // untimed one before `Auto`): a search run right after another over the same
            // postings found them in cache and took 10-40 % less time, so `Auto`, timed after
            // term at a time, looked faster than the very same term-at-a-time search.
            for (o, column) in [
                (&bmp, Some(0)),
                (&taat, Some(1)),
                (&bmp, None),
                (&auto, Some(2)),
            ] {
                let t = Instant::now();
                std::hint::black_box(searcher.search(q.view(), o));
                if let Some(column) = column {
                    best[column] = best[column].min(t.elapsed().as_secs_f64() * 1e6);
                }
            }
        }
        searcher.search(q.view(), &taat);
        let (postings, rescored) = (
            searcher.stats().postings_scored,
            searcher.stats().documents_rescored,
        );
        searcher.search(q.view(), &bmp);
        let s = searcher.stats();
        println!(
            "{}\t{}\t{}\t{}\t{}\t{:.2}\t{:.2}\t{}\t{:.2}",
            q.nnz(),
            postings,
            index.len(),
            s.blocks_scored,
            s.blocks_candidate,
            best[0],
            best[1],
            rescored,
            best[2]
        );
    }
    Ok(())
}
