//! The training loop, generic over `B: AutodiffBackend`:
//! dataset → batcher → towers → loss → AdamW → checkpoint, with validation every epoch.

pub mod checkpoint;
pub mod config;
pub mod init;
pub mod schedule;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, Result};
use burn::module::{AutodiffModule, Module};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::record::Recorder;
use burn::tensor::backend::AutodiffBackend;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

pub use checkpoint::{load_run, CheckpointRecorder, LoadedRun, RunDir, TrainState};
pub use config::TrainConfig;
pub use init::{initial_model, InitialModel};
pub use schedule::WarmupCosine;

use crate::data::synthetic;
use crate::data::loader::{make_batches, Loader, LoaderConfig};
use crate::data::{teacher, Batcher, CaptionedImages, DatasetSpec, PairIndex, Pairing, Split};
use crate::eval::{embed_split, RetrievalMetrics};
use crate::loss::{objective_loss, LossInputs};
use crate::model::DualEncoder;

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
    pub run_dir: PathBuf,
    pub epochs: usize,
    pub steps: usize,
    pub first_loss: f64,
    pub last_loss: f64,
    pub best_epoch: usize,
    pub best_val: Option<RetrievalMetrics>,
    pub seconds: f64,
}

/// Loads the dataset split named in the config: the synthetic one, or a spec read with `split=`
/// (or `data.val` / `data.test` when set).
pub fn load_split(config: &TrainConfig, split: Split) -> Result<CaptionedImages> {
    let own = match split {
        Split::Train => "",
        Split::Val => config.data.val.as_str(),
        Split::Test => config.data.test.as_str(),
    };
    if !own.is_empty() {
        let text = own;
        return open_spec(&DatasetSpec::parse(text)?, split);
    }
    if config.data.dataset == "synthetic" {
        return Ok(synthetic::generate(&config.synthetic(), split)?.dataset);
    }
    let spec = DatasetSpec::parse(&config.data.dataset)?.with_option("split", split.name());
    open_spec(&spec, split)
}

/// Opens a dataset spec (its own `split=`, else `split`), prints a warning per skipped item and
/// the total, and groups the captions by image.
pub fn open_spec(spec: &DatasetSpec, split: Split) -> Result<CaptionedImages> {
    let spec = if spec.format.has_splits() { spec.with_default_split(split.name()) } else { spec.clone() };
    let dataset = spec.open()?;
    dataset.warn_skipped();
    if dataset.items.is_empty() {
        anyhow::bail!("{}: no usable image–caption pairs", dataset.name);
    }
    Ok(dataset.to_captioned())
}

fn append_json(file: &mut File, value: serde_json::Value) -> Result<()> {
    writeln!(file, "{value}")?;
    Ok(())
}

/// Recall of `model` on `dataset`, in inference mode.
pub fn validate<B: Backend>(model: &DualEncoder<B>, batcher: &Batcher, dataset: &CaptionedImages, batch_size: usize, device: &B::Device) -> Result<RetrievalMetrics> {
    Ok(embed_split(model, batcher, dataset, batch_size, device)?.metrics())
}

