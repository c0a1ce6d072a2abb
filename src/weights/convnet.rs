//! Convolutional towers from torchvision, timm and EfficientNet-PyTorch checkpoints:
//! `torchvision:NAME@PATH`, `timm:NAME@PATH` or `effnet:NAME@PATH`, where PATH is a `.pth` (zip
//! or legacy pickle), a `.safetensors` file, or a folder holding one.
//!
//! otclip's modules follow torchvision's names for ResNet and timm's for the MBConv networks;
//! the other layouts are renamed module by module from a table built from the architecture, so
//! every checkpoint key either has exactly one place or is reported unused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use burn::tensor::TensorData;

use super::keymap::{KeyMap, Layout};
use super::load::{apply_tensors, read_tensors};
use super::report::LoadReport;
use crate::data::transform::Interpolation;
use crate::data::ImageNormalization;
use crate::model::batch_norm::BatchNormMode;
use crate::model::convnet::presets::{ConvFamily, ConvPreset, ConvSource};
use crate::model::convnet::{ConvArch, ConvNet, ConvNetConfig, ConvTower, MbConvConfig};

/// A convolutional tower named by its library, its architecture and its weights.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvTowerSource {
    pub source: ConvSource,
    pub family: ConvFamily,
    pub path: PathBuf,
}

impl ConvTowerSource {
    /// Reads `torchvision:NAME@PATH`, `timm:NAME@PATH` or `effnet:NAME@PATH`; `None` when `spec`
    /// does not name a convolutional tower (a ViT or an HF folder).
    pub fn parse(spec: &str) -> Result<Option<Self>> {
        let Some((library, rest)) = spec.split_once(':') else { return Ok(None) };
        let source = match library {
            "torchvision" => ConvSource::Torchvision,
            "timm" => ConvSource::Timm,
            "effnet" => ConvSource::EfficientNetPytorch,
            _ => return Ok(None),
        };
        let Some((name, path)) = rest.split_once('@') else {
            if source == ConvSource::Timm {
                return Ok(None);
            }
            bail!("`{spec}`: a {library} tower is written {library}:NAME@PATH (PATH: a .pth or .safetensors file, or a folder holding one)");
        };
        let family = match name.parse::<ConvFamily>() {
            Ok(family) => family,
            // timm also names ViTs (timm:vit_base_patch16_dinov3@DIR); those load elsewhere.
            Err(_) if source == ConvSource::Timm => return Ok(None),
            Err(e) => return Err(e.context(format!("`{spec}`"))),
        };
        if path.is_empty() {
            bail!("`{spec}`: no weights path after `@`");
        }
        Ok(Some(Self { source, family, path: path.into() }))
    }

    pub fn preset(&self) -> ConvPreset {
        ConvPreset::new(self.family, self.source)
    }

    /// The pixel normalisation the weights were trained with.
    pub fn normalization(&self) -> ImageNormalization {
        match (self.source, self.family) {
            // Converted from TF-Lite: (x − 127) / 128 on 0–255 values.
            (ConvSource::EfficientNetPytorch, ConvFamily::EfficientnetLite0) => ImageNormalization { mean: [127.0 / 255.0; 3], std: [128.0 / 255.0; 3] },
            _ => ImageNormalization::IMAGENET,
        }
    }

    /// Pillow's resize filter of the weights' evaluation preprocessing: torchvision's presets
    /// resize bilinearly, timm's EfficientNets bicubically.
    pub fn interpolation(&self) -> Interpolation {
        match self.source {
            ConvSource::Timm => Interpolation::Bicubic,
            ConvSource::Torchvision | ConvSource::EfficientNetPytorch => Interpolation::Bilinear,
        }
    }
}

impl std::fmt::Display for ConvTowerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let library = match self.source {
            ConvSource::Torchvision => "torchvision",
            ConvSource::Timm => "timm",
            ConvSource::EfficientNetPytorch => "effnet",
        };
        let name = serde_json::to_value(self.family).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        write!(f, "{library}:{name}@{}", self.path.display())
    }
}

