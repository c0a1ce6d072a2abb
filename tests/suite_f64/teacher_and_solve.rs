//! The teacher file format round trip and its errors, and `otclip ot solve` against POT.

use crate::common;

use crate::common::{fixture, max_rel_diff, read_json};
use otclip::data::synthetic::{generate, SyntheticConfig};
use otclip::data::{teacher, Split};
use otclip::loss::{GradMode, SinkhornConfig, SolverPath};
use otclip::app::ot_solve::SolveTask;
use otclip::DeviceSpec;

#[test]
fn teacher_files_round_trip_and_name_their_problems() {
    let split = generate(&SyntheticConfig::new().with_train_images(12).with_image_size(16), Split::Train).unwrap();
    let rows = split.dataset.teacher.clone().expect("the synthetic dataset has a built-in teacher");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("teacher.safetensors");
    teacher::save(&path, &split.dataset, &rows, "builtin").unwrap();
    let loaded = teacher::load(&path, &split.dataset).unwrap().rows;
    assert_eq!(loaded.len(), 12);
    for (a, b) in loaded.iter().zip(&rows) {
        assert_eq!(a.captions.len(), 5);
        let diff = a.image.iter().chain(a.captions.iter().flatten()).zip(b.image.iter().chain(b.captions.iter().flatten()));
        assert!(diff.map(|(x, y)| (x - y).abs()).fold(0f32, f32::max) < 1e-6);
    }

    // A dataset with an image the file lacks.
    let mut other = split.dataset.clone();
    other.entries[3].key = "999".into();
    let err = teacher::load(&path, &other).unwrap_err().to_string();
    assert!(err.contains("teacher.safetensors") && err.contains("1 of the dataset's 12 images (ids 999)"), "{err}");
    // A dataset with a caption the file lacks.
    let mut other = split.dataset.clone();
    other.entries[0].captions[2] = "một câu khác".into();
    let err = teacher::load(&path, &other).unwrap_err().to_string();
    assert!(err.contains("no teacher row for 1 captions (matched by text): 0: \"một câu khác\""), "{err}");
    // Not a safetensors file.
    std::fs::write(&path, b"garbage").unwrap();
    let err = teacher::load(&path, &split.dataset).unwrap_err().to_string();
    assert!(err.contains("is not a safetensors file"), "{err}");
}

#[test]
fn ot_solve_writes_the_scaled_pot_plan() {
    let manifest = read_json("sinkhorn/manifest.json");
    let case = manifest["cases"].as_array().unwrap().iter().find(|c| c["name"] == "uot_n64_eps0.05").unwrap();
    let dir = fixture("sinkhorn");
    let file = |key: &str| dir.join(case["files"][key].as_str().unwrap());
    let (cost, n, m) = common::cost_from_npy(&file("x"), &file("y"));
    let tmp = tempfile::tempdir().unwrap();
    let cost_path = tmp.path().join("C.npy");
    otclip::npy::write_f64(&cost_path, &[n, m], &cost).unwrap();
    let out = tmp.path().join("P.npy");
    // The fused kernel path (the default) and the tensor-op reference give POT's plan, and so
    // the same plan.
    let mut plans = Vec::new();
    for solver in [SolverPath::Fused, SolverPath::Reference] {
        let config = SinkhornConfig::new().with_eps(0.05).with_tau(Some(0.5)).with_iterations(200).with_grad(GradMode::Detach).with_solver(solver);
        let task = SolveTask { cost: cost_path.clone(), a: None, b: None, config, out: out.clone() };
        let summary = task.run_on(DeviceSpec::NdArray, true).unwrap();
        assert_eq!((summary.n, summary.m, summary.iterations, summary.solver), (64, 64, 200, solver));
        let plan = otclip::npy::read_matrix(&out).unwrap();
        let reference: Vec<f64> = otclip::npy::read_matrix(&file("plan")).unwrap().data.iter().map(|v| v * n as f64).collect();
        let error = max_rel_diff(&plan.data, &reference);
        assert!(error < 1e-10, "ot solve ({solver:?}) vs POT: {error:e}");
        plans.push(plan.data);
    }
    let error = max_rel_diff(&plans[0], &plans[1]);
    assert!(error < 1e-12, "ot solve: fused vs reference {error:e}");

    // A marginal of the wrong length is refused, naming the file.
    let bad = tmp.path().join("a.npy");
    otclip::npy::write_f64(&bad, &[3], &[0.2, 0.3, 0.5]).unwrap();
    let task = SolveTask { cost: cost_path, a: Some(bad), b: None, config: SinkhornConfig::new(), out };
    let err = task.run_on(DeviceSpec::NdArray, true).unwrap_err().to_string();
    assert!(err.contains("a.npy") && err.contains("length 64"), "{err}");
}
