//! Image transforms: the evaluation resize → centre-crop → normalise that matches torchvision, and
//! the training augmentations of ViCLIP-OT (rotation, random resized crop, flip, colour jitter)
//! and LowCLIP (vertical flip, rotate-90, shift-scale-rotate, blur, Gaussian noise).
//! Every random draw comes from the caller's generator, so a seed per sample reproduces a run.

use anyhow::{anyhow, Result};
use burn::config::Config;
use image::{Rgb, RgbImage};
use rand::Rng;

pub use super::resample::Interpolation;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Per-channel mean and standard deviation applied after scaling pixels to [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ImageNormalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl ImageNormalization {
    pub const IMAGENET: Self = Self { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
    pub const CLIP: Self = Self {
        mean: [0.481_454_66, 0.457_827_5, 0.408_210_73],
        std: [0.268_629_54, 0.261_302_58, 0.275_777_11],
    };
}

impl Default for ImageNormalization {
    fn default() -> Self {
        Self::IMAGENET
    }
}

/// Resize the short side to `resize`, crop the centre `crop` × `crop`, normalise: torchvision's
/// `Resize(256, BICUBIC or BILINEAR)` + `CenterCrop(224)` + `ToTensor` + `Normalize` on a PIL image.
#[derive(Config, Debug, PartialEq)]
pub struct EvalTransform {
    #[config(default = 256)]
    pub resize: u32,
    #[config(default = 224)]
    pub crop: u32,
    /// Pillow's filter for the resize.
    #[config(default = "Interpolation::Bicubic")]
    pub interpolation: Interpolation,
}

impl EvalTransform {
    /// The 256/224 ratio of the usual recipe, for any crop size.
    pub fn for_size(crop: u32) -> Self {
        Self { resize: (crop as f64 * 256.0 / 224.0).round() as u32, crop, interpolation: Interpolation::Bicubic }
    }

    /// The resized (not yet cropped) image.
    pub fn resized(&self, image: &RgbImage) -> Result<RgbImage> {
        let (w, h) = image.dimensions();
        // torchvision: the short side becomes `resize`, the long side int(resize * long / short).
        let (nw, nh) = if w <= h {
            (self.resize, ((self.resize as u64 * h as u64) / w as u64) as u32)
        } else {
            (((self.resize as u64 * w as u64) / h as u64) as u32, self.resize)
        };
        let (nw, nh) = (nw.max(1), nh.max(1));
        if w == 0 || h == 0 {
            return Err(anyhow!("resize: empty image ({w}×{h})"));
        }
        Ok(super::resample::resize_box(image, nw, nh, (0.0, 0.0, w as f64, h as f64), self.interpolation))
    }

    /// `[3, crop, crop]` normalised pixels.
    pub fn apply(&self, image: &RgbImage, norm: &ImageNormalization) -> Result<Vec<f32>> {
        let resized = self.resized(image)?;
        let cropped = center_crop(&resized, self.crop);
        Ok(to_chw(&cropped, norm))
    }
}

/// torchvision's CenterCrop offsets (Python's `round`, ties to even); pads with black when smaller.
pub fn center_crop(image: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    let offset = |full: u32| ((full as f64 - size as f64) / 2.0).round_ties_even() as i64;
    let (left, top) = (offset(w), offset(h));
    RgbImage::from_fn(size, size, |x, y| {
        let (sx, sy) = (x as i64 + left, y as i64 + top);
        if sx >= 0 && sy >= 0 && (sx as u32) < w && (sy as u32) < h {
            *image.get_pixel(sx as u32, sy as u32)
        } else {
            Rgb([0, 0, 0])
        }
    })
}

/// Bicubic resize (Pillow's, see [`super::resample`]) of the whole image or of a crop box
/// `(left, top, width, height)` of it.
pub fn resize_bicubic_crop(image: &RgbImage, width: u32, height: u32, crop: Option<(f64, f64, f64, f64)>) -> Result<RgbImage> {
    let (w, h) = image.dimensions();
    if w == 0 || h == 0 || width == 0 || height == 0 {
        return Err(anyhow!("resize: empty image ({w}×{h} → {width}×{height})"));
    }
    let (left, top, cw, ch) = crop.unwrap_or((0.0, 0.0, w as f64, h as f64));
    Ok(super::resample::resize_box(image, width, height, (left, top, left + cw, top + ch), Interpolation::Bicubic))
}

pub fn resize_bicubic(image: &RgbImage, width: u32, height: u32) -> Result<RgbImage> {
    resize_bicubic_crop(image, width, height, None)
}

/// `[3, h, w]` values `(pixel / 255 − mean) / std`.
pub fn to_chw(image: &RgbImage, norm: &ImageNormalization) -> Vec<f32> {
    let plane = (image.width() * image.height()) as usize;
    let mut out = vec![0f32; 3 * plane];
    for (i, pixel) in image.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (pixel.0[c] as f32 / 255.0 - norm.mean[c]) / norm.std[c];
        }
    }
    out
}

