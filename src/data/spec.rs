//! Dataset spec strings, `FORMAT:PATH[?key=value&...]`, used in configs and on the command line:
//! `ktvic:/data/ktvic?split=test`, `xm3600:/data/xm3600?lang=vi&captions=all`, `synthetic`.
//! Parsing looks FORMAT up in the registry (`formats::FORMATS`); [`DatasetSpec`] itself is declared
//! beside the format trait, in `format.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{anyhow, bail, Result};

use super::dataset::{ImageTextDataset, Verify};
use super::decode::ImageLimits;
use super::format::{Captions, COMMON_KEYS};
use super::formats;

pub use super::format::DatasetSpec;

impl FromStr for DatasetSpec {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> Result<Self> {
        DatasetSpec::parse(text)
    }
}

impl DatasetSpec {
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let (head, query) = match text.rsplit_once('?') {
            Some((head, query)) => (head, Some(query)),
            None => (text, None),
        };
        let (format, path) = match head.split_once(':') {
            Some((format, path)) => (format, path),
            None => (head, ""),
        };
        let format = formats::find(format).map_err(|e| anyhow!("dataset spec `{text}`: {e}"))?;
        if format.needs_path() && path.is_empty() {
            bail!("dataset spec `{text}`: expected FORMAT:PATH[?key=value&...], with the dataset folder or annotation file as PATH");
        }
        let mut options = BTreeMap::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let Some((key, value)) = pair.split_once('=') else {
                bail!("dataset spec `{text}`: `{pair}` is not key=value");
            };
            let key = key.trim();
            if !COMMON_KEYS.contains(&key) && !format.own_keys().contains(&key) {
                let mut allowed: Vec<&str> = COMMON_KEYS.to_vec();
                allowed.extend(format.own_keys());
                bail!("dataset spec `{text}`: unknown key `{key}` for {format}; expected one of {}", allowed.join(", "));
            }
            if options.insert(key.to_string(), value.trim().to_string()).is_some() {
                bail!("dataset spec `{text}`: key `{key}` given twice");
            }
        }
        let spec = DatasetSpec { format, path: PathBuf::from(path), options };
        if let Some(mode) = spec.get("captions") {
            if let Err(expected) = mode.parse::<Captions>() {
                bail!("dataset spec `{text}`: captions={mode}; {expected}");
            }
        }
        if let Some(verify) = spec.get("verify") {
            if let Err(expected) = verify.parse::<Verify>() {
                bail!("dataset spec `{text}`: verify={verify}; {expected}");
            }
        }
        spec.image_limits()?;
        Ok(spec)
    }

    /// The image decoding limits: `max_pixels=N`, else the defaults.
    pub fn image_limits(&self) -> Result<ImageLimits> {
        match self.get("max_pixels") {
            Some(text) => text.parse().map_err(|e| anyhow!("dataset spec `{self}`: {e}")),
            None => Ok(ImageLimits::default()),
        }
    }

    /// How images are checked when the dataset opens (`verify=decode`, the default, or `exists`).
    pub fn verify(&self) -> Verify {
        self.get("verify").and_then(|verify| verify.parse().ok()).unwrap_or(Verify::Decode)
    }

    /// Reads the annotations, applies `exclude=` and `captions=first`, and checks the images.
    pub fn open(&self) -> Result<ImageTextDataset> {
        let mut dataset = ImageTextDataset::read(self)?;
        dataset.check_images(self.verify());
        Ok(dataset)
    }
}
