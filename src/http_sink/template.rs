//! Payload templates (feature `templates`): the body of each POST rendered from its events with a
//! [minijinja](https://docs.rs/minijinja) template instead of Distribution's envelope, for
//! receivers that want their own shape — a chat service's incoming webhook, a ticketing API.
//!
//! A template sees:
//!
//! | name | what |
//! |---|---|
//! | `events` | the POST's events, each as in an `events.v2` envelope: `id`, `timestamp`, `action`, `target.repository`, `target.tag`, `target.digest`, `target.mediaType`, `target.size`, `target.url`, `request.host`, `actor.name`, `source.instanceID`, … (keys Distribution leaves out when empty are absent) |
//! | `count` | how many events |
//!
//! Undefined values print as nothing. For JSON bodies, write strings with the `tojson` filter
//! (`{{ e.target.repository | tojson }}`), which quotes and escapes them. A template that does
//! not compile is refused when the endpoint is built (the error names the line); one that fails
//! while rendering a POST (an error of its own making) fails that POST permanently: its events
//! are dead-lettered and can be [redelivered](crate::endpoint::EndpointHandle::redeliver) once
//! the template is fixed.
//!
//! Three presets are built in ([`Preset`]), each rendering at most the first 10 events of a POST
//! in full and counting the rest:
//!
//! - `slack`: an [incoming webhook](https://api.slack.com/messaging/webhooks) message, `text` (the
//!   fallback) and one `mrkdwn` section block;
//! - `teams`: a Microsoft Teams message with one Adaptive Card attachment (for a Workflows or
//!   connector webhook): a title and a fact per event;
//! - `discord`: a [Discord webhook](https://discord.com/developers/docs/resources/webhook#execute-webhook)
//!   message, `content` (at most 2000 characters) and one embed per event.
//!
//! ```
//! use registry_notify::http_sink::{PayloadTemplate, Preset};
//! use registry_notify::{Action, Event, Target};
//!
//! let mut event = Event::new(Action::Push, Target::default());
//! event.target.repository = "library/alpine".into();
//! event.target.tag = "3.20".into();
//!
//! let custom = PayloadTemplate::new(
//!     "audit",
//!     r#"{"pushed": [{% for e in events %}{{ (e.target.repository ~ ":" ~ e.target.tag) | tojson }}{% if not loop.last %}, {% endif %}{% endfor %}]}"#,
//! )?;
//! assert_eq!(custom.render(std::slice::from_ref(&event))?, br#"{"pushed": ["library/alpine:3.20"]}"#);
//!
//! let slack = PayloadTemplate::preset(Preset::Slack);
//! let body: serde_json::Value = serde_json::from_slice(&slack.render(&[event])?).unwrap();
//! assert!(body["text"].as_str().unwrap().contains("library/alpine:3.20"));
//! # Ok::<(), registry_notify::http_sink::TemplateError>(())
//! ```

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use http::HeaderValue;
use minijinja::{Environment, UndefinedBehavior};

use crate::event::Event;

/// The name the template is kept under in its environment.
const NAME: &str = "payload";

/// A built-in template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Preset {
    /// A Slack incoming-webhook message.
    Slack,
    /// A Microsoft Teams message with an Adaptive Card.
    Teams,
    /// A Discord webhook message.
    Discord,
}

impl Preset {
    /// Its name in configuration: `slack`, `teams` or `discord`.
    pub fn name(&self) -> &'static str {
        match self {
            Preset::Slack => "slack",
            Preset::Teams => "teams",
            Preset::Discord => "discord",
        }
    }

    fn source(&self) -> &'static str {
        match self {
            Preset::Slack => include_str!("presets/slack.json.j2"),
            Preset::Teams => include_str!("presets/teams.json.j2"),
            Preset::Discord => include_str!("presets/discord.json.j2"),
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "slack" => Ok(Preset::Slack),
            "teams" => Ok(Preset::Teams),
            "discord" => Ok(Preset::Discord),
            other => Err(format!(
                "unknown preset {other:?} (expected slack, teams or discord)"
            )),
        }
    }
}

/// A template that compiled, with the `Content-Type` of what it renders.
#[derive(Clone)]
pub struct PayloadTemplate {
    env: Arc<Environment<'static>>,
    label: String,
    content_type: HeaderValue,
}

/// A template that does not compile or render, or a content type that is not a header value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError(String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TemplateError {}

