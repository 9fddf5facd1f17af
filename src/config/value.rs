//! Typed reads out of a `yaml_serde::Value`, with Distribution's (Go yaml.v2) leniency and errors that
//! name the field. No function here ever puts a *value* in an error message unless the caller says the
//! value is not secret (enumerations, durations).

use yaml_serde::{Mapping, Value};

use super::duration::parse_go_duration;
use super::ConfigError;

type Result<T> = std::result::Result<T, ConfigError>;

/// A dotted field path used in error messages: `notifications.endpoints[0] ("a").retry`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Path(String);

impl Path {
    pub(crate) fn new(s: impl Into<String>) -> Self {
        Path(s.into())
    }

    pub(crate) fn key(&self, key: &str) -> Path {
        if self.0.is_empty() {
            Path(key.to_owned())
        } else {
            Path(format!("{}.{key}", self.0))
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// "a string", "a list", … for type errors.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a floating-point number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

pub(crate) fn type_error(path: &Path, expected: &str, found: &Value) -> ConfigError {
    if let Value::Tagged(t) = found {
        // A tag is shown only when it is a plain name: `!https://user:password@host` is a value
        // written with a `!` by mistake, and may hold a secret.
        let tag = t.tag.to_string();
        let plain = tag.len() <= 33
            && tag.strip_prefix('!').is_some_and(|n| {
                !n.is_empty()
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            });
        let found = if plain {
            format!("a value tagged {tag}")
        } else {
            "a tagged value".to_owned()
        };
        return ConfigError::at(path.as_str(), format!("expected {expected}, found {found}"));
    }
    ConfigError::at(
        path.as_str(),
        format!("expected {expected}, found {}", kind(found)),
    )
}

/// The entries of a mapping whose keys are all strings; `None` for null.
pub(crate) fn mapping<'a>(v: &'a Value, path: &Path) -> Result<Option<Vec<(&'a str, &'a Value)>>> {
    match v {
        Value::Null => Ok(None),
        Value::Mapping(m) => entries(m, path).map(Some),
        other => Err(type_error(path, "a mapping", other)),
    }
}

pub(crate) fn entries<'a>(m: &'a Mapping, path: &Path) -> Result<Vec<(&'a str, &'a Value)>> {
    m.iter()
        .map(|(k, v)| match k {
            Value::String(k) => Ok((k.as_str(), v)),
            other if path.as_str().is_empty() => Err(ConfigError::new(format!(
                "top-level keys must be strings, found {}",
                kind(other)
            ))),
            other => Err(ConfigError::at(
                path.as_str(),
                format!("keys must be strings, found {}", kind(other)),
            )),
        })
        .collect()
}

/// `unknown key "timout" (did you mean "timeout"?)`.
pub(crate) fn unknown_key(path: &Path, key: &str, known: &[&str]) -> ConfigError {
    let mut msg = format!("unknown key {key:?}");
    let lower = key.to_ascii_lowercase();
    let best = known
        .iter()
        .map(|k| (edit_distance(&lower, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4) || common_prefix(&lower, k) >= 4)
        .min_by_key(|(d, _)| *d);
    if let Some((_, k)) = best {
        msg.push_str(&format!(" (did you mean {k:?}?)"));
    } else {
        msg.push_str(&format!(" (expected one of: {})", known.join(", ")));
    }
    ConfigError::at(path.as_str(), msg)
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A scalar as text, like Go yaml.v2 decoding a scalar into a `string`. Null gives `""`.
pub(crate) fn string(v: &Value, path: &Path) -> Result<String> {
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(type_error(path, "a string", other)),
    }
}

/// A boolean; YAML 1.1 spellings (`yes`, `on`, `n`, …) are accepted as Go yaml.v2 does. Null gives `false`.
pub(crate) fn boolean(v: &Value, path: &Path) -> Result<bool> {
    match v {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.as_str() {
            "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => Ok(true),
            "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => Ok(false),
            _ => Err(type_error(path, "a boolean (true or false)", v)),
        },
        other => Err(type_error(path, "a boolean (true or false)", other)),
    }
}

/// A signed integer. Null gives 0.
pub(crate) fn integer(v: &Value, path: &Path) -> Result<i64> {
    match v {
        Value::Null => Ok(0),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if n.is_u64() {
                Err(ConfigError::field(
                    path.as_str(),
                    format!("is too large (at most {})", i64::MAX),
                ))
            } else {
                Err(type_error(path, "an integer", v))
            }
        }
        other => Err(type_error(path, "an integer", other)),
    }
}

/// A non-negative integer no larger than `max`. Null gives 0.
pub(crate) fn unsigned(v: &Value, path: &Path, max: u64) -> Result<u64> {
    if let Value::Number(n) = v {
        if let Some(u) = n.as_u64() {
            return if u > max {
                Err(ConfigError::field(
                    path.as_str(),
                    format!("is too large (at most {max})"),
                ))
            } else {
                Ok(u)
            };
        }
        if n.as_i64().is_some() {
            return Err(ConfigError::field(path.as_str(), "must not be negative"));
        }
    }
    integer(v, path).map(|i| i as u64)
}

/// A finite floating-point number (integers accepted). `None` for null.
pub(crate) fn float(v: &Value, path: &Path) -> Result<Option<f64>> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.is_finite() => Ok(Some(f)),
            _ => Err(ConfigError::field(path.as_str(), "must be a finite number")),
        },
        other => Err(type_error(path, "a number", other)),
    }
}

