//! Kaggle's Flickr CSVs: Flickr8k's `captions.txt` (`image,caption`) and Flickr30k's
//! `results.csv` (`image_name| comment_number| comment`). They have no splits.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};

use super::annotations::{image_dir, read_text, root_of};
use super::flickr_token::image_candidates;
use crate::data::collector::Collector;
use crate::data::format::{DatasetFormat, DatasetSpec, FormatRead};

pub struct FlickrCsv;

impl DatasetFormat for FlickrCsv {
    fn name(&self) -> &'static str {
        "flickr-csv"
    }

    fn default_language(&self) -> &'static str {
        "en"
    }

    fn read(&self, spec: &DatasetSpec) -> Result<FormatRead> {
        if let Some(split) = spec.get("split") {
            bail!("{spec}: Kaggle's Flickr CSVs have no splits (split={split}); use the karpathy JSON for splits");
        }
        let file = if spec.path.is_file() {
            spec.path.clone()
        } else {
            ["captions.txt", "results.csv"]
                .iter()
                .map(|name| spec.path.join(name))
                .find(|p| p.is_file())
                .ok_or_else(|| anyhow!("{}: neither captions.txt nor results.csv in this folder", spec.path.display()))?
        };
        let text = read_text(&file)?;
        let origin = file.display().to_string();
        let header = text.lines().next().unwrap_or("");
        // Flickr30k's results.csv is `|`-separated with a space after each `|`.
        let (delimiter, image_col, caption_col) = if header.contains('|') { (b'|', "image_name", "comment") } else { (b',', "image", "caption") };
        let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).trim(csv::Trim::All).from_reader(text.as_bytes());
        let headers = reader.headers().map_err(|e| anyhow!("{origin}:1: cannot read the header: {e}"))?.clone();
        let column = |name: &str| {
            headers.iter().position(|h| h == name).ok_or_else(|| {
                anyhow!("{origin}:1: expected a column `{name}` in the header, found {}", headers.iter().collect::<Vec<_>>().join(", "))
            })
        };
        let (image_at, caption_at) = (column(image_col)?, column(caption_col)?);
        let root = root_of(spec);
        let mut collector = Collector::new();
        let mut images: Option<PathBuf> = None;
        for record in reader.records() {
            let record = record.map_err(|e| {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                anyhow!("{origin}:{line}: {e}")
            })?;
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            let (Some(name), Some(caption)) = (record.get(image_at), record.get(caption_at)) else {
                bail!("{origin}:{line}: expected {} fields ({image_col}, …, {caption_col}), found {}", headers.len(), record.len());
            };
            let dir = images.get_or_insert_with(|| image_dir(spec, &root, &image_candidates(&root), Some(name)));
            collector.push(name, dir, name, caption, || format!("{origin}:{line}"));
        }
        Ok(FormatRead { collector, split: None })
    }
}
