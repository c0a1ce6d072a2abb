//! `otclip export`: a run's checkpoint as an HF-style folder: `model.safetensors` and
//! `config.json` (as [`export_dual`] writes them), the run's tokenizer, and a
//! `preprocessor_config.json` with the image size and normalisation it was trained with.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::prelude::Backend;
use otclip_kernels::SinkhornBackend;
use serde_json::json;

use crate::backend::{dispatch_inference, DeviceSpec, InferenceTask};
use crate::train::load_run;
use crate::weights::config::JsonFile;
use crate::weights::export::export_dual;

pub struct ExportTask {
    pub run_dir: PathBuf,
    pub checkpoint: String,
    pub out: PathBuf,
}

impl InferenceTask for ExportTask {
    /// The number of tensors written.
    type Output = usize;
    fn run<B: Backend + SinkhornBackend>(self, device: B::Device) -> Result<usize> {
        refuse_foreign_folder(&self.out)?;
        let run = load_run::<B>(&self.run_dir, &self.checkpoint, &device)?;
        let tensors = export_dual(&run.model, &run.model_config, &self.out)?;
        run.batcher.tokenizer.save(&self.out.join("tokenizer.json"))?;
        let norm = run.batcher.normalization;
        let size = run.batcher.image_size;
        let preprocessor = json!({
            "image_processor_type": "ViTImageProcessor", "do_resize": true, "do_normalize": true, "do_rescale": true,
            "size": {"height": size, "width": size}, "image_mean": norm.mean, "image_std": norm.std,
        });
        let path = self.out.join("preprocessor_config.json");
        std::fs::write(&path, serde_json::to_string_pretty(&preprocessor)?).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(tensors)
    }
}

/// An error unless `out` is absent, empty, or an earlier export (its `config.json` has the
/// `otclip` section): exporting must not overwrite another model's files.
fn refuse_foreign_folder(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        bail!("--out {}: exists and is not a folder", out.display());
    }
    let empty = std::fs::read_dir(out).with_context(|| format!("cannot list {}", out.display()))?.next().is_none();
    let exported = JsonFile::config_of(out).is_ok_and(|json| json.has_key("otclip"));
    if !empty && !exported {
        bail!("--out {}: the folder is not empty and holds no otclip export; choose an empty folder or a new path (nothing was written)", out.display());
    }
    Ok(())
}

impl ExportTask {
    pub fn run_on(self, spec: DeviceSpec) -> Result<usize> {
        dispatch_inference(spec, false, self)
    }
}
