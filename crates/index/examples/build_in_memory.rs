//! Times an index built in memory from vectors already in memory (nothing read from or
//! written to disk while the clock runs): the like-for-like counterpart of a library that
//! turns encoder output into its search structure in memory (splade-index's CSR-to-CSC
//! conversion, `scripts/bench/splade_index_build_time.py`). The vectors are read into CSR
//! arrays first, untimed; then each run hands a copy of the arrays to
//! [`IndexBuilder::from_csr`] (which checks every document and keeps the arrays as the
//! index's forward arrays) and builds, timed, and the index is searched with its first
//! document as a check.
//!
//! ```text
//! cargo run --release -p splade-index --example build_in_memory -- DIM DOCS.bin DOCS.ids [RUNS [LAYOUT]]
//! ```
//!
//! `DOCS.bin` is Seismic's binary format with `DOCS.ids` one id per line in the same order.
//! `LAYOUT` is the block layout ([`Reorder`]): `auto` (the default), `clustered`, `heaviest` or
//! `none`.

use std::time::Instant;

use splade_index::readers::{csr_arrays, open_seismic};
use splade_index::{IndexBuilder, Reorder, SearchOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    const USAGE: &str =
        "usage: build_in_memory DIM DOCS.bin DOCS.ids [RUNS [auto|clustered|heaviest|none]]";
    let (dim, bin, ids) = match args.as_slice() {
        [dim, bin, ids, ..] => (dim.parse::<usize>()?, bin, ids),
        _ => return Err(USAGE.into()),
    };
    let runs = args.get(3).map_or(Ok(3), |r| r.parse::<usize>())?;
    let reorder = match args.get(4).map(String::as_str) {
        None | Some("auto") => Reorder::Auto,
        Some("clustered") => Reorder::Clustered,
        Some("heaviest") => Reorder::HeaviestTerms,
        Some("none") => Reorder::None,
        Some(other) => return Err(format!("{other}: not a layout; {USAGE}").into()),
    };
    let t = Instant::now();
    let docs =
        open_seismic(bin.as_ref(), ids.as_ref(), Some(dim))?.collect::<Result<Vec<_>, _>>()?;
    if docs.is_empty() {
        return Err(format!("{bin}: no documents").into());
    }
    let nnz: usize = docs.iter().map(|d| d.vector.indices().len()).sum();
    println!(
        "{} documents, {nnz} postings read in {:.2} s (untimed)",
        docs.len(),
        t.elapsed().as_secs_f64()
    );
    // The CSR arrays, as an encoder or scipy holds them (untimed).
    let (ids, indptr, indices, values) = csr_arrays(&docs);
    for run in 0..runs {
        // Each run takes its own copy of the arrays (made before the clock starts).
        let (indptr, indices, values) = (indptr.clone(), indices.clone(), values.clone());
        let cpu = cpu_seconds();
        let start = Instant::now();
        let builder = IndexBuilder::from_csr(dim, &ids, indptr, indices, values)?.reorder(reorder);
        let added = start.elapsed();
        let index = builder.build()?;
        let total = start.elapsed();
        let (user, system) = (cpu_seconds().0 - cpu.0, cpu_seconds().1 - cpu.1);
        let first = &docs[0];
        // The first search makes what a segment builds on first use (untimed above).
        let t = Instant::now();
        let hits = index.search(first.vector.view(), &SearchOptions::new(1));
        let first_search = t.elapsed();
        println!(
            "run {run}: checked in {:.2} s, laid out and assembled in {:.2} s, {:.2} s in all \
             (CPU {user:.2} s user, {system:.2} s system; load average {}); the first search \
             took {:.0} ms and the first document finds {}",
            added.as_secs_f64(),
            (total - added).as_secs_f64(),
            total.as_secs_f64(),
            std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|l| l.split_whitespace().next().map(str::to_string))
                .unwrap_or_else(|| "?".into()),
            first_search.as_secs_f64() * 1e3,
            hits.first()
                .and_then(|h| index.id(h.doc))
                .unwrap_or("nothing"),
        );
    }
    Ok(())
}

/// The process's CPU time so far, user and system, in seconds (`getrusage`; zero where
/// there is none): the system part is mostly the kernel filling fresh pages on first touch.
#[cfg(not(unix))]
fn cpu_seconds() -> (f64, f64) {
    (0.0, 0.0)
}

/// The process's CPU time so far, user and system, in seconds (`getrusage`): the system
/// part is mostly the kernel filling fresh pages on first touch.
#[cfg(unix)]
fn cpu_seconds() -> (f64, f64) {
    // SAFETY: getrusage writes one `rusage` it is given; all-zero is a valid `rusage`.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    (secs(usage.ru_utime), secs(usage.ru_stime))
}
