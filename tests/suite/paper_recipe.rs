//! The ViCLIP-OT recipe's optimiser: GradCache gives the gradient of the whole update, the
//! parameter groups have their own learning rates and weight decay, and clipping uses the global
//! norm.

use std::collections::BTreeMap;

use burn::backend::{Autodiff, NdArray};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use otclip::model::DualEncoder;
use otclip::train::optimizer::{clip_global_norm, param_classes, Group, GroupRates, GroupedAdamW, ParamClass};
use otclip::train::TrainConfig;
use otclip::SYNTHETIC_VI_CONFIG;

use crate::common::grad_check::{check_grad_cache, gradients_by_name, small_model, OBJECTIVES};
use crate::common::to_f64;

type B = Autodiff<NdArray<f32>>;

// burn draws dropout masks from one random generator per process, which the other tests of
// this binary draw from too: the GradCache checks seed it and replay the masks, so each runs
// alone in a child process. In f32 the two gradients differ by rounding only, which ndarray's
// and wgpu's reductions make vary from run to run (up to about 2e-4 per parameter, mostly under
// 1e-5); tests/suite_f64 checks exactness, to 1e-5, in f64.

#[test]
fn grad_cache_matches_the_direct_gradient_on_ndarray() {
    let out = crate::common::run_alone("paper_recipe::grad_cache_check_ndarray");
    assert!(out.contains("GradCache vs direct"), "{out}");
}

#[test]
#[ignore = "run alone by grad_cache_matches_the_direct_gradient_on_ndarray"]
fn grad_cache_check_ndarray() {
    check_grad_cache::<B>(&Default::default(), 5e-4, "ndarray f32", &OBJECTIVES, false);
}

#[cfg(feature = "wgpu")]
#[test]
fn grad_cache_matches_the_direct_gradient_on_wgpu() {
    if !crate::common::wgpu_available("the GradCache check on wgpu") {
        return;
    }
    let out = crate::common::run_alone("paper_recipe::grad_cache_check_wgpu");
    assert!(out.contains("GradCache vs direct"), "{out}");
}

/// On wgpu one objective: GradCache itself is the same code on every backend; what differs is
/// the backend's kernels, SIGROT's included (lavapipe is slow, so the others run on ndarray).
#[cfg(feature = "wgpu")]
#[test]
#[ignore = "run alone by grad_cache_matches_the_direct_gradient_on_wgpu"]
fn grad_cache_check_wgpu() {
    let device = burn::backend::wgpu::WgpuDevice::DefaultDevice;
    check_grad_cache::<Autodiff<otclip::backend::WgpuBackend>>(&device, 5e-4, "wgpu f32", &[("clip", "sigrot")], false);
}

/// Every float parameter's values by path.
fn values(model: &DualEncoder<B>) -> BTreeMap<String, Vec<f64>> {
    struct Collect(Vec<Vec<f64>>);
    impl ModuleVisitor<B> for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0.push(to_f64(param.val()));
        }
    }
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    param_classes(model).into_iter().map(|(_, _, name)| name).zip(collect.0).collect()
}

/// A gradient of `value` for every parameter of `model`.
fn constant_grads(model: &DualEncoder<B>, value: f32) -> GradientsParams {
    struct Fill(GradientsParams, f32);
    impl ModuleVisitor<B> for Fill {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let grad = param.val().inner().ones_like().mul_scalar(self.1);
            self.0.register::<NdArray<f32>, D>(param.id, grad);
        }
    }
    let mut fill = Fill(GradientsParams::new(), value);
    model.visit(&mut fill);
    fill.0
}

fn optim(extra: &[&str]) -> otclip::train::config::OptimSection {
    let sets: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    TrainConfig::parse(SYNTHETIC_VI_CONFIG, "synthetic_vi.toml", &sets).unwrap().optim
}

#[test]
fn parameters_fall_into_the_recipe_groups() {
    let model = small_model::<B>(0.0, &Default::default());
    let classes: BTreeMap<String, ParamClass> = param_classes(&model).into_iter().map(|(_, class, name)| (name, class)).collect();
    let class = |name: &str| *classes.get(name).unwrap_or_else(|| panic!("no parameter {name}; have {:?}", classes.keys()));
    let (backbone, head) = (|decay| ParamClass { group: Group::Backbone, decay }, |decay| ParamClass { group: Group::Head, decay });
    for (name, expected) in [
        ("vision_model.embeddings.cls_token", backbone(false)),
        ("vision_model.embeddings.position_embeddings", backbone(false)),
        ("vision_model.embeddings.patch_embeddings.projection.weight", backbone(true)),
        ("vision_model.layernorm.gamma", backbone(false)),
        ("text_model.embeddings.word_embeddings.weight", backbone(false)),
        ("text_model.embeddings.layer_norm.beta", backbone(false)),
        ("text_model.encoder.layer.0.attention.self_attention.query.weight", backbone(true)),
        ("text_model.encoder.layer.0.attention.self_attention.query.bias", backbone(false)),
        ("visual_mlp.fc1.weight", head(true)),
        ("visual_mlp.fc2.weight", head(true)),
        ("text_projection.weight", head(true)),
        ("text_projection.bias", head(false)),
        ("logit_scale", head(false)),
        ("logit_bias", head(false)),
    ] {
        assert_eq!(class(name), expected, "{name}");
    }
}

