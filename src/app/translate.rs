//! `otclip translate`: captions (or `--text`) through a Marian or NLLB model. A dataset becomes a
//! JSONL dataset (`jsonl:OUT.jsonl` reads it back) with each row's image, image id and split,
//! the source caption and the model. Each distinct caption is translated once; finished batches
//! are appended to `OUT.progress.jsonl`, so a killed run resumes where it stopped.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use burn::prelude::*;
use otclip_kernels::SinkhornBackend;
use serde_json::{json, Value};

use super::progress::progress_bar;
use super::translate_progress::ProgressFile;
use crate::backend::{dispatch_inference, DeviceSpec, InferenceTask};
use crate::data::collector::SkipReason;
use crate::data::dataset::ImageTextDataset;
use crate::data::format::DatasetSpec;
use crate::model::seq2seq::generate::generate;
use crate::model::seq2seq::{EarlyStopping, GenerationConfig, Seq2SeqFamily, Seq2SeqModel};
use crate::text::translation_tokenizer::{TranslationTokenizer, TranslationTokenizerKind};
use crate::weights::{generation_config, load_seq2seq};

/// What to translate.
#[derive(Debug, Clone)]
pub enum TranslateInput {
    /// Texts given on the command line; the translations are printed.
    Texts(Vec<String>),
    /// Every caption of a dataset, written as a JSONL dataset.
    Dataset { spec: DatasetSpec, out: PathBuf },
}

/// Changes to the model's `generation_config.json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecodingOptions {
    pub num_beams: Option<usize>,
    pub max_new_tokens: Option<usize>,
    pub length_penalty: Option<f32>,
    pub no_repeat_ngram_size: Option<usize>,
    pub early_stopping: Option<EarlyStopping>,
}

impl DecodingOptions {
    fn apply(&self, mut config: GenerationConfig) -> GenerationConfig {
        config.num_beams = self.num_beams.unwrap_or(config.num_beams);
        config.max_new_tokens = self.max_new_tokens.or(config.max_new_tokens);
        config.length_penalty = self.length_penalty.unwrap_or(config.length_penalty);
        config.no_repeat_ngram_size = self.no_repeat_ngram_size.unwrap_or(config.no_repeat_ngram_size);
        config.early_stopping = self.early_stopping.unwrap_or(config.early_stopping);
        config
    }
}

#[derive(Debug, Clone)]
pub struct TranslateTask {
    /// A Hugging Face folder: config.json, weights, tokenizer files.
    pub model: PathBuf,
    pub input: TranslateInput,
    /// `en`, `eng_Latn`, …; NLLB's default is its tokenizer's (`eng_Latn`).
    pub src_lang: Option<String>,
    /// Needed by NLLB and by Marian models with `>>xx<<` target tokens.
    pub tgt_lang: Option<String>,
    pub batch_size: usize,
    pub decoding: DecodingOptions,
    /// Off only to measure what the key–value cache saves.
    pub use_cache: bool,
}

/// What a dataset translation did.
#[derive(Debug, Clone, Default)]
pub struct TranslateSummary {
    /// Non-empty captions read.
    pub captions: usize,
    /// Rows written: the captions whose translation is not empty.
    pub written: usize,
    /// Distinct non-empty captions.
    pub distinct: usize,
    /// Distinct captions translated by this run; the rest came from an interrupted earlier run.
    pub translated_now: usize,
    pub resumed: usize,
    /// Empty captions, left out of the output.
    pub empty: usize,
    /// Distinct captions longer than the model takes, translated from their cut start.
    pub truncated: usize,
    /// Captions whose translation came out empty, left out.
    pub empty_translations: usize,
    pub seconds: f64,
    /// The dataset spec that reads the output back (`jsonl:OUT`, with `images=` when needed).
    pub read_as: String,
}

#[derive(Debug, Clone)]
pub enum TranslateOutput {
    Texts(Vec<String>),
    Dataset(TranslateSummary),
}

