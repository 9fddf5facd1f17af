//! Extension `template:` of an endpoint (with `format: template`): the body of each POST rendered
//! from its events (see [`PayloadTemplate`](crate::http_sink::PayloadTemplate), feature
//! `templates`).

use std::path::PathBuf;

use yaml_serde::Value;

use super::section::Section;
use super::value::{string, unknown_key, Path};
use super::ConfigError;

type Result<T> = std::result::Result<T, ConfigError>;

/// Extension `template:` — exactly one of `preset`, `file` and `source`, and `format: template`.
///
/// ```yaml
/// - name: chat
///   url: https://hooks.slack.com/services/T000/B000/XXXX
///   format: template
///   template:
///     preset: slack          # or teams, discord; or file: /etc/registry/hook.json.j2
///   maxevents: 10
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TemplateSettings {
    /// Set by `format: template`.
    pub enabled: bool,
    /// `preset` — `slack`, `teams` or `discord`.
    pub preset: Option<String>,
    /// `file` — a template file, read when the endpoint is built (relative paths are relative to
    /// the working directory).
    pub file: Option<PathBuf>,
    /// `source` — the template itself, inline.
    pub source: Option<String>,
    /// `contenttype` — the `Content-Type` of the bodies. Default `application/json`.
    pub content_type: Option<String>,
}

impl Section for TemplateSettings {
    const KEYS: &'static [&'static str] = &["preset", "file", "source", "contenttype"];

    fn set(&mut self, key: &str, v: &Value, at: &Path) -> Result<()> {
        let p = at.key(key);
        let non_empty = |s: String| (!s.is_empty()).then_some(s);
        match key {
            "preset" => self.preset = non_empty(string(v, &p)?),
            "file" => self.file = non_empty(string(v, &p)?).map(PathBuf::from),
            "source" => self.source = non_empty(string(v, &p)?),
            "contenttype" => self.content_type = non_empty(string(v, &p)?),
            _ => return Err(unknown_key(at, key, Self::KEYS)),
        }
        Ok(())
    }

    fn finish(&mut self, _entries: &[(&str, &Value)], at: &Path) -> Result<()> {
        let given = [self.preset.is_some(), self.file.is_some(), self.source.is_some()];
        if given.iter().filter(|&&g| g).count() > 1 {
            return Err(ConfigError::at(
                at.as_str(),
                "give one of preset, file and source",
            ));
        }
        Ok(())
    }
}

impl TemplateSettings {
    /// Whether any key of `template:` is set.
    pub(super) fn is_given(&self) -> bool {
        self.preset.is_some() || self.file.is_some() || self.source.is_some() || self.content_type.is_some()
    }

    /// The template, compiled; `None` without `format: template`. A `file` is read only when
    /// `read_files` (else `source` and presets are still compiled). Error paths are relative to
    /// the endpoint.
    #[cfg(feature = "templates")]
    pub(super) fn compile(&self, read_files: bool) -> Result<Option<crate::http_sink::PayloadTemplate>> {
        use crate::http_sink::{PayloadTemplate, Preset};
        self.check()?;
        if !self.enabled {
            return Ok(None);
        }
        let template = if let Some(preset) = &self.preset {
            let preset: Preset = preset
                .parse()
                .map_err(|e| ConfigError::at("template.preset", e))?;
            PayloadTemplate::preset(preset)
        } else if let Some(source) = &self.source {
            PayloadTemplate::new("", source.clone())
                .map_err(|e| ConfigError::at("template.source", e.to_string()))?
        } else if let (Some(file), true) = (&self.file, read_files) {
            PayloadTemplate::from_file(file).map_err(|e| ConfigError::at("template.file", e.to_string()))?
        } else {
            return Ok(None);
        };
        match &self.content_type {
            Some(ct) => template
                .with_content_type(ct)
                .map(Some)
                .map_err(|e| ConfigError::at("template.contenttype", e.to_string())),
            None => Ok(Some(template)),
        }
    }

    /// Without the `templates` feature: `format: template` is refused.
    #[cfg(not(feature = "templates"))]
    pub(super) fn compile(&self, _read_files: bool) -> Result<Option<()>> {
        self.check()?;
        if self.enabled {
            return Err(ConfigError::at(
                "format",
                "`template` needs the `templates` feature of registry-notify",
            ));
        }
        Ok(None)
    }

    /// `format: template` and `template:` go together.
    fn check(&self) -> Result<()> {
        if self.enabled && self.preset.is_none() && self.file.is_none() && self.source.is_none() {
            return Err(ConfigError::at(
                "format",
                "`template` needs template.preset, template.file or template.source",
            ));
        }
        if !self.enabled && self.is_given() {
            return Err(ConfigError::at("template", "is used only with format: template"));
        }
        Ok(())
    }
}
