//! The image pipeline: the evaluation transform against torchvision (fixtures from
//! tools/gen_transform_fixtures.py), invariants of the training augmentations, the prefetching
//! loader, and a run that trains and evaluates on a dataset spec end to end.

use crate::common;

use std::sync::Arc;

use burn::backend::{Autodiff, NdArray};
use image::RgbImage;
use otclip::data::loader::{Loader, LoaderConfig};
use otclip::data::transform::{EvalTransform, TrainTransform};
use otclip::data::{DatasetSpec, ImageNormalization, Split, Verify};
use otclip::text::CaptionTokenizer;
use otclip::train::{train, TrainConfig, TrainOptions};
use otclip::{evaluate_run, SYNTHETIC_VI_CONFIG};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn fixture_image(name: &str) -> RgbImage {
    image::open(common::fixture(&format!("transforms/{name}.png"))).unwrap().to_rgb8()
}

#[test]
fn eval_transform_matches_torchvision_within_2_of_255() {
    for (name, norm_name, norm) in [
        ("landscape_400x300", "imagenet", ImageNormalization::IMAGENET),
        ("landscape_400x300", "clip", ImageNormalization::CLIP),
        ("portrait_241x379", "imagenet", ImageNormalization::IMAGENET),
        ("small_150x200", "imagenet", ImageNormalization::IMAGENET),
    ] {
        let reference = otclip::npy::read(&common::fixture(&format!("transforms/{name}.{norm_name}.npy"))).unwrap();
        assert_eq!(reference.shape, vec![3, 224, 224]);
        let reference = reference.data;
        let ours = EvalTransform::new().apply(&fixture_image(name), &norm).unwrap();
        assert_eq!(ours.len(), reference.len(), "{name}: shape");
        let plane = 224 * 224;
        let mut worst = 0f64;
        let mut sum = 0f64;
        for (i, (a, b)) in ours.iter().zip(&reference).enumerate() {
            // Back to the 0–255 pixel scale of the channel.
            let diff = (*a as f64 - b).abs() * norm.std[i / plane] as f64 * 255.0;
            worst = worst.max(diff);
            sum += diff;
        }
        let mean = sum / ours.len() as f64;
        println!("{name} ({norm_name}): max |Δ| = {worst:.3}/255, mean {mean:.4}/255");
        assert!(worst <= 2.0 + 1e-3, "{name} ({norm_name}): max |Δ| = {worst}/255 > 2/255");
    }
}

fn range(norm: &ImageNormalization) -> [(f32, f32); 3] {
    [0, 1, 2].map(|c| ((0.0 - norm.mean[c]) / norm.std[c] - 1e-5, (1.0 - norm.mean[c]) / norm.std[c] + 1e-5))
}