/// Trains a dual encoder as `config` says and writes the run to `run_dir`.
pub fn train<B: AutodiffBackend + otclip_kernels::SinkhornBackend>(config: &TrainConfig, run_dir: &Path, device: &B::Device, options: &TrainOptions) -> Result<TrainSummary> {
    let started = Instant::now();
    let run = RunDir::create(run_dir)?;
    B::seed(device, config.seed);
    let resume_from = if options.resume { run.find_checkpoint("last") } else { None };
    if !options.resume && run.find_checkpoint("last").is_some() {
        anyhow::bail!(
            "{} already holds a trained run; pass --resume to continue it, or choose another --out",
            run_dir.display()
        );
    }
    if resume_from.is_none() {
        // Before the dataset loads: a fresh run reads the tower folders.
        config.model.tower_sources()?;
    }

    let mut train_set = match config.data.dataset.as_str() {
        "synthetic" => synthetic::generate(&config.synthetic(), Split::Train)?.dataset,
        _ => load_split(config, Split::Train)?,
    };
    if config.loss.objective.needs_teacher() && config.data.teacher != "builtin" {
        train_set.teacher = Some(teacher::load(Path::new(&config.data.teacher), &train_set)?);
    }
    let train_set = std::sync::Arc::new(train_set);
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
            resolved.model.image_size = init.image_size;
            resolved.model.normalization = Some(init.normalization);
            resolved.tokenizer.max_length = init.tokenizer.max_length();
            run.write_setup(&resolved, &init.config, &init.tokenizer)?;
            let batcher = Batcher { tokenizer: init.tokenizer, image_size: init.image_size, normalization: init.normalization };
            (init.model, batcher)
        }
    };
    let o = &config.optim;
    let mut optim = AdamWConfig::new()
        .with_weight_decay(o.weight_decay)
        .with_beta_2(o.beta_2)
        .with_epsilon(o.eps)
        .init::<B, DualEncoder<B>>();
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
    let mut metrics_file = OpenOptions::new().create(true).append(true).open(run.path("metrics.jsonl"))?;
    let (mut first_loss, mut last_loss) = (f64::NAN, f64::NAN);
    let mut best_val = None;

    'epochs: for epoch in state.epoch..o.epochs {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ (epoch as u64 + 1).wrapping_mul(0x5851_F42D_4C95_7F2D));
        let pairs = train_set.epoch_pairs(config.data.pairing, &mut rng);
        let bar = if options.quiet { ProgressBar::hidden() } else { ProgressBar::new(pairs.len().div_ceil(o.batch_size) as u64) };
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} {bar:30} {pos}/{len} [{elapsed}<{eta}] {msg}").expect("valid template"),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, o.epochs));
        let mut batches: Vec<Vec<PairIndex>> = make_batches(&train_set, &pairs, o.batch_size, config.data.sampler);
        batches.retain(|b| b.len() >= 2);
        let augment = config.augmentation(batcher.image_size).map(|t| (t, config.seed ^ (epoch as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407)));
        let mut loader = Loader::spawn(batcher.clone(), train_set.clone(), batches, LoaderConfig { augment, ..Default::default() })?;
        for host in loader.by_ref() {
            if host.pairs.len() < 2 {
                continue;
            }
            let lr = schedule.at(state.step);
            let batch = batcher.to_batch::<B>(&train_set, host, device)?;
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
                return Err(anyhow!("the loss became {loss_value} at step {}; lower optim.lr", state.step));
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads).clamp_logit_scale();
            let scale: f64 = model.scale().into_scalar().elem();
            if first_loss.is_nan() {
                first_loss = loss_value;
            }
            last_loss = loss_value;
            append_json(
                &mut metrics_file,
                json!({"step": state.step, "epoch": epoch, "loss": loss_value, "contrastive": contrastive, "transport": transport,
                       "lr": lr, "logit_scale": scale, "seconds": started.elapsed().as_secs_f64()}),
            )?;
            bar.set_message(format!("loss {loss_value:.4} s {scale:.1}"));
            bar.inc(1);
            state.step += 1;
            if options.max_steps.is_some_and(|max| state.step >= max) {
                bar.finish_and_clear();
                break 'epochs;
            }
        }
        bar.finish_and_clear();
        if loader.failed() > 0 {
            eprintln!("warning: epoch {}: skipped {} pairs whose image failed to load", epoch + 1, loader.failed());
        }
        drop(loader);
        state.epoch = epoch + 1;

        let val = validate(&model.valid(), &batcher, &val_set, config.eval.batch_size, device)?;
        append_json(
            &mut metrics_file,
            json!({"epoch": epoch, "split": "val", "step": state.step, "t2i_r1": val.t2i_recall[0], "i2t_r1": val.i2t_recall[0],
                   "mean_recall": val.mean_recall(), "seconds": started.elapsed().as_secs_f64()}),
        )?;
        if !options.quiet {
            eprintln!(
                "epoch {}/{}: loss {last_loss:.4}, val t2i R@1 {:.2}%, i2t R@1 {:.2}%, mean recall {:.2}% ({:.0}s)",
                epoch + 1,
                o.epochs,
                val.t2i_recall[0] * 100.0,
                val.i2t_recall[0] * 100.0,
                val.mean_recall() * 100.0,
                started.elapsed().as_secs_f64()
            );
        }
        if val.t2i_recall[0] > state.best_val_t2i_r1 {
            state.best_val_t2i_r1 = val.t2i_recall[0];
            state.best_epoch = state.epoch;
            run.save_checkpoint("best", &model, &state, |_| Ok(()))?;
            best_val = Some(val);
        }
        run.save_checkpoint("last", &model, &state, |dir| RunDir::save_optimizer(dir, &optim))?;
    }
    if options.max_steps.is_some() && run.find_checkpoint("last").is_none() {
        run.save_checkpoint("last", &model, &state, |dir| RunDir::save_optimizer(dir, &optim))?;
    }

    Ok(TrainSummary {
        run_dir: run_dir.to_path_buf(),
        epochs: state.epoch,
        steps: state.step,
        first_loss,
        last_loss,
        best_epoch: state.best_epoch,
        best_val,
        seconds: started.elapsed().as_secs_f64(),
    })
}
