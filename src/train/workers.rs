//! Data-parallel training: one worker thread per device, each with its own replica, joined
//! through burn-collective with the workers of the other processes (nodes), if any. The first
//! worker of a process to fail stops the others there, and the error names it; the other
//! processes stop when their next exchange fails or times out.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use burn::tensor::backend::AutodiffBackend;
use burn_collective::{AllReduceStrategy, CollectiveConfig};
use otclip_kernels::SinkhornBackend;

use super::collective::{Membership, Peer};
use super::config::TrainConfig;
use super::trainer::{run, TrainOptions, TrainSummary};

/// Trains `config` with one worker per device in `devices` (the update split among them) and
/// returns the leader's summary. Worker 0 writes the run folder.
pub fn train_on_devices<B: AutodiffBackend + SinkhornBackend>(config: &TrainConfig, run_dir: &Path, devices: &[B::Device], options: &TrainOptions) -> Result<TrainSummary> {
    train_on_nodes::<B>(config, run_dir, devices, options, None)
}

/// How this process joins the processes of a run on several machines (torchrun's nodes): each
/// runs `otclip train` with the same config and device count, and its own rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nodes {
    /// Processes in all.
    pub count: usize,
    /// This process's rank; node 0 starts the orchestrator and writes the run folder.
    pub rank: usize,
    /// `HOST:PORT` of the orchestrator (on node 0's machine).
    pub orchestrator: String,
    /// `HOST:PORT` where this node serves its tensors to the others; the host must be reachable
    /// from them.
    pub address: String,
}

impl Nodes {
    /// The group of `local` workers on each of these nodes.
    fn group(&self, local: usize) -> Result<CollectiveConfig> {
        if self.count == 0 || self.rank >= self.count {
            bail!("--node-rank {} with --nodes {}: expected a rank from 0 to {}", self.rank, self.count, self.count.saturating_sub(1));
        }
        let port = port_of(&self.address, "--node-address")?;
        port_of(&self.orchestrator, "--orchestrator")?;
        let address = |text: &str| text.parse().map_err(|e| anyhow!("bad address `{text}`: {e}"));
        // Tree, not the default ring: the ring refuses tensors smaller than the node count, and
        // only the tree reports a lost node.
        Ok(Peer::local_config(local)
            .with_num_nodes(self.count as u32)
            .with_global_address(address(&format!("ws://{}", self.orchestrator))?)
            .with_node_address(address(&format!("ws://{}", self.address))?)
            .with_data_service_port(port)
            .with_global_all_reduce_strategy(AllReduceStrategy::Tree(2)))
    }
}

fn port_of(address: &str, flag: &str) -> Result<u16> {
    address.rsplit_once(':').and_then(|(_, port)| port.parse().ok()).ok_or_else(|| anyhow!("{flag} {address}: expected HOST:PORT"))
}

/// Starts the orchestrator that the nodes' workers meet through, in the background; it stops
/// the process on Ctrl-C or SIGTERM, as an unhandled signal would.
fn start_orchestrator(port: u16) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().map_err(|e| anyhow!("cannot start the orchestrator: {e}"))?;
    std::thread::Builder::new()
        .name("otclip-orchestrator".into())
        .spawn(move || {
            runtime.block_on(burn_collective::start_global_orchestrator(port));
            std::process::exit(130);
        })
        .map_err(|e| anyhow!("cannot start the orchestrator: {e}"))?;
    Ok(())
}

/// [`train_on_devices`], as one of `nodes` processes when given.
pub fn train_on_nodes<B: AutodiffBackend + SinkhornBackend>(
    config: &TrainConfig,
    run_dir: &Path,
    devices: &[B::Device],
    options: &TrainOptions,
    nodes: Option<&Nodes>,
) -> Result<TrainSummary> {
    let local = devices.len();
    if local == 0 {
        bail!("no device to train on");
    }
    let (group, node_rank, node_count) = match nodes {
        Some(nodes) => (nodes.group(local)?, nodes.rank, nodes.count),
        None => (Peer::local_config(local), 0, 1),
    };
    let world = local * node_count;
    if nodes.is_some() {
        // Before burn-collective's servers install their own, which log every connection.
        let filter = tracing_subscriber::EnvFilter::try_from_env("OTCLIP_LOG").unwrap_or_else(|_| "warn".into());
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    }
    if let Some(nodes) = nodes.filter(|nodes| nodes.rank == 0) {
        start_orchestrator(port_of(&nodes.orchestrator, "--orchestrator")?)?;
    }
    let timeout = Duration::from_secs_f64(config.train.worker_timeout_s);
    // A group left over from an earlier run in this process would refuse the new one.
    reset_group::<B>();
    let (sender, receiver) = mpsc::channel();
    let mut results: Vec<Option<Result<TrainSummary>>> = (0..local).map(|_| None).collect();
    let mut first_failure = None;
    std::thread::scope(|scope| -> Result<()> {
        for (index, device) in devices.iter().enumerate() {
            let rank = node_rank * local + index;
            let membership = Membership { rank, world, in_process: local, config: group.clone(), timeout };
            let sender = sender.clone();
            std::thread::Builder::new()
                .name(format!("otclip-worker-{rank}"))
                .spawn_scoped(scope, move || {
                    let result = catch_unwind(AssertUnwindSafe(|| run::<B>(config, run_dir, device, options, Some(membership))))
                        .unwrap_or_else(|panic| Err(anyhow!("panicked: {}", panic_text(panic.as_ref()))));
                    let _ = sender.send((index, result));
                })
                .map_err(|e| {
                    // The workers already started wait to join this one: release them.
                    reset_group::<B>();
                    anyhow!("cannot start worker {rank}: {e}")
                })?;
        }
        drop(sender);
        for (index, result) in receiver {
            if result.is_err() && first_failure.is_none() {
                first_failure = Some(index);
                // The others may wait in an exchange for this one: release them with an error.
                reset_group::<B>();
            }
            results[index] = Some(result);
        }
        Ok(())
    })?;
    if let Some(index) = first_failure {
        let error = results[index].take().and_then(Result::err).unwrap_or_else(|| anyhow!("no result"));
        let rank = node_rank * local + index;
        return Err(error.context(format!("worker {rank} of {world} (device {:?}) failed, and this process's workers stopped", devices[index])));
    }
    results[0].take().unwrap_or_else(|| Err(anyhow!("worker {} ended without a result", node_rank * local)))
}

/// Empties this process's group, releasing any worker waiting in it with an error. A group whose
/// server died with a lost peer cannot be reset (burn-collective panics): the workers waiting
/// in it have had their error already.
fn reset_group<B: AutodiffBackend>() {
    let _ = catch_unwind(burn_collective::reset_collective::<B::InnerBackend>);
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_else(|| "unknown panic".into())
}
