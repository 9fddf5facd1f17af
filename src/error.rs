//! The configuration error type.

use std::fmt;

/// A configuration problem: unreadable file, invalid YAML, unknown key, wrong type or invalid value.
///
/// `Display` gives the whole message, starting with the path of the offending field, e.g.
/// `notifications.endpoints[0] ("alistener"): unknown key "timout" (did you mean "timeout"?)` or
/// `notifications.endpoints[1] ("b").retry.maxattempts must be > 0`.
///
/// Messages never contain header values or URL credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    origin: String,
    path: String,
    message: String,
    joined: bool,
}

impl ConfigError {
    /// An error with a message and no field path.
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError {
            origin: String::new(),
            path: String::new(),
            message: message.into(),
            joined: false,
        }
    }

    /// `"{path}: {message}"`.
    pub(crate) fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            origin: String::new(),
            path: path.into(),
            message: message.into(),
            joined: false,
        }
    }

    /// `"{path} {message}"`, for messages such as `must be > 0`.
    pub(crate) fn field(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            origin: String::new(),
            path: path.into(),
            message: message.into(),
            joined: true,
        }
    }

    /// The path of the offending field (`notifications.endpoints[1] ("b").retry.maxattempts`), or
    /// `""` when the error is not about one field (unreadable file, YAML syntax).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The message without the path.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where the bad value came from: the file given to
    /// [`Config::from_path`](crate::config::Config::from_path), `environment variable REGISTRY_…` for
    /// [`Config::apply_env`](crate::config::Config::apply_env), or `""`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Sets [`origin`](Self::origin), shown first: `config.yml: notifications…`.
    pub(crate) fn with_origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = origin.into();
        self
    }

    /// Puts `prefix` in front of the path (`prefix.path`, or `prefix: message` without a path).
    pub(crate) fn within(mut self, prefix: &str) -> Self {
        if prefix.is_empty() {
            return self;
        }
        if self.path.is_empty() {
            self.path = prefix.to_owned();
            self.joined = false;
        } else {
            self.path = format!("{prefix}.{}", self.path);
        }
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.origin.is_empty() {
            write!(f, "{}: ", self.origin)?;
        }
        match (self.path.is_empty(), self.joined) {
            (true, _) => f.write_str(&self.message),
            (false, true) => write!(f, "{} {}", self.path, self.message),
            (false, false) => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_forms() {
        assert_eq!(ConfigError::new("boom").to_string(), "boom");
        assert_eq!(
            ConfigError::at("a.b", "unknown key \"c\"").to_string(),
            "a.b: unknown key \"c\""
        );
        assert_eq!(
            ConfigError::field("a.b", "must be > 0").to_string(),
            "a.b must be > 0"
        );
        let e = ConfigError::field("ca", "must be set").within("tls");
        assert_eq!((e.path(), e.message()), ("tls.ca", "must be set"));
        assert_eq!(e.to_string(), "tls.ca must be set");
        assert_eq!(
            ConfigError::new("x").within("endpoint \"a\"").to_string(),
            "endpoint \"a\": x"
        );
        let e = ConfigError::field("a.b", "must be > 0").with_origin("/etc/config.yml");
        assert_eq!(e.to_string(), "/etc/config.yml: a.b must be > 0");
        assert_eq!((e.origin(), e.path()), ("/etc/config.yml", "a.b"));
    }
}
