//! The flagship: generate the built-in Vietnamese dataset, train a dual encoder on it, evaluate on
//! the test split and print the table. `cargo run --release --example train_vi`
//!
//! It trains ViCLIP-OT (0.1·CLIP + SIGROT) by default. Options: `--device ndarray|wgpu|cuda[:N]`,
//! `--epochs N`, `--out DIR`, `--fresh`, `--objective OBJ`, and `--baseline`, which also trains the
//! CLIP-only baseline with the same seed and budget and prints the two side by side.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Parser;
use otclip::app::flagship;
use otclip::eval::{comparison_table, EvalReport};
use otclip::loss::Objective;
use otclip::train::TrainConfig;
use otclip::{DeviceSpec, SYNTHETIC_VI_CONFIG};

#[derive(Parser)]
#[command(about = "Train and evaluate otclip on the built-in Vietnamese synthetic dataset")]
struct Args {
    #[arg(long, default_value_t = DeviceSpec::default())]
    device: DeviceSpec,
    /// Epochs (the config's default when absent).
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long, default_value = "runs/train_vi")]
    out: PathBuf,
    /// Delete earlier runs in `--out` instead of resuming them.
    #[arg(long)]
    fresh: bool,
    /// The training objective (the config's, `clip+sigrot`, when absent): clip, siglip, sigrot,
    /// uot, or CONTRASTIVE+TRANSPORT such as clip+sigrot, siglip+sigrot, clip+uot.
    #[arg(long)]
    objective: Option<Objective>,
    /// Train on a dataset spec instead of the built-in synthetic data, e.g.
    /// `viclip-ot:/data/uit-openviic` (see the book's "Your data"); implies `--objective clip`
    /// unless one is given, since the built-in SIGROT teacher exists only for synthetic data.
    #[arg(long)]
    data: Option<String>,
    /// Also train the CLIP-only baseline (into `<out>-clip`) and compare.
    #[arg(long, conflicts_with = "objective")]
    baseline: bool,
}

// ANCHOR: flagship_run
/// Trains (or resumes) one run with `overrides` applied to the flagship config, then evaluates
/// its best checkpoint on the test split.
fn train_and_evaluate(args: &Args, out: &Path, overrides: &[String]) -> Result<EvalReport> {
    let config = TrainConfig::parse(SYNTHETIC_VI_CONFIG, "configs/synthetic_vi.toml", overrides)?;
    flagship::train_and_evaluate(config, out, args.device, args.fresh)
}
// ANCHOR_END: flagship_run

/// The `--set` overrides that choose `objective`.
fn objective_overrides(objective: Objective) -> [String; 2] {
    [format!("loss.contrastive=\"{}\"", objective.contrastive.as_str()), format!("loss.transport=\"{}\"", objective.transport.as_str())]
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut overrides: Vec<String> = args.epochs.map(|e| format!("optim.epochs={e}")).into_iter().collect();
    if let Some(spec) = &args.data {
        overrides.push(format!("data.dataset={}", toml::Value::String(spec.clone())));
        overrides.push("data.augment=\"viclip-ot\"".into());
        if args.objective.is_none() {
            overrides.extend(objective_overrides("clip".parse()?));
        }
    }
    if let Some(objective) = args.objective {
        overrides.extend(objective_overrides(objective));
    }
    let first = train_and_evaluate(&args, &args.out, &overrides)?;
    print!("{}", first.table());
    if args.baseline {
        overrides.extend(objective_overrides("clip".parse()?));
        let out = PathBuf::from(format!("{}-clip", args.out.display()));
        let clip = train_and_evaluate(&args, &out, &overrides)?;
        print!("{}", clip.table());
        print!("{}", comparison_table(&[("CLIP", &clip), ("ViCLIP-OT", &first)]));
    }
    Ok(())
}
