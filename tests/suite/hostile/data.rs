//! Doctored datasets given to `otclip data check`: duplicate ids in every format that has ids,
//! duplicate JSON keys, symlinks out of the root, decompression bombs and truncated JPEGs.

use std::path::Path;

use serde_json::{json, Value};

use super::{refused, snapshot, succeeded, unchanged};

/// Writes a small noisy RGB image (JPEG or PNG, by extension).
fn write_image(path: &Path, seed: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let image = image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 7 + seed) as u8, (y * 13 + seed * 3) as u8, ((x ^ y) * 5) as u8]));
    image.save(path).unwrap();
}

/// `data check --json SPEC`, asserted to succeed: the report.
fn check(spec: &str) -> Value {
    let (stdout, _) = succeeded(&["data", "check", "--json", spec]);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("data check --json printed no JSON ({e}):\n{stdout}"))
}

/// `data check SPEC`, asserted to be refused with `needles`, the dataset folder unchanged.
fn refuse(root: &Path, spec: &str, needles: &[&str]) {
    let before = snapshot(root);
    refused(&["data", "check", spec], needles);
    unchanged(root, &before);
}

#[test]
fn two_coco_images_with_one_id_are_an_error_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    write_image(&dir.path().join("val2017/1.jpg"), 1);
    write_image(&dir.path().join("val2017/2.jpg"), 2);
    let file = dir.path().join("annotations/captions_val2017.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let coco = json!({
        "images": [{"id": 7, "file_name": "1.jpg"}, {"id": 7, "file_name": "2.jpg"}],
        "annotations": [{"id": 1, "image_id": 7, "caption": "a cat"}, {"id": 2, "image_id": 7, "caption": "a dog"}]
    });
    std::fs::write(&file, coco.to_string()).unwrap();
    refuse(dir.path(), &format!("coco:{}", dir.path().display()), &["captions_val2017.json", "`images[0]`", "`images[1]`", "id 7"]);
}

#[test]
fn two_viclip_ot_images_with_one_id_are_an_error_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    write_image(&dir.path().join("images/a.jpg"), 1);
    write_image(&dir.path().join("images/b.jpg"), 2);
    // A number and a string that spell the same id.
    let file = json!({
        "images": [{"id": 3, "image_path": "images/a.jpg"}, {"id": "3", "image_path": "images/b.jpg"}],
        "annotations": [{"id": 0, "caption": "x", "image_id": 3}]
    });
    std::fs::write(dir.path().join("test.json"), file.to_string()).unwrap();
    refuse(dir.path(), &format!("viclip-ot:{}?split=test", dir.path().display()), &["test.json", "`images[0]`", "`images[1]`", "id 3"]);
}

#[test]
fn two_karpathy_entries_with_one_imgid_are_an_error_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    write_image(&dir.path().join("images/a.jpg"), 1);
    write_image(&dir.path().join("images/b.jpg"), 2);
    let entry = |name: &str, caption: &str| json!({"filename": name, "imgid": 5, "split": "test", "sentences": [{"raw": caption, "tokens": []}]});
    let file = json!({"images": [entry("a.jpg", "a red car"), entry("b.jpg", "a blue boat")]});
    std::fs::write(dir.path().join("dataset_flickr8k.json"), file.to_string()).unwrap();
    refuse(dir.path(), &format!("karpathy:{}?split=test", dir.path().display()), &["dataset_flickr8k.json", "`images[0]` (a.jpg)", "`images[1]` (b.jpg)", "imgid 5"]);
}

#[test]
fn a_duplicate_json_key_in_a_uit_file_is_an_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    write_image(&dir.path().join("images/00000000001.jpg"), 1);
    let text = r#"{"00000000001.jpg": {"captions": ["một con mèo"]}, "00000000001.jpg": {"captions": ["một con chó"]}}"#;
    std::fs::write(dir.path().join("uit-openviic-annotation-test.json"), text).unwrap();
    refuse(dir.path(), &format!("uit-openviic:{}?split=test", dir.path().display()), &["uit-openviic-annotation-test.json", "`00000000001.jpg` appears twice"]);
}

#[test]
fn one_csv_image_id_naming_two_files_is_an_error_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    write_image(&dir.path().join("images/x.jpg"), 1);
    write_image(&dir.path().join("images/y.jpg"), 2);
    std::fs::write(dir.path().join("pairs.csv"), "image,caption,image_id\nimages/x.jpg,a cat,1\nimages/y.jpg,a dog,1\nimages/x.jpg,a kitten,1\n").unwrap();
    refuse(dir.path(), &format!("csv:{}", dir.path().join("pairs.csv").display()), &["image id `1`", "x.jpg", "y.jpg"]);
    // Several captions of one file under one id are the usual layout, and read.
    std::fs::write(dir.path().join("ok.csv"), "image,caption,image_id\nimages/x.jpg,a cat,1\nimages/x.jpg,a kitten,1\n").unwrap();
    let report = check(&format!("csv:{}", dir.path().join("ok.csv").display()));
    assert_eq!((report["images"].as_u64(), report["captions"].as_u64()), (Some(1), Some(2)), "{report}");
}

