//! The training loop, generic over `B: AutodiffBackend`:
//! dataset → batcher → towers → loss → AdamW (parameter groups) → checkpoint, with validation
//! every epoch. An update is encoded whole or in chunks through GradCache (`grad_cache.rs`).
//!
//! [`train`] runs three named phases of `trainer::Trainer`: `prepare` (run directory, data,
//! model, optimiser, resume), `run_epoch` (the optimiser steps of one epoch), and
//! `validate_and_checkpoint`. [`train_on_devices`] and [`train_on_nodes`] run the same phases in
//! one worker per device (`workers.rs`), exchanging through burn-collective (`collective.rs`).

pub mod checkpoint;
pub mod collective;
pub mod config;
mod config_file;
mod convnet_section;
pub mod grad_cache;
pub mod init;
pub mod optimizer;
pub mod schedule;
mod splits;
mod trainer;
mod workers;

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
pub use workers::{train_on_devices, train_on_nodes, Nodes};

/// Trains a dual encoder as `config` says and writes the run to `run_dir`.
pub fn train<B: AutodiffBackend + SinkhornBackend>(config: &TrainConfig, run_dir: &Path, device: &B::Device, options: &TrainOptions) -> Result<TrainSummary> {
    trainer::run::<B>(config, run_dir, device, options, None)
}
