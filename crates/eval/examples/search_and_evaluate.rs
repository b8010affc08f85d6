//! Encode a BEIR corpus into an index, search it with encoded queries, then evaluate the
//! model on the same data as sentence-transformers' SparseInformationRetrievalEvaluator
//! does: the library walk behind `splade index build --corpus`, `splade search` and
//! `splade eval ir`.
//!
//! Run: `cargo run --release -p splade-eval --example search_and_evaluate [BEIR_DIR] [MODEL]`
//! (defaults: `../shared/data/scifact`, the default model `splade-tiny`).

use std::path::PathBuf;

use splade_encoder::{EncodeOptions, SparseEncoder};
use splade_eval::corpus::encode_corpus_index;
use splade_eval::data::read_beir_dir;
use splade_eval::report::ir_keys;
use splade_eval::InformationRetrievalEvaluator;
use splade_index::SearchOptions;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "../shared/data/scifact".to_string()),
    );
    let model = args.next().unwrap_or_else(|| "splade-tiny".to_string());

    // 1. The model and the data (corpus, queries, relevance judgements).
    let encoder = SparseEncoder::from_pretrained(&model)?;
    let data = read_beir_dir(&dir, "test")?;
    println!(
        "{}: {} documents, {} queries",
        dir.display(),
        data.corpus.len(),
        data.queries.len()
    );

    // 2. Encode the corpus with the document route and index it (in memory; IndexBuilder::write
    //    persists an index, IndexWriter updates one).
    let options = EncodeOptions::default();
    let index = encode_corpus_index(&encoder, &data.corpus, &options)?;

    // 3. Search: encode queries with the query route, exact top-k by dot product.
    let texts: Vec<&str> = data
        .queries
        .iter()
        .take(3)
        .map(|(_, t)| t.as_str())
        .collect();
    let queries = encoder.encode_query(&texts, &options)?;
    for (text, query) in texts.iter().zip(queries.rows()) {
        println!("\n{text}");
        for hit in index.search(query, &SearchOptions::new(3)) {
            let id = index.id(hit.doc).unwrap_or("?");
            println!("  {:8.3}  {id}", hit.score);
        }
    }

    // 4. Evaluate: sentence-transformers' metric keys and definitions.
    let evaluator = InformationRetrievalEvaluator::new(data, "scifact")?;
    let result = evaluator.evaluate(&encoder)?;
    let metrics = ir_keys(&result, true);
    for key in [
        "scifact_dot_ndcg@10",
        "scifact_dot_mrr@10",
        "scifact_dot_recall@100",
    ] {
        if let Some((_, v)) = metrics.iter().find(|(k, _)| k == key) {
            println!("{key}: {v:.4}");
        }
    }
    Ok(())
}
