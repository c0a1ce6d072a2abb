//! The three splits of a dataset, typed. Formats whose files spell them otherwise (`dev`,
//! Karpathy's `restval`) map their names to these in their own file.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::seed::SplitStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    /// `name` spelt canonically when it names a split (`dev`, `valid`, `validation` → `val`),
    /// else as written.
    pub fn canonical_name(name: &str) -> &str {
        name.parse::<Split>().map(|split| split.name()).unwrap_or(name)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }

    /// The split's own random stream of the built-in data.
    pub fn stream(&self) -> SplitStream {
        match self {
            Split::Train => SplitStream::Train,
            Split::Val => SplitStream::Val,
            Split::Test => SplitStream::Test,
        }
    }
}

impl std::str::FromStr for Split {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> Result<Self> {
        match text {
            "train" => Ok(Split::Train),
            "val" | "dev" | "valid" | "validation" => Ok(Split::Val),
            "test" => Ok(Split::Test),
            other => anyhow::bail!("unknown split `{other}`: expected train, val or test"),
        }
    }
}
