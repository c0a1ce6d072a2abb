//! PhoBERT's fastBPE vocabulary (`vocab.txt` + `bpe.codes`, `@@` marking a piece that continues)
//! converted into an equivalent `tokenizers` pipeline: whitespace split, BPE with the `</w>`
//! end-of-word suffix and fastBPE's merges, `<s> … </s>` around the text.
//!
//! fastBPE writes a word-final piece `ab` as `ab` and an inner piece as `ab@@`; inside the BPE
//! model these are `ab</w>` and `ab`. Pieces that the merges create but the vocabulary lacks get
//! ids after `<mask>` (BPE merges by id, so they need ids of their own); the caller maps every id
//! from [`PhobertTokenizer::unknown_from`] on to `<unk>`, as PhoBERT's own tokenizer does.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use tokenizers::decoders::bpe::BPEDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

/// PhoBERT's fixed special tokens and their ids; the vocabulary file follows from id 4.
pub const SPECIAL: [&str; 4] = ["<s>", "<pad>", "</s>", "<unk>"];

/// The converted tokenizer and the first id that stands for an out-of-vocabulary piece.
pub struct PhobertTokenizer {
    pub tokenizer: Tokenizer,
    pub unknown_from: u32,
}

/// Builds the tokenizer from a `vocab.txt` (`token count` per line) and a `bpe.codes` (`a b count`).
pub fn from_files(vocab_path: &Path, codes_path: &Path) -> Result<PhobertTokenizer> {
    let vocab_text = std::fs::read_to_string(vocab_path).with_context(|| format!("cannot read {}", vocab_path.display()))?;
    let codes_text = std::fs::read_to_string(codes_path).with_context(|| format!("cannot read {}", codes_path.display()))?;
    let mut vocab: HashMap<String, u32> = SPECIAL.iter().enumerate().map(|(i, t)| (t.to_string(), i as u32)).collect();
    let mut next = SPECIAL.len() as u32;
    for (line_no, line) in vocab_text.lines().enumerate() {
        let line = line.trim();
        let Some((token, _count)) = line.rsplit_once(' ') else {
            bail!("{}:{}: expected `<token> <count>`", vocab_path.display(), line_no + 1);
        };
        let internal = match token.strip_suffix("@@") {
            Some(inner) => inner.to_string(),
            None => format!("{token}</w>"),
        };
        if !vocab.contains_key(&internal) {
            vocab.insert(internal, next);
            next += 1;
        }
    }
    let mask_id = next;
    vocab.insert("<mask>".to_string(), mask_id);
    let unknown_from = mask_id + 1;
    let mut extra = unknown_from;
    let mut merges = Vec::new();
    for (line_no, line) in codes_text.lines().enumerate() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.len() < 2 {
            bail!("{}:{}: expected `<a> <b> <count>`", codes_path.display(), line_no + 1);
        }
        let (a, b) = (parts[0].to_string(), parts[1].to_string());
        for symbol in [a.clone(), b.clone(), format!("{a}{b}")] {
            vocab.entry(symbol).or_insert_with(|| {
                extra += 1;
                extra - 1
            });
        }
        merges.push((a, b));
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocab.into_iter().collect::<tokenizers::models::bpe::Vocab>(), merges)
        .unk_token("<unk>".into())
        .end_of_word_suffix("</w>".into())
        .build()
        .map_err(|e| anyhow!("cannot build the BPE model from {}: {e}", codes_path.display()))?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(WhitespaceSplit));
    tokenizer.with_decoder(Some(BPEDecoder::new("</w>".into())));
    let template = TemplateProcessing::builder()
        .try_single("<s> $A </s>")
        .map_err(|e| anyhow!("{e}"))?
        .try_pair("<s> $A </s> </s> $B </s>")
        .map_err(|e| anyhow!("{e}"))?
        .special_tokens(vec![("<s>", 0), ("</s>", 2)])
        .build()?;
    tokenizer.with_post_processor(Some(template));
    tokenizer.add_special_tokens(&[AddedToken::from("<s>", true), AddedToken::from("<pad>", true), AddedToken::from("</s>", true), AddedToken::from("<unk>", true)]);
    tokenizer.add_special_tokens(&[AddedToken::from("<mask>", true)]);
    Ok(PhobertTokenizer { tokenizer, unknown_from })
}
