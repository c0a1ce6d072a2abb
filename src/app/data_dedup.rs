//! `otclip data dedup`: the images of one dataset that nearly duplicate images of another, as a
//! drop list for `exclude=FILE`.

use std::path::PathBuf;

use anyhow::Result;

use crate::data::dedup::{find_duplicates, write_drop_list, Duplicate};
use crate::data::DatasetSpec;

pub struct DedupTask {
    pub spec: DatasetSpec,
    pub against: DatasetSpec,
    /// Largest Hamming distance (of 64 bits) counted as a duplicate.
    pub max_distance: u32,
    pub out: PathBuf,
}

impl DedupTask {
    /// Finds the duplicates, prints each and a summary, and writes their ids to `out`.
    pub fn run(&self) -> Result<Vec<Duplicate>> {
        let (dataset, reference) = (self.spec.open()?, self.against.open()?);
        let duplicates = find_duplicates(&dataset, &reference, self.max_distance);
        for d in &duplicates {
            eprintln!("{} ≈ {} (distance {})", d.image.display(), d.matches.display(), d.distance);
        }
        write_drop_list(&self.out, &duplicates)?;
        println!(
            "{} of {} images of {} nearly duplicate {}; wrote their ids to {} (use `exclude={}`)",
            duplicates.len(),
            dataset.image_count(),
            dataset.name,
            reference.name,
            self.out.display(),
            self.out.display()
        );
        Ok(duplicates)
    }
}
