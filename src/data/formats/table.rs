//! Generic tables: CSV/TSV (`csv:`) and JSON Lines (`jsonl:`). Columns `image` (a path relative to
//! the file) and `caption`, optionally `image_id` to group captions, and `split` to filter; or
//! open_clip's `filepath` and `title`. `image_column=`, `caption_column=`, `id_column=` and
//! `sep=` (csv: `tab`, `comma` or one character; default: tab if the header has one) override.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use serde_json::{Map, Value};

use super::{json_kind, numbered_lines, read_text, requested_split, Read};
use crate::data::collector::Collector;
use crate::data::spec::{DatasetSpec, Format};

/// Column names: explicit, or the first default that the header has.
struct Columns {
    image: String,
    caption: String,
    id: Option<String>,
    split: Option<String>,
}

impl Columns {
    fn resolve(spec: &DatasetSpec, has: impl Fn(&str) -> bool, origin: &str, found: &str) -> Result<Self> {
        let pick = |key: &str, defaults: &[&str]| -> Result<String> {
            if let Some(name) = spec.get(key) {
                return if has(name) { Ok(name.to_string()) } else { bail!("{origin}: expected a column `{name}` ({key}); found {found}") };
            }
            defaults.iter().find(|d| has(d)).map(|d| d.to_string()).ok_or_else(|| {
                anyhow!("{origin}: expected a column {} (or set {key}=...); found {found}", defaults.iter().map(|d| format!("`{d}`")).collect::<Vec<_>>().join(" or "))
            })
        };
        let image = pick("image_column", &["image", "filepath"])?;
        let caption = pick("caption_column", &["caption", "title"])?;
        let id = match spec.get("id_column") {
            Some(name) if has(name) => Some(name.to_string()),
            Some(name) => bail!("{origin}: expected a column `{name}` (id_column); found {found}"),
            None => has("image_id").then(|| "image_id".to_string()),
        };
        let split = has("split").then(|| "split".to_string());
        if requested_split(spec).is_some() && split.is_none() {
            bail!("{origin}: split={} needs a `split` column; found {found}", spec.get("split").unwrap_or(""));
        }
        Ok(Columns { image, caption, id, split })
    }
}

pub fn read(spec: &DatasetSpec) -> Result<Read> {
    if !spec.path.is_file() {
        bail!("{}: {} expects the table file itself as PATH", spec.path.display(), spec.format);
    }
    let text = read_text(&spec.path)?;
    let origin = spec.path.display().to_string();
    let root = spec.path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = spec.get("images").map(|d| root.join(d)).unwrap_or_else(|| root.clone());
    let requested = requested_split(spec);
    let mut collector = Collector::new();
    let mut add = |id: &str, image: &str, caption: &str, split: Option<&str>, at: String| {
        let split = split.map(|s| if ["dev", "valid", "validation"].contains(&s) { "val" } else { s });
        if requested.is_some() && split != requested.as_deref() {
            return;
        }
        collector.push(if id.is_empty() { image } else { id }, &base, image, caption, || at);
    };
    if spec.format == Format::Jsonl {
        let mut columns: Option<Columns> = None;
        for (number, line) in numbered_lines(&text) {
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(line).map_err(|e| anyhow!("{origin}:{number}: not a JSON object: {e}"))?;
            let object = value.as_object().ok_or_else(|| anyhow!("{origin}:{number}: expected a JSON object, found {}", json_kind(&value)))?;
            let at = format!("{origin}:{number}");
            if columns.is_none() {
                let found = object.keys().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
                columns = Some(Columns::resolve(spec, |k| object.contains_key(k), &at, &found)?);
            }
            let c = columns.as_ref().expect("resolved above");
            let image = field(object, &c.image, &at)?;
            let caption = field(object, &c.caption, &at)?;
            let id = match &c.id {
                Some(name) => field(object, name, &at)?,
                None => String::new(),
            };
            let split = match &c.split {
                Some(name) => Some(field(object, name, &at)?),
                None => None,
            };
            add(&id, &image, &caption, split.as_deref(), at);
        }
    } else {
        let header = text.lines().next().unwrap_or("");
        let delimiter = match spec.get("sep") {
            Some("tab") | Some("\\t") => b'\t',
            Some("comma") => b',',
            Some(s) if s.len() == 1 => s.as_bytes()[0],
            Some(s) => bail!("{spec}: sep={s}; expected tab, comma or one character"),
            None if header.contains('\t') => b'\t',
            None => b',',
        };
        let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).from_reader(text.as_bytes());
        let headers = reader.headers().map_err(|e| anyhow!("{origin}:1: cannot read the header: {e}"))?.clone();
        let found = headers.iter().map(|h| format!("`{h}`")).collect::<Vec<_>>().join(", ");
        let c = Columns::resolve(spec, |k| headers.iter().any(|h| h == k), &format!("{origin}:1"), &found)?;
        let at = |name: &str| headers.iter().position(|h| h == name).expect("resolved column");
        let (image_at, caption_at) = (at(&c.image), at(&c.caption));
        let id_at = c.id.as_deref().map(at);
        let split_at = c.split.as_deref().map(at);
        for record in reader.records() {
            let record = record.map_err(|e| anyhow!("{origin}:{}: {e}", e.position().map(|p| p.line()).unwrap_or(0)))?;
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            let get = |i: usize| record.get(i).unwrap_or("");
            add(
                id_at.map(get).unwrap_or(""),
                get(image_at),
                get(caption_at),
                split_at.map(get),
                format!("{origin}:{line}"),
            );
        }
    }
    Ok((collector, requested))
}

/// A string field (numbers are accepted for ids and written as text).
fn field(object: &Map<String, Value>, name: &str, at: &str) -> Result<String> {
    match object.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(other) => bail!("{at}: at `{name}`: expected a string, found {}", json_kind(other)),
        None => bail!("{at}: expected a string field `{name}`"),
    }
}
