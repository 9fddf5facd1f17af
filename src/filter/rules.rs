//! The rules of a per-endpoint filter and the repository globs they match.

use std::fmt;

use crate::error::ConfigError;
use crate::event::{Action, Event};

/// The rule set of a per-endpoint filter (see the [module docs](super)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilterRules {
    media_types: Vec<String>,
    actions: Vec<Action>,
    methods: Vec<String>,
    include: Vec<Glob>,
    exclude: Vec<Glob>,
    include_tags: Vec<Glob>,
    exclude_tags: Vec<Glob>,
}

impl FilterRules {
    /// A filter that lets every event through.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops events whose target media type equals one of `media_types` (exact match).
    /// Calls accumulate, so Distribution's `ignoredmediatypes` and `ignore.mediatypes`
    /// can both be added.
    pub fn ignore_media_types<I, S>(mut self, media_types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for m in media_types {
            let m = m.into();
            if !self.media_types.contains(&m) {
                self.media_types.push(m);
            }
        }
        self
    }

    /// Drops events with one of `actions`, whether or not media types are ignored too.
    pub fn ignore_actions<I>(mut self, actions: I) -> Self
    where
        I: IntoIterator<Item = Action>,
    {
        for a in actions {
            if !self.actions.contains(&a) {
                self.actions.push(a);
            }
        }
        self
    }

    /// Drops events whose request method is one of `methods` (case-insensitive), e.g.
    /// `["HEAD"]` to drop the pulls Distribution reports for HEAD requests.
    pub fn ignore_methods<I, S>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for m in methods {
            let m = m.into().to_ascii_uppercase();
            if !self.methods.contains(&m) {
                self.methods.push(m);
            }
        }
        self
    }

    /// Keeps only events whose repository matches one of `globs` (accumulates).
    ///
    /// Errors on an empty glob, an empty path segment, or `**` mixed with other characters
    /// in a segment.
    pub fn include_repositories<I, S>(mut self, globs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.include
            .extend(compile(globs, "filter.repositories.include", Glob::parse)?);
        Ok(self)
    }

    /// Drops events whose repository matches one of `globs` (accumulates); exclusion wins
    /// over inclusion. Errors like [`include_repositories`](Self::include_repositories).
    pub fn exclude_repositories<I, S>(mut self, globs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.exclude
            .extend(compile(globs, "filter.repositories.exclude", Glob::parse)?);
        Ok(self)
    }

    /// Keeps only events that have a tag matching one of `globs` (accumulates): `*` matches
    /// any run of characters, e.g. `v*` or `*-rc*`. An event without a tag (a blob, a manifest
    /// pushed or pulled by digest, a delete by digest) does not pass an include rule.
    ///
    /// Errors on an empty glob or one containing `/` (which no tag has).
    ///
    /// ```
    /// use registry_notify::filter::FilterRules;
    /// use registry_notify::{Action, Event, Target};
    ///
    /// let rules = FilterRules::new().include_tags(["v*"]).unwrap().exclude_tags(["*-rc*"]).unwrap();
    /// let tagged = |tag: &str| Event::new(Action::Push, Target { tag: tag.into(), ..Target::default() });
    /// assert!(rules.allows(&tagged("v1.2")));
    /// assert!(!rules.allows(&tagged("v2.0-rc1")));
    /// assert!(!rules.allows(&tagged("latest")));
    /// assert!(!rules.allows(&tagged("")), "no tag: not included");
    /// ```
    pub fn include_tags<I, S>(mut self, globs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.include_tags
            .extend(compile(globs, "filter.tags.include", Glob::parse_tag)?);
        Ok(self)
    }

    /// Drops events whose tag matches one of `globs` (accumulates); exclusion wins over
    /// inclusion. Events without a tag are not affected. Errors like
    /// [`include_tags`](Self::include_tags).
    pub fn exclude_tags<I, S>(mut self, globs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.exclude_tags
            .extend(compile(globs, "filter.tags.exclude", Glob::parse_tag)?);
        Ok(self)
    }

    /// Whether the filter has no rule at all (lets everything through).
    pub fn is_empty(&self) -> bool {
        self.media_types.is_empty()
            && self.actions.is_empty()
            && self.methods.is_empty()
            && self.include.is_empty()
            && self.exclude.is_empty()
            && self.include_tags.is_empty()
            && self.exclude_tags.is_empty()
    }

    /// Whether `event` passes the filter.
    pub fn allows(&self, event: &Event) -> bool {
        if self
            .media_types
            .iter()
            .any(|m| *m == event.target.descriptor.media_type)
        {
            return false;
        }
        if self.actions.contains(&event.action) {
            return false;
        }
        if !self.methods.is_empty()
            && self
                .methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(&event.request.method))
        {
            return false;
        }
        let repo = event.target.repository.as_str();
        if !self.include.is_empty() && !self.include.iter().any(|g| g.matches(repo)) {
            return false;
        }
        if self.exclude.iter().any(|g| g.matches(repo)) {
            return false;
        }
        let tag = event.target.tag.as_str();
        if !self.include_tags.is_empty()
            && (tag.is_empty() || !self.include_tags.iter().any(|g| g.matches(tag)))
        {
            return false;
        }
        tag.is_empty() || !self.exclude_tags.iter().any(|g| g.matches(tag))
    }
}

