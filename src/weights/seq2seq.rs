//! Translation models from Hugging Face folders (`config.json`, `generation_config.json`,
//! `model.safetensors` or `pytorch_model.bin`), used exactly as downloaded: Marian (OPUS-MT)
//! and M2M100 (NLLB).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use burn::prelude::*;
use burn::tensor::TensorData;
use serde::Deserialize;

use super::config::JsonFile;
use super::keymap::{KeyMap, Layout};
use super::load::{apply_tensors, read_tensors, weights_file};
use super::report::LoadReport;
use crate::model::seq2seq::{Activation, EarlyStopping, GenerationConfig, Seq2SeqConfig, Seq2SeqFamily, Seq2SeqModel};

/// The keys of `config.json` a translation model needs.
#[derive(Debug, Deserialize)]
struct HfSeq2SeqConfig {
    model_type: String,
    vocab_size: usize,
    decoder_vocab_size: Option<usize>,
    d_model: usize,
    encoder_layers: usize,
    decoder_layers: usize,
    encoder_attention_heads: usize,
    decoder_attention_heads: usize,
    encoder_ffn_dim: usize,
    decoder_ffn_dim: usize,
    max_position_embeddings: usize,
    #[serde(default = "default_activation")]
    activation_function: String,
    #[serde(default)]
    scale_embedding: bool,
    pad_token_id: usize,
    #[serde(default = "yes")]
    share_encoder_decoder_embeddings: bool,
    #[serde(default = "yes")]
    tie_word_embeddings: bool,
    /// Set (true) only by checkpoints of other BART variants; Marian has it false.
    #[serde(default)]
    normalize_before: bool,
    #[serde(default)]
    normalize_embedding: bool,
}

fn default_activation() -> String {
    "gelu".into()
}

fn yes() -> bool {
    true
}

/// An id or a list of ids (`eos_token_id`, `forced_eos_token_id`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(u32),
    Many(Vec<u32>),
}

impl OneOrMany {
    fn ids(self) -> Vec<u32> {
        match self {
            Self::One(id) => vec![id],
            Self::Many(ids) => ids,
        }
    }
}

/// `early_stopping`: `true`, `false` or `"never"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum EarlyStoppingJson {
    Flag(bool),
    Word(String),
}

/// The generation keys of `generation_config.json` (or, for older checkpoints, `config.json`).
#[derive(Debug, Clone, Default, Deserialize)]
struct HfGenerationConfig {
    decoder_start_token_id: Option<u32>,
    bos_token_id: Option<u32>,
    eos_token_id: Option<OneOrMany>,
    pad_token_id: Option<u32>,
    max_length: Option<usize>,
    max_new_tokens: Option<usize>,
    min_length: Option<usize>,
    num_beams: Option<usize>,
    length_penalty: Option<f32>,
    early_stopping: Option<EarlyStoppingJson>,
    no_repeat_ngram_size: Option<usize>,
    forced_bos_token_id: Option<u32>,
    forced_eos_token_id: Option<OneOrMany>,
    bad_words_ids: Option<Vec<Vec<u32>>>,
    renormalize_logits: Option<bool>,
}