/// The weights file at `path`: the file itself, or the one `.pth`, `.pt`, `.bin` or
/// `.safetensors` file of a folder (`model.safetensors` first).
pub fn conv_weights_file(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    if !path.is_dir() {
        bail!("{}: no such file or folder (expected a .pth or .safetensors file, or a folder holding one)", path.display());
    }
    if path.join("model.safetensors").is_file() {
        return Ok(path.join("model.safetensors"));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("cannot list {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| ["pth", "pt", "bin", "safetensors"].iter().any(|x| e == *x)))
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!("{} holds no .pth, .pt, .bin or .safetensors file", path.display()),
        _ => bail!("{} holds several weights files ({}); name one", path.display(), found.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")),
    }
}

/// Reads `source`'s weights into a tower of `config` (built from `source.preset()`, or a
/// smaller variant of it). BatchNorm's `num_batches_tracked` is dropped silently; the
/// classifier is reported as ignored.
pub fn load_conv_tower<B: Backend>(config: &ConvNetConfig, source: ConvSource, path: &Path, allow_partial: bool, device: &B::Device) -> Result<(ConvTower<B>, LoadReport)> {
    let file = conv_weights_file(path)?;
    let mut tensors = read_tensors(&file).with_context(|| format!("loading the convolutional tower {}", file.display()))?;
    // torch.save of a whole training state nests the weights (`{"state_dict": ...}`, `{"model": ...}`).
    tensors = strip_wrapper(tensors);
    tensors.retain(|key, _| !key.ends_with("num_batches_tracked"));
    let map = KeyMap::new(Layout::ConvNet).with_module_renames(&module_renames(&config.arch, source, &tensors));
    let net = match &config.arch {
        ConvArch::ResNet(c) => {
            let (net, report) = apply_tensors(c.init::<B>(device), tensors, &map, &file, allow_partial)?;
            (ConvNet::ResNet(net), report)
        }
        ConvArch::MbConv(c) => {
            let (net, report) = apply_tensors(c.init::<B>(device), tensors, &map, &file, allow_partial)?;
            (ConvNet::MbConv(net), report)
        }
        ConvArch::Swin(c) => {
            let (net, report) = apply_tensors(c.init::<B>(config.image_size, device), tensors, &map, &file, allow_partial)?;
            (ConvNet::Swin(net), report)
        }
    };
    Ok((ConvTower { net: net.0, batch_norm: config.batch_norm }, net.1))
}

/// A tower config for a named tower: its architecture and the side its weights expect.
pub fn conv_config(preset: &ConvPreset, batch_norm: BatchNormMode, image_size: usize) -> Result<ConvNetConfig> {
    Ok(ConvNetConfig::new(preset.arch()?).with_batch_norm(batch_norm).with_image_size(image_size))
}

fn strip_wrapper(tensors: BTreeMap<String, TensorData>) -> BTreeMap<String, TensorData> {
    for wrapper in ["state_dict.", "model.", "module."] {
        if !tensors.is_empty() && tensors.keys().all(|k| k.starts_with(wrapper)) {
            return strip_wrapper(tensors.into_iter().map(|(k, v)| (k[wrapper.len()..].to_string(), v)).collect());
        }
    }
    tensors
}

/// `(checkpoint module, otclip module)` for every module whose name differs, ordered so that no
/// renamed key matches a later rename.
fn module_renames(arch: &ConvArch, source: ConvSource, tensors: &BTreeMap<String, TensorData>) -> Vec<(String, String)> {
    let mut map = Vec::new();
    match arch {
        ConvArch::ResNet(c) => {
            for (stage, &blocks) in c.layers.iter().enumerate() {
                for block in 0..blocks {
                    let stem = format!("layer{}.{block}.downsample", stage + 1);
                    map.push((format!("{stem}.0"), format!("{stem}.conv")));
                    map.push((format!("{stem}.1"), format!("{stem}.bn")));
                }
            }
        }
        ConvArch::MbConv(c) => mbconv_renames(c, source, tensors, &mut map),
        ConvArch::Swin(c) if source == ConvSource::Torchvision => {
            // features.0 = (conv, permute, norm); stages at odd indices, patch merging between.
            map.push(("features.0.0".into(), "patch_embed.proj".into()));
            map.push(("features.0.2".into(), "patch_embed.norm".into()));
            for (stage, &depth) in c.depths.iter().enumerate() {
                if stage > 0 {
                    map.push((format!("features.{}", 2 * stage), format!("layers.{stage}.downsample")));
                }
                for block in 0..depth {
                    let (from, to) = (format!("features.{}.{block}", 2 * stage + 1), format!("layers.{stage}.blocks.{block}"));
                    map.push((format!("{from}.mlp.0"), format!("{to}.mlp.fc1")));
                    map.push((format!("{from}.mlp.3"), format!("{to}.mlp.fc2")));
                    map.push((from, to));
                }
            }
        }
        ConvArch::Swin(_) => {}
    }
    map
}

fn mbconv_renames(c: &MbConvConfig, source: ConvSource, tensors: &BTreeMap<String, TensorData>, map: &mut Vec<(String, String)>) {
    let mut put = |from: String, to: String| map.push((from, to));
    let blocks: Vec<(usize, usize, bool)> =
        c.stages.iter().enumerate().flat_map(|(s, stage)| (0..stage.repeats).map(move |i| (s, i, stage.expand != 1))).collect();
    match source {
        ConvSource::Timm => {
            // timm's depthwise-separable blocks (no expansion) name their layers differently.
            for &(s, i, expand) in &blocks {
                let b = format!("blocks.{s}.{i}");
                if !expand && !tensors.contains_key(&format!("{b}.conv_pwl.weight")) {
                    put(format!("{b}.conv_pw"), format!("{b}.conv_pwl"));
                    put(format!("{b}.bn2"), format!("{b}.bn3"));
                    put(format!("{b}.bn1"), format!("{b}.bn2"));
                }
            }
        }
        ConvSource::EfficientNetPytorch => {
            put("_conv_stem".into(), "conv_stem".into());
            put("_bn0".into(), "bn1".into());
            put("_conv_head".into(), "conv_head".into());
            put("_bn1".into(), "bn2".into());
            for (k, &(s, i, _)) in blocks.iter().enumerate() {
                let (from, to) = (format!("_blocks.{k}"), format!("blocks.{s}.{i}"));
                for (a, b) in [("_expand_conv", "conv_pw"), ("_bn0", "bn1"), ("_depthwise_conv", "conv_dw"), ("_bn1", "bn2"), ("_se_reduce", "se.conv_reduce"), ("_se_expand", "se.conv_expand"), ("_project_conv", "conv_pwl"), ("_bn2", "bn3")] {
                    put(format!("{from}.{a}"), format!("{to}.{b}"));
                }
            }
        }
        ConvSource::Torchvision => {
            put("features.0.0".into(), "conv_stem".into());
            put("features.0.1".into(), "bn1".into());
            // MobileNetV2 numbers its blocks flat (features.1 … features.17); EfficientNet nests
            // them by stage (features.S.I.block).
            let nested = tensors.keys().any(|k| k.contains(".block."));
            let head = if nested { c.stages.len() + 1 } else { blocks.len() + 1 };
            put(format!("features.{head}.0"), "conv_head".into());
            put(format!("features.{head}.1"), "bn2".into());
            for (k, &(s, i, expand)) in blocks.iter().enumerate() {
                let to = format!("blocks.{s}.{i}");
                let parts: Vec<(&str, &str)> = match (nested, expand) {
                    (true, true) => vec![("block.0.0", "conv_pw"), ("block.0.1", "bn1"), ("block.1.0", "conv_dw"), ("block.1.1", "bn2"), ("block.2.fc1", "se.conv_reduce"), ("block.2.fc2", "se.conv_expand"), ("block.3.0", "conv_pwl"), ("block.3.1", "bn3")],
                    (true, false) => vec![("block.0.0", "conv_dw"), ("block.0.1", "bn2"), ("block.1.fc1", "se.conv_reduce"), ("block.1.fc2", "se.conv_expand"), ("block.2.0", "conv_pwl"), ("block.2.1", "bn3")],
                    (false, true) => vec![("conv.0.0", "conv_pw"), ("conv.0.1", "bn1"), ("conv.1.0", "conv_dw"), ("conv.1.1", "bn2"), ("conv.2", "conv_pwl"), ("conv.3", "bn3")],
                    (false, false) => vec![("conv.0.0", "conv_dw"), ("conv.0.1", "bn2"), ("conv.1", "conv_pwl"), ("conv.2", "bn3")],
                };
                let from = if nested { format!("features.{}.{i}", s + 1) } else { format!("features.{}", k + 1) };
                for (a, b) in parts {
                    put(format!("{from}.{a}"), format!("{to}.{b}"));
                }
            }
        }
    }
}
