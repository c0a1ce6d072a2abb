//! `otclip train`: train a dual encoder from a resolved config into a run directory, on one
//! device or data-parallel on several.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use otclip_kernels::SinkhornBackend;

use crate::backend::{dispatch_devices, DeviceSpec, DevicesTask};
use crate::train::{train, train_on_nodes, Nodes, TrainConfig, TrainOptions, TrainSummary};

/// One training run: the config (overrides applied), where it goes, and how.
pub struct TrainTask {
    pub config: TrainConfig,
    pub run_dir: PathBuf,
    pub options: TrainOptions,
    /// Data-parallel over several processes: how this one joins them.
    pub nodes: Option<Nodes>,
}

impl DevicesTask for TrainTask {
    type Output = TrainSummary;
    fn run<B: AutodiffBackend + SinkhornBackend>(self, devices: Vec<B::Device>) -> Result<TrainSummary> {
        match (devices.as_slice(), &self.nodes) {
            ([device], None) => train::<B>(&self.config, &self.run_dir, device, &self.options),
            _ => train_on_nodes::<B>(&self.config, &self.run_dir, &devices, &self.options, self.nodes.as_ref()),
        }
    }
}

impl TrainTask {
    /// Trains on `devices`: one, or several of one backend as data-parallel workers (with the
    /// workers of the other nodes, when `nodes` is set).
    pub fn run_on(self, devices: &[DeviceSpec]) -> Result<TrainSummary> {
        dispatch_devices(devices, self)
    }
}
