//! Pretrained weights: Hugging Face and timm checkpoints read into otclip's towers.
//! - [`config`]: the folders' `config.json` as typed structs, converted to otclip's configs;
//! - [`keymap`]: explicit key maps from checkpoint names to otclip's module paths;
//! - [`load`]: reading tensors and applying them through a key map, with a [`LoadReport`];
//! - [`towers`]: a tower (config, weights, tokenizer) from a folder;
//! - [`export`]: a trained dual encoder written as a folder that transformers loads.

pub mod config;
pub mod convnet;
pub mod export;
pub mod header;
pub mod keymap;
pub mod load;
pub mod report;
pub mod seq2seq;
pub mod towers;

pub use convnet::{conv_config, load_conv_tower, ConvTowerSource};
pub use config::{image_config, text_config, ImageTowerConfig};
pub use export::export_dual;
pub use keymap::{KeyMap, Layout};
pub use load::{apply_tensors, load_exported, read_tensors, weights_file};
pub use report::LoadReport;
pub use seq2seq::{generation_config, load_seq2seq, seq2seq_config};
pub use towers::{load_image_tower, load_text_tower, pretrained_dual_encoder, ImageTower, TextTower, TowerSource};
