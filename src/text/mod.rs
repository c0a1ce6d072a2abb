//! Caption tokenizers on the `tokenizers` crate, saved as `tokenizer.json` beside a checkpoint.
//! Pretrained folders give theirs as `tokenizer.json` (WordPiece, BPE or Unigram), as PhoBERT's
//! `vocab.txt` + `bpe.codes` ([`phobert`]), or as a BERT `vocab.txt`.

pub mod phobert;
pub mod sentencepiece;
pub mod spm_unigram;
pub mod translation_tokenizer;

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainer};
use tokenizers::models::TrainerWrapper;
use tokenizers::normalizers::{BertNormalizer, Sequence, NFC};
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer, TruncationParams};

/// The special tokens of a trained WordPiece vocabulary, in id order.
pub const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// Token ids and masks of a batch, row-major `[batch, length]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedBatch {
    pub ids: Vec<i64>,
    pub mask: Vec<i64>,
    pub length: usize,
}

/// Ids from `first` on are pieces outside the vocabulary, encoded as `unk`.
#[derive(serde::Serialize, serde::Deserialize)]
struct UnknownIds {
    first: u32,
    unk: u32,
}

/// `DIR/tokenizer.unknown.json` beside `DIR/tokenizer.json`.
fn unknown_ids_path(tokenizer_json: &Path) -> std::path::PathBuf {
    tokenizer_json.with_extension("unknown.json")
}

/// BERT's `[CLS] $A [SEP]` post-processor, with the ids of `vocabulary` (named in the error).
fn add_cls_sep(tokenizer: &mut Tokenizer, vocabulary: &str) -> Result<()> {
    let id = |token: &str| tokenizer.token_to_id(token).ok_or_else(|| anyhow!("{vocabulary} lacks {token}"));
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    let template = TemplateProcessing::builder()
        .try_single("[CLS] $A [SEP]")
        .map_err(|e| anyhow!("{e}"))?
        .special_tokens(vec![("[CLS]", cls), ("[SEP]", sep)])
        .build()?;
    tokenizer.with_post_processor(Some(template));
    Ok(())
}

/// Renumbers a trained WordPiece vocabulary canonically. The trainer numbers the tokens it
/// learned in hash order, which differs from run to run, so the same vocabulary got other ids
/// (and another run). The special tokens keep their ids; the learned tokens take the same set of
/// ids, in the order of their text. (Which tokens make the cut can still differ where merges tie
/// at `vocab_size`: the trainer breaks such ties in hash order too.)
fn canonical_ids(tokenizer: Tokenizer) -> Result<Tokenizer> {
    let text = tokenizer.to_string(false).map_err(|e| anyhow!("cannot serialise the trained tokenizer: {e}"))?;
    let mut json: serde_json::Value = serde_json::from_str(&text)?;
    let vocab = json["model"]["vocab"].as_object_mut().ok_or_else(|| anyhow!("the trained tokenizer has no WordPiece vocabulary"))?;
    let mut learned: Vec<(String, u64)> =
        vocab.iter().filter(|(token, _)| !SPECIAL_TOKENS.contains(&token.as_str())).map(|(token, id)| (token.clone(), id.as_u64().unwrap_or(0))).collect();
    let mut ids: Vec<u64> = learned.iter().map(|(_, id)| *id).collect();
    ids.sort_unstable();
    learned.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for ((token, _), id) in learned.into_iter().zip(ids) {
        vocab.insert(token, id.into());
    }
    json.to_string().parse::<Tokenizer>().map_err(|e| anyhow!("cannot rebuild the trained tokenizer: {e}"))
}

/// A `tokenizers` tokenizer plus the padding id and maximum length the towers need.
#[derive(Clone)]
pub struct CaptionTokenizer {
    inner: Arc<Tokenizer>,
    pad_id: u32,
    max_length: usize,
    /// `(first, unk)`: ids from `first` on are pieces outside the vocabulary, encoded as `unk`.
    unknown_from: Option<(u32, u32)>,
}

impl CaptionTokenizer {
    /// Trains a lower-casing WordPiece vocabulary on `captions`. Text is NFC-normalised first, so
    /// combining and precomposed Vietnamese diacritics give the same tokens; accents are kept.
    pub fn train<S: AsRef<str> + Send>(captions: impl Iterator<Item = S> + Send, vocab_size: usize, max_length: usize) -> Result<Self> {
        Self::train_with_case(captions, vocab_size, max_length, true)
    }

    /// [`Self::train`], lower-casing or (`lowercase = false`, as multilingual BERT's cased
    /// vocabulary) keeping the case.
    pub fn train_with_case<S: AsRef<str> + Send>(captions: impl Iterator<Item = S> + Send, vocab_size: usize, max_length: usize, lowercase: bool) -> Result<Self> {
        let normalizer = Sequence::new(vec![NFC.into(), BertNormalizer::new(true, true, Some(false), lowercase).into()]);
        let mut tokenizer = Tokenizer::new(WordPiece::default());
        tokenizer.with_normalizer(Some(normalizer));
        tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
        tokenizer.with_decoder(Some(WordPieceDecoder::default()));
        let mut trainer: TrainerWrapper = WordPieceTrainer::builder()
            .vocab_size(vocab_size)
            .min_frequency(1)
            .show_progress(false)
            .special_tokens(SPECIAL_TOKENS.iter().map(|t| AddedToken::from(*t, true)).collect())
            .build()
            .into();
        tokenizer.train(&mut trainer, captions).map_err(|e| anyhow!("training the tokenizer failed: {e}"))?;
        let mut tokenizer = canonical_ids(tokenizer)?;
        add_cls_sep(&mut tokenizer, "trained vocabulary")?;
        Self::wrap(tokenizer, max_length)
    }

