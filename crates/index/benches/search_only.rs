//! Times searches on an existing index directory (no build): single-thread QPS, p50/p99,
//! recall@k against the exact search and the mean blocks scored and candidate per query, for exact search and each `ALPHA:BETA` setting.
//!
//! ```text
//! [TRAVERSAL=auto|blockmax|taat] [RESIDENCY=mapped|memory] cargo bench -p splade-index --bench search_only -- INDEX_DIR QUERIES.jsonl [K] [ALPHA:BETA,...]
//! ```

mod common;

use std::time::Instant;

use splade_index::readers::open_jsonl;
use splade_index::{Method, OpenOptions, Residency, SearchOptions, Searcher, Traversal};
use splade_sparse::SparseVector;

const USAGE: &str = "usage: search_only INDEX_DIR QUERIES.jsonl [K] [ALPHA:BETA,...]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(args) = common::args_or_usage(USAGE) else {
        return Ok(());
    };
    let (Some(dir), Some(qpath)) = (args.first(), args.get(1)) else {
        return Err(USAGE.into());
    };
    let k: usize = args.get(2).map_or(Ok(10), |s| s.parse())?;
    // RESIDENCY=mapped|memory (default mapped): see `splade_index::Residency`.
    let residency = match std::env::var("RESIDENCY").as_deref() {
        Err(_) | Ok("mapped") => Residency::Mapped,
        Ok("memory") => Residency::Memory,
        Ok(other) => return Err(format!("RESIDENCY={other}: use mapped or memory").into()),
    };
    let index = OpenOptions::new()
        .verify(false)
        .residency(residency)
        .open(std::path::Path::new(dir))?;
    let queries: Vec<SparseVector> = open_jsonl(std::path::Path::new(qpath), None)?
        .map(|d| d.map(|d| d.vector))
        .collect::<Result<_, _>>()?;
    let mut settings = vec![(1.0f32, 1.0f32)];
    if let Some(g) = args.get(3) {
        for p in g.split(',') {
            let (a, b) = p.split_once(':').ok_or("grid entries are ALPHA:BETA")?;
            settings.push((a.parse()?, b.parse()?));
        }
    }
    // TRAVERSAL=auto|blockmax|taat (default auto).
    let traversal = match std::env::var("TRAVERSAL").as_deref() {
        Ok("blockmax") => Traversal::BlockMax,
        Ok("taat") => Traversal::TermAtATime,
        Ok("auto") | Err(_) => Traversal::Auto,
        Ok(other) => return Err(format!("TRAVERSAL={other}: use auto, blockmax or taat").into()),
    };
    let mut searcher = Searcher::new(&index);
    let mut exact = Vec::new();
    for (alpha, beta) in settings {
        let method = Method::from_knobs(alpha, beta)?;
        let options = SearchOptions {
            k,
            method,
            max_query_terms: None,
            traversal,
        };
        // One untimed pass (page cache), then the timed one.
        for q in &queries {
            std::hint::black_box(searcher.search(q.view(), &options));
        }
        let mut lat = Vec::with_capacity(queries.len());
        let (mut scored, mut candidates, mut taat) = (0usize, 0usize, 0usize);
        let t = Instant::now();
        let hits: Vec<_> = queries
            .iter()
            .map(|q| {
                let s = Instant::now();
                let h = searcher.search(q.view(), &options);
                lat.push(s.elapsed().as_secs_f64() * 1e3);
                let stats = searcher.stats();
                scored += stats.blocks_scored;
                candidates += stats.blocks_candidate;
                taat += stats.segments_term_at_a_time;
                h
            })
            .collect();
        let qps = queries.len() as f64 / t.elapsed().as_secs_f64();
        lat.sort_by(f64::total_cmp);
        if exact.is_empty() {
            exact = hits.clone();
        }
        let (mut found, mut total) = (0usize, 0usize);
        for (got, want) in hits.iter().zip(&exact) {
            total += want.len();
            found += got
                .iter()
                .filter(|h| want.iter().any(|w| w.doc == h.doc))
                .count();
        }
        println!(
            "alpha={alpha} beta={beta} qps_1t={qps:.1} p50_ms={:.3} p99_ms={:.3} recall={:.4} blocks_scored={:.1} blocks_candidate={:.1} taat_segments={:.2}",
            lat[lat.len() / 2],
            lat[(lat.len() - 1) * 99 / 100],
            found as f64 / total.max(1) as f64,
            scored as f64 / queries.len() as f64,
            candidates as f64 / queries.len() as f64,
            taat as f64 / queries.len() as f64,
        );
    }
    Ok(())
}
