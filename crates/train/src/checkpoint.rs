//! Checkpoints: `output/checkpoint-STEP/` holds the model (a loadable SparseEncoder folder),
//! the optimiser's moments and the trainer's position and logs, so a run can resume exactly.

use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};
use crate::save::save_model;
use crate::step::TrainStep;
use crate::trainer::{LogEntry, Metrics};

/// The trainer's state file in a checkpoint.
pub const TRAINER_STATE: &str = "trainer_state.json";
/// The optimiser's moments in a checkpoint.
pub const OPTIMIZER_STATE: &str = "optimizer.safetensors";

/// What a checkpoint records besides the weights, to resume the run exactly.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainerState {
    /// Optimiser steps taken.
    pub step: usize,
    /// Epochs whose batch order has been drawn (the current one is `epochs_started - 1`).
    pub epochs_started: u64,
    /// Micro-batches of the current epoch already used.
    pub consumed_in_epoch: usize,
    /// AdamW's step count.
    pub optimizer_step: i32,
    /// The best metric value so far and its step.
    pub best: Option<(f64, usize)>,
    /// The training log so far.
    pub log: Vec<LogEntry>,
    /// The evaluations so far.
    pub evaluations: Vec<(usize, Metrics)>,
}

/// The folder of the checkpoint of `step`.
pub fn checkpoint_dir(output: &Path, step: usize) -> PathBuf {
    output.join(format!("checkpoint-{step}"))
}

/// The newest `checkpoint-N` folder in `output`, if any.
pub fn last_checkpoint(output: &Path) -> Option<PathBuf> {
    std::fs::read_dir(output)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_prefix("checkpoint-")?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map(|s| checkpoint_dir(output, s))
}

/// Saves the weights of `step`'s encoder, its optimiser's moments and `state` atomically
/// into `output/checkpoint-STEP` (`state.step`), and returns that folder. `state.optimizer_step`
/// is filled in here.
pub fn write_checkpoint(
    output: &Path,
    step: &TrainStep,
    mut state: TrainerState,
) -> Result<PathBuf> {
    let dir = checkpoint_dir(output, state.step);
    let names: Vec<String> = step.vars().iter().map(|(n, _)| n.clone()).collect();
    save_model(step.encoder(), step.vars(), &dir, |staging| {
        state.optimizer_step = step
            .optimizer()
            .save_state(&names, &staging.join(OPTIMIZER_STATE))?;
        let path = staging.join(TRAINER_STATE);
        let text = serde_json::to_string_pretty(&state).map_err(|source| TrainError::Json {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&path, text).map_err(TrainError::write(&path))
    })?;
    Ok(dir)
}

/// Reads a checkpoint's trainer state and restores its optimiser moments into `step`.
pub fn read_checkpoint(dir: &Path, step: &mut TrainStep) -> Result<TrainerState> {
    let path = dir.join(TRAINER_STATE);
    let text = std::fs::read_to_string(&path).map_err(TrainError::read(&path))?;
    let state: TrainerState =
        serde_json::from_str(&text).map_err(|source| TrainError::Json { path, source })?;
    let names: Vec<String> = step.vars().iter().map(|(n, _)| n.clone()).collect();
    step.optimizer_mut()
        .load_state(&names, &dir.join(OPTIMIZER_STATE), state.optimizer_step)?;
    Ok(state)
}