#[test]
fn train_transforms_keep_size_range_and_reproduce_by_seed() {
    let image = fixture_image("portrait_241x379");
    let norm = ImageNormalization::CLIP;
    for transform in [TrainTransform::new().with_size(64), TrainTransform::lowclip(64).with_noise(1.0).with_blur(1.0)] {
        let run = |seed: u64| transform.apply(&image, &norm, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        let (a, b, c) = (run(7), run(7), run(8));
        assert_eq!(a.len(), 3 * 64 * 64, "output is [3, size, size]");
        assert_eq!(a, b, "the same seed gives the same view");
        assert_ne!(a, c, "another seed gives another view");
        let bounds = range(&norm);
        for (i, v) in a.iter().enumerate() {
            let (lo, hi) = bounds[i / (64 * 64)];
            assert!(v.is_finite() && *v >= lo && *v <= hi, "value {v} outside [{lo}, {hi}]");
        }
    }
    // Every step off except the crop at full scale: the eval geometry of a square input.
    let square = RgbImage::from_fn(50, 50, |x, y| image::Rgb([(x * 5) as u8, (y * 5) as u8, 128]));
    let plain = TrainTransform::new()
        .with_size(50)
        .with_rotation_degrees(0.0)
        .with_scale([1.0, 1.0])
        .with_ratio([1.0, 1.0])
        .with_hflip(0.0)
        .with_brightness(0.0)
        .with_contrast(0.0)
        .with_saturation(0.0);
    let out = plain.apply(&square, &norm, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
    assert_eq!(out, otclip::data::transform::to_chw(&square, &norm), "identity when every augmentation is off");
}

fn tokenizer_for(captions: &otclip::data::CaptionedImages) -> CaptionTokenizer {
    CaptionTokenizer::train(captions.entries.iter().flat_map(|e| e.captions.iter()), 200, 32).unwrap()
}

#[test]
fn loader_prefetches_every_batch_and_drops_unreadable_images() {
    let path = common::fixture("datasets/viclip-ot");
    let spec = DatasetSpec::parse(&format!("viclip-ot:{}?split=test&verify=exists", path.display())).unwrap();
    let dataset = spec.open().unwrap();
    assert_eq!(spec.verify(), Verify::Exists);
    assert_eq!(dataset.caption_count(), 4, "the truncated PNG passes the existence check");
    let captioned = Arc::new(dataset.to_captioned());
    let batcher = otclip::data::Batcher { tokenizer: tokenizer_for(&captioned), image_size: 32, normalization: ImageNormalization::IMAGENET, interpolation: Default::default() };
    let pairs = captioned.all_pairs();
    let batches = vec![pairs[..2].to_vec(), pairs[2..].to_vec(), pairs.clone()];
    let config = LoaderConfig { workers: 2, prefetch: 1, augment: Some((TrainTransform::new().with_size(32), 3)), skip: 0, shard: None };
    let mut loader = Loader::spawn(batcher.clone(), captioned.clone(), batches.clone(), config.clone()).unwrap();
    let got: Vec<_> = loader.by_ref().collect();
    assert_eq!(got.iter().map(|b| b.pairs.len()).collect::<Vec<_>>(), vec![2, 0, 2], "pairs of b.png are dropped");
    assert_eq!(loader.failed(), 4);
    assert!(got[1].failed[0].contains("b.png"), "{}", got[1].failed[0]);
    assert_eq!(got[0].pixels.len(), 2 * 3 * 32 * 32);
    let again: Vec<_> = Loader::spawn(batcher, captioned, batches, config).unwrap().collect();
    assert_eq!(got[0].pixels, again[0].pixels, "augmentation is seeded per batch and sample");
}

#[test]
fn trains_and_evaluates_on_a_dataset_spec() {
    let root = common::fixture("datasets/viclip-ot");
    let dataset = format!("data.dataset={}", toml::Value::String(format!("viclip-ot:{}", root.display())));
    let overrides: Vec<String> = [
        dataset.as_str(),
        "data.augment=\"viclip-ot\"",
        "model.image_size=32",
        "loss.transport=\"none\"",
        "optim.batch_size=4",
        "optim.epochs=1",
        "optim.warmup_steps=1",
        "tokenizer.vocab_size=200",
        "eval.batch_size=4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let config = TrainConfig::parse(SYNTHETIC_VI_CONFIG, "synthetic_vi.toml", &overrides).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let device = Default::default();
    let options = TrainOptions { quiet: true, ..Default::default() };
    let summary = train::<Autodiff<NdArray<f32>>>(&config, &run_dir, &device, &options).unwrap();
    assert_eq!(summary.steps, 1, "4 pairs of the train split in batches of 4");
    assert!(summary.first_loss.is_finite());
    // The test split has one usable image (the others are truncated or outside the root).
    let report = evaluate_run::<NdArray<f32>>(&run_dir, "last", Split::Test, None, &device).unwrap();
    assert!(report.dataset.starts_with("viclip-ot:") && report.dataset.contains("split=test"), "{}", report.dataset);
    assert_eq!(report.metrics.t2i_recall[0], 1.0, "one image: every caption finds it");
    // Another dataset through --data.
    let other = DatasetSpec::parse(&format!("xm3600:{}?lang=vi&captions=all", common::fixture("datasets/xm3600").display())).unwrap();
    let report = evaluate_run::<NdArray<f32>>(&run_dir, "last", Split::Test, Some(&other), &device).unwrap();
    assert!(report.dataset.contains("captions=all"), "{}", report.dataset);
    assert_eq!(report.language, "vi");
}

#[test]
fn samplers_group_captions_or_avoid_shared_captions() {
    use otclip::data::loader::{make_batches, BatchUnit, Sampler};
    use otclip::data::{CaptionedImages, ImageEntry, ImageSource};
    let entry = |id: u64, captions: &[&str]| ImageEntry {
        image_id: id,
        key: id.to_string(),
        image: ImageSource::File(format!("{id}.jpg").into(), Default::default()),
        captions: captions.iter().map(|c| c.to_string()).collect(),
    };
    let dataset = CaptionedImages {
        name: "t".into(),
        language: "en".into(),
        entries: vec![entry(0, &["a dog", "x"]), entry(1, &["A  dog", "y"]), entry(2, &["a dog", "z"]), entry(3, &["w", "v"])],
        teacher: None,
    };
    let pairs = vec![(0, 0), (1, 0), (2, 0), (3, 0), (0, 1), (1, 1), (2, 1), (3, 1)];
    let aware = make_batches(&dataset, &pairs, 3, BatchUnit::Pairs, Sampler::CaptionAware);
    assert_eq!(aware.iter().map(Vec::len).sum::<usize>(), 8, "every pair is used once");
    for batch in &aware {
        let dogs = batch.iter().filter(|&&(i, c)| dataset.entries[i].captions[c].to_lowercase().contains("dog")).count();
        assert!(dogs <= 1, "two images captioned `a dog` in one batch: {batch:?}");
    }
    let grouped = make_batches(&dataset, &pairs, 4, BatchUnit::Pairs, Sampler::Grouped);
    assert_eq!(grouped, vec![vec![(0, 0), (0, 1), (1, 0), (1, 1)], vec![(2, 0), (2, 1), (3, 0), (3, 1)]]);
    assert_eq!(make_batches(&dataset, &pairs, 3, BatchUnit::Pairs, Sampler::Random).len(), 3);
    // Counted in images (the paper's collation): every caption of an image in its batch, however
    // many pairs that makes; image 2 has one caption this epoch.
    let pairs = vec![(1, 1), (0, 0), (2, 0), (3, 1), (1, 0), (0, 1), (3, 0)];
    let images = make_batches(&dataset, &pairs, 3, BatchUnit::Images, Sampler::Grouped);
    assert_eq!(images, vec![vec![(1, 1), (1, 0), (0, 0), (0, 1), (2, 0)], vec![(3, 1), (3, 0)]]);
}