/// A list of scalars as strings; a single scalar is a one-element list; null is empty.
pub(crate) fn string_list(v: &Value, path: &Path) -> Result<Vec<String>> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Null => Err(type_error(
                    &Path::new(format!("{}[{i}]", path.as_str())),
                    "a string",
                    item,
                )),
                _ => string(item, &Path::new(format!("{}[{i}]", path.as_str()))),
            })
            .collect(),
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(vec![string(v, path)?]),
        other => Err(type_error(path, "a list of strings", other)),
    }
}

/// A Go duration in signed nanoseconds, read like Distribution does (Go yaml.v2 into a
/// `time.Duration`) except that a bare number other than 0 is an error: Go reads `timeout: 500` as
/// 500 *nanoseconds*, which is never what the operator meant (SUSE/Portus#905). Null gives 0.
pub(crate) fn go_duration(v: &Value, path: &Path) -> Result<i64> {
    match v {
        Value::Null => Ok(0),
        Value::String(s) => parse_go_duration(s).map_err(|e| {
            let mut msg = e.to_string();
            if e.is_missing_unit() {
                msg.push_str("; durations need a unit: ns, us, ms, s, m or h (e.g. \"500ms\", \"1m30s\")");
            } else {
                msg.push_str(" (expected a Go duration such as \"500ms\", \"1s\", \"1m30s\", \"2h\")");
            }
            ConfigError::at(path.as_str(), msg)
        }),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Ok(0),
            Some(i) => Err(ConfigError::at(
                path.as_str(),
                format!(
                    "a bare number is not accepted as a duration: Distribution reads {i} as {i} nanoseconds, \
                     which is almost certainly not what was meant (see SUSE/Portus#905); write the unit, \
                     e.g. \"{i}ms\" or \"{i}s\" (or \"{i}ns\" if nanoseconds really are meant)"
                ),
            )),
            None if n.as_f64() == Some(0.0) => Ok(0),
            None => Err(ConfigError::at(
                path.as_str(),
                format!(
                    "a bare number is not accepted as a duration ({n}); write a Go duration with a unit, \
                     e.g. \"1.5s\" or \"500ms\""
                ),
            )),
        },
        other => Err(type_error(path, "a duration string such as \"1s\"", other)),
    }
}