/// ISO 639-1 codes mapped to NLLB's (FLORES-200) codes, for `--src-lang en --tgt-lang az`.
const NLLB_CODES: &[(&str, &str)] = &[
    ("ar", "arb_Arab"), ("az", "azj_Latn"), ("de", "deu_Latn"), ("en", "eng_Latn"), ("es", "spa_Latn"), ("fr", "fra_Latn"), ("hi", "hin_Deva"),
    ("id", "ind_Latn"), ("ja", "jpn_Jpan"), ("kk", "kaz_Cyrl"), ("ko", "kor_Hang"), ("ru", "rus_Cyrl"), ("th", "tha_Thai"), ("tr", "tur_Latn"),
    ("uz", "uzn_Latn"), ("vi", "vie_Latn"), ("zh", "zho_Hans"),
];

/// ISO 639-1 codes mapped to the three-letter codes of Marian's `>>xxx<<` tokens.
const MARIAN_CODES: &[(&str, &str)] = &[("az", "aze"), ("en", "eng"), ("ru", "rus"), ("tr", "tur"), ("vi", "vie")];

fn lookup(table: &[(&str, &str)], code: &str) -> String {
    table.iter().find(|(short, _)| *short == code).map_or_else(|| code.to_string(), |(_, long)| long.to_string())
}

/// A model, its tokenizer and its decoding settings, ready for batches of texts.
pub struct Translator<B: Backend> {
    pub model: Seq2SeqModel<B>,
    pub tokenizer: TranslationTokenizer,
    pub generation: GenerationConfig,
    /// The language argument of the source encoding (NLLB's source code, Marian's target token).
    source_code: Option<String>,
    /// The source length the model takes, special tokens included.
    pub max_source_length: usize,
    pub use_cache: bool,
}

impl<B: Backend> Translator<B> {
    pub fn load(dir: &Path, src_lang: Option<&str>, tgt_lang: Option<&str>, decoding: &DecodingOptions, use_cache: bool, device: &B::Device) -> Result<Self> {
        let (model, _report) = load_seq2seq::<B>(dir, device)?;
        let tokenizer = TranslationTokenizer::from_dir(dir)?;
        let mut generation = decoding.apply(generation_config(dir)?);
        let vocab = model.config.decoder_vocab_size;
        if tokenizer.vocab_size() > vocab.max(model.config.vocab_size) {
            bail!("{}: the tokenizer has {} tokens but the model only {}; are they from the same checkpoint?", dir.display(), tokenizer.vocab_size(), vocab);
        }
        let known = |codes: &[String]| codes.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
        let source_code = match tokenizer.kind() {
            TranslationTokenizerKind::Nllb => {
                let tgt = tgt_lang.ok_or_else(|| anyhow!("{}: an NLLB model needs --tgt-lang (e.g. vie_Latn, azj_Latn, or vi, az)", dir.display()))?;
                let tgt = lookup(NLLB_CODES, tgt);
                let id = tokenizer.lang_id(&tgt).ok_or_else(|| anyhow!("{}: no language `{tgt}` in the tokenizer (known: {}, …)", dir.display(), known(tokenizer.lang_codes())))?;
                generation.forced_bos_token_id = Some(id);
                let src = src_lang.map(|s| lookup(NLLB_CODES, s));
                if let Some(src) = &src {
                    tokenizer.lang_id(src).ok_or_else(|| anyhow!("{}: no language `{src}` in the tokenizer (known: {}, …)", dir.display(), known(tokenizer.lang_codes())))?;
                }
                src
            }
            TranslationTokenizerKind::Marian if !tokenizer.lang_codes().is_empty() => {
                let tgt = tgt_lang.ok_or_else(|| anyhow!("{}: this Marian model translates into several languages; name one with --tgt-lang (known: {}, …)", dir.display(), known(tokenizer.lang_codes())))?;
                let code = lookup(MARIAN_CODES, tgt);
                tokenizer.lang_id(&code).ok_or_else(|| anyhow!("{}: no target token >>{code}<< in vocab.json (known: {}, …)", dir.display(), known(tokenizer.lang_codes())))?;
                Some(code)
            }
            TranslationTokenizerKind::Marian => None,
        };
        generation.validate(vocab)?;
        let max_source_length = model.config.max_position_embeddings;
        if model.config.family == Seq2SeqFamily::Marian && generation.effective_max_length() > max_source_length {
            bail!("{}: translations of up to {} tokens do not fit the model's {max_source_length} positions; lower --max-new-tokens", dir.display(), generation.effective_max_length());
        }
        Ok(Self { model, tokenizer, generation, source_code, max_source_length, use_cache })
    }

