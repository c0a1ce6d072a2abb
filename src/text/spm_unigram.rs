//! SentencePiece's normaliser (precompiled charsmap, whitespace handling) and unigram encoder
//! (Viterbi over the pieces, as unigram_model.cc), with piece decoding: Marian's tokenizer.

use std::collections::HashMap;

use anyhow::{bail, Result};

use super::sentencepiece::{PieceType, SpmModel};

/// SentencePiece's normaliser (normalizer.cc): longest-match charsmap rules,
/// then whitespace removal/escaping and the dummy prefix.
pub struct SpmNormalizer {
    units: Vec<u32>,
    normalized: Vec<u8>,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
    treat_whitespace_as_suffix: bool,
}

impl SpmNormalizer {
    pub fn new(m: &SpmModel) -> Result<Self> {
        let (mut units, mut normalized) = (Vec::new(), Vec::new());
        let cm = &m.precompiled_charsmap;
        if !cm.is_empty() {
            if cm.len() < 4 {
                bail!("precompiled_charsmap too short");
            }
            let trie_size = u32::from_le_bytes([cm[0], cm[1], cm[2], cm[3]]) as usize;
            if !trie_size.is_multiple_of(4) || 4 + trie_size > cm.len() {
                bail!("precompiled_charsmap trie size {trie_size} is inconsistent");
            }
            units = cm[4..4 + trie_size]
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            normalized = cm[4 + trie_size..].to_vec();
        }
        Ok(SpmNormalizer {
            units,
            normalized,
            add_dummy_prefix: m.add_dummy_prefix,
            remove_extra_whitespaces: m.remove_extra_whitespaces,
            escape_whitespaces: m.escape_whitespaces,
            treat_whitespace_as_suffix: m.treat_whitespace_as_suffix,
        })
    }

    /// Longest rule matching a prefix of `key`: (match length, replacement).
    fn longest_rule(&self, key: &[u8]) -> Option<(usize, &[u8])> {
        if self.units.is_empty() {
            return None;
        }
        let offset = |u: u32| ((u >> 10) << ((u & (1 << 9)) >> 6)) as usize;
        let has_leaf = |u: u32| (u >> 8) & 1 == 1;
        let label = |u: u32| u & ((1 << 31) | 0xff);
        let value = |u: u32| (u & ((1 << 31) - 1)) as usize;
        let mut best = None;
        let mut pos = offset(self.units[0]);
        for (i, &b) in key.iter().enumerate() {
            pos ^= b as usize;
            let u = *self.units.get(pos)?;
            if label(u) != b as u32 {
                break;
            }
            pos ^= offset(u);
            if has_leaf(u) {
                let v = value(*self.units.get(pos)?);
                best = Some((i + 1, v));
            }
        }
        let (len, v) = best?;
        let rest = self.normalized.get(v..)?;
        let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
        Some((len, &rest[..end]))
    }

    /// One normalised prefix of `input`: (replacement text, bytes consumed).
    fn prefix<'a>(&'a self, input: &'a str) -> (std::borrow::Cow<'a, str>, usize) {
        if let Some((len, rep)) = self.longest_rule(input.as_bytes()) {
            if input.is_char_boundary(len) {
                return (String::from_utf8_lossy(rep), len);
            }
        }
        let n = input.chars().next().map_or(0, char::len_utf8);
        (std::borrow::Cow::Borrowed(&input[..n]), n)
    }

    pub fn normalize(&self, mut input: &str) -> String {
        const WS: &str = "\u{2581}";
        if self.remove_extra_whitespaces {
            while !input.is_empty() {
                let (p, n) = self.prefix(input);
                if p != " " {
                    break;
                }
                input = &input[n..];
            }
        }
        if input.is_empty() {
            return String::new();
        }
        let space = if self.escape_whitespaces { WS } else { " " };
        let mut out = String::with_capacity(input.len() * 3);
        if !self.treat_whitespace_as_suffix && self.add_dummy_prefix {
            out.push_str(space);
        }
        let mut is_prev_space = self.remove_extra_whitespaces;
        while !input.is_empty() {
            let (p, n) = self.prefix(input);
            let mut sp: &str = &p;
            while is_prev_space && sp.starts_with(' ') {
                sp = &sp[1..];
            }
            if !sp.is_empty() {
                for c in sp.chars() {
                    if self.escape_whitespaces && c == ' ' {
                        out.push_str(WS);
                    } else {
                        out.push(c);
                    }
                }
                is_prev_space = sp.ends_with(' ');
            }
            input = &input[n..];
        }
        if self.treat_whitespace_as_suffix && self.add_dummy_prefix {
            out.push_str(space);
        }
        if self.remove_extra_whitespaces {
            while out.ends_with(space) {
                out.truncate(out.len() - space.len());
            }
        }
        out
    }
}

