//! The splits of a config's data, as grouped image–caption sets, and recall on one of them.

use anyhow::{bail, Result};
use burn::prelude::Backend;

use super::config::{DataSource, TrainConfig};
use crate::data::{synthetic, Batcher, CaptionedImages, DatasetSpec, Split};
use crate::eval::{embed_split, RetrievalMetrics};
use crate::model::DualEncoder;

/// Loads one split of the config's data: the built-in one, or the spec read with `split=` (or
/// `data.val` / `data.test` when set).
pub fn load_split(config: &TrainConfig, split: Split) -> Result<CaptionedImages> {
    let own = match split {
        Split::Train => None,
        Split::Val => config.data.val.as_ref(),
        Split::Test => config.data.test.as_ref(),
    };
    if let Some(spec) = own {
        return open_spec(spec, split);
    }
    match &config.data.source {
        DataSource::Synthetic(synthetic) => Ok(synthetic::generate(synthetic, split)?.dataset),
        DataSource::Dataset(spec) => open_spec(&spec.with_option("split", split.name()), split),
    }
}

/// Opens a dataset spec (its own `split=`, else `split`), prints a warning per skipped item and
/// the total, and groups the captions by image.
pub fn open_spec(spec: &DatasetSpec, split: Split) -> Result<CaptionedImages> {
    let spec = if spec.format.has_splits() { spec.with_default_split(split.name()) } else { spec.clone() };
    let dataset = spec.open()?;
    dataset.warn_skipped();
    if dataset.items.is_empty() {
        bail!("{}: no usable image–caption pairs", dataset.name);
    }
    Ok(dataset.to_captioned())
}

/// Recall of `model` on `dataset`, in inference mode.
pub fn validate<B: Backend>(model: &DualEncoder<B>, batcher: &Batcher, dataset: &CaptionedImages, batch_size: usize, device: &B::Device) -> Result<RetrievalMetrics> {
    Ok(embed_split(model, batcher, dataset, batch_size, device)?.metrics())
}