    // ANCHOR: translate
    /// Translations of `texts`, each with whether its source was cut to fit.
    pub fn translate(&self, texts: &[&str]) -> Result<Vec<(String, bool)>> {
        let mut sources = Vec::with_capacity(texts.len());
        let mut cut = Vec::with_capacity(texts.len());
        for text in texts {
            let (ids, truncated) = self.tokenizer.encode_source(text, self.source_code.as_deref(), Some(self.max_source_length))?;
            sources.push(ids);
            cut.push(truncated);
        }
        let outputs = generate(&self.model, &sources, &self.generation, self.use_cache)?;
        outputs.iter().zip(cut).map(|(ids, truncated)| Ok((self.tokenizer.decode(ids)?.trim().to_string(), truncated))).collect()
    }
    // ANCHOR_END: translate

    /// The settings that decide the output, recorded in the progress file.
    fn settings(&self, task: &TranslateTask, dataset: &str) -> Value {
        let g = &self.generation;
        json!({
            "model": task.model.display().to_string(),
            "dataset": dataset,
            "src_lang": task.src_lang, "tgt_lang": task.tgt_lang,
            "num_beams": g.num_beams, "max_length": g.effective_max_length(), "length_penalty": g.length_penalty,
            "no_repeat_ngram_size": g.no_repeat_ngram_size, "early_stopping": format!("{:?}", g.early_stopping),
        })
    }
}

impl InferenceTask for TranslateTask {
    type Output = TranslateOutput;
    fn run<B: Backend + SinkhornBackend>(self, device: B::Device) -> Result<TranslateOutput> {
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        if let TranslateInput::Dataset { out, .. } = &self.input {
            ProgressFile::check_output(out)?;
        }
        let translator = Translator::<B>::load(&self.model, self.src_lang.as_deref(), self.tgt_lang.as_deref(), &self.decoding, self.use_cache, &device)?;
        match &self.input {
            TranslateInput::Texts(texts) => {
                let mut lines = Vec::with_capacity(texts.len());
                for chunk in texts.chunks(self.batch_size) {
                    let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
                    lines.extend(translator.translate(&chunk)?.into_iter().map(|(text, _)| text));
                }
                Ok(TranslateOutput::Texts(lines))
            }
            TranslateInput::Dataset { spec, out } => self.translate_dataset(&translator, spec, out).map(TranslateOutput::Dataset),
        }
    }
}

impl TranslateTask {
    pub fn run_on(self, spec: DeviceSpec) -> Result<TranslateOutput> {
        dispatch_inference(spec, false, self)
    }

