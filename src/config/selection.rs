//! Which events an endpoint receives: Distribution's `ignore:` and our `filter:` extension.

use yaml_serde::Value;

use super::section::Section;
use super::value::{mapping, string_list, unknown_key, Path};
use super::ConfigError;
use crate::event::Action;

type Result<T> = std::result::Result<T, ConfigError>;

/// `ignore:` of an endpoint. Media types match exactly; actions are `push`, `pull`, `mount`,
/// `delete`. The two lists are independent (an event is dropped if either matches).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IgnoreConfig {
    /// `mediatypes` — target media types to drop.
    pub media_types: Vec<String>,
    /// `actions` — actions to drop.
    pub actions: Vec<Action>,
}

impl Section for IgnoreConfig {
    const KEYS: &'static [&'static str] = &["mediatypes", "actions"];

    fn set(&mut self, key: &str, v: &Value, at: &Path) -> Result<()> {
        let p = at.key(key);
        match key {
            "mediatypes" => self.media_types = string_list(v, &p)?,
            "actions" => {
                self.actions = string_list(v, &p)?
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        a.parse::<Action>()
                            .map_err(|e| ConfigError::at(format!("{}[{i}]", p.as_str()), e))
                    })
                    .collect::<Result<_>>()?
            }
            _ => return Err(unknown_key(at, key, Self::KEYS)),
        }
        Ok(())
    }
}

/// Extension `filter:` — which events this endpoint receives, beyond `ignore`.
///
/// ```yaml
/// filter:
///   repositories:
///     include: ["team-a/**"]     # only these (default: all)
///     exclude: ["**/cache"]      # never these
///   tags:
///     include: ["v*"]            # only events with a matching tag (default: all events)
///     exclude: ["*-rc*"]         # never these tags
///   methods:
///     exclude: [HEAD]            # drop pulls made with HEAD requests
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FilterSettings {
    /// `repositories.include` — repository globs (`*` within a path segment, `**` across
    /// segments); when non-empty, only matching repositories are sent.
    pub include_repositories: Vec<String>,
    /// `repositories.exclude` — repository globs never sent.
    pub exclude_repositories: Vec<String>,
    /// `tags.include` — tag globs (`*` matches any run of characters); when non-empty, only
    /// events whose tag matches are sent, so events without a tag (blobs, manifests by
    /// digest, deletes by digest) are not.
    pub include_tags: Vec<String>,
    /// `tags.exclude` — tag globs never sent; events without a tag are not affected.
    pub exclude_tags: Vec<String>,
    /// `methods.exclude` — HTTP methods (upper case) whose events are dropped, e.g. `HEAD`.
    pub exclude_methods: Vec<String>,
}

/// An `{include: […], exclude: […]}` mapping (`at` is its path); null clears both lists.
fn include_exclude(v: &Value, at: &Path, include: &mut Vec<String>, exclude: &mut Vec<String>) -> Result<()> {
    let Some(entries) = mapping(v, at)? else {
        include.clear();
        exclude.clear();
        return Ok(());
    };
    for (k, v) in entries {
        match k {
            "include" => *include = string_list(v, &at.key(k))?,
            "exclude" => *exclude = string_list(v, &at.key(k))?,
            _ => return Err(unknown_key(at, k, &["include", "exclude"])),
        }
    }
    Ok(())
}

impl Section for FilterSettings {
    const KEYS: &'static [&'static str] = &["repositories", "tags", "methods"];

    fn set(&mut self, key: &str, v: &Value, at: &Path) -> Result<()> {
        let p = at.key(key);
        match key {
            "repositories" => include_exclude(
                v,
                &p,
                &mut self.include_repositories,
                &mut self.exclude_repositories,
            )?,
            "tags" => include_exclude(v, &p, &mut self.include_tags, &mut self.exclude_tags)?,
            "methods" => {
                let Some(entries) = mapping(v, &p)? else {
                    self.exclude_methods.clear();
                    return Ok(());
                };
                for (k, v) in entries {
                    match k {
                        "exclude" => {
                            self.exclude_methods = string_list(v, &p.key(k))?
                                .into_iter()
                                .map(|m| m.to_ascii_uppercase())
                                .collect()
                        }
                        _ => return Err(unknown_key(&p, k, &["exclude"])),
                    }
                }
            }
            _ => return Err(unknown_key(at, key, Self::KEYS)),
        }
        Ok(())
    }
}
