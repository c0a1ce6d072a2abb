//! The registry of dataset formats: one file per format, each implementing
//! [`DatasetFormat`](crate::data::format::DatasetFormat), and one line per format in [`FORMATS`].
//! The files share `annotations.rs` (files, text and JSON with error paths), `coco_json.rs`
//! (the COCO-like layout) and `table.rs` (csv and jsonl columns); none imports this file.

mod annotations;
mod coco;
mod coco_json;
mod flickr_csv;
mod flickr_token;
mod karpathy;
mod ktvic;
mod synthetic;
mod table;
mod table_csv;
mod table_jsonl;
mod uit;
mod viclip_ot;
mod xm3600;

use anyhow::{anyhow, Result};

use super::format::DatasetFormat;

// ANCHOR: registry
/// Every format otclip reads, in the order an error lists them.
pub static FORMATS: &[&dyn DatasetFormat] = &[
    &uit::UitOpenViic,
    &ktvic::Ktvic,
    &xm3600::Xm3600,
    &flickr_token::FlickrToken,
    &flickr_csv::FlickrCsv,
    &karpathy::Karpathy,
    &coco::Coco,
    &viclip_ot::ViclipOt,
    &table_csv::Csv,
    &table_jsonl::Jsonl,
    &synthetic::Synthetic,
];
// ANCHOR_END: registry

/// The format called `name`; the error lists the known ones.
pub fn find(name: &str) -> Result<&'static dyn DatasetFormat> {
    FORMATS.iter().copied().find(|format| format.name() == name).ok_or_else(|| {
        let names: Vec<&str> = FORMATS.iter().map(|format| format.name()).collect();
        anyhow!("unknown dataset format `{name}`: expected one of {}", names.join(", "))
    })
}
