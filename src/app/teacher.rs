//! `otclip teacher`: embed a split with a trained run and write a SIGROT teacher file.

use std::path::PathBuf;

use anyhow::Result;
use burn::prelude::Backend;
use otclip_kernels::SinkhornBackend;

use super::eval::embed_run_split;
use crate::backend::{dispatch_inference, DeviceSpec, InferenceTask};
use crate::data::{teacher, Split, TeacherRows};

pub struct TeacherTask {
    pub run_dir: PathBuf,
    pub checkpoint: String,
    pub split: Split,
    pub out: PathBuf,
}

impl InferenceTask for TeacherTask {
    /// The number of images written.
    type Output = usize;
    fn run<B: Backend + SinkhornBackend>(self, device: B::Device) -> Result<usize> {
        let (_, dataset, e) = embed_run_split::<B>(&self.run_dir, &self.checkpoint, self.split, None, &device)?;
        let mut captions = e.texts.chunks(e.dim);
        let rows: Vec<TeacherRows> = dataset
            .entries
            .iter()
            .zip(e.images.chunks(e.dim))
            .map(|(entry, image)| TeacherRows {
                image: image.to_vec(),
                captions: captions.by_ref().take(entry.captions.len()).map(<[f32]>::to_vec).collect(),
            })
            .collect();
        let encoder = format!("otclip:{}@{}", self.checkpoint, self.run_dir.display());
        teacher::save(&self.out, &dataset, &rows, &encoder)?;
        Ok(rows.len())
    }
}

impl TeacherTask {
    pub fn run_on(self, spec: DeviceSpec) -> Result<usize> {
        dispatch_inference(spec, false, self)
    }
}
