//! `splade eval`: sentence-transformers' evaluators (binary classification, information
//! retrieval, NanoBEIR-style aggregation over BEIR folders; the others in
//! [`crate::eval_more_cmd`]) with the model card's key names.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use splade_encoder::{default_model::DEFAULT_MODEL, EncodeOptions, Similarity, SparseEncoder};
use splade_eval::data::{read_beir_files, read_binary_pairs};
use splade_eval::datasets::find_datasets;
use splade_eval::report::{
    binary_keys, ir_keys, markdown_columns, markdown_table, to_json, Metrics,
};
use splade_eval::{
    aggregate, BinaryClassificationEvaluator, Cutoffs, InformationRetrievalEvaluator,
    NanoBeirEvaluator, ThresholdSemantics, DEFAULT_AGGREGATE_NAME,
};
use splade_index::readers::read_jsonl;
use splade_sparse::{SparseBatch, SparseVector};

/// Arguments of `splade eval`.
#[derive(Args)]
pub struct EvalArgs {
    #[command(subcommand)]
    command: EvalCommand,
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Binary classification of sentence pairs (SparseBinaryClassificationEvaluator).
    Binary(BinaryArgs),
    /// Information retrieval on one corpus (SparseInformationRetrievalEvaluator).
    Ir(IrArgs),
    /// IR over several BEIR folders plus their mean (SparseNanoBEIREvaluator-style).
    Beir(BeirArgs),
    /// Correlation of similarity scores with gold scores (SparseEmbeddingSimilarityEvaluator).
    Similarity(crate::eval_more_cmd::SimilarityArgs),
    /// Accuracy on (anchor, positive, negative) triplets (SparseTripletEvaluator).
    Triplet(crate::eval_more_cmd::TripletArgs),
    /// MAP, MRR@k and NDCG@k of reranking each query's candidates (SparseRerankingEvaluator).
    Reranking(crate::eval_more_cmd::RerankingArgs),
    /// Mean squared error to a teacher's embeddings (SparseMSEEvaluator).
    Mse(crate::eval_more_cmd::MseArgs),
    /// Finding each sentence's translation among all targets (SparseTranslationEvaluator).
    Translation(crate::eval_more_cmd::TranslationArgs),
    /// Reciprocal rank fusion of a dense and a sparse run (ReciprocalRankFusionEvaluator).
    Rrf(crate::eval_more_cmd::RrfArgs),
}

/// The model options every model-based evaluation takes.
#[derive(Args)]
pub(crate) struct Common {
    /// Model folder, Hugging Face Hub id, or `splade-tiny` (the default model).
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub(crate) model: String,
    /// Where the model runs: cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
    #[command(flatten)]
    pub(crate) run: crate::RunArgs,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    pub(crate) batch_size: usize,
    /// Keep only the K largest weights of each vector.
    #[arg(long, value_name = "K")]
    pub(crate) max_active_dims: Option<usize>,
    /// Write the metrics as one flat JSON object to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
}

#[derive(Args)]
struct BinaryArgs {
    #[command(flatten)]
    common: Common,
    /// Pairs file: header `sentence1<TAB>sentence2<TAB>label`, labels 0/1, no quoting.
    #[arg(long)]
    pairs: PathBuf,
    /// Prefix of every metric key (e.g. `quora_duplicates_dev`).
    #[arg(long, default_value = "")]
    name: String,
    /// Similarity functions, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "cosine,dot,euclidean,manhattan"
    )]
    functions: Vec<Similarity>,
    /// Reproduce sentence-transformers < 5.7 (negative distance thresholds, as in the seed card).
    #[arg(long)]
    legacy: bool,
}