/// SentencePiece unigram encoder (unigram_model.cc, optimised Viterbi).
pub struct SpmUnigram {
    pub model: SpmModel,
    normalizer: SpmNormalizer,
    piece_ids: HashMap<String, usize>,
    /// Pieces the lattice may use (normal, user-defined, unused), by text.
    matchable: HashMap<String, usize>,
    max_piece_bytes: usize,
    min_score: f32,
    max_score: f32,
}

impl SpmUnigram {
    pub fn new(model: SpmModel) -> Result<Self> {
        if model.model_type != 1 {
            bail!("model_type {} is not unigram (1)", model.model_type);
        }
        let normalizer = SpmNormalizer::new(&model)?;
        let (mut piece_ids, mut matchable) = (HashMap::new(), HashMap::new());
        let (mut min_score, mut max_score) = (f32::MAX, f32::MIN_POSITIVE);
        let mut max_piece_bytes = 1;
        for (i, p) in model.pieces.iter().enumerate() {
            piece_ids.entry(p.piece.clone()).or_insert(i);
            if matches!(p.kind, PieceType::Normal | PieceType::UserDefined | PieceType::Unused) {
                matchable.entry(p.piece.clone()).or_insert(i);
                max_piece_bytes = max_piece_bytes.max(p.piece.len());
            }
            if p.kind == PieceType::Normal {
                min_score = min_score.min(p.score);
                max_score = max_score.max(p.score);
            }
        }
        let unk = model.unk_id;
        if unk < 0 || unk as usize >= model.pieces.len() || model.pieces[unk as usize].kind != PieceType::Unknown {
            bail!("unk_id {unk} is not an UNKNOWN piece");
        }
        Ok(SpmUnigram {
            model,
            normalizer,
            piece_ids,
            matchable,
            max_piece_bytes,
            min_score,
            max_score,
        })
    }

