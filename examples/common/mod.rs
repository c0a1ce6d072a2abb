//! What the benchmark examples share.

use anyhow::{bail, Result};

/// The peak resident memory of this process, in MiB (Linux's VmHWM).
pub fn peak_rss_mib() -> Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) else { bail!("no VmHWM in /proc/self/status") };
    let kib: f64 = line.split_whitespace().nth(1).unwrap_or("0").parse()?;
    Ok(kib / 1024.0)
}
