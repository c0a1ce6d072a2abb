//! BatchNorm for the convolutional towers, with explicit modes and no shared state.
//!
//! burn's own `BatchNorm` uses batch statistics whenever the backend tracks gradients and keeps
//! its running statistics in a state shared by every clone, which is wrong for a frozen tower and
//! for GradCache's two passes. Here the running statistics are plain (untrained) parameters, the
//! forward pass only reports the batch statistics it used, and the trainer folds them into the
//! running statistics once per update ([`BatchNormStats`], [`BatchNorm2d::update_running`]).

use burn::module::{Initializer, Param};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// How BatchNorm layers behave while the model trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchNormMode {
    /// Normalise with the batch's statistics and update the running ones (PyTorch's `train()`).
    #[default]
    Train,
    /// Normalise with the running statistics and never update them, also while training
    /// (open_clip's `lock_image_freeze_bn_stats`).
    Frozen,
}

impl std::str::FromStr for BatchNormMode {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "train" => Ok(Self::Train),
            "frozen" => Ok(Self::Frozen),
            other => anyhow::bail!("unknown batch_norm mode `{other}`: expected train or frozen"),
        }
    }
}

/// The settings of a [`BatchNorm2d`]; the defaults are PyTorch's.
#[derive(Config, Debug)]
pub struct BatchNorm2dConfig {
    /// The number of channels.
    pub num_features: usize,
    /// Added to the variance before the square root.
    #[config(default = 1e-5)]
    pub epsilon: f64,
    /// PyTorch's momentum: running ← (1 − momentum)·running + momentum·batch.
    #[config(default = 0.1)]
    pub momentum: f64,
}

impl BatchNorm2dConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> BatchNorm2d<B> {
        assert!(self.epsilon > 0.0 && self.epsilon.is_finite(), "BatchNorm epsilon must be positive, not {}", self.epsilon);
        assert!((0.0..=1.0).contains(&self.momentum), "BatchNorm momentum must be in [0, 1], not {}", self.momentum);
        let fixed = |init: Initializer| init.init::<B, 1, _>([self.num_features], device).set_require_grad(false);
        BatchNorm2d {
            gamma: Initializer::Ones.init([self.num_features], device),
            beta: Initializer::Zeros.init([self.num_features], device),
            running_mean: fixed(Initializer::Zeros),
            running_var: fixed(Initializer::Ones),
            epsilon: self.epsilon,
            momentum: self.momentum,
        }
    }
}

/// BatchNorm over `[batch, channels, height, width]`, with PyTorch's checkpoint names
/// (`weight`/`bias` load into `gamma`/`beta`; `running_mean`, `running_var`).
#[derive(Module, Debug)]
pub struct BatchNorm2d<B: Backend> {
    pub gamma: Param<Tensor<B, 1>>,
    pub beta: Param<Tensor<B, 1>>,
    /// Never trained: updated from [`BatchNormStats`] by [`Self::update_running`].
    pub running_mean: Param<Tensor<B, 1>>,
    pub running_var: Param<Tensor<B, 1>>,
    epsilon: f64,
    momentum: f64,
}

/// The batch statistics one forward pass used, layer by layer in forward order; `None` when the
/// pass normalised with running statistics (evaluation, or a frozen tower).
#[derive(Debug, Clone)]
pub struct BatchNormStats<B: Backend> {
    layers: Option<Vec<LayerStats<B>>>,
}

/// One layer's batch statistics: the mean and the biased variance over `count` values per channel.
#[derive(Debug, Clone)]
struct LayerStats<B: Backend> {
    mean: Tensor<B, 1>,
    variance: Tensor<B, 1>,
    count: usize,
}

impl<B: Backend> BatchNormStats<B> {
    /// A collector for a pass that uses batch statistics (`true`) or running ones (`false`).
    pub fn collecting(batch_statistics: bool) -> Self {
        Self { layers: batch_statistics.then(Vec::new) }
    }

    /// Whether this pass normalises with batch statistics.
    pub fn uses_batch_statistics(&self) -> bool {
        self.layers.is_some()
    }

