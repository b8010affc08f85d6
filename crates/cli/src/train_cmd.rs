//! `splade train`: SpladeLoss fine-tuning from the command line or a TOML config. The options
//! and the run are `splade_train::options` (shared with the Python package); this module
//! installs the Ctrl-C handler and prints.

use anyhow::{Context, Result};
use splade_train::options::{RunObserver, RunStart, TrainOptions};
use splade_train::trainer::{LogEntry, Metrics, TrainObserver};
use splade_train::TrainError;

/// `splade train`'s arguments: every option of [`TrainOptions`], as flags.
pub type TrainArgs = TrainOptions;

/// Prints the run's start, log entries and evaluations to stderr.
struct Printer;

impl TrainObserver for Printer {
    fn logged(&mut self, entry: &LogEntry) {
        let [k, four_k, aux] = entry.reconstruction_losses;
        if k != 0.0 || four_k != 0.0 || aux != 0.0 {
            // A CSR model: CSRLoss's parts.
            eprintln!(
                "step {} epoch {:.3} loss {:.4} (base {:.4}, reconstruction k {:.4} 4k {:.4} aux {:.4}) lr {:.3e} {:.2}s/step",
                entry.step,
                entry.epoch,
                entry.loss,
                entry.base_loss,
                k,
                four_k,
                aux,
                entry.learning_rate,
                entry.seconds_per_step
            );
            return;
        }
        eprintln!(
            "step {} epoch {:.3} loss {:.4} (base {:.4}, flops q {:.5} d {:.5}) lr {:.3e} {:.2}s/step",
            entry.step,
            entry.epoch,
            entry.loss,
            entry.base_loss,
            entry.query_regularizer_loss,
            entry.document_regularizer_loss,
            entry.learning_rate,
            entry.seconds_per_step
        );
    }

    fn evaluated(&mut self, step: usize, metrics: &Metrics) {
        let shown: Vec<String> = metrics
            .iter()
            .take(6)
            .map(|(k, v)| format!("{k} {v:.4}"))
            .collect();
        if !shown.is_empty() {
            eprintln!("step {step}: {}", shown.join(", "));
        }
    }
}

impl RunObserver for Printer {
    fn started(&mut self, run: &RunStart) {
        eprintln!(
            "training {} on {} rows ({} columns: {}), batch {}, lr {}, output {}",
            run.model,
            run.rows,
            run.columns.len(),
            run.columns.join(", "),
            run.batch_size,
            run.learning_rate,
            run.output.display()
        );
    }
}

/// The flag of an option field (`max_steps` → `--max-steps`).
fn flag(field: &str) -> String {
    format!("--{}", field.replace('_', "-"))
}

/// The library's option errors in the command line's words: the flag, and the key of a
/// `--config` file.
fn in_flag_words(error: TrainError) -> anyhow::Error {
    match error {
        TrainError::Config {
            field,
            expected,
            value,
        } => anyhow::anyhow!(
            "{} (`{field}` in a --config file): expected {expected}, got {value}",
            flag(&field)
        ),
        TrainError::MissingOption { field, what } => {
            anyhow::anyhow!("{} is required ({what})", flag(field))
        }
        TrainError::EarlierRun { path, found } => anyhow::anyhow!(
            "--output {}: already holds a training run ({}); choose another folder, \
             continue it with --resume-from, or pass --overwrite to replace its models",
            path.display(),
            found.join(", ")
        ),
        e @ TrainError::OutputNotAFolder { .. } => anyhow::Error::new(e).context("--output"),
        other => other.into(),
    }
}

/// Runs `splade train`.
pub fn run(args: TrainArgs) -> Result<()> {
    // Ctrl-C: finish the step in flight, save a checkpoint, stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    let output = args.output.clone();
    let report = args
        .run(true, Some(stop), &mut Printer)
        .map_err(in_flag_words)?;
    if let Some(checkpoint) = &report.interrupted_at {
        eprintln!(
            "interrupted after step {}: checkpoint saved in {}",
            report.steps,
            checkpoint.display()
        );
        return Ok(());
    }
    let output = output.unwrap_or_default();
    eprintln!(
        "done: {} steps; model in {}{}",
        report.steps,
        output.join("final").display(),
        report
            .best_step
            .map(|s| format!(" (best checkpoint: step {s})"))
            .unwrap_or_default()
    );
    Ok(())
}
