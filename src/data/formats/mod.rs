//! One reader per dataset format, each turning its native annotation files into an
//! [`ImageTextDataset`]. Shared here: file lookup, JSON with error paths, ids, splits.

pub mod coco;
pub mod flickr;
pub mod karpathy;
pub mod table;
pub mod uit;
pub mod xm3600;

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;

use super::collector::Collector;
use super::dataset::ImageTextDataset;
use super::spec::{DatasetSpec, Format};

/// Reads the annotations of `spec` (images are checked later, by [`DatasetSpec::open`]).
pub fn read(spec: &DatasetSpec) -> Result<ImageTextDataset> {
    let (collector, split) = match spec.format {
        Format::UitOpenViic => uit::read(spec)?,
        Format::Ktvic => coco::read_ktvic(spec)?,
        Format::Coco => coco::read_coco(spec)?,
        Format::ViclipOt => coco::read_viclip_ot(spec)?,
        Format::Xm3600 => xm3600::read(spec)?,
        Format::FlickrToken => flickr::read_token(spec)?,
        Format::FlickrCsv => flickr::read_csv(spec)?,
        Format::Karpathy => karpathy::read(spec)?,
        Format::Csv | Format::Jsonl => table::read(spec)?,
        Format::Synthetic => bail!("the synthetic dataset is generated, not read; load it through the training config"),
    };
    let language = spec.get("lang").unwrap_or(spec.format.default_language()).to_string();
    let mut canonical = spec.clone();
    if spec.format == Format::Xm3600 {
        canonical.options.entry("captions".into()).or_insert_with(|| "first".into());
    }
    let mut dataset = ImageTextDataset {
        name: canonical.to_string(),
        format: spec.format,
        language,
        split,
        items: collector.items,
        skipped: collector.skipped,
    };
    if let Some(list) = spec.get("exclude") {
        dataset.exclude(Path::new(list))?;
    }
    if canonical.get("captions") == Some("first") {
        dataset.keep_first_captions();
    }
    Ok(dataset)
}

/// The splits present on disk for `spec` (ignoring its own `split=`).
pub fn available_splits(spec: &DatasetSpec) -> Vec<String> {
    let candidates: &[&str] = match spec.format {
        Format::UitOpenViic | Format::FlickrToken => &["train", "dev", "test"],
        Format::Ktvic => &["train", "test"],
        Format::Coco => &["train", "val"],
        Format::ViclipOt | Format::Karpathy => &["train", "val", "test"],
        _ => &[],
    };
    candidates
        .iter()
        .filter(|split| match spec.format {
            Format::Karpathy => karpathy::has_split(spec, split),
            Format::FlickrToken => flickr::split_list_file(spec, split).is_some(),
            Format::Csv | Format::Jsonl => false,
            _ => split_file(spec, split).is_ok_and(|p| p.is_file()),
        })
        .map(|s| s.to_string())
        .collect()
}

/// The annotation file of one split, for the formats that keep one file per split.
fn split_file(spec: &DatasetSpec, split: &str) -> Result<PathBuf> {
    match spec.format {
        Format::UitOpenViic => uit::annotation_file(spec, split),
        Format::Ktvic => coco::ktvic_file(spec, split).map(|(file, _)| file),
        Format::Coco => coco::coco_file(spec, split),
        Format::ViclipOt => coco::viclip_ot_file(spec, split),
        _ => bail!("{} keeps no file per split", spec.format),
    }
}

/// The spec's split, in its canonical spelling (`dev`, `valid`, `validation` → `val`).
pub fn requested_split(spec: &DatasetSpec) -> Option<String> {
    spec.get("split").map(|s| match s {
        "dev" | "valid" | "validation" => "val".to_string(),
        other => other.to_string(),
    })
}

/// `split` or an error saying which splits the format has.
fn require_split(spec: &DatasetSpec, known: &[&str]) -> Result<String> {
    match requested_split(spec) {
        Some(split) if known.contains(&split.as_str()) => Ok(split),
        Some(split) => bail!("{}: no split `{split}` in {}; expected one of {}", spec, spec.format, known.join(", ")),
        None => bail!("{}: say which split to read (split={})", spec, known.join("|")),
    }
}

/// The folder the spec points at: PATH itself, or the folder holding PATH when it is a file.
fn root_of(spec: &DatasetSpec) -> PathBuf {
    if spec.path.is_file() {
        spec.path.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        spec.path.clone()
    }
}

/// The image folder: `images=DIR` (relative to the root) or the first candidate that holds
/// `probe` (falling back to the first candidate).
fn image_dir(spec: &DatasetSpec, root: &Path, candidates: &[PathBuf], probe: Option<&str>) -> PathBuf {
    if let Some(dir) = spec.get("images") {
        return root.join(dir);
    }
    if let Some(probe) = probe {
        if let Some(found) = candidates.iter().find(|dir| dir.join(probe).is_file()) {
            return found.clone();
        }
    }
    candidates.iter().find(|dir| dir.is_dir()).or(candidates.first()).cloned().unwrap_or_else(|| root.to_path_buf())
}

/// Reads a text file, dropping a UTF-8 byte-order mark.
fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read annotation file {}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow!("{}: not UTF-8 (first bad byte at offset {})", path.display(), e.utf8_error().valid_up_to())
    })?;
    Ok(text.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(text))
}

/// Parses JSON into `T`; a mismatch names the file, the JSON path, the line and what was expected.
fn parse_json<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let inner = e.inner();
        let path = e.path().to_string();
        let at = if path == "." { String::new() } else { format!(" at `{path}`") };
        anyhow!("{origin}{at} (line {}, column {}): {}", inner.line(), inner.column(), strip_position(&inner.to_string()))
    })?;
    deserializer.end().map_err(|e| anyhow!("{origin} (line {}): trailing characters after the JSON value", e.line()))?;
    Ok(value)
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    parse_json(&read_text(path)?, &path.display().to_string())
}

/// serde_json appends " at line L column C"; the caller already says where.
fn strip_position(message: &str) -> &str {
    message.rfind(" at line ").map(|i| &message[..i]).unwrap_or(message)
}

/// An image id that may be written as a number or a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer or a string id")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Id, E> {
                Ok(Id(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Id, E> {
                Ok(Id(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Id, E> {
                Ok(Id(v.to_string()))
            }
        }
        deserializer.deserialize_any(IdVisitor)
    }
}

/// Lines of a text file with `\r\n` or `\n` endings, numbered from 1.
fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, line)| (i + 1, line.strip_suffix('\r').unwrap_or(line)))
}

/// The collector plus the split name, as every reader returns them.
type Read = (Collector, Option<String>);

/// "a string", "an array", ... for error messages about JSON values.
fn json_kind(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
