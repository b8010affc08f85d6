//! `splade`: the splade-rs command line.

mod checkpoint;
mod data_cmd;
mod encode_cmd;
mod engine_ranker;
mod eval_cmd;
mod eval_more_cmd;
mod export_cmd;
mod index_cmd;
mod input;
mod search_cmd;
mod serve_cmd;
mod train_cmd;

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use splade_encoder::{default_model::DEFAULT_MODEL, EncodeOptions, Similarity, SparseEncoder};

/// SPLADE learned sparse retrieval: encode text into sparse vectors.
#[derive(Parser)]
#[command(name = "splade", version, about)]
struct Cli {
    /// Worker threads for the model (default: all cores; same as RAYON_NUM_THREADS).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Encode texts (one per line) into sparse vectors, one JSON object per line.
    Encode(encode_cmd::EncodeArgs),
    /// Score two texts, or two files of texts line by line, with the model's similarity.
    Similarity(SimilarityArgs),
    /// Show what a model folder or id resolves to and how it will be run.
    Info(ModelArg),
    /// Measure encoding throughput and peak memory (prints one JSON object).
    Bench(BenchArgs),
    /// Evaluate a model as sentence-transformers' evaluators do (binary, ir, beir, similarity,
    /// triplet, reranking, mse, translation, rrf).
    Eval(eval_cmd::EvalArgs),
    /// Fine-tune a SPLADE model with SpladeLoss (MNRL + FLOPS), the seed's recipe by default.
    Train(Box<train_cmd::TrainArgs>),
    /// Prepare training data (triplets from labelled pairs or BEIR qrels, mined negatives).
    Data(data_cmd::DataArgs),
    /// Build, inspect or update a sparse inverted index (`index build`, `info`, `add`,
    /// `delete`, `optimize`).
    Index(index_cmd::IndexArgs),
    /// Search an index: one query text, a queries file, or query vectors (TREC run output).
    Search(search_cmd::SearchArgs),
    /// Export documents to a distributed engine (`export milvus|qdrant|opensearch|elasticsearch`).
    Export(export_cmd::ExportArgs),
    /// Serve the model over HTTP (text-embeddings-inference compatible), with search and
    /// live updates of an index when given `--index`.
    Serve(Box<serve_cmd::ServeArgs>),
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Texts to encode, one per line (or JSONL with --jsonl-field).
    #[arg(long)]
    input: PathBuf,
    /// Read JSONL and take the text from this field.
    #[arg(long, value_name = "NAME")]
    jsonl_field: Option<String>,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Use only the first N texts.
    #[arg(long)]
    limit: Option<usize>,
    /// Encode as queries (`query`: encode_query) or documents (`document`: encode_document);
    /// default: encode. An inference-free model takes the matching route.
    #[arg(long, value_parser = ["query", "document"])]
    task: Option<String>,
    /// Also time each text alone (one encode call per text) and report per-text latency
    /// percentiles in microseconds (`latency_us`: p50, p99, mean, max).
    #[arg(long)]
    per_text: bool,
}