    fn translate_dataset<B: Backend>(&self, translator: &Translator<B>, spec: &DatasetSpec, out: &Path) -> Result<TranslateSummary> {
        let started = Instant::now();
        let dataset = ImageTextDataset::read(spec)?;
        // The readers drop empty captions (and count them); the rest are trimmed and in NFC.
        let empty = dataset.skipped.iter().filter(|s| s.reason == SkipReason::EmptyCaption).count();
        let mut seen = HashSet::new();
        let distinct: Vec<&str> = dataset.items.iter().map(|item| item.caption.as_str()).filter(|caption| seen.insert(*caption)).collect();
        let settings = translator.settings(self, &dataset.name);
        let mut progress = ProgressFile::open(out, &settings)?;
        let resumed = progress.done.len();
        let mut pending: Vec<&str> = distinct.iter().copied().filter(|c| !progress.done.contains_key(*c)).collect();
        // Similar lengths in one batch waste less on padding.
        pending.sort_by_key(|c| c.chars().count());
        let bar = progress_bar(distinct.len(), resumed, "captions");
        for chunk in pending.chunks(self.batch_size) {
            let translations = translator.translate(chunk)?;
            progress.append(chunk, &translations)?;
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        let truncated = distinct.iter().filter(|c| progress.done.get(**c).is_some_and(|(_, cut)| *cut)).count();
        let (rows, images) = self.rows(&dataset, &progress.done, out);
        progress.finish(out, &rows)?;
        let read_as = match images {
            Some(folder) => format!("jsonl:{}?images={}", out.display(), folder.display()),
            None => format!("jsonl:{}", out.display()),
        };
        Ok(TranslateSummary {
            captions: dataset.items.len(),
            written: rows.len(),
            empty_translations: dataset.items.len() - rows.len(),
            distinct: distinct.len(),
            translated_now: pending.len(),
            resumed,
            empty,
            truncated,
            seconds: started.elapsed().as_secs_f64(),
            read_as,
        })
    }

    /// The output rows, in the dataset's order (captions whose translation is empty are left
    /// out: readers drop them), and the `images=` option that resolves their image paths: none
    /// when the images lie under OUT's folder (the paths are relative to it), else the path from
    /// OUT's folder to the images' common folder (the paths are relative to that).
    fn rows(&self, dataset: &ImageTextDataset, done: &HashMap<String, (String, bool)>, out: &Path) -> (Vec<Value>, Option<PathBuf>) {
        let out_dir = absolute(out.parent().unwrap_or(Path::new(".")));
        let images: Vec<PathBuf> = dataset.items.iter().map(|item| absolute(&item.image)).collect();
        let common = images.iter().filter_map(|p| p.parent()).fold(None::<PathBuf>, |acc, dir| match acc {
            None => Some(dir.to_path_buf()),
            Some(acc) => Some(acc.ancestors().find(|a| dir.starts_with(a)).unwrap_or(Path::new("/")).to_path_buf()),
        });
        let (base, option) = match common {
            Some(root) if !root.starts_with(&out_dir) => (root.clone(), Some(relative_path(&out_dir, &root))),
            _ => (out_dir, None),
        };
        let rows = dataset
            .items
            .iter()
            .zip(&images)
            .filter_map(|(item, image)| {
                let (translation, cut) = &done[&item.caption];
                if translation.is_empty() {
                    return None;
                }
                let image = image.strip_prefix(&base).unwrap_or(image);
                let mut row = json!({
                    "image": image.display().to_string(),
                    "caption": translation,
                    "image_id": item.image_id,
                    "source_caption": item.caption,
                    "model": self.model.display().to_string(),
                });
                let object = row.as_object_mut().expect("an object");
                for (key, value) in [("split", &dataset.split), ("src_lang", &self.src_lang), ("tgt_lang", &self.tgt_lang)] {
                    if let Some(value) = value {
                        object.insert(key.into(), json!(value));
                    }
                }
                if *cut {
                    object.insert("truncated".into(), json!(true));
                }
                Some(row)
            })
            .collect();
        (rows, option)
    }
}

/// `to` as seen from `from` (both absolute): `../x/y` where needed.
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let common = from.ancestors().find(|a| to.starts_with(a)).unwrap_or(Path::new("/"));
    let ups = from.strip_prefix(common).map(|rest| rest.components().count()).unwrap_or(0);
    let mut path: PathBuf = std::iter::repeat_n("..", ups).collect();
    path.push(to.strip_prefix(common).unwrap_or(to));
    if path.as_os_str().is_empty() {
        path.push(".");
    }
    path
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
