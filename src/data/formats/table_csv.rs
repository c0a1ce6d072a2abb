//! CSV or TSV tables (`csv:`), one caption per row; see `table.rs` for the columns. `sep=` is
//! `tab`, `comma` or one character (default: tab if the header has one, else comma).

use anyhow::{anyhow, bail, Result};

use super::table::{Columns, TableFile, TableRows};
use crate::data::format::{DatasetFormat, DatasetSpec, FormatRead};

pub struct Csv;

impl DatasetFormat for Csv {
    fn name(&self) -> &'static str {
        "csv"
    }

    fn own_keys(&self) -> &'static [&'static str] {
        &["image_column", "caption_column", "id_column", "sep"]
    }

    fn read(&self, spec: &DatasetSpec) -> Result<FormatRead> {
        let TableFile { text, origin } = TableFile::read(spec)?;
        let mut rows = TableRows::new(spec);
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
            rows.add(id_at.map(get).unwrap_or(""), get(image_at), get(caption_at), split_at.map(get), format!("{origin}:{line}"));
        }
        Ok(rows.finish())
    }
}
