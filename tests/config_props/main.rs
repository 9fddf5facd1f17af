//! The configuration loader on arbitrary input, through the public API: random YAML documents
//! shaped like our schema (with random keys, values and types mixed in at every level), raw
//! strings and bytes, mutations and truncations of a full Distribution config, and wrong types in
//! every key. The loader never panics; it accepts the input (and the result then validates) or
//! gives an error that is non-empty, names a field path or a line and column (or is about the
//! whole document), and never shows a secret. Valid configurations generated from valid values
//! load to exactly the settings they were made from.
//!
//! `shaped.rs`: documents shaped like the schema, and arbitrary text; `malformed.rs`: mutations,
//! truncations, wrong types, pathological YAML; `valid.rs`: valid configurations round-trip.
//!
//! The properties run 256 cases each from a fixed seed, so `cargo test` stays fast and
//! reproducible. A long run (other seeds with `PROPTEST_RNG_SEED=<n>`):
//!
//! ```text
//! PROPTEST_CASES=20000 cargo test --release --all-features --test config_props
//! ```

use std::path::Path;

use proptest::test_runner::Config as ProptestConfig;
use registry_notify::config::{Config, ConfigError};

/// 256 cases from a fixed seed (see `registry_notify_testkit::props::config`).
fn config() -> ProptestConfig {
    registry_notify_testkit::props::config(256, 0x00c0_f16e)
}

fn read(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

const SECRET: &str = "SECRET";

/// Errors about the document as a whole, which have no field to name.
const DOCUMENT_ERRORS: &[&str] = &[
    "the configuration is empty",
    "the configuration must be a YAML mapping",
    "invalid YAML: aliases expand to too many values",
    "top-level keys must be strings",
];

/// Whether `text` says `line <n> column <m>`.
fn has_line_column(text: &str) -> bool {
    text.match_indices("line ").any(|(i, _)| {
        let rest = &text[i + 5..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && {
            let rest = &rest[digits..];
            rest.strip_prefix(" column ")
                .is_some_and(|r| r.bytes().next().is_some_and(|b| b.is_ascii_digit()))
        }
    })
}

/// An error that says where: a field path, a line and column, or the whole document.
fn assert_located(e: &ConfigError, yaml: &str) {
    let msg = e.message();
    assert!(!msg.is_empty(), "empty message for:\n{yaml}");
    let located =
        !e.path().is_empty() || has_line_column(msg) || DOCUMENT_ERRORS.iter().any(|d| msg.starts_with(d));
    assert!(located, "error names no field, line or column: {e}\nfor:\n{yaml}");
}

/// Parses; checks what every outcome must satisfy (see the module docs).
fn parse_checked(yaml: &str) -> Result<Config, String> {
    parse_checked_secrets(yaml, true)
}

/// [`parse_checked`], with the check for secrets optional: once a mutation has destroyed the
/// `@` that ends a URL's user info or the `?` that starts its query, the secret behind it is
/// an ordinary host or path, and is shown as such.
fn parse_checked_secrets(yaml: &str, secrets: bool) -> Result<Config, String> {
    match Config::from_yaml_str(yaml) {
        Ok(c) => {
            // Header values and URL credentials never show; other sections are not kept.
            let debug = format!("{c:?}");
            assert!(
                !(secrets && debug.contains(SECRET)),
                "secret in Debug of:\n{yaml}\n{debug}"
            );
            assert_eq!(c.validate(), Ok(()), "accepted but invalid:\n{yaml}");
            Ok(c)
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                !(secrets && msg.contains(SECRET)),
                "secret in error {msg:?} for:\n{yaml}"
            );
            assert_located(&e, yaml);
            Err(msg)
        }
    }
}

mod malformed;
mod shaped;
mod valid;
