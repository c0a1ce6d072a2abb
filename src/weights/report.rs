//! The load report: what a checkpoint load applied, missed, left unused and skipped on purpose.

use std::fmt;
use std::path::PathBuf;

/// What a load did: tensors applied, model tensors the checkpoint lacked, checkpoint tensors the
/// model has no place for, and known extras that were skipped on purpose (buffers, heads).
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// The weights file that was read.
    pub file: PathBuf,
    /// otclip paths of the tensors set from the checkpoint.
    pub applied: Vec<String>,
    /// otclip paths of the model tensors the checkpoint lacks (left at their initialisation).
    pub missing: Vec<String>,
    /// Checkpoint keys with no place in the model.
    pub unused: Vec<String>,
    /// Checkpoint keys the key map skips on purpose.
    pub ignored: Vec<String>,
}

impl LoadReport {
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "loaded {}: {} tensors applied, {} missing, {} unused, {} ignored",
            self.file.display(),
            self.applied.len(),
            self.missing.len(),
            self.unused.len(),
            self.ignored.len()
        )?;
        for (label, list) in [("missing", &self.missing), ("unused", &self.unused), ("ignored", &self.ignored)] {
            if !list.is_empty() {
                let shown: Vec<&str> = list.iter().take(12).map(String::as_str).collect();
                let more = if list.len() > shown.len() { format!(" … and {} more", list.len() - shown.len()) } else { String::new() };
                writeln!(f, "  {label}: {}{more}", shown.join(", "))?;
            }
        }
        Ok(())
    }
}
