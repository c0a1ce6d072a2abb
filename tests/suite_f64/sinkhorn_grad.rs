//! Gradient modes of the Sinkhorn solver: `unroll` against central finite differences,
//! `envelope` against the OT value's gradient, `detach` gives none, and how far `envelope` is
//! from `unroll` on the SIGROT loss.

use burn::backend::{Autodiff, NdArray};
use burn::prelude::*;
use crate::common::{max_rel_diff, to_f64};
use otclip::loss::{sigrot_loss, sinkhorn, teacher_graph, GradMode, SinkhornConfig};

type B = Autodiff<NdArray<f64>>;

fn cost_values(n: usize, m: usize) -> Vec<f64> {
    (0..n * m).map(|k| 1.0 - ((k * 7919 % 97) as f64 / 97.0 - 0.5) * 1.4).collect()
}

fn weights(n: usize, m: usize) -> Vec<f64> {
    (0..n * m).map(|k| ((k * 31 % 17) as f64 / 17.0) - 0.3).collect()
}

/// Σ W ⊙ (N·Γ(C)): a loss on the plan itself, like SIGROT.
fn plan_loss(cost: &[f64], n: usize, m: usize, config: &SinkhornConfig) -> f64 {
    let device = Default::default();
    let c = otclip::f64_tensor::<NdArray<f64>, 3>(cost, [1, n, m], &device);
    let w = otclip::f64_tensor::<NdArray<f64>, 3>(&weights(n, m), [1, n, m], &device);
    (sinkhorn(c, None, None, config).plan * w).sum().into_scalar()
}

fn autodiff_grad(cost: &[f64], n: usize, m: usize, config: &SinkhornConfig, value: bool) -> Vec<f64> {
    let device = Default::default();
    let c = otclip::f64_tensor::<B, 3>(cost, [1, n, m], &device).require_grad();
    let solved = sinkhorn(c.clone(), None, None, config);
    let objective = if value {
        solved.value().sum()
    } else {
        let w = otclip::f64_tensor::<B, 3>(&weights(n, m), [1, n, m], &device);
        (solved.plan * w).sum()
    };
    let grads = objective.backward();
    to_f64(c.grad(&grads).expect("the cost has a gradient"))
}

fn central_difference(cost: &[f64], h: f64, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    (0..cost.len())
        .map(|k| {
            let (mut up, mut down) = (cost.to_vec(), cost.to_vec());
            up[k] += h;
            down[k] -= h;
            (f(&up) - f(&down)) / (2.0 * h)
        })
        .collect()
}

#[test]
fn unroll_matches_finite_differences() {
    for tau in [Some(0.5), None] {
        let (n, m) = (3, 4);
        let cost = cost_values(n, m);
        let config = SinkhornConfig::new().with_eps(0.1).with_tau(tau).with_iterations(60);
        let grad = autodiff_grad(&cost, n, m, &config, false);
        let fd = central_difference(&cost, 1e-6, |c| plan_loss(c, n, m, &config));
        let error = max_rel_diff(&grad, &fd);
        eprintln!("unroll vs finite differences (tau {tau:?}): {error:.2e}");
        assert!(error < 1e-6, "tau {tau:?}: {error:e}");
    }
}

#[test]
fn envelope_gives_the_ot_value_gradient() {
    for tau in [Some(0.5), None] {
        let (n, m) = (4, 5);
        let cost = cost_values(n, m);
        let config = SinkhornConfig::new().with_eps(0.1).with_tau(tau).with_iterations(400);
        let envelope = autodiff_grad(&cost, n, m, &config.clone().with_grad(GradMode::Envelope), true);
        let value = |c: &[f64]| {
            let t = otclip::f64_tensor::<NdArray<f64>, 3>(c, [1, n, m], &Default::default());
            sinkhorn(t, None, None, &config.clone().with_grad(GradMode::Detach)).value().into_scalar()
        };
        let fd = central_difference(&cost, 1e-6, value);
        let error = max_rel_diff(&envelope, &fd);
        eprintln!("envelope vs d(OT value)/dC (tau {tau:?}): {error:.2e}");
        assert!(error < 1e-6, "tau {tau:?}: {error:e}");
        // Danskin: the gradient of the value is the plan itself.
        let t = otclip::f64_tensor::<NdArray<f64>, 3>(&cost, [1, n, m], &Default::default());
        let plan = to_f64(sinkhorn(t, None, None, &config).plan);
        assert!(max_rel_diff(&envelope, &plan) < 1e-9);
    }
}

#[test]
fn detach_gives_no_gradient() {
    let device = Default::default();
    let c = otclip::f64_tensor::<B, 3>(&cost_values(3, 3), [1, 3, 3], &device).require_grad();
    let x = c.clone() * 2.0;
    let solved = sinkhorn(x.clone(), None, None, &SinkhornConfig::new().with_grad(GradMode::Detach));
    let grads = (solved.plan.sum() + x.sum().mul_scalar(0.0)).backward();
    let grad = to_f64(c.grad(&grads).unwrap());
    assert!(grad.iter().all(|&g| g == 0.0), "{grad:?}");
}

/// SIGROT's loss depends on the plan, so `envelope` (potentials held fixed) is only an
/// approximation of `unroll` there. This measures how far apart they are on one batch.
#[test]
fn envelope_approximates_unroll_on_sigrot() {
    let device = Default::default();
    let n = 8;
    let rows = |seed: usize| {
        let v: Vec<f64> = (0..n * 6).map(|k| (((k + seed) * 2654435761usize % 1000) as f64 / 500.0) - 1.0).collect();
        let t = otclip::f64_tensor::<B, 2>(&v, [n, 6], &device);
        otclip::model::l2_normalize(t)
    };
    let teacher = teacher_graph(rows(11).detach(), rows(13).detach());
    let kappa = Tensor::<B, 1>::from_floats([20.0], &device);
    let grad_x = |mode: GradMode| {
        let x = rows(1).detach().require_grad();
        let loss = sigrot_loss(x.clone(), rows(5).detach(), teacher.clone(), kappa.clone(), &SinkhornConfig::new().with_grad(mode));
        to_f64(x.grad(&loss.backward()).unwrap())
    };
    let (unroll, envelope) = (grad_x(GradMode::Unroll), grad_x(GradMode::Envelope));
    let dot: f64 = unroll.iter().zip(&envelope).map(|(a, b)| a * b).sum();
    let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
    let cosine = dot / (norm(&unroll) * norm(&envelope));
    let relative = max_rel_diff(&envelope, &unroll);
    eprintln!("SIGROT d/dx, envelope vs unroll: cosine {cosine:.4}, max relative difference {relative:.3}");
    assert!(cosine > 0.5, "envelope points away from unroll: cosine {cosine}");
    assert!(relative > 1e-3, "envelope equals unroll ({relative:e}); the docs claim they differ");
}
