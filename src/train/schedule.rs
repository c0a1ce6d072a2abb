//! Learning-rate schedules: linear warm-up then a cosine decay to `min_lr`, or the ViCLIP-OT
//! recipe's linear warm-up over whole epochs followed by PyTorch's one-cycle cosine.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmupCosine {
    pub lr: f64,
    pub min_lr: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl WarmupCosine {
    /// The learning rate for optimiser step `step` (0-based).
    pub fn at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / decay_steps as f64).min(1.0);
        self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// `[optim.one_cycle]`: the recipe's schedule. When present it replaces `warmup_steps` and
/// `min_lr`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneCycleConfig {
    /// Whole epochs of linear warm-up before the cycle (the recipe: 2).
    pub warmup_epochs: usize,
    /// The warm-up's first factor of `lr`, rising linearly to 1 (PyTorch's `LinearLR`
    /// `start_factor`; the recipe: 0.01).
    pub warmup_start_factor: f64,
    /// The share of the cycle spent rising from `lr / div_factor` to `lr` (PyTorch's
    /// `OneCycleLR` `pct_start`, default 0.3).
    pub pct_start: f64,
    /// The cycle starts at `lr / div_factor` (default 25).
    pub div_factor: f64,
    /// The cycle ends at `lr / div_factor / final_div_factor` (default 1e4).
    pub final_div_factor: f64,
}

impl OneCycleConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        let fields = [("pct_start", self.pct_start), ("div_factor", self.div_factor), ("final_div_factor", self.final_div_factor)];
        if !(self.warmup_start_factor > 0.0 && self.warmup_start_factor <= 1.0) {
            anyhow::bail!("optim.one_cycle.warmup_start_factor = {}: expected a factor in (0, 1]", self.warmup_start_factor);
        }
        if !(self.pct_start > 0.0 && self.pct_start < 1.0) {
            anyhow::bail!("optim.one_cycle.pct_start = {}: expected a share in (0, 1)", self.pct_start);
        }
        match fields.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            Some((key, value)) => anyhow::bail!("optim.one_cycle.{key} = {value}: expected a positive number"),
            None => Ok(()),
        }
    }
}

/// The schedule of a run, in optimiser steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    WarmupCosine(WarmupCosine),
    /// Linear warm-up over `warmup_steps`, then one cycle over the remaining steps.
    OneCycle { lr: f64, warmup_steps: usize, total_steps: usize, config: OneCycleConfig },
}

impl Schedule {
    /// The learning rate for optimiser step `step` (0-based).
    pub fn at(&self, step: usize) -> f64 {
        match *self {
            Schedule::WarmupCosine(schedule) => schedule.at(step),
            Schedule::OneCycle { lr, warmup_steps, total_steps, config } => {
                if step < warmup_steps {
                    // LinearLR: start_factor → 1 over warmup_steps.
                    let progress = step as f64 / warmup_steps as f64;
                    return lr * (config.warmup_start_factor + (1.0 - config.warmup_start_factor) * progress);
                }
                one_cycle(lr, &config, step - warmup_steps, total_steps.saturating_sub(warmup_steps))
            }
        }
    }
}

/// PyTorch's `OneCycleLR` with `anneal_strategy="cos"` and two phases, at step `step` of `steps`.
fn one_cycle(max_lr: f64, config: &OneCycleConfig, step: usize, steps: usize) -> f64 {
    let initial = max_lr / config.div_factor;
    let min = initial / config.final_div_factor;
    let rise_end = config.pct_start * steps as f64 - 1.0;
    let fall_end = steps as f64 - 1.0;
    let anneal = |start: f64, end: f64, pct: f64| end + (start - end) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0);
    let step = step as f64;
    if step <= rise_end {
        anneal(initial, max_lr, if rise_end > 0.0 { step / rise_end } else { 1.0 })
    } else {
        let span = (fall_end - rise_end).max(1e-12);
        anneal(max_lr, min, ((step - rise_end) / span).min(1.0))
    }
}
