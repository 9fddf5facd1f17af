//! Unit tests of the whole module: defaults, each error, environment overrides.
//!
//! `endpoint.rs`: Distribution's endpoint keys; `extensions.rs`: our sections; `document.rs`: the
//! file as a whole (top-level sections, unknown keys, names); `env.rs`: environment overrides.

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::{Action, Format};

fn parse(yaml: &str) -> Config {
    Config::from_yaml_str(yaml).unwrap_or_else(|e| panic!("{e}\n---\n{yaml}"))
}

fn err(yaml: &str) -> String {
    match Config::from_yaml_str(yaml) {
        Ok(c) => panic!("expected an error, got {c:#?}\n---\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

/// One endpoint named `a` with the given extra keys (flow mapping entries).
/// `name: a` and a URL are added unless `extra` sets them.
fn endpoint(extra: &str) -> String {
    let mut entries = Vec::new();
    if !extra.starts_with("name:") {
        entries.push("name: a");
    }
    if !extra.contains("url:") {
        entries.push("url: 'http://listener:8080/events'");
    }
    if !extra.is_empty() {
        entries.push(extra);
    }
    format!("notifications:\n  endpoints:\n    - {{{}}}\n", entries.join(", "))
}

fn ep(extra: &str) -> EndpointConfig {
    parse(&endpoint(extra)).notifications.unwrap().endpoints.remove(0)
}

fn ep_err(extra: &str) -> String {
    err(&endpoint(extra))
}

mod document;
mod endpoint;
mod env;
mod extensions;
