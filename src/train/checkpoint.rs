//! The run directory: what training writes and what evaluation reads.
//!
//! ```text
// ANCHOR: run_dir_layout
//! RUN/config.toml          the training config, overrides applied
//! RUN/model.json           the resolved DualEncoderConfig
//! RUN/tokenizer.json       the tokenizer
//! RUN/metrics.jsonl        one JSON object per step and per validation
//! RUN/checkpoints/last/    model.mpk, optim.mpk, state.json (written atomically; at epoch
//!                          ends and every train.checkpoint_every_steps)
//! RUN/checkpoints/best/    model.mpk, state.json (best validation t2i R@1)
//! RUN/checkpoints/best-2/  the second best, … up to train.keep_best
//! RUN/results.json         written by `otclip eval`
//! RUN/plots/               PNG plots: loss.png, lr.png, recall.png (redrawn at every
//!                          validation, and by `otclip plot`); embeddings-<split>.png (by
//!                          `otclip eval`: the split's images and captions, PCA to 2-D)
// ANCHOR_END: run_dir_layout
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use burn::config::Config;
use burn::module::Module;
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
    /// −∞ (written as `null`) before the first validation.
    #[serde(deserialize_with = "null_as_negative_infinity")]
    pub best_val_t2i_r1: f64,
    pub best_epoch: usize,
    /// Batches of epoch `epoch` (the one under way) already trained; 0 at an epoch's start.
    #[serde(default)]
    pub batches_done: usize,
    /// The kept best checkpoints, best first.
    #[serde(default)]
    pub ranked: Vec<Ranked>,
}

fn null_as_negative_infinity<'de, D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NEG_INFINITY))
}

/// One kept checkpoint: the epochs completed when it was validated, and its t2i R@1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ranked {
    pub epoch: usize,
    pub t2i_r1: f64,
}

/// The checkpoint name of rank `rank` (0-based) among the kept best: `best`, `best-2`, ….
pub fn ranked_name(rank: usize) -> String {
    if rank == 0 {
        "best".into()
    } else {
        format!("best-{}", rank + 1)
    }
}

pub struct RunDir {
    pub root: PathBuf,
}

/// The file that marks a folder as an otclip run directory.
pub const RUN_MARKER: &str = ".otclip-run";

