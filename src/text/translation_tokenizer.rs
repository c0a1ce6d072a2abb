//! Tokenizers of translation models, matching transformers 5.23:
//! MarianTokenizer (source.spm/target.spm + vocab.json) and NllbTokenizer
//! (tokenizer.json, or sentencepiece.bpe.model + tokenizer_config.json).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, Tokenizer};

use super::sentencepiece::SpmModel;
use super::spm_unigram::SpmUnigram;

/// Which family the folder holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TranslationTokenizerKind {
    Marian,
    Nllb,
}

/// NLLB-200's language codes (transformers' FAIRSEQ_LANGUAGE_CODES), used to
/// find the codes of a tokenizer.json whose config does not list them.
pub const FAIRSEQ_LANGUAGE_CODES: &[&str] = &[
    "ace_Arab", "ace_Latn", "acm_Arab", "acq_Arab", "aeb_Arab", "afr_Latn", "ajp_Arab", "aka_Latn", "amh_Ethi", "apc_Arab", "arb_Arab", "ars_Arab", "ary_Arab",
    "arz_Arab", "asm_Beng", "ast_Latn", "awa_Deva", "ayr_Latn", "azb_Arab", "azj_Latn", "bak_Cyrl", "bam_Latn", "ban_Latn", "bel_Cyrl", "bem_Latn", "ben_Beng",
    "bho_Deva", "bjn_Arab", "bjn_Latn", "bod_Tibt", "bos_Latn", "bug_Latn", "bul_Cyrl", "cat_Latn", "ceb_Latn", "ces_Latn", "cjk_Latn", "ckb_Arab", "crh_Latn",
    "cym_Latn", "dan_Latn", "deu_Latn", "dik_Latn", "dyu_Latn", "dzo_Tibt", "ell_Grek", "eng_Latn", "epo_Latn", "est_Latn", "eus_Latn", "ewe_Latn", "fao_Latn",
    "pes_Arab", "fij_Latn", "fin_Latn", "fon_Latn", "fra_Latn", "fur_Latn", "fuv_Latn", "gla_Latn", "gle_Latn", "glg_Latn", "grn_Latn", "guj_Gujr", "hat_Latn",
    "hau_Latn", "heb_Hebr", "hin_Deva", "hne_Deva", "hrv_Latn", "hun_Latn", "hye_Armn", "ibo_Latn", "ilo_Latn", "ind_Latn", "isl_Latn", "ita_Latn", "jav_Latn",
    "jpn_Jpan", "kab_Latn", "kac_Latn", "kam_Latn", "kan_Knda", "kas_Arab", "kas_Deva", "kat_Geor", "knc_Arab", "knc_Latn", "kaz_Cyrl", "kbp_Latn", "kea_Latn",
    "khm_Khmr", "kik_Latn", "kin_Latn", "kir_Cyrl", "kmb_Latn", "kon_Latn", "kor_Hang", "kmr_Latn", "lao_Laoo", "lvs_Latn", "lij_Latn", "lim_Latn", "lin_Latn",
    "lit_Latn", "lmo_Latn", "ltg_Latn", "ltz_Latn", "lua_Latn", "lug_Latn", "luo_Latn", "lus_Latn", "mag_Deva", "mai_Deva", "mal_Mlym", "mar_Deva", "min_Latn",
    "mkd_Cyrl", "plt_Latn", "mlt_Latn", "mni_Beng", "khk_Cyrl", "mos_Latn", "mri_Latn", "zsm_Latn", "mya_Mymr", "nld_Latn", "nno_Latn", "nob_Latn", "npi_Deva",
    "nso_Latn", "nus_Latn", "nya_Latn", "oci_Latn", "gaz_Latn", "ory_Orya", "pag_Latn", "pan_Guru", "pap_Latn", "pol_Latn", "por_Latn", "prs_Arab", "pbt_Arab",
    "quy_Latn", "ron_Latn", "run_Latn", "rus_Cyrl", "sag_Latn", "san_Deva", "sat_Beng", "scn_Latn", "shn_Mymr", "sin_Sinh", "slk_Latn", "slv_Latn", "smo_Latn",
    "sna_Latn", "snd_Arab", "som_Latn", "sot_Latn", "spa_Latn", "als_Latn", "srd_Latn", "srp_Cyrl", "ssw_Latn", "sun_Latn", "swe_Latn", "swh_Latn", "szl_Latn",
    "tam_Taml", "tat_Cyrl", "tel_Telu", "tgk_Cyrl", "tgl_Latn", "tha_Thai", "tir_Ethi", "taq_Latn", "taq_Tfng", "tpi_Latn", "tsn_Latn", "tso_Latn", "tuk_Latn",
    "tum_Latn", "tur_Latn", "twi_Latn", "tzm_Tfng", "uig_Arab", "ukr_Cyrl", "umb_Latn", "urd_Arab", "uzn_Latn", "vec_Latn", "vie_Latn", "war_Latn", "wol_Latn",
    "xho_Latn", "ydd_Hebr", "yor_Latn", "yue_Hant", "zho_Hans", "zho_Hant", "zul_Latn",
];

