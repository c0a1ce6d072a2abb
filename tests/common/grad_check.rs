//! GradCache against backpropagating through the whole update at once: the same gradient for
//! every parameter, for every objective, with dropout on. Shared by the f32 and f64 suites.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Distribution;
use otclip::data::Batch;
use otclip::kernels::SinkhornBackend;
use otclip::loss::{objective_loss, LossConfig};
use otclip::model::{BertConfig, DualEncoder, DualEncoderConfig, HeadConfig, HeadKind, TextBatch, VitConfig};
use otclip::train::grad_cache::{update_gradients, Encoding};
use otclip::train::optimizer::param_classes;
use otclip::train::TrainConfig;
use otclip::SYNTHETIC_VI_CONFIG;

use super::{max_rel_diff, to_f64};


/// The objectives GradCache must reproduce, as `loss.contrastive` and `loss.transport`.
pub const OBJECTIVES: [(&str, &str); 6] =
    [("clip", "none"), ("siglip", "none"), ("clip", "sigrot"), ("siglip", "sigrot"), ("clip", "uot"), ("none", "sigrot")];

/// The `[loss]` section of the flagship config with another objective and `tau`.
pub fn loss_config(contrastive: &str, transport: &str, tau: Option<f64>) -> LossConfig {
    let mut sets = vec![format!("loss.contrastive={contrastive}"), format!("loss.transport={transport}")];
    sets.extend(tau.map(|tau| format!("loss.sinkhorn.tau={tau}")));
    TrainConfig::parse(SYNTHETIC_VI_CONFIG, "synthetic_vi.toml", &sets).unwrap().loss
}

/// A small dual encoder with dropout `dropout` in both towers.
pub fn small_model<B: Backend>(dropout: f64, device: &B::Device) -> DualEncoder<B> {
    let vision = VitConfig::new(16, 8, 32, 1, 2, 64).with_hidden_dropout_prob(dropout);
    let text = BertConfig::new(40, 32, 1, 2, 64).with_hidden_dropout_prob(dropout);
    // An MLP image head with dropout and a linear text head with a bias, so that the checks
    // cover the heads' layers and their dropout too.
    let image_head = HeadConfig::new().with_kind(HeadKind::Mlp).with_dropout(dropout);
    let text_head = HeadConfig::new().with_bias(true);
    DualEncoderConfig::new(vision.into(), text, 16).with_image_head(image_head).with_text_head(text_head).init(device)
}

/// An update of `n` pairs: random pixels, token ids and teacher rows; images 0 and 2 have two
/// captions each, so the targets are multi-positive.
pub fn small_batch<B: Backend>(n: usize, device: &B::Device) -> Batch<B> {
    let tokens = 6;
    let ids: Vec<i64> = (0..n * tokens).map(|k| ((k * 7 + 3) % 37 + 1) as i64).collect();
    let mask: Vec<i64> = (0..n * tokens).map(|k| i64::from(k % tokens < tokens - k / tokens % 3)).collect();
    let teacher = || {
        let rows = Tensor::<B, 2>::random([n, 12], Distribution::Normal(0.0, 1.0), device);
        rows.clone() / rows.powi_scalar(2).sum_dim(1).sqrt()
    };
    let image_ids: Vec<u64> = (0..n as u64).map(|i| if i == 1 { 0 } else if i == 3 { 2 } else { i }).collect();
    Batch {
        pixel_values: Tensor::random([n, 3, 16, 16], Distribution::Normal(0.0, 1.0), device),
        text: TextBatch {
            input_ids: Tensor::<B, 1, Int>::from_ints(ids.as_slice(), device).reshape([n, tokens]),
            attention_mask: Tensor::<B, 1, Int>::from_ints(mask.as_slice(), device).reshape([n, tokens]),
        },
        image_ids,
        teacher: Some((teacher(), teacher())),
    }
}

/// Every parameter's gradient by its path (absent: the loss does not reach it).
pub fn gradients_by_name<B: AutodiffBackend>(model: &DualEncoder<B>, grads: &GradientsParams) -> BTreeMap<String, Vec<f64>> {
    struct Collect<'a> {
        grads: &'a GradientsParams,
        found: Vec<Option<Vec<f64>>>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.found.push(self.grads.get::<B::InnerBackend, D>(param.id).map(to_f64));
        }
    }
    let mut collect = Collect { grads, found: Vec::new() };
    model.visit(&mut collect);
    let names = param_classes(model).into_iter().map(|(_, _, name)| name);
    names.zip(collect.found).filter_map(|(name, grad)| grad.map(|g| (name, g))).collect()
}