/// The training augmentations. Defaults are ViCLIP-OT's; [`TrainTransform::lowclip`] adds LowCLIP's.
/// A probability of 0 turns a step off.
#[derive(Config, Debug, PartialEq)]
pub struct TrainTransform {
    #[config(default = 224)]
    pub size: u32,
    /// RandomRotation(±degrees), nearest neighbour, black fill (torchvision's defaults).
    #[config(default = 15.0)]
    pub rotation_degrees: f64,
    /// RandomResizedCrop's area fraction and aspect-ratio ranges.
    #[config(default = "[0.8, 1.0]")]
    pub scale: [f64; 2],
    #[config(default = "[0.75, 1.3333333333333333]")]
    pub ratio: [f64; 2],
    #[config(default = 0.5)]
    pub hflip: f64,
    /// ColorJitter factors drawn from [1 − x, 1 + x].
    #[config(default = 0.2)]
    pub brightness: f64,
    #[config(default = 0.2)]
    pub contrast: f64,
    #[config(default = 0.2)]
    pub saturation: f64,
    #[config(default = 0.0)]
    pub vflip: f64,
    /// Rotate by a random multiple of 90°.
    #[config(default = 0.0)]
    pub rot90: f64,
    /// Shift (±6.25%), scale (±10%), rotate (±45°), as albumentations' ShiftScaleRotate.
    #[config(default = 0.0)]
    pub shift_scale_rotate: f64,
    /// Gaussian blur with σ in [0.1, 2].
    #[config(default = 0.0)]
    pub blur: f64,
    /// Additive Gaussian noise, σ in [10, 50]^½ / 255 of the pixel range (albumentations' GaussNoise).
    #[config(default = 0.0)]
    pub noise: f64,
}

impl TrainTransform {
    /// The LowCLIP augmentation set on top of ViCLIP-OT's.
    pub fn lowclip(size: u32) -> Self {
        Self::new()
            .with_size(size)
            .with_vflip(0.5)
            .with_rot90(0.5)
            .with_shift_scale_rotate(0.5)
            .with_blur(0.3)
            .with_noise(0.3)
    }

    /// `[3, size, size]` normalised pixels of one augmented view.
    pub fn apply(&self, image: &RgbImage, norm: &ImageNormalization, rng: &mut ChaCha8Rng) -> Result<Vec<f32>> {
        let mut image = image.clone();
        if self.rotation_degrees > 0.0 {
            let angle = rng.random_range(-self.rotation_degrees..=self.rotation_degrees);
            image = affine(&image, angle, 1.0, (0.0, 0.0), false);
        }
        if self.shift_scale_rotate > 0.0 && rng.random_bool(self.shift_scale_rotate) {
            let (angle, scale) = (rng.random_range(-45.0..=45.0), rng.random_range(0.9..=1.1));
            let (w, h) = (image.width() as f64, image.height() as f64);
            let shift = (rng.random_range(-0.0625..=0.0625) * w, rng.random_range(-0.0625..=0.0625) * h);
            image = affine(&image, angle, scale, shift, true);
        }
        let (left, top, cw, ch) = random_resized_crop_box(image.width(), image.height(), self.scale, self.ratio, rng);
        image = resize_bicubic_crop(&image, self.size, self.size, Some((left as f64, top as f64, cw as f64, ch as f64)))?;
        if rng.random_bool(self.hflip.clamp(0.0, 1.0)) {
            image::imageops::flip_horizontal_in_place(&mut image);
        }
        if self.vflip > 0.0 && rng.random_bool(self.vflip) {
            image::imageops::flip_vertical_in_place(&mut image);
        }
        if self.rot90 > 0.0 && rng.random_bool(self.rot90) {
            image = match rng.random_range(1..=3) {
                1 => image::imageops::rotate90(&image),
                2 => image::imageops::rotate180(&image),
                _ => image::imageops::rotate270(&image),
            };
        }
        if self.blur > 0.0 && rng.random_bool(self.blur) {
            image = image::imageops::blur(&image, rng.random_range(0.1..=2.0));
        }
        let mut pixels: Vec<f32> = image.as_raw().iter().map(|&v| v as f32 / 255.0).collect();
        self.color_jitter(&mut pixels, rng);
        if self.noise > 0.0 && rng.random_bool(self.noise) {
            let sigma = rng.random_range(10.0f32..=50.0).sqrt() / 255.0;
            for v in pixels.iter_mut() {
                *v = (*v + sigma * standard_normal(rng)).clamp(0.0, 1.0);
            }
        }
        let plane = (self.size * self.size) as usize;
        let mut out = vec![0f32; 3 * plane];
        for (i, rgb) in pixels.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * plane + i] = (rgb[c] - norm.mean[c]) / norm.std[c];
            }
        }
        Ok(out)
    }

    /// torchvision's ColorJitter: brightness, contrast and saturation in a random order, on [0, 1] RGB.
    fn color_jitter(&self, pixels: &mut [f32], rng: &mut ChaCha8Rng) {
        let mut factor = |x: f64| (x > 0.0).then(|| rng.random_range((1.0 - x).max(0.0)..=1.0 + x) as f32);
        let (b, c, s) = (factor(self.brightness), factor(self.contrast), factor(self.saturation));
        let mut order = [0, 1, 2];
        rand::seq::SliceRandom::shuffle(&mut order[..], rng);
        let gray = |p: &[f32]| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
        for step in order {
            match (step, b, c, s) {
                (0, Some(b), _, _) => pixels.iter_mut().for_each(|v| *v = (*v * b).clamp(0.0, 1.0)),
                (1, _, Some(c), _) => {
                    let mean = pixels.chunks_exact(3).map(gray).sum::<f32>() / (pixels.len() / 3).max(1) as f32;
                    pixels.iter_mut().for_each(|v| *v = (c * *v + (1.0 - c) * mean).clamp(0.0, 1.0));
                }
                (2, _, _, Some(s)) => pixels.chunks_exact_mut(3).for_each(|p| {
                    let g = gray(p);
                    p.iter_mut().for_each(|v| *v = (s * *v + (1.0 - s) * g).clamp(0.0, 1.0));
                }),
                _ => {}
            }
        }
    }
}

