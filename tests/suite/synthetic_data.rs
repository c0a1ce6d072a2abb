//! The built-in dataset: deterministic by seed, captions in the requested language, hard negatives.

use otclip::data::synthetic::{generate, Language, SyntheticConfig};
use otclip::data::{ImageSource, Split};

fn small(seed: u64, lang: &str) -> SyntheticConfig {
    SyntheticConfig::new().with_seed(seed).with_train_images(40).with_val_images(10).with_test_images(10).with_lang(lang.into())
}

fn pixels(source: &ImageSource) -> Vec<u8> {
    source.load().unwrap().into_raw()
}

#[test]
fn same_seed_same_data_other_seed_other_data() {
    let a = generate(&small(7, "vi"), Split::Train).unwrap();
    let b = generate(&small(7, "vi"), Split::Train).unwrap();
    let c = generate(&small(8, "vi"), Split::Train).unwrap();
    assert_eq!(a.scenes, b.scenes);
    for (x, y) in a.dataset.entries.iter().zip(&b.dataset.entries) {
        assert_eq!(x.captions, y.captions);
        assert_eq!(pixels(&x.image), pixels(&y.image));
    }
    assert_ne!(a.scenes, c.scenes);
    let test = generate(&small(7, "vi"), Split::Test).unwrap();
    assert_ne!(a.scenes[..10], test.scenes[..], "splits draw from different streams");
}

#[test]
fn five_vietnamese_captions_per_image() {
    let split = generate(&small(1, "vi"), Split::Train).unwrap();
    assert_eq!(split.dataset.entries.len(), 40);
    for entry in &split.dataset.entries {
        assert_eq!(entry.captions.len(), 5);
        for caption in &entry.captions {
            assert!(caption.contains("màu") || caption.contains("có"), "not Vietnamese: {caption}");
            assert!(!caption.contains("  ") && !caption.contains('{'), "untidy caption: {caption}");
        }
        let image = entry.image.load().unwrap();
        assert_eq!(image.dimensions(), (64, 64));
    }
}

#[test]
fn english_tables_work_too() {
    let split = generate(&small(1, "en"), Split::Val).unwrap();
    assert!(split.dataset.entries.iter().flat_map(|e| &e.captions).all(|c| c.is_ascii()));
    assert_eq!(split.dataset.language, "en");
}

#[test]
fn hard_negatives_occur() {
    let split = generate(&small(3, "vi").with_train_images(200), Split::Train).unwrap();
    let recoloured = split
        .scenes
        .windows(2)
        .filter(|w| {
            let (a, b) = (&w[0], &w[1]);
            a.objects.len() == b.objects.len()
                && a.objects.iter().zip(&b.objects).all(|(x, y)| x.shape == y.shape && x.cell == y.cell)
                && a.objects.iter().zip(&b.objects).any(|(x, y)| x.color != y.color)
        })
        .count();
    assert!(recoloured >= 20, "only {recoloured} recoloured neighbours in 200 scenes");
}

#[test]
fn a_bad_phrase_table_is_named() {
    let err = Language::parse("code = \"az\"\nname = \"x\"\n", "az.toml").unwrap_err();
    assert!(format!("{err:#}").contains("az.toml"), "{err:#}");
    let err = Language::load("/no/such/table.toml").unwrap_err();
    assert!(format!("{err:#}").contains("/no/such/table.toml"));
}
