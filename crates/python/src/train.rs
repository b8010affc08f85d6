//! Training from Python (`splade_rs.train`): the options of `splade train`
//! ([`splade_train::options::TrainOptions`], the same names as its `--config` keys) as a
//! dictionary, the run with the GIL released, and an optional progress callback that hears of the
//! start, each step, each log entry and each evaluation.
//!
//! The callback runs with the GIL held between steps. If it raises, or Python has a pending
//! signal (Ctrl-C), the run stops after the step in flight with a checkpoint, and the
//! exception is raised once the run has ended.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use splade_train::options::{RunObserver, RunStart, TrainOptions};
use splade_train::trainer::{LogEntry, Metrics, TrainObserver, TrainReport};
use splade_train::TrainError;

use crate::errors;

/// The options from a dictionary of `splade train` option names (the `--config` keys) and
/// `config`, a TOML file with more of them; an unknown name or a wrong type is a `ValueError`
/// naming it.
fn parse_options(
    options: &Bound<'_, PyDict>,
    config: Option<std::path::PathBuf>,
) -> PyResult<TrainOptions> {
    let mut de = pythonize::Depythonizer::from_object(options.as_any());
    let mut parsed: TrainOptions = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| errors::value(format!("training option {}: {}", e.path(), e.inner())))?;
    parsed.config = config;
    Ok(parsed)
}

/// A training error as a Python exception: the run's files are `OSError`, the rest
/// `ValueError`, with the whole error chain as the message.
fn train_error(err: TrainError) -> PyErr {
    let text = errors::chain(&err);
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    let mut file_error = false;
    while let Some(e) = source {
        file_error |= e.is::<std::io::Error>();
        source = e.source();
    }
    match err {
        TrainError::Encoder(e) => errors::encoder(e),
        _ if file_error => PyOSError::new_err(text),
        TrainError::Io { .. }
        | TrainError::SaveWeights { .. }
        | TrainError::OutputNotAFolder { .. }
        | TrainError::EarlierRun { .. }
        | TrainError::Plot { .. } => PyOSError::new_err(text),
        _ => PyValueError::new_err(text),
    }
}

/// Calls the Python callback with event dictionaries; remembers its first exception (or a
/// pending signal) and asks the run to stop.
struct Callback {
    callback: Option<Py<PyAny>>,
    stop: Arc<AtomicBool>,
    error: Option<PyErr>,
}

impl Callback {
    fn send(&mut self, fill: impl FnOnce(&Bound<'_, PyDict>) -> PyResult<()>) {
        if self.error.is_some() {
            return;
        }
        let outcome = Python::attach(|py| -> PyResult<()> {
            py.check_signals()?;
            if let Some(callback) = &self.callback {
                let event = PyDict::new(py);
                fill(&event)?;
                callback.call1(py, (event,))?;
            }
            Ok(())
        });
        if let Err(e) = outcome {
            self.error = Some(e);
            self.stop.store(true, Ordering::SeqCst);
        }
    }
}

impl TrainObserver for Callback {
    fn stepped(&mut self, step: usize, total: usize) {
        self.send(|e| {
            e.set_item("event", "step")?;
            e.set_item("step", step)?;
            e.set_item("total_steps", total)
        });
    }

    fn logged(&mut self, entry: &LogEntry) {
        self.send(|e| {
            e.set_item("event", "log")?;
            e.set_item("step", entry.step)?;
            e.set_item("epoch", entry.epoch)?;
            e.set_item("loss", entry.loss)?;
            e.set_item("base_loss", entry.base_loss)?;
            e.set_item("query_regularizer_loss", entry.query_regularizer_loss)?;
            e.set_item("document_regularizer_loss", entry.document_regularizer_loss)?;
            let [k, four_k, aux] = entry.reconstruction_losses;
            e.set_item("reconstruction_loss_k", k)?;
            e.set_item("reconstruction_loss_4k", four_k)?;
            e.set_item("reconstruction_loss_aux", aux)?;
            e.set_item("learning_rate", entry.learning_rate)?;
            e.set_item("seconds_per_step", entry.seconds_per_step)
        });
    }

    fn evaluated(&mut self, step: usize, metrics: &Metrics) {
        self.send(|e| {
            e.set_item("event", "evaluation")?;
            e.set_item("step", step)?;
            let m = PyDict::new(e.py());
            for (k, v) in metrics {
                m.set_item(k, v)?;
            }
            e.set_item("metrics", m)
        });
    }
}

impl RunObserver for Callback {
    fn started(&mut self, run: &RunStart) {
        self.send(|e| {
            e.set_item("event", "start")?;
            e.set_item("model", &run.model)?;
            e.set_item("rows", run.rows)?;
            e.set_item("columns", run.columns.clone())?;
            e.set_item("batch_size", run.batch_size)?;
            e.set_item("learning_rate", run.learning_rate)?;
            e.set_item("total_steps", run.total_steps)?;
            e.set_item("output", run.output.to_string_lossy().to_string())
        });
    }
}

/// The report as JSON: steps, the log entries, the evaluations, the best step, where the
/// final model is, and the checkpoint of an interrupted run.
fn report_json(report: &TrainReport) -> String {
    let evaluations: Vec<serde_json::Value> = report
        .evaluations
        .iter()
        .map(|(step, m)| serde_json::json!({"step": step, "metrics": m}))
        .collect();
    serde_json::json!({
        "steps": report.steps,
        "log": report.log,
        "evaluations": evaluations,
        "best_step": report.best_step,
        "output": report.output,
        "interrupted_at": report.interrupted_at,
    })
    .to_string()
}

/// Trains as `splade train` does with `options` (and the `config` TOML file), writing the same
/// folder; returns the report as JSON. `progress` (a callable taking one dictionary) hears of
/// the start, each step, log entry and evaluation; `show_progress_bar` draws the command
/// line's bar on stderr.
#[pyfunction]
#[pyo3(signature = (options, config=None, progress=None, show_progress_bar=false))]
pub fn train(
    py: Python<'_>,
    options: &Bound<'_, PyDict>,
    config: Option<std::path::PathBuf>,
    progress: Option<Py<PyAny>>,
    show_progress_bar: bool,
) -> PyResult<String> {
    let options = parse_options(options, config)?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut callback = Callback {
        callback: progress,
        stop: stop.clone(),
        error: None,
    };
    let result = py.detach(|| options.run(show_progress_bar, Some(stop), &mut callback));
    if let Some(error) = callback.error {
        return Err(error);
    }
    Ok(report_json(&result.map_err(train_error)?))
}
