//! The `http(s)://` check of configured URLs (endpoints, `http.host`, proxies).

use crate::secret::split_userinfo;

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

#[cfg(test)]
mod tests {
    use super::*;

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
