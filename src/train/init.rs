//! How a fresh run's model starts: each tower pretrained (the config's `image_tower` /
//! `text_tower`) or the preset's from scratch, then fresh projections and temperature.

use anyhow::Result;
use burn::prelude::*;

use super::config::TrainConfig;
use crate::data::resample::Interpolation;
use crate::data::ImageNormalization;
use crate::model::{DualEncoder, DualEncoderConfig, VisionModel};
use crate::text::CaptionTokenizer;
use crate::weights::towers::{load_image_tower_with, load_text_tower_with};
use crate::weights::{conv_config, load_conv_tower, LoadReport, TowerSource};

/// A new model with what the run directory must record to use it again.
pub struct InitialModel<B: Backend> {
    pub model: DualEncoder<B>,
    pub config: DualEncoderConfig,
    pub tokenizer: CaptionTokenizer,
    /// The pixel normalisation: the config's, else the pretrained image tower's, else ImageNet's.
    pub normalization: ImageNormalization,
    /// The evaluation resize filter: the config's, else the convolutional tower's library's, else bicubic.
    pub interpolation: Interpolation,
    /// The side of the images fed to the model.
    pub image_size: u32,
    /// One load report per pretrained tower.
    pub reports: Vec<LoadReport>,
}

/// Builds the model of a fresh run. A from-scratch text tower gets a WordPiece vocabulary trained
/// on `captions`; a pretrained one brings its own tokenizer.
pub fn initial_model<B: Backend, S: AsRef<str> + Send>(
    config: &TrainConfig,
    captions: impl Iterator<Item = S> + Send,
    device: &B::Device,
) -> Result<InitialModel<B>> {
    let m = &config.model;
    let (image_source, text_source) = m.tower_sources()?;
    let mut reports = Vec::new();

    let (text_model, text_config, tokenizer) = match &text_source {
        None => {
            let tokenizer = CaptionTokenizer::train_with_case(captions, config.tokenizer.vocab_size, config.tokenizer.max_length, config.tokenizer.lowercase)?;
            let text_config = config.model_config(tokenizer.vocab_size()).text;
            (text_config.init::<B>(device), text_config, tokenizer)
        }
        Some(source) => {
            let tower = load_text_tower_with::<B>(source.dir(), config.tokenizer.max_length, m.allow_partial, device, |c| {
                c.pooling = m.text_pooling;
                c.hidden_dropout_prob = m.dropout;
            })?;
            reports.push(tower.report);
            (tower.model, tower.config, tower.tokenizer)
        }
    };

    // The preset's text config only fixes the vocabulary, which the image tower ignores.
    let preset = config.model_config(tokenizer.vocab_size());
    let (vision_model, vision_config, normalization, image_size) = match &image_source {
        None => {
            let size = config.preset_image_size();
            (preset.vision.init::<B>(device), preset.vision.clone(), m.normalization.unwrap_or_default(), size)
        }
        Some(TowerSource::Conv(source)) => {
            let batch_norm = m.convnet.map(|c| c.batch_norm).unwrap_or_default();
            // The data's size when it has one (the built-in images), else the weights' 224.
            let size = m.image_size.or(config.synthetic().map(|s| s.image_size)).unwrap_or(224);
            let mut conv_config = conv_config(&source.preset(), batch_norm, size as usize)?;
            if let Some(section) = &m.convnet {
                conv_config.arch = section.adjust(conv_config.arch);
            }
            let (tower, report) = load_conv_tower::<B>(&conv_config, source.source, &source.path, m.allow_partial, device)?;
            reports.push(report);
            let normalization = m.normalization.unwrap_or(source.normalization());
            (VisionModel::ConvNet(tower), conv_config.into(), normalization, size)
        }
        Some(source) => {
            let tower = load_image_tower_with::<B>(source, m.allow_partial, device, |c| {
                c.pooling = m.image_pooling;
                c.hidden_dropout_prob = m.dropout;
            })?;
            reports.push(tower.report);
            let normalization = m.normalization.unwrap_or(tower.normalization);
            let size = m.image_size.unwrap_or(tower.config.image_size as u32);
            (VisionModel::Vit(tower.model), tower.config.into(), normalization, size)
        }
    };
    if let Some(patch) = vision_config.vit().map(|v| v.patch_size).filter(|&patch| image_size as usize % patch != 0) {
        anyhow::bail!("model.image_size = {image_size} is not a multiple of the image tower's patch size {patch}");
    }

    let interpolation = m.interpolation.unwrap_or(match &image_source {
        Some(TowerSource::Conv(source)) => source.interpolation(),
        _ => Interpolation::default(),
    });
    let dual = DualEncoderConfig { vision: vision_config, text: text_config, ..preset };
    dual.validate()?;
    let model = dual.with_towers(vision_model, text_model, device);
    Ok(InitialModel { model, config: dual, tokenizer, normalization, interpolation, image_size, reports })
}
