//! Builds an index on disk from a file of vectors, streaming: documents go to the index
//! files as they are read, so memory stays near the size of the ids and the layout, not of
//! the vectors. Then opens the index and searches it with its own first document.
//!
//! ```text
//! cargo run --release -p splade-index --example build_on_disk -- OUT_DIR DIM DOCS.jsonl
//! cargo run --release -p splade-index --example build_on_disk -- OUT_DIR DIM DOCS.bin DOCS.ids
//! ```
//!
//! `DOCS.jsonl` holds one `{"id": ..., "indices": [...], "values": [...]}` per line (the
//! output of `splade encode --id-field ...`); `DOCS.bin` is Seismic's binary format (what
//! Seismic, kANNolo and BMP's tools read), with `DOCS.ids` one id per line in the same
//! order. The time of each step is printed; `splade index build` does the same through the
//! CLI.

use std::path::Path;
use std::time::Instant;

use splade_index::readers::{open_jsonl, open_seismic, read_ahead, Document, READ_AHEAD_DOCS};
use splade_index::{DiskIndexBuilder, Index, SearchOptions};

type Docs = Box<dyn Iterator<Item = splade_index::Result<Document>> + Send>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (out, dim, docs): (&str, usize, Docs) = match args.as_slice() {
        [out, dim, jsonl] => (
            out,
            dim.parse()?,
            Box::new(open_jsonl(jsonl.as_ref(), None)?),
        ),
        [out, dim, bin, ids] => {
            let dim: usize = dim.parse()?;
            (
                out,
                dim,
                Box::new(open_seismic(bin.as_ref(), ids.as_ref(), Some(dim))?),
            )
        }
        _ => {
            return Err("usage: build_on_disk OUT_DIR DIM (DOCS.jsonl | DOCS.bin DOCS.ids)".into())
        }
    };
    let out = Path::new(out);
    // Parse in a background thread while the builder writes what it has.
    let docs = read_ahead(docs, READ_AHEAD_DOCS);

    let start = Instant::now();
    let mut builder = DiskIndexBuilder::create(out, dim)?;
    let mut first = None;
    for doc in docs {
        let doc = doc?;
        builder.add(&doc.id, doc.vector.view())?;
        first.get_or_insert(doc.vector);
    }
    let added = start.elapsed();
    let n = builder.len();
    let manifest = builder.finish()?;
    let total = start.elapsed();
    println!(
        "{n} documents: read and added in {:.2} s, laid out and written in {:.2} s, {:.2} s in all \
         (block size {})",
        added.as_secs_f64(),
        (total - added).as_secs_f64(),
        total.as_secs_f64(),
        manifest.block_size,
    );

    let index = Index::open(out)?;
    if let Some(query) = first {
        println!("the first document's nearest documents:");
        for hit in index.search(query.view(), &SearchOptions::new(3)) {
            println!("  {} {:.4}", index.id(hit.doc).unwrap_or("?"), hit.score);
        }
    }
    Ok(())
}
