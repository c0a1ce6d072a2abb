//! The commands' progress bar: `done` of `total` items counted already, rate and time left.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `total` `unit`s (`images`, `captions`), `done` of them finished by an earlier run.
pub fn progress_bar(total: usize, done: usize, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit}, {{per_sec}}, {{eta}} left");
    bar.set_style(ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar.set_position(done as u64);
    bar.reset_eta();
    bar
}
