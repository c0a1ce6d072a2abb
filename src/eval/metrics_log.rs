//! Reading a run's `metrics.jsonl` back: one JSON object per line, a training step's (no
//! `split`) or a validation's (`"split": "val"`). The trainer writes it; the plots read it.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};

/// One optimiser step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepRow {
    pub step: usize,
    pub epoch: usize,
    pub loss: f64,
    /// The backbone's learning rate.
    pub lr: f64,
    /// The heads' learning rate (absent in rows written before parameter groups).
    pub head_lr: Option<f64>,
}

/// One validation, after epoch `epoch` (0-based); recalls as fractions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValRow {
    pub epoch: usize,
    pub step: usize,
    pub t2i_r1: f64,
    pub i2t_r1: f64,
    pub mean_recall: f64,
}

/// The rows of a `metrics.jsonl`, each kind sorted by step.
#[derive(Debug, Clone, Default)]
pub struct MetricsLog {
    pub steps: Vec<StepRow>,
    pub validations: Vec<ValRow>,
}

impl MetricsLog {
    /// Reads `path`; a missing file and a file without rows are errors that say so.
    pub fn read(path: &Path) -> Result<Self> {
        if !path.is_file() {
            bail!("{} does not exist: the run has written no metrics yet (is this a run folder, and has its training started?)", path.display());
        }
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let log = Self::parse(&text, path)?;
        if log.steps.is_empty() && log.validations.is_empty() {
            bail!("{} holds no rows yet: the run has not finished a training step", path.display());
        }
        Ok(log)
    }

    /// Parses the text of a `metrics.jsonl`; `path` names it in errors. Blank lines are skipped.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut log = Self::default();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = || format!("{} line {}", path.display(), index + 1);
            let value: Value = serde_json::from_str(line).map_err(|e| anyhow!("{}: not JSON ({e}); expected one JSON object per line", at()))?;
            let Value::Object(row) = value else {
                bail!("{}: expected a JSON object, got `{}`", at(), shorten(line));
            };
            match row.get("split") {
                None => log.steps.push(step_row(&row).map_err(|e| anyhow!("{}: {e}", at()))?),
                Some(Value::String(split)) if split == "val" => log.validations.push(val_row(&row).map_err(|e| anyhow!("{}: {e}", at()))?),
                Some(other) => bail!("{}: unknown \"split\" {other}; expected \"val\" (a validation) or no split (a training step)", at()),
            }
        }
        log.steps.sort_by_key(|row| row.step);
        log.validations.sort_by_key(|row| (row.epoch, row.step));
        Ok(log)
    }
}

fn step_row(row: &Map<String, Value>) -> Result<StepRow> {
    let what = "a training step";
    Ok(StepRow {
        step: count(row, "step", what)?,
        epoch: count(row, "epoch", what)?,
        loss: number(row, "loss", what)?,
        lr: number(row, "lr", what)?,
        head_lr: match row.get("head_lr") {
            None | Some(Value::Null) => None,
            Some(_) => Some(number(row, "head_lr", what)?),
        },
    })
}

fn val_row(row: &Map<String, Value>) -> Result<ValRow> {
    let what = "a validation";
    Ok(ValRow {
        epoch: count(row, "epoch", what)?,
        step: count(row, "step", what)?,
        t2i_r1: number(row, "t2i_r1", what)?,
        i2t_r1: number(row, "i2t_r1", what)?,
        mean_recall: number(row, "mean_recall", what)?,
    })
}

fn count(row: &Map<String, Value>, key: &str, what: &str) -> Result<usize> {
    match row.get(key) {
        Some(value) => value.as_u64().map(|v| v as usize).ok_or_else(|| anyhow!("{what} needs `{key}` as a whole number ≥ 0, got {value}")),
        None => bail!("{what} needs `{key}` (a whole number), which is missing"),
    }
}

fn number(row: &Map<String, Value>, key: &str, what: &str) -> Result<f64> {
    match row.get(key) {
        Some(value) => value.as_f64().filter(|v| v.is_finite()).ok_or_else(|| anyhow!("{what} needs `{key}` as a finite number, got {value}")),
        None => bail!("{what} needs `{key}` (a number), which is missing"),
    }
}

/// The start of a long line, for an error message.
fn shorten(line: &str) -> String {
    match line.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}
