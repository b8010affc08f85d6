//! Encode a few queries and documents with the default model, score them and show what the
//! model expanded each query into.
//!
//! Run: `cargo run --release -p splade-encoder --example encode [MODEL]`

use splade_encoder::{EncodeOptions, SparseEncoder};

fn main() -> Result<(), splade_encoder::EncoderError> {
    let model = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "splade-tiny".to_string());
    let encoder = SparseEncoder::from_pretrained(&model)?;
    let queries = [
        "how do vaccines train the immune system",
        "cheap flights to tokyo",
    ];
    let documents = [
        "Vaccines expose the immune system to a harmless antigen so that it builds memory cells.",
        "Budget airlines offer low fares to Japan in the off season.",
        "The stock market closed higher on Friday.",
    ];
    let options = EncodeOptions::default();
    let q = encoder.encode_query(&queries, &options)?;
    let d = encoder.encode_document(&documents, &options)?;
    let scores = encoder.similarity(&q, &d);
    for (i, query) in queries.iter().enumerate() {
        println!("{query}");
        let terms: Vec<String> = encoder
            .decode(q.row(i).expect("row"), Some(8))
            .into_iter()
            .map(|(t, w)| format!("{t}:{w:.2}"))
            .collect();
        println!("  expansion: {}", terms.join(" "));
        for (j, doc) in documents.iter().enumerate() {
            println!("  {:7.3}  {doc}", scores.get(i, j));
        }
    }
    let stats = SparseEncoder::sparsity(&d);
    println!(
        "documents: {:.1} active dims on average (sparsity {:.4})",
        stats.active_dims, stats.sparsity_ratio
    );
    Ok(())
}
