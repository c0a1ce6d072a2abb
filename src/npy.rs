//! NumPy `.npy` arrays in and out (f32 or f64), for `otclip ot solve` and fixtures.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{bail, Context, Result};
use npyz::WriterBuilder;

/// A dense array read from a `.npy` file, widened to f64.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

/// Reads a little-endian f32 or f64 `.npy` file of any shape (C order). The shape in the header
/// is checked against the file's size before anything is allocated for the data.
pub fn read(path: &Path) -> Result<NpyArray> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let file_len = file.metadata().with_context(|| format!("cannot read the size of {}", path.display()))?.len();
    let data_start = check_header_length(path, &file, file_len)?;
    let npy = npyz::NpyFile::new(BufReader::new(file)).with_context(|| format!("{} is not a .npy file", path.display()))?;
    if npy.order() != npyz::Order::C {
        bail!("{}: Fortran-ordered arrays are not supported; save with np.ascontiguousarray", path.display());
    }
    let descr = npy.dtype().descr();
    let descr = descr.trim_matches('\'');
    let width: u64 = match descr {
        "<f8" => 8,
        "<f4" => 4,
        other => bail!("{}: dtype {other} is not supported; expected float32 or float64", path.display()),
    };
    let elements = npy.shape().iter().try_fold(1u64, |n, &d| n.checked_mul(d));
    let bytes = elements.and_then(|n| n.checked_mul(width));
    if !bytes.is_some_and(|b| b <= file_len - data_start) {
        bail!(
            "{}: the header declares shape {:?} ({} bytes of data), but the file has {} after its header; truncated or not a valid .npy",
            path.display(),
            npy.shape(),
            bytes.map_or("more than 2^64".into(), |b| b.to_string()),
            file_len - data_start
        );
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let data: Vec<f64> = match width {
        8 => npy.into_vec::<f64>(),
        _ => npy.into_vec::<f32>().map(|v| v.into_iter().map(f64::from).collect()),
    }
    .with_context(|| format!("cannot read the data of {} (truncated?)", path.display()))?;
    Ok(NpyArray { shape, data })
}

/// Where the data starts: an error unless the header length the preamble declares fits in the
/// file (npyz allocates it).
fn check_header_length(path: &Path, mut file: &File, file_len: u64) -> Result<u64> {
    let mut preamble = [0u8; 12];
    let read = file.read(&mut preamble).with_context(|| format!("cannot read {}", path.display()))?;
    file.seek(SeekFrom::Start(0)).with_context(|| format!("cannot read {}", path.display()))?;
    if read < 10 || &preamble[..6] != b"\x93NUMPY" {
        bail!("{} is not a .npy file (no \\x93NUMPY preamble)", path.display());
    }
    let (header_len, preamble_len) = match preamble[6] {
        1 => (u16::from_le_bytes([preamble[8], preamble[9]]) as u64, 10),
        _ if read == 12 => (u32::from_le_bytes([preamble[8], preamble[9], preamble[10], preamble[11]]) as u64, 12),
        _ => bail!("{}: truncated .npy preamble", path.display()),
    };
    if preamble_len + header_len > file_len {
        bail!("{}: the header declares {header_len} bytes, but the file has {file_len}; truncated or not a .npy file", path.display());
    }
    let mut header = vec![0u8; header_len as usize];
    file.seek(SeekFrom::Start(preamble_len)).and_then(|_| file.read_exact(&mut header)).with_context(|| format!("cannot read the header of {}", path.display()))?;
    file.seek(SeekFrom::Start(0)).with_context(|| format!("cannot read {}", path.display()))?;
    let data_bytes = file_len - preamble_len - header_len;
    let header = String::from_utf8_lossy(&header);
    let Some(shape) = header_shape(&header) else {
        bail!("{}: the header has no readable `shape`", path.display());
    };
    let elements = shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
    // The narrowest dtype read is f4; a wider one is checked again once npyz names it.
    if !elements.and_then(|n| n.checked_mul(4)).is_some_and(|b| b <= data_bytes) {
        bail!(
            "{}: the header declares shape {shape:?} ({} elements), but the file has {data_bytes} bytes after its header; truncated or not a valid .npy",
            path.display(),
            elements.map_or("more than 2^64".into(), |n| n.to_string())
        );
    }
    Ok(preamble_len + header_len)
}

/// The `shape` tuple of a `.npy` header dict (`'shape': (2, 3)`), if it reads as one.
fn header_shape(header: &str) -> Option<Vec<u64>> {
    let at = header.find("'shape'").or_else(|| header.find("\"shape\""))?;
    let rest = &header[at..];
    let (open, close) = (rest.find('(')?, rest.find(')')?);
    let inner = rest.get(open + 1..close)?;
    inner.split(',').map(str::trim).filter(|d| !d.is_empty()).map(|d| d.trim_end_matches('L').parse().ok()).collect()
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
    let context = || format!("cannot write {}", path.display());
    let mut file = File::create(path).with_context(context)?;
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut writer = npyz::WriteOptions::new().default_dtype().shape(&shape).writer(&mut file).begin_nd().with_context(context)?;
    writer.extend(data.iter().copied()).with_context(context)?;
    writer.finish().with_context(context)?;
    file.sync_all().with_context(context)?;
    Ok(())
}
