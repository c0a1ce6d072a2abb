//! The image tower of a dual encoder: a ViT or a convolutional network. In a run's `model.json`
//! a ViT is written as its own config (as before convolutional towers existed) and a
//! convolutional tower as `{"convnet": {...}}`.

use burn::prelude::*;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::convnet::{ConvNetConfig, ConvTower};
use super::{VitConfig, VitModel};

/// Which image tower a dual encoder has, and its settings.
#[derive(Debug, Clone)]
pub enum VisionConfig {
    Vit(VitConfig),
    ConvNet(ConvNetConfig),
}

impl VisionConfig {
    /// The pooled feature width the image head maps from.
    pub fn width(&self) -> usize {
        match self {
            VisionConfig::Vit(c) => c.hidden_size,
            VisionConfig::ConvNet(c) => c.output_width(),
        }
    }

    /// The side of the square images the tower is fed.
    pub fn image_size(&self) -> usize {
        match self {
            VisionConfig::Vit(c) => c.image_size,
            VisionConfig::ConvNet(c) => c.image_size,
        }
    }

    pub fn set_image_size(&mut self, side: usize) {
        match self {
            VisionConfig::Vit(c) => c.image_size = side,
            VisionConfig::ConvNet(c) => c.image_size = side,
        }
    }

    /// The ViT config, when the tower is a ViT.
    pub fn vit(&self) -> Option<&VitConfig> {
        match self {
            VisionConfig::Vit(c) => Some(c),
            VisionConfig::ConvNet(_) => None,
        }
    }

    pub fn vit_mut(&mut self) -> Option<&mut VitConfig> {
        match self {
            VisionConfig::Vit(c) => Some(c),
            VisionConfig::ConvNet(_) => None,
        }
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> VisionModel<B> {
        match self {
            VisionConfig::Vit(c) => VisionModel::Vit(c.init(device)),
            VisionConfig::ConvNet(c) => VisionModel::ConvNet(c.init(device)),
        }
    }
}

impl From<VitConfig> for VisionConfig {
    fn from(config: VitConfig) -> Self {
        VisionConfig::Vit(config)
    }
}

impl From<ConvNetConfig> for VisionConfig {
    fn from(config: ConvNetConfig) -> Self {
        VisionConfig::ConvNet(config)
    }
}

#[derive(Serialize, Deserialize)]
struct ConvNetField<T> {
    convnet: T,
}

impl Serialize for VisionConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            VisionConfig::Vit(c) => c.serialize(serializer),
            VisionConfig::ConvNet(c) => ConvNetField { convnet: c }.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for VisionConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let parsed = if value.get("convnet").is_some() {
            serde_json::from_value::<ConvNetField<ConvNetConfig>>(value).map(|f| VisionConfig::ConvNet(f.convnet))
        } else {
            serde_json::from_value::<VitConfig>(value).map(VisionConfig::Vit)
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

/// A built image tower, before it goes into a [`super::DualEncoder`].
pub enum VisionModel<B: Backend> {
    Vit(VitModel<B>),
    ConvNet(ConvTower<B>),
}
