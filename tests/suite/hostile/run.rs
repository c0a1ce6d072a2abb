//! Training configs out of range, `--out` folders that are not otclip runs, a fresh run in a
//! killed run's folder, and doctored run directories given to `eval` and `train --resume`.

use std::path::{Path, PathBuf};

use super::{copy_dir, edit_json, refused, s, snapshot, succeeded, unchanged};

fn flagship() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/synthetic_vi.toml")
}

/// Overrides that make the flagship train in seconds.
const TINY: [&str; 11] = [
    "data.synthetic.train_images=16",
    "data.synthetic.val_images=8",
    "data.synthetic.test_images=8",
    "data.synthetic.image_size=16",
    "tokenizer.vocab_size=120",
    "model.projection_dim=16",
    "optim.epochs=1",
    "optim.batch_size=8",
    "optim.warmup_steps=0",
    "eval.batch_size=8",
    "loss.sinkhorn.iterations=20",
];

/// `train --config CONFIG --out OUT` with `TINY` and then `sets` as overrides.
fn train_args<'a>(config: &'a str, out: &'a str, sets: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["train", "--config", config, "--out", out];
    for set in TINY.iter().chain(sets) {
        args.extend(["--set", set]);
    }
    args.extend(extra);
    args
}

#[test]
fn training_values_out_of_range_are_errors_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mine.toml");
    std::fs::copy(flagship(), &config).unwrap();
    let out = dir.path().join("run");
    let cases: [(&str, &str); 20] = [
        ("data.synthetic.hard_negative_rate=2", "key `data.synthetic.hard_negative_rate` = 2"),
        ("data.synthetic.hard_negative_rate=nan", "key `data.synthetic.hard_negative_rate` = NaN"),
        ("data.synthetic.image_size=0", "key `data.synthetic.image_size` = 0"),
        ("data.synthetic.train_images=0", "key `data.synthetic.train_images` = 0"),
        ("data.synthetic.val_images=0", "key `data.synthetic.val_images` = 0"),
        ("data.synthetic.captions_per_image=0", "key `data.synthetic.captions_per_image` = 0"),
        ("model.dropout=1.5", "key `model.dropout` = 1.5"),
        ("model.dropout=-0.1", "key `model.dropout` = -0.1"),
        ("model.projection_dim=0", "key `model.projection_dim` = 0"),
        ("model.image_size=100000", "key `model.image_size` = 100000"),
        ("tokenizer.vocab_size=0", "key `tokenizer.vocab_size` = 0"),
        ("tokenizer.max_length=0", "key `tokenizer.max_length` = 0"),
        ("optim.lr=-1", "optim.lr = -1"),
        ("optim.epochs=0", "optim.epochs"),
        ("optim.beta_2=1.5", "key `optim.beta_2` = 1.5"),
        ("optim.eps=0", "key `optim.eps` = 0"),
        ("eval.batch_size=0", "key `eval.batch_size` = 0"),
        ("loss.sinkhorn.eps=0", "eps = 0"),
        ("loss.sinkhorn.iterations=0", "iterations = 0"),
        ("optim.lr=fast", "key `optim.lr`"),
    ];
    let before = snapshot(dir.path());
    for (set, needle) in cases {
        refused(&train_args(s(&config), s(&out), &[set], &[]), &["mine.toml", needle]);
        assert!(!out.exists(), "--set {set}: a refused config created {}", out.display());
    }
    // A key's wrong type names the key too, from the file itself.
    let text = std::fs::read_to_string(&config).unwrap().replace("dropout = 0.0", "dropout = \"none\"");
    let typed = dir.path().join("typed.toml");
    std::fs::write(&typed, text).unwrap();
    refused(&["train", "--config", s(&typed), "--out", s(&out)], &["typed.toml", "model.dropout"]);
    std::fs::remove_file(&typed).unwrap();
    unchanged(dir.path(), &before);
}

#[test]
fn an_out_folder_that_is_not_an_otclip_run_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let config = flagship();
    let mine = dir.path().join("my-project");
    std::fs::create_dir_all(mine.join("notes")).unwrap();
    std::fs::write(mine.join("config.toml"), "# my own config\n").unwrap();
    std::fs::write(mine.join("metrics.jsonl"), "{\"mine\": true}\n").unwrap();
    std::fs::write(mine.join("notes/today.txt"), "do not touch\n").unwrap();
    let before = snapshot(dir.path());
    refused(&train_args(s(&config), s(&mine), &[], &[]), &["my-project", "not an otclip run"]);
    refused(&train_args(s(&config), s(&mine), &[], &["--resume"]), &["my-project", "not an otclip run"]);
    let file = dir.path().join("my-project/config.toml");
    refused(&train_args(s(&config), s(&file), &[], &[]), &["config.toml", "is not a folder"]);
    unchanged(dir.path(), &before);
}

/// The step numbers of the `loss` rows of a run's metrics.
fn steps(run: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    rows.iter().filter(|r| r.get("loss").is_some()).map(|r| r["step"].as_u64().unwrap()).collect()
}

