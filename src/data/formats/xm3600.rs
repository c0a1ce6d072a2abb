//! Crossmodal-3600: `captions.jsonl`, one image per line
//! (`{"image/key": "<16 hex>", "vi": {"caption": [...], ...}, ...}`), images in `images/<key>.jpg`.
//! `lang=` picks the language; `captions=first` (CLIP_benchmark, the default) or `all` (ViCLIP-OT).

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use super::annotations::{image_dir, json_kind, numbered_lines, read_text, root_of};
use crate::data::collector::{Collector, SkipReason};
use crate::data::format::{Captions, DatasetFormat, DatasetSpec, FormatRead};
use crate::data::split::Split;

pub struct Xm3600;

impl DatasetFormat for Xm3600 {
    fn name(&self) -> &'static str {
        "xm3600"
    }

    /// The whole file is the test split.
    fn splits(&self) -> &'static [Split] {
        &[Split::Test]
    }

    fn default_captions(&self) -> Captions {
        Captions::First
    }

    fn read(&self, spec: &DatasetSpec) -> Result<FormatRead> {
        let file = if spec.path.is_file() { spec.path.clone() } else { spec.path.join("captions.jsonl") };
        if let Some(split) = spec.requested_split() {
            if split != Split::Test.name() {
                bail!("{spec}: XM3600 has only a test split, not `{split}`");
            }
        }
        let text = read_text(&file)?;
        let origin = file.display().to_string();
        let root = root_of(spec);
        let images = image_dir(spec, &root, &[root.join("images"), root.clone()], None);
        let mut collector = Collector::new();
        let lang: Option<&str> = spec.get("lang");
        for (number, line) in numbered_lines(&text) {
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(line).map_err(|e| anyhow!("{origin}:{number}: not a JSON object: {e}"))?;
            let object = value.as_object().ok_or_else(|| anyhow!("{origin}:{number}: expected a JSON object, found {}", json_kind(&value)))?;
            let key = object
                .get("image/key")
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("{origin}:{number}: expected the key `image/key` with a string value"))?;
            let Some(lang) = lang else {
                let mut langs: Vec<&str> = object.iter().filter(|(_, v)| v.get("caption").is_some()).map(|(k, _)| k.as_str()).collect();
                langs.sort_unstable();
                bail!("{spec}: say which language to read (lang=...); {origin}:{number} has {}", langs.join(", "));
            };
            let Some(entry) = object.get(lang) else {
                collector.skip(format!("{origin}:{number} (image/key {key}, no `{lang}`)"), SkipReason::MissingLanguage);
                continue;
            };
            let captions = entry
                .get("caption")
                .and_then(Value::as_array)
                .ok_or_else(|| anyhow!("{origin}:{number}: at `{lang}.caption`: expected an array of strings"))?;
            for (k, caption) in captions.iter().enumerate() {
                let caption = caption
                    .as_str()
                    .ok_or_else(|| anyhow!("{origin}:{number}: at `{lang}.caption[{k}]`: expected a string, found {}", json_kind(caption)))?;
                collector.push(key, &images, &format!("{key}.jpg"), caption, || format!("{origin}:{number}: `{lang}.caption[{k}]`"));
            }
        }
        Ok(FormatRead { collector, split: Some(Split::Test.name().to_string()) })
    }
}
