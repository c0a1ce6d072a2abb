//! The convolutional towers against torchvision and timm (tools/gen_convnet_fixtures.py): tiny
//! random ResNets, MobileNetV2, EfficientNets and Swin-T as each library writes them (zip and legacy
//! `.pth`, safetensors), their pooled features in eval and in train mode, and the running
//! statistics after one train-mode batch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::backend::NdArray;
use burn::prelude::*;
use burn::tensor::TensorData;
use burn_store::ModuleSnapshot;
use otclip::model::batch_norm::BatchNormMode;
use otclip::model::convnet::presets::{ConvFamily, ConvPreset, ConvSource};
use otclip::model::convnet::{ConvArch, ConvNet, ConvNetConfig, ConvTower, ResNetBlock, ResNetConfig, SwinConfig, SwinSmallMaps};
use otclip::weights::{load_conv_tower, read_tensors, LoadReport};
use serde_json::Value;

use crate::common;


type B = NdArray<f32>;

pub const CASES: [&str; 9] = [
    "tv_resnet_bottleneck",
    "tv_resnet_basic",
    "tv_mobilenet_v2",
    "tv_efficientnet_b0",
    "timm_efficientnet_b0",
    "timm_tf_efficientnet_b0",
    "timm_efficientnet_lite0",
    "tv_swin_t",
    "timm_swin_tiny",
];

/// A fixture: where its weights are, the tower config it describes, and its reference tensors.
pub struct Case {
    pub name: &'static str,
    pub weights: PathBuf,
    pub source: ConvSource,
    pub config: ConvNetConfig,
    pub reference: BTreeMap<String, TensorData>,
}

pub fn case(name: &'static str) -> Case {
    let dir = common::fixture(&format!("convnets/{name}"));
    let arch: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("arch.json")).unwrap()).unwrap();
    let source = match arch["source"].as_str().unwrap() {
        "torchvision" => ConvSource::Torchvision,
        "timm" => ConvSource::Timm,
        other => panic!("{name}: unknown source {other}"),
    };
    let number = |key: &str| arch[key].as_f64();
    let sizes = |key: &str| arch[key].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect::<Vec<_>>();
    let image_size = sizes("image_size")[0];
    let arch = match arch["name"].as_str().unwrap() {
        "swin_transformer" | "swin_tiny_patch4_window7_224" => {
            let small_maps = if source == ConvSource::Torchvision { SwinSmallMaps::Pad } else { SwinSmallMaps::Shrink };
            let window = arch["window_size"].as_array().map_or_else(|| arch["window_size"].as_u64().unwrap(), |w| w[0].as_u64().unwrap());
            ConvArch::Swin(SwinConfig::new(arch["embed_dim"].as_u64().unwrap() as usize, sizes("depths"), sizes("num_heads"), small_maps).with_window_size(window as usize))
        }
        "resnet" => {
            let block = if arch["block"] == "basic" { ResNetBlock::Basic } else { ResNetBlock::Bottleneck };
            let layers: Vec<usize> = arch["layers"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
            ConvArch::ResNet(ResNetConfig::new(block, layers.try_into().unwrap()).with_width(arch["width"].as_u64().unwrap() as usize))
        }
        family => {
            let width = number("width_mult").or(number("channel_multiplier")).unwrap_or(1.0);
            let depth = number("depth_mult").or(number("depth_multiplier")).unwrap_or(1.0);
            ConvPreset::new(family.parse::<ConvFamily>().unwrap(), source).with_multipliers(width, depth).arch().unwrap()
        }
    };
    let weights = ["model.pth", "model.safetensors"].iter().map(|f| dir.join(f)).find(|p| p.is_file()).unwrap();
    let config = ConvNetConfig::new(arch).with_batch_norm(BatchNormMode::Train).with_image_size(image_size);
    Case { name, weights, source, config, reference: read_tensors(&dir.join("reference.safetensors")).unwrap() }
}

pub fn tensor<Bk: Backend, const D: usize>(data: &TensorData, device: &Bk::Device) -> Tensor<Bk, D> {
    Tensor::from_data(data.clone(), device)
}