/// Compiles `globs` with `parse`; an error names the glob's field, `key[i]`.
fn compile<I, S>(
    globs: I,
    key: &str,
    parse: fn(&str) -> Result<Glob, ConfigError>,
) -> Result<Vec<Glob>, ConfigError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    globs
        .into_iter()
        .enumerate()
        .map(|(i, g)| parse(g.as_ref()).map_err(|e| e.within(&format!("{key}[{i}]"))))
        .collect()
}

/// A compiled repository glob.
#[derive(Clone, PartialEq, Eq)]
struct Glob {
    source: String,
    segments: Vec<Segment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// `**`: any number of segments.
    Any,
    /// A segment pattern where `*` matches any run of characters.
    Pattern(String),
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.source, f)
    }
}

impl Glob {
    fn parse(source: &str) -> Result<Self, ConfigError> {
        let err = |why: &str| ConfigError::new(format!("invalid repository glob {source:?}: {why}"));
        if source.is_empty() {
            return Err(err("empty pattern"));
        }
        let mut segments = Vec::new();
        for seg in source.split('/') {
            if seg.is_empty() {
                return Err(err("empty path segment"));
            }
            if seg == "**" {
                // Consecutive `**` are the same as one.
                if segments.last() != Some(&Segment::Any) {
                    segments.push(Segment::Any);
                }
            } else if seg.contains("**") {
                return Err(err("`**` must be a whole path segment"));
            } else {
                segments.push(Segment::Pattern(seg.to_owned()));
            }
        }
        Ok(Self {
            source: source.to_owned(),
            segments,
        })
    }

    /// A tag glob: one segment, `*` for any run of characters.
    fn parse_tag(source: &str) -> Result<Self, ConfigError> {
        let err = |why: &str| ConfigError::new(format!("invalid tag glob {source:?}: {why}"));
        if source.is_empty() {
            return Err(err("empty pattern"));
        }
        if source.contains('/') {
            return Err(err("a tag has no /"));
        }
        Ok(Self {
            source: source.to_owned(),
            segments: vec![Segment::Pattern(source.to_owned())],
        })
    }

    fn matches(&self, repository: &str) -> bool {
        let parts: Vec<&str> = repository.split('/').collect();
        match_segments(&self.segments, &parts)
    }
}

fn match_segments(pattern: &[Segment], parts: &[&str]) -> bool {
    match pattern.split_first() {
        None => parts.is_empty(),
        Some((Segment::Any, rest)) => (0..=parts.len()).any(|skip| match_segments(rest, &parts[skip..])),
        Some((Segment::Pattern(p), rest)) => match parts.split_first() {
            Some((first, tail)) => {
                match_wildcard(p.as_bytes(), first.as_bytes()) && match_segments(rest, tail)
            }
            None => false,
        },
    }
}

