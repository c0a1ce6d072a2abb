//! PNG plots of a run, in `RUN/plots/`: the training curves read from `metrics.jsonl` (loss,
//! learning rate, validation recall), and a 2-D projection of a split's embeddings. Drawn with
//! plotters into an RGB buffer, encoded with `image`, text in the bundled DejaVu Sans.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::metrics_log::{MetricsLog, StepRow, ValRow};
use super::projection::EmbeddingProjection;

/// The plots' folder inside a run directory.
pub const PLOTS_DIR: &str = "plots";
/// Width and height of the training plots, in pixels.
pub const TRAINING_PLOT_SIZE: (u32, u32) = (960, 600);
/// Width and height of the embedding projection, in pixels.
pub const EMBEDDING_PLOT_SIZE: (u32, u32) = (840, 760);

static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FONT: &str = "sans-serif";
const TEXT: RGBColor = RGBColor(34, 34, 34);
const GRID: RGBColor = RGBColor(226, 226, 226);

/// Registers DejaVu Sans as plotters' sans-serif, once per process.
fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font(FONT, FontStyle::Normal, DEJAVU_SANS).is_ok());
    ok.then_some(()).ok_or_else(|| anyhow!("the bundled font DejaVu Sans could not be read"))
}

/// The training plots, one PNG each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainingPlot {
    /// Loss by step, raw and smoothed.
    Loss,
    /// Learning rate by step, per parameter group.
    LearningRate,
    /// Validation recall by epoch.
    Recall,
}

impl TrainingPlot {
    pub const ALL: [TrainingPlot; 3] = [TrainingPlot::Loss, TrainingPlot::LearningRate, TrainingPlot::Recall];

    pub fn file_name(self) -> &'static str {
        match self {
            TrainingPlot::Loss => "loss.png",
            TrainingPlot::LearningRate => "lr.png",
            TrainingPlot::Recall => "recall.png",
        }
    }
}

/// A drawn series; its colour is solid (no transparency) unless said otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    RawLoss,
    SmoothedLoss,
    BackboneLr,
    HeadLr,
    TextToImageR1,
    ImageToTextR1,
    MeanRecall,
    /// Image points (drawn half transparent; the mean's marker is solid).
    Images,
    /// Caption points (drawn half transparent; the mean's marker is solid).
    Texts,
}

impl Series {
    /// The series' colour as RGB (ColorBrewer's "Paired" and "Set1" hues).
    pub fn rgb(self) -> (u8, u8, u8) {
        match self {
            Series::RawLoss => (166, 206, 227),
            Series::SmoothedLoss | Series::BackboneLr | Series::TextToImageR1 | Series::Images => (31, 120, 180),
            Series::HeadLr | Series::ImageToTextR1 | Series::Texts => (255, 127, 0),
            Series::MeanRecall => (51, 160, 44),
        }
    }

    fn color(self) -> RGBColor {
        let (r, g, b) = self.rgb();
        RGBColor(r, g, b)
    }
}

