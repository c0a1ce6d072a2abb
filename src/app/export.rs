//! `otclip export`: a run's checkpoint as a folder that Hugging Face transformers loads
//! (`AutoModel`, `AutoTokenizer`, `AutoImageProcessor` with `trust_remote_code=True`):
//! the weights, `config.json` and modelling code as [`export_dual`] writes them, the run's
//! tokenizer with a `tokenizer_config.json`, a `preprocessor_config.json` describing the
//! evaluation transform, and a model card (`README.md`, see [`super::model_card`]).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::prelude::Backend;
use otclip_kernels::SinkhornBackend;
use serde_json::{json, Value};

use super::model_card::model_card;
use crate::backend::{dispatch_inference, DeviceSpec, InferenceTask};
use crate::data::transform::EvalTransform;
use crate::text::CaptionTokenizer;
use crate::train::load_run;
use crate::weights::config::JsonFile;
use crate::weights::export::export_dual;

pub struct ExportTask {
    pub run_dir: PathBuf,
    pub checkpoint: String,
    pub out: PathBuf,
}

impl InferenceTask for ExportTask {
    /// The number of tensors written.
    type Output = usize;
    fn run<B: Backend + SinkhornBackend>(self, device: B::Device) -> Result<usize> {
        refuse_foreign_folder(&self.out)?;
        let run = load_run::<B>(&self.run_dir, &self.checkpoint, &device)?;
        // Everything read from the run comes first, so that bad input leaves no half-written folder.
        let card = model_card(&self.run_dir, &self.checkpoint, &run.config, &run.model_config, &run.state)?;
        let tensors = export_dual(&run.model, &run.model_config, &self.out)?;
        let tokenizer = &run.batcher.tokenizer;
        tokenizer.save(&self.out.join("tokenizer.json"))?;
        write_json(&self.out.join("tokenizer_config.json"), &tokenizer_config(tokenizer))?;
        write_json(&self.out.join("preprocessor_config.json"), &preprocessor_config(&run.batcher))?;
        let path = self.out.join("README.md");
        std::fs::write(&path, card).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(tensors)
    }
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)? + "\n").with_context(|| format!("cannot write {}", path.display()))
}

/// `tokenizer_config.json` for `AutoTokenizer`: the fast tokenizer of `tokenizer.json`, its
/// special tokens, and the inputs the model takes (no token types: otclip's are all 0).
pub fn tokenizer_config(tokenizer: &CaptionTokenizer) -> Value {
    let inner = tokenizer.tokenizer();
    let find = |names: &[&str]| names.iter().find(|t| inner.token_to_id(t).is_some()).map(|t| t.to_string());
    let pad = inner.id_to_token(tokenizer.pad_id()).or_else(|| find(&["[PAD]", "<pad>"]));
    let mut config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": tokenizer.max_length(),
        "model_input_names": ["input_ids", "attention_mask"],
        "padding_side": "right",
        "truncation_side": "right",
        "clean_up_tokenization_spaces": false,
    });
    let roles: [(&str, Option<String>); 7] = [
        ("pad_token", pad),
        ("unk_token", find(&["[UNK]", "<unk>"])),
        ("cls_token", find(&["[CLS]", "<s>"])),
        ("sep_token", find(&["[SEP]", "</s>"])),
        ("mask_token", find(&["[MASK]", "<mask>"])),
        ("bos_token", find(&["<s>"])),
        ("eos_token", find(&["</s>"])),
    ];
    for (role, token) in roles {
        if let Some(token) = token {
            config[role] = token.into();
        }
    }
    config
}

/// `preprocessor_config.json`: otclip's evaluation transform in `CLIPImageProcessor` terms (the
/// shorter side resized to size·256/224 with the run's filter, a centre crop to the model's
/// size, pixels scaled to [0, 1] and normalised with the run's mean and std).
pub fn preprocessor_config(batcher: &crate::data::Batcher) -> Value {
    let transform = EvalTransform::for_size(batcher.image_size);
    let norm = batcher.normalization;
    json!({
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": true, "size": {"shortest_edge": transform.resize}, "resample": batcher.interpolation.pil_code(),
        "do_center_crop": true, "crop_size": {"height": transform.crop, "width": transform.crop},
        "do_rescale": true, "rescale_factor": 1.0 / 255.0,
        "do_normalize": true, "image_mean": norm.mean, "image_std": norm.std,
        "do_convert_rgb": true,
    })
}

/// An error unless `out` is absent, empty, or an earlier export (its `config.json` has the
/// `otclip` section): exporting must not overwrite another model's files.
fn refuse_foreign_folder(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        bail!("--out {}: exists and is not a folder", out.display());
    }
    let empty = std::fs::read_dir(out).with_context(|| format!("cannot list {}", out.display()))?.next().is_none();
    let exported = JsonFile::config_of(out).is_ok_and(|json| json.has_key("otclip"));
    if !empty && !exported {
        bail!("--out {}: the folder is not empty and holds no otclip export; choose an empty folder or a new path (nothing was written)", out.display());
    }
    Ok(())
}

impl ExportTask {
    pub fn run_on(self, spec: DeviceSpec) -> Result<usize> {
        dispatch_inference(spec, false, self)
    }
}
