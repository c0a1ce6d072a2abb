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
fn running_stats(tower: &ConvTower<B>) -> BTreeMap<String, Vec<f32>> {
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
    let dir = tempfile::tempdir().unwrap();
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
        let updated = running_stats(&tower.absorb(stats));
        let (expected_tower, _) = load(&case, &checkpoint_after_train(&case, dir.path()));
        let expected = running_stats(&expected_tower);
        assert_eq!(updated.len(), expected.len());
        assert!(updated.len() >= 2 * 5, "{name}: only {} running statistics", updated.len());
        for (path, want) in &expected {
            let got = &updated[path];
            let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0.0, f32::max);
            assert!(worst <= 1e-4, "{name}: {path} differs by {worst} after one train-mode batch");
        }
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
