//! `otclip eval`: a run's checkpoint on one split of its dataset (or of another), as a report.

use std::path::{Path, PathBuf};

use anyhow::Result;
use burn::prelude::Backend;
use otclip_kernels::SinkhornBackend;

use crate::backend::{dispatch_inference, DeviceSpec, InferenceTask};
use crate::data::{CaptionedImages, DatasetSpec, Split};
use crate::eval::{embed_split, EvalReport, SplitEmbeddings};
use crate::train::{load_run, load_split, open_spec, LoadedRun};

/// Loads checkpoint `checkpoint` of a run and embeds one split of its dataset, or of `data`.
pub fn embed_run_split<B: Backend>(
    run_dir: &Path,
    checkpoint: &str,
    split: Split,
    data: Option<&DatasetSpec>,
    device: &B::Device,
) -> Result<(LoadedRun<B>, CaptionedImages, SplitEmbeddings)> {
    let run = load_run::<B>(run_dir, checkpoint, device)?;
    let dataset = match data {
        Some(spec) => open_spec(spec, split)?,
        None => load_split(&run.config, split)?,
    };
    let embeddings = embed_split(&run.model, &run.batcher, &dataset, run.config.eval.batch_size, device)?;
    Ok((run, dataset, embeddings))
}

/// Evaluates checkpoint `checkpoint` (`best` or `last`) of a run on one split of its dataset, or
/// of the dataset `data` when given.
pub fn evaluate_run<B: Backend>(run_dir: &Path, checkpoint: &str, split: Split, data: Option<&DatasetSpec>, device: &B::Device) -> Result<EvalReport> {
    let (run, dataset, embeddings) = embed_run_split::<B>(run_dir, checkpoint, split, data, device)?;
    Ok(EvalReport {
        dataset: dataset.name.clone(),
        model: format!("otclip-{}:{}@{}", run.config.model.preset, checkpoint, run_dir.display()),
        language: dataset.language.clone(),
        metrics: embeddings.metrics(),
        geometry: embeddings.geometry(),
    })
}

/// [`evaluate_run`] as a command.
pub struct EvalTask {
    pub run_dir: PathBuf,
    pub checkpoint: String,
    pub split: Split,
    /// Another dataset to evaluate on (a spec); the run's own when `None`.
    pub data: Option<DatasetSpec>,
}

impl InferenceTask for EvalTask {
    type Output = EvalReport;
    fn run<B: Backend + SinkhornBackend>(self, device: B::Device) -> Result<EvalReport> {
        evaluate_run::<B>(&self.run_dir, &self.checkpoint, self.split, self.data.as_ref(), &device)
    }
}

impl EvalTask {
    pub fn run_on(self, spec: DeviceSpec) -> Result<EvalReport> {
        dispatch_inference(spec, false, self)
    }
}
