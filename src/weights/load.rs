//! Reading checkpoint tensors and applying them to a model through a key map, with a load report.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use burn::module::ParamId;
use burn::prelude::*;
use burn::tensor::TensorData;
use burn_store::{KeyRemapper, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore, TensorSnapshot};

use super::config::{ExportedConfig, JsonFile};
use super::header::check_safetensors;
use super::keymap::{KeyMap, Layout};
use super::report::LoadReport;
use crate::model::{DualEncoder, DualEncoderConfig};

/// The weights file of a checkpoint folder: `model.safetensors`, else `pytorch_model.bin`.
pub fn weights_file(dir: &Path) -> Result<PathBuf> {
    if !dir.is_dir() {
        bail!("{} is not a folder (expected a checkpoint folder with config.json and model.safetensors)", dir.display());
    }
    for name in ["model.safetensors", "open_clip_model.safetensors", "pytorch_model.bin"] {
        let path = dir.join(name);
        if path.is_file() {
            return Ok(path);
        }
    }
    bail!("{} has no model.safetensors or pytorch_model.bin", dir.display())
}

/// Every tensor of a checkpoint file, by its key, converted to f32.
pub fn read_tensors(path: &Path) -> Result<BTreeMap<String, TensorData>> {
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    let snapshots: BTreeMap<String, TensorSnapshot> = if is_safetensors {
        check_safetensors(path)?;
        SafetensorsStore::from_file(path).get_all_snapshots().map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?.clone()
    } else {
        // Keys as saved: burn-store would renumber gaps (`classifier.1` → `classifier.0`).
        PytorchStore::from_file(path).map_indices_contiguous(false).get_all_snapshots().map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?.clone()
    };
    snapshots
        .into_iter()
        .map(|(key, snapshot)| {
            let data = snapshot.to_data().map_err(|e| anyhow!("cannot read tensor `{key}` of {}: {e:?}", path.display()))?;
            let data = if data.dtype.is_float() { data.convert::<f32>() } else { data };
            Ok((key, data))
        })
        .collect()
}

