//! Typed checkpoint configs: Hugging Face `config.json` files ([`hf`]), timm hub `config.json`
//! files ([`timm`]), and their conversion to otclip's tower configs ([`convert`]). A file that
//! does not fit its struct is an error naming the file and the key.

pub mod convert;
pub mod hf;
pub mod timm;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use convert::{image_config, text_config, ImageTowerConfig};
pub use hf::{
    ExportedConfig, HfBertConfig, HfClipConfig, HfClipVisionConfig, HfDinov2Config, HfHeader, HfModelType, HfPreprocessorConfig, HfVitConfig, HiddenAct,
    PositionEmbeddingType, SentenceTransformersPooling,
};
pub use timm::{TimmConfig, TimmGlobalPool, TimmImageSize, TimmModelArgs, TimmPretrainedCfg};

/// A JSON file of a checkpoint folder, read once and then deserialised into typed configs.
/// `null` values are dropped on reading: HF writes unset keys as `null`, and they take their
/// default like missing ones.
#[derive(Debug, Clone)]
pub struct JsonFile {
    path: PathBuf,
    value: Value,
}

impl JsonFile {
    /// `config.json` of a checkpoint folder.
    pub fn config_of(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {} (is {} a checkpoint folder?)", path.display(), dir.display()))?;
        Self::from_text(path, &text)
    }

    /// The file at `path` if there is one: optional files such as `preprocessor_config.json`.
    pub fn read_if_present(path: &Path) -> Result<Option<Self>> {
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_text(path.to_path_buf(), &text).map(Some)
    }

    fn from_text(path: PathBuf, text: &str) -> Result<Self> {
        let mut value: Value = serde_json::from_str(text).with_context(|| format!("{} is not valid JSON", path.display()))?;
        drop_nulls(&mut value);
        Ok(Self { path, value })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the top-level object has `key`.
    pub fn has_key(&self, key: &str) -> bool {
        self.value.get(key).is_some()
    }

    /// The file as a `T`; a mismatch names the file and the key (`vision_config.hidden_act`).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        serde_path_to_error::deserialize(&self.value).map_err(|e| {
            let key = e.path().to_string();
            let at = if key == "." { String::new() } else { format!(" `{key}`:") };
            anyhow!("{}:{at} {}", self.path.display(), e.inner())
        })
    }
}

/// Removes `null` members from every object, recursively.
fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(list) => list.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}
