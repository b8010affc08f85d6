//! `splade data triplets`: training rows from labelled pairs or BEIR qrels, with hard negatives.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use splade_encoder::EncodeOptions;
use splade_train::triplets::{
    exclude_pairs, mine_hard_negatives, read_labelled_pairs, triplets_from_pairs,
};

#[derive(Args)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Build (anchor, positive, negative…) JSONL rows for `splade train`.
    Triplets(TripletArgs),
}

#[derive(Args)]
struct TripletArgs {
    /// Labelled pairs (`pairs.tsv` with `sentence1 sentence2 label`, or the Quora release
    /// file, optionally .gz): duplicates give anchor/positive, the anchor's labelled
    /// non-duplicates give the hard negative.
    #[arg(long, conflicts_with = "beir")]
    pairs: Option<PathBuf>,
    /// With --pairs: drop pairs that also occur in these pairs files (e.g. the evaluation
    /// splits, which the raw Quora release contains), comma-separated.
    #[arg(long, value_delimiter = ',')]
    exclude: Vec<PathBuf>,
    /// With --pairs: use each duplicate pair in both directions.
    #[arg(long)]
    both_directions: bool,
    /// A BEIR folder: each relevant (query, document) qrel gives anchor/positive.
    #[arg(long)]
    beir: Option<PathBuf>,
    /// The qrels split of --beir.
    #[arg(long, default_value = "train")]
    split: String,
    /// With --beir: mine this many hard negatives per row with --model (exact SPLADE search
    /// over the corpus, highest-ranked documents not judged relevant).
    #[arg(long, default_value_t = 0)]
    negatives: usize,
    /// Model for mining negatives.
    #[arg(long, default_value = splade_encoder::default_model::DEFAULT_MODEL)]
    model: String,
    /// Where the model runs: cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Output JSONL file (written atomically).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: DataArgs) -> Result<()> {
    match args.command {
        DataCommand::Triplets(args) => triplets(args),
    }
}

fn triplets(args: TripletArgs) -> Result<()> {
    let (columns, rows): (Vec<String>, Vec<Vec<String>>) = match (&args.pairs, &args.beir) {
        (Some(path), None) => {
            let mut labelled = read_labelled_pairs(path)?;
            for file in &args.exclude {
                labelled = exclude_pairs(labelled, &read_labelled_pairs(file)?);
            }
            let rows = triplets_from_pairs(&labelled, args.both_directions);
            (
                vec!["anchor".into(), "positive".into(), "negative".into()],
                rows,
            )
        }
        (None, Some(dir)) => {
            let data = splade_eval::data::read_beir_dir(dir, &args.split)?;
            let queries: BTreeMap<String, String> = data.queries.into_iter().collect();
            let corpus: BTreeMap<String, String> = data.corpus.into_iter().collect();
            let mut pairs: Vec<(String, String)> = data
                .relevant
                .iter()
                .flat_map(|(q, docs)| docs.iter().map(move |d| (q.clone(), d.clone())))
                .filter(|(q, d)| queries.contains_key(q) && corpus.contains_key(d))
                .collect();
            pairs.sort();
            let mut columns = vec!["anchor".to_string(), "positive".to_string()];
            let rows = if args.negatives == 0 {
                pairs
                    .iter()
                    .map(|(q, d)| vec![queries[q].clone(), corpus[d].clone()])
                    .collect()
            } else {
                columns.extend((1..=args.negatives).map(|i| format!("negative_{i}")));
                let encoder = crate::load_encoder(&args.model, &args.device)?;
                let options = EncodeOptions {
                    show_progress: true,
                    ..EncodeOptions::default()
                };
                mine_hard_negatives(
                    &encoder,
                    &queries,
                    &corpus,
                    &pairs,
                    args.negatives,
                    &options,
                )?
            };
            (columns, rows)
        }
        _ => bail!("give --pairs FILE.tsv or --beir DIR"),
    };
    let tmp = args.out.with_extension("tmp");
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?,
    );
    for row in &rows {
        let object: serde_json::Map<String, serde_json::Value> = columns
            .iter()
            .cloned()
            .zip(row.iter().map(|t| serde_json::Value::String(t.clone())))
            .collect();
        serde_json::to_writer(&mut file, &object)?;
        file.write_all(b"\n")?;
    }
    file.flush()?;
    drop(file);
    std::fs::rename(&tmp, &args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!(
        "{} rows ({}) written to {}",
        rows.len(),
        columns.join(", "),
        args.out.display()
    );
    Ok(())
}
