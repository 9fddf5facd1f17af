//! Reading a YAML sub-section key by key, and the paths that name a field in messages.

use serde_yaml::Value;

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
                for (k, v) in entries {
                    if !Self::KEYS.contains(&k) {
                        return Err(unknown_key(at, k, Self::KEYS));
                    }
                    self.set(k, v, at)?;
                }
            }
        }
        Ok(())
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