    /// Loads any `tokenizer.json` (WordPiece, BPE or Unigram), with the out-of-vocabulary id range
    /// that [`Self::save`] records beside it for a converted PhoBERT tokenizer.
    pub fn from_file(path: &Path, max_length: usize) -> Result<Self> {
        let tokenizer = Tokenizer::from_file(path).map_err(|e| anyhow!("cannot load tokenizer {}: {e}", path.display()))?;
        let mut wrapped = Self::wrap(tokenizer, max_length)?;
        let sidecar = unknown_ids_path(path);
        if sidecar.is_file() {
            let text = std::fs::read_to_string(&sidecar).with_context(|| format!("cannot read {}", sidecar.display()))?;
            let range: UnknownIds = serde_json::from_str(&text).with_context(|| format!("{} is not valid", sidecar.display()))?;
            wrapped.unknown_from = Some((range.first, range.unk));
        }
        Ok(wrapped)
    }

    /// The tokenizer of a pretrained folder: `tokenizer.json`, else PhoBERT's `vocab.txt` +
    /// `bpe.codes`, else a WordPiece `vocab.txt` (lower-cased when `tokenizer_config.json` says so).
    pub fn from_dir(dir: &Path, max_length: usize) -> Result<Self> {
        let (json, vocab, codes) = (dir.join("tokenizer.json"), dir.join("vocab.txt"), dir.join("bpe.codes"));
        if json.is_file() {
            Self::from_file(&json, max_length)
        } else if vocab.is_file() && codes.is_file() {
            let converted = phobert::from_files(&vocab, &codes)?;
            let mut wrapped = Self::wrap(converted.tokenizer, max_length)?;
            wrapped.unknown_from = Some((converted.unknown_from, 3));
            Ok(wrapped)
        } else if vocab.is_file() {
            let lower = std::fs::read_to_string(dir.join("tokenizer_config.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v.get("do_lower_case").and_then(serde_json::Value::as_bool))
                .unwrap_or(true);
            let model = WordPiece::from_file(&vocab.to_string_lossy()).build().map_err(|e| anyhow!("cannot read {}: {e}", vocab.display()))?;
            let mut tokenizer = Tokenizer::new(model);
            tokenizer.with_normalizer(Some(BertNormalizer::new(true, true, None, lower)));
            tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
            tokenizer.with_decoder(Some(WordPieceDecoder::default()));
            add_cls_sep(&mut tokenizer, &vocab.display().to_string())?;
            Self::wrap(tokenizer, max_length)
        } else {
            bail!("{} has no tokenizer.json, vocab.txt + bpe.codes (PhoBERT) or vocab.txt", dir.display())
        }
    }

    fn wrap(mut tokenizer: Tokenizer, max_length: usize) -> Result<Self> {
        if max_length == 0 {
            bail!("max_length = 0: expected at least 1 token per caption");
        }
        let pad_id = tokenizer
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| ["[PAD]", "<pad>", "<PAD>"].iter().find_map(|t| tokenizer.token_to_id(t)))
            .ok_or_else(|| anyhow!("the tokenizer has no padding token ([PAD] or <pad>)"))?;
        // Padding is done per batch in `encode_batch`; a fixed padding in the file would hide the mask.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length, ..Default::default() }))
            .map_err(|e| anyhow!("{e}"))?;
        Ok(Self { inner: Arc::new(tokenizer), pad_id, max_length, unknown_from: None })
    }

    /// Writes `tokenizer.json`, and for a converted PhoBERT tokenizer `tokenizer.unknown.json`
    /// with the ids that stand for `<unk>` (a `tokenizers` BPE model cannot express them).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.inner.save(path, true).map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
        if let Some((first, unk)) = self.unknown_from {
            let sidecar = unknown_ids_path(path);
            std::fs::write(&sidecar, serde_json::to_string(&UnknownIds { first, unk })?).with_context(|| format!("cannot write {}", sidecar.display()))?;
        }
        Ok(())
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The largest id [`Self::encode_batch`] can emit: the vocabulary's and the added tokens'
    /// (ids from `unknown_from` on become `unk`), and the padding id.
    pub fn max_id(&self) -> u32 {
        let emitted = self.inner.get_vocab(true).into_values().map(|id| match self.unknown_from {
            Some((first, unk)) if id >= first => unk,
            _ => id,
        });
        emitted.fold(self.pad_id, u32::max)
    }

    /// An error unless every id this tokenizer emits has a row in a model vocabulary of
    /// `vocab_size` (else the embedding lookup fails mid-forward). `origin` names the files.
    pub fn check_fits(&self, vocab_size: usize, origin: &str) -> Result<()> {
        let max_id = self.max_id() as usize;
        if max_id >= vocab_size {
            bail!("{origin}: the tokenizer emits ids up to {max_id}, but vocab_size = {vocab_size}; expected the tokenizer that belongs to this model");
        }
        Ok(())
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The id that pads a batch.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.inner
    }

    /// Encodes with special tokens, truncates to the max length and pads to the longest in the batch.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<EncodedBatch> {
        let encodings = self
            .inner
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| anyhow!("tokenisation failed: {e}"))
            .context("encoding captions")?;
        let length = encodings.iter().map(|e| e.get_ids().len()).max().unwrap_or(0).max(1);
        let mut ids = vec![self.pad_id as i64; texts.len() * length];
        let mut mask = vec![0i64; texts.len() * length];
        for (row, encoding) in encodings.iter().enumerate() {
            for (col, &id) in encoding.get_ids().iter().enumerate() {
                let id = match self.unknown_from {
                    Some((first, unk)) if id >= first => unk,
                    _ => id,
                };
                ids[row * length + col] = id as i64;
                mask[row * length + col] = 1;
            }
        }
        Ok(EncodedBatch { ids, mask, length })
    }
}
