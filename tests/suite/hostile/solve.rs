//! `otclip ot solve` with solver parameters out of range and doctored `.npy` files.

use std::path::Path;

use super::{refused, s, snapshot, succeeded, unchanged};

/// A folder with a valid 4 × 3 cost.
fn problem() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let cost: Vec<f64> = (0..12).map(|i| (i % 5) as f64 / 5.0).collect();
    otclip::npy::write_f64(&dir.path().join("cost.npy"), &[4, 3], &cost).unwrap();
    dir
}

/// `ot solve` on the cost in `dir` with `extra` arguments; asserts the refusal, that the input
/// folder is unchanged and that no plan was written.
fn refuse(dir: &Path, cost: &str, extra: &[&str], needles: &[&str]) -> String {
    let before = snapshot(dir);
    let out = dir.join("plan.npy");
    let cost = dir.join(cost);
    let mut args = vec!["ot", "solve", "--cost", s(&cost), "--out", s(&out)];
    args.extend(extra);
    let stderr = refused(&args, needles);
    unchanged(dir, &before);
    stderr
}

#[test]
fn solver_parameters_out_of_range_are_errors_naming_the_flag() {
    let dir = problem();
    let cases: [(&[&str], &[&str]); 10] = [
        (&["--eps", "0"], &["--eps", "eps = 0"]),
        (&["--eps=-0.1"], &["--eps", "eps = -0.1"]),
        (&["--eps", "NaN"], &["--eps", "eps = NaN"]),
        (&["--eps", "1e-300"], &["--eps", "eps = 0.000"]),
        (&["--eps", "inf"], &["--eps", "eps = inf"]),
        (&["--eps", "0", "--solver", "reference"], &["--eps", "eps = 0"]),
        (&["--tau", "0"], &["--tau", "tau = 0"]),
        (&["--tau=-1"], &["--tau", "tau = -1"]),
        (&["--iters", "0"], &["--iters", "iterations = 0"]),
        (&["--tol", "NaN"], &["--tol", "tolerance = NaN"]),
    ];
    for (extra, needles) in cases {
        refuse(dir.path(), "cost.npy", extra, needles);
    }
    // The same problem with sane values solves, and its plan is finite.
    let out = dir.path().join("plan.npy");
    succeeded(&["ot", "solve", "--cost", s(&dir.path().join("cost.npy")), "--out", s(&out), "--solver", "reference", "--balanced"]);
    let plan = otclip::npy::read_matrix(&out).unwrap();
    assert!(plan.data.iter().all(|v| v.is_finite()));
}

/// A `.npy` file of `descr` and `shape` whose data is `data_bytes` long.
fn write_npy(path: &Path, descr: &str, shape: &str, data_bytes: usize) {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(vec![0u8; data_bytes]);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn npy_headers_are_checked_against_the_file_size_before_allocating() {
    let dir = problem();
    // 2^40 × 2^40 doubles: the header alone must not make otclip allocate.
    write_npy(&dir.path().join("huge.npy"), "<f8", "(1099511627776, 1099511627776)", 64);
    refuse(dir.path(), "huge.npy", &[], &["huge.npy", "(more than 2^64 elements)"]);
    write_npy(&dir.path().join("big.npy"), "<f8", "(100000, 100000)", 64);
    refuse(dir.path(), "big.npy", &[], &["big.npy", "[100000, 100000] (10000000000 elements)", "truncated"]);
    // A short file: 4 × 3 declared, 5 values present.
    write_npy(&dir.path().join("short.npy"), "<f8", "(4, 3)", 40);
    refuse(dir.path(), "short.npy", &[], &["short.npy", "truncated"]);
    write_npy(&dir.path().join("ints.npy"), "<i8", "(4, 3)", 96);
    refuse(dir.path(), "ints.npy", &[], &["ints.npy", "dtype <i8", "expected float32 or float64"]);
    write_npy(&dir.path().join("cube.npy"), "<f8", "(2, 2, 3)", 96);
    refuse(dir.path(), "cube.npy", &[], &["cube.npy", "expected a 2-D array"]);
    std::fs::write(dir.path().join("text.npy"), "not an array").unwrap();
    refuse(dir.path(), "text.npy", &[], &["text.npy", "not a .npy file"]);
    // A preamble declaring a 4 GB header (format 2.0) in a 20-byte file.
    let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
    bytes.extend(u32::MAX.to_le_bytes());
    bytes.extend(b"{'descr'");
    std::fs::write(dir.path().join("preamble.npy"), bytes).unwrap();
    refuse(dir.path(), "preamble.npy", &[], &["preamble.npy", "4294967295 bytes"]);
    write_npy(&dir.path().join("nan.npy"), "<f8", "(2, 2)", 0);
    let mut nan = std::fs::read(dir.path().join("nan.npy")).unwrap();
    nan.extend(f64::NAN.to_le_bytes().repeat(4));
    std::fs::write(dir.path().join("nan.npy"), nan).unwrap();
    refuse(dir.path(), "nan.npy", &[], &["nan.npy", "finite"]);
}

#[test]
fn marginal_files_are_checked_and_named() {
    let dir = problem();
    otclip::npy::write_f64(&dir.path().join("a_short.npy"), &[3], &[0.3, 0.3, 0.4]).unwrap();
    refuse(dir.path(), "cost.npy", &["--a", s(&dir.path().join("a_short.npy"))], &["a_short.npy", "length 4"]);
    otclip::npy::write_f64(&dir.path().join("a_negative.npy"), &[4], &[0.5, 0.5, 0.5, -0.5]).unwrap();
    refuse(dir.path(), "cost.npy", &["--a", s(&dir.path().join("a_negative.npy"))], &["a_negative.npy", "positive and finite"]);
    refuse(dir.path(), "cost.npy", &["--b", s(&dir.path().join("missing.npy"))], &["missing.npy", "cannot open"]);
}

#[test]
fn a_plan_that_cannot_be_written_names_the_output() {
    let dir = problem();
    let cost = dir.path().join("cost.npy");
    if Path::new("/dev/full").exists() {
        refused(&["ot", "solve", "--cost", s(&cost), "--out", "/dev/full"], &["cannot write /dev/full"]);
    }
    refused(&["ot", "solve", "--cost", s(&cost), "--out", s(&dir.path().join("no/such/folder/plan.npy"))], &["cannot write", "plan.npy"]);
}
