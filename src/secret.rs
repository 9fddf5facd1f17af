//! Secrets in messages: URL redaction and the scrubbing of known secret strings.
//!
//! Everything that names an endpoint, a proxy or a NATS server in a log line, a metric
//! label, an error or `Debug` output goes through [`redact_url`]; everything that reports an
//! error text which might echo a configured secret (a header value, a password, a signing
//! key) goes through [`Secrets::scrub`].

/// Splits `scheme://userinfo@host/…` into the user info and the URL without it.
pub(crate) fn split_userinfo(url: &str) -> (Option<&str>, String) {
    let Some(i) = url.find("://") else {
        return (None, url.to_owned());
    };
    let (scheme, rest) = url.split_at(i + 3);
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..auth_end].rfind('@') {
        Some(at) => (Some(&rest[..at]), format!("{scheme}{}", &rest[at + 1..])),
        None => (None, url.to_owned()),
    }
}

/// `url` without user info, query or fragment markers' contents: `https://***@host/path?***`.
pub(crate) fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (auth, tail) = rest.split_at(auth_end);
    let (userinfo, host) = match auth.rfind('@') {
        Some(i) => ("***@", &auth[i + 1..]),
        None => ("", auth),
    };
    // A host with a colon before its port (`user:pw host:1`, `user:pw:host:1`, the `@` mangled)
    // may hold a password: hidden whole. A non-numeric "port" may be a password whose "@host"
    // is missing: hidden too.
    let plausible = |h: &str| (h.starts_with('[') && h.ends_with(']')) || !h.contains(':');
    let host = match host.rsplit_once(':') {
        _ if host.starts_with('[') && host.ends_with(']') => host.to_owned(),
        Some((h, port)) if plausible(h) && port.bytes().all(|b| b.is_ascii_digit()) => host.to_owned(),
        Some((h, _)) if plausible(h) => format!("{h}:***"),
        None if plausible(host) => host.to_owned(),
        _ => "***".to_owned(),
    };
    let auth = format!("{userinfo}{host}");
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    if let Some(at) = tail[..path_end].rfind('@') {
        // User info where no authority was recognised (`https:/user:password@host`, one slash
        // short): everything before the `@` may be secret.
        return format!("***@{}", without_query(&tail[at + 1..]));
    }
    format!("{scheme}{auth}{}", without_query(tail))
}

/// `path?query#fragment` as `path?***`; after whitespace (which no URL holds: a `?` may have
/// been mistyped) nothing is shown either.
fn without_query(tail: &str) -> String {
    match tail.find(|c: char| c == '?' || c == '#' || c.is_whitespace()) {
        Some(i) if tail[i..].starts_with('#') => tail[..i].to_owned(),
        Some(i) if tail[i..].starts_with('?') => format!("{}?***", &tail[..i]),
        Some(i) => format!("{} ***", &tail[..i]),
        None => tail.to_owned(),
    }
}

/// Strings that must not leak (header values, URL credentials), scrubbed from messages.
#[derive(Debug, Default)]
pub(crate) struct Secrets(Vec<String>);

impl Secrets {
    /// Secrets shorter than 3 bytes are not tracked: scrubbing them would garble messages.
    pub(crate) fn add(&mut self, secret: &str) {
        if secret.len() >= 3 && !self.0.iter().any(|s| s == secret) {
            self.0.push(secret.to_owned());
            self.0.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// `message` with every secret replaced by `***`.
    pub(crate) fn scrub(&self, message: &str) -> String {
        let mut out = message.to_owned();
        for s in &self.0 {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_userinfo_and_query() {
        let cases = [
            (
                "https://user:pass@host:8443/p?token=x#frag",
                "https://***@host:8443/p?***",
            ),
            ("https://host/p", "https://host/p"),
            ("https://host/p#frag", "https://host/p"),
            ("https://a@b@host", "https://***@host"),
            ("http://host?x=1", "http://host?***"),
            ("user:pass@host/x", "***@host/x"),
            ("", ""),
            ("://@", "://***@"),
            ("héllo://ü@ß/ä?ö", "héllo://***@ß/ä?***"),
            ("https://user:password", "https://user:***"),
            ("https://host:8080/x", "https://host:8080/x"),
            ("https://[::1]:8080/x", "https://[::1]:8080/x"),
            ("https://[::1]/x", "https://[::1]/x"),
            // Found by a long property run: one slash short, the password was shown.
            (
                "https:/audit:SECRET-password@audit.example.com:8443/hooks?token=SECRET",
                "***@audit.example.com:8443/hooks?***",
            ),
            ("https:user:pw@host/x", "***@host/x"),
            ("https://host/a:pw@b/c#f", "***@b/c"),
            // ... and with the `@` replaced or dropped.
            (
                "https://audit:SECRET-pw audit.example.com:8443/h?q",
                "https://***/h?***",
            ),
            (
                "https://audit:SECRET-pw:audit.example.com:8443/h",
                "https://***/h",
            ),
            ("https://audit:SECRET-pwaudit.example.com:8443/h", "https://***/h"),
            (
                "https://audit:SECRET-pw/audit.example.com:8443/h",
                "https://audit:***/audit.example.com:8443/h",
            ),
            ("https://[::1]:x/", "https://[::1]:***/"),
            ("https://h/hooks token=SECRET", "https://h/hooks ***"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn userinfo_split() {
        assert_eq!(
            split_userinfo("https://u:p@h/x@y"),
            (Some("u:p"), "https://h/x@y".to_owned())
        );
        assert_eq!(
            split_userinfo("https://h/x@y"),
            (None, "https://h/x@y".to_owned())
        );
        assert_eq!(split_userinfo("no-scheme@h"), (None, "no-scheme@h".to_owned()));
    }

    #[test]
    fn scrubbing() {
        let mut secrets = Secrets::default();
        secrets.add("ab"); // too short to track
        secrets.add("secret");
        secrets.add("secret-longer");
        assert_eq!(secrets.scrub("ab secret-longer secret"), "ab *** ***");
    }
}