#[test]
fn doctored_and_killed_runs_are_refused_or_started_clean() {
    let dir = tempfile::tempdir().unwrap();
    let config = flagship();
    // A run killed before its first checkpoint: the marker, its setup, and two metrics rows.
    let run = dir.path().join("run");
    std::fs::create_dir_all(run.join("checkpoints")).unwrap();
    std::fs::write(run.join(".otclip-run"), "an otclip run directory\n").unwrap();
    std::fs::write(run.join("metrics.jsonl"), "{\"step\":0,\"epoch\":0,\"loss\":-1.0}\n{\"step\":1,\"epoch\":0,\"loss\":-1.0}\n").unwrap();
    succeeded(&train_args(s(&config), s(&run), &[], &[]));
    let trained = steps(&run);
    assert_eq!(trained, (0..trained.len() as u64).collect::<Vec<_>>(), "a fresh run kept rows of the killed one");
    assert!(!std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().contains("-1.0"));
    // A trained run is not overwritten by a fresh start.
    let before = snapshot(&run);
    refused(&train_args(s(&config), s(&run), &[], &[]), &["already holds a trained run", "--resume"]);
    unchanged(&run, &before);

    // Each doctored copy is refused with a message naming the file; the copy is left as it was.
    let copy = |name: &str| -> PathBuf {
        let to = dir.path().join(name);
        copy_dir(&run, &to);
        for checkpoint in ["best", "last"] {
            copy_dir(&run.join("checkpoints").join(checkpoint), &to.join("checkpoints").join(checkpoint));
        }
        to
    };
    let truncated = copy("truncated");
    let model = truncated.join("checkpoints/best/model.mpk");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 3]).unwrap();
    let before = snapshot(&truncated);
    let stderr = refused(&["eval", "--run", s(&truncated), "--split", "val"], &["checkpoints/best/model.mpk", "truncated"]);
    assert!(!stderr.contains("0.14"), "burn's advice about its 0.14 format misleads here:\n{stderr}");
    unchanged(&truncated, &before);
    let last = truncated.join("checkpoints/last/model.mpk");
    std::fs::write(&last, &std::fs::read(&last).unwrap()[..100]).unwrap();
    let stderr = refused(&train_args(s(&config), s(&truncated), &["optim.epochs=2"], &["--resume"]), &["checkpoints/last/model.mpk", "truncated"]);
    assert!(!stderr.contains("0.14"), "{stderr}");

    let heads = copy("heads");
    edit_json(&heads.join("model.json"), |m| m["vision"]["num_attention_heads"] = serde_json::json!(0));
    refused(&["eval", "--run", s(&heads)], &["model.json", "vision.num_attention_heads = 0"]);
    let vocab = copy("vocab");
    edit_json(&vocab.join("model.json"), |m| m["text"]["vocab_size"] = serde_json::json!(10));
    refused(&["eval", "--run", s(&vocab)], &["tokenizer.json", "model.json", "vocab_size = 10"]);
    // Export refuses another model's folder, and may rewrite its own export.
    let hf = dir.path().join("hf-model");
    std::fs::create_dir_all(&hf).unwrap();
    std::fs::write(hf.join("config.json"), "{\"model_type\": \"bert\"}").unwrap();
    let before = snapshot(&hf);
    refused(&["export", "--run", s(&run), "--checkpoint", "last", "--out", s(&hf)], &["hf-model", "holds no otclip export"]);
    unchanged(&hf, &before);
    let export = dir.path().join("export");
    for _ in 0..2 {
        succeeded(&["export", "--run", s(&run), "--checkpoint", "last", "--out", s(&export)]);
    }
    let wide = copy("wide");
    edit_json(&wide.join("model.json"), |m| m["projection_dim"] = serde_json::json!(100_000_000_000u64));
    refused(&["export", "--run", s(&wide), "--out", s(&dir.path().join("export-wide"))], &["model.json", "projection_dim = 100000000000"]);
}

/// A run killed (SIGKILL) again and again, at moments spread over its steps, checkpoint writes
/// and validations, and resumed each time, finishes with loadable checkpoints and each step
/// once in `metrics.jsonl`.
#[test]
fn a_run_killed_anywhere_resumes_to_an_intact_finish() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let (config, run) = (flagship(), dir.path().join("run"));
    // Four epochs of six steps (about 3 s in all), a checkpoint after every step, a validation
    // after each epoch.
    let sets = ["optim.epochs=4", "data.synthetic.train_images=48", "train.checkpoint_every_steps=1"];
    let args = train_args(s(&config), s(&run), &sets, &["--resume"]);
    let mut kills = 0;
    let started = Instant::now();
    for attempt in 0.. {
        assert!(started.elapsed() < Duration::from_secs(300), "the run did not finish within 300 s ({kills} kills)");
        let mut child = Command::new(env!("CARGO_BIN_EXE_otclip")).args(&args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        // Kill after 0.15 s, 0.3 s, … 1.2 s: early ones land in the setup, later ones in steps,
        // checkpoint writes and validations, further on as each resume skips what is done.
        let deadline = Instant::now() + Duration::from_millis(150 * (attempt % 8 + 1));
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(10));
        }
        if child.try_wait().unwrap().is_none() && attempt < 16 {
            child.kill().unwrap();
            child.wait().unwrap();
            kills += 1;
            continue;
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "the resumed run failed after {kills} kills:\n{stderr}");
        break;
    }
    assert!(kills >= 6, "only {kills} kills landed before the run finished");
    let trained = steps(&run);
    assert_eq!(trained, (0..24).collect::<Vec<_>>(), "steps in metrics.jsonl after {kills} kills");
    for checkpoint in ["last", "best"] {
        let (stdout, _) = succeeded(&["eval", "--run", s(&run), "--checkpoint", checkpoint, "--split", "test"]);
        assert!(stdout.contains("R@1"), "eval of `{checkpoint}` after {kills} kills:\n{stdout}");
    }
}