#[derive(Args)]
struct CutoffArgs {
    /// Score function (default: the model's similarity function).
    #[arg(long)]
    similarity: Option<Similarity>,
    /// Rank with the splade-index exact search (dot product) instead of a brute-force scan;
    /// the metrics are identical.
    #[arg(long)]
    use_index: bool,
    /// With --use-index: approximate search with this bound multiplier α in (0, 1] (and
    /// --approx-beta), to measure its cost in quality.
    #[arg(long, requires = "use_index")]
    approx_alpha: Option<f32>,
    /// With --approx-alpha: fraction β in (0, 1] of query terms used for block bounds.
    #[arg(long, requires = "approx_alpha", default_value_t = 1.0)]
    approx_beta: f32,
    /// accuracy@k cut-offs.
    #[arg(long, value_delimiter = ',', default_value = "1,3,5,10")]
    accuracy_at_k: Vec<usize>,
    /// precision@k / recall@k cut-offs.
    #[arg(long, value_delimiter = ',', default_value = "1,3,5,10")]
    precision_recall_at_k: Vec<usize>,
    /// MRR@k cut-offs.
    #[arg(long, value_delimiter = ',', default_value = "10")]
    mrr_at_k: Vec<usize>,
    /// NDCG@k cut-offs.
    #[arg(long, value_delimiter = ',', default_value = "10")]
    ndcg_at_k: Vec<usize>,
    /// MAP@k cut-offs.
    #[arg(long, value_delimiter = ',', default_value = "100")]
    map_at_k: Vec<usize>,
}

impl CutoffArgs {
    fn cutoffs(&self) -> Cutoffs {
        Cutoffs {
            accuracy_at_k: self.accuracy_at_k.clone(),
            precision_recall_at_k: self.precision_recall_at_k.clone(),
            mrr_at_k: self.mrr_at_k.clone(),
            ndcg_at_k: self.ndcg_at_k.clone(),
            map_at_k: self.map_at_k.clone(),
        }
    }
}

#[derive(Args)]
struct IrArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    cutoffs: CutoffArgs,
    /// BEIR corpus.jsonl (`_id`, `title`, `text`).
    #[arg(long)]
    corpus: PathBuf,
    /// BEIR queries.jsonl (`_id`, `text`).
    #[arg(long)]
    queries: PathBuf,
    /// Qrels TSV (`query-id<TAB>corpus-id<TAB>score`, header optional; score > 0 = relevant).
    #[arg(long)]
    qrels: PathBuf,
    /// Prefix of every metric key (e.g. `NanoSciFact`).
    #[arg(long, default_value = "")]
    name: String,
    /// Rank through a Milvus collection holding the corpus, milvus://HOST:PORT/COLLECTION
    /// (written by `splade export milvus`; ids = corpus ids), to compare its metrics with
    /// local ranking. Scores are inner products (dot).
    #[arg(long, value_name = "ADDRESS", conflicts_with = "use_index")]
    engine: Option<String>,
    /// Document vectors, JSONL `{"id", "indices", "values"}` (`splade encode --document
    /// --jsonl-field text --id-field _id`), used instead of encoding the corpus with --model;
    /// every corpus id needs one.
    #[arg(long, value_name = "FILE", requires = "query_vectors")]
    corpus_vectors: Option<PathBuf>,
    /// Query vectors (JSONL, as --corpus-vectors; `splade encode --query`), used with
    /// --corpus-vectors instead of encoding the queries.
    #[arg(long, value_name = "FILE", requires = "corpus_vectors")]
    query_vectors: Option<PathBuf>,
}

#[derive(Args)]
struct BeirArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    cutoffs: CutoffArgs,
    /// Folder holding one BEIR folder per dataset, or Hugging Face NanoBEIR parquet folders
    /// (`corpus/`, `queries/`, `qrels/` with `*.parquet`; a snapshot of
    /// `sentence-transformers/NanoBEIR-en` or of `zeta-alpha-ai/Nano*` repositories), or one
    /// such parquet folder itself.
    #[arg(long, required_unless_present = "dataset_id")]
    data_dir: Option<PathBuf>,
    /// A Hugging Face NanoBEIR dataset (e.g. `sentence-transformers/NanoBEIR-en`), read from
    /// the local Hugging Face cache (HF_HUB_CACHE, HF_HOME/hub or ~/.cache/huggingface/hub) as
    /// sentence-transformers' SparseNanoBEIREvaluator reads it; splade-rs does not download
    /// it. --datasets are then NanoBEIR keys (default: all 13).
    #[arg(long, conflicts_with = "data_dir")]
    dataset_id: Option<String>,
    /// Datasets, comma-separated: subfolder names, parquet split names (`NanoSciFact`) or
    /// NanoBEIR keys (`scifact`) (default: every dataset found).
    #[arg(long, value_delimiter = ',')]
    datasets: Vec<String>,
    /// Qrels split of BEIR folders (`qrels/<split>.tsv`); parquet folders give one dataset per
    /// split.
    #[arg(long, default_value = "test")]
    split: String,
    /// Key prefix of the aggregate.
    #[arg(long, default_value = DEFAULT_AGGREGATE_NAME)]
    aggregate_name: String,
}

