//! URL helpers: user info, redaction for messages, and the `http(s)://` check.

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

pub(crate) fn check_url(url: &str) -> std::result::Result<(), &'static str> {
    if !url.contains("://") {
        return Err("must be an http:// or https:// URL");
    }
    let (_, url) = split_userinfo(url);
    let uri: http::Uri = url.parse().map_err(|_| "is not a valid URL")?;
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {}
        _ => return Err("must be an http:// or https:// URL"),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("has no host");
    }
    if let Some(authority) = uri.authority() {
        let port = authority.as_str().rsplit_once(':').map(|(_, p)| p);
        if port.is_some_and(|p| !authority.as_str().ends_with(']') && !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err("has an invalid port");
        }
    }
    Ok(())
}

pub(crate) fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
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
    fn userinfo_split_and_percent_decoding() {
        assert_eq!(
            split_userinfo("https://u:p@h/x@y"),
            (Some("u:p"), "https://h/x@y".to_owned())
        );
        assert_eq!(
            split_userinfo("https://h/x@y"),
            (None, "https://h/x@y".to_owned())
        );
        assert_eq!(split_userinfo("no-scheme@h"), (None, "no-scheme@h".to_owned()));
        assert_eq!(percent_decode("a%40b%3a%zz%4"), b"a@b:%zz%4");
        assert_eq!(percent_decode("%"), b"%");
        assert_eq!(percent_decode("ü%C3%BC"), "üü".as_bytes());
    }

    #[test]
    fn url_checks() {
        assert_eq!(check_url("http://h"), Ok(()));
        assert_eq!(check_url("https://u:p@h:1/x?y"), Ok(()));
        assert_eq!(check_url("ftp://h"), Err("must be an http:// or https:// URL"));
        assert_eq!(check_url("h:80"), Err("must be an http:// or https:// URL"));
        assert_eq!(check_url("http://"), Err("is not a valid URL"));
        assert_eq!(check_url("http://h ost/"), Err("is not a valid URL"));
        assert_eq!(check_url("https://user:password"), Err("has an invalid port"));
        assert_eq!(check_url("https://h:/"), Ok(()));
        assert_eq!(check_url("https://[::1]:8080/"), Ok(()));
        assert_eq!(check_url("https://[::1]/"), Ok(()));
    }
}
