//! The built-in dataset: procedurally drawn scenes of 1–3 coloured shapes on plain backgrounds,
//! each with several captions built from per-language phrase tables (`lang/*.toml`).
//! Everything is deterministic by seed; each split draws from its own stream.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use image::{Rgb, RgbImage};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::captioned::{CaptionedImages, ImageEntry, ImageSource, TeacherRows};
use super::split::Split;
use crate::seed::RunSeed;

pub const SHAPES: [&str; 8] = ["circle", "square", "triangle", "star", "heart", "diamond", "cross", "hexagon"];
pub const COLORS: [(&str, [u8; 3]); 8] = [
    ("red", [220, 30, 30]),
    ("green", [30, 160, 50]),
    ("blue", [30, 70, 220]),
    ("yellow", [240, 210, 20]),
    ("purple", [135, 50, 175]),
    ("orange", [250, 130, 20]),
    ("pink", [245, 130, 190]),
    ("brown", [120, 70, 30]),
];
pub const BACKGROUNDS: [(&str, [u8; 3]); 4] =
    [("white", [246, 246, 246]), ("gray", [150, 150, 150]), ("black", [16, 16, 16]), ("cream", [236, 222, 186])];
/// The 3 × 3 grid cells, row-major.
pub const POSITIONS: [&str; 9] =
    ["top_left", "top", "top_right", "left", "center", "right", "bottom_left", "bottom", "bottom_right"];

/// The built-in dataset: the `[data.synthetic]` table of a training config, every key required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticConfig {
    /// The config's top-level `seed`, set when the config is resolved.
    #[serde(skip, default = "default_seed")]
    pub seed: u64,
    pub train_images: usize,
    pub val_images: usize,
    pub test_images: usize,
    /// The side of the square images, in pixels.
    pub image_size: u32,
    pub captions_per_image: usize,
    /// A built-in language (`vi`, `en`) or the path of a phrase-table TOML file.
    pub lang: String,
    /// The chance that a scene is a recolouring of the previous one (a hard negative).
    pub hard_negative_rate: f64,
}

fn default_seed() -> u64 {
    42
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            seed: default_seed(),
            train_images: 4000,
            val_images: 200,
            test_images: 300,
            image_size: 64,
            captions_per_image: 5,
            lang: "vi".into(),
            hard_negative_rate: 0.25,
        }
    }
}

/// Builder-style setters, as burn's `Config` derive would write them.
impl SyntheticConfig {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the ranges (keys named as in a training config): at least one image per split, a
    /// side the renderer can draw, the images of a split within 8 GiB, a rate in [0, 1].
    pub fn validate(&self) -> Result<()> {
        let key = |name: &str| format!("key `data.synthetic.{name}`");
        for (name, count) in [("train_images", self.train_images), ("val_images", self.val_images), ("test_images", self.test_images)] {
            if count == 0 || count > 10_000_000 {
                bail!("{} = {count}: expected from 1 to 10000000 images (with 0 there is nothing to train or validate on)", key(name));
            }
        }
        if !(8..=1024).contains(&self.image_size) {
            bail!("{} = {}: expected a side from 8 to 1024 pixels", key("image_size"), self.image_size);
        }
        let bytes = self.train_images.max(self.val_images).max(self.test_images) as u128 * (self.image_size as u128).pow(2) * 3;
        if bytes > 8 << 30 {
            bail!("{} = {}: {} images of that side need {} GiB in memory; expected at most 8 GiB", key("image_size"), self.image_size, self.train_images, bytes >> 30);
        }
        if !(1..=100).contains(&self.captions_per_image) {
            bail!("{} = {}: expected from 1 to 100 captions", key("captions_per_image"), self.captions_per_image);
        }
        if !(0.0..=1.0).contains(&self.hard_negative_rate) {
            bail!("{} = {}: expected a probability in [0, 1]", key("hard_negative_rate"), self.hard_negative_rate);
        }
        Ok(())
    }
    pub fn with_seed(self, seed: u64) -> Self {
        Self { seed, ..self }
    }
    pub fn with_train_images(self, train_images: usize) -> Self {
        Self { train_images, ..self }
    }
    pub fn with_val_images(self, val_images: usize) -> Self {
        Self { val_images, ..self }
    }
    pub fn with_test_images(self, test_images: usize) -> Self {
        Self { test_images, ..self }
    }
    pub fn with_image_size(self, image_size: u32) -> Self {
        Self { image_size, ..self }
    }
    pub fn with_captions_per_image(self, captions_per_image: usize) -> Self {
        Self { captions_per_image, ..self }
    }
    pub fn with_lang(self, lang: String) -> Self {
        Self { lang, ..self }
    }
    pub fn with_hard_negative_rate(self, hard_negative_rate: f64) -> Self {
        Self { hard_negative_rate, ..self }
    }
}

