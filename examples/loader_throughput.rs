//! Images per second through the loading pipeline (decode JPEG → transform → normalise) at 224 px.
//! `cargo run --release --example loader_throughput -- [--workers 2] [--images 256] [--spec SPEC]`
//! Without `--spec` it writes 640×480 photo-like JPEGs to a temporary folder and reads them back
//! as a CSV dataset.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use image::{Rgb, RgbImage};
use otclip::data::loader::{Loader, LoaderConfig};
use otclip::data::transform::TrainTransform;
use otclip::data::{Batcher, DatasetSpec, ImageNormalization};
use otclip::text::CaptionTokenizer;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 2)]
    workers: usize,
    #[arg(long, default_value_t = 256)]
    images: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// A dataset spec to read instead of generated JPEGs.
    #[arg(long)]
    spec: Option<DatasetSpec>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let spec = match args.spec.clone() {
        Some(spec) => spec.with_option("verify", "exists"),
        None => {
            let mut rows = vec!["image,caption".to_string()];
            for i in 0..args.images {
                let image = RgbImage::from_fn(640, 480, |x, y| {
                    let v = (x * 7 + y * 3 + i as u32 * 31) ^ (x * y / 97);
                    Rgb([(v % 251) as u8, ((x + i as u32) % 256) as u8, (y % 256) as u8])
                });
                image.save(dir.path().join(format!("{i}.jpg")))?;
                rows.push(format!("{i}.jpg,image number {i}"));
            }
            std::fs::write(dir.path().join("pairs.csv"), rows.join("\n"))?;
            DatasetSpec::parse(&format!("csv:{}?verify=exists", dir.path().join("pairs.csv").display()))?
        }
    };
    let dataset = Arc::new(spec.open()?.to_captioned());
    let tokenizer = CaptionTokenizer::train(dataset.entries.iter().flat_map(|e| e.captions.iter()), 100, 16)?;
    let batcher = Batcher { tokenizer, image_size: 224, normalization: ImageNormalization::CLIP, interpolation: Default::default() };
    let pairs: Vec<(usize, usize)> = (0..dataset.entries.len()).map(|i| (i, 0)).collect();
    let batches: Vec<Vec<(usize, usize)>> = pairs.chunks(args.batch_size).map(<[_]>::to_vec).collect();
    for (name, augment) in [("eval (resize 256, crop 224)", None), ("train (ViCLIP-OT augmentations)", Some((TrainTransform::new(), 1)))] {
        let started = Instant::now();
        let config = LoaderConfig { workers: args.workers, prefetch: 4, augment, skip: 0, shard: None };
        let images: usize = Loader::spawn(batcher.clone(), dataset.clone(), batches.clone(), config)?.map(|b| b.pairs.len()).sum();
        let seconds = started.elapsed().as_secs_f64();
        println!("{name}: {images} images in {seconds:.2}s = {:.0} images/s on {} workers", images as f64 / seconds, args.workers);
    }
    Ok(())
}
