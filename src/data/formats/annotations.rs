//! What the readers share: where the files of a spec are, and reading annotation text and JSON
//! so that an error names the file, the line or JSON path, and what was expected.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;

use crate::data::format::{DatasetFormat, DatasetSpec};
use crate::data::split::Split;

/// The format's splits for which `on_disk` holds, in the format's order.
pub fn splits_on_disk(format: &dyn DatasetFormat, on_disk: impl Fn(Split) -> bool) -> Vec<Split> {
    format.splits().iter().copied().filter(|split| on_disk(*split)).collect()
}

/// The folder the spec points at: PATH itself, or the folder holding PATH when it is a file.
pub fn root_of(spec: &DatasetSpec) -> PathBuf {
    if spec.path.is_file() {
        spec.path.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        spec.path.clone()
    }
}

/// The image folder: `images=DIR` (relative to the root) or the first candidate that holds
/// `probe` (falling back to the first candidate).
pub fn image_dir(spec: &DatasetSpec, root: &Path, candidates: &[PathBuf], probe: Option<&str>) -> PathBuf {
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
pub fn read_text(path: &Path) -> Result<String> {
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

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
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

/// A JSON object whose keys must be unique: serde_json would keep the last of a repeated key
/// and silently drop the entries before it.
#[derive(Debug, Clone, PartialEq)]
pub struct UniqueMap<V>(pub BTreeMap<String, V>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = UniqueMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object with unique keys")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
                let mut entries = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    if entries.contains_key(&key) {
                        return Err(de::Error::custom(format!(
                            "key `{key}` appears twice in one object (the second entry would silently replace the first); expected each key once, with all its captions in one entry"
                        )));
                    }
                    let value = map.next_value()?;
                    entries.insert(key, value);
                }
                Ok(UniqueMap(entries))
            }
        }
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

/// Lines of a text file with `\r\n` or `\n` endings, numbered from 1.
pub fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, line)| (i + 1, line.strip_suffix('\r').unwrap_or(line)))
}

/// "a string", "an array", ... for error messages about JSON values.
pub fn json_kind(value: &serde_json::Value) -> &'static str {
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