/// A scalar as written, for messages about numbers and durations (which are never secret):
/// `-1s`, `-5`, `0`.
pub(crate) fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => kind(other).to_owned(),
    }
}

/// Refuses a duration or count ≤ 0 read from `v`: `timeout must be > 0, got -1s`.
pub(crate) fn not_positive(path: &Path, v: &Value) -> ConfigError {
    ConfigError::field(path.as_str(), format!("must be > 0, got {}", shown(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> Value {
        yaml_serde::from_str(s).unwrap()
    }

    fn p() -> Path {
        Path::new("x")
    }

    #[test]
    fn path_joins() {
        assert_eq!(Path::default().key("a").as_str(), "a");
        assert_eq!(Path::new("a").key("b").as_str(), "a.b");
    }

    #[test]
    fn strings_like_go() {
        assert_eq!(string(&y("abc"), &p()).unwrap(), "abc");
        assert_eq!(string(&y("123"), &p()).unwrap(), "123");
        assert_eq!(string(&y("0.1"), &p()).unwrap(), "0.1");
        assert_eq!(string(&y("true"), &p()).unwrap(), "true");
        assert_eq!(string(&y("~"), &p()).unwrap(), "");
        let e = string(&y("[a]"), &p()).unwrap_err();
        assert_eq!(e.to_string(), "x: expected a string, found a list");
        let e = string(&y("!https://u:s3cr3t@h abc"), &p()).unwrap_err();
        assert_eq!(e.to_string(), "x: expected a string, found a tagged value");
        let e = string(&y("!secret abc"), &p()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "x: expected a string, found a value tagged !secret"
        );
    }

    #[test]
    fn booleans_like_yaml_1_1() {
        for t in ["true", "True", "yes", "Yes", "on", "ON", "y"] {
            assert!(boolean(&y(t), &p()).unwrap(), "{t}");
        }
        for f in ["false", "FALSE", "no", "off", "n", "~"] {
            assert!(!boolean(&y(f), &p()).unwrap(), "{f}");
        }
        assert_eq!(
            boolean(&y("1"), &p()).unwrap_err().to_string(),
            "x: expected a boolean (true or false), found an integer"
        );
        assert!(boolean(&y("maybe"), &p()).is_err());
    }

    #[test]
    fn integers() {
        assert_eq!(integer(&y("-5"), &p()).unwrap(), -5);
        assert_eq!(integer(&y("0x10"), &p()).unwrap(), 16);
        assert_eq!(integer(&y("~"), &p()).unwrap(), 0);
        assert_eq!(
            integer(&y("1.5"), &p()).unwrap_err().to_string(),
            "x: expected an integer, found a floating-point number"
        );
        assert_eq!(
            integer(&y("18446744073709551615"), &p()).unwrap_err().to_string(),
            "x is too large (at most 9223372036854775807)"
        );
        assert_eq!(
            integer(&y("\"10\""), &p()).unwrap_err().to_string(),
            "x: expected an integer, found a string"
        );
        assert_eq!(unsigned(&y("7"), &p(), 10).unwrap(), 7);
        assert_eq!(
            unsigned(&y("11"), &p(), 10).unwrap_err().to_string(),
            "x is too large (at most 10)"
        );
        assert_eq!(
            unsigned(&y("-1"), &p(), 10).unwrap_err().to_string(),
            "x must not be negative"
        );
        assert_eq!(
            unsigned(&y("18446744073709551615"), &p(), u64::MAX).unwrap(),
            u64::MAX
        );
    }

    #[test]
    fn floats() {
        assert_eq!(float(&y("2"), &p()).unwrap(), Some(2.0));
        assert_eq!(float(&y("0.5"), &p()).unwrap(), Some(0.5));
        assert_eq!(float(&y("~"), &p()).unwrap(), None);
        assert_eq!(
            float(&y(".nan"), &p()).unwrap_err().to_string(),
            "x must be a finite number"
        );
        assert_eq!(
            float(&y(".inf"), &p()).unwrap_err().to_string(),
            "x must be a finite number"
        );
        assert!(float(&y("abc"), &p()).is_err());
    }

    #[test]
    fn lists() {
        assert_eq!(string_list(&y("[a, 1]"), &p()).unwrap(), vec!["a", "1"]);
        assert_eq!(string_list(&y("a"), &p()).unwrap(), vec!["a"]);
        assert!(string_list(&y("~"), &p()).unwrap().is_empty());
        assert_eq!(
            string_list(&y("[a, ~]"), &p()).unwrap_err().to_string(),
            "x[1]: expected a string, found null"
        );
        assert_eq!(
            string_list(&y("[[a]]"), &p()).unwrap_err().to_string(),
            "x[0]: expected a string, found a list"
        );
        assert_eq!(
            string_list(&y("{a: b}"), &p()).unwrap_err().to_string(),
            "x: expected a list of strings, found a mapping"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(go_duration(&y("1m30s"), &p()).unwrap(), 90_000_000_000);
        assert_eq!(go_duration(&y("\"-1s\""), &p()).unwrap(), -1_000_000_000);
        assert_eq!(go_duration(&y("0"), &p()).unwrap(), 0);
        assert_eq!(go_duration(&y("\"0\""), &p()).unwrap(), 0);
        assert_eq!(go_duration(&y("0.0"), &p()).unwrap(), 0);
        assert_eq!(go_duration(&y("~"), &p()).unwrap(), 0);
        let e = go_duration(&y("500"), &p()).unwrap_err().to_string();
        assert!(
            e.starts_with("x: a bare number is not accepted as a duration"),
            "{e}"
        );
        assert!(
            e.contains("500 nanoseconds") && e.contains("\"500ms\"") && e.contains("Portus#905"),
            "{e}"
        );
        let e = go_duration(&y("-3"), &p()).unwrap_err().to_string();
        assert!(e.contains("-3 nanoseconds"), "{e}");
        let e = go_duration(&y("1.5"), &p()).unwrap_err().to_string();
        assert!(e.contains("bare number") && e.contains("1.5"), "{e}");
        let e = go_duration(&y("\"500\""), &p()).unwrap_err().to_string();
        assert!(
            e.starts_with("x: time: missing unit in duration \"500\"; durations need a unit"),
            "{e}"
        );
        let e = go_duration(&y("1d"), &p()).unwrap_err().to_string();
        assert!(
            e.starts_with("x: time: unknown unit \"d\" in duration \"1d\" (expected a Go duration"),
            "{e}"
        );
        let e = go_duration(&y("[1s]"), &p()).unwrap_err().to_string();
        assert_eq!(e, "x: expected a duration string such as \"1s\", found a list");
    }

    #[test]
    fn mappings_and_unknown_keys() {
        assert!(mapping(&y("~"), &p()).unwrap().is_none());
        assert_eq!(mapping(&y("{a: 1}"), &p()).unwrap().unwrap()[0].0, "a");
        assert_eq!(
            mapping(&y("[1]"), &p()).unwrap_err().to_string(),
            "x: expected a mapping, found a list"
        );
        assert_eq!(
            mapping(&y("{1: a}"), &p()).unwrap_err().to_string(),
            "x: keys must be strings, found an integer"
        );
        let known = ["timeout", "threshold", "backoff"];
        assert_eq!(
            unknown_key(&p(), "timout", &known).to_string(),
            "x: unknown key \"timout\" (did you mean \"timeout\"?)"
        );
        assert_eq!(
            unknown_key(&p(), "Timeout", &known).to_string(),
            "x: unknown key \"Timeout\" (did you mean \"timeout\"?)"
        );
        assert_eq!(
            unknown_key(&p(), "zzz", &known).to_string(),
            "x: unknown key \"zzz\" (expected one of: timeout, threshold, backoff)"
        );
    }
}
