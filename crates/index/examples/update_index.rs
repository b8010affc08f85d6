//! A tour of an index's life: build it from a few vectors, search it, then update it in
//! place with an [`IndexWriter`] (add, replace by id, delete), commit, optimize, reopen it
//! from disk and search again, printing what happens at each step.
//!
//! ```text
//! cargo run --release -p splade-index --example update_index
//! ```
//!
//! The vectors are hand-made over a ten-word vocabulary so the output is readable; real
//! SPLADE vectors (`splade encode --id-field _id ...`) have ~30k dimensions and tens to
//! hundreds of terms, and are read with `splade_index::readers`.

use std::path::Path;

use splade_index::{Index, IndexBuilder, IndexWriter, SearchOptions};
use splade_sparse::SparseVector;

/// The toy vocabulary: term id = position.
const VOCAB: [&str; 10] = [
    "rust",
    "python",
    "memory",
    "safety",
    "garbage",
    "collector",
    "speed",
    "index",
    "search",
    "sparse",
];

/// A sparse vector from `(word, weight)` pairs.
fn vector(words: &[(&str, f32)]) -> SparseVector {
    let pairs = words
        .iter()
        .map(|&(w, x)| {
            let t = VOCAB.iter().position(|v| *v == w).expect("word in VOCAB");
            (t as u32, x)
        })
        .collect();
    SparseVector::from_pairs(pairs).expect("valid vector")
}

/// Searches `index` for `words` and prints the hits; returns their ids.
fn search(index: &Index, label: &str, words: &[(&str, f32)]) -> Vec<String> {
    let query = vector(words);
    let hits = index.search(query.view(), &SearchOptions::new(5));
    // Exact search returns exactly what scoring every document would.
    assert_eq!(hits, index.brute_force_top_k(query.view(), 5));
    let terms: Vec<&str> = words.iter().map(|(w, _)| *w).collect();
    println!("  {label}: query [{}]", terms.join(" "));
    let mut ids = Vec::new();
    for h in &hits {
        let id = index.id(h.doc).expect("a hit has an id");
        println!("    {:<14} score {:.2}", id, h.score);
        ids.push(id.to_string());
    }
    if hits.is_empty() {
        println!("    (no document shares a term with the query)");
    }
    ids
}

fn describe(index: &Index) -> String {
    format!(
        "{} live documents, {} deleted but still stored, {} segment(s), generation {}",
        index.len(),
        index.num_deleted(),
        index.num_segments(),
        index.generation()
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir: &Path = &tmp.path().join("toy.idx");

    // 1. Build: every document at once, written atomically and reopened memory-mapped.
    println!("1. build {}", dir.display());
    let mut builder = IndexBuilder::new(VOCAB.len());
    let docs = [
        (
            "rust-book",
            vector(&[("rust", 2.0), ("memory", 1.0), ("safety", 1.5)]),
        ),
        (
            "python-guide",
            vector(&[("python", 2.0), ("garbage", 1.0), ("collector", 1.0)]),
        ),
        (
            "splade-paper",
            vector(&[("index", 1.0), ("search", 1.5), ("sparse", 2.0)]),
        ),
        (
            "gc-handbook",
            vector(&[("memory", 1.5), ("garbage", 2.0), ("collector", 2.0)]),
        ),
    ];
    for (id, v) in &docs {
        builder.add(id, v.view())?;
    }
    let index = builder.write(dir)?;
    println!("  {}", describe(&index));
    let memory_query = [("memory", 1.0), ("safety", 0.5)];
    let ids = search(&index, "search", &memory_query);
    assert_eq!(ids, ["rust-book", "gc-handbook"]);
    drop(index);

    // 2. Update in place: one writer at a time (it holds `write.lock`); nothing is visible
    //    to readers before the commit.
    println!("2. update with an IndexWriter");
    let mut writer = IndexWriter::open(dir)?;
    let added = writer.add("go-tour", vector(&[("memory", 0.5), ("speed", 2.0)]).view())?;
    println!("  add go-tour: replaced an existing document? {added}");
    let replaced = writer.add(
        "python-guide",
        vector(&[("python", 2.0), ("speed", 0.5), ("memory", 0.8)]).view(),
    )?;
    println!("  add python-guide again (upsert): replaced an existing document? {replaced}");
    let deleted = writer.delete("splade-paper");
    println!("  delete splade-paper: found? {deleted}");
    println!(
        "  before commit the index on disk is unchanged: {}",
        describe(&Index::open(dir)?)
    );
    let summary = writer.commit()?;
    println!(
        "  commit: generation {}, {} added, {} deleted, {} segment(s) written, {} live",
        summary.generation, summary.added, summary.deleted, summary.segments_written, summary.live
    );
    println!("  {}", describe(writer.index()));

    // 3. A reader opening the directory now sees the commit.
    println!("3. reopen and search");
    let index = Index::open(dir)?;
    let after_commit = search(&index, "search", &memory_query);
    // The replaced python-guide now has `memory`; splade-paper is gone.
    assert_eq!(
        after_commit,
        ["rust-book", "gc-handbook", "python-guide", "go-tour"]
    );
    search(&index, "search", &[("sparse", 1.0), ("search", 1.0)]);
    assert_eq!(index.doc_number("splade-paper"), None);
    drop(index);

    // 4. Optimize: merge every segment into one, dropping the deleted documents.
    println!("4. optimize");
    let summary = writer.optimize()?;
    println!(
        "  optimize: generation {}, {} segment(s) merged into {}, {} live",
        summary.generation, summary.segments_merged, summary.segments, summary.live
    );
    drop(writer); // releases the lock

    // 5. Reopen (checksums verified) and search again: the same hits in the same order.
    println!("5. reopen after optimize");
    let index = Index::open(dir)?;
    println!("  {}", describe(&index));
    assert_eq!((index.num_segments(), index.num_deleted()), (1, 0));
    let after_optimize = search(&index, "search", &memory_query);
    assert_eq!(after_optimize, after_commit);
    Ok(())
}
