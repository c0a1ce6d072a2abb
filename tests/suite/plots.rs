//! The run's PNG plots: training curves drawn from a metrics file show each series in its colour
//! where its values put it, with text (the bundled font) rendered; `otclip plot` names a bad row;
//! the 2-D PCA agrees with NumPy and with an analytic case; a short run leaves its plots, and a
//! plot that cannot be written does not stop training.

use std::path::Path;

use burn::backend::{Autodiff, NdArray};
use image::RgbImage;
use otclip::app::eval::{embedding_plot_path, plot_embeddings, EvalTask};
use otclip::app::plot::PlotTask;
use otclip::data::Split;
use otclip::eval::metrics_log::MetricsLog;
use otclip::eval::plots::{draw_training_plots, smoothed, Series, TrainingPlot, EMBEDDING_PLOT_SIZE, PLOTS_DIR, TRAINING_PLOT_SIZE};
use otclip::eval::projection::{pca_2d, symmetric_eigen};
use otclip::eval::SplitEmbeddings;
use otclip::train::{train, TrainConfig, TrainOptions};
use otclip::{DeviceSpec, SYNTHETIC_VI_CONFIG};

use crate::common;

fn load(path: &Path) -> RgbImage {
    image::open(path).unwrap_or_else(|e| panic!("{} is not a readable image: {e}", path.display())).to_rgb8()
}

/// The pixels of exactly `series`' colour.
fn pixels_of(image: &RgbImage, series: Series) -> Vec<(u32, u32)> {
    let (r, g, b) = series.rgb();
    image.enumerate_pixels().filter(|(_, _, p)| p.0 == [r, g, b]).map(|(x, y, _)| (x, y)).collect()
}

/// Dark grey pixels (text, in the font's anti-aliased shades) in rows `rows`.
fn text_pixels(image: &RgbImage, rows: std::ops::Range<u32>) -> usize {
    image
        .enumerate_pixels()
        .filter(|(_, y, p)| rows.contains(y) && p.0.iter().all(|&c| c < 140) && p.0.iter().max().unwrap() - p.0.iter().min().unwrap() < 16)
        .count()
}

/// The pixels below the title and the legend, which sit in the top 80 rows.
fn in_chart(pixels: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    pixels.into_iter().filter(|&(_, y)| y >= 80).collect()
}

/// The median row of the pixels in the leftmost and the rightmost fifth of their own extent.
fn left_and_right_rows(pixels: &[(u32, u32)]) -> (u32, u32) {
    let (lo, hi) = pixels.iter().fold((u32::MAX, 0), |(lo, hi), &(x, _)| (lo.min(x), hi.max(x)));
    let fifth = (hi - lo) / 5;
    let median = |keep: &dyn Fn(u32) -> bool| {
        let mut rows: Vec<u32> = pixels.iter().filter(|(x, _)| keep(*x)).map(|&(_, y)| y).collect();
        assert!(!rows.is_empty());
        rows.sort_unstable();
        rows[rows.len() / 2]
    };
    (median(&|x| x <= lo + fifth), median(&|x| x >= hi - fifth))
}

/// 300 steps over 3 epochs: loss falling with noise, warmup then cosine, heads at 10×; recall rising.
fn synthetic_metrics() -> String {
    let mut noise = 12345u64;
    let mut lines = Vec::new();
    for step in 0..300u64 {
        noise = noise.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let jitter = (noise >> 40) as f64 / (1u64 << 24) as f64 - 0.5;
        let loss = 0.5 + 4.0 * (-(step as f64) / 80.0).exp() + 0.3 * jitter;
        let lr = if step < 20 { 1e-3 * (step + 1) as f64 / 20.0 } else { 1e-3 * 0.5 * (1.0 + (std::f64::consts::PI * (step - 20) as f64 / 280.0).cos()) };
        lines.push(serde_json::json!({"step": step, "epoch": step / 100, "loss": loss, "lr": lr, "head_lr": 10.0 * lr, "contrastive": null}).to_string());
        if step % 100 == 99 {
            let e = (step / 100) as f64;
            lines.push(
                serde_json::json!({"epoch": step / 100, "split": "val", "step": step + 1, "t2i_r1": 0.1 + 0.15 * e, "i2t_r1": 0.12 + 0.16 * e, "mean_recall": 0.3 + 0.2 * e})
                    .to_string(),
            );
        }
    }
    lines.join("\n") + "\n"
}