#[test]
fn each_group_has_its_own_rate_and_only_weights_decay() {
    let device = Default::default();
    let model = small_model::<B>(0.0, &device);
    let before = values(&model);
    let classes: BTreeMap<String, ParamClass> = param_classes(&model).into_iter().map(|(_, class, name)| (name, class)).collect();

    // Zero gradients: Adam moves nothing, so only the decoupled decay θ·(1 − lr·wd) acts.
    let rates = GroupRates { backbone: 0.1, head: 0.2 };
    let mut grouped = GroupedAdamW::new(&model, &optim(&["optim.weight_decay=0.5"]));
    let decayed = values(&grouped.step(rates, model.clone(), constant_grads(&model, 0.0)));
    for (name, class) in &classes {
        let lr = if class.group == Group::Backbone { rates.backbone } else { rates.head };
        let factor = if class.decay { 1.0 - lr * 0.5 } else { 1.0 };
        let expected: Vec<f64> = before[name].iter().map(|v| v * factor).collect();
        let diff = crate::common::max_rel_diff(&decayed[name], &expected);
        assert!(diff < 1e-5, "{name} ({class:?}): decayed by other than {factor} (relative difference {diff:e})");
    }

    // Equal gradients and no decay: Adam's first step moves every element by about its group's rate.
    let mut grouped = GroupedAdamW::new(&model, &optim(&["optim.weight_decay=0"]));
    let stepped = values(&grouped.step(GroupRates { backbone: 1e-3, head: 1e-2 }, model.clone(), constant_grads(&model, 0.5)));
    for (name, class) in &classes {
        let lr = if class.group == Group::Backbone { 1e-3 } else { 1e-2 };
        for (after, before) in stepped[name].iter().zip(&before[name]) {
            assert!(((before - after) - lr).abs() < lr * 1e-3, "{name}: moved by {} where its group's rate is {lr}", before - after);
        }
    }
}

#[test]
fn clipping_scales_to_the_global_norm() {
    let model = small_model::<B>(0.0, &Default::default());
    let count: usize = values(&model).values().map(Vec::len).sum();
    let mut grads = constant_grads(&model, 0.5);
    let norm = clip_global_norm(&model, &mut grads, Some(1.0));
    assert!((norm - 0.5 * (count as f64).sqrt()).abs() < 1e-3 * norm, "pre-clip norm {norm} for {count} gradients of 0.5");
    let clipped: f64 = gradients_by_name(&model, &grads).values().flatten().map(|g| g * g).sum::<f64>().sqrt();
    assert!((clipped - 1.0).abs() < 1e-4, "clipped norm {clipped}");
    // Under the limit nothing changes.
    let mut small = constant_grads(&model, 1e-4);
    clip_global_norm(&model, &mut small, Some(1.0));
    assert!(gradients_by_name(&model, &small).values().flatten().all(|g| (g - 1e-4).abs() < 1e-9));
}

#[test]
fn one_cycle_follows_pytorch_linear_warmup_then_onecycle() {
    use otclip::train::{OneCycleConfig, Schedule};
    let config = OneCycleConfig { warmup_epochs: 2, warmup_start_factor: 0.01, pct_start: 0.3, div_factor: 25.0, final_div_factor: 1e4 };
    let (lr, warmup_steps, total_steps) = (2e-4, 20, 120);
    let schedule = Schedule::OneCycle { lr, warmup_steps, total_steps, config };
    let at = |step| schedule.at(step);
    // LinearLR(start_factor=0.01, total_iters=20): 0.01·lr, rising by 0.99·lr/20 per step.
    assert!((at(0) - 0.01 * lr).abs() < 1e-12 && (at(10) - (0.01 + 0.99 * 0.5) * lr).abs() < 1e-12);
    // OneCycleLR over the other 100 steps: lr/25 at its first, lr at step 0.3·100 − 1 = 29,
    // lr/25/1e4 at its last, cosine between.
    let cycle = |k: usize| at(warmup_steps + k);
    assert!((cycle(0) - lr / 25.0).abs() < 1e-15, "{}", cycle(0));
    assert!((cycle(29) - lr).abs() < 1e-15, "{}", cycle(29));
    assert!((cycle(99) - lr / 25.0 / 1e4).abs() < 1e-15, "{}", cycle(99));
    // PyTorch's _annealing_cos(start, end, pct) = end + (start − end)/2 · (cos(π·pct) + 1).
    let anneal = |start: f64, end: f64, pct: f64| end + (start - end) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0);
    assert!((cycle(14) - anneal(lr / 25.0, lr, 14.0 / 29.0)).abs() < 1e-15);
    assert!((cycle(60) - anneal(lr, lr / 25.0 / 1e4, 31.0 / 70.0)).abs() < 1e-15);
    assert!((1..29).all(|k| cycle(k) > cycle(k - 1)) && (30..100).all(|k| cycle(k) < cycle(k - 1)));
}