/// The largest difference, relative to the reference value where that is above 1 (the pooled
/// features of a random network reach 100).
pub fn max_diff<Bk: Backend>(ours: Tensor<Bk, 2>, reference: &TensorData) -> f32 {
    let ours = ours.into_data().convert::<f32>();
    assert_eq!(ours.shape, reference.shape, "shapes differ");
    let (a, b) = (ours.as_slice::<f32>().unwrap(), reference.as_slice::<f32>().unwrap());
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / y.abs().max(1.0)).fold(0.0, f32::max)
}

fn load(case: &Case, weights: &Path) -> (ConvTower<B>, LoadReport) {
    load_conv_tower::<B>(&case.config, case.source, weights, false, &Default::default()).unwrap_or_else(|e| panic!("{}: {e:#}", case.name))
}

/// Every running statistic of a tower, by otclip path.
pub fn running_stats<Bk: Backend>(tower: &ConvTower<Bk>) -> BTreeMap<String, Vec<f32>> {
    let snapshots = match &tower.net {
        ConvNet::ResNet(net) => net.collect(None, None, false),
        ConvNet::MbConv(net) => net.collect(None, None, false),
        ConvNet::Swin(_) => Vec::new(),
    };
    snapshots
        .into_iter()
        .filter(|s| s.full_path().ends_with("running_mean") || s.full_path().ends_with("running_var"))
        .map(|s| (s.full_path(), s.to_data().unwrap().convert::<f32>().into_vec::<f32>().unwrap()))
        .collect()
}

/// The running statistics PyTorch had after one train-mode batch, by otclip path.
pub fn expected_running_stats(case: &Case) -> BTreeMap<String, Vec<f32>> {
    let dir = tempfile::tempdir().unwrap();
    running_stats(&load(case, &checkpoint_after_train(case, dir.path())).0)
}

/// Whether every running statistic is within 1e-4 (relative above 1) of PyTorch's; the worst.
pub fn compare_running_stats(updated: &BTreeMap<String, Vec<f32>>, expected: &BTreeMap<String, Vec<f32>>) -> Result<f32, String> {
    if updated.len() != expected.len() || updated.len() < 10 {
        return Err(format!("{} running statistics, expected {}", updated.len(), expected.len()));
    }
    let mut worst = 0f32;
    for (path, want) in expected {
        let got = &updated[path];
        let diff = got.iter().zip(want).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0.0, f32::max);
        if diff > 1e-4 {
            return Err(format!("{path} differs by {diff} after one train-mode batch"));
        }
        worst = worst.max(diff);
    }
    Ok(worst)
}