impl RunDir {
    /// Creates the run directory and checks that it is writable. A folder that already exists
    /// must be empty or an otclip run (marked by [`RUN_MARKER`], or an older run's `model.json`),
    /// so a mistyped `--out` never overwrites or appends to someone's files.
    pub fn create(root: &Path) -> Result<Self> {
        if root.exists() {
            if !root.is_dir() {
                bail!("--out {}: exists and is not a folder; expected an empty folder, an otclip run, or a new path", root.display());
            }
            let entries = fs::read_dir(root).with_context(|| format!("cannot list the output directory {}", root.display()))?;
            let first = entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).min();
            if let (Some(first), false) = (first, is_run(root)) {
                bail!(
                    "--out {}: the folder is not empty (it holds `{first}`…) and is not an otclip run; choose an empty folder or a new path (nothing was written)",
                    root.display()
                );
            }
        }
        fs::create_dir_all(root.join("checkpoints"))
            .with_context(|| format!("cannot create the output directory {}", root.display()))?;
        let marker = root.join(RUN_MARKER);
        fs::write(&marker, b"an otclip run directory\n").with_context(|| format!("the output directory {} is not writable (writing {})", root.display(), marker.display()))?;
        Ok(Self { root: root.to_path_buf() })
    }

    /// Opens `metrics.jsonl` for appending. `fresh`: a run that starts at step 0 empties it
    /// first, so the rows of an earlier attempt that never checkpointed are not mixed in.
    pub fn open_metrics(&self, fresh: bool) -> Result<fs::File> {
        let path = self.path("metrics.jsonl");
        let mut options = fs::OpenOptions::new();
        options.create(true);
        if fresh {
            options.write(true).truncate(true);
        } else {
            options.append(true);
        }
        options.open(&path).with_context(|| format!("cannot open {} for writing", path.display()))
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
        let path = self.path("config.toml");
        fs::write(&path, config.to_toml()?).with_context(|| format!("cannot write {}", path.display()))?;
        let path = self.path("model.json");
        model.save(&path).map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
        tokenizer.save(&self.path("tokenizer.json"))
    }

    /// What `write_setup` wrote: the resolved config, the model config, and the batcher the run
    /// was trained with (its tokenizer, and the image size and normalisation `config.toml`
    /// records; older runs: the model's image size, ImageNet's statistics and bicubic resizing).
    pub fn read_setup(&self) -> Result<(TrainConfig, DualEncoderConfig, Batcher)> {
        let config = TrainConfig::load(&self.path("config.toml"), &[])?;
        let model_path = self.path("model.json");
        let text = fs::read_to_string(&model_path).with_context(|| format!("cannot read {}", model_path.display()))?;
        let value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", model_path.display()))?;
        let model_config = DualEncoderConfig::from_json(value, &model_path)?;
        model_config.validate_towers().map_err(|e| anyhow!("{}: {e}", model_path.display()))?;
        model_config.validate().map_err(|e| anyhow!("{}: {e}", model_path.display()))?;
        let tokenizer_path = self.path("tokenizer.json");
        let tokenizer = CaptionTokenizer::from_file(&tokenizer_path, config.tokenizer.max_length)?;
        tokenizer.check_fits(model_config.text.vocab_size, &format!("{} and {}", tokenizer_path.display(), model_path.display()))?;
        let image_size = config.model.image_size.unwrap_or(model_config.vision.image_size() as u32);
        let (normalization, interpolation) = (config.model.normalization.unwrap_or_default(), config.model.interpolation.unwrap_or_default());
        let batcher = Batcher { tokenizer, image_size, normalization, interpolation };
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
        fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        model.clone().save_file(tmp.join("model"), &CheckpointRecorder::new()).map_err(|e| record_error("write", &tmp.join("model.mpk"), e))?;
        extra(&tmp)?;
        let state_path = tmp.join("state.json");
        fs::write(&state_path, serde_json::to_string_pretty(state)?).with_context(|| format!("cannot write {}", state_path.display()))?;
        let _ = fs::remove_dir_all(&old);
        if final_dir.exists() {
            fs::rename(&final_dir, &old).with_context(|| format!("cannot rename {} to {}", final_dir.display(), old.display()))?;
        }
        fs::rename(&tmp, &final_dir).with_context(|| format!("cannot rename {} to {}", tmp.display(), final_dir.display()))?;
        let _ = fs::remove_dir_all(&old);
        Ok(())
    }

    /// Saves an optimiser's record as `optim.mpk` in `dir`.
    pub fn save_optimizer<B: AutodiffBackend, R: burn::record::Record<B>>(dir: &Path, record: R) -> Result<()> {
        Recorder::<B>::record(&CheckpointRecorder::new(), record, dir.join("optim")).map_err(|e| record_error("write", &dir.join("optim.mpk"), e))
    }

    /// The intact copy of checkpoint `name`: the folder itself, or the previous one if a swap was cut short.
    pub fn find_checkpoint(&self, name: &str) -> Option<PathBuf> {
        [self.checkpoint(name), self.checkpoint(&format!("{name}.old"))]
            .into_iter()
            .find(|dir| dir.join("state.json").is_file() && dir.join("model.mpk").is_file())
    }

    /// Where a validation of `t2i_r1` ranks among the kept best (`None`: below all `keep` of
    /// them). Makes room for it: the checkpoints below move down a rank, and the last drops out.
    pub fn make_room(&self, ranked: &mut Vec<Ranked>, entry: Ranked, keep: usize) -> Result<Option<usize>> {
        let rank = ranked.iter().position(|r| entry.t2i_r1 > r.t2i_r1).unwrap_or(ranked.len());
        if rank >= keep {
            return Ok(None);
        }
        for from in (rank..ranked.len()).rev() {
            let dir = self.checkpoint(&ranked_name(from));
            if from + 1 >= keep {
                let _ = fs::remove_dir_all(&dir);
            } else if dir.exists() {
                let to = self.checkpoint(&ranked_name(from + 1));
                let _ = fs::remove_dir_all(&to);
                fs::rename(&dir, &to).with_context(|| format!("cannot move checkpoint {} to {}", dir.display(), to.display()))?;
            }
        }
        ranked.insert(rank, entry);
        ranked.truncate(keep);
        Ok(Some(rank))
    }

    /// Rewrites `metrics.jsonl` without what a resumed run will write again: the steps from
    /// `state.step` on and the validations from epoch `state.epoch` on (and a line cut short by an
    /// interruption). Written beside it, then swapped in.
    pub fn trim_metrics(&self, state: &TrainState) -> Result<()> {
        let path = self.path("metrics.jsonl");
        let Ok(text) = fs::read_to_string(&path) else { return Ok(()) };
        let kept: Vec<&str> = text
            .lines()
            .filter(|line| {
                let Ok(row) = serde_json::from_str::<serde_json::Value>(line) else { return false };
                let number = |key: &str| row.get(key).and_then(serde_json::Value::as_u64).map(|v| v as usize);
                match (row.get("split"), number("step"), number("epoch")) {
                    (Some(_), _, Some(epoch)) => epoch < state.epoch,
                    (None, Some(step), _) => step < state.step,
                    _ => true,
                }
            })
            .collect();
        let tmp = self.path("metrics.jsonl.tmp");
        fs::write(&tmp, kept.iter().map(|line| format!("{line}\n")).collect::<String>())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("cannot replace {}", path.display()))
    }

    /// Reads a checkpoint's `state.json` (one written before `ranked` existed ranks its `best`).
    pub fn read_state(dir: &Path) -> Result<TrainState> {
        let path = dir.join("state.json");
        let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut state: TrainState = serde_json::from_str(&text).with_context(|| format!("bad {}", path.display()))?;
        if state.ranked.is_empty() && state.best_val_t2i_r1.is_finite() {
            state.ranked.push(Ranked { epoch: state.best_epoch, t2i_r1: state.best_val_t2i_r1 });
        }
        Ok(state)
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
        .map_err(|e| record_error("load", &dir.join("model.mpk"), e))?;
    Ok(LoadedRun { state: RunDir::read_state(&dir)?, config, model_config, model, batcher })
}