struct Marian {
    source: SpmUnigram,
    target: SpmUnigram,
    vocab: HashMap<String, u32>,
    id_to_token: HashMap<u32, String>,
    /// `</s>`, `<unk>`, `<pad>`: split out of the text before SentencePiece.
    specials: Vec<String>,
}

struct Nllb {
    tokenizer: Tokenizer,
    default_src: String,
    default_tgt: Option<String>,
}

enum Inner {
    Marian(Box<Marian>),
    Nllb(Box<Nllb>),
}

/// A Marian or NLLB tokenizer read from a model folder.
pub struct TranslationTokenizer {
    inner: Inner,
    lang_codes: Vec<String>,
    pad_id: u32,
    eos_id: u32,
    unk_id: u32,
}

fn read_json(path: &Path) -> Result<Value> {
    let s = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&s).with_context(|| format!("{} is not valid JSON", path.display()))
}

fn read_config(dir: &Path) -> Result<Value> {
    let p = dir.join("tokenizer_config.json");
    if p.is_file() {
        read_json(&p)
    } else {
        Ok(json!({}))
    }
}

/// Content of a special-token config entry (a string or an AddedToken dict).
fn token_str(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

fn cfg_token(cfg: &Value, key: &str, default: &str) -> String {
    cfg.get(key).and_then(token_str).unwrap_or_else(|| default.to_string())
}

fn cfg_list(cfg: &Value, key: &str) -> Option<Vec<String>> {
    match cfg.get(key)? {
        Value::Array(a) => Some(a.iter().filter_map(token_str).collect()),
        // transformers 5 may write extra_special_tokens as {name: token}.
        Value::Object(o) => Some(o.values().filter_map(token_str).collect()),
        _ => None,
    }
}

fn metaspace() -> Metaspace {
    Metaspace::new('\u{2581}', PrependScheme::Always, true)
}

/// NllbTokenizer's normaliser: Precompiled(charsmap) then Replace(" {2,}", " "),
/// or none when there is no charsmap.
fn nllb_normalizer(precompiled: Option<Value>) -> Result<Option<NormalizerWrapper>> {
    let Some(pc) = precompiled else {
        return Ok(None);
    };
    let seq = json!({"type": "Sequence", "normalizers": [
        pc,
        {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}
    ]});
    Ok(Some(serde_json::from_value(seq).context("building the NLLB normaliser")?))
}

fn find_precompiled(n: &Value) -> Option<Value> {
    match n.get("type").and_then(Value::as_str) {
        Some("Precompiled") if n.get("precompiled_charsmap").is_some_and(|c| !c.is_null()) => Some(n.clone()),
        Some("Sequence") => n.get("normalizers")?.as_array()?.iter().find_map(find_precompiled),
        _ => None,
    }
}

fn cut(pieces: &mut Vec<u32>, n_special: usize, max_length: Option<usize>) -> Result<bool> {
    let Some(max) = max_length else {
        return Ok(false);
    };
    if max < n_special {
        bail!("max_length {max} is smaller than the {n_special} special tokens added");
    }
    let keep = max - n_special;
    let truncated = pieces.len() > keep;
    pieces.truncate(keep);
    Ok(truncated)
}

impl TranslationTokenizer {
    /// Reads DIR: tokenizer.json, or source.spm/target.spm + vocab.json (Marian), or sentencepiece.bpe.model (NLLB). Errors name the file and what was expected.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        if dir.join("source.spm").is_file() || (dir.join("vocab.json").is_file() && !dir.join("tokenizer.json").is_file()) {
            return Self::marian(dir);
        }
        if dir.join("tokenizer.json").is_file() || dir.join("sentencepiece.bpe.model").is_file() {
            return Self::nllb(dir);
        }
        bail!(
            "{}: expected tokenizer.json, source.spm + target.spm + vocab.json (Marian) or sentencepiece.bpe.model (NLLB)",
            dir.display()
        )
    }

    fn marian(dir: &Path) -> Result<Self> {
        let cfg = read_config(dir)?;
        if cfg.get("separate_vocabs").and_then(Value::as_bool) == Some(true) {
            bail!("{}: Marian separate_vocabs=true is not supported", dir.join("tokenizer_config.json").display());
        }
        let load = |name: &str| -> Result<SpmUnigram> {
            let p = dir.join(name);
            if !p.is_file() {
                bail!("{} is missing (Marian needs source.spm, target.spm, vocab.json)", p.display());
            }
            SpmUnigram::new(SpmModel::from_file(&p)?).with_context(|| format!("{} is not a usable SentencePiece unigram model", p.display()))
        };
        let (source, target) = (load("source.spm")?, load("target.spm")?);
        let vp = dir.join("vocab.json");
        let raw = read_json(&vp)?;
        let obj = raw.as_object().ok_or_else(|| anyhow!("{} is not a JSON object of piece -> id", vp.display()))?;
        let mut vocab = HashMap::new();
        let mut codes = Vec::new();
        for (k, v) in obj {
            let id = v
                .as_u64()
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| anyhow!("{}: id of {k:?} is not a non-negative integer", vp.display()))?;
            vocab.insert(k.clone(), id);
            if k.starts_with(">>") && k.ends_with("<<") {
                codes.push(k.clone());
            }
        }
        let id_to_token: HashMap<u32, String> = vocab.iter().map(|(k, &v)| (v, k.clone())).collect();
        let tok = |key: &str, d: &str| cfg_token(&cfg, key, d);
        let (eos, unk, pad) = (tok("eos_token", "</s>"), tok("unk_token", "<unk>"), tok("pad_token", "<pad>"));
        let id_of = |t: &str| {
            vocab
                .get(t)
                .copied()
                .ok_or_else(|| anyhow!("{}: special token {t:?} is not in the vocabulary", vp.display()))
        };
        let (eos_id, unk_id, pad_id) = (id_of(&eos)?, id_of(&unk)?, id_of(&pad)?);
        Ok(TranslationTokenizer {
            inner: Inner::Marian(Box::new(Marian {
                source,
                target,
                vocab,
                id_to_token,
                specials: vec![eos, unk, pad],
            })),
            lang_codes: codes,
            pad_id,
            eos_id,
            unk_id,
        })
    }

    fn nllb(dir: &Path) -> Result<Self> {
        let cfg = read_config(dir)?;
        let (bos, pad, eos, unk, mask) = (
            cfg_token(&cfg, "bos_token", "<s>"),
            cfg_token(&cfg, "pad_token", "<pad>"),
            cfg_token(&cfg, "eos_token", "</s>"),
            cfg_token(&cfg, "unk_token", "<unk>"),
            cfg_token(&cfg, "mask_token", "<mask>"),
        );
        let listed = cfg_list(&cfg, "extra_special_tokens").or_else(|| cfg_list(&cfg, "additional_special_tokens"));
        let tj = dir.join("tokenizer.json");
        let mut tokenizer: Tokenizer;
        if tj.is_file() {
            tokenizer = Tokenizer::from_file(&tj).map_err(|e| anyhow!("{} is not a loadable tokenizer.json: {e}", tj.display()))?;
            // NllbTokenizer.__init__ rebuilds these parts whatever the file says.
            let j = read_json(&tj)?;
            let norm =
                nllb_normalizer(j.get("normalizer").and_then(find_precompiled)).with_context(|| format!("{}: bad Precompiled normaliser", tj.display()))?;
            tokenizer.with_normalizer(norm);
        } else {
            let mp = dir.join("sentencepiece.bpe.model");
            let spm = SpmModel::from_file(&mp)?;
            if spm.model_type != 2 {
                bail!("{}: expected a SentencePiece BPE model (model_type 2), found {}", mp.display(), spm.model_type);
            }
            // transformers: merges from the spm-order vocab, then NllbConverter.convert_from_spm's reordering.
            let merges = spm.generated_merges();
            let mut vocab: HashMap<String, u32> = HashMap::new();
            for t in [&bos, &pad, &eos, &unk] {
                let n = vocab.len() as u32;
                vocab.entry(t.clone()).or_insert(n);
            }
            for p in &spm.pieces {
                let n = vocab.len() as u32;
                vocab.entry(p.piece.clone()).or_insert(n);
            }
            let bpe = BPE::builder()
                .vocab_and_merges(vocab.into_iter().collect::<tokenizers::models::bpe::Vocab>(), merges)
                .unk_token(unk.clone())
                .fuse_unk(true)
                .build()
                .map_err(|e| anyhow!("{}: cannot build the BPE model: {e}", mp.display()))?;
            tokenizer = Tokenizer::new(bpe);
            let pc = (!spm.precompiled_charsmap.is_empty()).then(|| json!({"type": "Precompiled", "precompiled_charsmap": base64(&spm.precompiled_charsmap)}));
            let norm = nllb_normalizer(pc).with_context(|| format!("{}: bad precompiled_charsmap", mp.display()))?;
            tokenizer.with_normalizer(norm);
            let special = |t: &str| AddedToken::from(t.to_string(), true).normalized(false);
            tokenizer.add_special_tokens(&[special(&bos), special(&pad), special(&eos), special(&unk)]);
            // Added tokens: ids from added_tokens_decoder if given, else <mask> then the listed codes.
            let mut added: Vec<(u32, AddedToken)> = Vec::new();
            if let Some(atd) = cfg.get("added_tokens_decoder").and_then(Value::as_object) {
                for (id, t) in atd {
                    let id: u32 = id.parse().with_context(|| format!("added_tokens_decoder id {id:?}"))?;
                    let Some(content) = token_str(t) else {
                        continue;
                    };
                    let flag = |k: &str, d: bool| t.get(k).and_then(Value::as_bool).unwrap_or(d);
                    let at = AddedToken::from(content, flag("special", true))
                        .normalized(flag("normalized", false))
                        .lstrip(flag("lstrip", false))
                        .rstrip(flag("rstrip", false))
                        .single_word(flag("single_word", false));
                    added.push((id, at));
                }
                added.sort_by_key(|(id, _)| *id);
            } else {
                let m = AddedToken::from(mask.clone(), true).normalized(true).lstrip(true);
                added.push((u32::MAX, m));
                for c in listed.iter().flatten() {
                    added.push((u32::MAX, special(c)));
                }
            }
            for (want, at) in added {
                let content = at.content.clone();
                tokenizer.add_special_tokens(&[at]);
                let got = tokenizer.token_to_id(&content);
                if want != u32::MAX && got != Some(want) {
                    bail!(
                        "{}: added token {content:?} should have id {want} but would get {got:?} (non-contiguous added_tokens_decoder)",
                        dir.join("tokenizer_config.json").display()
                    );
                }
            }
        }
        tokenizer.with_pre_tokenizer(Some(PreTokenizerWrapper::Metaspace(metaspace())));
        tokenizer.with_decoder(Some(DecoderWrapper::Metaspace(metaspace())));
        tokenizer.with_post_processor(None::<tokenizers::processors::PostProcessorWrapper>);
        tokenizer.with_truncation(None).map_err(|e| anyhow!("{e}"))?;
        tokenizer.with_padding(None);

        let codes: Vec<String> = match &listed {
            Some(l) => l.iter().filter(|c| ![&bos, &pad, &eos, &unk, &mask].contains(c)).cloned().collect(),
            None => {
                let vocab = tokenizer.get_vocab(true);
                FAIRSEQ_LANGUAGE_CODES
                    .iter()
                    .filter(|c| vocab.contains_key(**c))
                    .map(|c| c.to_string())
                    .collect()
            }
        };
        let codes: Vec<String> = codes.into_iter().filter(|c| tokenizer.token_to_id(c).is_some()).collect();
        let id = |t: &str| tokenizer.token_to_id(t).ok_or_else(|| anyhow!("{}: token {t:?} has no id", dir.display()));
        let (pad_id, eos_id, unk_id) = (id(&pad)?, id(&eos)?, id(&unk)?);
        let default_src = cfg.get("src_lang").and_then(Value::as_str).unwrap_or("eng_Latn").to_string();
        let default_tgt = cfg.get("tgt_lang").and_then(Value::as_str).map(str::to_string);
        Ok(TranslationTokenizer {
            inner: Inner::Nllb(Box::new(Nllb {
                tokenizer,
                default_src,
                default_tgt,
            })),
            lang_codes: codes,
            pad_id,
            eos_id,
            unk_id,
        })
    }

    pub fn kind(&self) -> TranslationTokenizerKind {
        match self.inner {
            Inner::Marian(_) => TranslationTokenizerKind::Marian,
            Inner::Nllb(_) => TranslationTokenizerKind::Nllb,
        }
    }

    fn lang_error(&self, code: &str) -> anyhow::Error {
        let some: Vec<&str> = self.lang_codes.iter().take(5).map(String::as_str).collect();
        if some.is_empty() {
            anyhow!("unknown language code {code:?}: this tokenizer defines no language codes")
        } else {
            anyhow!("unknown language code {code:?}; valid codes include {}", some.join(", "))
        }
    }

    fn require_lang(&self, code: &str) -> Result<u32> {
        self.lang_id(code).ok_or_else(|| self.lang_error(code))
    }

    /// Marian: pieces of `text` as MarianTokenizer.tokenize does (special tokens
    /// split out, a leading `>>xx<<` kept whole), mapped through vocab.json.
    fn marian_ids(m: &Marian, spm: &SpmUnigram, text: &str, unk_id: u32) -> Vec<u32> {
        let mut ids = Vec::new();
        let mut rest = text;
        let mut chunks: Vec<(&str, bool)> = Vec::new();
        while !rest.is_empty() {
            let hit = m
                .specials
                .iter()
                .filter(|s| !s.is_empty())
                .filter_map(|s| rest.find(s.as_str()).map(|i| (i, s.len())))
                .min_by_key(|&(i, len)| (i, usize::MAX - len));
            match hit {
                Some((i, len)) => {
                    chunks.push((&rest[..i], false));
                    chunks.push((&rest[i..i + len], true));
                    rest = &rest[i + len..];
                }
                None => {
                    chunks.push((rest, false));
                    rest = "";
                }
            }
        }
        for (chunk, special) in chunks {
            if chunk.is_empty() {
                continue;
            }
            if special {
                ids.push(m.vocab[chunk]);
                continue;
            }
            let mut body = chunk;
            if chunk.starts_with(">>") {
                if let Some(end) = chunk.find("<<") {
                    let code = &chunk[..end + 2];
                    ids.push(m.vocab.get(code).copied().unwrap_or(unk_id));
                    body = &chunk[end + 2..];
                }
            }
            for p in spm.encode_pieces(body) {
                ids.push(m.vocab.get(&p).copied().unwrap_or(unk_id));
            }
        }
        ids
    }

    /// `lang` None: the default code, whose id is `<unk>` when the folder lacks it
    /// (as transformers does for a bare sentencepiece.bpe.model); a named unknown code is an error.
    fn nllb_encode(&self, n: &Nllb, text: &str, lang: Option<&str>, default: &str, max_length: Option<usize>) -> Result<(Vec<u32>, bool)> {
        let lang_id = match lang {
            Some(code) => self.require_lang(code)?,
            None => n.tokenizer.token_to_id(default).unwrap_or(self.unk_id),
        };
        let enc = n.tokenizer.encode(text, false).map_err(|e| anyhow!("tokenizing failed: {e}"))?;
        let mut ids = enc.get_ids().to_vec();
        let truncated = cut(&mut ids, 2, max_length)?;
        let mut out = Vec::with_capacity(ids.len() + 2);
        out.push(lang_id);
        out.extend(ids);
        out.push(self.eos_id);
        Ok((out, truncated))
    }

    /// Source ids with special tokens, cut to `max_length` (None: no cut); returns (ids, truncated).
    /// NLLB: `[src_lang] pieces </s>` (default src_lang from tokenizer_config.json, else eng_Latn).
    /// Marian: `pieces </s>`; a `src_lang` such as "vie" or ">>vie<<" is put first, as a `>>vie<<` prefix in the text would be.
    pub fn encode_source(&self, text: &str, src_lang: Option<&str>, max_length: Option<usize>) -> Result<(Vec<u32>, bool)> {
        match &self.inner {
            Inner::Nllb(n) => self.nllb_encode(n, text, src_lang, &n.default_src, max_length),
            Inner::Marian(m) => {
                let prefix = src_lang.map(|c| self.require_lang(c)).transpose()?;
                let mut ids = Self::marian_ids(m, &m.source, text, self.unk_id);
                let n_special = 1 + usize::from(prefix.is_some());
                let truncated = cut(&mut ids, n_special, max_length)?;
                let mut out: Vec<u32> = prefix.into_iter().collect();
                out.extend(ids);
                out.push(self.eos_id);
                Ok((out, truncated))
            }
        }
    }

    /// Target (label) ids: NLLB `[tgt_lang] pieces </s>` (default tgt_lang from the config, else the source default);
    /// Marian `pieces </s>` through target.spm (a language code is an error there).
    pub fn encode_target(&self, text: &str, tgt_lang: Option<&str>, max_length: Option<usize>) -> Result<(Vec<u32>, bool)> {
        match &self.inner {
            Inner::Nllb(n) => {
                let default = n.default_tgt.as_deref().unwrap_or(&n.default_src);
                self.nllb_encode(n, text, tgt_lang, default, max_length)
            }
            Inner::Marian(m) => {
                if let Some(c) = tgt_lang {
                    bail!("Marian target text takes no language code (got {c:?})");
                }
                let mut ids = Self::marian_ids(m, &m.target, text, self.unk_id);
                let truncated = cut(&mut ids, 1, max_length)?;
                ids.push(self.eos_id);
                Ok((ids, truncated))
            }
        }
    }

    /// Text of generated ids, special tokens skipped (as transformers' decode(skip_special_tokens=True)).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match &self.inner {
            Inner::Nllb(n) => n.tokenizer.decode(ids, true).map_err(|e| anyhow!("decoding failed: {e}")),
            Inner::Marian(m) => {
                // MarianTokenizer decodes with the source spm unless separate_vocabs.
                let skip = [self.eos_id, self.unk_id, self.pad_id];
                let mut pieces = Vec::with_capacity(ids.len());
                for &id in ids.iter().filter(|id| !skip.contains(id)) {
                    let piece = match m.id_to_token.get(&id) {
                        Some(t) => t.clone(),
                        None => m
                            .source
                            .model
                            .pieces
                            .get(id as usize)
                            .map_or_else(|| m.specials[1].clone(), |p| p.piece.clone()),
                    };
                    pieces.push(piece);
                }
                let s = m.source.decode_pieces(&pieces).replace('\u{2581}', " ");
                Ok(s.trim().to_string())
            }
        }
    }

    /// Id of a language code such as "vie_Latn" (NLLB) or ">>vie<<" / "vie" (Marian); None if not in the vocabulary.
    pub fn lang_id(&self, code: &str) -> Option<u32> {
        match &self.inner {
            Inner::Nllb(n) => {
                if self.lang_codes.iter().any(|c| c == code) {
                    n.tokenizer.token_to_id(code)
                } else {
                    None
                }
            }
            Inner::Marian(m) => {
                let full = if code.starts_with(">>") { code.to_string() } else { format!(">>{code}<<") };
                if self.lang_codes.contains(&full) {
                    m.vocab.get(&full).copied()
                } else {
                    None
                }
            }
        }
    }

    /// Language codes in vocabulary order of declaration (NLLB) or `>>xx<<` tokens of vocab.json (Marian).
    pub fn lang_codes(&self) -> &[String] {
        &self.lang_codes
    }
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }
    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }
    /// Number of ids (len(tokenizer) in transformers: vocabulary plus added tokens).
    pub fn vocab_size(&self) -> usize {
        match &self.inner {
            Inner::Marian(m) => m.vocab.len(),
            Inner::Nllb(n) => n.tokenizer.get_vocab_size(true),
        }
    }
}

/// Standard base64 (the form tokenizer.json stores precompiled_charsmap in).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}
