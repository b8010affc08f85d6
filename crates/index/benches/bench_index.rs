//! Benchmarks splade-index on vectors from files and prints one JSON object: build time
//! (on disk, as `splade index build` builds, and in memory from CSR arrays),
//! index bytes, peak RSS, and for exact search and a grid of approximate settings: QPS on 1
//! and 2 threads, p50/p99 single-thread latency, blocks scored and recall@k against the
//! exact search (which equals brute force).
//!
//! ```text
//! cargo bench -p splade-index --bench bench_index -- \
//!     DOCS.jsonl QUERIES.jsonl [K] [BLOCK|auto] [ALPHA:BETA[:MAX_QUERY_TERMS],...] [--reorder=auto|none|heaviest|clustered]
//! ```
//!
//! Both files hold `{"id", "indices", "values"}` lines (`splade encode --id-field`, or
//! `scripts/bench/make_synthetic.py`). The index is written to a temporary directory next
//! to DOCS (removed afterwards) and reopened from disk before searching; one untimed pass of
//! exact searches pages the memory-mapped index in before the timed passes.

mod common;

use std::time::Instant;

use splade_index::readers::{csr_arrays, open_jsonl};
use splade_index::{
    DiskIndexBuilder, Hit, Index, IndexBuilder, Method, Reorder, SearchOptions, Searcher,
};
use splade_sparse::SparseVector;

fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Run {
    hits: Vec<Vec<Hit>>,
    json: String,
}

fn run(
    index: &Index,
    queries: &[SparseVector],
    options: &SearchOptions,
    exact: Option<&[Vec<Hit>]>,
    label: &str,
) -> Result<Run, Box<dyn std::error::Error>> {
    let n = queries.len() as f64;
    let mut searcher = Searcher::new(index);
    let mut lat = Vec::with_capacity(queries.len());
    let mut blocks = 0usize;
    let t = Instant::now();
    let hits: Vec<Vec<Hit>> = queries
        .iter()
        .map(|q| {
            let s = Instant::now();
            let h = searcher.search(q.view(), options);
            lat.push(s.elapsed().as_secs_f64() * 1e3);
            blocks += searcher.stats().blocks_scored;
            h
        })
        .collect();
    // A pass over a thousand queries of a small collection takes tens of milliseconds: the
    // pass is repeated until half a second has passed, as the 2-thread batch below and the
    // peers' calls in compare_indexes.py are (the latencies are every pass's).
    let mut passes = 1usize;
    while t.elapsed().as_secs_f64() < 0.5 {
        for q in queries {
            let s = Instant::now();
            std::hint::black_box(searcher.search(q.view(), options));
            lat.push(s.elapsed().as_secs_f64() * 1e3);
        }
        passes += 1;
    }
    let qps1 = passes as f64 * n / t.elapsed().as_secs_f64();
    let views: Vec<_> = queries.iter().map(|q| q.view()).collect();
    // A batch of a few hundred queries on two threads takes tens of milliseconds: the
    // call is repeated until half a second has passed (compare_indexes.py times the
    // peers' batch calls the same way).
    let (mut calls, t) = (0usize, Instant::now());
    let (qps2, batch) = loop {
        let batch = index.search_batch(&views, options, Some(2))?;
        calls += 1;
        let elapsed = t.elapsed().as_secs_f64();
        if elapsed >= 0.5 {
            break (calls as f64 * n / elapsed, batch);
        }
    };
    assert_eq!(batch, hits, "batch search differs from one-by-one search");
    lat.sort_by(f64::total_cmp);
    let recall = exact.map_or(1.0, |e| {
        let (mut found, mut total) = (0usize, 0usize);
        for (got, want) in hits.iter().zip(e) {
            total += want.len();
            found += got
                .iter()
                .filter(|h| want.iter().any(|w| w.doc == h.doc))
                .count();
        }
        found as f64 / total.max(1) as f64
    });
    let json = format!(
        "{{\"method\": \"{label}\", \"qps_1t\": {qps1:.1}, \"qps_2t\": {qps2:.1}, \"p50_ms\": {:.3}, \"p99_ms\": {:.3}, \"blocks_scored\": {:.1}, \"recall\": {recall:.4}}}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        blocks as f64 / n,
    );
    Ok(Run { hits, json })
}

