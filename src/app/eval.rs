//! `otclip eval`: a run's checkpoint on one split of its dataset (or of another), as a report,
//! and a 2-D projection of the split's embeddings in `RUN/plots/embeddings-<split>.png`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use burn::prelude::Backend;
use otclip_kernels::SinkhornBackend;

use crate::backend::{dispatch_inference, DeviceSpec, InferenceTask};
use crate::data::{CaptionedImages, DatasetSpec, Split};
use crate::eval::plots::{draw_embedding_plot, PLOTS_DIR};
use crate::eval::projection::project_embeddings;
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
    Ok(evaluate_embedded::<B>(run_dir, checkpoint, split, data, device)?.0)
}

/// [`evaluate_run`], keeping the embeddings.
fn evaluate_embedded<B: Backend>(
    run_dir: &Path,
    checkpoint: &str,
    split: Split,
    data: Option<&DatasetSpec>,
    device: &B::Device,
) -> Result<(EvalReport, SplitEmbeddings)> {
    let (run, dataset, embeddings) = embed_run_split::<B>(run_dir, checkpoint, split, data, device)?;
    let report = EvalReport {
        dataset: dataset.name.clone(),
        model: format!("otclip-{}:{}@{}", run.config.model.preset, checkpoint, run_dir.display()),
        language: dataset.language.clone(),
        metrics: embeddings.metrics(),
        geometry: embeddings.geometry(),
    };
    Ok((report, embeddings))
}

/// Where `otclip eval` draws the embeddings of `split`.
pub fn embedding_plot_path(run_dir: &Path, split: Split) -> PathBuf {
    run_dir.join(PLOTS_DIR).join(format!("embeddings-{}.png", split.name()))
}

/// Projects `embeddings` to 2-D and draws them into `path`.
pub fn plot_embeddings(embeddings: &SplitEmbeddings, split: Split, path: &Path) -> Result<()> {
    draw_embedding_plot(&project_embeddings(embeddings)?, split.name(), path)
}

/// What `otclip eval` produced.
pub struct Evaluation {
    pub report: EvalReport,
    /// The embeddings' projection; `None` when it could not be drawn (a warning said why).
    pub embedding_plot: Option<PathBuf>,
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
    type Output = Evaluation;
    /// Evaluates, then draws the projection; a plot that fails is a warning, not a failed evaluation.
    fn run<B: Backend + SinkhornBackend>(self, device: B::Device) -> Result<Evaluation> {
        let (report, embeddings) = evaluate_embedded::<B>(&self.run_dir, &self.checkpoint, self.split, self.data.as_ref(), &device)?;
        let path = embedding_plot_path(&self.run_dir, self.split);
        let embedding_plot = match plot_embeddings(&embeddings, self.split, &path) {
            Ok(()) => Some(path),
            Err(e) => {
                eprintln!("warning: the embeddings plot {} was not drawn: {e:#}", path.display());
                None
            }
        };
        Ok(Evaluation { report, embedding_plot })
    }
}

impl EvalTask {
    pub fn run_on(self, spec: DeviceSpec) -> Result<Evaluation> {
        dispatch_inference(spec, false, self)
    }
}
