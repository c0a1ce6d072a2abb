//! otclip: CLIP-style image–text retrieval for low-resource languages, on burn.
//!
//! The layers, each importing only those below it (`tests/suite/architecture.rs` checks this):
//!
//! | layer | modules |
//! |---|---|
//! | commands | [`app`] (one file per `otclip` command; `main.rs` parses the command line) |
//! | training | [`train`] (the loop, its config, checkpoints) |
//! | evaluation and checkpoints | [`eval`], [`weights`] |
//! | data | [`data`] (readers, transforms, batcher) |
//! | towers, losses, tokenizers | [`model`], [`loss`], [`text`] |
//! | backends | [`backend`] (the one place a backend is chosen), `otclip-kernels` |
//! | helpers | [`npy`], [`seed`], [`tensor`] |
//!
//! Data flows one way: dataset → transforms and tokenizer → batcher → towers → loss → optimiser →
//! checkpoint; evaluation reads checkpoints. This file declares the modules and re-exports the
//! public API; it holds no code of its own.

pub mod app;
pub mod backend;
pub mod data;
pub mod eval;
pub mod loss;
pub mod model;
pub mod npy;
pub mod seed;
pub mod tensor;
pub mod text;
pub mod train;
pub mod weights;

/// The fused Sinkhorn kernels (`SinkhornBackend` and its implementations).
pub use otclip_kernels as kernels;

pub use app::eval::{evaluate_run, EvalTask};
pub use app::teacher::TeacherTask;
pub use app::train::TrainTask;
pub use backend::{dispatch, dispatch_inference, BackendTask, DeviceSpec, InferenceTask};
pub use tensor::f64_tensor;
pub use train::config::{SYNTHETIC_AZ_CONFIG, SYNTHETIC_VI_CONFIG};
