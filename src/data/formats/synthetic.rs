//! `synthetic`: the built-in generated dataset (`data/synthetic.rs`). A spec names it without a
//! PATH; it is generated from the training config, never read from files.

use anyhow::{bail, Result};

use crate::data::format::{DatasetFormat, DatasetSpec, FormatRead};

pub struct Synthetic;

impl DatasetFormat for Synthetic {
    fn name(&self) -> &'static str {
        "synthetic"
    }

    fn needs_path(&self) -> bool {
        false
    }

    fn read(&self, _spec: &DatasetSpec) -> Result<FormatRead> {
        bail!("the synthetic dataset is generated, not read; load it through the training config")
    }
}