#[derive(Args, Clone)]
pub(crate) struct ModelArg {
    /// Model folder, Hugging Face Hub id, or `splade-tiny` (the default model, fetched once).
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub(crate) model: String,
    /// Where the model runs: cpu, cuda, cuda:N or auto (a GPU when the build has the `cuda`
    /// feature and one is usable, else the CPU).
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// How the CPU runs the model (`--quantize`, `--no-screened-projection`).
#[derive(Args, Clone, Default)]
pub(crate) struct RunArgs {
    /// Linear layers in `none` (f32: parity with sentence-transformers) or `int8` (int8
    /// weights per output channel, dynamic per-token activations; faster, measured quality
    /// cost: BENCHMARKS.md). CPU only.
    #[arg(long, default_value = "none", value_name = "none|int8")]
    pub(crate) quantize: splade_encoder::Quantize,
    /// Compute every vocabulary logit in f32 instead of screening them with int8 bounds (the
    /// screened projection gives the same active entries; this is for comparison).
    #[arg(long)]
    pub(crate) no_screened_projection: bool,
}

impl RunArgs {
    /// The library's load options.
    pub(crate) fn load_options(&self) -> splade_encoder::LoadOptions {
        splade_encoder::LoadOptions {
            quantize: self.quantize,
            screened_projection: !self.no_screened_projection,
        }
    }
}

/// Loads the model `name` onto the device named `device` (`cpu`, `cuda[:N]`, `auto`).
pub(crate) fn load_encoder(name: &str, device: &str) -> Result<SparseEncoder> {
    load_encoder_with(name, device, &RunArgs::default())
}

/// [`load_encoder`] with `--quantize` / `--no-screened-projection`.
pub(crate) fn load_encoder_with(name: &str, device: &str, run: &RunArgs) -> Result<SparseEncoder> {
    let device = splade_encoder::device::parse_device(device)?;
    SparseEncoder::from_pretrained_with(name, &device, &run.load_options())
        .with_context(|| format!("loading model {name}"))
}

#[derive(Args)]
struct SimilarityArgs {
    #[command(flatten)]
    model: ModelArg,
    /// The two texts to compare.
    #[arg(num_args = 0..=2)]
    texts: Vec<String>,
    /// File of texts, one per line (compared line by line with --b).
    #[arg(long, requires = "b")]
    a: Option<PathBuf>,
    /// File of texts, one per line.
    #[arg(long, requires = "a")]
    b: Option<PathBuf>,
    /// Similarity function (default: the model's): dot, cosine, euclidean, manhattan.
    #[arg(long)]
    function: Option<Similarity>,
    /// Encode the first side as queries and the second as documents.
    #[arg(long)]
    asymmetric: bool,
}

/// Keeps freed tensor buffers in the process for reuse. glibc serves allocations of 128 KiB
/// and more (most activations and gradients) with fresh `mmap`s by default, returns them on
/// free, and trims the heap top above 128 KiB, so every training step page-faults and zeroes
/// its buffers anew: about 10 % of a distilbert-base-size step here (TRAINING.md). Up to
/// 32 MiB now come from the heap, and up to 512 MiB of free heap is kept.
///
/// With `encode_only` (the commands that only encode: `encode`, `bench`) no allocation gets an
/// `mmap` of its own, so the buffers above 32 MiB too (a base-size model's feed-forward
/// activations are about 100 MiB a batch) are reused from batch to batch instead of mapped,
/// faulted and zeroed anew. On a distilbert-base-size model in int8 over 100 SciFact passages:
/// 918,000 minor faults and 2.3 s of system time down to 171,000 and 0.4 s (BENCHMARKS.md,
/// "Session 22"). Not for the index builds, whose arrays of gigabytes grow by reallocation
/// (a mapped array grows in place, one on the heap is copied).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator(encode_only: bool) {
    // SAFETY: mallopt only sets allocator parameters; called once, before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
        if encode_only {
            libc::mallopt(libc::M_MMAP_MAX, 0);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator(_encode_only: bool) {}

fn main() {
    let cli = Cli::parse();
    tune_allocator(matches!(
        cli.command,
        Command::Encode(_) | Command::Bench(_)
    ));
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| "splade=info,splade_encoder=info,splade_server=info".into())
    };
    match &cli.command {
        Command::Serve(args) if args.json_output => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .init(),
        Command::Serve(_) => tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .init(),
        _ => tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .without_time()
            .init(),
    }
    if let Err(err) = set_up_threads(cli.threads) {
        exit_with(err);
    }
    let result = match cli.command {
        Command::Encode(args) => encode_cmd::run(args),
        Command::Similarity(args) => similarity(args),
        Command::Info(args) => info(args),
        Command::Bench(args) => bench(args),
        Command::Eval(args) => eval_cmd::run(args),
        Command::Train(args) => train_cmd::run(*args),
        Command::Data(args) => data_cmd::run(args),
        Command::Index(args) => index_cmd::run_index(args),
        Command::Search(args) => search_cmd::run_search(args),
        Command::Export(args) => export_cmd::run(args),
        Command::Serve(args) => serve_cmd::run(*args),
    };
    if let Err(err) = result {
        exit_with(err);
    }
}

/// Ends the process for `err`: quietly with status 0 when standard output was closed by
/// its reader (`splade ... | head`), as ripgrep does; otherwise with the error's message
/// and status 1.
fn exit_with(err: anyhow::Error) -> ! {
    let broken_pipe = err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        std::process::exit(0);
    }
    let _ = writeln!(std::io::stderr(), "error: {}", error_message(&err));
    std::process::exit(1);
}