/// torchvision's RandomResizedCrop.get_params: 10 tries at a box of random area and aspect ratio,
/// then a centre crop clamped to the ratio range. Returns (left, top, width, height).
pub fn random_resized_crop_box(width: u32, height: u32, scale: [f64; 2], ratio: [f64; 2], rng: &mut ChaCha8Rng) -> (u32, u32, u32, u32) {
    let (w, h) = (width as f64, height as f64);
    let area = w * h;
    let (log_lo, log_hi) = (ratio[0].ln(), ratio[1].ln());
    for _ in 0..10 {
        let target = area * rng.random_range(scale[0]..=scale[1]);
        let aspect = rng.random_range(log_lo..=log_hi).exp();
        let cw = (target * aspect).sqrt().round();
        let ch = (target / aspect).sqrt().round();
        if cw > 0.0 && ch > 0.0 && cw <= w && ch <= h {
            let top = rng.random_range(0..=(h - ch) as u32);
            let left = rng.random_range(0..=(w - cw) as u32);
            return (left, top, cw as u32, ch as u32);
        }
    }
    let in_ratio = w / h;
    let (cw, ch) = if in_ratio < ratio[0] {
        (w, (w / ratio[0]).round())
    } else if in_ratio > ratio[1] {
        ((h * ratio[1]).round(), h)
    } else {
        (w, h)
    };
    let (cw, ch) = (cw.max(1.0) as u32, ch.max(1.0) as u32);
    ((width - cw) / 2, (height - ch) / 2, cw, ch)
}

/// Rotation by `degrees` (counter-clockwise) and scaling about the centre, then a shift; black
/// fill, nearest-neighbour sampling or bilinear (`smooth`).
pub fn affine(image: &RgbImage, degrees: f64, scale: f64, shift: (f64, f64), smooth: bool) -> RgbImage {
    let (w, h) = image.dimensions();
    let (cx, cy) = (w as f64 * 0.5, h as f64 * 0.5);
    let (sin, cos) = degrees.to_radians().sin_cos();
    RgbImage::from_fn(w, h, |x, y| {
        // Inverse map: output pixel centre → source coordinates.
        let (dx, dy) = (x as f64 + 0.5 - cx - shift.0, y as f64 + 0.5 - cy - shift.1);
        let sx = (cos * dx - sin * dy) / scale + cx - 0.5;
        let sy = (sin * dx + cos * dy) / scale + cy - 0.5;
        if smooth {
            bilinear(image, sx, sy)
        } else {
            let (rx, ry) = (sx.round(), sy.round());
            if rx >= 0.0 && ry >= 0.0 && rx < w as f64 && ry < h as f64 {
                *image.get_pixel(rx as u32, ry as u32)
            } else {
                Rgb([0, 0, 0])
            }
        }
    })
}

fn bilinear(image: &RgbImage, x: f64, y: f64) -> Rgb<u8> {
    let (w, h) = (image.width() as i64, image.height() as i64);
    let (x0, y0) = (x.floor() as i64, y.floor() as i64);
    let (fx, fy) = (x - x0 as f64, y - y0 as f64);
    let mut acc = [0f64; 3];
    for (ox, oy, weight) in [(0, 0, (1.0 - fx) * (1.0 - fy)), (1, 0, fx * (1.0 - fy)), (0, 1, (1.0 - fx) * fy), (1, 1, fx * fy)] {
        let (px, py) = (x0 + ox, y0 + oy);
        if px >= 0 && py >= 0 && px < w && py < h {
            let p = image.get_pixel(px as u32, py as u32);
            for c in 0..3 {
                acc[c] += weight * p.0[c] as f64;
            }
        }
    }
    Rgb(acc.map(|v| v.round().clamp(0.0, 255.0) as u8))
}

/// One N(0, 1) draw (Box–Muller).
fn standard_normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}
