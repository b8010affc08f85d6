//! The output folder of a run, as `splade train` writes it: `checkpoint-STEP/` and `final/`
//! (written by the [`Trainer`]), then `training_log.jsonl`, `evaluations.json`,
//! `training_plot.png` (also copied into `final/`) and the model card `final/README.md`.
//! [`run_to_folder`] does all of it, so a library user gets the same folder as the command.

use std::path::Path;

use splade_encoder::{SparseEncoder, TrainableEncoder};

use crate::card::{model_card, CardInput};
use crate::data::TrainingData;
use crate::error::{Result, TrainError};
use crate::plot::plot_training;
use crate::trainer::{LogEntry, Metrics, TrainConfig, TrainReport, Trainer};

/// Checks an output folder before any work: a folder (created if needed) that can be written.
pub fn prepare_folder(output: &Path) -> Result<()> {
    if output.exists() && !output.is_dir() {
        return Err(TrainError::OutputNotAFolder {
            path: output.to_path_buf(),
        });
    }
    std::fs::create_dir_all(output).map_err(TrainError::write(output))?;
    let probe = output.join(format!(".splade-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(TrainError::write(&probe))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Refuses an output folder holding an earlier run's models (`final/`, `checkpoint-N/`),
/// which a new run would replace, unless `resuming` that run or `overwrite` is allowed.
pub fn check_earlier_run(output: &Path, resuming: bool, overwrite: bool) -> Result<()> {
    if !output.is_dir() || resuming || overwrite {
        return Ok(());
    }
    let mut found: Vec<String> = std::fs::read_dir(output)
        .map_err(TrainError::read(output))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n == "final" || n.starts_with("checkpoint-"))
        .collect();
    found.sort();
    if found.is_empty() {
        Ok(())
    } else {
        Err(TrainError::EarlierRun {
            path: output.to_path_buf(),
            found,
        })
    }
}

/// What the output files say about a run besides its report.
#[derive(Debug, Clone, Copy)]
pub struct RunInfo<'a> {
    /// Where the base model came from (folder, Hub id or `splade-tiny`), for the card.
    pub base_model: &'a str,
    /// The training file or folder, for the card and the chart's title.
    pub train_path: &'a Path,
    /// The evaluation rows (sentence-transformers' `eval_dataset`) and their file, for the
    /// card's "Evaluation Dataset" section.
    pub eval_data: Option<(&'a TrainingData, &'a Path)>,
    /// The evaluators' key prefixes in evaluation order, for the order of the card's tables
    /// and training-log columns (empty: by name).
    pub evaluator_order: &'a [String],
    /// The keyed evaluators (similarity, triplet, reranking), for their card sections.
    pub keyed: &'a [crate::card::KeyedCard],
}

/// Trains ([`Trainer::new`], [`Trainer::run`]) and writes the run's files into `output`
/// ([`write_run_files`]). `evaluate` and `on_log` are as for [`Trainer::run`].
pub fn run_to_folder(
    encoder: TrainableEncoder,
    data: &TrainingData,
    config: &TrainConfig,
    output: &Path,
    info: RunInfo<'_>,
    evaluate: impl FnMut(&SparseEncoder, usize) -> Result<Metrics>,
    on_log: impl FnMut(&LogEntry),
) -> Result<TrainReport> {
    let report = Trainer::new(encoder, data, config, output)?.run(evaluate, on_log)?;
    write_run_files(output, &report, data, config, info)?;
    Ok(report)
}

/// Writes the logs of a finished or interrupted run (`training_log.jsonl`, one entry per
/// line, and `evaluations.json`); for a finished run also the chart (`training_plot.png`, in
/// `output` and in `output/final`) and the model card (`output/final/README.md`).
pub fn write_run_files(
    output: &Path,
    report: &TrainReport,
    data: &TrainingData,
    config: &TrainConfig,
    info: RunInfo<'_>,
) -> Result<()> {
    let log_path = output.join("training_log.jsonl");
    let mut log = String::new();
    for entry in &report.log {
        log.push_str(&to_json(&log_path, entry, false)?);
        log.push('\n');
    }
    write_atomic(&log_path, &log)?;
    let evals_path = output.join("evaluations.json");
    let evals: Vec<serde_json::Value> = report
        .evaluations
        .iter()
        .map(|(step, m)| serde_json::json!({"step": step, "metrics": m}))
        .collect();
    write_atomic(&evals_path, &to_json(&evals_path, &evals, true)?)?;
    if report.interrupted_at.is_some() {
        return Ok(());
    }
    let final_dir = output.join("final");
    // The chart of the run, next to the logs and inside the model folder the card refers to.
    let plot = output.join("training_plot.png");
    let dataset_name = file_name(info.train_path);
    // Names only, no machine paths, in the chart's title.
    plot_training(
        &report.log,
        &report.evaluations,
        &format!(
            "{} on {dataset_name}",
            file_name(Path::new(info.base_model))
        ),
        &plot,
    )?;
    let copy = final_dir.join("training_plot.png");
    std::fs::copy(&plot, &copy).map_err(TrainError::write(copy))?;
    let final_model = SparseEncoder::load(&final_dir, &candle_core::Device::Cpu)?;
    let card = model_card(&CardInput {
        encoder: &final_model,
        base_model: info.base_model,
        dataset_name: &dataset_name,
        data,
        eval_data: info.eval_data.map(|(rows, path)| (rows, file_name(path))),
        config,
        report,
        evaluator_order: info.evaluator_order,
        keyed: info.keyed,
    });
    write_atomic(&final_dir.join("README.md"), &card)
}

/// The last component of a path (a Hub id such as `org/model` keeps only `model`).
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| path.display().to_string())
}

fn to_json(path: &Path, value: &impl serde::Serialize, pretty: bool) -> Result<String> {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    text.map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `text` to a temporary sibling, then renames it over `path`.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(TrainError::write(&tmp))?;
    std::fs::rename(&tmp, path).map_err(TrainError::write(path))
}