#[test]
fn training_plots_show_each_series_where_its_values_are() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("metrics.jsonl");
    std::fs::write(&metrics, synthetic_metrics()).unwrap();
    let log = MetricsLog::read(&metrics).unwrap();
    assert_eq!((log.steps.len(), log.validations.len()), (300, 3));
    let written = draw_training_plots(&log, &dir.path().join("plots"), "synthetic").unwrap();
    assert_eq!(written.iter().map(|(p, _)| *p).collect::<Vec<_>>(), TrainingPlot::ALL);
    let image = |plot: TrainingPlot| {
        let image = load(&dir.path().join("plots").join(plot.file_name()));
        assert_eq!(image.dimensions(), TRAINING_PLOT_SIZE, "{plot:?}");
        // The title, alone in the top band, and the axes' tick labels at the bottom.
        assert!(text_pixels(&image, 0..44) > 300, "{plot:?}: no title text: the font did not render");
        assert!(text_pixels(&image, TRAINING_PLOT_SIZE.1 - 60..TRAINING_PLOT_SIZE.1) > 100, "{plot:?}: no axis labels");
        image
    };

    let loss = image(TrainingPlot::Loss);
    assert!(pixels_of(&loss, Series::RawLoss).len() > 300, "the raw loss line is missing");
    let smooth = in_chart(pixels_of(&loss, Series::SmoothedLoss));
    assert!(smooth.len() > 1000, "the smoothed loss line is missing: {} pixels", smooth.len());
    let (left, right) = left_and_right_rows(&smooth);
    assert!(left + 150 < right, "the falling loss should run from high (left, row {left}) to low (right, row {right})");

    let lr = image(TrainingPlot::LearningRate);
    let (backbone, heads) = (in_chart(pixels_of(&lr, Series::BackboneLr)), in_chart(pixels_of(&lr, Series::HeadLr)));
    assert!(backbone.len() > 1000 && heads.len() > 1000, "both groups' rates are drawn: {} and {}", backbone.len(), heads.len());
    let median_row = |pixels: &[(u32, u32)]| {
        let mut rows: Vec<u32> = pixels.iter().map(|p| p.1).collect();
        rows.sort_unstable();
        rows[rows.len() / 2]
    };
    assert!(median_row(&heads) + 100 < median_row(&backbone), "the heads' rate (10×) runs above the backbone's");

    let recall = image(TrainingPlot::Recall);
    for series in [Series::TextToImageR1, Series::ImageToTextR1, Series::MeanRecall] {
        let pixels = in_chart(pixels_of(&recall, series));
        assert!(pixels.len() > 500, "{series:?} is missing: {} pixels", pixels.len());
        let (left, right) = left_and_right_rows(&pixels);
        assert!(left > right + 60, "{series:?} rises over the epochs: row {left} → {right}");
    }
}

#[test]
fn smoothing_is_a_centred_mean() {
    assert_eq!(smoothed(&[1.0, 2.0, 3.0, 4.0, 8.0], 3), [1.5, 2.0, 3.0, 5.0, 6.0]);
    assert_eq!(smoothed(&[1.0, 5.0], 1), [1.0, 5.0]);
    assert!(smoothed(&[], 5).is_empty());
}

#[test]
fn a_log_without_validations_draws_no_recall_plot() {
    let dir = tempfile::tempdir().unwrap();
    let steps: String = synthetic_metrics().lines().filter(|l| !l.contains("\"val\"")).map(|l| format!("{l}\n")).collect();
    let log = MetricsLog::parse(&steps, Path::new("metrics.jsonl")).unwrap();
    let written = draw_training_plots(&log, dir.path(), "steps only").unwrap();
    assert_eq!(written.iter().map(|(p, _)| *p).collect::<Vec<_>>(), [TrainingPlot::Loss, TrainingPlot::LearningRate]);
    assert!(!dir.path().join("recall.png").exists());
}