#[cfg(unix)]
#[test]
fn a_symlink_out_of_the_image_folder_is_refused_but_a_symlinked_folder_works() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("secret/photo.jpg");
    write_image(&outside, 9);
    let data = dir.path().join("data");
    write_image(&data.join("images/a.jpg"), 1);
    std::os::unix::fs::symlink(&outside, data.join("images/escape.jpg")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret"), data.join("images/sub")).unwrap();
    std::fs::write(data.join("pairs.csv"), "image,caption\nimages/a.jpg,a cat\nimages/escape.jpg,a secret\nimages/sub/photo.jpg,another secret\n").unwrap();
    let report = check(&format!("csv:{}", data.join("pairs.csv").display()));
    assert_eq!(report["images"].as_u64(), Some(1), "{report}");
    assert_eq!(report["skipped"]["unsafe_path"].as_u64(), Some(2), "{report}");
    // The image folder itself (here `images=`) may be a symlink: a dataset on another disk.
    let linked = dir.path().join("linked");
    std::fs::create_dir_all(&linked).unwrap();
    std::os::unix::fs::symlink(data.join("images"), linked.join("images")).unwrap();
    std::fs::write(linked.join("pairs.csv"), "image,caption\na.jpg,a cat\n").unwrap();
    let report = check(&format!("csv:{}?images=images", linked.join("pairs.csv").display()));
    assert_eq!((report["images"].as_u64(), report["skipped"]["unsafe_path"].as_u64()), (Some(1), None), "{report}");
}

/// The CRC-32 of PNG chunks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A valid PNG whose header declares `width` × `height` (its data is that of a 1 × 1 image).
fn png_bomb(path: &Path, width: u32, height: u32) {
    let mut small = Vec::new();
    image::GrayImage::new(1, 1).write_to(&mut std::io::Cursor::new(&mut small), image::ImageFormat::Png).unwrap();
    // The IHDR chunk starts at byte 8: length (4), "IHDR" (4), width, height, 5 more bytes, CRC.
    small[16..20].copy_from_slice(&width.to_be_bytes());
    small[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&small[12..29]);
    small[29..33].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(path, small).unwrap();
}

#[test]
fn a_decompression_bomb_is_skipped_as_too_large_and_the_limit_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    write_image(&dir.path().join("images/a.jpg"), 1);
    png_bomb(&dir.path().join("images/bomb.png"), 23000, 23000);
    std::fs::write(dir.path().join("pairs.csv"), "image,caption\nimages/a.jpg,a cat\nimages/bomb.png,a bomb\n").unwrap();
    let csv = dir.path().join("pairs.csv");
    let report = check(&format!("csv:{}", csv.display()));
    assert_eq!(report["images"].as_u64(), Some(1), "{report}");
    assert_eq!(report["skipped"]["image_too_large"].as_u64(), Some(1), "{report}");
    let detail = report["skipped_items"].to_string();
    assert!(detail.contains("23000 × 23000"), "{detail}");
    // A lower limit skips the ordinary image too; a limit that is not a number is refused.
    let report = check(&format!("csv:{}?max_pixels=100", csv.display()));
    assert_eq!((report["images"].as_u64(), report["skipped"]["image_too_large"].as_u64()), (Some(0), Some(2)), "{report}");
    refused(&["data", "check", &format!("csv:{}?max_pixels=lots", csv.display())], &["max_pixels=lots", "expected a whole number"]);
}

#[test]
fn a_truncated_jpeg_is_labelled_truncated_not_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    write_image(&dir.path().join("images/a.jpg"), 1);
    // A photo-sized JPEG cut in its pixel data, well after the headers.
    let cut = dir.path().join("images/cut.jpg");
    image::RgbImage::from_fn(256, 256, |x, y| image::Rgb([(x * y % 251) as u8, (x * 31 % 253) as u8, (y * 17 % 241) as u8])).save(&cut).unwrap();
    let bytes = std::fs::read(&cut).unwrap();
    assert!(bytes.len() > 8000, "the JPEG is {} bytes", bytes.len());
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let garbage = dir.path().join("images/garbage.jpg");
    std::fs::write(&garbage, b"\xff\xd8\xff\xe0 this is not a JPEG at all, just text pretending").unwrap();
    std::fs::write(dir.path().join("pairs.csv"), "image,caption\nimages/a.jpg,a cat\nimages/cut.jpg,cut\nimages/garbage.jpg,junk\n").unwrap();
    let report = check(&format!("csv:{}", dir.path().join("pairs.csv").display()));
    assert_eq!(report["skipped"]["truncated_image"].as_u64(), Some(1), "{report}");
    assert_eq!(report["skipped"]["corrupt_image"].as_u64(), Some(1), "{report}");
    let items = report["skipped_items"].as_array().unwrap();
    let truncated = items.iter().find(|i| i["reason"] == "truncated_image").unwrap();
    assert!(truncated["item"].as_str().unwrap().ends_with("cut.jpg"), "{report}");
}
