//! NumPy `.npy` arrays in and out (f32 or f64), for `otclip ot solve` and fixtures.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::{bail, Context, Result};
use npyz::WriterBuilder;

/// A dense array read from a `.npy` file, widened to f64.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

/// Reads a little-endian f32 or f64 `.npy` file of any shape (C order).
pub fn read(path: &Path) -> Result<NpyArray> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let npy = npyz::NpyFile::new(BufReader::new(file)).with_context(|| format!("{} is not a .npy file", path.display()))?;
    if npy.order() != npyz::Order::C {
        bail!("{}: Fortran-ordered arrays are not supported; save with np.ascontiguousarray", path.display());
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let descr = npy.dtype().descr();
    let data: Vec<f64> = match descr.trim_matches('\'') {
        "<f8" => npy.into_vec::<f64>()?,
        "<f4" => npy.into_vec::<f32>()?.into_iter().map(f64::from).collect(),
        other => bail!("{}: dtype {other} is not supported; expected float32 or float64", path.display()),
    };
    Ok(NpyArray { shape, data })
}

/// Reads a 2-D array, naming the file when it is not one.
pub fn read_matrix(path: &Path) -> Result<NpyArray> {
    let array = read(path)?;
    if array.shape.len() != 2 {
        bail!("{}: expected a 2-D array, found shape {:?}", path.display(), array.shape);
    }
    Ok(array)
}

/// Writes a C-ordered f64 array.
pub fn write_f64(path: &Path, shape: &[usize], data: &[f64]) -> Result<()> {
    write(path, shape, data)
}

/// Writes a C-ordered f32 array.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    write(path, shape, data)
}

fn write<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[usize], data: &[T]) -> Result<()> {
    let mut file = File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut writer = npyz::WriteOptions::new().default_dtype().shape(&shape).writer(&mut file).begin_nd()?;
    writer.extend(data.iter().copied())?;
    writer.finish()?;
    Ok(())
}
