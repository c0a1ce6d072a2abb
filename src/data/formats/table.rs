//! What the generic tables (`csv:` and `jsonl:`) share: the table file, the columns to read, and
//! where the rows go. Columns `image` (a path relative to the file) and `caption`, optionally
//! `image_id` to group captions and `split` to filter; or open_clip's `filepath` and `title`.
//! `image_column=`, `caption_column=` and `id_column=` name others.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};

use super::annotations::read_text;
use crate::data::collector::Collector;
use crate::data::format::{DatasetSpec, FormatRead};
use crate::data::split::Split;

/// The table file PATH.
pub struct TableFile {
    pub text: String,
    /// The file, as errors name it.
    pub origin: String,
}

impl TableFile {
    pub fn read(spec: &DatasetSpec) -> Result<Self> {
        if !spec.path.is_file() {
            bail!("{}: {} expects the table file itself as PATH", spec.path.display(), spec.format);
        }
        Ok(TableFile { text: read_text(&spec.path)?, origin: spec.path.display().to_string() })
    }
}

/// Column names: explicit, or the first default that the header has.
pub struct Columns {
    pub image: String,
    pub caption: String,
    pub id: Option<String>,
    pub split: Option<String>,
}

impl Columns {
    /// `has` says whether the table has a column; `origin` and `found` (the columns it has) go
    /// into the error.
    pub fn resolve(spec: &DatasetSpec, has: impl Fn(&str) -> bool, origin: &str, found: &str) -> Result<Self> {
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
        if spec.requested_split().is_some() && split.is_none() {
            bail!("{origin}: split={} needs a `split` column; found {found}", spec.get("split").unwrap_or(""));
        }
        Ok(Columns { image, caption, id, split })
    }
}

/// Where a table's rows go: the rows of the requested split, with images under the table's folder.
pub struct TableRows {
    collector: Collector,
    /// The folder image paths are relative to.
    base: PathBuf,
    requested: Option<String>,
}

impl TableRows {
    pub fn new(spec: &DatasetSpec) -> Self {
        let root = spec.path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = spec.get("images").map(|d| root.join(d)).unwrap_or_else(|| root.clone());
        TableRows { collector: Collector::new(), base, requested: spec.requested_split() }
    }

    /// One row; `id` empty: the image path is the id. `at` names the row for a warning.
    pub fn add(&mut self, id: &str, image: &str, caption: &str, split: Option<&str>, at: String) {
        if self.requested.is_some() && split.map(Split::canonical_name) != self.requested.as_deref() {
            return;
        }
        self.collector.push(if id.is_empty() { image } else { id }, &self.base, image, caption, || at);
    }

    pub fn finish(self) -> FormatRead {
        FormatRead { collector: self.collector, split: self.requested }
    }
}
