//! The run directory: what training writes and what evaluation reads.
//!
//! ```text
// ANCHOR: run_dir_layout
//! RUN/config.toml          the training config, overrides applied
//! RUN/model.json           the resolved DualEncoderConfig
//! RUN/tokenizer.json       the tokenizer
//! RUN/metrics.jsonl        one JSON object per step and per validation
//! RUN/checkpoints/last/    model.mpk, optim.mpk, state.json (written atomically)
//! RUN/checkpoints/best/    model.mpk, state.json (best validation t2i R@1)
//! RUN/results.json         written by `otclip eval`
// ANCHOR_END: run_dir_layout
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use burn::config::Config;
use burn::module::Module;
use burn::optim::Optimizer;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use crate::data::Batcher;
use crate::model::{DualEncoder, DualEncoderConfig};
use crate::text::CaptionTokenizer;

pub type CheckpointRecorder = NamedMpkFileRecorder<FullPrecisionSettings>;

/// Where training stands; saved with every checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimiser steps taken.
    pub step: usize,
    pub best_val_t2i_r1: f64,
    pub best_epoch: usize,
}

pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    /// Creates the run directory and checks that it is writable.
    pub fn create(root: &Path) -> Result<Self> {
        fs::create_dir_all(root.join("checkpoints"))
            .with_context(|| format!("cannot create the output directory {}", root.display()))?;
        let probe = root.join(".write-test");
        fs::write(&probe, b"ok").with_context(|| format!("the output directory {} is not writable", root.display()))?;
        fs::remove_file(&probe).ok();
        Ok(Self { root: root.to_path_buf() })
    }

    pub fn open(root: &Path) -> Result<Self> {
        if !root.join("model.json").is_file() {
            bail!("{} is not an otclip run directory (no model.json)", root.display());
        }
        Ok(Self { root: root.to_path_buf() })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn checkpoint(&self, name: &str) -> PathBuf {
        self.root.join("checkpoints").join(name)
    }

    pub fn write_setup(&self, config: &TrainConfig, model: &DualEncoderConfig, tokenizer: &CaptionTokenizer) -> Result<()> {
        fs::write(self.path("config.toml"), config.to_toml()?)?;
        model.save(self.path("model.json")).map_err(|e| anyhow!("cannot write model.json: {e}"))?;
        tokenizer.save(&self.path("tokenizer.json"))
    }

    /// What `write_setup` wrote: the resolved config, the model config, and the batcher the run
    /// was trained with (its tokenizer, and the image size and normalisation `config.toml`
    /// records; older runs: the model's image size and ImageNet's statistics).
    pub fn read_setup(&self) -> Result<(TrainConfig, DualEncoderConfig, Batcher)> {
        let config = TrainConfig::load(&self.path("config.toml"), &[])?;
        let model_config = DualEncoderConfig::load(self.path("model.json"))
            .map_err(|e| anyhow!("cannot read {}: {e}", self.path("model.json").display()))?;
        let tokenizer = CaptionTokenizer::from_file(&self.path("tokenizer.json"), config.tokenizer.max_length)?;
        let image_size = config.model.image_size.unwrap_or(model_config.vision.image_size as u32);
        let batcher = Batcher { tokenizer, image_size, normalization: config.model.normalization.unwrap_or_default() };
        Ok((config, model_config, batcher))
    }

    /// Writes checkpoint `name` (the model, the state, and whatever `extra` writes, such as the
    /// optimiser) into a temporary folder, then swaps it in, so an interrupted write never destroys
    /// the previous checkpoint.
    pub fn save_checkpoint<B: Backend, M: Module<B>>(
        &self,
        name: &str,
        model: &M,
        state: &TrainState,
        extra: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<()> {
        let final_dir = self.checkpoint(name);
        let tmp = self.checkpoint(&format!("{name}.tmp"));
        let old = self.checkpoint(&format!("{name}.old"));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp)?;
        model.clone().save_file(tmp.join("model"), &CheckpointRecorder::new()).map_err(|e| anyhow!("saving the model: {e}"))?;
        extra(&tmp)?;
        fs::write(tmp.join("state.json"), serde_json::to_string_pretty(state)?)?;
        let _ = fs::remove_dir_all(&old);
        if final_dir.exists() {
            fs::rename(&final_dir, &old)?;
        }
        fs::rename(&tmp, &final_dir)?;
        let _ = fs::remove_dir_all(&old);
        Ok(())
    }

    /// Saves an optimiser's record as `optim.mpk` in `dir`.
    pub fn save_optimizer<B: AutodiffBackend, M: burn::module::AutodiffModule<B>, O: Optimizer<M, B>>(dir: &Path, optim: &O) -> Result<()> {
        Recorder::<B>::record(&CheckpointRecorder::new(), optim.to_record(), dir.join("optim")).map_err(|e| anyhow!("saving the optimiser: {e}"))
    }

    /// The intact copy of checkpoint `name`: the folder itself, or the previous one if a swap was cut short.
    pub fn find_checkpoint(&self, name: &str) -> Option<PathBuf> {
        [self.checkpoint(name), self.checkpoint(&format!("{name}.old"))]
            .into_iter()
            .find(|dir| dir.join("state.json").is_file() && dir.join("model.mpk").is_file())
    }

    pub fn read_state(dir: &Path) -> Result<TrainState> {
        let text = fs::read_to_string(dir.join("state.json"))?;
        serde_json::from_str(&text).with_context(|| format!("bad {}", dir.join("state.json").display()))
    }
}

/// A trained model ready to embed: its configs, weights and tokenizer.
pub struct LoadedRun<B: Backend> {
    pub config: TrainConfig,
    pub model_config: DualEncoderConfig,
    pub model: DualEncoder<B>,
    pub batcher: Batcher,
    pub state: TrainState,
}

/// Loads checkpoint `which` (`best` or `last`) of a run directory.
pub fn load_run<B: Backend>(root: &Path, which: &str, device: &B::Device) -> Result<LoadedRun<B>> {
    let run = RunDir::open(root)?;
    let (config, model_config, batcher) = run.read_setup()?;
    let dir = run
        .find_checkpoint(which)
        .ok_or_else(|| anyhow!("run {} has no intact `{which}` checkpoint", root.display()))?;
    let model = model_config
        .init::<B>(device)
        .load_file(dir.join("model"), &CheckpointRecorder::new(), device)
        .map_err(|e| anyhow!("cannot load {}: {e}", dir.join("model.mpk").display()))?;
    Ok(LoadedRun { state: RunDir::read_state(&dir)?, config, model_config, model, batcher })
}
