//! The phases of a training run: prepare, run an epoch, validate and checkpoint, finish.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use burn::module::{AutodiffModule, Module};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::record::Recorder;
use burn::tensor::backend::AutodiffBackend;
use indicatif::{ProgressBar, ProgressStyle};
use otclip_kernels::SinkhornBackend;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::checkpoint::{CheckpointRecorder, RunDir, TrainState};
use super::config::{Teacher, TrainConfig};
use super::init::initial_model;
use super::schedule::WarmupCosine;
use super::splits::{load_split, validate};
use crate::data::loader::{make_batches, Loader, LoaderConfig};
use crate::data::{teacher, Batcher, CaptionedImages, PairIndex, Pairing, Split};
use crate::eval::RetrievalMetrics;
use crate::loss::{objective_loss, LossInputs};
use crate::model::DualEncoder;
use crate::seed::RunSeed;

#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Continue from `RUN/checkpoints/last` when it exists.
    pub resume: bool,
    /// No progress bar or per-epoch lines.
    pub quiet: bool,
    /// Stop after this many optimiser steps (for smoke tests).
    pub max_steps: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub run_dir: std::path::PathBuf,
    pub epochs: usize,
    pub steps: usize,
    pub first_loss: f64,
    pub last_loss: f64,
    pub best_epoch: usize,
    pub best_val: Option<RetrievalMetrics>,
    pub seconds: f64,
}

type AdamWOptimizer<B> = OptimizerAdaptor<AdamW, DualEncoder<B>, B>;

/// How an epoch ended.
pub enum EpochEnd {
    /// Every batch ran: validate and checkpoint.
    Complete,
    /// `max_steps` was reached mid-epoch: stop the run.
    StepLimit,
}

/// Everything a run holds between its phases.
pub struct Trainer<'a, B: AutodiffBackend + SinkhornBackend> {
    config: &'a TrainConfig,
    options: &'a TrainOptions,
    device: &'a B::Device,
    run: RunDir,
    seed: RunSeed,
    train_set: Arc<CaptionedImages>,
    val_set: CaptionedImages,
    /// `None` only inside a step, while the optimiser owns it.
    model: Option<DualEncoder<B>>,
    batcher: Batcher,
    optim: AdamWOptimizer<B>,
    state: TrainState,
    schedule: WarmupCosine,
    metrics: File,
    started: Instant,
    first_loss: f64,
    last_loss: f64,
    best_val: Option<RetrievalMetrics>,
}

impl<'a, B: AutodiffBackend + SinkhornBackend> Trainer<'a, B> {
    /// Opens the run directory, loads the data, and builds the model and optimiser: fresh, or
    /// from the last checkpoint when resuming.
    pub fn prepare(config: &'a TrainConfig, run_dir: &Path, device: &'a B::Device, options: &'a TrainOptions) -> Result<Self> {
        let started = Instant::now();
        let run = RunDir::create(run_dir)?;
        let seed = RunSeed(config.seed);
        B::seed(device, config.seed);
        let resume_from = if options.resume { run.find_checkpoint("last") } else { None };
        if !options.resume && run.find_checkpoint("last").is_some() {
            bail!("{} already holds a trained run; pass --resume to continue it, or choose another --out", run_dir.display());
        }
        if resume_from.is_none() {
            // Before the dataset loads: a fresh run reads the tower folders.
            config.model.tower_sources()?;
        }

        let mut train_set = load_split(config, Split::Train)?;
        if let (true, Some(Teacher::File(path))) = (config.loss.objective().needs_teacher(), &config.data.teacher) {
            train_set.teacher = Some(teacher::load(path, &train_set)?);
        }
        let train_set = Arc::new(train_set);
        let val_set = load_split(config, Split::Val)?;

        let (mut model, batcher): (DualEncoder<B>, Batcher) = match &resume_from {
            Some(_) => {
                let (_, model_config, batcher) = run.read_setup()?;
                (model_config.init(device), batcher)
            }
            None => {
                let init = initial_model::<B, _>(config, train_set.entries.iter().flat_map(|e| e.captions.iter()), device)?;
                if !options.quiet {
                    init.reports.iter().for_each(|report| eprint!("{report}"));
                }
                let mut resolved = config.clone();
                resolved.model.image_size = Some(init.image_size);
                resolved.model.normalization = Some(init.normalization);
                resolved.tokenizer.max_length = init.tokenizer.max_length();
                run.write_setup(&resolved, &init.config, &init.tokenizer)?;
                let batcher = Batcher { tokenizer: init.tokenizer, image_size: init.image_size, normalization: init.normalization };
                (init.model, batcher)
            }
        };
        let o = &config.optim;
        let mut optim = AdamWConfig::new().with_weight_decay(o.weight_decay).with_beta_2(o.beta_2).with_epsilon(o.eps).init::<B, DualEncoder<B>>();
        let mut state = TrainState { epoch: 0, step: 0, best_val_t2i_r1: f64::NEG_INFINITY, best_epoch: 0 };

        if let Some(dir) = &resume_from {
            let recorder = CheckpointRecorder::new();
            model = model.load_file(dir.join("model"), &recorder, device).map_err(|e| anyhow!("resuming {}: {e}", dir.display()))?;
            let record = Recorder::<B>::load(&recorder, dir.join("optim"), device).map_err(|e| anyhow!("resuming the optimiser: {e}"))?;
            optim = optim.load_record(record);
            state = RunDir::read_state(dir)?;
            if !options.quiet {
                eprintln!("resuming {} after epoch {} (step {})", run_dir.display(), state.epoch, state.step);
            }
        }
        let pairs_per_epoch = match config.data.pairing {
            Pairing::RandomCaption => train_set.entries.len(),
            Pairing::AllCaptions => train_set.caption_count(),
        };
        let steps_per_epoch = pairs_per_epoch.max(1).div_ceil(o.batch_size);
        let schedule = WarmupCosine { lr: o.lr, min_lr: o.min_lr, warmup_steps: o.warmup_steps, total_steps: steps_per_epoch * o.epochs };
        let metrics = OpenOptions::new().create(true).append(true).open(run.path("metrics.jsonl"))?;
        Ok(Self {
            config,
            options,
            device,
            run,
            seed,
            train_set,
            val_set,
            model: Some(model),
            batcher,
            optim,
            state,
            schedule,
            metrics,
            started,
            first_loss: f64::NAN,
            last_loss: f64::NAN,
            best_val: None,
        })
    }

