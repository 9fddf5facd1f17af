//! Reading a YAML sub-section key by key, and the paths that name a field in messages.

use yaml_serde::Value;

use super::value::{mapping, unknown_key, Path};
use super::ConfigError;

type Result<T> = std::result::Result<T, ConfigError>;

/// A sub-section read key by key. `apply` merges a mapping into `self`; null resets it.
pub(crate) trait Section: Default {
    const KEYS: &'static [&'static str];

    /// Sets one known key.
    fn set(&mut self, key: &str, v: &Value, at: &Path) -> Result<()>;

    fn apply(&mut self, v: &Value, at: &Path) -> Result<()> {
        match mapping(v, at)? {
            None => *self = Self::default(),
            Some(entries) => {
                for &(k, v) in &entries {
                    if !Self::KEYS.contains(&k) {
                        return Err(unknown_key(at, k, Self::KEYS));
                    }
                    self.set(k, v, at)?;
                }
                self.finish(&entries, at)?;
            }
        }
        Ok(())
    }

    /// Checks across the keys of a mapping once each was set (`entries` as given).
    fn finish(&mut self, _entries: &[(&str, &Value)], _at: &Path) -> Result<()> {
        Ok(())
    }
}

/// An error for the first of `keys` that `entries` sets (not null): it only applies when
/// `why` says.
pub(crate) fn only_applies(entries: &[(&str, &Value)], keys: &[&str], at: &Path, why: &str) -> Result<()> {
    match entries.iter().find(|(k, v)| keys.contains(k) && !v.is_null()) {
        Some((k, _)) => Err(ConfigError::field(
            at.key(k).as_str(),
            format!("only applies {why}"),
        )),
        None => Ok(()),
    }
}

/// The path of endpoint `index` in messages: `notifications.endpoints[0] ("alistener")`.
pub(crate) fn endpoint_path(index: usize, name: &str) -> Path {
    if name.is_empty() {
        Path::new(format!("notifications.endpoints[{index}]"))
    } else {
        Path::new(format!("notifications.endpoints[{index}] ({name:?})"))
    }
}
