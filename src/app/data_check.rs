//! `otclip data check`: open every split of a dataset, verify each image, count what is there and
//! what was skipped. [`run`] is the command; [`check`] returns the report and the datasets.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;
use serde_json::json;

use crate::data::{DatasetSpec, ImageTextDataset, Skipped, Verify};

#[derive(Debug, Clone, Serialize)]
pub struct SplitCounts {
    pub split: Option<String>,
    pub images: usize,
    pub captions: usize,
    /// Captions per image: min, mean, max.
    pub captions_per_image: (usize, f64, usize),
}

#[derive(Debug, Clone)]
pub struct CheckReport {
    pub dataset: String,
    pub language: String,
    pub splits: Vec<SplitCounts>,
    pub skipped: Vec<Skipped>,
}

fn counts(dataset: &ImageTextDataset) -> SplitCounts {
    let mut per_image: BTreeMap<&str, usize> = BTreeMap::new();
    for item in &dataset.items {
        *per_image.entry(item.image_id.as_str()).or_insert(0) += 1;
    }
    let images = per_image.len();
    let min = per_image.values().copied().min().unwrap_or(0);
    let max = per_image.values().copied().max().unwrap_or(0);
    let mean = if images == 0 { 0.0 } else { dataset.items.len() as f64 / images as f64 };
    SplitCounts { split: dataset.split.clone(), images, captions: dataset.items.len(), captions_per_image: (min, mean, max) }
}

/// Opens the spec's split, or every split on disk when it names none, decoding every image.
pub fn check(spec: &DatasetSpec) -> Result<(CheckReport, Vec<ImageTextDataset>)> {
    let open = |spec: &DatasetSpec| -> Result<ImageTextDataset> {
        let mut dataset = ImageTextDataset::read(spec)?;
        dataset.check_images(Verify::Decode);
        Ok(dataset)
    };
    let splits = if spec.get("split").is_some() { Vec::new() } else { spec.available_splits() };
    let datasets: Vec<ImageTextDataset> = if splits.is_empty() {
        vec![open(spec)?]
    } else {
        splits.iter().map(|s| open(&spec.with_option("split", s.name()))).collect::<Result<_>>()?
    };
    let report = CheckReport {
        dataset: spec.to_string(),
        language: datasets[0].language.clone(),
        splits: datasets.iter().map(counts).collect(),
        skipped: datasets.iter().flat_map(|d| d.skipped.iter().cloned()).collect(),
    };
    Ok((report, datasets))
}

impl CheckReport {
    pub fn images(&self) -> usize {
        self.splits.iter().map(|s| s.images).sum()
    }

    pub fn captions(&self) -> usize {
        self.splits.iter().map(|s| s.captions).sum()
    }

    pub fn skipped_by_reason(&self) -> BTreeMap<&'static str, usize> {
        let mut out = BTreeMap::new();
        for s in &self.skipped {
            *out.entry(s.reason.name()).or_insert(0) += 1;
        }
        out
    }

    fn per_image(&self) -> (usize, f64, usize) {
        let nonempty: Vec<&SplitCounts> = self.splits.iter().filter(|s| s.images > 0).collect();
        let min = nonempty.iter().map(|s| s.captions_per_image.0).min().unwrap_or(0);
        let max = nonempty.iter().map(|s| s.captions_per_image.2).max().unwrap_or(0);
        let mean = if self.images() == 0 { 0.0 } else { self.captions() as f64 / self.images() as f64 };
        (min, mean, max)
    }

    pub fn to_json(&self) -> serde_json::Value {
        let (min, mean, max) = self.per_image();
        let splits: serde_json::Map<String, serde_json::Value> = self
            .splits
            .iter()
            .map(|s| {
                let (lo, mean, hi) = s.captions_per_image;
                (
                    s.split.clone().unwrap_or_else(|| "all".into()),
                    json!({"images": s.images, "captions": s.captions, "captions_per_image": {"min": lo, "mean": mean, "max": hi}}),
                )
            })
            .collect();
        json!({
            "dataset": self.dataset,
            "language": self.language,
            "images": self.images(),
            "captions": self.captions(),
            "captions_per_image": {"min": min, "mean": mean, "max": max},
            "skipped": self.skipped_by_reason(),
            "skipped_total": self.skipped.len(),
            "skipped_items": self.skipped,
            "splits": splits,
        })
    }

    pub fn table(&self) -> String {
        let mut out = format!("{}\n", self.dataset);
        out += &format!("{:<8} {:>8} {:>9} {:>22}\n", "split", "images", "captions", "captions/image min/mean/max");
        for s in &self.splits {
            let (lo, mean, hi) = s.captions_per_image;
            out += &format!("{:<8} {:>8} {:>9} {:>14} / {:.2} / {}\n", s.split.as_deref().unwrap_or("all"), s.images, s.captions, lo, mean, hi);
        }
        if self.splits.len() > 1 {
            let (lo, mean, hi) = self.per_image();
            out += &format!("{:<8} {:>8} {:>9} {:>14} / {:.2} / {}\n", "total", self.images(), self.captions(), lo, mean, hi);
        }
        let reasons: Vec<String> = self.skipped_by_reason().iter().map(|(r, n)| format!("{r} {n}")).collect();
        out += &format!("skipped  {}{}\n", self.skipped.len(), if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) });
        out
    }
}

/// The command: checks `spec` and prints a warning per skipped item, then the table (or JSON).
pub fn run(spec: &DatasetSpec, json: bool) -> Result<CheckReport> {
    let (report, _) = check(spec)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        for s in &report.skipped {
            eprintln!("warning: skipped {} ({}{})", s.item, s.reason, s.detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default());
        }
        print!("{}", report.table());
    }
    Ok(report)
}