    /// The first epoch still to run (after a resume, the one after the checkpoint's).
    pub fn first_epoch(&self) -> usize {
        self.state.epoch
    }

    /// Runs the optimiser steps of epoch `epoch`.
    pub fn run_epoch(&mut self, epoch: usize) -> Result<EpochEnd> {
        let (config, o) = (self.config, &self.config.optim);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed.epoch_pairs(epoch));
        let pairs = self.train_set.epoch_pairs(config.data.pairing, &mut rng);
        let bar = if self.options.quiet { ProgressBar::hidden() } else { ProgressBar::new(pairs.len().div_ceil(o.batch_size) as u64) };
        bar.set_style(ProgressStyle::with_template("epoch {prefix} {bar:30} {pos}/{len} [{elapsed}<{eta}] {msg}").expect("valid template"));
        bar.set_prefix(format!("{}/{}", epoch + 1, o.epochs));
        let mut batches: Vec<Vec<PairIndex>> = make_batches(&self.train_set, &pairs, o.batch_size, config.data.sampler);
        batches.retain(|b| b.len() >= 2);
        let augment = config.augmentation(self.batcher.image_size).map(|t| (t, self.seed.epoch_augment(epoch)));
        let mut loader = Loader::spawn(self.batcher.clone(), self.train_set.clone(), batches, LoaderConfig { augment, ..Default::default() })?;
        for host in loader.by_ref() {
            if host.pairs.len() < 2 {
                continue;
            }
            let (loss, scale) = self.step(epoch, host)?;
            bar.set_message(format!("loss {loss:.4} s {scale:.1}"));
            bar.inc(1);
            if self.options.max_steps.is_some_and(|max| self.state.step >= max) {
                bar.finish_and_clear();
                return Ok(EpochEnd::StepLimit);
            }
        }
        bar.finish_and_clear();
        if loader.failed() > 0 {
            eprintln!("warning: epoch {}: skipped {} pairs whose image failed to load", epoch + 1, loader.failed());
        }
        self.state.epoch = epoch + 1;
        Ok(EpochEnd::Complete)
    }

    /// One optimiser step on one batch; returns the loss and the temperature after the step.
    fn step(&mut self, epoch: usize, host: crate::data::HostBatch) -> Result<(f64, f64)> {
        let config = self.config;
        let lr = self.schedule.at(self.state.step);
        let batch = self.batcher.to_batch::<B>(&self.train_set, host, self.device)?;
        let model = self.model.take().ok_or_else(|| anyhow!("the model was lost in an earlier failed step"))?;
        let inputs = LossInputs {
            image: model.encode_image(batch.pixel_values),
            text: model.encode_text(&batch.text),
            scale: model.scale(),
            bias: model.logit_bias.val(),
            image_ids: batch.image_ids,
            teacher: batch.teacher,
        };
        let terms = objective_loss(inputs, &config.loss, epoch < config.loss.transport_warmup_epochs)?;
        let part = |t: &Option<Tensor<B, 1>>| t.as_ref().map(|t| t.clone().into_scalar().elem::<f64>());
        let (contrastive, transport) = (part(&terms.contrastive), part(&terms.transport));
        let loss = terms.total;
        let loss_value: f64 = loss.clone().into_scalar().elem();
        if !loss_value.is_finite() {
            bail!("the loss became {loss_value} at step {}; lower optim.lr", self.state.step);
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let model = self.optim.step(lr, model, grads).clamp_logit_scale();
        let scale: f64 = model.scale().into_scalar().elem();
        self.model = Some(model);
        if self.first_loss.is_nan() {
            self.first_loss = loss_value;
        }
        self.last_loss = loss_value;
        let seconds = self.started.elapsed().as_secs_f64();
        let step = self.state.step;
        self.append_metrics(json!({"step": step, "epoch": epoch, "loss": loss_value, "contrastive": contrastive, "transport": transport,
                                   "lr": lr, "logit_scale": scale, "seconds": seconds}))?;
        self.state.step += 1;
        Ok((loss_value, scale))
    }

    /// Validates after epoch `epoch` and writes `last`, and `best` when validation improved.
    pub fn validate_and_checkpoint(&mut self, epoch: usize) -> Result<()> {
        let config = self.config;
        let val = validate(&self.model()?.valid(), &self.batcher, &self.val_set, config.eval.batch_size, self.device)?;
        let seconds = self.started.elapsed().as_secs_f64();
        let step = self.state.step;
        self.append_metrics(json!({"epoch": epoch, "split": "val", "step": step, "t2i_r1": val.t2i_recall[0], "i2t_r1": val.i2t_recall[0],
                                   "mean_recall": val.mean_recall(), "seconds": seconds}))?;
        if !self.options.quiet {
            eprintln!(
                "epoch {}/{}: loss {:.4}, val t2i R@1 {:.2}%, i2t R@1 {:.2}%, mean recall {:.2}% ({seconds:.0}s)",
                epoch + 1,
                config.optim.epochs,
                self.last_loss,
                val.t2i_recall[0] * 100.0,
                val.i2t_recall[0] * 100.0,
                val.mean_recall() * 100.0,
            );
        }
        let model = self.model.as_ref().ok_or_else(|| anyhow!("the model was lost in an earlier failed step"))?;
        let (run, optim) = (&self.run, &self.optim);
        if val.t2i_recall[0] > self.state.best_val_t2i_r1 {
            self.state.best_val_t2i_r1 = val.t2i_recall[0];
            self.state.best_epoch = self.state.epoch;
            run.save_checkpoint("best", model, &self.state, |_| Ok(()))?;
            self.best_val = Some(val);
        }
        run.save_checkpoint("last", model, &self.state, |dir| RunDir::save_optimizer(dir, optim))
    }

    /// Writes `last` if a step-limited run has none yet, and sums the run up.
    pub fn finish(self) -> Result<TrainSummary> {
        if self.options.max_steps.is_some() && self.run.find_checkpoint("last").is_none() {
            let optim = &self.optim;
            self.run.save_checkpoint("last", self.model()?, &self.state, |dir| RunDir::save_optimizer(dir, optim))?;
        }
        Ok(TrainSummary {
            run_dir: self.run.root.clone(),
            epochs: self.state.epoch,
            steps: self.state.step,
            first_loss: self.first_loss,
            last_loss: self.last_loss,
            best_epoch: self.state.best_epoch,
            best_val: self.best_val,
            seconds: self.started.elapsed().as_secs_f64(),
        })
    }

    fn model(&self) -> Result<&DualEncoder<B>> {
        self.model.as_ref().ok_or_else(|| anyhow!("the model was lost in an earlier failed step"))
    }

    fn append_metrics(&mut self, value: serde_json::Value) -> Result<()> {
        writeln!(self.metrics, "{value}").map_err(|e| anyhow!("cannot append to {}: {e}", self.run.path("metrics.jsonl").display()))
    }
}
