//! Teacher files are matched by the dataset's own image ids and caption texts: a file made
//! outside otclip, in another order, for a dataset that skips an image, attaches every row to
//! the right pair; and `otclip teacher` embeds any dataset spec with pretrained towers.

use std::collections::HashMap;
use std::path::Path;

use otclip::data::{teacher, CaptionedImages, DatasetSpec, Split};
use safetensors::tensor::{Dtype, TensorView};

use crate::common::otclip;

const DIM: usize = 8;

/// A JSONL dataset of four images with 2, 1, 1 and 3 captions; image `c` has no file, so the
/// reader skips it.
fn dataset(dir: &Path) -> CaptionedImages {
    let images = [("a", &["một con mèo", "con mèo đang ngủ"][..]), ("b", &["hai con chó"]), ("c", &["xe máy"]), ("d", &["chợ hoa", "nón lá", "bãi biển"])];
    let mut lines = String::new();
    for (id, captions) in images {
        if id != "c" {
            image::RgbImage::from_pixel(8, 8, image::Rgb([id.as_bytes()[0], 40, 90])).save(dir.join(format!("{id}.png"))).unwrap();
        }
        for caption in captions {
            lines.push_str(&serde_json::json!({"image": format!("{id}.png"), "caption": caption, "image_id": id}).to_string());
            lines.push('\n');
        }
    }
    std::fs::write(dir.join("pairs.jsonl"), lines).unwrap();
    let spec: DatasetSpec = format!("jsonl:{}", dir.join("pairs.jsonl").display()).parse().unwrap();
    otclip::train::open_spec(&spec, Split::Train).unwrap()
}

/// A distinct vector per (image id, caption number): what a teacher row should hold.
fn vector(id: &str, caption: Option<usize>) -> Vec<f32> {
    let mut v = vec![0.0; DIM];
    v[(id.as_bytes()[0] - b'a') as usize] = 1.0;
    if let Some(c) = caption {
        v[4 + c] = 0.5;
    }
    v
}

fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

/// Writes a teacher the way a Python script would (`safetensors.numpy.save_file` with string
/// metadata), in bf16, images in the order `order`, captions listed last-first.
fn write_external(path: &Path, order: &[(&str, &[&str])], with_texts: bool) {
    let bf16 = |rows: &[Vec<f32>]| rows.iter().flatten().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect::<Vec<u8>>();
    let images: Vec<Vec<f32>> = order.iter().map(|(id, _)| vector(id, None)).collect();
    let mut texts = Vec::new();
    let (mut caption_ids, mut captions) = (Vec::new(), Vec::new());
    for (id, own) in order {
        let listed: Vec<(usize, &&str)> = if with_texts { own.iter().enumerate().rev().collect() } else { own.iter().enumerate().collect() };
        for (c, text) in listed {
            texts.push(vector(id, Some(c)));
            caption_ids.push(id.to_string());
            captions.push(text.to_string());
        }
    }
    let (image_bytes, text_bytes) = (bf16(&images), bf16(&texts));
    let views = vec![
        ("image_embeds", TensorView::new(Dtype::BF16, vec![images.len(), DIM], &image_bytes).unwrap()),
        ("text_embeds", TensorView::new(Dtype::BF16, vec![texts.len(), DIM], &text_bytes).unwrap()),
    ];
    let ids: Vec<&str> = order.iter().map(|(id, _)| *id).collect();
    let mut metadata = HashMap::from([
        ("format".to_string(), "otclip-teacher-v2".to_string()),
        ("encoder".to_string(), "qwen3-vl-embedding (made outside otclip)".to_string()),
        ("image_ids".to_string(), serde_json::to_string(&ids).unwrap()),
        ("caption_image_ids".to_string(), serde_json::to_string(&caption_ids).unwrap()),
    ]);
    if with_texts {
        metadata.insert("captions".into(), serde_json::to_string(&captions).unwrap());
    }
    std::fs::write(path, safetensors::serialize(views, Some(metadata)).unwrap()).unwrap();
}

