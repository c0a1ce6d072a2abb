//! The training loop, generic over `B: AutodiffBackend`:
//! dataset → batcher → towers → loss → AdamW (parameter groups) → checkpoint, with validation
//! every epoch. An update is encoded whole or in chunks through GradCache (`grad_cache.rs`).
//!
//! [`train`] runs three named phases of [`Trainer`]: `prepare` (run directory, data, model,
//! optimiser, resume), `run_epoch` (the optimiser steps of one epoch), and
//! `validate_and_checkpoint`.

pub mod checkpoint;
pub mod config;
mod config_file;
pub mod grad_cache;
pub mod init;
pub mod optimizer;
pub mod schedule;
mod splits;
mod trainer;

use std::path::Path;

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use otclip_kernels::SinkhornBackend;

pub use checkpoint::{load_run, ranked_name, CheckpointRecorder, LoadedRun, Ranked, RunDir, TrainState};
pub use config::{Augment, DataSource, Teacher, TrainConfig, TrainSection};
pub use init::{initial_model, InitialModel};
pub use schedule::{OneCycleConfig, Schedule, WarmupCosine};
pub use splits::{load_split, open_spec, validate};
pub use trainer::{TrainOptions, TrainSummary};
use trainer::{EpochEnd, Trainer};

/// Trains a dual encoder as `config` says and writes the run to `run_dir`.
pub fn train<B: AutodiffBackend + SinkhornBackend>(config: &TrainConfig, run_dir: &Path, device: &B::Device, options: &TrainOptions) -> Result<TrainSummary> {
    let mut trainer = Trainer::<B>::prepare(config, run_dir, device, options)?;
    let mut stopped = false;
    for epoch in trainer.first_epoch()..config.optim.epochs {
        match trainer.run_epoch(epoch)? {
            EpochEnd::Complete => trainer.validate_and_checkpoint(epoch)?,
            EpochEnd::StepLimit => {
                stopped = true;
                break;
            }
        }
    }
    trainer.finish(stopped)
}
