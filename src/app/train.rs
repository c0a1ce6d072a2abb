//! `otclip train`: train a dual encoder from a resolved config into a run directory.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use otclip_kernels::SinkhornBackend;

use crate::backend::{dispatch, BackendTask, DeviceSpec};
use crate::train::{train, TrainConfig, TrainOptions, TrainSummary};

/// One training run: the config (overrides applied), where it goes, and how.
pub struct TrainTask {
    pub config: TrainConfig,
    pub run_dir: PathBuf,
    pub options: TrainOptions,
}

impl BackendTask for TrainTask {
    type Output = TrainSummary;
    fn run<B: AutodiffBackend + SinkhornBackend>(self, device: B::Device) -> Result<TrainSummary> {
        train::<B>(&self.config, &self.run_dir, &device, &self.options)
    }
}

impl TrainTask {
    pub fn run_on(self, spec: DeviceSpec) -> Result<TrainSummary> {
        dispatch(spec, self)
    }
}