    /// Pieces of `text` as `SentencePieceProcessor.encode(text, out_type=str)`.
    pub fn encode_pieces(&self, text: &str) -> Vec<String> {
        let norm = self.normalizer.normalize(text);
        let size = norm.len();
        if size == 0 {
            return Vec::new();
        }
        #[derive(Clone, Copy)]
        struct Best {
            id: usize,
            score: f32,
            starts_at: Option<usize>,
        }
        let unk_id = self.model.unk_id as usize;
        let unk_score = self.min_score - 10.0;
        let mut best = vec![
            Best {
                id: unk_id,
                score: 0.0,
                starts_at: None
            };
            size + 1
        ];
        let mut start = 0;
        while start < size {
            let till_here = best[start].score;
            let mblen = norm[start..].chars().next().map_or(1, char::len_utf8);
            let mut has_single = false;
            let limit = (start + self.max_piece_bytes).min(size);
            let mut end = start + mblen;
            while end <= limit {
                if norm.is_char_boundary(end) {
                    if let Some(&id) = self.matchable.get(&norm[start..end]) {
                        let p = &self.model.pieces[id];
                        if p.kind != PieceType::Unused {
                            let len = (end - start) as f32;
                            let score = if p.kind == PieceType::UserDefined {
                                len * self.max_score - 0.1
                            } else {
                                p.score
                            };
                            let cand = score + till_here;
                            let t = &mut best[end];
                            if t.starts_at.is_none() || cand > t.score {
                                *t = Best {
                                    id,
                                    score: cand,
                                    starts_at: Some(start),
                                };
                            }
                            if end - start == mblen {
                                has_single = true;
                            }
                        }
                    }
                }
                end += 1;
            }
            if !has_single {
                let cand = unk_score + till_here;
                let t = &mut best[start + mblen];
                if t.starts_at.is_none() || cand > t.score {
                    *t = Best {
                        id: unk_id,
                        score: cand,
                        starts_at: Some(start),
                    };
                }
            }
            start += mblen;
        }
        let mut rev = Vec::new();
        let mut end = size;
        while end > 0 {
            let b = best[end];
            let s = b.starts_at.unwrap_or(0);
            rev.push((s, end, b.id));
            end = s;
        }
        rev.reverse();
        // Merge runs of unknown pieces, then byte-fallback them if enabled.
        let mut out: Vec<(String, bool)> = Vec::new();
        for (s, e, id) in rev {
            let is_unk = id == unk_id;
            match out.last_mut() {
                Some((last, true)) if is_unk => last.push_str(&norm[s..e]),
                _ => out.push((norm[s..e].to_string(), is_unk)),
            }
        }
        let mut pieces = Vec::with_capacity(out.len());
        for (p, is_unk) in out {
            if is_unk && self.model.byte_fallback {
                pieces.extend(p.bytes().map(|b| format!("<0x{b:02X}>")));
            } else {
                pieces.push(p);
            }
        }
        pieces
    }

    /// Text of pieces as `SentencePieceProcessor.decode_pieces` (sentencepiece 0.2).
    pub fn decode_pieces(&self, pieces: &[String]) -> String {
        const WS: &str = "\u{2581}";
        let m = &self.model;
        let mut text = String::new();
        let mut is_bos_ws = true;
        let mut bos_ws_seen = false;
        let mut bytes: Vec<u8> = Vec::new();
        let flush = |bytes: &mut Vec<u8>, text: &mut String| {
            let mut rest: &[u8] = bytes;
            while !rest.is_empty() {
                match std::str::from_utf8(rest) {
                    Ok(s) => {
                        text.push_str(s);
                        break;
                    }
                    Err(e) => {
                        let ok = e.valid_up_to();
                        text.push_str(std::str::from_utf8(&rest[..ok]).unwrap_or(""));
                        text.push('\u{FFFD}');
                        rest = &rest[ok + 1..];
                    }
                }
            }
            bytes.clear();
        };
        for piece in pieces {
            let id = self.piece_ids.get(piece).copied().unwrap_or(m.unk_id as usize);
            let kind = m.pieces[id].kind;
            if kind == PieceType::Byte {
                if let Some(b) = piece
                    .strip_prefix("<0x")
                    .and_then(|s| s.strip_suffix('>'))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    bytes.push(b);
                    continue;
                }
            }
            flush(&mut bytes, &mut text);
            if bos_ws_seen || !text.is_empty() {
                is_bos_ws = false;
            }
            bos_ws_seen = false;
            match kind {
                PieceType::Control => {}
                PieceType::Unknown => {
                    if m.pieces[id].piece == *piece {
                        text.push_str(&m.unk_surface);
                    } else {
                        text.push_str(piece);
                    }
                }
                _ => {
                    let mut p = piece.as_str();
                    if is_bos_ws && (m.add_dummy_prefix || m.remove_extra_whitespaces) {
                        if let Some(s) = p.strip_prefix(WS) {
                            p = s;
                            bos_ws_seen = !m.remove_extra_whitespaces;
                        }
                    }
                    text.push_str(&p.replace(WS, " "));
                }
            }
        }
        flush(&mut bytes, &mut text);
        text
    }
}