/// Loads checkpoint tensors (checkpoint keys, PyTorch layout) into `model` through `map`.
/// Shape mismatches are errors naming the tensor and both shapes; missing tensors are errors
/// unless `allow_partial`.
pub fn apply_tensors<B: Backend, M: ModuleSnapshot<B>>(
    mut model: M,
    tensors: BTreeMap<String, TensorData>,
    map: &KeyMap,
    file: &Path,
    allow_partial: bool,
) -> Result<(M, LoadReport)> {
    let tensors = map.prepare(tensors)?;
    let mut ignored = Vec::new();
    let mut originals = HashMap::new();
    let mut snapshots = Vec::new();
    for (key, data) in tensors {
        if map.ignores(&key) {
            ignored.push(key);
            continue;
        }
        if !data.dtype.is_float() {
            bail!("{}: tensor `{key}` has dtype {:?}; expected a floating-point tensor (F32, F16, BF16 or F64)", file.display(), data.dtype);
        }
        originals.insert(key.clone(), Vec::<usize>::from(data.shape.clone()));
        let path: Vec<String> = key.split('.').map(str::to_string).collect();
        snapshots.push(TensorSnapshot::from_data(data, path, vec![], ParamId::new()));
    }
    let remapper = KeyRemapper::from_patterns(map.patterns.clone()).map_err(|e| anyhow!("bad key map: {e}"))?;
    let (snapshots, names) = remapper.remap(snapshots);
    let mut source: HashMap<String, String> = names.into_iter().collect();
    // Reshape tensors that differ only by unit dimensions (CLIP's class embedding is [d], ours [1, 1, d]).
    let expected: HashMap<String, Vec<usize>> =
        model.collect(None, None, false).into_iter().map(|s| (s.full_path(), s.shape.clone().into())).collect();
    let snapshots: Vec<TensorSnapshot> = snapshots
        .into_iter()
        .map(|s| {
            // Norms are `gamma`/`beta` in burn and `weight`/`bias` in PyTorch; rename here so that
            // the report counts them as applied (burn-store's fallback lookup leaves them "unused").
            let path = s.full_path();
            let norm_name = [(".weight", ".gamma"), (".bias", ".beta")].iter().find_map(|(from, to)| {
                let renamed = format!("{}{to}", path.strip_suffix(from)?);
                (!expected.contains_key(&path) && expected.contains_key(&renamed)).then_some(renamed)
            });
            let s = match norm_name {
                Some(renamed) => {
                    source.insert(renamed.clone(), source.get(&path).cloned().unwrap_or_else(|| path.clone()));
                    let path_stack = renamed.split('.').map(str::to_string).collect();
                    TensorSnapshot::from_data(s.to_data().expect("in-memory tensor"), path_stack, vec![], ParamId::new())
                }
                None => s,
            };
            let path = s.full_path();
            let shape: Vec<usize> = s.shape.clone().into();
            match expected.get(&path) {
                Some(want) if *want != shape && squeeze(want) == squeeze(&shape) => {
                    let data = s.to_data().expect("in-memory tensor");
                    let data = TensorData::new(data.into_vec::<f32>().expect("f32 tensor"), want.clone());
                    TensorSnapshot::from_data(data, s.path_stack.clone().unwrap_or_default(), vec![], ParamId::new())
                }
                _ => s,
            }
        })
        .map(|s| {
            let data = s.to_data().expect("in-memory tensor");
            let data = if data.dtype.is_float() { data.convert::<B::FloatElem>() } else { data };
            TensorSnapshot::from_data(data, s.path_stack.clone().unwrap_or_default(), vec![], ParamId::new())
        })
        .collect();
    let result = model.apply(snapshots, None, Some(Box::new(PyTorchToBurnAdapter)), false);
    if let Some(error) = result.errors.first() {
        let message = match error {
            burn_store::ApplyError::ShapeMismatch { path, expected, found } => {
                let key = source.get(path).cloned().unwrap_or_else(|| path.clone());
                let found: Vec<usize> = found.clone().into();
                let expected: Vec<usize> = expected.clone().into();
                let stored = originals.get(&key).map(|s| format!("{:?}", s)).unwrap_or_else(|| format!("{:?}", found));
                let transposed = found.len() == 2 && originals.get(&key).is_some_and(|s| s.iter().rev().eq(found.iter()) && *s != found);
                let want: Vec<usize> = if transposed { expected.iter().rev().copied().collect() } else { expected.clone() };
                format!("tensor `{key}` (otclip `{path}`) has shape {stored} in the checkpoint, but the model expects {want:?}")
            }
            other => other.to_string(),
        };
        bail!("{}: {message}{}", file.display(), if result.errors.len() > 1 { format!(" (and {} more errors)", result.errors.len() - 1) } else { String::new() });
    }
    let unused: Vec<String> = result.unused.iter().map(|p| source.get(p).cloned().unwrap_or_else(|| p.clone())).collect();
    let report = LoadReport {
        file: file.to_path_buf(),
        applied: result.applied.clone(),
        missing: result.missing.iter().map(|(p, _)| p.clone()).collect(),
        unused,
        ignored,
    };
    if !report.missing.is_empty() && !allow_partial {
        bail!(
            "{}: the checkpoint lacks {} of the model's tensors (first: {}); is this the right architecture? Allow a partial load to keep their random initialisation.\n{report}",
            file.display(),
            report.missing.len(),
            report.missing[0]
        );
    }
    Ok((model, report))
}

fn squeeze(shape: &[usize]) -> Vec<usize> {
    shape.iter().copied().filter(|&d| d != 1).collect()
}

/// Reads a folder written by [`export_dual`](super::export_dual).
pub fn load_exported<B: Backend>(dir: &Path, device: &B::Device) -> Result<(DualEncoder<B>, DualEncoderConfig, LoadReport)> {
    let json = JsonFile::config_of(dir)?;
    let config = json.parse::<ExportedConfig>()?.otclip.ok_or_else(|| anyhow!("{}: no `otclip` section (not written by otclip export)", json.path().display()))?;
    let config = DualEncoderConfig::from_json(config, json.path())?;
    config.validate_towers().map_err(|e| anyhow!("{}: otclip.{e}", json.path().display()))?;
    config.validate().map_err(|e| anyhow!("{}: otclip.{e}", json.path().display()))?;
    let file = dir.join("model.safetensors");
    let (model, report) = apply_tensors(config.init::<B>(device), read_tensors(&file)?, &KeyMap::new(Layout::Export), &file, false)?;
    Ok((model, config, report))
}