#[test]
fn otclip_plot_names_the_file_and_line_of_a_bad_row() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let run_arg = run.to_str().unwrap();
    let metrics = run.join("metrics.jsonl");

    let (ok, _, err) = common::otclip(&["plot", "--run", run_arg]);
    assert!(!ok && err.contains("metrics.jsonl does not exist"), "{err}");
    std::fs::write(&metrics, "\n").unwrap();
    let (ok, _, err) = common::otclip(&["plot", "--run", run_arg]);
    assert!(!ok && err.contains("holds no rows yet"), "{err}");

    let good = r#"{"step": 0, "epoch": 0, "loss": 2.5, "lr": 0.001}"#;
    let cases = [
        (r#"{"step": 1, "epoch": 0, "lr": 0.001}"#, "a training step needs `loss` (a number), which is missing"),
        (r#"{"step": 1, "epoch": 0, "loss": "high", "lr": 0.001}"#, "a training step needs `loss` as a finite number, got \"high\""),
        (r#"{"step": -1, "epoch": 0, "loss": 1.0, "lr": 0.001}"#, "`step` as a whole number ≥ 0, got -1"),
        (r#"{"epoch": 0, "split": "val", "step": 1, "t2i_r1": 0.5}"#, "a validation needs `i2t_r1`"),
        (r#"{"epoch": 0, "split": "test", "step": 1}"#, "unknown \"split\" \"test\""),
        (r#"{"step": 1, "epoch": 0, "loss": 1.0, "lr": 0.00"#, "not JSON"),
        ("[1, 2]", "expected a JSON object"),
    ];
    for (bad, expected) in cases {
        std::fs::write(&metrics, format!("{good}\n{bad}\n{good}\n")).unwrap();
        let (ok, _, err) = common::otclip(&["plot", "--run", run_arg]);
        assert!(!ok, "{bad} was accepted");
        assert!(err.contains(&format!("{} line 2", metrics.display())) && err.contains(expected), "{bad}: {err}");
    }

    std::fs::write(&metrics, synthetic_metrics()).unwrap();
    let (ok, out, err) = common::otclip(&["plot", "--run", run_arg]);
    assert!(ok, "{err}");
    for plot in TrainingPlot::ALL {
        let path = run.join(PLOTS_DIR).join(plot.file_name());
        assert!(out.contains(&format!("wrote {}", path.display())), "{out}");
        assert_eq!(load(&path).dimensions(), TRAINING_PLOT_SIZE);
    }
}

fn rows(value: &serde_json::Value) -> Vec<f32> {
    common::flat(value).into_iter().map(|x| x as f32).collect()
}

#[test]
fn pca_agrees_with_numpy() {
    let fixture = common::read_json("plots/pca.json");
    let dim = fixture["dim"].as_u64().unwrap() as usize;
    let (images, texts) = (rows(&fixture["images"]), rows(&fixture["texts"]));
    let embeddings = SplitEmbeddings { dim, images: images.clone(), texts: texts.clone(), caption_image: vec![] };
    let projection = otclip::eval::projection::project_embeddings(&embeddings).unwrap();
    let got: Vec<f64> = projection.images.iter().chain(&projection.texts).flatten().copied().collect();
    let expected: Vec<f64> = common::flat(&fixture["image_points"]).into_iter().chain(common::flat(&fixture["text_points"])).collect();
    assert!(common::max_rel_diff(&got, &expected) < 1e-9, "projection differs from NumPy's by {}", common::max_rel_diff(&got, &expected));
    let explained: Vec<f64> = fixture["explained"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(common::max_rel_diff(&projection.explained, &explained) < 1e-9, "{:?} vs {explained:?}", projection.explained);
}

#[test]
fn pca_of_points_on_two_axes_is_those_axes() {
    // (±3, 0, 0) and (0, ±1, 0), shifted by (1, 2, 3): PC 1 is x, PC 2 is y, the mean is the shift.
    let points: Vec<f32> = [[4.0, 2.0, 3.0], [-2.0, 2.0, 3.0], [1.0, 3.0, 3.0], [1.0, 1.0, 3.0]].concat();
    let pca = pca_2d(&[&points[..6], &points[6..]], 3).unwrap();
    let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
    assert!(close(&pca.mean, &[1.0, 2.0, 3.0]), "{:?}", pca.mean);
    assert!(close(&pca.components[0], &[1.0, 0.0, 0.0]) && close(&pca.components[1], &[0.0, 1.0, 0.0]), "{:?}", pca.components);
    assert!(close(&pca.variances, &[6.0, 2.0 / 3.0]), "{:?}", pca.variances);
    assert!(close(&pca.explained(), &[0.9, 0.1]));
    assert!(close(&pca.project(&[-2.0, 3.0, 3.0]), &[-3.0, 1.0]));
    assert!(pca_2d(&[&points[..3]], 3).unwrap_err().to_string().contains("at least 2 rows"));
    assert!(pca_2d(&[&points[..5]], 3).is_err(), "5 values are not rows of 3");
    assert!(pca_2d(&[&[0.0, f32::NAN, 1.0, 1.0]], 2).is_err());
}

#[test]
fn symmetric_eigen_decomposes_random_and_degenerate_matrices() {
    let mut state = 7u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let n = 24;
    let mut random = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let v = next();
            random[i * n + j] = v;
            random[j * n + i] = v;
        }
    }
    // Repeated eigenvalues: Q diag(2, 5, 2, 1, 5, 2) Q with Q = I − 2uuᵀ/‖u‖², a reflection.
    let u: Vec<f64> = (0..6).map(|_| next()).collect();
    let uu: f64 = u.iter().map(|x| x * x).sum();
    let q = |i: usize, j: usize| if i == j { 1.0 } else { 0.0 } - 2.0 * u[i] * u[j] / uu;
    let diagonal = [2.0, 5.0, 2.0, 1.0, 5.0, 2.0];
    let degenerate: Vec<f64> = (0..36).map(|ij| (0..6).map(|k| q(ij / 6, k) * diagonal[k] * q(k, ij % 6)).sum()).collect();
    let (values, _) = symmetric_eigen(degenerate.clone(), 6).unwrap();
    assert!(values.iter().zip([1.0, 2.0, 2.0, 2.0, 5.0, 5.0]).all(|(a, b)| (a - b).abs() < 1e-12), "{values:?}");
    for (a, n) in [(random, n), (degenerate, 6), (vec![0.0; 9], 3), (vec![4.0], 1)] {
        let (values, vectors) = symmetric_eigen(a.clone(), n).unwrap();
        assert!(values.windows(2).all(|w| w[0] <= w[1]), "not ascending: {values:?}");
        for k in 0..n {
            for i in 0..n {
                let av: f64 = (0..n).map(|j| a[i * n + j] * vectors[j * n + k]).sum();
                assert!((av - values[k] * vectors[i * n + k]).abs() < 1e-12, "A v ≠ λ v for eigenvalue {k} of a {n} × {n} matrix");
            }
            for l in 0..n {
                let dot: f64 = (0..n).map(|i| vectors[i * n + k] * vectors[i * n + l]).sum();
                assert!((dot - if k == l { 1.0 } else { 0.0 }).abs() < 1e-12, "eigenvectors {k} and {l} are not orthonormal");
            }
        }
    }
    assert!(symmetric_eigen(vec![1.0, f64::NAN, f64::NAN, 1.0], 2).is_err());
}

#[test]
fn the_embedding_plot_shows_the_modality_gap() {
    // Images around +x, captions around −x, on the unit sphere of dimension 8.
    let mut state = 3u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    };
    let dim = 8;
    let mut cloud = |rows: usize, sign: f32| -> Vec<f32> {
        (0..rows)
            .flat_map(|_| {
                let mut row: Vec<f32> = (0..dim).map(|d| if d == 0 { sign } else { 0.0 } + 0.6 * next()).collect();
                let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
                row.iter_mut().for_each(|x| *x /= norm);
                row
            })
            .collect()
    };
    let embeddings = SplitEmbeddings { dim, images: cloud(60, 1.0), texts: cloud(180, -1.0), caption_image: vec![] };
    let dir = tempfile::tempdir().unwrap();
    let path = embedding_plot_path(dir.path(), Split::Test);
    plot_embeddings(&embeddings, Split::Test, &path).unwrap();
    assert!(path.ends_with("plots/embeddings-test.png"));
    let image = load(&path);
    assert_eq!(image.dimensions(), EMBEDDING_PLOT_SIZE);
    assert!(text_pixels(&image, 0..44) > 300, "no title text");
    // Points are half transparent: bluish and orangish pixels, which sit apart along PC 1.
    let (mut blue, mut orange) = (Vec::new(), Vec::new());
    for (x, y, p) in image.enumerate_pixels() {
        let [r, g, b] = p.0.map(i32::from);
        if b > r + 60 && b > g + 20 {
            blue.push((x, y));
        } else if r > b + 100 && r > g + 40 {
            orange.push((x, y));
        }
    }
    assert!(blue.len() > 500 && orange.len() > 500, "{} bluish and {} orangish pixels", blue.len(), orange.len());
    let mean_x = |pixels: &[(u32, u32)]| pixels.iter().map(|p| p.0 as f64).sum::<f64>() / pixels.len() as f64;
    assert!((mean_x(&blue) - mean_x(&orange)).abs() > 150.0, "images at x {} and captions at x {} overlap", mean_x(&blue), mean_x(&orange));
    assert!(!pixels_of(&image, Series::Images).is_empty(), "the image mean's marker is solid");
}

fn tiny_config(epochs: usize) -> TrainConfig {
    let overrides: Vec<String> = [
        "data.synthetic.train_images=32",
        "data.synthetic.val_images=8",
        "data.synthetic.test_images=8",
        "data.synthetic.image_size=32",
        "optim.batch_size=16",
        "optim.warmup_steps=1",
        "tokenizer.vocab_size=300",
        "loss.transport_warmup_epochs=0",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("optim.epochs={epochs}")])
    .collect();
    TrainConfig::parse(SYNTHETIC_VI_CONFIG, "synthetic_vi.toml", &overrides).unwrap()
}

#[test]
fn a_short_run_leaves_its_plots_and_a_failed_plot_does_not_stop_it() {
    type B = Autodiff<NdArray<f32>>;
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let quiet = TrainOptions { quiet: true, ..Default::default() };
    train::<B>(&tiny_config(1), &run, &Default::default(), &quiet).unwrap();
    let plots = run.join(PLOTS_DIR);
    for plot in TrainingPlot::ALL {
        assert_eq!(load(&plots.join(plot.file_name())).dimensions(), TRAINING_PLOT_SIZE, "{plot:?}");
    }
    // A file where the plots folder goes: the second epoch's plots fail, training does not.
    std::fs::remove_dir_all(&plots).unwrap();
    std::fs::write(&plots, "in the way").unwrap();
    let resumed = train::<B>(&tiny_config(2), &run, &Default::default(), &TrainOptions { resume: true, ..quiet }).unwrap();
    assert_eq!(resumed.epochs, 2);
    assert!(plots.is_file());
    std::fs::remove_file(&plots).unwrap();
    let written = PlotTask { run_dir: run.clone() }.run().unwrap();
    assert_eq!(written.len(), 3);
    // Evaluation draws the test split's embeddings.
    let evaluation = EvalTask { run_dir: run.clone(), checkpoint: "last".into(), split: Split::Test, data: None }.run_on(DeviceSpec::NdArray).unwrap();
    let path = evaluation.embedding_plot.expect("the embeddings plot is drawn");
    assert_eq!(path, plots.join("embeddings-test.png"));
    assert_eq!(load(&path).dimensions(), EMBEDDING_PLOT_SIZE);
}