/// The model's shape from `DIR/config.json`.
pub fn seq2seq_config(dir: &Path) -> Result<Seq2SeqConfig> {
    let json = JsonFile::config_of(dir)?;
    let hf: HfSeq2SeqConfig = json.parse()?;
    let file = json.path().display();
    let family = match hf.model_type.as_str() {
        "marian" => Seq2SeqFamily::Marian,
        "m2m_100" => Seq2SeqFamily::M2M100,
        other => bail!("{file}: `model_type` is `{other}`; otclip translates with `marian` (OPUS-MT) and `m2m_100` (NLLB) models"),
    };
    if family == Seq2SeqFamily::Marian && (hf.normalize_before || hf.normalize_embedding) {
        bail!("{file}: `normalize_before`/`normalize_embedding` are set, which MarianMTModel does not support");
    }
    let activation_function = match hf.activation_function.as_str() {
        "relu" => Activation::Relu,
        "swish" | "silu" => Activation::Swish,
        "gelu" => Activation::Gelu,
        other => bail!("{file}: `activation_function` is `{other}`; expected relu, swish, silu or gelu"),
    };
    let config = Seq2SeqConfig {
        family,
        vocab_size: hf.vocab_size,
        decoder_vocab_size: hf.decoder_vocab_size.unwrap_or(hf.vocab_size),
        d_model: hf.d_model,
        encoder_layers: hf.encoder_layers,
        decoder_layers: hf.decoder_layers,
        encoder_attention_heads: hf.encoder_attention_heads,
        decoder_attention_heads: hf.decoder_attention_heads,
        encoder_ffn_dim: hf.encoder_ffn_dim,
        decoder_ffn_dim: hf.decoder_ffn_dim,
        max_position_embeddings: hf.max_position_embeddings,
        activation_function,
        scale_embedding: hf.scale_embedding,
        pad_token_id: hf.pad_token_id,
        // M2M100 always shares and ties; the keys are Marian's.
        share_encoder_decoder_embeddings: hf.share_encoder_decoder_embeddings || family == Seq2SeqFamily::M2M100,
        tie_word_embeddings: hf.tie_word_embeddings || family == Seq2SeqFamily::M2M100,
    };
    config.validate().map_err(|e| anyhow!("{file}: {e}"))?;
    Ok(config)
}

/// The decoding defaults of DIR: `generation_config.json`, else the generation keys of
/// `config.json` (as transformers falls back), else transformers' defaults.
pub fn generation_config(dir: &Path) -> Result<GenerationConfig> {
    let model = JsonFile::config_of(dir)?;
    let model_keys: HfGenerationConfig = model.parse()?;
    let (hf, file) = match JsonFile::read_if_present(&dir.join("generation_config.json"))? {
        Some(json) => (json.parse::<HfGenerationConfig>()?, json.path().to_path_buf()),
        None => (model_keys.clone(), model.path().to_path_buf()),
    };
    let eos_token_ids = hf.eos_token_id.or(model_keys.eos_token_id).map(OneOrMany::ids).unwrap_or_default();
    let pad_token_id = hf.pad_token_id.or(model_keys.pad_token_id).ok_or_else(|| anyhow!("{}: no `pad_token_id`", file.display()))?;
    let decoder_start_token_id = hf
        .decoder_start_token_id
        .or(model_keys.decoder_start_token_id)
        .or(hf.bos_token_id)
        .ok_or_else(|| anyhow!("{}: no `decoder_start_token_id`", file.display()))?;
    let early_stopping = match hf.early_stopping {
        None | Some(EarlyStoppingJson::Flag(false)) => EarlyStopping::Heuristic,
        Some(EarlyStoppingJson::Flag(true)) => EarlyStopping::Done,
        Some(EarlyStoppingJson::Word(w)) if w == "never" => EarlyStopping::Never,
        Some(EarlyStoppingJson::Word(w)) => bail!("{}: `early_stopping` is `{w}`; expected true, false or \"never\"", file.display()),
    };
    if hf.bad_words_ids.as_ref().is_some_and(|list| list.iter().any(Vec::is_empty)) {
        bail!("{}: `bad_words_ids` holds an empty list", file.display());
    }
    Ok(GenerationConfig {
        decoder_start_token_id,
        eos_token_ids,
        pad_token_id,
        max_length: hf.max_length.unwrap_or(20),
        max_new_tokens: hf.max_new_tokens,
        min_length: hf.min_length.unwrap_or(0),
        num_beams: hf.num_beams.unwrap_or(1),
        length_penalty: hf.length_penalty.unwrap_or(1.0),
        early_stopping,
        no_repeat_ngram_size: hf.no_repeat_ngram_size.unwrap_or(0),
        forced_bos_token_id: hf.forced_bos_token_id,
        forced_eos_token_ids: hf.forced_eos_token_id.map(OneOrMany::ids).unwrap_or_default(),
        bad_words_ids: hf.bad_words_ids.unwrap_or_default(),
        renormalize_logits: hf.renormalize_logits.unwrap_or(false),
    })
}

