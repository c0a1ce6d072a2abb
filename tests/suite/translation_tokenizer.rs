//! The translation tokenizers against transformers 5.23 (`tools/gen_translation_fixtures.py`):
//! MarianTokenizer from `source.spm`/`target.spm` + `vocab.json`, and NllbTokenizer both from a
//! bare `sentencepiece.bpe.model` and from its `tokenizer.json`: the same ids for source and
//! target texts (diacritics, empty and over-long texts, unknown characters) and the same decoded
//! text. Broken SentencePiece files are errors naming the file.

use otclip::text::sentencepiece::SpmModel;
use otclip::text::spm_unigram::SpmUnigram;
use otclip::text::translation_tokenizer::{TranslationTokenizer, TranslationTokenizerKind};
use serde_json::Value;

use crate::common::{fixture, mutate, read_json};
use crate::translation::ids;

/// Compares every tokenizer case of `section` with the tokenizer of `dir`; returns the count.
fn check(section: &Value, dir: &str) -> usize {
    let tokenizer = TranslationTokenizer::from_dir(&fixture(dir)).unwrap_or_else(|e| panic!("{dir}: {e:#}"));
    let max_length = section["max_length"].as_u64().unwrap() as usize;
    let cases = &section["tokenizer"];
    let mut compared = 0;
    let mut truncated = 0;
    for case in cases["source"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let (ours, cut) = tokenizer.encode_source(text, case["src_lang"].as_str(), Some(max_length)).unwrap();
        assert_eq!(ours, ids(&case["ids"]), "{dir}: source ids of {text:?} ({:?})", case["src_lang"]);
        assert_eq!(cut, case["truncated"].as_bool().unwrap(), "{dir}: truncation of {text:?}");
        truncated += usize::from(cut);
        compared += 1;
    }
    assert!(truncated > 0, "{dir}: no source case was cut to {max_length}");
    for case in cases["target"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let (ours, _) = tokenizer.encode_target(text, case["tgt_lang"].as_str(), None).unwrap();
        assert_eq!(ours, ids(&case["ids"]), "{dir}: target ids of {text:?}");
        compared += 1;
    }
    for case in cases["decode"].as_array().unwrap() {
        let ours = tokenizer.decode(&ids(&case["ids"])).unwrap();
        assert_eq!(ours, case["text"].as_str().unwrap(), "{dir}: decoding {:?}", case["ids"]);
        compared += 1;
    }
    compared
}

#[test]
fn marian_tokenizer_gives_transformers_ids_and_text() {
    let reference = read_json("translation/reference.json");
    let section = &reference["marian"];
    let texts: Vec<&str> = section["tokenizer"]["source"].as_array().unwrap().iter().map(|c| c["text"].as_str().unwrap()).collect();
    assert!(texts.contains(&"") && texts.iter().any(|t| t.contains('ə')) && texts.iter().any(|t| t.contains('ộ')), "the cases lack empty, Azerbaijani or Vietnamese text");
    let compared = check(section, "translation/marian");
    let tokenizer = TranslationTokenizer::from_dir(&fixture("translation/marian")).unwrap();
    assert_eq!(tokenizer.kind(), TranslationTokenizerKind::Marian);
    assert_eq!((tokenizer.eos_id(), tokenizer.unk_id(), tokenizer.pad_id()), (0, 1, 586));
    eprintln!("Marian: {compared} cases identical to MarianTokenizer");
}

#[test]
fn nllb_tokenizer_from_the_sentencepiece_model_and_from_tokenizer_json_give_transformers_ids() {
    let reference = read_json("translation/reference.json");
    let section = &reference["m2m100"];
    let from_model = check(section, "translation/m2m100");
    let from_json = check(section, "translation/nllb_tokenizer_json");
    for dir in ["translation/m2m100", "translation/nllb_tokenizer_json"] {
        let tokenizer = TranslationTokenizer::from_dir(&fixture(dir)).unwrap();
        for (code, id) in section["langs"].as_object().unwrap() {
            assert_eq!(tokenizer.lang_id(code), Some(id.as_u64().unwrap() as u32), "{dir}: id of {code}");
        }
        assert_eq!(tokenizer.lang_codes().len(), 202, "{dir}: NLLB's language codes");
        let error = tokenizer.encode_source("a dog", Some("xxx_Latn"), None).unwrap_err().to_string();
        assert!(error.contains("xxx_Latn"), "{dir}: an unknown language is named: {error}");
    }
    eprintln!("NLLB: {from_model} cases identical from sentencepiece.bpe.model, {from_json} from tokenizer.json");
}

