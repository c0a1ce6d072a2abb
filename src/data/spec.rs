//! Dataset spec strings, `FORMAT:PATH[?key=value&...]`, used in configs and on the command line:
//! `ktvic:/data/ktvic?split=test`, `xm3600:/data/xm3600?lang=vi&captions=all`, `synthetic`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{bail, Result};

use super::dataset::Verify;
use super::format::Format;

/// Keys every format accepts.
const COMMON_KEYS: [&str; 6] = ["split", "lang", "captions", "images", "verify", "exclude"];

/// A parsed dataset spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSpec {
    pub format: Format,
    /// The dataset folder or its annotation file (empty for `synthetic`).
    pub path: PathBuf,
    pub options: BTreeMap<String, String>,
}

impl FromStr for DatasetSpec {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> Result<Self> {
        DatasetSpec::parse(text)
    }
}

impl DatasetSpec {
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let (head, query) = match text.rsplit_once('?') {
            Some((head, query)) => (head, Some(query)),
            None => (text, None),
        };
        let (format, path) = match head.split_once(':') {
            Some((format, path)) => (format, path),
            None => (head, ""),
        };
        let format: Format = format.parse().map_err(|e| anyhow::anyhow!("dataset spec `{text}`: {e}"))?;
        if format != Format::Synthetic && path.is_empty() {
            bail!("dataset spec `{text}`: expected FORMAT:PATH[?key=value&...], with the dataset folder or annotation file as PATH");
        }
        let mut options = BTreeMap::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let Some((key, value)) = pair.split_once('=') else {
                bail!("dataset spec `{text}`: `{pair}` is not key=value");
            };
            let key = key.trim();
            if !COMMON_KEYS.contains(&key) && !format.own_keys().contains(&key) {
                let mut allowed: Vec<&str> = COMMON_KEYS.to_vec();
                allowed.extend(format.own_keys());
                bail!("dataset spec `{text}`: unknown key `{key}` for {format}; expected one of {}", allowed.join(", "));
            }
            if options.insert(key.to_string(), value.trim().to_string()).is_some() {
                bail!("dataset spec `{text}`: key `{key}` given twice");
            }
        }
        let spec = DatasetSpec { format, path: PathBuf::from(path), options };
        if let Some(mode) = spec.get("captions") {
            if mode != "first" && mode != "all" {
                bail!("dataset spec `{text}`: captions={mode}; expected `first` or `all`");
            }
        }
        if let Some(verify) = spec.get("verify") {
            if verify != "decode" && verify != "exists" {
                bail!("dataset spec `{text}`: verify={verify}; expected `decode` or `exists`");
            }
        }
        Ok(spec)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    /// The same spec with `split` set, unless the spec already names one.
    pub fn with_default_split(&self, split: &str) -> Self {
        let mut spec = self.clone();
        spec.options.entry("split".into()).or_insert_with(|| split.to_string());
        spec
    }

    pub fn with_option(&self, key: &str, value: &str) -> Self {
        let mut spec = self.clone();
        spec.options.insert(key.into(), value.into());
        spec
    }

    /// How images are checked when the dataset opens (`verify=decode`, the default, or `exists`).
    pub fn verify(&self) -> Verify {
        match self.get("verify") {
            Some("exists") => Verify::Exists,
            _ => Verify::Decode,
        }
    }
}

impl fmt::Display for DatasetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.format)?;
        if !self.path.as_os_str().is_empty() {
            write!(f, ":{}", self.path.display())?;
        }
        let pairs: Vec<String> = self.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !pairs.is_empty() {
            write!(f, "?{}", pairs.join("&"))?;
        }
        Ok(())
    }
}