/// `*` matches any run of bytes (the caller already split on `/`); everything else is literal.
fn match_wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(s: &str) -> Glob {
        Glob::parse(s).unwrap()
    }

    #[test]
    fn globs() {
        assert!(glob("library/*").matches("library/alpine"));
        assert!(!glob("library/*").matches("library/a/b"));
        assert!(!glob("library/*").matches("library"));
        assert!(glob("team/**").matches("team"));
        assert!(glob("team/**").matches("team/a/b"));
        assert!(glob("**/cache").matches("a/b/cache"));
        assert!(glob("**/cache").matches("cache"));
        assert!(glob("a/**/z").matches("a/z"));
        assert!(glob("a/**/z").matches("a/b/c/z"));
        assert!(!glob("a/**/z").matches("a/b/c"));
        assert!(glob("*-dev/*").matches("web-dev/api"));
        assert!(glob("l*y/al*e").matches("library/alpine"));
        assert!(!glob("l*y/al*e").matches("library/alpines"));
        // A `*` that has to give back several bytes, more than once.
        assert!(glob("a*b*c").matches("axxbyybzzc"));
        assert!(!glob("a*b*c").matches("axxbyybzzd"));
        assert!(glob("**").matches("anything/at/all"));
        assert!(glob("exact/name").matches("exact/name"));
        assert!(!glob("exact/name").matches("exact/names"));
    }

    #[test]
    fn bad_globs() {
        for bad in ["", "a//b", "/a", "a/", "a**/b", "a/**b"] {
            let err = Glob::parse(bad).unwrap_err().to_string();
            assert!(err.contains("invalid repository glob"), "{bad}: {err}");
        }
    }

    #[test]
    fn tag_globs() {
        let tagged = |tag: &str| {
            let mut e = Event::new(Action::Push, Default::default());
            e.target.tag = tag.into();
            e
        };
        let include = FilterRules::new().include_tags(["v*", "stable"]).unwrap();
        for (tag, passes) in [
            ("v1", true),
            ("v", true),
            ("stable", true),
            ("stable2", false),
            ("", false),
            ("1v", false),
        ] {
            assert_eq!(include.allows(&tagged(tag)), passes, "include {tag:?}");
        }
        let exclude = FilterRules::new().exclude_tags(["*-rc*", "**"]).unwrap();
        assert!(exclude.allows(&tagged("")), "untagged events are not excluded");
        assert!(!exclude.allows(&tagged("anything")), "`**` is `*` in a tag");
        let both = FilterRules::new()
            .include_tags(["v*"])
            .unwrap()
            .exclude_tags(["*-rc*"])
            .unwrap();
        assert!(both.allows(&tagged("v2")));
        assert!(!both.allows(&tagged("v2-rc1")), "exclusion wins");
        // Tag and repository rules must both let an event through.
        let mut e = tagged("v2");
        e.target.repository = "b/x".into();
        let repos = both.clone().include_repositories(["a/*"]).unwrap();
        assert!(!repos.allows(&e));
        e.target.repository = "a/x".into();
        assert!(repos.allows(&e));
    }

    #[test]
    fn bad_tag_globs_name_their_field() {
        for (bad, why) in [("", "empty pattern"), ("a/b", "a tag has no /")] {
            let err = FilterRules::new().include_tags(["ok", bad]).unwrap_err();
            assert_eq!(err.path(), "filter.tags.include[1]");
            assert_eq!(err.message(), format!("invalid tag glob {bad:?}: {why}"));
            let err = FilterRules::new().exclude_tags([bad]).unwrap_err();
            assert_eq!(err.path(), "filter.tags.exclude[0]");
        }
        let err = FilterRules::new().include_repositories(["a//b"]).unwrap_err();
        assert_eq!(err.path(), "filter.repositories.include[0]");
    }

    #[test]
    fn methods_case_insensitive() {
        let f = FilterRules::new().ignore_methods(["head"]);
        let mut e = Event::new(Action::Pull, Default::default());
        e.request.method = "HEAD".into();
        assert!(!f.allows(&e));
        e.request.method = "GET".into();
        assert!(f.allows(&e));
    }
}
