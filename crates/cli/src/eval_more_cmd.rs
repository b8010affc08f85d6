//! `splade eval similarity|triplet|reranking|mse|translation|rrf`: the other sparse evaluators
//! of sentence-transformers (SparseEmbeddingSimilarityEvaluator, SparseTripletEvaluator,
//! SparseRerankingEvaluator, SparseMSEEvaluator, SparseTranslationEvaluator,
//! ReciprocalRankFusionEvaluator) on files, with the reference's key names. Parsing and
//! printing only: the readers and evaluators are `splade-eval`'s.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use splade_encoder::{Similarity, SparseEncoder};
use splade_eval::data::{read_jsonl_records, read_scored_pairs, read_tsv_columns};
use splade_eval::report::{markdown_table, Metrics};
use splade_eval::{
    EmbeddingSimilarityEvaluator, KeyedResult, MseEvaluator, RankedSample,
    ReciprocalRankFusionEvaluator, RerankingEvaluator, RerankingSample, TranslationEvaluator,
    TripletEvaluator,
};

use crate::eval_cmd::{encode_options, load, write_output, write_stdout, Common};

/// `splade eval similarity`.
#[derive(Args)]
pub struct SimilarityArgs {
    #[command(flatten)]
    common: Common,
    /// Pairs file: header `sentence1<TAB>sentence2<TAB>label`, the label a gold score
    /// (STS-B, SICK), no quoting.
    #[arg(long)]
    pairs: PathBuf,
    /// Prefix of every metric key (e.g. `sts_dev`).
    #[arg(long, default_value = "")]
    name: String,
    /// Similarity functions, comma-separated (default: the model's).
    #[arg(long, value_delimiter = ',')]
    functions: Vec<Similarity>,
    /// The function whose Spearman correlation is the primary metric (default: the best,
    /// `max`, when several functions are evaluated).
    #[arg(long)]
    main_similarity: Option<Similarity>,
}

/// `splade eval triplet`.
#[derive(Args)]
pub struct TripletArgs {
    #[command(flatten)]
    common: Common,
    /// Triplets file: header with `anchor`, `positive` and `negative` columns, tab-separated,
    /// no quoting.
    #[arg(long)]
    triplets: PathBuf,
    /// Prefix of every metric key.
    #[arg(long, default_value = "")]
    name: String,
    /// Similarity functions, comma-separated (default: the model's).
    #[arg(long, value_delimiter = ',')]
    functions: Vec<Similarity>,
    /// The function whose accuracy is the primary metric.
    #[arg(long)]
    main_similarity: Option<Similarity>,
    /// Margins, comma-separated: `M` for every function or `FUNCTION=M` (e.g. `dot=0.5`); a
    /// triplet counts as right when sim(anchor, positive) - sim(anchor, negative) > M.
    #[arg(long, value_delimiter = ',')]
    margin: Vec<String>,
}

/// `splade eval reranking`.
#[derive(Args)]
pub struct RerankingArgs {
    #[command(flatten)]
    common: Common,
    /// Samples, JSON Lines: `{"query": ..., "positive": [...], "negative": [...]}`.
    #[arg(long)]
    samples: PathBuf,
    /// Prefix of every metric key.
    #[arg(long, default_value = "")]
    name: String,
    /// Cut-off of MRR@k and NDCG@k.
    #[arg(long, default_value_t = 10)]
    at_k: usize,
    /// Score function (sentence-transformers' default: cosine).
    #[arg(long, default_value = "cosine")]
    similarity: Similarity,
}

/// `splade eval mse`.
#[derive(Args)]
pub struct MseArgs {
    #[command(flatten)]
    common: Common,
    /// Sentences file with a header: the first column holds the source sentences (the
    /// teacher encodes them), the second the target sentences (the model encodes them).
    #[arg(long)]
    pairs: PathBuf,
    /// The teacher model (default: --model).
    #[arg(long)]
    teacher: Option<String>,
    /// Prefix of every metric key.
    #[arg(long, default_value = "")]
    name: String,
}

/// `splade eval translation`.
#[derive(Args)]
pub struct TranslationArgs {
    #[command(flatten)]
    common: Common,
    /// Sentences file with a header: the first column holds the source sentences, the second
    /// their translations (paraphrases), row by row.
    #[arg(long)]
    pairs: PathBuf,
    /// Prefix of every metric key.
    #[arg(long, default_value = "")]
    name: String,
}

