//! otclip: CLIP-style image–text retrieval for low-resource languages, on burn.
//!
//! Data flows one way: [`data`] → [`text`] and the [`data::Batcher`] → [`model`] towers →
//! [`loss`] → the optimiser in [`train`]. [`eval`] reads checkpoints. [`backend`] is the one
//! place where a backend is chosen; everything else is generic over `B: Backend`.

pub mod backend;
pub mod data;
pub mod eval;
pub mod loss;
pub mod model;
pub mod npy;
pub mod ot;
pub mod text;
pub mod train;
pub mod weights;

/// The fused Sinkhorn kernels (`SinkhornBackend` and its implementations).
pub use otclip_kernels as kernels;
pub use backend::{dispatch, dispatch_inference, BackendTask, DeviceSpec, InferenceTask};

use std::path::{Path, PathBuf};

use anyhow::Result;
use burn::prelude::Backend;

use data::Split;
use eval::{embed_split, EvalReport};

/// Loads checkpoint `checkpoint` of a run and embeds one split of its dataset.
fn embed_run_split<B: Backend>(
    run_dir: &Path,
    checkpoint: &str,
    split: Split,
    data: Option<&data::DatasetSpec>,
    device: &B::Device,
) -> Result<(train::LoadedRun<B>, data::CaptionedImages, eval::SplitEmbeddings)> {
    let run = train::load_run::<B>(run_dir, checkpoint, device)?;
    let dataset = match data {
        Some(spec) => train::open_spec(spec, split)?,
        None => train::load_split(&run.config, split)?,
    };
    let embeddings = embed_split(&run.model, &run.batcher, &dataset, run.config.eval.batch_size, device)?;
    Ok((run, dataset, embeddings))
}

/// Evaluates checkpoint `checkpoint` (`best` or `last`) of a run on one split of its dataset, or
/// of the dataset `data` when given.
pub fn evaluate_run<B: Backend>(run_dir: &Path, checkpoint: &str, split: Split, data: Option<&data::DatasetSpec>, device: &B::Device) -> Result<EvalReport> {
    let (run, dataset, embeddings) = embed_run_split::<B>(run_dir, checkpoint, split, data, device)?;
    Ok(EvalReport {
        dataset: dataset.name.clone(),
        model: format!("otclip-{}:{}@{}", run.config.model.preset, checkpoint, run_dir.display()),
        language: dataset.language.clone(),
        metrics: embeddings.metrics(),
        geometry: embeddings.geometry(),
    })
}

/// `evaluate_run` as a backend task, for [`dispatch_inference`].
pub struct EvalTask {
    pub run_dir: PathBuf,
    pub checkpoint: String,
    pub split: Split,
    /// Another dataset to evaluate on (a spec); the run's own when `None`.
    pub data: Option<data::DatasetSpec>,
}

impl InferenceTask for EvalTask {
    type Output = EvalReport;
    fn run<B: Backend + otclip_kernels::SinkhornBackend>(self, device: B::Device) -> Result<EvalReport> {
        evaluate_run::<B>(&self.run_dir, &self.checkpoint, self.split, self.data.as_ref(), &device)
    }
}

/// Embeds a split with a trained run's towers and writes them as a teacher file for SIGROT.
pub struct TeacherTask {
    pub run_dir: PathBuf,
    pub checkpoint: String,
    pub split: Split,
    pub out: PathBuf,
}

impl InferenceTask for TeacherTask {
    type Output = usize;
    fn run<B: Backend + otclip_kernels::SinkhornBackend>(self, device: B::Device) -> Result<usize> {
        let (_, dataset, e) = embed_run_split::<B>(&self.run_dir, &self.checkpoint, self.split, None, &device)?;
        let mut captions = e.texts.chunks(e.dim);
        let rows: Vec<data::TeacherRows> = dataset
            .entries
            .iter()
            .zip(e.images.chunks(e.dim))
            .map(|(entry, image)| data::TeacherRows {
                image: image.to_vec(),
                captions: captions.by_ref().take(entry.captions.len()).map(<[f32]>::to_vec).collect(),
            })
            .collect();
        let encoder = format!("otclip:{}@{}", self.checkpoint, self.run_dir.display());
        data::teacher::save(&self.out, &dataset, &rows, &encoder)?;
        Ok(rows.len())
    }
}

/// `train::train` as a backend task, for [`dispatch`].
pub struct TrainTask {
    pub config: train::TrainConfig,
    pub run_dir: PathBuf,
    pub options: train::TrainOptions,
}

impl BackendTask for TrainTask {
    type Output = train::TrainSummary;
    fn run<B: burn::tensor::backend::AutodiffBackend + otclip_kernels::SinkhornBackend>(self, device: B::Device) -> Result<train::TrainSummary> {
        train::train::<B>(&self.config, &self.run_dir, &device, &self.options)
    }
}

// Non-generic entry points. Each one instantiates the generic code for every compiled-in backend
// here, once; the binary, the examples and the tests call them (or reuse these instances through
// shared generics) instead of compiling the training loop and the towers again each.
impl TrainTask {
    pub fn run_on(self, spec: DeviceSpec) -> Result<train::TrainSummary> {
        dispatch(spec, self)
    }
}

impl EvalTask {
    pub fn run_on(self, spec: DeviceSpec) -> Result<EvalReport> {
        dispatch_inference(spec, false, self)
    }
}

impl TeacherTask {
    pub fn run_on(self, spec: DeviceSpec) -> Result<usize> {
        dispatch_inference(spec, false, self)
    }
}

impl ot::SolveTask {
    /// `f64`: double precision on ndarray.
    pub fn run_on(self, spec: DeviceSpec, f64: bool) -> Result<ot::SolveSummary> {
        dispatch_inference(spec, f64, self)
    }
}

impl weights::embed::EmbedTask {
    pub fn run_on(self, spec: DeviceSpec) -> Result<weights::embed::EmbedSummary> {
        dispatch_inference(spec, false, self)
    }
}

impl weights::export::ExportTask {
    pub fn run_on(self, spec: DeviceSpec) -> Result<usize> {
        dispatch_inference(spec, false, self)
    }
}

/// The flagship configuration (`configs/synthetic_vi.toml`), compiled in so examples need no files.
pub const SYNTHETIC_VI_CONFIG: &str = include_str!("../configs/synthetic_vi.toml");

/// A tensor from f64 values at full precision (`from_floats` rounds through f32), converted to the
/// backend's float type.
pub fn f64_tensor<B: Backend, const D: usize>(values: &[f64], shape: [usize; D], device: &B::Device) -> burn::tensor::Tensor<B, D> {
    let data = burn::tensor::TensorData::new(values.to_vec(), shape).convert::<B::FloatElem>();
    burn::tensor::Tensor::from_data(data, device)
}
