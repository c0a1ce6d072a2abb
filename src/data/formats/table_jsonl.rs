//! JSON Lines tables (`jsonl:`), one JSON object per caption; see `table.rs` for the columns
//! (here: keys). Numbers are accepted where a string is expected, e.g. for ids.

use anyhow::{anyhow, bail, Result};
use serde_json::{Map, Value};

use super::annotations::{json_kind, numbered_lines};
use super::table::{Columns, TableFile, TableRows};
use crate::data::format::{DatasetFormat, DatasetSpec, FormatRead};

pub struct Jsonl;

impl DatasetFormat for Jsonl {
    fn name(&self) -> &'static str {
        "jsonl"
    }

    fn own_keys(&self) -> &'static [&'static str] {
        &["image_column", "caption_column", "id_column"]
    }

    fn read(&self, spec: &DatasetSpec) -> Result<FormatRead> {
        let TableFile { text, origin } = TableFile::read(spec)?;
        let mut rows = TableRows::new(spec);
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
            rows.add(&id, &image, &caption, split.as_deref(), at);
        }
        Ok(rows.finish())
    }
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