/// Runs `splade eval ...`.
pub fn run(args: EvalArgs) -> Result<()> {
    match args.command {
        EvalCommand::Binary(a) => binary(a),
        EvalCommand::Ir(a) => ir(a),
        EvalCommand::Beir(a) => beir(a),
        EvalCommand::Similarity(a) => crate::eval_more_cmd::similarity(a),
        EvalCommand::Triplet(a) => crate::eval_more_cmd::triplet(a),
        EvalCommand::Reranking(a) => crate::eval_more_cmd::reranking(a),
        EvalCommand::Mse(a) => crate::eval_more_cmd::mse(a),
        EvalCommand::Translation(a) => crate::eval_more_cmd::translation(a),
        EvalCommand::Rrf(a) => crate::eval_more_cmd::rrf(a),
    }
}

pub(crate) fn encode_options(c: &Common) -> EncodeOptions {
    EncodeOptions {
        batch_size: c.batch_size,
        max_active_dims: c.max_active_dims,
        ..EncodeOptions::default()
    }
}

pub(crate) fn load(c: &Common) -> Result<SparseEncoder> {
    crate::load_encoder_with(&c.model, &c.device, &c.run)
}

pub(crate) fn write_output(path: Option<&Path>, metrics: &Metrics) -> Result<()> {
    if let Some(p) = path {
        std::fs::write(p, to_json(metrics)).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

fn binary(a: BinaryArgs) -> Result<()> {
    if a.functions.is_empty() {
        bail!("--functions needs at least one similarity function");
    }
    let pairs = read_binary_pairs(&a.pairs)?;
    let mut ev = BinaryClassificationEvaluator::new(pairs, a.name)?;
    ev.functions = a.functions;
    ev.semantics = if a.legacy {
        ThresholdSemantics::Legacy
    } else {
        ThresholdSemantics::Current
    };
    ev.options = encode_options(&a.common);
    let encoder = load(&a.common)?;
    let start = Instant::now();
    let result = ev.evaluate(&encoder)?;
    eprintln!(
        "evaluated {} pairs in {:.2} s",
        ev.pairs.labels.len(),
        start.elapsed().as_secs_f64()
    );
    let metrics = binary_keys(&result);
    write_stdout(&markdown_table(&metrics))?;
    write_output(a.common.output.as_deref(), &metrics)
}

fn ir_evaluator(
    data: splade_eval::data::RetrievalData,
    name: &str,
    common: &Common,
    cutoffs: &CutoffArgs,
) -> Result<InformationRetrievalEvaluator> {
    let mut ev = InformationRetrievalEvaluator::new(data, name)?;
    ev.cutoffs = cutoffs.cutoffs();
    ev.cutoffs.validate()?;
    ev.function = cutoffs.similarity;
    ev.use_index = cutoffs.use_index;
    ev.approximate = cutoffs.approx_alpha.map(|a| (a, cutoffs.approx_beta));
    ev.options = encode_options(common);
    Ok(ev)
}

fn ir(a: IrArgs) -> Result<()> {
    let data = read_beir_files(&a.corpus, &a.queries, &a.qrels)?;
    let ev = ir_evaluator(data, &a.name, &a.common, &a.cutoffs)?;
    let start = Instant::now();
    let (query_emb, corpus_emb, function) = match (&a.corpus_vectors, &a.query_vectors) {
        (Some(cv), Some(qv)) => {
            let query_ids: Vec<&str> = ev.queries.iter().map(|(id, _)| id.as_str()).collect();
            let corpus_ids: Vec<&str> = ev.corpus.iter().map(|(id, _)| id.as_str()).collect();
            let (queries, corpus) = vectors_in_order(qv, &query_ids, cv, &corpus_ids)?;
            (
                queries,
                corpus,
                a.cutoffs.similarity.unwrap_or(Similarity::Dot),
            )
        }
        _ => {
            let encoder = load(&a.common)?;
            let q: Vec<&str> = ev.queries.iter().map(|(_, t)| t.as_str()).collect();
            let c: Vec<&str> = ev.corpus.iter().map(|(_, t)| t.as_str()).collect();
            (
                encoder.encode_query(&q, &ev.options)?,
                encoder.encode_document(&c, &ev.options)?,
                a.cutoffs.similarity.unwrap_or(encoder.similarity_fn()),
            )
        }
    };
    let result = match &a.engine {
        Some(address) => {
            if function != Similarity::Dot {
                bail!("--engine ranks by inner product (dot); the evaluation asks for {function}");
            }
            let ids: Vec<&str> = ev.corpus.iter().map(|(id, _)| id.as_str()).collect();
            let ranker = crate::engine_ranker::MilvusRanker::new(address, &ids)?;
            ev.evaluate_with_ranker(&query_emb, &corpus_emb, function, &ranker)?
        }
        None => ev.evaluate_embeddings(&query_emb, &corpus_emb, function)?,
    };
    eprintln!(
        "evaluated {} queries against {} documents in {:.2} s",
        result.num_queries,
        result.num_corpus,
        start.elapsed().as_secs_f64()
    );
    let metrics = ir_keys(&result, true);
    write_stdout(&markdown_table(&metrics))?;
    write_output(a.common.output.as_deref(), &metrics)
}

fn beir(a: BeirArgs) -> Result<()> {
    let mut evaluators = Vec::new();
    match (&a.data_dir, &a.dataset_id) {
        (_, Some(id)) => {
            for ev in NanoBeirEvaluator::from_hub_cache(id, &a.datasets)?.evaluators {
                let name = ev.name.clone();
                let data = splade_eval::data::RetrievalData {
                    queries: ev.queries,
                    corpus: ev.corpus,
                    relevant: ev.relevant,
                };
                evaluators.push(ir_evaluator(data, &name, &a.common, &a.cutoffs)?);
            }
        }
        (Some(dir), None) => {
            for dataset in find_datasets(dir, &a.split, &a.datasets)? {
                let data = dataset.read(&a.split)?;
                evaluators.push(ir_evaluator(data, &dataset.name, &a.common, &a.cutoffs)?);
            }
        }
        (None, None) => bail!("give --data-dir or --dataset-id"),
    }
    let encoder = load(&a.common)?;
    let mut results = Vec::new();
    for ev in &evaluators {
        let start = Instant::now();
        results.push(ev.evaluate(&encoder)?);
        eprintln!("{}: {:.2} s", ev.name, start.elapsed().as_secs_f64());
    }
    let agg = aggregate(&a.aggregate_name, results)?;
    let mut columns: Vec<(String, Metrics)> = agg
        .datasets
        .iter()
        .map(|r| (r.name.clone(), ir_keys(r, false)))
        .collect();
    columns.push((agg.name.clone(), agg.metrics.clone()));
    write_stdout(&markdown_columns(&columns))?;
    write_output(a.common.output.as_deref(), &agg.flat())
}

/// The vectors of `query_ids` and `corpus_ids` (in those orders) from two JSONL vector
/// files, as batches of one dimension (the largest term id + 1 over both). An id without a
/// vector is an error naming the file.
fn vectors_in_order(
    query_file: &Path,
    query_ids: &[&str],
    corpus_file: &Path,
    corpus_ids: &[&str],
) -> Result<(SparseBatch, SparseBatch)> {
    let queries = read_jsonl(query_file, None)?;
    let corpus = read_jsonl(corpus_file, None)?;
    let dim = queries
        .iter()
        .chain(&corpus)
        .filter_map(|d| d.vector.indices().last())
        .max()
        .map_or(1, |&t| t as usize + 1);
    let batch = |file: &Path, docs: &[splade_index::readers::Document], ids: &[&str]| {
        let by_id: HashMap<&str, &SparseVector> =
            docs.iter().map(|d| (d.id.as_str(), &d.vector)).collect();
        let mut batch = SparseBatch::new(dim);
        for id in ids {
            let v = by_id
                .get(id)
                .with_context(|| format!("{}: no vector for id {id:?}", file.display()))?;
            batch.push(v.view())?;
        }
        Ok::<_, anyhow::Error>(batch)
    };
    Ok((
        batch(query_file, &queries, query_ids)?,
        batch(corpus_file, &corpus, corpus_ids)?,
    ))
}

/// Writes `text` to standard output (errors, e.g. a closed pipe, are returned).
pub(crate) fn write_stdout(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}
