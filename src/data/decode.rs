//! Decoding image files within limits: a small file may declare an enormous image (a
//! "decompression bomb"), so the size in its header is checked before any pixel is decoded.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use image::{DynamicImage, ImageDecoder, ImageReader};

use super::collector::SkipReason;

/// How large an image may be. The default, 40 megapixels (a 7300 × 5500 photo), is far above
/// what a 224 or 384 px pipeline needs and keeps one decoded image under 160 MB (RGBA).
/// A dataset spec sets it with `max_pixels=N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// The most pixels (width × height) an image may have.
    pub max_pixels: u64,
}

// ANCHOR: image_limits
impl ImageLimits {
    pub const DEFAULT_MAX_PIXELS: u64 = 40_000_000;
}
// ANCHOR_END: image_limits

impl Default for ImageLimits {
    fn default() -> Self {
        Self { max_pixels: Self::DEFAULT_MAX_PIXELS }
    }
}

impl FromStr for ImageLimits {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> anyhow::Result<Self> {
        match text.trim().parse::<u64>() {
            Ok(max_pixels) if (1..=1u64 << 32).contains(&max_pixels) => Ok(Self { max_pixels }),
            _ => anyhow::bail!("max_pixels={text}: expected a whole number of pixels from 1 to 4294967296"),
        }
    }
}

/// Why an image did not decode.
#[derive(Debug)]
pub enum DecodeError {
    /// The header declares more pixels than the limit allows.
    TooLarge { width: u32, height: u32, max_pixels: u64 },
    /// The header did not decode: not an image, an unsupported format, or I/O.
    Header(image::ImageError),
    /// The header decoded but the pixels did not: truncated or corrupt data.
    Pixels(image::ImageError),
    /// A JPEG without its end-of-image marker: cut short, even where the decoder fills in the rest.
    MissingEnd,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge { width, height, max_pixels } => {
                write!(f, "{width} × {height} pixels exceed the limit of {max_pixels} (max_pixels=)")
            }
            DecodeError::Header(error) | DecodeError::Pixels(error) => write!(f, "{error}"),
            DecodeError::MissingEnd => write!(f, "the JPEG ends before its end-of-image marker"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl DecodeError {
    /// The skip reason and the message, for `data check` and the dataset's skip list.
    pub fn skip_reason(&self) -> (SkipReason, Option<String>) {
        match self {
            DecodeError::TooLarge { .. } => (SkipReason::ImageTooLarge, Some(self.to_string())),
            DecodeError::Header(error @ image::ImageError::Limits(_)) => (SkipReason::ImageTooLarge, Some(error.to_string())),
            DecodeError::Header(error) => (SkipReason::CorruptImage, Some(error.to_string())),
            DecodeError::Pixels(error) => classify_decode_error(error),
            DecodeError::MissingEnd => (SkipReason::TruncatedImage, Some(self.to_string())),
        }
    }
}

/// Decodes the image at `path` if its declared size is within `limits`; the decoder's own
/// allocations are capped at 8 bytes per allowed pixel.
pub fn decode_image(path: &Path, limits: ImageLimits) -> Result<DynamicImage, DecodeError> {
    let mut reader = ImageReader::open(path).and_then(|r| r.with_guessed_format()).map_err(|e| DecodeError::Header(e.into()))?;
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    reader.limits(image_limits);
    let jpeg = reader.format() == Some(image::ImageFormat::Jpeg);
    let decoder = reader.into_decoder().map_err(DecodeError::Header)?;
    let (width, height) = decoder.dimensions();
    if width as u64 * height as u64 > limits.max_pixels {
        return Err(DecodeError::TooLarge { width, height, max_pixels: limits.max_pixels });
    }
    let image = DynamicImage::from_decoder(decoder).map_err(DecodeError::Pixels)?;
    if jpeg && !ends_with_jpeg_eoi(path) {
        return Err(DecodeError::MissingEnd);
    }
    Ok(image)
}

/// Whether the file ends with a JPEG end-of-image marker (`FF D9`), allowing trailing padding.
fn ends_with_jpeg_eoi(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else { return false };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut tail = Vec::new();
    if file.seek(SeekFrom::Start(len.saturating_sub(64))).and_then(|_| file.read_to_end(&mut tail)).is_err() {
        return false;
    }
    let end = tail.iter().rposition(|&b| b != 0 && b != b'\n' && b != b'\r' && b != b' ').map_or(0, |i| i + 1);
    end >= 2 && tail[end - 2..end] == [0xFF, 0xD9]
}

/// For pixel data that failed to decode: too large for the decoder's limits, truncated (the
/// data ends early) or corrupt (anything else), with the decoder's message.
pub fn classify_decode_error(error: &image::ImageError) -> (SkipReason, Option<String>) {
    let message = error.to_string();
    let lower = message.to_lowercase();
    let truncated = matches!(error, image::ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof)
        || ["eof", "end of file", "unexpected end", "truncat", "not enough data", "not enough bytes", "no more data", "premature end", "fill whole buffer"]
            .iter()
            .any(|k| lower.contains(k));
    let limited = matches!(error, image::ImageError::Limits(_));
    let reason = if limited {
        SkipReason::ImageTooLarge
    } else if truncated {
        SkipReason::TruncatedImage
    } else {
        SkipReason::CorruptImage
    };
    (reason, Some(message))
}
