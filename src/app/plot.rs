//! `otclip plot`: redraws a run's training plots (`RUN/plots/`) from its `metrics.jsonl`.

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::eval::metrics_log::MetricsLog;
use crate::eval::plots::{draw_training_plots, run_name, TrainingPlot, PLOTS_DIR};

/// The run whose plots to redraw.
pub struct PlotTask {
    pub run_dir: PathBuf,
}

impl PlotTask {
    /// Reads `RUN/metrics.jsonl` and writes the plots it has rows for; returns them.
    pub fn run(self) -> Result<Vec<(TrainingPlot, PathBuf)>> {
        if !self.run_dir.is_dir() {
            bail!("--run {}: no such folder; expected a run directory written by `otclip train`", self.run_dir.display());
        }
        let log = MetricsLog::read(&self.run_dir.join("metrics.jsonl"))?;
        draw_training_plots(&log, &self.run_dir.join(PLOTS_DIR), &run_name(&self.run_dir))
    }
}