/// Whether `root` is an otclip run directory: it has the marker, or (a run written before the
/// marker) a `model.json` that reads as a model config.
pub fn is_run(root: &Path) -> bool {
    root.join(RUN_MARKER).is_file() || DualEncoderConfig::load(root.join("model.json")).is_ok()
}

/// A recorder error as a message naming the operation and the file, without burn's advice about
/// its 0.14 format change (which misleads for a truncated or corrupt file).
pub fn record_error(operation: &str, path: &Path, error: burn::record::RecorderError) -> anyhow::Error {
    let full = error.to_string();
    let message = full.split("The internal data format has changed").next().unwrap_or_default().trim_end();
    let message = message.strip_suffix("\\n").unwrap_or(message).trim_end();
    let message = message.strip_prefix("Unknown(\"").unwrap_or(message);
    match operation {
        "load" => {
            let size = fs::metadata(path).map(|m| format!("{} bytes", m.len())).unwrap_or_else(|_| "unreadable".into());
            anyhow!("cannot load {} ({size}): the file is truncated, corrupt or not an otclip checkpoint; try another checkpoint (e.g. --checkpoint last) or train again. The decoder said: {message}", path.display())
        }
        _ => anyhow!("cannot {operation} {}: {message} (is the disk full or the folder read-only?)", path.display()),
    }
}
