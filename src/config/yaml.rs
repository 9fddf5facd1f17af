//! YAML text to a `yaml_serde::Value`, with errors that say where: a line and column for syntax
//! errors (found by us when the parser gives none), the field path of a bad `<<` merge key.
//! Errors never quote a scalar of the input (it could be a secret).

use yaml_serde::{Mapping, Value};

use super::value::{kind, Path};
use super::ConfigError;

type Result<T> = std::result::Result<T, ConfigError>;

/// Parses one YAML document and applies its `<<` merge keys.
pub(crate) fn parse(text: &str) -> Result<Value> {
    let mut value: Value = yaml_serde::from_str(text).map_err(|e| syntax_error(&e, text))?;
    apply_merge(&mut value)?;
    Ok(value)
}

/// Applies the `<<` merge keys of a parsed value; an error names the bad merge key's path.
pub(crate) fn apply_merge(value: &mut Value) -> Result<()> {
    merge(value, &Path::default())
}

/// A `yaml_serde` error as a `ConfigError`, without any quoted scalar (serde errors can quote
/// values, e.g. ``invalid type: integer `1234…` ``), and with the line and column of the problem
/// when the parser's message has none.
fn syntax_error(e: &yaml_serde::Error, text: &str) -> ConfigError {
    let mut msg = without_quoted(&e.to_string());
    if msg == "repetition limit exceeded" {
        // About the document as a whole: anchors and aliases that expand without end.
        msg = "aliases expand to too many values (repetition limit exceeded)".to_owned();
    } else if msg.starts_with("control characters are not allowed") {
        // The parser gives a byte offset and, as location, the start of the document.
        msg = "control characters are not allowed".to_owned();
        if let Some((line, column)) = first_unprintable(text) {
            msg.push_str(&format!(" at line {line} column {column}"));
        }
    } else if !msg.contains(" line ") {
        let at = e.location().map(|l| (l.line(), l.column())).or_else(|| {
            if msg.contains("more than one document") {
                second_document(text)
            } else {
                None
            }
        });
        if let Some((line, column)) = at {
            msg.push_str(&format!(" at line {line} column {column}"));
        }
    }
    ConfigError::new(format!("invalid YAML: {msg}"))
}

fn without_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut in_quote = false;
    for c in msg.chars() {
        if c == '`' {
            if !in_quote {
                out.push_str("`…`");
            }
            in_quote = !in_quote;
        } else if !in_quote {
            out.push(c);
        }
    }
    out
}

