//! Data-parallel workers on burn-collective: one replica per device, each a peer of one
//! all-reduce group. Three all-reduces per update: the rows' count, the gathered embeddings
//! (each worker sums its own rows into a zero matrix), and every parameter gradient in one flat
//! vector. Every worker then holds the same gradients and steps its replica identically.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::TensorPrimitive;
use burn_collective::{AllReduceStrategy, CollectiveConfig, CollectiveError, PeerId, ReduceOperation};

use crate::model::DualEncoder;

/// Where one worker sits among the workers of a run.
#[derive(Debug, Clone)]
pub struct Peer {
    /// 0 for the leader, which validates and writes the run folder.
    pub rank: usize,
    /// Workers in all, over every process.
    pub world: usize,
    /// Workers in this process. They share the backend's random generator, so they take turns
    /// to seed and draw dropout masks ([`Peer::take_turn`]).
    pub in_process: usize,
    /// How long an exchange waits for the other workers.
    pub timeout: Duration,
    /// Bytes this worker has put into all-reduces since [`Peer::take_sent`].
    sent: Arc<AtomicU64>,
}

/// Serialises seeding and encoding among the workers of one process.
static ENCODE_TURN: Mutex<()> = Mutex::new(());

/// A worker's place before it joins: its rank, and the group it joins.
#[derive(Debug, Clone)]
pub struct Membership {
    pub rank: usize,
    pub world: usize,
    /// Workers in this process.
    pub in_process: usize,
    pub config: CollectiveConfig,
    /// How long an exchange waits for the other workers.
    pub timeout: Duration,
}

impl Membership {
    /// Joins the group (blocks until every worker has joined).
    pub fn join<B: Backend>(&self, device: &B::Device) -> Result<Peer> {
        let Self { rank, world, in_process, timeout, .. } = *self;
        let (device, config) = (device.clone(), self.config.clone());
        let peer = Peer { rank, world, in_process, timeout, sent: Arc::default() };
        peer.waiting("join the others", move || burn_collective::register::<B>(PeerId::from(rank), device, config))?;
        Ok(peer)
    }
}

impl Peer {
    /// The group of `workers` threads of this process (local all-reduce only).
    pub fn local_config(workers: usize) -> CollectiveConfig {
        // Every worker receives the same sum, whatever the order it was added in.
        CollectiveConfig::default().with_num_devices(workers).with_local_all_reduce_strategy(AllReduceStrategy::Tree(2))
    }

    /// The workers of other processes, or of this one when all are here, in words.
    fn others(&self) -> String {
        let first_here = self.rank - self.rank % self.in_process.max(1);
        let elsewhere: Vec<String> = (0..self.world).filter(|r| !(first_here..first_here + self.in_process).contains(r)).map(|r| r.to_string()).collect();
        match elsewhere.as_slice() {
            [] => "another worker of this process".into(),
            [one] => format!("worker {one} (another process)"),
            many => format!("one of workers {} (other processes)", many.join(", ")),
        }
    }

    /// Bytes this worker has handed to all-reduces since the last call (what moves over the
    /// links on top of that depends on the all-reduce's strategy).
    pub fn take_sent(&self) -> u64 {
        self.sent.swap(0, Ordering::Relaxed)
    }

    pub fn is_leader(&self) -> bool {
        self.rank == 0
    }

