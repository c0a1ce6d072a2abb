//! The three splits of a dataset: train, val and test.

use anyhow::Result;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub fn name(&self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }

    /// A distinct random stream per split, mixed into the seed.
    pub fn stream(&self) -> u64 {
        match self {
            Split::Train => 0x7472_6169_6E00_0001,
            Split::Val => 0x7661_6C00_0000_0002,
            Split::Test => 0x7465_7374_0000_0003,
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