const USAGE: &str = "usage: bench_index DOCS.jsonl QUERIES.jsonl [K] [BLOCK] [ALPHA:BETA,...] [--reorder=auto|none|heaviest|clustered]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(args) = common::args_or_usage(USAGE) else {
        return Ok(());
    };
    let reorder = match args.iter().find_map(|a| a.strip_prefix("--reorder=")) {
        None | Some("auto") => Reorder::Auto,
        Some("clustered") => Reorder::Clustered,
        Some("heaviest") => Reorder::HeaviestTerms,
        Some("none") => Reorder::None,
        Some(other) => return Err(format!("unknown --reorder={other}").into()),
    };
    let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let (docs_path, queries_path) = match (pos.first(), pos.get(1)) {
        (Some(d), Some(q)) => (std::path::PathBuf::from(d), std::path::PathBuf::from(q)),
        _ => return Err(USAGE.into()),
    };
    let k: usize = pos.get(2).map_or(Ok(10), |s| s.parse())?;
    // BLOCK: a number, or `auto` (the default: chosen from the documents).
    let block: Option<usize> = match pos.get(3).map(|s| s.as_str()) {
        None | Some("auto") => None,
        Some(s) => Some(s.parse()?),
    };
    // ALPHA:BETA or ALPHA:BETA:MAX_QUERY_TERMS (query term pruning before the search).
    let grid: Vec<(f32, f32, Option<usize>)> = pos
        .get(4)
        .map_or("0.95:1,0.9:1,0.8:1,0.95:0.7,0.9:0.7,0.8:0.5,0.6:0.4", |s| {
            s.as_str()
        })
        .split(',')
        .map(|p| {
            let parts: Vec<&str> = p.split(':').collect();
            let (a, b, m) = match parts.as_slice() {
                [a, b] => (a, b, None),
                [a, b, m] => (a, b, Some(m.parse()?)),
                _ => return Err("grid entries are ALPHA:BETA[:MAX_QUERY_TERMS]".into()),
            };
            Ok::<_, Box<dyn std::error::Error>>((a.parse()?, b.parse()?, m))
        })
        .collect::<Result<_, _>>()?;

    let docs = open_jsonl(&docs_path, None)?.collect::<Result<Vec<_>, _>>()?;
    let queries: Vec<SparseVector> = open_jsonl(&queries_path, None)?
        .map(|d| d.map(|d| d.vector))
        .collect::<Result<_, _>>()?;
    let dim = docs
        .iter()
        .chain(std::iter::empty())
        .filter_map(|d| d.vector.indices().last().copied())
        .chain(queries.iter().filter_map(|q| q.indices().last().copied()))
        .max()
        .map_or(1, |m| m as usize + 1)
        .max(30_522);
    let nnz: usize = docs.iter().map(|d| d.vector.nnz()).sum();
    // The build in memory from CSR arrays (`IndexBuilder::from_csr` + `build`: what a
    // library user or the Python `Index.build` does; the like-for-like counterpart of the
    // in-memory peers' builds), timed from arrays already made; then the peak RSS is reset
    // so that it tells the on-disk build's.
    let build_memory_s = {
        let (ids, indptr, indices, values) = csr_arrays(&docs);
        let t = Instant::now();
        let mut builder =
            IndexBuilder::from_csr(dim, &ids, indptr, indices, values)?.reorder(reorder);
        if let Some(block) = block {
            builder = builder.block_size(block);
        }
        let index = builder.build()?;
        let s = t.elapsed().as_secs_f64();
        drop(index);
        // Writing 5 to clear_refs resets VmHWM (Linux); elsewhere the peak includes this build.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        s
    };
    let dir = tempdir_near(&docs_path)?;
    let t = Instant::now();
    // The builder `splade index build` uses: streamed to disk, memory bounded by the ids
    // and the layout.
    let mut builder = DiskIndexBuilder::create(&dir, dim)?.reorder(reorder);
    if let Some(block) = block {
        builder = builder.block_size(block);
    }
    for d in &docs {
        builder.add(&d.id, d.vector.view())?;
    }
    drop(docs);
    builder.finish()?;
    let build_s = t.elapsed().as_secs_f64();
    let index_bytes = dir_bytes(&dir);
    let index = Index::open(&dir)?;

    // One untimed pass first: the index is memory-mapped, and the first touch of each page
    // is a page fault (a one-time cost of opening, not of searching; the in-memory peers
    // have no such cost).
    let mut searcher = Searcher::new(&index);
    for q in &queries {
        std::hint::black_box(searcher.search(q.view(), &SearchOptions::new(k)));
    }
    let mut rows = Vec::new();
    let exact = run(&index, &queries, &SearchOptions::new(k), None, "exact")?;
    // The exact search is checked against the brute force on the first 50 queries.
    for (q, h) in queries.iter().zip(&exact.hits).take(50) {
        assert_eq!(
            &index.brute_force_top_k(q.view(), k),
            h,
            "exact != brute force"
        );
    }
    rows.push(exact.json.clone());
    for (alpha, beta, max_terms) in grid {
        let method = Method::from_knobs(alpha, beta)?;
        let options = SearchOptions {
            k,
            method,
            max_query_terms: max_terms,
            ..SearchOptions::default()
        };
        let label = match max_terms {
            Some(m) => format!("approx alpha={alpha} beta={beta} max_terms={m}"),
            None => format!("approx alpha={alpha} beta={beta}"),
        };
        let r = run(&index, &queries, &options, Some(&exact.hits), &label)?;
        rows.push(r.json);
    }
    let brute_n = queries.len().min(100);
    let t = Instant::now();
    for q in &queries[..brute_n] {
        std::hint::black_box(index.brute_force_top_k(q.view(), k));
    }
    let brute_qps = brute_n as f64 / t.elapsed().as_secs_f64();
    println!(
        "{{\"system\": \"splade-rs\", \"docs\": {}, \"nnz\": {nnz}, \"queries\": {}, \"k\": {k}, \"block_size\": {}, \"reorder\": \"{reorder:?}\", \"build_s\": {build_s:.2}, \"build_memory_s\": {build_memory_s:.2}, \"index_bytes\": {index_bytes}, \"peak_rss_bytes\": {}, \"blocks_total\": {}, \"brute_force_qps_1t\": {brute_qps:.1}, \"runs\": [{}]}}",
        index.len(),
        queries.len(),
        index.block_size(),
        peak_rss_bytes(),
        index.num_blocks(),
        rows.join(", ")
    );
    drop(index);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn tempdir_near(path: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let dir = parent.join(format!(".bench_index-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
