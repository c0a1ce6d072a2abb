//! The typed training config: sections into their own types, enums for closed choices, errors that
//! name the file and the key, and keys of the old shape that name where they went.

use otclip::data::DatasetSpec;
use otclip::loss::{Contrastive, Transport};
use otclip::model::Preset;
use otclip::train::{Augment, DataSource, Teacher, TrainConfig};
use otclip::SYNTHETIC_VI_CONFIG;

use crate::common;

fn parse(overrides: &[&str]) -> anyhow::Result<TrainConfig> {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    TrainConfig::parse(SYNTHETIC_VI_CONFIG, "mine.toml", &overrides)
}

fn message(overrides: &[&str]) -> String {
    format!("{:#}", parse(overrides).expect_err("an error"))
}

#[test]
fn the_flagship_config_resolves_into_typed_sections() {
    let config = parse(&[]).unwrap();
    let DataSource::Synthetic(synthetic) = &config.data.source else { panic!("the built-in data") };
    assert_eq!((synthetic.seed, synthetic.train_images, synthetic.lang.as_str()), (42, 4000, "vi"), "the top-level seed reaches the data");
    assert_eq!(config.data.teacher, Some(Teacher::Builtin));
    assert_eq!(config.data.augment, Augment::None);
    assert_eq!((config.data.val.as_ref(), config.model.image_size, config.model.image_tower.as_ref()), (None, None, None));
    assert_eq!(config.model.preset, Preset::Tiny);
    assert_eq!((config.loss.contrastive, config.loss.transport), (Contrastive::Clip, Transport::Sigrot));
    assert_eq!(config.loss.sinkhorn.tau, None, "balanced: no tau");
    assert_eq!(config.loss.objective().to_string(), "clip+sigrot");
    // What a run directory records parses back to the same config.
    let written = config.to_toml().unwrap();
    let again = TrainConfig::parse(&written, "config.toml", &[]).unwrap();
    assert_eq!(again.to_toml().unwrap(), written);
}

#[test]
fn a_dataset_spec_replaces_the_builtin_data() {
    let spec = format!("data.dataset=\"ktvic:{}\"", common::fixture("datasets/ktvic").display());
    let config = parse(&[&spec, "loss.transport=\"none\"", "data.val=\"ktvic:/elsewhere?split=test\""]).unwrap();
    let DataSource::Dataset(dataset) = &config.data.source else { panic!("a dataset spec") };
    assert_eq!(dataset.format.name(), "ktvic");
    assert_eq!(config.data.val, Some(DatasetSpec::parse("ktvic:/elsewhere?split=test").unwrap()));
    assert!(config.synthetic().is_none());
    let written = config.to_toml().unwrap();
    assert!(!written.contains("[data.synthetic]") && written.contains("dataset = \"ktvic:"), "{written}");
    // The teacher of SIGROT must then be a file.
    let message = message(&[&spec]);
    assert!(message.contains("mine.toml") && message.contains("data.teacher"), "{message}");
}

#[test]
fn the_data_is_chosen_exactly_once() {
    let text = SYNTHETIC_VI_CONFIG.replace("[data]\n", "[data]\ndataset = \"ktvic:/data/ktvic\"\n");
    let both = format!("{:#}", TrainConfig::parse(&text, "both.toml", &[]).unwrap_err());
    assert!(both.contains("both.toml") && both.contains("data") && both.contains("keep one"), "{both}");
    let start = SYNTHETIC_VI_CONFIG.find("\n[data.synthetic]\n").unwrap();
    let end = SYNTHETIC_VI_CONFIG[start..].find("\n\n").unwrap() + start;
    let text = format!("{}{}", &SYNTHETIC_VI_CONFIG[..start], &SYNTHETIC_VI_CONFIG[end..]);
    let neither = format!("{:#}", TrainConfig::parse(&text, "neither.toml", &[]).unwrap_err());
    assert!(neither.contains("neither.toml") && neither.contains("[data.synthetic]") && neither.contains("dataset"), "{neither}");
}