/// A run's name for the titles: its folder's name.
pub fn run_name(run_dir: &Path) -> String {
    let full = run_dir.canonicalize().unwrap_or_else(|_| run_dir.to_path_buf());
    full.file_name().map_or_else(|| run_dir.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Draws the training plots of `log` into `dir` (created if needed); `run_name` goes in the
/// titles. Returns what it wrote: the recall plot only once there is a validation.
pub fn draw_training_plots(log: &MetricsLog, dir: &Path, run_name: &str) -> Result<Vec<(TrainingPlot, PathBuf)>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the plots folder {}", dir.display()))?;
    let mut written = Vec::new();
    for plot in TrainingPlot::ALL {
        let path = dir.join(plot.file_name());
        let drawn = match plot {
            TrainingPlot::Loss if !log.steps.is_empty() => render(TRAINING_PLOT_SIZE, &path, |root| draw_loss(root, &log.steps, run_name)),
            TrainingPlot::LearningRate if !log.steps.is_empty() => render(TRAINING_PLOT_SIZE, &path, |root| draw_lr(root, &log.steps, run_name)),
            TrainingPlot::Recall if !log.validations.is_empty() => render(TRAINING_PLOT_SIZE, &path, |root| draw_recall(root, log, run_name)),
            _ => continue,
        };
        drawn.with_context(|| format!("cannot draw {}", path.display()))?;
        written.push((plot, path));
    }
    Ok(written)
}

/// Draws `projection` (images and captions of one split) into `path`; `split` goes in the title.
pub fn draw_embedding_plot(projection: &EmbeddingProjection, split: &str, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create the plots folder {}", dir.display()))?;
    }
    render(EMBEDDING_PLOT_SIZE, path, |root| draw_embeddings(root, projection, split)).with_context(|| format!("cannot draw {}", path.display()))
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Draws into a white RGB buffer of `size`, then writes it as a PNG: beside `path`, then
/// renamed over it, so a reader never sees half a file.
fn render(size: (u32, u32), path: &Path, draw: impl FnOnce(&Area) -> Result<()>) -> Result<()> {
    register_font()?;
    let mut pixels = vec![255u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        draw(&root)?;
        root.present()?;
    }
    let image = image::RgbImage::from_raw(size.0, size.1, pixels).ok_or_else(|| anyhow!("the pixel buffer does not match {size:?}"))?;
    let tmp = path.with_extension("png.tmp");
    image.save_with_format(&tmp, image::ImageFormat::Png).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

fn font(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&TEXT)
}

/// The steps' x range, never empty.
fn step_range(steps: &[StepRow]) -> Range<i64> {
    let first = steps.first().map_or(0, |r| r.step as i64);
    let last = steps.last().map_or(0, |r| r.step as i64);
    first..last.max(first + 1)
}

/// `min..max` widened by `below` and `above` of its span (a flat series gets a span of its own).
fn padded(min: f64, max: f64, below: f64, above: f64) -> Range<f64> {
    let span = if max > min { max - min } else { min.abs().max(1.0) * 0.1 };
    (min - below * span)..(max + above * span)
}

/// A tick label on an axis spanning `span`: enough decimals for ticks about a tenth of it
/// apart, trailing zeros dropped, and no "-0".
fn tick_label(value: f64, span: f64) -> String {
    let decimals = (2.0 - (span / 10.0).log10().floor()).clamp(0.0, 8.0) as usize;
    let value = if value.abs() < span * 1e-9 { 0.0 } else { value };
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// The centred moving average of `values` over `window` of them (fewer at the ends), which,
/// unlike an exponential average, does not lag behind the raw values.
pub fn smoothed(values: &[f64], window: usize) -> Vec<f64> {
    let half = window.max(1) / 2;
    let mut prefix = vec![0.0; values.len() + 1];
    for (i, v) in values.iter().enumerate() {
        prefix[i + 1] = prefix[i] + v;
    }
    (0..values.len())
        .map(|i| {
            let (lo, hi) = (i.saturating_sub(half), (i + half + 1).min(values.len()));
            (prefix[hi] - prefix[lo]) / (hi - lo) as f64
        })
        .collect()
}

/// The smoothing window for `steps` values: a twentieth of them, odd, 3 to 201.
pub fn smoothing_window(steps: usize) -> usize {
    (steps / 20).clamp(3, 201) | 1
}

/// A legend entry's sample.
#[derive(Debug, Clone, Copy)]
enum Mark {
    Line(Series),
    Dot(Series),
    Black,
}

const TITLE_BAND: u32 = 44;
const LEGEND_BAND: u32 = 30;

/// Writes the title and, below it, the legend in one centred row, and returns the area left
/// for the chart: the legend never covers the data.
fn frame<'a>(root: &Area<'a>, title: &str, legend: &[(Mark, String)]) -> Result<Area<'a>> {
    root.fill(&WHITE)?;
    let (width, _) = root.dim_in_pixel();
    let centred = font(24).pos(Pos::new(HPos::Center, VPos::Top));
    root.draw(&Text::new(title.to_string(), (width as i32 / 2, 12), centred))?;
    let style = font(15);
    let (sample, gap) = (26, 28);
    let widths = legend.iter().map(|(_, text)| Ok(root.estimate_text_size(text, &style)?.0 as i32)).collect::<Result<Vec<i32>>>()?;
    let total: i32 = widths.iter().map(|w| sample + 8 + w).sum::<i32>() + gap * (legend.len() as i32 - 1).max(0);
    let (mut x, y) = ((width as i32 - total) / 2, TITLE_BAND as i32 + LEGEND_BAND as i32 / 2 - 2);
    for ((mark, text), text_width) in legend.iter().zip(widths) {
        match *mark {
            Mark::Line(series) => root.draw(&PathElement::new(vec![(x, y), (x + sample, y)], series.color().stroke_width(3)))?,
            Mark::Dot(series) => root.draw(&Circle::new((x + sample / 2, y), 6, series.color().filled()))?,
            Mark::Black => root.draw(&PathElement::new(vec![(x, y), (x + sample, y)], BLACK.stroke_width(2)))?,
        }
        root.draw(&Text::new(text.clone(), (x + sample + 8, y), style.pos(Pos::new(HPos::Left, VPos::Center))))?;
        x += sample + 8 + text_width + gap;
    }
    Ok(root.margin(TITLE_BAND + LEGEND_BAND, 0, 0, 0))
}

