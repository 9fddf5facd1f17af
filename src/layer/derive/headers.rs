//! The headers, query parameters and numbers the layer reads from an exchange.

use std::borrow::Cow;

use http::header::{HeaderMap, HeaderValue, CONTENT_RANGE};

pub(crate) fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

pub(crate) fn header_str(h: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The request headers the layer reads, found in one pass over the map (each the first
/// value of its name, as `HeaderMap::get` gives): cheaper than a hashed lookup per name.
#[derive(Default)]
pub(crate) struct RequestHeaders<'a> {
    pub(crate) host: Option<&'a HeaderValue>,
    pub(crate) user_agent: Option<&'a HeaderValue>,
    pub(crate) authorization: Option<&'a HeaderValue>,
    pub(crate) content_type: Option<&'a HeaderValue>,
    pub(crate) content_length: Option<&'a HeaderValue>,
    pub(crate) transfer_encoding: Option<&'a HeaderValue>,
    pub(crate) x_request_id: Option<&'a HeaderValue>,
    pub(crate) forwarded: Option<&'a HeaderValue>,
    pub(crate) x_forwarded_proto: Option<&'a HeaderValue>,
    pub(crate) x_forwarded_host: Option<&'a HeaderValue>,
    pub(crate) x_forwarded_for: Option<&'a HeaderValue>,
    pub(crate) x_real_ip: Option<&'a HeaderValue>,
}

impl<'a> RequestHeaders<'a> {
    pub(crate) fn scan(headers: &'a HeaderMap) -> Self {
        let mut h = Self::default();
        for (name, value) in headers {
            let slot = match name.as_str() {
                "host" => &mut h.host,
                "user-agent" => &mut h.user_agent,
                "authorization" => &mut h.authorization,
                "content-type" => &mut h.content_type,
                "content-length" => &mut h.content_length,
                "transfer-encoding" => &mut h.transfer_encoding,
                "x-request-id" => &mut h.x_request_id,
                "forwarded" => &mut h.forwarded,
                "x-forwarded-proto" => &mut h.x_forwarded_proto,
                "x-forwarded-host" => &mut h.x_forwarded_host,
                "x-forwarded-for" => &mut h.x_forwarded_for,
                "x-real-ip" => &mut h.x_real_ip,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        h
    }
}

/// The response headers an event is made from, found in one pass like [`RequestHeaders`].
#[derive(Default)]
pub(crate) struct ResponseHeaders<'a> {
    pub(crate) docker_content_digest: Option<&'a HeaderValue>,
    pub(crate) content_type: Option<&'a HeaderValue>,
    pub(crate) content_length: Option<&'a HeaderValue>,
}

impl<'a> ResponseHeaders<'a> {
    pub(crate) fn scan(headers: &'a HeaderMap) -> Self {
        let mut h = Self::default();
        for (name, value) in headers {
            let slot = match name.as_str() {
                "docker-content-digest" => &mut h.docker_content_digest,
                "content-type" => &mut h.content_type,
                "content-length" => &mut h.content_length,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        h
    }
}

pub(crate) fn value_str(v: Option<&HeaderValue>) -> Option<&str> {
    v.and_then(|v| v.to_str().ok())
}

pub(crate) fn value_i64(v: Option<&HeaderValue>) -> Option<i64> {
    value_str(v)?.trim().parse::<i64>().ok().filter(|n| *n >= 0)
}

/// Decodes `%XX` escapes of a query value (repository names in `from=`).
pub(crate) fn percent_decode(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains('%') && !s.contains('+') {
        return Some(Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// `application/json; charset=utf-8` → `application/json`.
pub(crate) fn media_type_of(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Total size from `Content-Range: bytes a-b/total`.
pub(crate) fn content_range_total(h: &HeaderMap) -> Option<i64> {
    let v = header_str(h, CONTENT_RANGE)?;
    v.rsplit_once('/')?
        .1
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
}

/// The end of `Range: 0-<end>` (upload progress; `bytes=` tolerated).
pub(crate) fn upload_range_end(h: &HeaderMap) -> Option<i64> {
    let v = header_str(h, http::header::RANGE)?.trim();
    let v = v.strip_prefix("bytes=").unwrap_or(v);
    let (start, end) = v.split_once('-')?;
    if start.trim() != "0" {
        return None;
    }
    end.trim().parse::<i64>().ok().filter(|n| *n >= 0)
}

/// The path of a `Location` header (absolute URL or absolute path).
pub(crate) fn location_path(h: &HeaderMap) -> Option<String> {
    let loc = header_str(h, http::header::LOCATION)?;
    let uri: http::Uri = loc.parse().ok()?;
    Some(uri.path().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_decoding() {
        assert_eq!(query_param("mount=a&from=b%2Fc", "from"), Some("b%2Fc"));
        assert_eq!(percent_decode("b%2Fc").as_deref(), Some("b/c"));
        assert_eq!(percent_decode("b%2"), None);
        assert_eq!(percent_decode("%ff%fe"), None);
        assert_eq!(query_param("digest", "digest"), Some(""));
    }

    #[test]
    fn one_pass_finds_the_first_value_of_each_header() {
        let mut h = HeaderMap::new();
        h.append("X-Forwarded-For", HeaderValue::from_static("10.0.0.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        h.insert(http::header::HOST, HeaderValue::from_static("r.example"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        let scan = RequestHeaders::scan(&h);
        assert_eq!(scan.x_forwarded_for, h.get("x-forwarded-for"));
        assert_eq!(value_str(scan.host), Some("r.example"));
        assert!(scan.user_agent.is_none() && scan.x_real_ip.is_none());
    }
}
