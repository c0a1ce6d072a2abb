//! No NaN or Inf at ε = 1e-3, with N = 1, or with identical embeddings — in the plan, the
//! SIGROT loss and its gradient, in f32.

use burn::backend::{Autodiff, NdArray};
use burn::prelude::*;
use otclip::loss::{sigrot_loss, sinkhorn, teacher_graph, uot_loss, GradMode, SinkhornConfig};
use otclip::model::l2_normalize;

type B = Autodiff<NdArray<f32>>;

fn finite<BB: Backend, const D: usize>(t: Tensor<BB, D>) -> bool {
    t.into_data().convert::<f32>().into_vec::<f32>().unwrap().iter().all(|v| v.is_finite())
}

fn check(x: Tensor<B, 2>, y: Tensor<B, 2>, eps: f64, label: &str) {
    let x = x.require_grad();
    let config = SinkhornConfig::new().with_eps(eps);
    let [n, _] = x.dims();
    let cost = x.clone().matmul(y.clone().transpose()).neg() + 1.0;
    let solved = sinkhorn(cost.reshape([1, n, n]), None, None, &config);
    assert!(finite(solved.plan.clone()), "{label}: plan");
    assert!(solved.marginal_error().is_finite(), "{label}: marginal error");
    let teacher = teacher_graph(x.clone().detach(), y.clone().detach());
    let loss = sigrot_loss(x.clone(), y.clone(), teacher, Tensor::from_floats([20.0], &x.device()), &config)
        + uot_loss(x.clone(), y.clone(), Tensor::from_floats([14.3], &x.device()), &config.clone().with_grad(GradMode::Detach));
    assert!(finite(loss.clone()), "{label}: loss");
    let grads = loss.backward();
    assert!(finite(x.grad(&grads).unwrap()), "{label}: gradient");
}

fn rows(n: usize, seed: usize) -> Tensor<B, 2> {
    let v: Vec<f32> = (0..n * 8).map(|k| (((k + seed) * 2654435761usize % 997) as f32 / 498.0) - 1.0).collect();
    l2_normalize(Tensor::<B, 1>::from_floats(v.as_slice(), &Default::default()).reshape([n, 8]))
}

#[test]
fn tiny_epsilon() {
    check(rows(16, 1), rows(16, 2), 1e-3, "eps 1e-3");
}

#[test]
fn one_pair() {
    check(rows(1, 1), rows(1, 2), 0.05, "N = 1");
    check(rows(1, 1), rows(1, 2), 1e-3, "N = 1, eps 1e-3");
}

#[test]
fn identical_embeddings() {
    let same = rows(1, 3).repeat_dim(0, 12);
    check(same.clone(), same.clone(), 0.05, "identical");
    check(same.clone(), same, 1e-3, "identical, eps 1e-3");
}
