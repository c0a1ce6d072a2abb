//! The one place where cargo features become backend types and `--device` becomes a device.
//! Everything below [`dispatch`] is generic over `B: AutodiffBackend`.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use burn::tensor::backend::{AutodiffBackend, Backend};
use otclip_kernels::SinkhornBackend;

/// The CPU backend (ndarray), the default.
#[cfg(feature = "ndarray")]
pub type NdArrayBackend = burn::backend::NdArray<f32>;

/// The CubeCL backend on wgpu; `vulkan` and `metal` pick the native shader compilers.
#[cfg(all(feature = "wgpu", not(feature = "vulkan"), not(feature = "metal")))]
pub type WgpuBackend = burn::backend::Wgpu<f32, i32>;
#[cfg(feature = "vulkan")]
pub type WgpuBackend = burn::backend::Vulkan<f32, i32>;
#[cfg(all(feature = "metal", not(feature = "vulkan")))]
pub type WgpuBackend = burn::backend::Metal<f32, i32>;

/// The CubeCL backend on CUDA. cudarc loads the driver and NVRTC at run time.
#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Cuda<f32, i32>;

/// A device named on the command line: `ndarray`, `wgpu[:N]` or `cuda[:N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    NdArray,
    Wgpu(Option<usize>),
    Cuda(usize),
}

impl Default for DeviceSpec {
    fn default() -> Self {
        if cfg!(feature = "ndarray") {
            DeviceSpec::NdArray
        } else if cfg!(feature = "cuda") {
            DeviceSpec::Cuda(0)
        } else {
            DeviceSpec::Wgpu(None)
        }
    }
}

/// The backends this binary was built with, for error messages and `--help`.
pub fn compiled_backends() -> Vec<&'static str> {
    let mut names = Vec::new();
    if cfg!(feature = "ndarray") {
        names.push("ndarray");
    }
    if cfg!(feature = "wgpu") {
        names.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        names.push("cuda");
    }
    names
}

impl FromStr for DeviceSpec {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        let (name, index) = match text.split_once(':') {
            Some((name, index)) => {
                let index: usize = index.parse().map_err(|_| {
                    anyhow::anyhow!("bad device `{text}`: the part after `:` must be a device index such as `cuda:0`")
                })?;
                (name, Some(index))
            }
            None => (text, None),
        };
        let spec = match name {
            "ndarray" | "cpu" if index.is_none() => DeviceSpec::NdArray,
            "ndarray" | "cpu" => bail!("bad device `{text}`: ndarray takes no index"),
            "wgpu" | "vulkan" | "metal" => DeviceSpec::Wgpu(index),
            "cuda" => DeviceSpec::Cuda(index.unwrap_or(0)),
            _ => bail!(
                "unknown device `{text}`: expected ndarray, wgpu[:N] or cuda[:N] (compiled in: {})",
                compiled_backends().join(", ")
            ),
        };
        let feature = spec.backend_name();
        if !compiled_backends().contains(&feature) {
            bail!(
                "device `{text}` needs the `{feature}` backend, which this binary was not built with; \
                 rebuild with `--features {feature}` (compiled in: {})",
                compiled_backends().join(", ")
            );
        }
        Ok(spec)
    }
}

