//! Times one training step of a preset dual encoder on the CPU (forward, multi-positive CLIP
//! loss, backward, grouped AdamW), or the evaluation embedding of images and captions, and prints
//! one JSON line. `tools/bench_train.sh` runs it interleaved with the PyTorch replica
//! (`tools/bench_train_torch.py`, the same shapes, loss and optimiser) and prints the ratios:
//!
//! ```text
//! cargo run --release --example bench_train_step -- --preset tiny --batch 128 --what train
//! cargo run --release --example bench_train_step -- --preset tiny --batch 256 --what embed
//! ```
//!
//! The batch is random pixels and token ids (`--tokens` long, no padding), five captions per
//! image. The step time is the median over `--steps` steps after one warm-up step; `best_s` is the
//! fastest. Threads follow `RAYON_NUM_THREADS` (the script sets 2, as torch's). `--device cuda`
//! or `wgpu` (with that feature) and `--precision bf16` time the GPU paths (`tools/gpu-check.sh`);
//! there `peak_rss_mib` is the host's, and each step ends by reading the loss back.

mod common;

use std::time::Instant;

use anyhow::Result;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Distribution;
use clap::{Parser, ValueEnum};
use otclip::backend::{dispatch, dispatch_inference, BackendTask, DeviceSpec, InferenceTask};
use otclip::data::Batch;
use otclip::kernels::SinkhornBackend;
use otclip::loss::{objective_loss, LossConfig};
use otclip::model::{DualEncoderConfig, Precision, Preset, TextBatch};
use otclip::train::grad_cache::{update_gradients, Encoding};
use otclip::train::optimizer::{GroupRates, GroupedAdamW};
use otclip::train::TrainConfig;
use otclip::SYNTHETIC_VI_CONFIG;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum What {
    /// Training steps.
    Train,
    /// Evaluation embedding (no autodiff): images/s and captions/s.
    Embed,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PresetArg {
    Tiny,
    Base,
}

#[derive(Parser, Clone)]
struct Args {
    #[arg(long, value_enum, default_value_t = PresetArg::Tiny)]
    preset: PresetArg,
    #[arg(long, value_enum, default_value_t = What::Train)]
    what: What,
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Caption length in tokens.
    #[arg(long, default_value_t = 24)]
    tokens: usize,
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// `ndarray`, `wgpu[:N]` or `cuda[:N]`, as every otclip command takes it.
    #[arg(long, default_value = "ndarray")]
    device: DeviceSpec,
    /// GradCache in chunks of this many pairs (absent: the whole batch at once).
    #[arg(long)]
    chunk: Option<usize>,
    /// What the towers compute in while training (bf16 and f16 need a GPU backend).
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32)]
    precision: PrecisionArg,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PrecisionArg {
    F32,
    Bf16,
    F16,
}

const VOCAB: usize = 1000;

impl Args {
    fn precision(&self) -> Precision {
        match self.precision {
            PrecisionArg::F32 => Precision::F32,
            PrecisionArg::Bf16 => Precision::Bf16,
            PrecisionArg::F16 => Precision::F16,
        }
    }

    fn preset(&self) -> Preset {
        match self.preset {
            PresetArg::Tiny => Preset::Tiny,
            PresetArg::Base => Preset::Base,
        }
    }

    fn model(&self) -> DualEncoderConfig {
        DualEncoderConfig::preset(self.preset(), VOCAB)
    }

    fn pixels<B: Backend>(&self, device: &B::Device) -> Tensor<B, 4> {
        let size = self.model().vision.image_size();
        Tensor::random([self.batch, 3, size, size], Distribution::Normal(0.0, 1.0), device)
    }

    fn captions<B: Backend>(&self, device: &B::Device) -> TextBatch<B> {
        let n = self.batch;
        let ids: Vec<i64> = (0..n * self.tokens).map(|k| ((k * 7 + 3) % (VOCAB - 1) + 1) as i64).collect();
        TextBatch {
            input_ids: Tensor::<B, 1, Int>::from_ints(ids.as_slice(), device).reshape([n, self.tokens]),
            attention_mask: Tensor::<B, 2, Int>::ones([n, self.tokens], device),
        }
    }

