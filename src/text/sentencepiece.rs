//! SentencePiece model files read without the C++ library: a hand-written ModelProto decoder
//! and the BPE merge list transformers 5.23 derives from a BPE model's vocabulary. The
//! normaliser and the unigram encoder are in [`super::spm_unigram`].

use std::collections::HashMap;

use anyhow::{anyhow, bail, Result};

/// Piece type (ModelProto.SentencePiece.Type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PieceType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

#[derive(Clone, Debug)]
pub struct Piece {
    pub piece: String,
    pub score: f32,
    pub kind: PieceType,
}

/// The parts of a ModelProto that tokenisation needs.
#[derive(Clone, Debug)]
pub struct SpmModel {
    pub pieces: Vec<Piece>,
    /// TrainerSpec.model_type: 1 unigram, 2 BPE, 3 word, 4 char.
    pub model_type: u64,
    pub byte_fallback: bool,
    pub unk_id: i64,
    pub unk_surface: String,
    pub precompiled_charsmap: Vec<u8>,
    pub add_dummy_prefix: bool,
    pub remove_extra_whitespaces: bool,
    pub escape_whitespaces: bool,
    pub treat_whitespace_as_suffix: bool,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
    fn varint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or_else(|| anyhow!("truncated varint"))?;
            self.pos += 1;
            if shift == 63 && b > 1 {
                bail!("varint overflows 64 bits");
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        bail!("varint longer than 10 bytes")
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| anyhow!("field of {n} bytes runs past the end"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    /// (field number, wire type)
    fn key(&mut self) -> Result<(u64, u8)> {
        let k = self.varint()?;
        let field = k >> 3;
        if field == 0 {
            bail!("field number 0");
        }
        Ok((field, (k & 7) as u8))
    }
    fn len_delimited(&mut self) -> Result<&'a [u8]> {
        let n = self.varint()?;
        self.bytes(usize::try_from(n).map_err(|_| anyhow!("length too large"))?)
    }
    fn skip(&mut self, wire: u8) -> Result<()> {
        match wire {
            0 => {
                self.varint()?;
            }
            1 => {
                self.bytes(8)?;
            }
            2 => {
                self.len_delimited()?;
            }
            5 => {
                self.bytes(4)?;
            }
            w => bail!("unsupported wire type {w}"),
        }
        Ok(())
    }
    fn expect(&self, wire: u8, want: u8, what: &str) -> Result<()> {
        if wire != want {
            bail!("{what} has wire type {wire}, expected {want}");
        }
        Ok(())
    }
}

fn utf8(b: &[u8], what: &str) -> Result<String> {
    String::from_utf8(b.to_vec()).map_err(|_| anyhow!("{what} is not UTF-8"))
}

fn parse_piece(buf: &[u8]) -> Result<Piece> {
    let mut r = Reader::new(buf);
    let (mut piece, mut score, mut kind) = (None, 0.0f32, PieceType::Normal);
    while !r.done() {
        let (f, w) = r.key()?;
        match f {
            1 => {
                r.expect(w, 2, "piece")?;
                piece = Some(utf8(r.len_delimited()?, "piece")?);
            }
            2 => {
                r.expect(w, 5, "score")?;
                let b = r.bytes(4)?;
                score = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            3 => {
                r.expect(w, 0, "type")?;
                kind = match r.varint()? {
                    1 => PieceType::Normal,
                    2 => PieceType::Unknown,
                    3 => PieceType::Control,
                    4 => PieceType::UserDefined,
                    5 => PieceType::Unused,
                    6 => PieceType::Byte,
                    t => bail!("unknown piece type {t}"),
                };
            }
            _ => r.skip(w)?,
        }
    }
    let piece = piece.ok_or_else(|| anyhow!("piece without text"))?;
    Ok(Piece { piece, score, kind })
}

impl SpmModel {
    /// Decodes a serialized ModelProto; errors on malformed input.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        let mut m = SpmModel {
            pieces: Vec::new(),
            model_type: 1,
            byte_fallback: false,
            unk_id: 0,
            unk_surface: " \u{2047} ".to_string(),
            precompiled_charsmap: Vec::new(),
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
            treat_whitespace_as_suffix: false,
        };
        let mut r = Reader::new(buf);
        while !r.done() {
            let (f, w) = r.key()?;
            match f {
                1 => {
                    r.expect(w, 2, "ModelProto.pieces")?;
                    m.pieces.push(parse_piece(r.len_delimited()?)?);
                }
                2 => {
                    r.expect(w, 2, "trainer_spec")?;
                    let mut t = Reader::new(r.len_delimited()?);
                    while !t.done() {
                        let (f, w) = t.key()?;
                        match (f, w) {
                            (3, 0) => m.model_type = t.varint()?,
                            (24, 0) => m.treat_whitespace_as_suffix = t.varint()? != 0,
                            (35, 0) => m.byte_fallback = t.varint()? != 0,
                            (40, 0) => m.unk_id = t.varint()? as i32 as i64,
                            (44, 2) => m.unk_surface = utf8(t.len_delimited()?, "unk_surface")?,
                            _ => t.skip(w)?,
                        }
                    }
                }
                3 => {
                    r.expect(w, 2, "normalizer_spec")?;
                    let mut n = Reader::new(r.len_delimited()?);
                    while !n.done() {
                        let (f, w) = n.key()?;
                        match (f, w) {
                            (2, 2) => m.precompiled_charsmap = n.len_delimited()?.to_vec(),
                            (3, 0) => m.add_dummy_prefix = n.varint()? != 0,
                            (4, 0) => m.remove_extra_whitespaces = n.varint()? != 0,
                            (5, 0) => m.escape_whitespaces = n.varint()? != 0,
                            _ => n.skip(w)?,
                        }
                    }
                }
                _ => r.skip(w)?,
            }
        }
        if m.pieces.is_empty() {
            bail!("no pieces (not a SentencePiece ModelProto)");
        }
        Ok(m)
    }

    /// Reads and decodes PATH; the error names the file.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let buf = std::fs::read(path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
        Self::parse(&buf).map_err(|e| anyhow!("{} is not a valid SentencePiece model (ModelProto): {e}", path.display()))
    }

    /// BPE merges as transformers 5.23 `generate_merges(vocab)` derives them:
    /// for each piece in id order, every split into two pieces that are both
    /// in the vocabulary, shorter left part first.
    pub fn generated_merges(&self) -> Vec<(String, String)> {
        let mut vocab: HashMap<&str, usize> = HashMap::new();
        for (i, p) in self.pieces.iter().enumerate() {
            vocab.insert(p.piece.as_str(), i);
        }
        let mut merges = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for p in &self.pieces {
            // A dict keeps one entry per piece (at its last id, in first-seen order).
            if !seen.insert(p.piece.as_str()) {
                continue;
            }
            let s = p.piece.as_str();
            for (idx, _) in s.char_indices().skip(1) {
                let (l, r) = s.split_at(idx);
                if vocab.contains_key(l) && vocab.contains_key(r) {
                    merges.push((l.to_string(), r.to_string()));
                }
            }
        }
        merges
    }
}