#[test]
fn recipe_keys_are_checked() {
    let parse = |set: &str| TrainConfig::parse(SYNTHETIC_VI_CONFIG, "mine.toml", &[set.to_string()]).map(|_| ()).unwrap_err().to_string();
    let chain = |set: &str| format!("{:#}", TrainConfig::parse(SYNTHETIC_VI_CONFIG, "mine.toml", &[set.to_string()]).map(|_| ()).unwrap_err());
    assert!(chain("optim.chunk_size=0").contains("optim.chunk_size = 0: expected at least 1 pair"), "{}", chain("optim.chunk_size=0"));
    assert!(chain("optim.clip_norm=-1").contains("optim.clip_norm = -1"), "{}", chain("optim.clip_norm=-1"));
    assert!(parse("optim.chunk_size=\"big\"").contains("mine.toml"), "{}", parse("optim.chunk_size=\"big\""));
    assert!(chain("train.keep_best=0").contains("train.keep_best = 0"), "{}", chain("train.keep_best=0"));
    // `--set` creates an optional table the file leaves out; a misspelt one is still refused.
    let config = TrainConfig::parse(SYNTHETIC_VI_CONFIG, "mine.toml", &["train.checkpoint_every_steps=5".into()]).unwrap();
    assert_eq!((config.train.checkpoint_every_steps, config.train.keep_best), (Some(5), 1));
    assert!(chain("trian.keep_best=2").contains("unknown config key `trian`"), "{}", chain("trian.keep_best=2"));
}

#[test]
fn the_small_recipe_trains_with_grad_cache_groups_and_clipping() {
    let text = std::fs::read_to_string("configs/viclip_ot_small.toml").unwrap();
    let sets: Vec<String> = [
        "data.synthetic.train_images=16",
        "data.synthetic.val_images=8",
        "data.synthetic.test_images=8",
        "optim.epochs=2",
        "optim.batch_size=8",
        "optim.chunk_size=12",
        "eval.batch_size=8",
    ]
    .map(String::from)
    .to_vec();
    let config = TrainConfig::parse(&text, "viclip_ot_small.toml", &sets).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let quiet = otclip::train::TrainOptions { quiet: true, ..Default::default() };
    let summary = otclip::train::train::<B>(&config, &dir.path().join("run"), &Default::default(), &quiet).unwrap();
    assert_eq!(summary.steps, 4, "16 images an epoch in updates of 8 (40 pairs), two epochs");
    let metrics = std::fs::read_to_string(dir.path().join("run/metrics.jsonl")).unwrap();
    let steps: Vec<serde_json::Value> = metrics.lines().map(|l| serde_json::from_str(l).unwrap()).filter(|v: &serde_json::Value| v.get("loss").is_some()).collect();
    assert_eq!(steps.len(), 4);
    for step in &steps {
        let (lr, head_lr, norm) = (step["lr"].as_f64().unwrap(), step["head_lr"].as_f64().unwrap(), step["grad_norm"].as_f64().unwrap());
        assert!((head_lr / lr - 4.0).abs() < 1e-9, "head_lr {head_lr} is not 4 × lr {lr}");
        assert!(norm.is_finite() && norm > 0.0, "grad_norm {norm}");
        assert!(step["loss"].as_f64().unwrap().is_finite());
    }
    // One warm-up epoch (two steps) from 0.01·lr, then a cycle of two steps.
    let lrs: Vec<f64> = steps.iter().map(|s| s["lr"].as_f64().unwrap()).collect();
    let config = config.optim.one_cycle.unwrap();
    let expected: Vec<f64> = (0..4).map(|step| otclip::train::Schedule::OneCycle { lr: 5e-4, warmup_steps: 2, total_steps: 4, config }.at(step)).collect();
    assert!((lrs[0] - 5e-6).abs() < 1e-15 && (lrs[1] - 5e-4 * (0.01 + 0.99 / 2.0)).abs() < 1e-15, "{lrs:?}");
    assert!(lrs.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-15), "{lrs:?} vs {expected:?}");
}