/// The largest relative difference (in norm) over every parameter between GradCache (chunks of 2 of an
/// update of 8) and one backward through the same chunks, with the same dropout; panics when a
/// parameter has a gradient on one side only.
pub fn grad_cache_difference<B: AutodiffBackend + SinkhornBackend>(model: &DualEncoder<B>, batch: &Batch<B>, loss: &LossConfig, direct_chunk: usize) -> f64 {
    let run = |encoding: Encoding| {
        let update = update_gradients(model, batch.clone(), encoding, |chunk| 1000 + chunk as u64, |inputs| objective_loss(inputs, loss, false)).unwrap();
        (update.terms.total.into_scalar().elem::<f64>(), gradients_by_name(model, &update.grads))
    };
    let (direct_loss, direct) = run(Encoding::whole(direct_chunk));
    let (cached_loss, cached) = run(Encoding::chunked(2));
    assert!((direct_loss - cached_loss).abs() <= 1e-6 * direct_loss.abs().max(1.0), "loss {direct_loss} vs {cached_loss}");
    assert_eq!(direct.keys().collect::<Vec<_>>(), cached.keys().collect::<Vec<_>>(), "different parameters got gradients");
    assert!(direct.len() > 20, "only {} parameters got a gradient", direct.len());
    // ‖cached − direct‖ / ‖direct‖ per parameter, with ‖direct‖ at least 1% of the largest
    // parameter's: some gradients are zero in exact arithmetic (a key bias shifts every score of
    // a query alike, which the softmax ignores) and hold only rounding noise.
    let norm = |g: &[f64]| g.iter().map(|v| v * v).sum::<f64>().sqrt();
    let model_scale = direct.values().map(|g| norm(g)).fold(0f64, f64::max);
    let relative = |name: &String| {
        let difference: Vec<f64> = direct[name].iter().zip(&cached[name]).map(|(a, b)| a - b).collect();
        norm(&difference) / norm(&direct[name]).max(0.01 * model_scale)
    };
    let (name, worst) = direct.keys().map(|name| (name, relative(name))).fold((None, 0.0), |(n, w), (name, d)| if d > w { (Some(name), d) } else { (n, w) });
    if let Some(name) = name {
        println!("  worst: {name} (|direct| {:.3e}, |cached| {:.3e})", norm(&direct[name]), norm(&cached[name]));
    }
    worst
}

/// GradCache against the direct gradient for `objectives` (dropout 0.1; with `balanced`, also
/// balanced SIGROT), and, without dropout, against one chunk holding the whole update; each
/// within `tolerance`. Balanced OT's gradient carries about 5e-4 of rounding in f32 on either
/// path, so only the f64 check includes it.
pub fn check_grad_cache<B: AutodiffBackend + SinkhornBackend>(device: &B::Device, tolerance: f64, label: &str, objectives: &[(&str, &str)], balanced: bool) {
    B::seed(device, 5);
    let batch = small_batch::<B>(8, device);
    let with_dropout = small_model::<B>(0.1, device);
    // The dropout is live: another seed gives other embeddings.
    let embed = |seed: u64| {
        B::seed(device, seed);
        to_f64(with_dropout.encode_image(batch.pixel_values.clone()))
    };
    assert!(max_rel_diff(&embed(1), &embed(2)) > 1e-3, "{label}: dropout 0.1 changed nothing");
    let cases = objectives.iter().map(|&(c, t)| (c, t, Some(0.5))).chain(balanced.then_some(("clip", "sigrot", None)));
    for (contrastive, transport, tau) in cases {
        let loss = loss_config(contrastive, transport, tau);
        let worst = grad_cache_difference(&with_dropout, &batch, &loss, 2);
        let tau = tau.map_or("balanced".to_string(), |t| format!("tau {t}"));
        println!("{label} {contrastive}+{transport} ({tau}), dropout 0.1: GradCache vs direct, max relative difference {worst:.2e}");
        assert!(worst <= tolerance, "{label} {contrastive}+{transport} ({tau}): GradCache differs by {worst:e} (relative) > {tolerance:e}");
    }
    // Without dropout, against one chunk holding the whole update: the towers now batch the
    // pairs differently, so the embeddings agree only to rounding, which the transport plan
    // passes on.
    let without_dropout = small_model::<B>(0.0, device);
    for (contrastive, transport) in [("clip", "none"), ("clip", "sigrot")] {
        let worst = grad_cache_difference(&without_dropout, &batch, &loss_config(contrastive, transport, Some(0.5)), 8);
        println!("{label} {contrastive}+{transport} (tau 0.5), no dropout: GradCache vs whole update, max relative difference {worst:.2e}");
        assert!(worst <= tolerance, "{label} {contrastive}+{transport}: GradCache vs one chunk differs by {worst:e} > {tolerance:e}");
    }
}