/// One object in a scene; indices point into the tables above.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneObject {
    pub shape: usize,
    pub color: usize,
    pub large: bool,
    pub cell: usize,
    /// Offset from the cell centre, as a fraction of the cell size.
    pub jitter: (f32, f32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    pub background: usize,
    pub objects: Vec<SceneObject>,
}

/// A synthetic split: the dataset plus the scenes it was drawn from.
pub struct SyntheticSplit {
    pub dataset: CaptionedImages,
    pub scenes: Vec<Scene>,
}

/// Which optional attributes a caption mentions. Shapes, colours and counts always are;
/// size and position only for objects named singly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mentions {
    pub size: bool,
    pub position: bool,
    pub background: bool,
}

impl Mentions {
    pub const ALL: Mentions = Mentions { size: true, position: true, background: true };
}

/// The length of an attribute-teacher vector.
pub const TEACHER_DIM: usize = SHAPES.len() * COLORS.len() + SHAPES.len() * POSITIONS.len() + SHAPES.len() * 2 + BACKGROUNDS.len();

/// The built-in teacher: a unit vector of the scene attributes that `mentions` covers.
/// Images use [`Mentions::ALL`]; a caption uses what it mentions, so the teacher graph knows
/// that "a red circle" fits many images and "a small red circle at the top left" few.
pub fn attribute_embedding(scene: &Scene, mentions: Mentions) -> Vec<f32> {
    let mut v = vec![0f32; TEACHER_DIM];
    let (shape_color, shape_cell) = (0, SHAPES.len() * COLORS.len());
    let shape_size = shape_cell + SHAPES.len() * POSITIONS.len();
    let background = shape_size + SHAPES.len() * 2;
    let single = |o: &SceneObject| scene.objects.iter().filter(|p| p.shape == o.shape && p.color == o.color).count() == 1;
    for object in &scene.objects {
        v[shape_color + object.shape * COLORS.len() + object.color] += 1.0;
        if mentions.position && single(object) {
            v[shape_cell + object.shape * POSITIONS.len() + object.cell] += 0.5;
        }
        if mentions.size && single(object) {
            v[shape_size + object.shape * 2 + object.large as usize] += 0.3;
        }
    }
    if mentions.background {
        v[background + scene.background] += 0.3;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter().map(|x| x / norm).collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShapeWords {
    one: Vec<String>,
    many: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Templates {
    object: Vec<String>,
    placed: Vec<String>,
    scene: Vec<String>,
    scene_background: Vec<String>,
}

/// A phrase table: the words for every attribute, and the caption templates.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Language {
    pub code: String,
    pub name: String,
    counts: Vec<String>,
    list_separator: String,
    list_last: String,
    shapes: BTreeMap<String, ShapeWords>,
    colors: BTreeMap<String, Vec<String>>,
    backgrounds: BTreeMap<String, Vec<String>>,
    sizes: BTreeMap<String, Vec<String>>,
    positions: BTreeMap<String, Vec<String>>,
    templates: Templates,
}

impl Language {
    /// `vi` and `en` are built in; anything else is read as a phrase-table file.
    pub fn load(name_or_path: &str) -> Result<Self> {
        match name_or_path {
            "vi" => Self::parse(include_str!("lang/vi.toml"), "built-in vi"),
            "en" => Self::parse(include_str!("lang/en.toml"), "built-in en"),
            "az" => Self::parse(include_str!("lang/az.toml"), "built-in az"),
            path => {
                let text = std::fs::read_to_string(Path::new(path)).with_context(|| {
                    format!("language `{path}` is neither built in (vi, en, az) nor a readable phrase-table file")
                })?;
                Self::parse(&text, path)
            }
        }
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let lang: Language = toml::from_str(text).with_context(|| format!("bad phrase table {origin}"))?;
        let check = |table: &str, keys: Vec<&String>, need: &[&str]| -> Result<()> {
            for key in need {
                if !keys.iter().any(|k| k == key) {
                    bail!("phrase table {origin}: [{table}] has no entry `{key}`");
                }
            }
            Ok(())
        };
        check("shapes", lang.shapes.keys().collect(), &SHAPES)?;
        check("colors", lang.colors.keys().collect(), &COLORS.map(|c| c.0))?;
        check("backgrounds", lang.backgrounds.keys().collect(), &BACKGROUNDS.map(|c| c.0))?;
        check("sizes", lang.sizes.keys().collect(), &["small", "large"])?;
        check("positions", lang.positions.keys().collect(), &POSITIONS)?;
        if lang.counts.len() < 3 {
            bail!("phrase table {origin}: `counts` needs words for one, two and three");
        }
        let empty = [
            ("templates.object", &lang.templates.object),
            ("templates.placed", &lang.templates.placed),
            ("templates.scene", &lang.templates.scene),
            ("templates.scene_background", &lang.templates.scene_background),
        ];
        for (key, list) in empty {
            if list.is_empty() {
                bail!("phrase table {origin}: `{key}` is empty");
            }
        }
        Ok(lang)
    }

    fn pick<'a>(list: &'a [String], rng: &mut ChaCha8Rng) -> &'a str {
        list.choose(rng).map(String::as_str).unwrap_or("")
    }

    /// One caption. Size, position and background are each mentioned or not at random.
    pub fn caption(&self, scene: &Scene, rng: &mut ChaCha8Rng) -> String {
        self.caption_with_mentions(scene, rng).0
    }

    /// One caption and what it mentions, for the attribute teacher.
    pub fn caption_with_mentions(&self, scene: &Scene, rng: &mut ChaCha8Rng) -> (String, Mentions) {
        let mentions = Mentions {
            size: rng.random_bool(0.5),
            position: rng.random_bool(0.85),
            background: rng.random_bool(0.4),
        };
        let (with_size, with_position, with_background) = (mentions.size, mentions.position, mentions.background);
        let mut groups: Vec<Vec<&SceneObject>> = Vec::new();
        for object in &scene.objects {
            match groups.iter_mut().find(|g| g[0].shape == object.shape && g[0].color == object.color) {
                Some(group) => group.push(object),
                None => groups.push(vec![object]),
            }
        }
        groups.shuffle(rng);
        let phrases: Vec<String> = groups.iter().map(|g| self.object_phrase(g, with_size, with_position, rng)).collect();
        let objects = match phrases.as_slice() {
            [one] => one.clone(),
            [init @ .., last] => format!("{}{}{}", init.join(&self.list_separator), self.list_last, last),
            [] => String::new(),
        };
        let background = Self::pick(&self.backgrounds[BACKGROUNDS[scene.background].0], rng);
        let template = if with_background {
            Self::pick(&self.templates.scene_background, rng)
        } else {
            Self::pick(&self.templates.scene, rng)
        };
        (capitalise(&tidy(&template.replace("{objects}", &objects).replace("{background}", background))), mentions)
    }

    fn object_phrase(&self, group: &[&SceneObject], with_size: bool, with_position: bool, rng: &mut ChaCha8Rng) -> String {
        let first = group[0];
        let words = &self.shapes[SHAPES[first.shape]];
        let shape = match (&words.many, group.len()) {
            (Some(many), n) if n > 1 => Self::pick(many, rng),
            _ => Self::pick(&words.one, rng),
        };
        // Size and position describe one object; a group of several is named by count alone.
        let single = group.len() == 1;
        let size = if with_size && single {
            Self::pick(&self.sizes[if first.large { "large" } else { "small" }], rng)
        } else {
            ""
        };
        let object = Self::pick(&self.templates.object, rng)
            .replace("{count}", &self.counts[group.len().min(3) - 1])
            .replace("{shape}", shape)
            .replace("{size}", size)
            .replace("{color}", Self::pick(&self.colors[COLORS[first.color].0], rng));
        if with_position && single {
            Self::pick(&self.templates.placed, rng)
                .replace("{object}", &object)
                .replace("{position}", Self::pick(&self.positions[POSITIONS[first.cell]], rng))
        } else {
            object
        }
    }
}

