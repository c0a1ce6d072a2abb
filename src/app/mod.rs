//! The commands, one file each. A command takes a resolved plan (a `…Task` of plain data), picks
//! the backend once through [`crate::backend`], and calls the layers below; nothing below imports
//! this module. `main.rs` parses the command line into these tasks and prints their results.
//!
//! Each task has a non-generic `run_on(DeviceSpec)`: the generic code is instantiated for every
//! compiled-in backend here, once, and the binary, the examples and the tests all call it.

pub mod data_check;
pub mod data_dedup;
pub mod embed;
pub mod eval;
pub mod export;
pub mod flagship;
pub mod index;
pub mod model_card;
pub mod ot_solve;
pub mod plot;
pub mod progress;
pub mod search;
pub mod serve;
pub mod teacher;
pub mod train;
pub mod trained;
pub mod translate;
pub mod translate_progress;