    /// Holds the process's turn to seed the generator and encode, when workers share it.
    pub fn take_turn(&self) -> Option<std::sync::MutexGuard<'static, ()>> {
        (self.in_process > 1).then(|| ENCODE_TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// The element-wise sum of `tensor` over every worker.
    pub fn sum<B: Backend, const D: usize>(&self, tensor: Tensor<B, D>) -> Result<Tensor<B, D>> {
        let bytes = tensor.shape().num_elements() * tensor.dtype().size();
        self.sent.fetch_add(bytes as u64, Ordering::Relaxed);
        let (id, primitive) = (PeerId::from(self.rank), tensor.into_primitive().tensor());
        let summed = self.waiting("sum a tensor with the others", move || burn_collective::all_reduce::<B>(id, primitive, ReduceOperation::Sum))?;
        Ok(Tensor::from_primitive(TensorPrimitive::Float(summed)))
    }

    /// Runs a blocking collective call, and gives up with an error after the timeout (the call
    /// itself, which no other worker will answer, is left behind).
    fn waiting<T: Send + 'static>(&self, what: &str, call: impl FnOnce() -> Result<T, CollectiveError> + Send + 'static) -> Result<T> {
        let (sender, receiver) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name(format!("otclip-exchange-{}", self.rank))
            .spawn(move || {
                let _ = sender.send(call());
            })
            .map_err(|e| anyhow!("worker {}: cannot start an exchange: {e}", self.rank))?;
        let (rank, world) = (self.rank, self.world);
        match receiver.recv_timeout(self.timeout) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(anyhow!("worker {rank} of {world} could not {what}: {error:?}; {} stopped", self.others())),
            Err(RecvTimeoutError::Timeout) => Err(anyhow!(
                "worker {rank} of {world} waited {:.0} s to {what}, and {} did not come (stopped, or far \
                 behind; train.worker_timeout_s sets the wait)",
                self.timeout.as_secs_f64(),
                self.others()
            )),
            Err(RecvTimeoutError::Disconnected) => Err(anyhow!("worker {rank} of {world} could not {what}: the exchange failed; {} stopped", self.others())),
        }
    }

    /// Every worker's `rows` (`width` columns; `None`: no rows), stacked in rank order, where
    /// `counts` gives each worker's number of rows; exact, since each element is one worker's
    /// value plus zeros.
    pub fn gather_rows<B: Backend>(&self, rows: Option<Tensor<B, 2>>, width: usize, counts: &[usize], device: &B::Device) -> Result<Tensor<B, 2>> {
        let own = rows.as_ref().map_or(0, |r| r.dims()[0]);
        if counts.len() != self.world || counts[self.rank] != own || rows.as_ref().is_some_and(|r| r.dims()[1] != width) {
            bail!("worker {}: holds {own} rows of width {width}, but the workers' counts are {counts:?}", self.rank);
        }
        let before: usize = counts[..self.rank].iter().sum();
        let after: usize = counts[self.rank + 1..].iter().sum();
        let mut parts = Vec::with_capacity(3);
        if before > 0 {
            parts.push(Tensor::zeros([before, width], device));
        }
        parts.extend(rows);
        if after > 0 {
            parts.push(Tensor::zeros([after, width], device));
        }
        self.sum(Tensor::cat(parts, 0))
    }

    /// Every parameter's gradient summed over the workers, in one all-reduce of all of them
    /// flattened in the model's order. A worker without a parameter's gradient adds zeros; a
    /// parameter that no worker has a gradient for (an unused pooler) stays without one, so that
    /// the optimiser leaves it alone as on one device.
    pub fn sum_gradients<B: AutodiffBackend>(&self, model: &DualEncoder<B>, mut grads: GradientsParams) -> Result<GradientsParams> {
        struct Flatten<'a, B: AutodiffBackend> {
            grads: &'a mut GradientsParams,
            parts: Vec<Tensor<B::InnerBackend, 1>>,
            present: Vec<f32>,
        }
        impl<B: AutodiffBackend> ModuleVisitor<B> for Flatten<'_, B> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                let grad = self.grads.remove::<B::InnerBackend, D>(param.id);
                self.present.push(if grad.is_some() { 1.0 } else { 0.0 });
                let grad = grad.unwrap_or_else(|| param.val().inner().zeros_like());
                self.parts.push(grad.reshape([-1]));
            }
        }
        let mut flatten = Flatten::<B> { grads: &mut grads, parts: Vec::new(), present: Vec::new() };
        model.visit(&mut flatten);
        let Flatten { mut parts, present, .. } = flatten;
        let device = parts.first().map(Tensor::device).ok_or_else(|| anyhow!("the model has no parameters"))?;
        let count = present.len();
        parts.push(Tensor::from_floats(present.as_slice(), &device));
        let summed = self.sum(Tensor::cat(parts, 0))?;
        let total = summed.dims()[0];
        let present: Vec<bool> = summed.clone().narrow(0, total - count, count).into_data().convert::<f32>().iter::<f32>().map(|p| p > 0.0).collect();

        struct Unflatten<B: Backend> {
            flat: Tensor<B, 1>,
            present: Vec<bool>,
            index: usize,
            at: usize,
            grads: GradientsParams,
        }
        impl<B: AutodiffBackend> ModuleVisitor<B> for Unflatten<B::InnerBackend> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                let shape = param.val().shape();
                let len = shape.num_elements();
                if self.present[self.index] {
                    self.grads.register::<B::InnerBackend, D>(param.id, self.flat.clone().narrow(0, self.at, len).reshape(shape));
                }
                self.index += 1;
                self.at += len;
            }
        }
        let mut unflatten = Unflatten::<B::InnerBackend> { flat: summed, present, index: 0, at: 0, grads: GradientsParams::new() };
        model.visit(&mut unflatten);
        Ok(unflatten.grads)
    }

    /// The leader's parameter values on every worker (the others contribute zeros).
    pub fn share_parameters<B: AutodiffBackend>(&self, model: DualEncoder<B>) -> Result<DualEncoder<B>> {
        struct Flatten<B: AutodiffBackend> {
            leader: bool,
            parts: Vec<Tensor<B::InnerBackend, 1>>,
        }
        impl<B: AutodiffBackend> ModuleVisitor<B> for Flatten<B> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                let value = param.val().inner().reshape([-1]);
                self.parts.push(if self.leader { value } else { value.zeros_like() });
            }
        }
        let mut flatten = Flatten::<B> { leader: self.is_leader(), parts: Vec::new() };
        model.visit(&mut flatten);
        let shared = self.sum(Tensor::cat(flatten.parts, 0))?;

        struct Assign<B: Backend> {
            flat: Tensor<B, 1>,
            at: usize,
        }
        impl<B: AutodiffBackend> ModuleMapper<B> for Assign<B::InnerBackend> {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
                let shape = param.val().shape();
                let len = shape.num_elements();
                let shared = Tensor::<B, D>::from_inner(self.flat.clone().narrow(0, self.at, len).reshape(shape));
                self.at += len;
                param.map(|value| if value.is_require_grad() { shared.require_grad() } else { shared })
            }
        }
        Ok(model.map(&mut Assign::<B::InnerBackend> { flat: shared, at: 0 }))
    }

    /// Leaves the group (every worker calls it once, at the end of the run).
    pub fn leave<B: Backend>(&self) -> Result<()> {
        let id = PeerId::from(self.rank);
        self.waiting("leave the group", move || burn_collective::finish_collective::<B>(id))
    }
}