/// Line and column (from 1, in characters) of byte offset `at` of `text`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The first character YAML does not allow in a document (YAML 1.2, 5.1 "c-printable").
fn first_unprintable(text: &str) -> Option<(usize, usize)> {
    let printable = |c: char| {
        matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{7e}' | '\u{85}' | '\u{a0}'..='\u{d7ff}')
            || matches!(c, '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
    };
    let (at, _) = text.char_indices().find(|&(_, c)| !printable(c))?;
    Some(line_column(text, at))
}

/// Where the second document starts: the location of its first value, found by reading it as
/// a type it cannot be (a boolean, or nothing if it is one); else a `---` or `...` marker line
/// after some content.
fn second_document(text: &str) -> Option<(usize, usize)> {
    use serde::Deserialize as _;
    let located = |e: yaml_serde::Error| e.location().map(|l| (l.line(), l.column()));
    let mut documents = yaml_serde::Deserializer::from_str(text).skip(1);
    let from_parser = documents
        .next()
        .and_then(|second| match bool::deserialize(second) {
            Err(e) => located(e),
            Ok(_) => {
                let second = yaml_serde::Deserializer::from_str(text).nth(1)?;
                <()>::deserialize(second).err().and_then(located)
            }
        });
    if from_parser.is_some() {
        return from_parser;
    }
    let mut content = false;
    for (i, line) in text.split('\n').enumerate() {
        let marker = ["---", "..."].iter().any(|m| {
            line.strip_prefix(m)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r']))
        });
        if marker && content {
            return Some((i + 1, 1));
        }
        let trimmed = line.trim();
        content |= !marker && !trimmed.is_empty() && !trimmed.starts_with('#') && !trimmed.starts_with('%');
    }
    None
}

/// Applies `<<` merge keys as `yaml_serde::Value::apply_merge` does (keys already present win,
/// merged mappings are then searched too), but names the offending key in errors.
fn merge(value: &mut Value, at: &Path) -> Result<()> {
    match value {
        Value::Mapping(mapping) => {
            if let Some(merged) = mapping.remove("<<") {
                let p = at.key("<<");
                match merged {
                    Value::Mapping(m) => merge_into(mapping, m),
                    Value::Sequence(items) => {
                        for (i, item) in items.into_iter().enumerate() {
                            match item {
                                Value::Mapping(m) => merge_into(mapping, m),
                                other => return Err(bad_merge(&index(&p, i), &other)),
                            }
                        }
                    }
                    other => return Err(bad_merge(&p, &other)),
                }
            }
            for (k, v) in mapping.iter_mut() {
                let name = match k {
                    Value::String(s) => s.as_str(),
                    _ => "?",
                };
                merge(v, &at.key(name))?;
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                merge(item, &index(at, i))?;
            }
        }
        Value::Tagged(tagged) => merge(&mut tagged.value, at)?,
        _ => {}
    }
    Ok(())
}

fn merge_into(mapping: &mut Mapping, merged: Mapping) {
    for (k, v) in merged {
        mapping.entry(k).or_insert(v);
    }
}

fn index(at: &Path, i: usize) -> Path {
    Path::new(format!("{}[{i}]", at.as_str()))
}

fn bad_merge(at: &Path, found: &Value) -> ConfigError {
    ConfigError::at(
        at.as_str(),
        format!(
            "a merge key takes a mapping or a list of mappings (such as <<: *defaults), found {}",
            kind(found)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_say_where() {
        let e = parse("a: 1\nb: [\n").unwrap_err().to_string();
        assert!(e.starts_with("invalid YAML: ") && e.contains(" line "), "{e}");
        let e = parse("a: 1\nb: x\u{1}y\n").unwrap_err().to_string();
        assert!(
            e.contains("control characters") && e.contains("at line 2 column 5"),
            "{e}"
        );
        let e = parse("# c\n---\na: 1\n---\nb: 2\n").unwrap_err().to_string();
        assert!(
            e.contains("more than one document") && e.contains("at line 5 column 1"),
            "{e}"
        );
        let e = parse("a: 1\n...\nb: 2\n").unwrap_err().to_string();
        assert!(e.contains("at line 3 column 1"), "{e}");
        // A second document without a marker: a scalar, then a block scalar.
        let e = parse("a\t#\n>").unwrap_err().to_string();
        assert!(
            e.contains("more than one document is not supported at line 2 column 1"),
            "{e}"
        );
        let e = parse("a: 1\n---\ntrue\n").unwrap_err().to_string();
        assert!(e.contains("at line 3 column 1"), "{e}");
        let bomb: String = (1..12).fold("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n".into(), |doc, i| {
            format!(
                "{doc}a{i}: &a{i} [{}]\n",
                vec![format!("*a{}", i - 1); 10].join(", ")
            )
        });
        let e = parse(&bomb).unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid YAML: aliases expand to too many values (repetition limit exceeded)"
        );
        let e = parse("a: 99999999999999999999999999").unwrap_err().to_string();
        assert!(!e.contains("9999"), "{e}");
    }

    #[test]
    fn merges_like_yaml_serde_and_names_bad_merge_keys() {
        let text = "d: &d {a: 1, b: 2}\nx:\n  <<: *d\n  b: 3\ny:\n  - <<: [*d, {c: 4}]\n";
        let mut theirs: Value = yaml_serde::from_str(text).unwrap();
        theirs.apply_merge().unwrap();
        assert_eq!(parse(text).unwrap(), theirs);
        for (text, path, found) in [
            ("x:\n  <<: 1\n", "x.<<", "an integer"),
            ("x: [{<<: [{a: 1}, [b]]}]\n", "x[0].<<[1]", "a list"),
            ("x: {y: {<<: !t {a: 1}}}\n", "x.y.<<", "a tagged value"),
            ("<<: ~\n", "<<", "null"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.path(), path, "{text}");
            assert!(e.message().ends_with(&format!("found {found}")), "{e}");
            let mut v: Value = yaml_serde::from_str(text).unwrap();
            assert!(v.apply_merge().is_err(), "yaml_serde accepts {text}");
        }
    }
}
