//! Data-parallel training is exact: two workers on two ndarray devices of one process, each
//! encoding half of every update, end with the same parameters as one device training on the
//! whole update (f64, dropout on, CLIP and CLIP + SIGROT), and a stopped two-worker run resumes
//! to the same place. Alone in a child process: burn-collective keeps one group per backend type
//! in a process, and burn's random generator is one per process.

use std::path::Path;

use burn::backend::{Autodiff, NdArray};
use otclip::train::{train, train_on_devices, train_on_nodes, Nodes, TrainConfig, TrainOptions};
use otclip::SYNTHETIC_VI_CONFIG;

use crate::common::{finish_child, free_ports, max_rel_diff, run_alone, run_parameters, step_losses};

/// The parameters of a run's `last` checkpoint, in f64.
fn parameters(run: &Path) -> Vec<f64> {
    run_parameters::<NdArray<f64>>(run)
}

type B = Autodiff<NdArray<f64>>;

#[test]
fn two_workers_match_one_device() {
    let out = run_alone("data_parallel_f64::two_workers_check_f64");
    assert!(out.contains("clip+sigrot: two workers"), "{out}");
}

/// Five updates of 15 pairs in GradCache chunks of 4 (split 8 + 7 between two workers), dropout
/// on, an epoch end after the third.
fn small_config(transport: &str) -> TrainConfig {
    let sets: Vec<String> = [
        "data.synthetic.train_images=40",
        "data.synthetic.val_images=8",
        "data.synthetic.test_images=8",
        "data.synthetic.image_size=32",
        // A pretrained text tower brings its own tokenizer (a trained one may number its tokens
        // differently from run to run).
        "model.text_tower=hf:tests/fixtures/towers/bert",
        "model.dropout=0.1",
        "optim.batch_size=15",
        "optim.chunk_size=4",
        "optim.epochs=2",
        "optim.warmup_steps=2",
        "optim.lr=0.005",
        "train.worker_timeout_s=60",
        &format!("loss.transport=\"{transport}\""),
    ]
    .map(String::from)
    .to_vec();
    TrainConfig::parse(SYNTHETIC_VI_CONFIG, "synthetic_vi.toml", &sets).unwrap()
}

#[test]
#[ignore = "run alone by two_workers_match_one_device"]
fn two_workers_check_f64() {
    for transport in ["none", "sigrot"] {
        let name = if transport == "none" { "clip" } else { "clip+sigrot" };
        let config = small_config(transport);
        let dir = tempfile::tempdir().unwrap();
        let device = Default::default();
        let five = TrainOptions { quiet: true, max_steps: Some(5), ..Default::default() };
        let one = dir.path().join("one");
        assert_eq!(train::<B>(&config, &one, &device, &five).unwrap().steps, 5);

        // Two workers: 15 pairs in chunks of 4 make chunks 0-1 (8 pairs) and 2-3 (7 pairs).
        let two = dir.path().join("two");
        assert_eq!(train_on_devices::<B>(&config, &two, &[device, device], &five).unwrap().steps, 5);
        // Two workers stopped after 3 updates, then resumed.
        let resumed = dir.path().join("resumed");
        let three = TrainOptions { max_steps: Some(3), ..five.clone() };
        assert_eq!(train_on_devices::<B>(&config, &resumed, &[device, device], &three).unwrap().steps, 3);
        assert_eq!(train_on_devices::<B>(&config, &resumed, &[device, device], &TrainOptions { resume: true, ..five.clone() }).unwrap().steps, 5);

        let reference = parameters(&one);
        let (losses_one, losses_two) = (step_losses(&one), step_losses(&two));
        assert_eq!(losses_two.iter().map(|r| r.0).collect::<Vec<_>>(), (0..5).collect::<Vec<_>>(), "the leader logs each step once");
        let loss_diff = max_rel_diff(&losses_two.iter().map(|r| r.1).collect::<Vec<_>>(), &losses_one.iter().map(|r| r.1).collect::<Vec<_>>());
        let (two_diff, resumed_diff) = (max_rel_diff(&parameters(&two), &reference), max_rel_diff(&parameters(&resumed), &reference));
        let first = dir.path().join("first");
        train::<B>(&config, &first, &device, &TrainOptions { max_steps: Some(1), ..five.clone() }).unwrap();
        let moved = max_rel_diff(&reference, &parameters(&first));
        println!("{name}: two workers vs one device after 5 updates: parameters {two_diff:.1e}, losses {loss_diff:.1e}; resumed {resumed_diff:.1e}; (steps 1 to 5 moved them {moved:.1e})");
        assert!(moved > 1e-3, "{name}: training must move the parameters for the comparison to mean anything ({moved:e})");
        assert!(two_diff < 1e-5, "{name}: two workers' parameters differ from one device's by {two_diff:e}");
        assert!(loss_diff < 1e-5, "{name}: two workers' losses differ from one device's by {loss_diff:e}");
        assert!(resumed_diff < 1e-5, "{name}: the resumed two-worker run differs from one device's by {resumed_diff:e}");
    }
}

/// The same across processes: two child processes of this binary, each one node of
/// `train_on_nodes` (one ndarray worker each) joined through the orchestrator on 127.0.0.1, end
/// CLIP + SIGROT's five updates with the parameters of one device, in f64.
#[test]
fn two_processes_match_one_device() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(3);
    let spawn = |role: &str, run: &str| {
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "data_parallel_f64::node_f64", "--ignored", "--test-threads=1", "--nocapture"])
            .env("OTCLIP_TEST_ROLE", role)
            .env("OTCLIP_TEST_RUN", dir.path().join(run))
            .env("OTCLIP_TEST_PORTS", format!("{},{},{}", ports[0], ports[1], ports[2]))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let children = vec![spawn("one", "one"), spawn("0", "two"), spawn("1", "two")];
    // 300 s for all three together.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    for child in children {
        let (ok, text) = finish_child(child, deadline.saturating_duration_since(std::time::Instant::now()));
        assert!(ok && text.contains("1 passed"), "a child failed or hung:\n{text}");
    }
    let diff = max_rel_diff(&parameters(&dir.path().join("two")), &parameters(&dir.path().join("one")));
    println!("clip+sigrot: two processes vs one device after 5 updates: parameters {diff:.1e}");
    assert!(diff < 1e-5, "two processes' parameters differ from one device's by {diff:e}");
}

/// One child of [`two_processes_match_one_device`]: `OTCLIP_TEST_ROLE` is `one` (a lone device)
/// or a node rank.
#[test]
#[ignore = "run by two_processes_match_one_device"]
fn node_f64() {
    let role = std::env::var("OTCLIP_TEST_ROLE").unwrap();
    let run = std::path::PathBuf::from(std::env::var("OTCLIP_TEST_RUN").unwrap());
    let ports: Vec<String> = std::env::var("OTCLIP_TEST_PORTS").unwrap().split(',').map(String::from).collect();
    let config = small_config("sigrot");
    let options = TrainOptions { quiet: true, max_steps: Some(5), ..Default::default() };
    let device = Default::default();
    let summary = match role.as_str() {
        "one" => train::<B>(&config, &run, &device, &options).unwrap(),
        rank => {
            let rank: usize = rank.parse().unwrap();
            if rank > 0 {
                // Node 0 creates the run folder and starts the orchestrator.
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            let nodes = Nodes { count: 2, rank, orchestrator: format!("127.0.0.1:{}", ports[0]), address: format!("127.0.0.1:{}", ports[1 + rank]) };
            train_on_nodes::<B>(&config, &run, &[device], &options, Some(&nodes)).unwrap()
        }
    };
    assert_eq!(summary.steps, 5);
}