/// `splade eval rrf`.
#[derive(Args)]
pub struct RrfArgs {
    /// The dense run, JSON Lines: `{"query_id", "positive": [...], "documents": [...]}`,
    /// documents best first.
    #[arg(long)]
    dense: PathBuf,
    /// The sparse run (the same query ids in the same order).
    #[arg(long)]
    sparse: PathBuf,
    /// Prefix of every metric key.
    #[arg(long, default_value = "")]
    name: String,
    /// Cut-off of MRR@k and NDCG@k.
    #[arg(long, default_value_t = 10)]
    at_k: usize,
    /// The k of reciprocal rank fusion, 1 / (k + rank).
    #[arg(long, default_value_t = 60)]
    rrf_k: usize,
    /// Write the metrics as one flat JSON object to FILE.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Prints the result (its primary metric on stderr) and writes `--output`.
fn report(result: &KeyedResult, output: Option<&std::path::Path>, start: Instant) -> Result<()> {
    eprintln!(
        "evaluated in {:.2} s; primary metric {}",
        start.elapsed().as_secs_f64(),
        result.primary_metric
    );
    let metrics: &Metrics = &result.metrics;
    write_stdout(&markdown_table(metrics))?;
    write_output(output, metrics)
}

/// Two text columns of a TSV file with a header: the first two columns.
fn two_columns(path: &std::path::Path) -> Result<(Vec<String>, Vec<String>)> {
    let mut cols = read_tsv_columns(path, &[(None, 0), (None, 1)])?;
    let b = cols.pop().unwrap_or_default();
    let a = cols.pop().unwrap_or_default();
    Ok((a, b))
}

/// `M` or `FUNCTION=M` entries of `--margin`, for the evaluated `functions`.
fn margins(entries: &[String], functions: &[Similarity]) -> Result<Vec<(Similarity, f32)>> {
    let mut out = Vec::new();
    for e in entries {
        let (function, value) = match e.split_once('=') {
            Some((f, v)) => (Some(f.trim()), v.trim()),
            None => (None, e.trim()),
        };
        let m: f32 = value
            .parse()
            .ok()
            .filter(|m: &f32| m.is_finite())
            .with_context(|| format!("--margin {e}: {value:?} is not a finite number"))?;
        match function {
            Some(f) => {
                let f: Similarity = f.parse().map_err(|e| anyhow::anyhow!("--margin: {e}"))?;
                out.push((f, m));
            }
            None if functions.is_empty() => {
                out.extend(Similarity::ALL.iter().map(|&f| (f, m)));
            }
            None => out.extend(functions.iter().map(|&f| (f, m))),
        }
    }
    Ok(out)
}

/// Loads the model, runs one evaluation on it (timed, model loading excluded) and reports.
fn run_with_model(
    common: &Common,
    evaluate: impl FnOnce(&SparseEncoder) -> Result<KeyedResult>,
) -> Result<()> {
    let encoder = load(common)?;
    let start = Instant::now();
    let result = evaluate(&encoder)?;
    report(&result, common.output.as_deref(), start)
}

/// Runs `splade eval similarity`.
pub fn similarity(a: SimilarityArgs) -> Result<()> {
    let pairs = read_scored_pairs(&a.pairs)?;
    let mut ev =
        EmbeddingSimilarityEvaluator::new(pairs.sentences1, pairs.sentences2, pairs.scores)?;
    ev.name = a.name;
    ev.functions = a.functions;
    ev.main_similarity = a.main_similarity;
    ev.options = encode_options(&a.common);
    run_with_model(&a.common, |encoder| Ok(ev.evaluate(encoder)?))
}

/// Runs `splade eval triplet`.
pub fn triplet(a: TripletArgs) -> Result<()> {
    let mut cols = read_tsv_columns(
        &a.triplets,
        &[
            (Some("anchor"), 0),
            (Some("positive"), 1),
            (Some("negative"), 2),
        ],
    )?;
    let negatives = cols.pop().unwrap_or_default();
    let positives = cols.pop().unwrap_or_default();
    let anchors = cols.pop().unwrap_or_default();
    let mut ev = TripletEvaluator::new(anchors, positives, negatives)?;
    ev.margins = margins(&a.margin, &a.functions)?;
    ev.name = a.name;
    ev.functions = a.functions;
    ev.main_similarity = a.main_similarity;
    ev.options = encode_options(&a.common);
    run_with_model(&a.common, |encoder| Ok(ev.evaluate(encoder)?))
}

/// Runs `splade eval reranking`.
pub fn reranking(a: RerankingArgs) -> Result<()> {
    if a.at_k == 0 {
        bail!("--at-k must be at least 1");
    }
    let samples: Vec<RerankingSample> = read_jsonl_records(&a.samples)?;
    let mut ev = RerankingEvaluator::new(samples)?;
    ev.name = a.name;
    ev.at_k = a.at_k;
    ev.similarity = a.similarity;
    ev.options = encode_options(&a.common);
    run_with_model(&a.common, |encoder| Ok(ev.evaluate(encoder)?))
}

/// Runs `splade eval mse`.
pub fn mse(a: MseArgs) -> Result<()> {
    let (sources, targets) = two_columns(&a.pairs)?;
    let student = load(&a.common)?;
    let teacher: Option<SparseEncoder> = match &a.teacher {
        Some(t) if *t != a.common.model => Some(crate::load_encoder(t, &a.common.device)?),
        _ => None,
    };
    let start = Instant::now();
    let mut ev = MseEvaluator::with_teacher(
        teacher.as_ref().unwrap_or(&student),
        &sources,
        targets,
        encode_options(&a.common),
    )?;
    ev.name = a.name;
    let result = ev.evaluate(&student)?;
    report(&result, a.common.output.as_deref(), start)
}

/// Runs `splade eval translation`.
pub fn translation(a: TranslationArgs) -> Result<()> {
    let (sources, targets) = two_columns(&a.pairs)?;
    let mut ev = TranslationEvaluator::new(sources, targets)?;
    ev.name = a.name;
    ev.options = encode_options(&a.common);
    run_with_model(&a.common, |encoder| Ok(ev.evaluate(encoder)?))
}

/// Runs `splade eval rrf` (no model: it fuses two given runs).
pub fn rrf(a: RrfArgs) -> Result<()> {
    if a.at_k == 0 {
        bail!("--at-k must be at least 1");
    }
    let dense: Vec<RankedSample> = read_jsonl_records(&a.dense)?;
    let sparse: Vec<RankedSample> = read_jsonl_records(&a.sparse)?;
    let mut ev = ReciprocalRankFusionEvaluator::new(dense, sparse)?;
    ev.name = a.name;
    ev.at_k = a.at_k;
    ev.rrf_k = a.rrf_k;
    let start = Instant::now();
    let result = ev.evaluate()?;
    report(&result, a.output.as_deref(), start)
}