#[test]
fn broken_sentencepiece_files_are_errors_naming_the_file() {
    let good = std::fs::read(fixture("translation/marian/source.spm")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for name in ["vocab.json", "target.spm", "tokenizer_config.json"] {
        std::fs::copy(fixture(&format!("translation/marian/{name}")), dir.path().join(name)).unwrap();
    }
    let broken = [good[..good.len() / 3].to_vec(), b"not a sentencepiece model".to_vec(), mutate(&good, &[(40, 0, 0xff), (41, 0, 0xff), (42, 0, 0x0f)])];
    for bytes in broken {
        std::fs::write(dir.path().join("source.spm"), &bytes).unwrap();
        match std::panic::catch_unwind(|| TranslationTokenizer::from_dir(dir.path())) {
            Ok(Err(error)) => assert!(format!("{error:#}").contains("source.spm"), "the error names the file: {error:#}"),
            Ok(Ok(_)) => {}
            Err(_) => panic!("a broken source.spm panicked"),
        }
    }
    std::fs::write(dir.path().join("source.spm"), &good[..good.len() / 3]).unwrap();
    assert!(TranslationTokenizer::from_dir(dir.path()).is_err(), "a file cut to a third still loaded");
}


fn tiny_model() -> Vec<u8> {
    fn field(out: &mut Vec<u8>, f: u64, wire: u64, payload: &[u8]) {
        let mut k = (f << 3) | wire;
        loop {
            let b = (k & 0x7f) as u8;
            k >>= 7;
            out.push(if k > 0 { b | 0x80 } else { b });
            if k == 0 {
                break;
            }
        }
        if wire == 2 {
            out.push(payload.len() as u8);
        }
        out.extend_from_slice(payload);
    }
    let mut m = Vec::new();
    for (s, score, t) in [("<unk>", 0.0f32, 2u8), ("<s>", 0.0, 3), ("\u{2581}a", -1.0, 1), ("b", -2.0, 1)] {
        let mut p = Vec::new();
        field(&mut p, 1, 2, s.as_bytes());
        field(&mut p, 2, 5, &score.to_le_bytes());
        field(&mut p, 3, 0, &[t]);
        field(&mut m, 1, 2, &p);
    }
    m
}

#[test]
fn parses_a_hand_built_model() {
    let m = SpmModel::parse(&tiny_model()).unwrap();
    assert_eq!(m.pieces.len(), 4);
    assert_eq!(m.pieces[2].piece, "\u{2581}a");
    let u = SpmUnigram::new(m).unwrap();
    assert_eq!(u.encode_pieces(" ab  c"), vec!["\u{2581}a", "b", "\u{2581}c"]);
}

#[test]
fn truncated_or_garbage_bytes_are_errors() {
    let good = tiny_model();
    for n in 0..good.len() {
        let r = SpmModel::parse(&good[..n]);
        if n == 0 {
            assert!(r.is_err());
        }
        // Any prefix either parses to a model or fails, but never panics.
        let _ = r;
    }
    // Cut inside the last piece: must fail.
    assert!(SpmModel::parse(&good[..good.len() - 1]).is_err());
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    for len in [1usize, 2, 7, 33, 500, 4096] {
        for _ in 0..50 {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 24) as u8
                })
                .collect();
            if let Ok(m) = SpmModel::parse(&buf) {
                let _ = SpmUnigram::new(m).map(|u| u.encode_pieces("abc"));
            }
        }
    }
    assert!(SpmModel::parse(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff").is_err());
    assert!(SpmModel::parse(b"not a model at all").is_err());
}

#[test]
fn garbage_model_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let mp = dir.join("sentencepiece.bpe.model");
    for bytes in [&b""[..], b"\x0a\x05abc", b"\x0a\xff\xff\xff\xff\x0f", b"garbage garbage garbage"] {
        std::fs::write(&mp, bytes).unwrap();
        let err = TranslationTokenizer::from_dir(dir).err().expect("garbage must not load");
        assert!(format!("{err:#}").contains("sentencepiece.bpe.model"), "{err:#}");
    }
}