/// Collapses the double spaces an empty slot leaves.
fn tidy(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace(" ,", ",")
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn random_scene(rng: &mut ChaCha8Rng) -> Scene {
    let count = rng.random_range(1..=3);
    let mut cells: Vec<usize> = (0..POSITIONS.len()).collect();
    cells.shuffle(rng);
    let objects = cells[..count]
        .iter()
        .map(|&cell| SceneObject {
            shape: rng.random_range(0..SHAPES.len()),
            color: rng.random_range(0..COLORS.len()),
            large: rng.random_bool(0.5),
            cell,
            jitter: (rng.random_range(-0.12..0.12), rng.random_range(-0.12..0.12)),
        })
        .collect();
    Scene { background: rng.random_range(0..BACKGROUNDS.len()), objects }
}

/// The same layout with one object recoloured: a hard negative for `scene`.
fn recoloured(scene: &Scene, rng: &mut ChaCha8Rng) -> Scene {
    let mut next = scene.clone();
    let which = rng.random_range(0..next.objects.len());
    let old = next.objects[which].color;
    next.objects[which].color = (old + rng.random_range(1..COLORS.len())) % COLORS.len();
    next
}

/// Draws the scenes of one split. Each split has its own stream derived from the seed.
pub fn scenes(config: &SyntheticConfig, split: Split, count: usize) -> Vec<Scene> {
    let mut rng = ChaCha8Rng::seed_from_u64(RunSeed(config.seed).split(split.stream()));
    let mut scenes: Vec<Scene> = Vec::with_capacity(count);
    for _ in 0..count {
        let scene = match scenes.last() {
            Some(previous) if rng.random_bool(config.hard_negative_rate) => recoloured(previous, &mut rng),
            _ => random_scene(&mut rng),
        };
        scenes.push(scene);
    }
    scenes
}

/// Renders a scene at `size` × `size` pixels, with 4× supersampled edges.
pub fn render(scene: &Scene, size: u32) -> RgbImage {
    let background = BACKGROUNDS[scene.background].1;
    let cell = size as f32 / 3.0;
    let mut image = RgbImage::from_pixel(size, size, Rgb(background));
    for object in &scene.objects {
        let (row, col) = ((object.cell / 3) as f32, (object.cell % 3) as f32);
        let cx = (col + 0.5 + object.jitter.0) * cell;
        let cy = (row + 0.5 + object.jitter.1) * cell;
        let radius = cell * if object.large { 0.46 } else { 0.30 };
        let color = COLORS[object.color].1;
        let (x0, x1) = (((cx - radius).floor().max(0.0)) as u32, ((cx + radius).ceil() as u32).min(size));
        let (y0, y1) = (((cy - radius).floor().max(0.0)) as u32, ((cy + radius).ceil() as u32).min(size));
        for y in y0..y1 {
            for x in x0..x1 {
                let mut hits = 0;
                for (sx, sy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                    let u = (x as f32 + sx - cx) / radius;
                    let v = (y as f32 + sy - cy) / radius;
                    hits += inside(SHAPES[object.shape], u, v) as u32;
                }
                if hits > 0 {
                    let pixel = image.get_pixel_mut(x, y);
                    for c in 0..3 {
                        let blend = (color[c] as u32 * hits + pixel.0[c] as u32 * (4 - hits)) / 4;
                        pixel.0[c] = blend as u8;
                    }
                }
            }
        }
    }
    image
}

/// Whether (u, v), in units of the radius with v pointing down, lies inside the shape.
fn inside(shape: &str, u: f32, v: f32) -> bool {
    match shape {
        "circle" => u * u + v * v <= 1.0,
        "square" => u.abs() <= 0.8 && v.abs() <= 0.8,
        "diamond" => u.abs() + v.abs() <= 1.0,
        "cross" => (u.abs() <= 0.3 && v.abs() <= 0.95) || (v.abs() <= 0.3 && u.abs() <= 0.95),
        "triangle" => v <= 0.75 && v >= -1.0 && u.abs() <= (v + 1.0) / 1.75 * 0.95,
        "hexagon" => in_polygon(&regular_polygon(6, 1.0, 1.0, 0.0), u, v),
        "star" => in_polygon(&regular_polygon(10, 1.0, 0.45, -std::f32::consts::FRAC_PI_2), u, v),
        "heart" => {
            let (x, y) = (u * 1.15, -v * 1.15 + 0.15);
            let a = x * x + y * y - 1.0;
            a * a * a - x * x * y * y * y <= 0.0
        }
        other => unreachable!("unknown shape {other}"),
    }
}

/// `n` vertices alternating between radii `outer` and `inner`, starting at angle `start`.
fn regular_polygon(n: usize, outer: f32, inner: f32, start: f32) -> Vec<(f32, f32)> {
    (0..n)
        .map(|i| {
            let angle = start + i as f32 * std::f32::consts::TAU / n as f32;
            let r = if i % 2 == 0 { outer } else { inner };
            (r * angle.cos(), r * angle.sin())
        })
        .collect()
}

fn in_polygon(vertices: &[(f32, f32)], u: f32, v: f32) -> bool {
    let mut inside = false;
    let mut j = vertices.len() - 1;
    for i in 0..vertices.len() {
        let ((xi, yi), (xj, yj)) = (vertices[i], vertices[j]);
        if (yi > v) != (yj > v) && u < (xj - xi) * (v - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// Generates one split: scenes, their images and their captions.
pub fn generate(config: &SyntheticConfig, split: Split) -> Result<SyntheticSplit> {
    let language = Language::load(&config.lang)?;
    let count = match split {
        Split::Train => config.train_images,
        Split::Val => config.val_images,
        Split::Test => config.test_images,
    };
    let scenes = scenes(config, split, count);
    let entries = scenes
        .par_iter()
        .enumerate()
        .map(|(index, scene)| {
            let mut rng = ChaCha8Rng::seed_from_u64(RunSeed(config.seed).synthetic_image(split.stream(), index));
            let (captions, mentions): (Vec<String>, Vec<Mentions>) =
                (0..config.captions_per_image).map(|_| language.caption_with_mentions(scene, &mut rng)).unzip();
            let teacher = TeacherRows {
                image: attribute_embedding(scene, Mentions::ALL),
                captions: mentions.into_iter().map(|m| attribute_embedding(scene, m)).collect(),
            };
            let entry = ImageEntry {
                image_id: index as u64,
                key: index.to_string(),
                image: ImageSource::Memory(Arc::new(render(scene, config.image_size))),
                captions,
            };
            (entry, teacher)
        })
        .collect::<Vec<_>>();
    let (entries, teacher): (Vec<ImageEntry>, Vec<TeacherRows>) = entries.into_iter().unzip();
    let name = format!("synthetic-{}-{}", language.code, split.name());
    let dataset = CaptionedImages { name, language: language.code.clone(), entries, teacher: Some(teacher) };
    Ok(SyntheticSplit { dataset, scenes })
}
