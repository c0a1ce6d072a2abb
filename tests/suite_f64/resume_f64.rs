//! A run stopped mid-epoch and resumed trains exactly as one that never stopped (in f64 on
//! ndarray, with dropout and GradCache), `metrics.jsonl` holds each step once, and the best two
//! checkpoints are kept. Alone in a child process: burn's random generator is one per process.

use burn::backend::{Autodiff, NdArray};
use otclip::train::{train, TrainConfig, TrainOptions};
use otclip::SYNTHETIC_VI_CONFIG;

use crate::common::{max_rel_diff, run_alone, step_losses};

type B = Autodiff<NdArray<f64>>;

#[test]
fn resumed_mid_epoch_matches_the_uninterrupted_run() {
    let out = run_alone("resume_f64::resume_check_f64");
    assert!(out.contains("resumed losses"), "{out}");
}

#[test]
#[ignore = "run alone by resumed_mid_epoch_matches_the_uninterrupted_run"]
fn resume_check_f64() {
    let sets: Vec<String> = [
        "data.synthetic.train_images=48",
        "data.synthetic.val_images=12",
        "data.synthetic.test_images=12",
        "data.synthetic.image_size=32",
        // A pretrained text tower brings its own tokenizer: a trained one numbers its tokens
        // differently from run to run (the tokenizers crate's hash order), and so would the runs.
        "model.text_tower=hf:tests/fixtures/towers/bert",
        "model.dropout=0.1",
        "optim.batch_size=16",
        "optim.chunk_size=8",
        "optim.epochs=3",
        "optim.warmup_steps=2",
        "train.checkpoint_every_steps=2",
        "train.keep_best=2",
    ]
    .map(String::from)
    .to_vec();
    let config = TrainConfig::parse(SYNTHETIC_VI_CONFIG, "synthetic_vi.toml", &sets).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (whole, split) = (dir.path().join("whole"), dir.path().join("split"));
    let device = Default::default();
    let quiet = TrainOptions { quiet: true, ..Default::default() };
    let summary = train::<B>(&config, &whole, &device, &quiet).unwrap();
    assert_eq!(summary.steps, 9, "three epochs of three updates");

    // Stopped after the first update of the second epoch, then resumed.
    let stopped = train::<B>(&config, &split, &device, &TrainOptions { max_steps: Some(4), ..quiet.clone() }).unwrap();
    assert_eq!(stopped.steps, 4);
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(split.join("checkpoints/last/state.json")).unwrap()).unwrap();
    assert_eq!((state["step"].as_u64(), state["epoch"].as_u64(), state["batches_done"].as_u64()), (Some(4), Some(1), Some(1)), "{state}");
    let resumed = train::<B>(&config, &split, &device, &TrainOptions { resume: true, ..quiet }).unwrap();
    assert_eq!(resumed.steps, 9);

    let (a, b) = (step_losses(&whole), step_losses(&split));
    let steps: Vec<u64> = b.iter().map(|(step, _)| *step).collect();
    assert_eq!(steps, (0..9).collect::<Vec<_>>(), "each step exactly once, in order");
    let (la, lb): (Vec<f64>, Vec<f64>) = (a.iter().map(|r| r.1).collect(), b.iter().map(|r| r.1).collect());
    let diff = max_rel_diff(&lb, &la);
    println!("resumed losses {lb:?}\nuninterrupted  {la:?}\nmax relative difference {diff:.1e}");
    assert!(diff < 1e-5, "the resumed run's losses differ from the uninterrupted run's by {diff:e}");
    let validations = std::fs::read_to_string(split.join("metrics.jsonl")).unwrap().lines().filter(|l| l.contains("\"val\"")).count();
    assert_eq!(validations, 3, "one validation per epoch");

    // The best two validations are kept, best first.
    let ranked: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(split.join("checkpoints/last/state.json")).unwrap()).unwrap();
    let ranked = ranked["ranked"].as_array().unwrap().clone();
    assert_eq!(ranked.len(), 2, "{ranked:?}");
    assert!(ranked[0]["t2i_r1"].as_f64() >= ranked[1]["t2i_r1"].as_f64(), "{ranked:?}");
    for (rank, name) in ["best", "best-2"].iter().enumerate() {
        let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(split.join(format!("checkpoints/{name}/state.json"))).unwrap()).unwrap();
        assert_eq!(saved["epoch"], ranked[rank]["epoch"], "{name} holds the checkpoint of rank {}", rank + 1);
    }
    assert!(!split.join("checkpoints/best-3").exists());
}
