//! GradCache gives the gradient of the whole update, in f64 on ndarray (see
//! `tests/common/grad_check.rs`).

use burn::backend::{Autodiff, NdArray};

use crate::common::grad_check::{check_grad_cache, OBJECTIVES};

/// Alone in a child process: burn's random generator is one per process (see `run_alone`).
#[test]
fn grad_cache_matches_the_direct_gradient_in_f64() {
    let out = crate::common::run_alone("grad_cache_f64::grad_cache_check_f64");
    assert!(out.contains("GradCache vs direct"), "{out}");
}

#[test]
#[ignore = "run alone by grad_cache_matches_the_direct_gradient_in_f64"]
fn grad_cache_check_f64() {
    check_grad_cache::<Autodiff<NdArray<f64>>>(&Default::default(), 1e-5, "ndarray f64", &OBJECTIVES, true);
}