/// `[rows, cols]` data of `key` transposed to a contiguous `[cols, rows]` tensor, after checking
/// its shape.
fn transposed<B: Backend>(data: TensorData, key: &str, rows: usize, cols: usize, file: &Path, device: &B::Device) -> Result<Tensor<B, 2>> {
    let shape: Vec<usize> = data.shape.clone().into();
    if shape != [rows, cols] {
        bail!("{}: tensor `{key}` has shape {shape:?}; the config asks for [{rows}, {cols}]", file.display());
    }
    let values = data.into_vec::<f32>().map_err(|e| anyhow!("{}: tensor `{key}`: {e:?}", file.display()))?;
    let mut out = vec![0f32; rows * cols];
    for (r, row) in values.chunks_exact(cols).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            out[c * rows + r] = v;
        }
    }
    Ok(Tensor::from_data(TensorData::new(out, [cols, rows]).convert::<B::FloatElem>(), device))
}

/// Loads a translation model folder.
pub fn load_seq2seq<B: Backend>(dir: &Path, device: &B::Device) -> Result<(Seq2SeqModel<B>, LoadReport)> {
    let config = seq2seq_config(dir)?;
    let file = weights_file(dir)?;
    let mut tensors = read_tensors(&file)?;
    let mut take = |keys: &[&str]| -> Option<(String, TensorData)> { keys.iter().find_map(|k| tensors.remove(*k).map(|t| (k.to_string(), t))) };
    let (shared, encoder, decoder) = ("model.shared.weight", "model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight");
    let need = |found: Option<(String, TensorData)>, keys: &[&str]| found.ok_or_else(|| anyhow!("{}: no `{}` (the token embeddings)", file.display(), keys.join("` or `")));
    let d = config.d_model;
    let mut applied = Vec::new();
    let (encoder_embeddings, decoder_embeddings) = if config.share_encoder_decoder_embeddings {
        let keys = [shared, encoder, decoder];
        let (key, data) = need(take(&keys), &keys)?;
        let table = transposed::<B>(data, &key, config.vocab_size, d, &file, device)?;
        applied.push(key);
        (table.clone(), table)
    } else {
        let (encoder_key, encoder_data) = need(take(&[encoder]), &[encoder])?;
        let (decoder_key, decoder_data) = need(take(&[decoder]), &[decoder])?;
        let encoder_table = transposed::<B>(encoder_data, &encoder_key, config.vocab_size, d, &file, device)?;
        let decoder_table = transposed::<B>(decoder_data, &decoder_key, config.decoder_vocab_size, d, &file, device)?;
        applied.extend([encoder_key, decoder_key]);
        (encoder_table, decoder_table)
    };
    let lm_head = if config.tie_word_embeddings {
        decoder_embeddings.clone()
    } else {
        let (key, data) = need(take(&["lm_head.weight"]), &["lm_head.weight"])?;
        applied.push(key.clone());
        transposed::<B>(data, &key, config.decoder_vocab_size, d, &file, device)?
    };
    let final_logits_bias = match take(&["final_logits_bias"]) {
        Some((key, data)) => {
            let values = data.into_vec::<f32>().map_err(|e| anyhow!("{}: tensor `{key}`: {e:?}", file.display()))?;
            if values.len() != config.decoder_vocab_size {
                bail!("{}: tensor `{key}` has {} values; the config asks for {}", file.display(), values.len(), config.decoder_vocab_size);
            }
            applied.push(key);
            Some(Tensor::from_data(TensorData::new(values, [config.decoder_vocab_size]).convert::<B::FloatElem>(), device))
        }
        None => None,
    };
    // Copies of the tables the model ties (written by some exports) carry nothing new.
    let tied: Vec<String> = tensors.keys().filter(|k| [shared, encoder, decoder, "lm_head.weight"].contains(&k.as_str())).cloned().collect();
    let tied_keys: BTreeMap<String, TensorData> = tied.iter().filter_map(|k| tensors.remove_entry(k)).collect();
    let (layers, mut report) = apply_tensors(config.init_layers::<B>(device), tensors, &KeyMap::new(Layout::Seq2Seq), &file, false)?;
    report.applied.extend(applied);
    report.ignored.extend(tied_keys.into_keys());
    if !report.unused.is_empty() {
        bail!("{}: tensors with no place in a {:?} model (first: `{}`); is this the right architecture?\n{report}", file.display(), config.family, report.unused[0]);
    }
    Ok((Seq2SeqModel { config, layers, encoder_embeddings, decoder_embeddings, lm_head, final_logits_bias }, report))
}