#[test]
fn an_outside_teacher_attaches_by_id_and_text_after_skips_and_reordering() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path());
    assert_eq!(data.entries.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["a", "b", "d"], "image c is skipped");

    // The file: another order, an image the dataset skipped (c) and one it never had (e); the
    // captions listed last-first and with other spacing.
    let path = dir.path().join("teacher.safetensors");
    let order: [(&str, &[&str]); 5] = [
        ("d", &["chợ  hoa", "nón lá", "bãi biển "]),
        ("e", &["không có"]),
        ("c", &["xe máy"]),
        ("b", &["hai con chó"]),
        ("a", &["một con mèo", "con mèo đang ngủ"]),
    ];
    write_external(&path, &order, true);
    let matched = teacher::load(&path, &data).unwrap();
    for (entry, rows) in data.entries.iter().zip(&matched.rows) {
        assert_eq!(rows.image, unit(&vector(&entry.key, None)), "image {}", entry.key);
        for (c, row) in rows.captions.iter().enumerate() {
            assert_eq!(*row, unit(&vector(&entry.key, Some(c))), "image {} caption {c}", entry.key);
        }
    }
    assert_eq!(matched.unused_images, ["e", "c"]);
    assert_eq!(matched.unused_captions, 2);

    // Without caption texts, captions match by their order within the image.
    write_external(&path, &order, false);
    let matched = teacher::load(&path, &data).unwrap();
    assert_eq!(matched.rows[2].captions[1], unit(&vector("d", Some(1))));

    // An image of the dataset the file lacks, and an image with another number of captions.
    let short: [(&str, &[&str]); 2] = [("d", &["chợ hoa", "nón lá"]), ("b", &["hai con chó"])];
    write_external(&path, &short, false);
    let err = teacher::load(&path, &data).unwrap_err().to_string();
    assert!(err.contains("teacher.safetensors: no teacher row for 1 of the dataset's 3 images (ids a)"), "{err}");
    let short: [(&str, &[&str]); 3] = [("a", &["x", "y"]), ("b", &["z"]), ("d", &["chợ hoa", "nón lá"])];
    write_external(&path, &short, false);
    let err = teacher::load(&path, &data).unwrap_err().to_string();
    assert!(err.contains("no teacher row for 3 captions (matched by order") && err.contains("d: \"bãi biển\""), "{err}");
    // An id twice.
    let twice: [(&str, &[&str]); 2] = [("a", &["x"]), ("a", &["y"])];
    write_external(&path, &twice, true);
    let err = teacher::load(&path, &data).unwrap_err().to_string();
    assert!(err.contains("image id `a` names two image rows (0 and 1)"), "{err}");
}

#[test]
fn otclip_teacher_embeds_a_dataset_with_pretrained_towers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path());
    let spec = format!("jsonl:{}", dir.path().join("pairs.jsonl").display());
    let bert = crate::common::fixture("towers/bert");
    let dinov3 = format!("timm:vit_base_patch16_dinov3@{}", crate::common::fixture("towers/dinov3_timm").display());
    let out = dir.path().join("teacher.safetensors");
    let run = |towers: &[&str]| {
        let mut args = vec!["teacher", "--data", &spec, "--out", out.to_str().unwrap()];
        args.extend_from_slice(towers);
        let (ok, stdout, stderr) = otclip(&args);
        assert!(ok, "otclip teacher {towers:?} failed:\n{stdout}{stderr}");
        teacher::load(&out, &data).unwrap().rows
    };

    // The text tower alone: captions as `otclip embed` embeds them, each image the mean of its captions.
    let rows = run(&["--text-tower", bert.to_str().unwrap()]);
    let texts = dir.path().join("captions.txt");
    let captions: Vec<&str> = data.entries.iter().flat_map(|e| e.captions.iter().map(String::as_str)).collect();
    std::fs::write(&texts, captions.join("\n")).unwrap();
    let embedded = dir.path().join("captions.npy");
    let (ok, _, stderr) = otclip(&["embed", "--text-tower", bert.to_str().unwrap(), "--texts", texts.to_str().unwrap(), "--out", embedded.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let embedded = otclip::npy::read_matrix(&embedded).unwrap();
    let width = embedded.shape[1];
    let caption_rows: Vec<&Vec<f32>> = rows.iter().flat_map(|r| r.captions.iter()).collect();
    for (k, row) in caption_rows.iter().enumerate() {
        let expected: Vec<f32> = unit(&embedded.data[k * width..(k + 1) * width].iter().map(|&v| v as f32).collect::<Vec<_>>());
        let diff = row.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-5, "caption row {k} differs from otclip embed by {diff}");
    }
    let mean: Vec<f32> = (0..width).map(|j| rows[2].captions.iter().map(|c| c[j]).sum::<f32>()).collect();
    let diff = rows[2].image.iter().zip(unit(&mean)).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(diff < 1e-5, "image d is not the mean of its captions: {diff}");

    // The image tower alone: every caption of an image gets the image's row.
    let rows = run(&["--image-tower", &dinov3]);
    assert!(rows.iter().all(|r| r.captions.iter().all(|c| *c == r.image)));
    assert_ne!(rows[0].image, rows[1].image);

    // Both (the fixtures are both 32 wide): the image rows of the one and the caption rows of the other.
    let both = run(&["--image-tower", &dinov3, "--text-tower", bert.to_str().unwrap()]);
    assert_eq!(both[1].image, rows[1].image);
    assert_eq!(both[0].captions[1], *caption_rows[1]);

    // Towers need a dataset.
    let (ok, _, stderr) = otclip(&["teacher", "--text-tower", bert.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(!ok && stderr.contains("need --data SPEC"), "{stderr}");
}