/// The case's checkpoint with its running statistics replaced by the reference's after one
/// train-mode batch, written as safetensors.
fn checkpoint_after_train(case: &Case, dir: &Path) -> PathBuf {
    let mut tensors = read_tensors(&case.weights).unwrap();
    for (key, data) in &case.reference {
        if let Some(key) = key.strip_prefix("after_train.") {
            assert!(tensors.contains_key(key), "{}: reference statistic {key} is not in the checkpoint", case.name);
            tensors.insert(key.to_string(), data.clone());
        }
    }
    let owned: Vec<(String, Vec<u8>, Vec<usize>, safetensors::Dtype)> = tensors
        .into_iter()
        .map(|(key, data)| {
            let shape = data.shape.clone().into();
            if data.dtype.is_float() {
                (key, data.convert::<f32>().into_vec::<f32>().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect(), shape, safetensors::Dtype::F32)
            } else {
                (key, data.convert::<i64>().into_vec::<i64>().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect(), shape, safetensors::Dtype::I64)
            }
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> =
        owned.iter().map(|(k, b, s, d)| (k.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap())).collect();
    let path = dir.join("after_train.safetensors");
    safetensors::serialize_to_file(views, None, &path).unwrap();
    path
}

#[test]
fn every_tower_matches_its_library_in_eval_and_train_mode() {
    let device = Default::default();
    for name in CASES {
        let case = case(name);
        let (tower, report) = load(&case, &case.weights);
        assert!(report.missing.is_empty() && report.unused.is_empty(), "{name}: {report}");
        let skipped = |k: &String| ["fc.", "classifier.", "head."].iter().any(|p| k.starts_with(p)) || k.ends_with("relative_position_index");
        assert!(report.ignored.iter().all(skipped), "{name}: {report}");
        let pixels: Tensor<B, 4> = tensor(&case.reference["pixels"], &device);

        let (eval, stats) = tower.forward_with(pixels.clone(), false);
        assert!(!stats.uses_batch_statistics());
        let eval_diff = max_diff(eval, &case.reference["eval_pooled"]);
        let (train, stats) = tower.forward_with(pixels, true);
        let train_diff = max_diff(train, &case.reference["train_pooled"]);
        eprintln!("{name}: pooled features differ by {eval_diff:e} (eval), {train_diff:e} (train); {} BatchNorm layers", stats.len());
        assert!(eval_diff <= 1e-4 && train_diff <= 1e-4, "{name}: eval {eval_diff}, train {train_diff}");

        if matches!(case.config.arch, ConvArch::Swin(_)) {
            assert!(stats.is_empty(), "{name}: Swin has no BatchNorm");
            continue;
        }
        // The running statistics after that batch: PyTorch's momentum and unbiased variance.
        let worst = compare_running_stats(&running_stats(&tower.absorb(stats)), &expected_running_stats(&case)).unwrap_or_else(|e| panic!("{name}: {e}"));
        eprintln!("{name}: running statistics within {worst:e}");
    }
}

#[test]
fn a_frozen_tower_uses_and_keeps_its_running_statistics_while_training() {
    type A = burn::backend::Autodiff<B>;
    let case = case("tv_resnet_bottleneck");
    let config = case.config.clone().with_batch_norm(BatchNormMode::Frozen);
    let device = Default::default();
    let (frozen, _) = load_conv_tower::<A>(&config, case.source, &case.weights, false, &device).unwrap();
    let (pooled, stats) = frozen.forward(tensor(&case.reference["pixels"], &device));
    assert!(!stats.uses_batch_statistics() && stats.is_empty());
    assert!(max_diff(pooled, &case.reference["eval_pooled"]) <= 1e-4, "a frozen tower must compute as in eval mode");
    // In train mode on an autodiff backend, the batch's statistics.
    let (training, _) = load_conv_tower::<A>(&case.config, case.source, &case.weights, false, &device).unwrap();
    let (pooled, stats) = training.forward(tensor(&case.reference["pixels"], &device));
    assert!(stats.uses_batch_statistics() && !stats.is_empty());
    assert!(max_diff(pooled, &case.reference["train_pooled"]) <= 1e-4);
}

#[test]
fn bad_weights_are_clear_errors() {
    let case = case("tv_mobilenet_v2");
    let device = Default::default();
    // The weights of another network: a shape mismatch that names the key.
    let wrong = ConvNetConfig::new(ConvPreset::new(ConvFamily::MobilenetV2, ConvSource::Torchvision).with_multipliers(0.5, 1.0).arch().unwrap());
    let error = load_conv_tower::<B>(&wrong, ConvSource::Torchvision, &case.weights, false, &device).err().unwrap().to_string();
    assert!(error.contains("model.pth") && error.contains("`features.0.0.weight`") && error.contains("[8, 3, 3, 3]"), "{error}");
    // A folder with two weights files, and a missing path.
    let error = load_conv_tower::<B>(&case.config, ConvSource::Torchvision, case.weights.parent().unwrap(), false, &device).err().unwrap().to_string();
    assert!(error.contains("several weights files"), "{error}");
    let error = load_conv_tower::<B>(&case.config, ConvSource::Torchvision, Path::new("/nonexistent/x.pth"), false, &device).err().unwrap().to_string();
    assert!(error.contains("/nonexistent/x.pth"), "{error}");
    // Truncated weights.
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(&case.weights).unwrap();
    let cut = dir.path().join("cut.pth");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let error = format!("{:#}", load_conv_tower::<B>(&case.config, ConvSource::Torchvision, &cut, false, &device).err().unwrap());
    assert!(error.contains("cut.pth"), "{error}");
}

#[test]
fn grad_cache_gives_batch_norm_towers_the_same_gradients_and_one_running_update() {
    use crate::common::grad_check::{gradients_by_name, loss_config, small_batch};
    use otclip::loss::objective_loss;
    use otclip::model::{BertConfig, DualEncoder, DualEncoderConfig, Precision};
    use otclip::train::grad_cache::{update_gradients, Encoding};
    type A = burn::backend::Autodiff<B>;
    let device = Default::default();
    A::seed(&device, 7);
    let arch = ConvPreset::new(ConvFamily::EfficientnetB0, ConvSource::Timm).with_multipliers(0.25, 0.25).arch().unwrap();
    let convnet = ConvNetConfig::new(arch).with_image_size(16);
    let model = DualEncoderConfig::new(convnet.into(), BertConfig::new(40, 32, 1, 2, 64), 16).init::<A>(&device);
    let batch = small_batch::<A>(8, &device);
    let loss = loss_config("clip", "none", None);
    let run = |encoding: Encoding| update_gradients(&model, batch.clone(), encoding, |chunk| 100 + chunk as u64, |inputs| objective_loss(inputs, &loss, false)).unwrap();
    // Both paths normalise each chunk of 4 with its own statistics, as PyTorch would.
    let direct = run(Encoding { chunk_size: 4, grad_cache: false, precision: Precision::F32 });
    let cached = run(Encoding::chunked(4));
    let (a, b) = (gradients_by_name(&model, &direct.grads), gradients_by_name(&model, &cached.grads));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let tower = a.keys().filter(|k| k.starts_with("image_model.")).count();
    assert!(tower > 30, "only {tower} image-tower parameters got a gradient: {:?}", a.keys().collect::<Vec<_>>());
    let norm = |g: &[f64]| g.iter().map(|v| v * v).sum::<f64>().sqrt();
    for (name, g) in &a {
        let difference: Vec<f64> = g.iter().zip(&b[name]).map(|(x, y)| x - y).collect();
        let relative = norm(&difference) / norm(g).max(1e-6);
        assert!(relative <= 1e-4, "{name}: GradCache differs by {relative:e}");
    }
    // One running-statistics update per update, the same on both paths, pooled over the chunks:
    // the stem's input does not depend on any normalisation, so its statistics equal those of
    // the whole update encoded at once.
    let stats = |model: DualEncoder<A>| match model.image_model.map(|tower| tower.net) {
        Some(ConvNet::MbConv(net)) => net.collect(None, None, false).into_iter().filter(|s| s.full_path().contains("running")).map(|s| (s.full_path(), s.to_data().unwrap().convert::<f32>().into_vec::<f32>().unwrap())).collect::<BTreeMap<_, _>>(),
        _ => unreachable!("an MBConv tower"),
    };
    let before = stats(model.clone());
    let (after_direct, after_cached) = (stats(model.clone().absorb_batch_norm(direct.batch_norm)), stats(model.clone().absorb_batch_norm(cached.batch_norm)));
    let whole = stats(model.clone().absorb_batch_norm(run(Encoding::whole(8)).batch_norm));
    let close = |x: &[f32], y: &[f32], tolerance: f32| x.iter().zip(y).all(|(p, q)| (p - q).abs() <= tolerance * q.abs().max(1.0));
    for (path, value) in &after_direct {
        assert!(close(value, &after_cached[path], 1e-5), "{path}: GradCache updated the running statistics differently");
        // A running mean may stay 0: a 1×1 convolution of a BatchNorm's output has mean 0.
        if path.ends_with("running_var") || path == "bn1.running_mean" {
            assert!(!close(value, &before[path], 1e-7), "{path} was not updated");
        }
    }
    for path in ["bn1.running_mean", "bn1.running_var"] {
        assert!(close(&after_direct[path], &whole[path], 1e-5), "{path}: chunk statistics pooled wrongly");
    }
}