/// A chart on `area` with the house margins and label areas.
fn chart_builder<'a, 'b>(area: &'a Area<'b>) -> ChartBuilder<'a, 'b, BitMapBackend<'b>> {
    let mut builder = ChartBuilder::on(area);
    builder.margin(14).margin_right(30).x_label_area_size(56).y_label_area_size(84);
    builder
}

fn draw_loss(root: &Area, steps: &[StepRow], run_name: &str) -> Result<()> {
    let losses: Vec<f64> = steps.iter().map(|r| r.loss).collect();
    let window = smoothing_window(losses.len());
    let smooth = smoothed(&losses, window);
    let legend = [(Mark::Line(Series::RawLoss), "loss per step".to_string()), (Mark::Line(Series::SmoothedLoss), format!("centred mean over {window} steps"))];
    let area = frame(root, &format!("Training loss — {run_name}"), &legend)?;
    let (min, max) = losses.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let y = padded(min, max, 0.05, 0.05);
    let y_span = y.end - y.start;
    let mut chart = chart_builder(&area).build_cartesian_2d(step_range(steps), y)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss")
        .label_style(font(15))
        .axis_desc_style(font(17))
        .bold_line_style(GRID)
        .light_line_style(WHITE)
        .y_label_formatter(&|v| tick_label(*v, y_span))
        .draw()?;
    let points = |values: &[f64]| steps.iter().zip(values).map(|(r, &v)| (r.step as i64, v)).collect::<Vec<_>>();
    chart.draw_series(LineSeries::new(points(&losses), Series::RawLoss.color().stroke_width(1)))?;
    chart.draw_series(LineSeries::new(points(&smooth), Series::SmoothedLoss.color().stroke_width(2)))?;
    Ok(())
}

fn draw_lr(root: &Area, steps: &[StepRow], run_name: &str) -> Result<()> {
    let heads_differ = steps.iter().any(|r| r.head_lr.is_some_and(|h| (h - r.lr).abs() > 1e-12 * r.lr.abs().max(1e-30)));
    let mut legend = vec![(Mark::Line(Series::BackboneLr), if heads_differ { "towers" } else { "all parameters" }.to_string())];
    if heads_differ {
        legend.push((Mark::Line(Series::HeadLr), "projection heads".to_string()));
    }
    let area = frame(root, &format!("Learning rate — {run_name}"), &legend)?;
    let head = |r: &StepRow| if heads_differ { r.head_lr.unwrap_or(r.lr) } else { r.lr };
    let max = steps.iter().map(|r| r.lr.max(head(r))).fold(0.0, f64::max);
    let min = steps.iter().map(|r| r.lr.min(head(r))).fold(0.0, f64::min);
    let mut chart = chart_builder(&area).build_cartesian_2d(step_range(steps), padded(min, max, 0.0, 0.05))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("learning rate")
        .label_style(font(15))
        .axis_desc_style(font(17))
        .bold_line_style(GRID)
        .light_line_style(WHITE)
        .y_label_formatter(&|v| if v.abs() < max * 1e-9 { "0".into() } else { format!("{v:.1e}") })
        .draw()?;
    chart.draw_series(LineSeries::new(steps.iter().map(|r| (r.step as i64, r.lr)), Series::BackboneLr.color().stroke_width(2)))?;
    if heads_differ {
        chart.draw_series(LineSeries::new(steps.iter().map(|r| (r.step as i64, head(r))), Series::HeadLr.color().stroke_width(2)))?;
    }
    Ok(())
}

