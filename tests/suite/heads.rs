//! Projection heads: linear with or without a bias, open_clip's MLP, none; dropout before the
//! head; the checks of `validate`; and runs saved before heads were configurable still load.

use burn::backend::{Autodiff, NdArray};
use burn::module::{AutodiffModule, Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::activation::gelu;
use burn::tensor::Distribution;
use otclip::model::{l2_normalize, BertConfig, BertModel, DualEncoder, DualEncoderConfig, HeadConfig, HeadKind, TextBatch, VitConfig, VitModel};
use otclip::train::optimizer::param_classes;

use crate::common::to_f64;

type B = NdArray<f32>;

fn config(image_head: HeadConfig, text_head: HeadConfig, projection_dim: usize) -> DualEncoderConfig {
    let vision = VitConfig::new(16, 8, 32, 1, 2, 64);
    let text = BertConfig::new(40, 24, 1, 2, 48);
    DualEncoderConfig::new(vision.into(), text, projection_dim).with_image_head(image_head).with_text_head(text_head)
}

fn inputs(device: &burn::backend::ndarray::NdArrayDevice) -> (Tensor<B, 4>, TextBatch<B>) {
    let pixels = Tensor::random([3, 3, 16, 16], Distribution::Normal(0.0, 1.0), device);
    let ids: Vec<i64> = (0..15).map(|k| (k * 5 + 2) % 39 + 1).collect();
    let text = TextBatch {
        input_ids: Tensor::<B, 1, Int>::from_ints(ids.as_slice(), device).reshape([3, 5]),
        attention_mask: Tensor::<B, 2, Int>::ones([3, 5], device),
    };
    (pixels, text)
}

fn names<M: Module<B>>(model: &M) -> Vec<String> {
    param_classes(model).into_iter().map(|(_, _, name)| name).filter(|n| !n.starts_with("vision_model.") && !n.starts_with("text_model.")).collect()
}

fn close(a: Tensor<B, 2>, b: Tensor<B, 2>) -> f64 {
    crate::common::max_rel_diff(&to_f64(a), &to_f64(b))
}

#[test]
fn each_head_kind_computes_what_it_says() {
    let device = Default::default();
    let (pixels, text) = inputs(&device);

    // Linear without a bias (the default), and with one.
    let model = config(HeadConfig::new(), HeadConfig::new().with_bias(true), 16).init::<B>(&device);
    assert_eq!(names(&model), ["visual_projection.weight", "text_projection.weight", "text_projection.bias", "logit_scale", "logit_bias"]);
    let linear = model.visual_projection.as_ref().unwrap();
    let expected = l2_normalize(linear.forward(model.vision_model.as_ref().unwrap().embed(pixels.clone())));
    assert!(close(model.encode_image(pixels.clone()), expected) < 1e-6);
    let linear = model.text_projection.as_ref().unwrap();
    let pooled = model.text_model.embed(&text);
    let by_hand = pooled.matmul(linear.weight.val()) + linear.bias.as_ref().unwrap().val().unsqueeze::<2>();
    assert!(close(model.encode_text(&text), l2_normalize(by_hand)) < 1e-5);

    // open_clip's MLP: (32 + 16) / 2 = 24 hidden, exact GELU, bias-free unless asked.
    let mlp = HeadConfig::new().with_kind(HeadKind::Mlp);
    let model = config(mlp.clone(), mlp, 16).init::<B>(&device);
    assert_eq!(names(&model), ["logit_scale", "logit_bias", "visual_mlp.fc1.weight", "visual_mlp.fc2.weight", "text_mlp.fc1.weight", "text_mlp.fc2.weight"]);
    let head = model.visual_mlp.as_ref().unwrap();
    assert_eq!(head.fc1.weight.dims(), [32, 24]);
    let pooled = model.vision_model.as_ref().unwrap().embed(pixels.clone());
    let by_hand = gelu(pooled.matmul(head.fc1.weight.val())).matmul(head.fc2.weight.val());
    assert!(close(model.encode_image(pixels.clone()), l2_normalize(by_hand)) < 1e-5);

    // None: the pooled output itself, when the tower is as wide as the embedding.
    let none = HeadConfig::new().with_kind(HeadKind::None);
    let model = config(HeadConfig::new(), none, 24).init::<B>(&device);
    assert_eq!(names(&model), ["visual_projection.weight", "logit_scale", "logit_bias"]);
    assert!(close(model.encode_text(&text), l2_normalize(model.text_model.embed(&text))) < 1e-7);
}

#[test]
fn heads_that_cannot_work_are_refused_by_name() {
    let none = HeadConfig::new().with_kind(HeadKind::None);
    let err = config(none, HeadConfig::new(), 16).validate().unwrap_err().to_string();
    assert!(err.contains("model.image_head.kind = \"none\"") && err.contains("width (32)") && err.contains("projection_dim (16)"), "{err}");
    let err = config(HeadConfig::new(), HeadConfig::new().with_dropout(1.0), 16).validate().unwrap_err().to_string();
    assert!(err.contains("model.text_head.dropout = 1"), "{err}");
    assert!(config(HeadConfig::new(), HeadConfig::new().with_kind(HeadKind::None), 24).validate().is_ok());

    // The same from a training config, before anything is built.
    let sets = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let parse = |extra: &[&str]| otclip::train::TrainConfig::parse(otclip::SYNTHETIC_VI_CONFIG, "synthetic_vi.toml", &sets(extra));
    let err = format!("{:#}", parse(&["model.text_head.dropout=1.5"]).unwrap_err());
    assert!(err.contains("model.text_head.dropout = 1.5"), "{err}");
    let err = format!("{:#}", parse(&["model.image_head.kind=\"conv\""]).unwrap_err());
    assert!(err.contains("image_head.kind") && err.contains("conv"), "{err}");
    let parsed = parse(&["model.image_head.kind=\"mlp\"", "model.image_head.dropout=0.1", "model.text_head.bias=true"]).unwrap();
    let model = parsed.model_config(100);
    assert_eq!((model.image_head.kind, model.image_head.dropout, model.text_head.bias), (HeadKind::Mlp, 0.1, true));
}

#[test]
fn dropout_acts_before_the_head_while_training_only() {
    let device = Default::default();
    let model = config(HeadConfig::new().with_dropout(0.5), HeadConfig::new(), 16).init::<Autodiff<B>>(&device);
    let (pixels, _) = inputs(&device);
    let tracked = Tensor::<Autodiff<B>, 4>::from_inner(pixels.clone());
    let (a, b) = (model.encode_image(tracked.clone()).inner(), model.encode_image(tracked).inner());
    assert!(close(a.clone(), b) > 1e-3, "two training passes drew the same dropout mask");
    // Without autodiff (evaluation) dropout is off: the head alone on the pooled output.
    let eval = model.valid();
    let plain = l2_normalize(eval.visual_projection.as_ref().unwrap().forward(eval.vision_model.as_ref().unwrap().embed(pixels.clone())));
    assert!(close(eval.encode_image(pixels), plain.clone()) < 1e-7);
    assert!(close(a, plain) > 1e-3, "the training output equals the dropout-free one");
}

/// The dual encoder as it was before heads were configurable.
#[derive(Module, Debug)]
struct OldDualEncoder<B: Backend> {
    vision_model: VitModel<B>,
    text_model: BertModel<B>,
    visual_projection: Linear<B>,
    text_projection: Linear<B>,
    logit_scale: Param<Tensor<B, 1>>,
    logit_bias: Param<Tensor<B, 1>>,
}

#[test]
fn runs_saved_before_heads_were_configurable_still_load() {
    let device = Default::default();
    let config = config(HeadConfig::new(), HeadConfig::new(), 16);
    let old = OldDualEncoder {
        vision_model: config.vision.vit().unwrap().init::<B>(&device),
        text_model: config.text.init::<B>(&device),
        visual_projection: LinearConfig::new(32, 16).with_bias(false).init(&device),
        text_projection: LinearConfig::new(24, 16).with_bias(false).init(&device),
        logit_scale: Param::from_tensor(Tensor::from_floats([2.5], &device)),
        logit_bias: Param::from_tensor(Tensor::from_floats([-9.0], &device)),
    };
    // The expected embeddings first: burn initialises parameters lazily, and a clone of an
    // uninitialised parameter draws values of its own.
    let (pixels, text) = inputs(&device);
    let expected_image = l2_normalize(old.visual_projection.forward(old.vision_model.embed(pixels.clone())));
    let expected_text = l2_normalize(old.text_projection.forward(old.text_model.embed(&text)));
    let dir = tempfile::tempdir().unwrap();
    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    old.save_file(dir.path().join("model"), &recorder).unwrap();

    // model.json without the head keys reads as bias-free linear heads.
    let mut json = serde_json::to_value(&config).unwrap();
    json.as_object_mut().unwrap().retain(|k, _| !k.ends_with("_head"));
    let read = DualEncoderConfig::from_json(json, std::path::Path::new("model.json")).unwrap();
    assert_eq!((&read.image_head, &read.text_head), (&HeadConfig::new(), &HeadConfig::new()));

    let model: DualEncoder<B> = read.init::<B>(&device).load_file(dir.path().join("model"), &recorder, &device).unwrap();
    assert!(close(model.encode_image(pixels), expected_image) < 1e-7);
    assert!(close(model.encode_text(&text), expected_text) < 1e-7);
}