    fn line(&self, what: &str) -> serde_json::Value {
        serde_json::json!({"impl": "otclip", "what": what, "preset": self.preset().to_string(), "batch": self.batch,
                           "tokens": self.tokens, "chunk": self.chunk, "device": self.device.to_string(), "precision": self.precision().to_string()})
    }
}

/// Median and best of `steps` timed runs after one warm-up.
fn timed(steps: usize, mut run: impl FnMut() -> Result<()>) -> Result<(f64, f64)> {
    run()?;
    let mut seconds = Vec::with_capacity(steps.max(1));
    for _ in 0..steps.max(1) {
        let started = Instant::now();
        run()?;
        seconds.push(started.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    Ok((seconds[seconds.len() / 2], seconds[0]))
}

/// Training steps as the trainer takes them: `update_gradients` (CLIP alone), then the grouped
/// AdamW of configs/synthetic_vi.toml.
struct TrainBench(Args);

impl BackendTask for TrainBench {
    type Output = serde_json::Value;

    fn run<B: AutodiffBackend + SinkhornBackend>(self, device: B::Device) -> Result<serde_json::Value> {
        let args = self.0;
        let config = TrainConfig::parse(SYNTHETIC_VI_CONFIG, "synthetic_vi.toml", &["loss.transport=\"none\"".into()])?;
        let (optim, loss): (_, LossConfig) = (config.optim, config.loss);
        args.precision().check::<B>(&device)?;
        B::seed(&device, 1);
        let mut model = Some(args.model().init::<B>(&device));
        let mut optimizer = GroupedAdamW::new(model.as_ref().expect("built"), &optim);
        let rates = GroupRates { backbone: optim.lr, head: optim.lr };
        let layout = args.chunk.map_or(Encoding::whole(args.batch), Encoding::chunked);
        let encoding = Encoding { precision: args.precision(), ..layout };
        let (median, best) = timed(args.steps, || {
            let current = model.take().expect("the model is put back after every step");
            let batch = Batch {
                pixel_values: args.pixels::<B>(&device),
                text: args.captions::<B>(&device),
                image_ids: (0..args.batch as u64).map(|i| i / 5).collect(),
                teacher: None,
            };
            let update = update_gradients(&current, batch, encoding, |chunk| 7 + chunk as u64, |inputs| objective_loss(inputs, &loss, false))?;
            let _: f32 = update.terms.total.into_scalar().elem();
            model = Some(optimizer.step(rates, current, update.grads));
            Ok(())
        })?;
        let mut line = args.line("train");
        line["median_s"] = median.into();
        line["best_s"] = best.into();
        line["peak_rss_mib"] = common::peak_rss_mib()?.into();
        Ok(line)
    }
}

/// Evaluation embedding, without autodiff, in f32.
struct EmbedBench(Args);

impl InferenceTask for EmbedBench {
    type Output = serde_json::Value;

    fn run<B: Backend + SinkhornBackend>(self, device: B::Device) -> Result<serde_json::Value> {
        let args = self.0;
        let model = args.model().init::<B>(&device);
        let (pixels, text) = (args.pixels::<B>(&device), args.captions::<B>(&device));
        let (images, _) = timed(args.steps, || {
            let _ = model.encode_image(pixels.clone()).into_data();
            Ok(())
        })?;
        let (texts, _) = timed(args.steps, || {
            let _ = model.encode_text(&text).into_data();
            Ok(())
        })?;
        let mut line = args.line("embed");
        line["images_per_s"] = (args.batch as f64 / images).into();
        line["captions_per_s"] = (args.batch as f64 / texts).into();
        line["peak_rss_mib"] = common::peak_rss_mib()?.into();
        Ok(line)
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let line = match args.what {
        What::Train => dispatch(args.device, TrainBench(args.clone()))?,
        What::Embed => dispatch_inference(args.device, false, EmbedBench(args.clone()))?,
    };
    println!("{line}");
    Ok(())
}