fn draw_recall(root: &Area, log: &MetricsLog, run_name: &str) -> Result<()> {
    let series: [(Series, &str, fn(&ValRow) -> f64); 3] = [
        (Series::TextToImageR1, "text → image R@1", |r| r.t2i_r1),
        (Series::ImageToTextR1, "image → text R@1", |r| r.i2t_r1),
        (Series::MeanRecall, "mean recall (R@1, 5, 10 both ways)", |r| r.mean_recall),
    ];
    let legend: Vec<(Mark, String)> = series.iter().map(|(kind, label, _)| (Mark::Line(*kind), label.to_string())).collect();
    let area = frame(root, &format!("Validation recall — {run_name}"), &legend)?;
    let rows = &log.validations;
    let epochs = rows.iter().map(|r| r.epoch as i64 + 1).max().unwrap_or(1);
    let best = rows.iter().map(|r| r.t2i_r1.max(r.i2t_r1).max(r.mean_recall) * 100.0).fold(0.0, f64::max);
    // The next multiple of 10 above the best, with a little room.
    let top = ((best * 1.1 / 10.0).ceil() * 10.0).clamp(10.0, 100.0);
    let mut chart = chart_builder(&area).build_cartesian_2d(0..epochs + 1, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("recall (%)")
        .label_style(font(15))
        .axis_desc_style(font(17))
        .bold_line_style(GRID)
        .light_line_style(WHITE)
        .x_labels((epochs as usize + 2).min(16))
        .x_label_formatter(&|e| if (1..=epochs).contains(e) { e.to_string() } else { String::new() })
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    for (kind, _, value) in series {
        let points: Vec<(i64, f64)> = rows.iter().map(|r| (r.epoch as i64 + 1, value(r) * 100.0)).collect();
        let color = kind.color();
        chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?;
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 5, color.filled())))?;
    }
    Ok(())
}

/// Bounds of all points, widened so both axes have the same scale on a plot area of `pixels`.
fn equal_scale_ranges(points: impl Iterator<Item = [f64; 2]>, pixels: (u32, u32)) -> (Range<f64>, Range<f64>) {
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for p in points {
        for k in 0..2 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    if !lo[0].is_finite() {
        return (-1.0..1.0, -1.0..1.0);
    }
    let centre = [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0];
    // Units per pixel: the larger need of the two axes, with a margin of 8 % on each side.
    let per_pixel = ((hi[0] - lo[0]) / pixels.0 as f64).max((hi[1] - lo[1]) / pixels.1 as f64).max(1e-12) * 1.16;
    let half = [per_pixel * pixels.0 as f64 / 2.0, per_pixel * pixels.1 as f64 / 2.0];
    ((centre[0] - half[0])..(centre[0] + half[0]), (centre[1] - half[1])..(centre[1] + half[1]))
}

fn draw_embeddings(root: &Area, projection: &EmbeddingProjection, split: &str) -> Result<()> {
    let legend = [
        (Mark::Dot(Series::Images), format!("images ({})", projection.images.len())),
        (Mark::Dot(Series::Texts), format!("captions ({})", projection.texts.len())),
        (Mark::Black, "between the means: the modality gap".to_string()),
    ];
    let area = frame(root, &format!("Image and caption embeddings — {split} split, PCA"), &legend)?;
    let (margin, x_area, y_area) = (14u32, 56u32, 84u32);
    let (width, height) = area.dim_in_pixel();
    let plot_pixels = (width - margin - 30 - y_area, height - 2 * margin - x_area);
    let all = projection.images.iter().chain(&projection.texts).copied();
    let (x, y) = equal_scale_ranges(all, plot_pixels);
    let (x_span, y_span) = (x.end - x.start, y.end - y.start);
    let mut chart = chart_builder(&area).build_cartesian_2d(x, y)?;
    let [ex, ey] = projection.explained.map(|e| e * 100.0);
    chart
        .configure_mesh()
        .x_desc(format!("principal component 1 ({ex:.1} % of the variance)"))
        .y_desc(format!("principal component 2 ({ey:.1} %)"))
        .label_style(font(15))
        .axis_desc_style(font(17))
        .bold_line_style(GRID)
        .light_line_style(WHITE)
        .x_label_formatter(&|v| tick_label(*v, x_span))
        .y_label_formatter(&|v| tick_label(*v, y_span))
        .draw()?;
    let mean = |points: &[[f64; 2]]| {
        let n = points.len().max(1) as f64;
        (points.iter().map(|p| p[0]).sum::<f64>() / n, points.iter().map(|p| p[1]).sum::<f64>() / n)
    };
    // Captions first: there are more of them, and the images stay visible on top.
    for (kind, points) in [(Series::Texts, &projection.texts), (Series::Images, &projection.images)] {
        chart.draw_series(points.iter().map(|p| Circle::new((p[0], p[1]), 3, kind.color().mix(0.45).filled())))?;
    }
    let means = [mean(&projection.images), mean(&projection.texts)];
    chart.draw_series(std::iter::once(PathElement::new(means.to_vec(), BLACK.stroke_width(2))))?;
    for (kind, centre) in [(Series::Images, means[0]), (Series::Texts, means[1])] {
        chart.draw_series([Circle::new(centre, 8, kind.color().filled()), Circle::new(centre, 8, BLACK.stroke_width(2))])?;
    }
    Ok(())
}