/// The error and its causes joined by ": ", skipping a cause whose text the message
/// already holds (errors that print their source would otherwise repeat it).
fn error_message(err: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

/// Most worker threads `--threads` (or `RAYON_NUM_THREADS`) may ask for, per core: more
/// only adds overhead, and a count the operating system refuses would abort.
const MAX_THREADS_PER_CORE: usize = 4;

/// Sizes rayon's global pool (used by the index and, through `RAYON_NUM_THREADS`, by
/// candle's kernels) from `--threads` or `RAYON_NUM_THREADS`, capped at
/// [`MAX_THREADS_PER_CORE`] per core; a pool that cannot be created is an error.
fn set_up_threads(threads: Option<usize>) -> Result<()> {
    let from_env = std::env::var("RAYON_NUM_THREADS").ok();
    let requested =
        match (threads, &from_env) {
            (Some(n), _) => Some(n),
            (None, Some(v)) => Some(v.trim().parse::<usize>().map_err(|_| {
                anyhow::anyhow!("RAYON_NUM_THREADS={v:?} is not a number of threads")
            })?),
            (None, None) => None,
        };
    let Some(requested) = requested else {
        return Ok(());
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cap = cores * MAX_THREADS_PER_CORE;
    let n = if requested == 0 {
        // rayon's meaning of 0: one per core.
        cores
    } else if requested > cap {
        tracing::warn!(
            "{requested} threads requested; using {cap} ({MAX_THREADS_PER_CORE} per core, {cores} cores)"
        );
        cap
    } else {
        requested
    };
    // Read by candle's kernels when they first start.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .with_context(|| format!("cannot start {n} worker threads"))?;
    Ok(())
}

pub(crate) fn load(model: &ModelArg) -> Result<SparseEncoder> {
    load_encoder_with(&model.model, &model.device, &model.run)
}

fn similarity(args: SimilarityArgs) -> Result<()> {
    let (left, right) = match (&args.a, &args.b, args.texts.len()) {
        (Some(a), Some(b), 0) => {
            let ta =
                input::parse_texts(&input::read_input(Some(a))?, None, &a.display().to_string())?;
            let tb =
                input::parse_texts(&input::read_input(Some(b))?, None, &b.display().to_string())?;
            if ta.len() != tb.len() {
                bail!(
                    "{} has {} lines but {} has {}",
                    a.display(),
                    ta.len(),
                    b.display(),
                    tb.len()
                );
            }
            (ta, tb)
        }
        (None, None, 2) => (vec![args.texts[0].clone()], vec![args.texts[1].clone()]),
        _ => bail!("give two texts, or --a FILE and --b FILE"),
    };
    let mut encoder = load(&args.model)?;
    if let Some(f) = args.function {
        encoder.set_similarity_fn(f);
    }
    let options = EncodeOptions::default();
    let (ea, eb) = if args.asymmetric {
        (
            encoder.encode_query(&left, &options)?,
            encoder.encode_document(&right, &options)?,
        )
    } else {
        (
            encoder.encode(&left, &options)?,
            encoder.encode(&right, &options)?,
        )
    };
    let scores = encoder.similarity_pairwise(&ea, &eb);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for s in scores {
        writeln!(out, "{s}")?;
    }
    out.flush()?;
    Ok(())
}

fn info(args: ModelArg) -> Result<()> {
    let encoder = load(&args)?;
    let f = encoder.folder();
    let mut out = std::io::stdout().lock();
    writeln!(out, "folder:          {}", f.root.display())?;
    writeln!(out, "layout:          {:?}", f.layout)?;
    writeln!(
        out,
        "architecture:    {}",
        f.backbone.architecture.class_name()
    )?;
    writeln!(
        out,
        "layers/hidden:   {} / {}",
        f.backbone.num_layers, f.backbone.hidden_size
    )?;
    writeln!(out, "vocabulary:      {}", f.backbone.vocab_size)?;
    writeln!(out, "max_seq_length:  {}", f.max_seq_length)?;
    writeln!(out, "do_lower_case:   {}", f.do_lower_case)?;
    match &f.csr {
        Some(csr) => {
            let modes: Vec<&str> = csr.pooling.modes.iter().map(|m| m.name()).collect();
            writeln!(
                out,
                "pooling:         Pooling({}, include_prompt {})",
                modes.join("+"),
                csr.pooling.include_prompt
            )?;
            writeln!(
                out,
                "autoencoder:     SparseAutoEncoder(input_dim {}, hidden_dim {}, k {}, k_aux {}, normalize {})",
                csr.sae.input_dim, csr.sae.hidden_dim, csr.sae.k, csr.sae.k_aux, csr.sae.normalize
            )?;
            writeln!(
                out,
                "dimensions:      {} (CSR latents, not vocabulary tokens)",
                encoder.dim()
            )?;
        }
        None => writeln!(out, "pooling:         {}", f.pooling)?,
    }
    if let Some(k) = f.max_active_dims {
        writeln!(out, "max_active_dims: {k}")?;
    }
    writeln!(out, "similarity:      {}", f.similarity)?;
    for (name, prompt) in &f.prompts {
        writeln!(out, "prompt {name:<9}{prompt:?}")?;
    }
    out.flush()?;
    Ok(())
}

/// Peak resident set size of this process in bytes (Linux `VmHWM`), if known.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn bench(args: BenchArgs) -> Result<()> {
    let source = args.input.display().to_string();
    let mut texts = input::parse_texts(
        &input::read_input(Some(&args.input))?,
        args.jsonl_field.as_deref(),
        &source,
    )?;
    if let Some(n) = args.limit {
        texts.truncate(n);
    }
    if texts.is_empty() {
        bail!("{source}: no texts");
    }
    let load_start = std::time::Instant::now();
    let encoder = load(&args.model)?;
    let load_seconds = load_start.elapsed().as_secs_f64();
    let options = EncodeOptions {
        batch_size: args.batch_size,
        ..EncodeOptions::default()
    };
    let run = |texts: &[String]| match args.task.as_deref() {
        Some("query") => encoder.encode_query(texts, &options),
        Some("document") => encoder.encode_document(texts, &options),
        _ => encoder.encode(texts, &options),
    };
    // Warm-up: one batch, untimed.
    run(&texts[..args.batch_size.min(texts.len())])?;
    let start = std::time::Instant::now();
    let batch = run(&texts)?;
    let seconds = start.elapsed().as_secs_f64();
    let stats = SparseEncoder::sparsity(&batch);
    let latency = if args.per_text {
        let mut micros = Vec::with_capacity(texts.len());
        for text in &texts {
            let one = std::slice::from_ref(text);
            let t = std::time::Instant::now();
            run(one)?;
            micros.push(t.elapsed().as_secs_f64() * 1e6);
        }
        micros.sort_by(f64::total_cmp);
        let pct =
            |p: f64| micros[((p * micros.len() as f64).ceil() as usize).clamp(1, micros.len()) - 1];
        serde_json::json!({
            "p50": pct(0.50),
            "p99": pct(0.99),
            "mean": micros.iter().sum::<f64>() / micros.len() as f64,
            "max": micros[micros.len() - 1],
        })
    } else {
        serde_json::Value::Null
    };
    let report = serde_json::json!({
        "task": args.task,
        "latency_us": latency,
        "engine": "splade-rs",
        "texts": texts.len(),
        "seconds": seconds,
        "texts_per_s": texts.len() as f64 / seconds,
        "load_seconds": load_seconds,
        "peak_rss_bytes": peak_rss_bytes(),
        "active_dims": stats.active_dims,
        "threads": std::env::var("RAYON_NUM_THREADS").ok(),
        "quantize": args.model.run.quantize.name(),
        "int8_kernel": splade_encoder::quant::Int8Path::selected().ok().map(|p| p.name()),
        "f32_kernel": splade_encoder::model::simd::F32Path::selected().ok().map(|p| p.name()),
        "screen": encoder.screen_stats().map(|s| serde_json::json!({
            "logits": s.logits,
            "positive_possible": s.positive_possible,
            "exact": s.exact,
            "exact_fraction": s.exact as f64 / s.logits.max(1) as f64,
        })),
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{report}")?;
    out.flush()?;
    Ok(())
}
