//! Peak memory and time of one ViCLIP-OT update (CLIP + SIGROT) with and without GradCache.
//! One mode per process, so that each process's peak resident memory is its mode's:
//!
//! ```text
//! cargo run --release --example bench_grad_cache -- --mode direct --pairs 512
//! cargo run --release --example bench_grad_cache -- --mode cache --pairs 512 --chunk 32
//! ```
//!
//! `tools/bench_grad_cache.sh` runs both, alternating, and prints their ratios. The model is a
//! mid-size dual encoder (ViT 6 × 384 at 64 px, BERT 6 × 384) unless `--width`, `--layers` and
//! `--image-size` say otherwise. Prints one JSON line: the mode, the median seconds per update
//! over `--updates` updates after one warm-up, and the process's peak resident memory (VmHWM).

mod common;

use std::time::Instant;

use anyhow::Result;
use burn::backend::{Autodiff, NdArray};
use burn::prelude::*;
use burn::tensor::Distribution;
use clap::{Parser, ValueEnum};
use otclip::data::Batch;
use otclip::loss::{objective_loss, LossConfig};
use otclip::model::{BertConfig, DualEncoderConfig, TextBatch, VitConfig};
use otclip::train::grad_cache::{update_gradients, Encoding};
use otclip::train::TrainConfig;
use otclip::SYNTHETIC_VI_CONFIG;

type B = Autodiff<NdArray<f32>>;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// The whole update through the towers with one tape.
    Direct,
    /// GradCache, `--chunk` pairs at a time.
    Cache,
}

#[derive(Parser)]
struct Args {
    #[arg(long, value_enum)]
    mode: Mode,
    #[arg(long, default_value_t = 512)]
    pairs: usize,
    #[arg(long, default_value_t = 32)]
    chunk: usize,
    #[arg(long, default_value_t = 384)]
    width: usize,
    #[arg(long, default_value_t = 6)]
    layers: usize,
    #[arg(long, default_value_t = 64)]
    image_size: usize,
    #[arg(long, default_value_t = 32)]
    tokens: usize,
    #[arg(long, default_value_t = 3)]
    updates: usize,
}

fn batch(args: &Args, device: &burn::tensor::Device<B>) -> Batch<B> {
    let n = args.pairs;
    let ids: Vec<i64> = (0..n * args.tokens).map(|k| ((k * 7 + 3) % 997 + 1) as i64).collect();
    let teacher = || {
        let rows = Tensor::<B, 2>::random([n, 64], Distribution::Normal(0.0, 1.0), device);
        rows.clone() / rows.powi_scalar(2).sum_dim(1).sqrt()
    };
    Batch {
        pixel_values: Tensor::random([n, 3, args.image_size, args.image_size], Distribution::Normal(0.0, 1.0), device),
        text: TextBatch {
            input_ids: Tensor::<B, 1, Int>::from_ints(ids.as_slice(), device).reshape([n, args.tokens]),
            attention_mask: Tensor::<B, 2, Int>::ones([n, args.tokens], device),
        },
        image_ids: (0..n as u64).map(|i| i / 5).collect(),
        teacher: Some((teacher(), teacher())),
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let device = Default::default();
    B::seed(&device, 1);
    let heads = args.width / 64;
    let vision = VitConfig::new(args.image_size, 16, args.width, args.layers, heads, 4 * args.width).with_hidden_dropout_prob(0.1);
    let text = BertConfig::new(1000, args.width, args.layers, heads, 4 * args.width).with_hidden_dropout_prob(0.1).with_max_position_embeddings(args.tokens.max(64));
    let model = DualEncoderConfig::new(vision.into(), text, args.width).init::<B>(&device);
    let loss: LossConfig = TrainConfig::parse(SYNTHETIC_VI_CONFIG, "synthetic_vi.toml", &["loss.sinkhorn.tau=0.5".into()])?.loss;
    let encoding = match args.mode {
        Mode::Direct => Encoding::whole(args.pairs),
        Mode::Cache => Encoding::chunked(args.chunk),
    };
    let mut seconds = Vec::new();
    for update in 0..=args.updates {
        let batch = batch(&args, &device);
        let started = Instant::now();
        let grads = update_gradients(&model, batch, encoding, |chunk| 7 + chunk as u64, |inputs| objective_loss(inputs, &loss, false))?;
        let _ = grads.terms.total.into_scalar();
        if update > 0 {
            seconds.push(started.elapsed().as_secs_f64());
        }
    }
    seconds.sort_by(f64::total_cmp);
    let mode = if args.mode == Mode::Direct { "direct" } else { "cache" };
    println!(
        "{{\"mode\": \"{mode}\", \"pairs\": {}, \"chunk\": {}, \"seconds_per_update\": {:.3}, \"peak_rss_mib\": {:.0}}}",
        args.pairs,
        encoding.chunk_size,
        seconds[seconds.len() / 2],
        common::peak_rss_mib()?
    );
    Ok(())
}
