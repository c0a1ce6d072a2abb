//! The phases of a training run: prepare, run an epoch, validate and checkpoint, finish.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use burn::module::{AutodiffModule, Module};
use burn::prelude::*;
use burn::record::Recorder;
use burn::tensor::backend::AutodiffBackend;
use indicatif::{ProgressBar, ProgressStyle};
use otclip_kernels::SinkhornBackend;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::checkpoint::{ranked_name, record_error, CheckpointRecorder, Ranked, RunDir, TrainState};
use super::collective::{Membership, Peer};
use super::config::{Teacher, TrainConfig};
use super::grad_cache::{initialise, shared_update_gradients, update_gradients, Encoding, Shared, UpdateGradients};
use super::init::initial_model;
use super::optimizer::{clip_global_norm, GroupRates, GroupedAdamW};
use super::schedule::{Schedule, WarmupCosine};
use super::splits::{load_split, validate};
use crate::data::loader::{make_batches, BatchUnit, Loader, LoaderConfig, Shard};
use crate::data::{teacher, Batcher, CaptionedImages, HostBatch, PairIndex, Pairing, Split};
use crate::eval::metrics_log::MetricsLog;
use crate::eval::plots::{draw_training_plots, run_name, PLOTS_DIR};
use crate::eval::RetrievalMetrics;
use crate::loss::objective_loss;
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
    /// The leader's (or a lone device's) validation split; the other workers do not validate.
    val_set: Option<CaptionedImages>,
    /// This worker's place among data-parallel workers; `None` on one device.
    peer: Option<Peer>,
    /// `None` only inside a step, while the optimiser owns it.
    model: Option<DualEncoder<B>>,
    batcher: Batcher,
    optim: GroupedAdamW<B>,
    state: TrainState,
    schedule: Schedule,
    /// Only the leader (or a lone device) writes metrics.
    metrics: Option<File>,
    started: Instant,
    first_loss: f64,
    last_loss: f64,
    best_val: Option<RetrievalMetrics>,
}

