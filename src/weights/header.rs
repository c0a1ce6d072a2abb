//! The header of a safetensors file, checked against the file before any tensor is read: the
//! header length, each tensor's dtype, and that its shape fits its byte range and the range fits
//! the file. A doctored or truncated file is an error naming the file and the tensor.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

/// The largest header accepted (the `safetensors` crate's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// One tensor's entry in the header.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TensorEntry {
    pub dtype: String,
    pub shape: Vec<u64>,
    pub data_offsets: [u64; 2],
}

/// Bytes per element of a safetensors dtype.
fn dtype_bytes(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F64" | "I64" | "U64" => 8,
        "F32" | "I32" | "U32" => 4,
        "F16" | "BF16" | "I16" | "U16" => 2,
        "I8" | "U8" | "BOOL" | "F8_E4M3" | "F8_E5M2" => 1,
        _ => return None,
    })
}

/// Reads and checks the header of the safetensors file at `path`: the tensors by key.
pub fn check_safetensors(path: &Path) -> Result<BTreeMap<String, TensorEntry>> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let file_len = file.metadata().with_context(|| format!("cannot read the size of {}", path.display()))?.len();
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix)
        .map_err(|_| anyhow!("{}: truncated: {file_len} bytes, too short for a safetensors header", path.display()))?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > MAX_HEADER_BYTES || header_len > file_len - 8 {
        bail!("{}: the header declares {header_len} bytes, but the file has {} after the length; truncated or not a safetensors file", path.display(), file_len - 8);
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).with_context(|| format!("cannot read the header of {}", path.display()))?;
    let mut entries: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| anyhow!("{}: the safetensors header is not a JSON object: {e}", path.display()))?;
    entries.remove("__metadata__");
    let data_len = file_len - 8 - header_len;
    let mut tensors = BTreeMap::new();
    for (key, value) in entries {
        let entry: TensorEntry =
            serde_json::from_value(value).map_err(|e| anyhow!("{}: tensor `{key}`: {e}; expected dtype, shape and data_offsets", path.display()))?;
        let Some(width) = dtype_bytes(&entry.dtype) else {
            bail!("{}: tensor `{key}` has dtype {}; expected a safetensors dtype such as F32", path.display(), entry.dtype);
        };
        let elements = entry.shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
        let bytes = elements.and_then(|n| n.checked_mul(width));
        let [start, end] = entry.data_offsets;
        match bytes {
            Some(bytes) if start <= end && end - start == bytes && end <= data_len => {}
            _ => bail!(
                "{}: tensor `{key}`: shape {:?} of {} needs {} bytes, but its data_offsets are [{start}, {end}] of {data_len} data bytes; the file is truncated or doctored",
                path.display(),
                entry.shape,
                entry.dtype,
                bytes.map_or("more than 2^64".to_string(), |b| b.to_string()),
            ),
        }
        tensors.insert(key, entry);
    }
    Ok(tensors)
}