    /// The statistics of several chunks of one update, combined as if the chunks had been one
    /// batch (the pooled mean and variance of every layer).
    pub fn merge(parts: Vec<Self>) -> Self {
        let mut parts = parts.into_iter().filter_map(|p| p.layers).filter(|l| !l.is_empty());
        let Some(mut total) = parts.next() else { return Self { layers: None } };
        for part in parts {
            assert_eq!(part.len(), total.len(), "chunks of one model have the same BatchNorm layers");
            for (sum, next) in total.iter_mut().zip(part) {
                let count = sum.count + next.count;
                let (a, b) = (sum.count as f64 / count as f64, next.count as f64 / count as f64);
                let mean = sum.mean.clone() * a + next.mean.clone() * b;
                // Law of total variance: within-chunk variance plus the spread of the chunk means.
                let spread = |m: &Tensor<B, 1>| (m.clone() - mean.clone()).powi_scalar(2);
                let variance = (sum.variance.clone() + spread(&sum.mean)) * a + (next.variance.clone() + spread(&next.mean)) * b;
                *sum = LayerStats { mean, variance, count };
            }
        }
        Self { layers: Some(total) }
    }

    /// The number of layers that reported statistics.
    pub fn len(&self) -> usize {
        self.layers.as_ref().map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The layers' statistics in forward order, for [`BatchNorm2d::absorb`].
    pub fn reader(self) -> StatsReader<B> {
        StatsReader(self.layers.unwrap_or_default().into_iter())
    }
}

/// Hands each BatchNorm layer its statistics, in forward order.
pub struct StatsReader<B: Backend>(std::vec::IntoIter<LayerStats<B>>);

impl<B: Backend> StatsReader<B> {
    /// Whether every layer's statistics were taken.
    pub fn is_done(&self) -> bool {
        self.0.len() == 0
    }
}

impl<B: Backend> BatchNorm2d<B> {
    /// Normalises `x`: with its own statistics when `stats` is collecting (recording them there),
    /// else with the running statistics.
    pub fn forward(&self, x: Tensor<B, 4>, stats: &mut BatchNormStats<B>) -> Tensor<B, 4> {
        let [batch, channels, height, width] = x.dims();
        let (mean, variance) = match stats.layers.as_mut() {
            Some(layers) => {
                let flat = x.clone().swap_dims(0, 1).reshape([channels, batch * height * width]);
                let mean = flat.clone().mean_dim(1);
                let variance = (flat - mean.clone()).powi_scalar(2).mean_dim(1);
                let (mean, variance) = (mean.reshape([channels]), variance.reshape([channels]));
                layers.push(LayerStats { mean: mean.clone().detach(), variance: variance.clone().detach(), count: batch * height * width });
                (mean, variance)
            }
            None => (self.running_mean.val(), self.running_var.val()),
        };
        let scale = self.gamma.val() / (variance + self.epsilon).sqrt();
        let shift = self.beta.val() - mean * scale.clone();
        let channel = |t: Tensor<B, 1>| t.reshape([1, channels, 1, 1]);
        x * channel(scale) + channel(shift)
    }

    /// Folds this layer's next statistics from `reader` into the running ones (none: unchanged).
    pub fn absorb(self, reader: &mut StatsReader<B>) -> Self {
        match reader.0.next() {
            Some(LayerStats { mean, variance, count }) => self.update_running(mean, variance, count),
            None => self,
        }
    }

    /// PyTorch's update from one batch: the running variance takes the unbiased batch variance.
    pub fn update_running(self, mean: Tensor<B, 1>, variance: Tensor<B, 1>, count: usize) -> Self {
        let m = self.momentum;
        let unbiased = if count > 1 { variance * (count as f64 / (count - 1) as f64) } else { variance };
        let blend = |running: Param<Tensor<B, 1>>, batch: Tensor<B, 1>| {
            running.map(|r| (r.clone() * (1.0 - m) + batch.to_device(&r.device()).cast(r.dtype()) * m).detach().set_require_grad(false))
        };
        Self { running_mean: blend(self.running_mean, mean), running_var: blend(self.running_var, unbiased), ..self }
    }
}