impl<'a, B: AutodiffBackend + SinkhornBackend> Trainer<'a, B> {
    /// Opens the run directory, loads the data, and builds the model and optimiser: fresh, or
    /// from the last checkpoint when resuming. With `membership`, this is one of several
    /// data-parallel workers: the leader prepares the run folder before it joins the others;
    /// the others join first (so the folder is ready), read it without writing, and all take
    /// the leader's parameters.
    pub fn prepare(config: &'a TrainConfig, run_dir: &Path, device: &'a B::Device, options: &'a TrainOptions, membership: Option<Membership>) -> Result<Self> {
        let started = Instant::now();
        // Before anything is written: a precision the backend lacks is refused.
        config.model.precision.check::<B>(device)?;
        let follower = match &membership {
            Some(member) if member.rank > 0 => Some(member.join::<B::InnerBackend>(device)?),
            _ => None,
        };
        let leads = follower.is_none();
        let run = if leads { RunDir::create(run_dir)? } else { RunDir::open(run_dir)? };
        let seed = RunSeed(config.seed);
        B::seed(device, config.seed);
        let resume_from = if options.resume { run.find_checkpoint("last") } else { None };
        if leads && !options.resume && run.find_checkpoint("last").is_some() {
            bail!("{} already holds a trained run; pass --resume to continue it, or choose another --out", run_dir.display());
        }
        if resume_from.is_none() {
            // Before the dataset loads: a fresh run reads the tower folders.
            config.model.tower_sources()?;
        }

        let mut train_set = load_split(config, Split::Train)?;
        if let (true, Some(Teacher::File(path))) = (config.loss.objective().needs_teacher(), &config.data.teacher) {
            let matched = teacher::load(path, &train_set)?;
            if leads {
                matched.warn_unused(path);
            }
            train_set.teacher = Some(matched.rows);
        }
        let train_set = Arc::new(train_set);
        let val_set = if leads { Some(load_split(config, Split::Val)?) } else { None };

        // A resumed run, and the other workers of a new one, read the leader's setup.
        let (mut model, batcher): (DualEncoder<B>, Batcher) = if resume_from.is_some() || !leads {
            let (_, model_config, batcher) = run.read_setup()?;
            (model_config.init(device), batcher)
        } else {
            let init = initial_model::<B, _>(config, train_set.entries.iter().flat_map(|e| e.captions.iter()), device)?;
            if !options.quiet {
                init.reports.iter().for_each(|report| eprint!("{report}"));
            }
            let mut resolved = config.clone();
            resolved.model.image_size = Some(init.image_size);
            resolved.model.normalization = Some(init.normalization);
            resolved.model.interpolation = Some(init.interpolation);
            resolved.tokenizer.max_length = init.tokenizer.max_length();
            run.write_setup(&resolved, &init.config, &init.tokenizer)?;
            let batcher = Batcher { tokenizer: init.tokenizer, image_size: init.image_size, normalization: init.normalization, interpolation: init.interpolation };
            (init.model, batcher)
        };
        let o = &config.optim;
        let mut state = TrainState { epoch: 0, step: 0, best_val_t2i_r1: f64::NEG_INFINITY, best_epoch: 0, batches_done: 0, ranked: Vec::new() };
        // The groups are read off the model after a resume's load, which restores the saved parameter ids.
        let mut record = None;
        if let Some(dir) = &resume_from {
            let recorder = CheckpointRecorder::new();
            model = model.load_file(dir.join("model"), &recorder, device).map_err(|e| record_error("load", &dir.join("model.mpk"), e))?;
            record = Some(Recorder::<B>::load(&recorder, dir.join("optim"), device).map_err(|e| record_error("load", &dir.join("optim.mpk"), e))?);
            state = RunDir::read_state(dir)?;
            if leads && !options.quiet {
                eprintln!("resuming {} at step {} (epoch {}, batch {})", run_dir.display(), state.step, state.epoch + 1, state.batches_done + 1);
            }
            if leads {
                run.trim_metrics(&state)?;
            }
        }
        // Drawn now, before other workers of this process reseed the generator.
        initialise(&model);
        let peer = match (follower, membership) {
            (Some(peer), _) => Some(peer),
            (None, Some(member)) => Some(member.join::<B::InnerBackend>(device)?),
            (None, None) => None,
        };
        if let Some(peer) = &peer {
            model = peer.share_parameters(model)?;
            peer.take_sent(); // metrics count the updates' exchanges only
        }
        let mut optim = GroupedAdamW::new(&model, o);
        if let Some(record) = record {
            optim = optim.load_record(record);
        }
        let units_per_epoch = match (config.data.pairing, o.batch_unit) {
            (Pairing::RandomCaption, _) | (Pairing::AllCaptions, BatchUnit::Images) => train_set.entries.len(),
            (Pairing::AllCaptions, BatchUnit::Pairs) => train_set.caption_count(),
        };
        let steps_per_epoch = units_per_epoch.max(1).div_ceil(o.batch_size);
        let total_steps = steps_per_epoch * o.epochs;
        let schedule = match o.one_cycle {
            Some(config) => Schedule::OneCycle { lr: o.lr, warmup_steps: config.warmup_epochs * steps_per_epoch, total_steps, config },
            None => Schedule::WarmupCosine(WarmupCosine { lr: o.lr, min_lr: o.min_lr, warmup_steps: o.warmup_steps, total_steps }),
        };
        let metrics = if leads { Some(run.open_metrics(resume_from.is_none())?) } else { None };
        Ok(Self {
            config,
            options,
            device,
            run,
            seed,
            train_set,
            val_set,
            peer,
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
        let mut batches: Vec<Vec<PairIndex>> = make_batches(&self.train_set, &pairs, o.batch_size, o.batch_unit, config.data.sampler);
        batches.retain(|b| b.len() >= 2);
        let bar = if self.options.quiet || !self.leads() { ProgressBar::hidden() } else { ProgressBar::new(batches.len() as u64) };
        bar.set_style(ProgressStyle::with_template("epoch {prefix} {bar:30} {pos}/{len} [{elapsed}<{eta}] {msg}").expect("valid template"));
        bar.set_prefix(format!("{}/{}", epoch + 1, o.epochs));
        let augment = config.augmentation(self.batcher.image_size).map(|t| (t, self.seed.epoch_augment(epoch)));
        // A run resumed mid-epoch skips the batches it trained before it stopped.
        let skip = if epoch == self.state.epoch { self.state.batches_done } else { 0 };
        bar.set_position(skip as u64);
        let shard = self.shard();
        let mut loader = Loader::spawn(self.batcher.clone(), self.train_set.clone(), batches, LoaderConfig { augment, skip, shard, ..Default::default() })?;
        for host in loader.by_ref() {
            // Counts the loader's batches, trained or not, as the loader's `skip` does.
            self.state.batches_done += 1;
            // Workers skip together: each sees the whole update's size.
            if host.pairs.len().max(host.update.len()) < 2 {
                continue;
            }
            let (loss, scale) = self.step(epoch, host)?;
            bar.set_message(format!("loss {loss:.4} s {scale:.1}"));
            bar.inc(1);
            if self.options.max_steps.is_some_and(|max| self.state.step >= max) {
                bar.finish_and_clear();
                return Ok(EpochEnd::StepLimit);
            }
            if self.leads() && self.config.train.checkpoint_every_steps.is_some_and(|every| self.state.step % every == 0) {
                self.save_last()?;
            }
        }
        bar.finish_and_clear();
        if loader.failed() > 0 {
            eprintln!("warning: epoch {}: skipped {} pairs whose image failed to load", epoch + 1, loader.failed());
        }
        self.state.epoch = epoch + 1;
        self.state.batches_done = 0;
        Ok(EpochEnd::Complete)
    }

    /// One optimiser step on one batch; returns the loss and the temperature after the step.
    fn step(&mut self, epoch: usize, mut host: HostBatch) -> Result<(f64, f64)> {
        let (config, o) = (self.config, &self.config.optim);
        let lr = self.schedule.at(self.state.step);
        let rates = GroupRates { backbone: lr, head: lr * o.head_lr.map_or(1.0, |head| head / o.lr) };
        let model = self.model.take().ok_or_else(|| anyhow!("the model was lost in an earlier failed step"))?;
        let (seed, step) = (self.seed, self.state.step);
        let warmup = epoch < config.loss.transport_warmup_epochs;
        let dropout = |chunk| seed.dropout(step, chunk);
        let loss = |inputs| objective_loss(inputs, &config.loss, warmup);
        let update = match (&self.peer, self.shard()) {
            (None, _) | (_, None) => {
                let pairs = host.pairs.len();
                let encoding = Encoding { chunk_size: o.chunk_size.unwrap_or(pairs), grad_cache: o.chunk_size.is_some(), precision: config.model.precision };
                let batch = self.batcher.to_batch::<B>(&self.train_set, host, self.device)?;
                update_gradients(&model, batch, encoding, dropout, loss)
            }
            (Some(peer), Some(shard)) => {
                let encoding = Encoding { chunk_size: shard.chunk_size(host.update.len()), grad_cache: true, precision: config.model.precision };
                let (train_set, device) = (&self.train_set, self.device);
                let update_pairs = std::mem::take(&mut host.update);
                let shared = Shared {
                    peer,
                    positions: host.positions.clone(),
                    first_chunk: host.first_chunk,
                    metadata: Box::new(move |positions: &[usize]| {
                        let pairs: Vec<PairIndex> = positions.iter().map(|&p| update_pairs[p]).collect();
                        (Batcher::image_ids(train_set, &pairs), Batcher::teacher_rows(train_set, &pairs, device))
                    }),
                };
                let batch = self.batcher.to_batch::<B>(&self.train_set, host, self.device)?;
                shared_update_gradients(&model, batch, encoding, dropout, loss, shared)
            }
        };
        let UpdateGradients { mut grads, terms, batch_norm } = update?;
        let part = |t: &Option<Tensor<B, 1>>| t.as_ref().map(|t| t.clone().into_scalar().elem::<f64>());
        let (contrastive, transport, plan_mass) = (part(&terms.contrastive), part(&terms.transport), part(&terms.plan_mass));
        let loss_value: f64 = terms.total.into_scalar().elem();
        if !loss_value.is_finite() {
            bail!("the loss became {loss_value} at step {step}; lower optim.lr");
        }
        let grad_norm = clip_global_norm(&model, &mut grads, o.clip_norm);
        let model = self.optim.step(rates, model, grads).clamp_logit_scale().absorb_batch_norm(batch_norm);
        let scale: f64 = model.scale().into_scalar().elem();
        self.model = Some(model);
        if self.first_loss.is_nan() {
            self.first_loss = loss_value;
        }
        self.last_loss = loss_value;
        let seconds = self.started.elapsed().as_secs_f64();
        let mut row = json!({"step": step, "epoch": epoch, "loss": loss_value, "contrastive": contrastive, "transport": transport,
                             "plan_mass": plan_mass, "lr": lr, "head_lr": rates.head, "grad_norm": grad_norm, "logit_scale": scale, "seconds": seconds});
        if let Some(peer) = &self.peer {
            row["sent_bytes"] = json!(peer.take_sent());
        }
        self.append_metrics(row)?;
        self.state.step += 1;
        Ok((loss_value, scale))
    }

    /// Validates after epoch `epoch` and writes `last`, and `best` when validation improved.
    pub fn validate_and_checkpoint(&mut self, epoch: usize) -> Result<()> {
        let config = self.config;
        let Some(val_set) = &self.val_set else { return Ok(()) };
        let val = validate(&self.model()?.valid(), &self.batcher, val_set, config.eval.batch_size, self.device)?;
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
        self.draw_plots();
        let entry = Ranked { epoch: self.state.epoch, t2i_r1: val.t2i_recall[0] };
        let mut ranked = std::mem::take(&mut self.state.ranked);
        let rank = self.run.make_room(&mut ranked, entry, config.train.keep_best);
        self.state.ranked = ranked;
        if let Some(rank) = rank? {
            if rank == 0 {
                self.state.best_val_t2i_r1 = entry.t2i_r1;
                self.state.best_epoch = entry.epoch;
                self.best_val = Some(val);
            }
            self.run.save_checkpoint(&ranked_name(rank), self.model()?, &self.state, |_| Ok(()))?;
        }
        self.save_last()
    }

    /// Writes `last`: the model, the optimiser and where training stands.
    fn save_last(&self) -> Result<()> {
        if !self.leads() {
            return Ok(());
        }
        let optim = &self.optim;
        self.run.save_checkpoint("last", self.model()?, &self.state, |dir| RunDir::save_optimizer::<B, _>(dir, optim.to_record()))
    }

    /// Writes `last` where a step-limited run stopped, and sums the run up.
    pub fn finish(self, stopped: bool) -> Result<TrainSummary> {
        if stopped {
            self.save_last()?;
        }
        if let Some(peer) = &self.peer {
            peer.leave::<B::InnerBackend>()?;
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
        let Some(metrics) = &mut self.metrics else { return Ok(()) };
        writeln!(metrics, "{value}").map_err(|e| anyhow!("cannot append to {}: {e}", self.run.path("metrics.jsonl").display()))
    }

    /// Redraws `RUN/plots/` from `metrics.jsonl` (the leader only). A failure is a warning:
    /// the plots never stop training.
    fn draw_plots(&self) {
        if self.metrics.is_none() {
            return;
        }
        let dir = self.run.path(PLOTS_DIR);
        if let Err(e) = MetricsLog::read(&self.run.path("metrics.jsonl")).and_then(|log| draw_training_plots(&log, &dir, &run_name(&self.run.root))) {
            eprintln!("warning: the training plots in {} were not drawn: {e:#}", dir.display());
        }
    }

    /// This data-parallel worker's part of every update; `None` on one device.
    fn shard(&self) -> Option<Shard> {
        self.peer.as_ref().map(|peer| Shard { worker: peer.rank, workers: peer.world, chunk_size: self.config.optim.chunk_size })
    }

    /// Whether this worker writes the run folder (the leader, or a lone device).
    fn leads(&self) -> bool {
        self.peer.as_ref().is_none_or(Peer::is_leader)
    }
}

/// One device's run, alone or as one of several data-parallel workers.
pub fn run<B: AutodiffBackend + SinkhornBackend>(config: &TrainConfig, run_dir: &Path, device: &B::Device, options: &TrainOptions, membership: Option<Membership>) -> Result<TrainSummary> {
    let mut trainer = Trainer::<B>::prepare(config, run_dir, device, options, membership)?;
    let mut stopped = false;
    for epoch in trainer.first_epoch()..config.optim.epochs {
        match trainer.run_epoch(epoch)? {
            EpochEnd::Complete => trainer.validate_and_checkpoint(epoch)?,
            EpochEnd::StepLimit => {
                stopped = true;
                break;
            }
        }
    }
    trainer.finish(stopped)
}