impl DeviceSpec {
    /// The cargo feature (and backend family) behind this device.
    pub fn backend_name(&self) -> &'static str {
        match self {
            DeviceSpec::NdArray => "ndarray",
            DeviceSpec::Wgpu(_) => "wgpu",
            DeviceSpec::Cuda(_) => "cuda",
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::NdArray => write!(f, "ndarray"),
            DeviceSpec::Wgpu(None) => write!(f, "wgpu"),
            DeviceSpec::Wgpu(Some(i)) => write!(f, "wgpu:{i}"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_device(index: Option<usize>) -> burn::backend::wgpu::WgpuDevice {
    use burn::backend::wgpu::WgpuDevice;
    match index {
        None => WgpuDevice::DefaultDevice,
        Some(i) => WgpuDevice::DiscreteGpu(i),
    }
}

/// Work that runs on any autodiff backend. [`dispatch`] picks the backend once.
pub trait BackendTask {
    type Output;
    fn run<B: AutodiffBackend + SinkhornBackend>(self, device: B::Device) -> Result<Self::Output>;
}

/// Work that runs on several devices of one autodiff backend (data-parallel training).
pub trait DevicesTask {
    type Output;
    fn run<B: AutodiffBackend + SinkhornBackend>(self, devices: Vec<B::Device>) -> Result<Self::Output>;
}

/// Runs `task` on the backend named by `spec`.
pub fn dispatch<T: BackendTask>(spec: DeviceSpec, task: T) -> Result<T::Output> {
    struct One<T>(T);
    impl<T: BackendTask> DevicesTask for One<T> {
        type Output = T::Output;
        fn run<B: AutodiffBackend + SinkhornBackend>(self, devices: Vec<B::Device>) -> Result<T::Output> {
            let device = devices.into_iter().next().ok_or_else(|| anyhow::anyhow!("no device"))?;
            self.0.run::<B>(device)
        }
    }
    dispatch_devices(&[spec], One(task))
}

/// Runs `task` on the devices `specs`, which must all be of one backend. This is the only
/// autodiff backend match in otclip.
pub fn dispatch_devices<T: DevicesTask>(specs: &[DeviceSpec], task: T) -> Result<T::Output> {
    let Some(first) = specs.first().copied() else { bail!("no device given") };
    if let Some(other) = specs.iter().find(|spec| spec.backend_name() != first.backend_name()) {
        bail!("devices {first} and {other} use different backends; data-parallel workers must share one");
    }
    match first {
        #[cfg(feature = "ndarray")]
        DeviceSpec::NdArray => task.run::<burn::backend::Autodiff<NdArrayBackend>>(specs.iter().map(|_| Default::default()).collect()),
        #[cfg(feature = "wgpu")]
        DeviceSpec::Wgpu(_) => task.run::<burn::backend::Autodiff<WgpuBackend>>(
            specs.iter().map(|spec| wgpu_device(if let DeviceSpec::Wgpu(index) = spec { *index } else { None })).collect(),
        ),
        #[cfg(feature = "cuda")]
        DeviceSpec::Cuda(_) => task.run::<burn::backend::Autodiff<CudaBackend>>(
            specs.iter().map(|spec| burn::backend::cuda::CudaDevice::new(if let DeviceSpec::Cuda(index) = spec { *index } else { 0 })).collect(),
        ),
        #[allow(unreachable_patterns)]
        other => bail!("backend `{}` is not compiled in", other.backend_name()),
    }
}

/// Work that needs no autodiff (evaluation, embedding, solving), on any backend.
pub trait InferenceTask {
    type Output;
    fn run<B: Backend + SinkhornBackend>(self, device: B::Device) -> Result<Self::Output>;
}

/// Runs `task` without autodiff. `f64` picks double precision where the backend has it
/// (ndarray); the GPU backends always run in f32.
pub fn dispatch_inference<T: InferenceTask>(spec: DeviceSpec, f64: bool, task: T) -> Result<T::Output> {
    match spec {
        #[cfg(feature = "ndarray")]
        DeviceSpec::NdArray if f64 => task.run::<burn::backend::NdArray<f64>>(Default::default()),
        #[cfg(feature = "ndarray")]
        DeviceSpec::NdArray => task.run::<NdArrayBackend>(Default::default()),
        #[cfg(feature = "wgpu")]
        DeviceSpec::Wgpu(index) => task.run::<WgpuBackend>(wgpu_device(index)),
        #[cfg(feature = "cuda")]
        DeviceSpec::Cuda(index) => task.run::<CudaBackend>(burn::backend::cuda::CudaDevice::new(index)),
        #[allow(unreachable_patterns)]
        other => bail!("backend `{}` is not compiled in", other.backend_name()),
    }
}