impl TemplateError {
    /// `error` of the template `label` (empty for one given inline), with the line where
    /// minijinja saw it.
    fn from_minijinja(label: &str, error: &minijinja::Error) -> Self {
        let mut text = match (error.line(), label) {
            (Some(line), "") => format!("line {line}: {}", error.kind()),
            (Some(line), _) => format!("{label}:{line}: {}", error.kind()),
            (None, "") => error.kind().to_string(),
            (None, _) => format!("{label}: {}", error.kind()),
        };
        if let Some(detail) = error.detail() {
            text.push_str(": ");
            text.push_str(detail);
        }
        TemplateError(text)
    }
}

impl PayloadTemplate {
    /// The built-in template `preset` (content type `application/json`).
    pub fn preset(preset: Preset) -> Self {
        Self::compile(format!("preset {}", preset.name()), preset.source().to_owned())
            .expect("the presets compile (tested)")
    }

    /// Compiles `source`; `label` names it in errors (a file name, say; empty: errors say
    /// `line N: …`). Content type
    /// `application/json` unless [`with_content_type`](Self::with_content_type) says otherwise.
    pub fn new(label: impl Into<String>, source: impl Into<String>) -> Result<Self, TemplateError> {
        Self::compile(label.into(), source.into())
    }

    /// Reads and compiles the template in file `path`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TemplateError> {
        let path = path.as_ref();
        let source = std::fs::read_to_string(path)
            .map_err(|e| TemplateError(format!("{}: cannot read: {e}", path.display())))?;
        Self::compile(path.display().to_string(), source)
    }

    fn compile(label: String, source: String) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        // No HTML escaping: the body is JSON or text, written with `tojson` where it matters.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.add_template_owned(NAME, source)
            .map_err(|e| TemplateError::from_minijinja(&label, &e))?;
        Ok(Self {
            env: Arc::new(env),
            label,
            content_type: HeaderValue::from_static("application/json"),
        })
    }

    /// Sends the rendered bodies with `Content-Type: content_type`.
    pub fn with_content_type(mut self, content_type: &str) -> Result<Self, TemplateError> {
        self.content_type = HeaderValue::from_str(content_type).map_err(|_| {
            TemplateError(format!(
                "content type {content_type:?} is not a valid header value"
            ))
        })?;
        Ok(self)
    }

    /// The `Content-Type` of the rendered bodies.
    pub fn content_type(&self) -> &HeaderValue {
        &self.content_type
    }

    /// The body for `events`.
    pub fn render(&self, events: &[Event]) -> Result<Vec<u8>, TemplateError> {
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| TemplateError::from_minijinja(&self.label, &e))?;
        let context = minijinja::context! {
            events => minijinja::Value::from(minijinja::value::Serde(events)),
            count => events.len(),
        };
        template
            .render(context)
            .map(String::into_bytes)
            .map_err(|e| TemplateError::from_minijinja(&self.label, &e))
    }
}

impl fmt::Debug for PayloadTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayloadTemplate")
            .field("template", &self.label)
            .field("content_type", &self.content_type)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, Target};

    #[test]
    fn errors_name_the_template_and_the_line() {
        let err = PayloadTemplate::new("hook.j2", "{\n  \"a\": {{ events[0].id }\n}").unwrap_err();
        assert!(err.to_string().starts_with("hook.j2:2: syntax error"), "{err}");
        let err = PayloadTemplate::new("t", "{{ count }}")
            .unwrap()
            .with_content_type("text/plain\n")
            .unwrap_err();
        assert!(err.to_string().contains("not a valid header value"), "{err}");
        let runtime = PayloadTemplate::new("t.j2", "ok\n{{ 1 / 0 }}").unwrap();
        let err = runtime.render(&[]).unwrap_err();
        assert!(err.to_string().starts_with("t.j2:2: "), "{err}");
    }

    #[test]
    fn presets_compile_and_render_json() {
        let mut e = Event::new(Action::Push, Target::default());
        e.target.repository = "a/b\"<c>".into();
        for preset in [Preset::Slack, Preset::Teams, Preset::Discord] {
            assert_eq!(preset.name().parse::<Preset>(), Ok(preset));
            let t = PayloadTemplate::preset(preset);
            for n in [0, 1, 11] {
                let events = vec![e.clone(); n];
                let body = t.render(&events).unwrap();
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|err| {
                    panic!("{preset:?} × {n}: {err}: {}", String::from_utf8_lossy(&body))
                });
                assert!(v.is_object(), "{v}");
            }
        }
        assert!("matrix".parse::<Preset>().is_err());
    }
}
