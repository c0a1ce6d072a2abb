//! Time per update of data-parallel training with `--workers` ndarray workers in one process,
//! on the built-in data with the flagship's model, and the bytes each worker puts into the
//! exchanges per update (read from the run's `metrics.jsonl`). One worker count per process;
//! `tools/bench_data_parallel.sh` alternates 1 and 2 and prints their ratio.
//!
//! ```text
//! cargo run --release --example bench_data_parallel -- --workers 2 --updates 12
//! ```
//!
//! Prints one JSON line: workers, update size, the median seconds per update after the first
//! two, and the sent bytes per update (from worker 0; every worker sends as much).

use anyhow::{bail, Result};
use burn::backend::{Autodiff, NdArray};
use clap::Parser;
use otclip::train::{train, train_on_devices, TrainConfig, TrainOptions};
use otclip::SYNTHETIC_VI_CONFIG;

type B = Autodiff<NdArray<f32>>;

#[derive(Parser)]
struct Args {
    /// Workers, each on the ndarray device (1: the ordinary single-device loop).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Pairs per update (the global batch).
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// GradCache chunk size (pairs).
    #[arg(long, default_value_t = 32)]
    chunk: usize,
    /// Updates to time (after two warm-up updates).
    #[arg(long, default_value_t = 10)]
    updates: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let sets = [
        format!("optim.batch_size={}", args.batch),
        format!("optim.chunk_size={}", args.chunk),
        "data.synthetic.train_images=2000".into(),
        "data.synthetic.val_images=50".into(),
        "data.synthetic.test_images=50".into(),
    ];
    let config = TrainConfig::parse(SYNTHETIC_VI_CONFIG, "synthetic_vi.toml", &sets)?;
    let dir = tempfile_dir()?;
    let options = TrainOptions { quiet: true, max_steps: Some(args.updates + 2), ..Default::default() };
    let device = Default::default();
    match args.workers {
        0 => bail!("--workers 0: expected at least 1"),
        1 => train::<B>(&config, &dir, &device, &options)?,
        n => train_on_devices::<B>(&config, &dir, &vec![device; n], &options)?,
    };
    let rows: Vec<serde_json::Value> =
        std::fs::read_to_string(dir.join("metrics.jsonl"))?.lines().filter_map(|l| serde_json::from_str(l).ok()).filter(|r: &serde_json::Value| r.get("loss").is_some()).collect();
    let seconds: Vec<f64> = rows.iter().map(|r| r["seconds"].as_f64().unwrap_or(f64::NAN)).collect();
    let mut steps: Vec<f64> = seconds.windows(2).skip(1).map(|w| w[1] - w[0]).collect();
    steps.sort_by(f64::total_cmp);
    let median = steps.get(steps.len() / 2).copied().unwrap_or(f64::NAN);
    let sent = rows.last().and_then(|r| r.get("sent_bytes")).and_then(|b| b.as_u64()).unwrap_or(0);
    println!("{}", serde_json::json!({"workers": args.workers, "batch": args.batch, "chunk": args.chunk, "median_update_s": median, "sent_bytes_per_update": sent}));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// A fresh folder under the system's temporary directory.
fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("otclip-bench-dp-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(dir)
}