#[test]
fn a_wrong_value_names_the_file_the_key_and_what_was_expected() {
    let cases: [(&str, &str, &str); 7] = [
        ("optim.epochs=\"eight\"", "optim.epochs", "usize"),
        ("data.augment=\"heavy\"", "data.augment", "viclip-ot"),
        ("model.preset=\"huge\"", "model.preset", "tiny"),
        ("loss.transport=\"ot\"", "loss.transport", "sigrot"),
        ("data.synthetic.train_images=-3", "data.synthetic.train_images", "usize"),
        ("loss.sinkhorn.eps=0", "loss.sinkhorn", "eps"),
        ("model.image_tower=\"timm:no-at-sign\"", "model.image_tower", "timm:NAME@DIR"),
    ];
    for (set, key, expected) in cases {
        let message = message(&[set]);
        assert!(message.contains("mine.toml") && message.contains(key) && message.contains(expected), "--set {set}: {message}");
    }
    let nothing = message(&["loss.contrastive=\"none\"", "loss.transport=\"none\""]);
    assert!(nothing.contains("loss.contrastive") && nothing.contains("nothing would train"), "{nothing}");
}

#[test]
fn an_old_shape_config_names_the_key_that_moved_and_where_it_went() {
    let old = std::fs::read_to_string(common::fixture("configs/synthetic_vi_old_shape.toml")).unwrap();
    let old_error = format!("{:#}", TrainConfig::parse(&old, "old.toml", &[]).unwrap_err());
    assert!(old_error.contains("old.toml") && old_error.contains("data.dataset") && old_error.contains("[data.synthetic]"), "{old_error}");
    let cases: [(&str, &str); 7] = [
        ("loss.objective=\"clip+sigrot\"", "contrastive = \"clip\", transport = \"sigrot\""),
        ("loss.eps=0.05", "`loss.sinkhorn.eps`"),
        ("loss.iters=10", "`loss.sinkhorn.iterations`"),
        ("loss.tol=0.0", "`loss.sinkhorn.tolerance`"),
        ("loss.sinkhorn.tau=inf", "leave `loss.sinkhorn.tau` out"),
        ("model.image_size=0", "leave `model.image_size` out"),
        ("data.val=\"\"", "leave `data.val` out"),
    ];
    for (set, expected) in cases {
        let message = message(&[set]);
        assert!(message.contains("mine.toml") && message.contains(expected), "--set {set}: {message}");
    }
}

#[test]
fn every_committed_config_parses_and_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let config = TrainConfig::load(&path, &[]).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            names.push((path.file_stem().unwrap().to_string_lossy().into_owned(), config));
        }
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    let find = |name: &str| &names.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("configs/{name}.toml is missing")).1;
    // LowCLIP: mBERT with each image tower, the LowCLIP augmentation, the CLIP loss.
    for (name, tower) in [("lowclip_resnet50", "torchvision:resnet50@"), ("lowclip_efficientnet_b0", "torchvision:efficientnet_b0@"), ("lowclip_swin_t", "torchvision:swin_t@"), ("lowclip_vit", "hf:")] {
        let config = find(name);
        assert!(config.model.image_tower.as_ref().unwrap().to_string().starts_with(tower), "{name}");
        assert!(config.model.text_tower.as_ref().unwrap().to_string().contains("bert-base-multilingual-cased"), "{name}");
        assert!(!config.tokenizer.lowercase, "{name}: mBERT is cased");
        assert_eq!(serde_json::to_value(config.data.augment).unwrap(), "lowclip", "{name}");
        assert_eq!(config.model.convnet.is_some(), name != "lowclip_vit", "{name}");
    }
    let flagship = find("synthetic_az");
    assert_eq!(flagship.synthetic().unwrap().lang, "az");
    let model = flagship.model_config(100);
    assert!(model.vision.vit().is_none(), "the LowCLIP flagship has a convolutional image tower");
}
