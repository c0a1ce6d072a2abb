//! What the flagship examples (`train_vi`, `train_az`) run for each of their runs: train (or
//! resume) one config, then evaluate its best checkpoint on the test split.

use std::path::Path;

use anyhow::{Context, Result};

use super::eval::EvalTask;
use super::train::TrainTask;
use crate::backend::DeviceSpec;
use crate::data::Split;
use crate::eval::EvalReport;
use crate::train::{TrainConfig, TrainOptions};

// ANCHOR: quickstart
/// Trains `config` in `run_dir` (resuming when it holds checkpoints; with `fresh`, deleting it
/// first), evaluates its best checkpoint on the test split and writes `results.json` beside it.
pub fn train_and_evaluate(config: TrainConfig, run_dir: &Path, device: DeviceSpec, fresh: bool) -> Result<EvalReport> {
    if fresh && run_dir.exists() {
        std::fs::remove_dir_all(run_dir).with_context(|| format!("cannot delete {}", run_dir.display()))?;
    }
    let resume = run_dir.join("checkpoints").exists();
    eprintln!("{} on {device} → {}", config.loss.objective().name(), run_dir.display());
    let options = TrainOptions { resume, ..Default::default() };
    let summary = TrainTask { config, run_dir: run_dir.to_path_buf(), options, nodes: None }.run_on(&[device])?;
    eprintln!("trained {} epochs, {} steps, in {:.0}s", summary.epochs, summary.steps, summary.seconds);

    let task = EvalTask { run_dir: run_dir.to_path_buf(), checkpoint: "best".into(), split: Split::Test, data: None };
    let report = task.run_on(device)?.report;
    let results = run_dir.join("results.json");
    std::fs::write(&results, serde_json::to_string_pretty(&report.to_json())?).with_context(|| format!("cannot write {}", results.display()))?;
    Ok(report)
}
// ANCHOR_END: quickstart
