//! The headers, query parameters and numbers the layer reads from an exchange, and the media
//! types it writes into events. Shared by what derives events (`derive`), the client address
//! (`addr.rs`) and the lookups (`lookup.rs`).

use http::header::{HeaderMap, HeaderValue, CONTENT_RANGE};

use crate::event::{PlainTable, SharedStr};

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
    pub(crate) traceparent: Option<&'a HeaderValue>,
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
                "traceparent" => &mut h.traceparent,
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

/// `value` if it is a W3C Trace Context `traceparent` (`version-traceid-parentid-flags` in
/// lowercase hex, 2-32-16-2 digits, neither id all zeros, version not `ff`); a version above
/// `00` may append `-…` after the flags, which is kept as given.
pub(crate) fn valid_traceparent(value: &str) -> Option<&str> {
    let b = value.as_bytes();
    let hex = |r: std::ops::Range<usize>| {
        b.get(r)
            .is_some_and(|s| s.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
    };
    let zeros = |r: std::ops::Range<usize>| b[r].iter().all(|&c| c == b'0');
    let shape = hex(0..2)
        && b.get(2) == Some(&b'-')
        && hex(3..35)
        && b.get(35) == Some(&b'-')
        && hex(36..52)
        && b.get(52) == Some(&b'-')
        && hex(53..55);
    if !shape || &b[..2] == b"ff" || zeros(3..35) || zeros(36..52) {
        return None;
    }
    let tail_ok = match b.len() {
        55 => true,
        _ => &b[..2] != b"00" && b[55] == b'-' && b[55..].iter().all(|c| c.is_ascii_graphic()),
    };
    tail_ok.then_some(value)
}

/// A size from a header (`Content-Length`): see [`parse_size`].
pub(crate) fn value_size(v: Option<&HeaderValue>) -> Option<i64> {
    parse_size(ascii_value(v)?)
}

/// A header value that is a valid digest ([`valid_digest`](super::route::valid_digest)).
pub(crate) fn value_digest(v: Option<&HeaderValue>) -> Option<&str> {
    super::route::valid_digest(ascii_value(v)?)
}

/// A header value as text for a parser that takes ASCII only (a size, a digest): checked as
/// UTF-8 a word at a time, not byte by byte for visible ASCII as [`value_str`] does; the parser
/// refuses anything else, so both give the same answer.
fn ascii_value(v: Option<&HeaderValue>) -> Option<&str> {
    std::str::from_utf8(v?.as_bytes()).ok()
}

/// A size from outside (a header, a query): one or more ASCII digits, spaces and tabs
/// around them allowed, at most `i64::MAX` (the `size` of an event is a signed 64-bit
/// number). Anything else — a sign, an exponent, a list, a larger number — is no size.
pub(crate) fn parse_size(s: &str) -> Option<i64> {
    let digits = s.trim_matches([' ', '\t']);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    // Parsing digits can only fail by overflow, and `u64` holds every `i64` size.
    i64::try_from(digits.parse::<u64>().ok()?).ok()
}

/// The media type a `Content-Type` value names, as shared text: a value that is exactly a
/// known media type is found by comparing its bytes, without checking it as text or
/// looking for parameters; any other gives its part before `;`, trimmed (as
/// [`media_type_of`] and [`media_type_str`] make it). `None` without a value, or for one that
/// is not visible ASCII.
pub(crate) fn media_type_value(v: Option<&HeaderValue>) -> Option<SharedStr> {
    let v = v?;
    if let Some(known) = KNOWN.find_bytes(v.as_bytes()) {
        return Some(known);
    }
    value_str(Some(v)).map(|v| media_type_str(media_type_of(v)))
}

/// `application/json; charset=utf-8` → `application/json`.
pub(crate) fn media_type_of(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Blob events always carry this media type in Distribution.
pub(crate) const BLOB_MEDIA_TYPE: &str = "application/octet-stream";

/// Media types events commonly carry, so that they need no allocation.
const KNOWN_MEDIA_TYPES: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/json",
    BLOB_MEDIA_TYPE,
];

/// The well-known media types, shared and known to be plain.
static KNOWN: PlainTable = PlainTable::new(KNOWN_MEDIA_TYPES);

/// `media_type` as a [`SharedStr`]: a shared copy when it is a well-known one.
pub(crate) fn media_type_str(media_type: &str) -> SharedStr {
    KNOWN
        .find(media_type)
        .unwrap_or_else(|| SharedStr::from(media_type))
}

/// The complete length a `Content-Range` states: `bytes <first>-<last>/<complete>` (a
/// `206`), or `bytes */<complete>` when `unsatisfied` (a `416`). `None` when the header is
/// absent, malformed, names an unknown length (`*`), or is impossible (`first > last`,
/// `last >= complete`).
pub(crate) fn content_range_complete(h: &HeaderMap, unsatisfied: bool) -> Option<i64> {
    let v = header_str(h, CONTENT_RANGE)?.trim();
    let (unit, rest) = v.split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let (range, complete) = rest.trim_start().split_once('/')?;
    let complete = parse_size(complete)?;
    if unsatisfied {
        return (range == "*").then_some(complete);
    }
    let (first, last) = range.split_once('-')?;
    let (first, last) = (parse_size(first)?, parse_size(last)?);
    (first <= last && last < complete).then_some(complete)
}

/// The end of an upload's `Range: 0-<end>` (`bytes=` tolerated): the session holds
/// `end + 1` bytes (or none when `end` is 0: `0-0` is written for 0 and for 1 byte).
/// Callers add with checked arithmetic: `0-9223372036854775807` is no byte count.
pub(crate) fn upload_range_end(h: &HeaderMap) -> Option<i64> {
    let v = header_str(h, http::header::RANGE)?.trim();
    let v = v.strip_prefix("bytes=").unwrap_or(v);
    let (start, end) = v.split_once('-')?;
    if parse_size(start)? != 0 {
        return None;
    }
    parse_size(end)
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

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// The fast path of [`media_type_value`] gives what the text path gives, for known
    /// media types as they are, with parameters, spaces or another case, for unknown ones,
    /// and for values that are not text; a known one is the table's shared, plain copy.
    #[test]
    fn media_type_values_as_the_text_path_gives_them() {
        let text_path = |v: &HeaderValue| value_str(Some(v)).map(|v| media_type_str(media_type_of(v)));
        let mut values: Vec<HeaderValue> = Vec::new();
        for known in KNOWN_MEDIA_TYPES
            .iter()
            .chain(["text/plain", "application/x", ""].iter())
        {
            for v in [
                known.to_string(),
                format!("{known}; charset=utf-8"),
                format!(" {known} "),
                format!("{known};"),
                known.to_uppercase(),
                format!("{known}x"),
                known
                    .get(..known.len().saturating_sub(1))
                    .unwrap_or("")
                    .to_owned(),
            ] {
                values.push(HeaderValue::from_str(&v).unwrap());
            }
        }
        values.push(HeaderValue::from_bytes(b"application/json\xff").unwrap());
        values.push(HeaderValue::from_bytes("caf\u{e9}/x".as_bytes()).unwrap());
        for v in &values {
            let (fast, text) = (media_type_value(Some(v)), text_path(v));
            assert_eq!(fast, text, "{v:?}");
            assert_eq!(fast.map(|m| m.is_plain()), text.map(|m| m.is_plain()), "{v:?}");
        }
        assert_eq!(media_type_value(None), None);
        let known = media_type_value(Some(&HeaderValue::from_static(KNOWN_MEDIA_TYPES[2]))).unwrap();
        assert!(known.is_plain());
    }

    #[test]
    fn traceparents_of_the_w3c_examples_and_their_breakages() {
        assert_eq!(valid_traceparent(TP), Some(TP));
        // A future version may append fields; version 00 may not.
        let v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
        assert_eq!(valid_traceparent(v1), Some(v1));
        assert_eq!(valid_traceparent(&format!("{TP}-extra")), None);
        assert_eq!(
            valid_traceparent(&format!("{}-", &v1[..55])),
            Some(&*format!("{}-", &v1[..55]))
        );
        assert_eq!(valid_traceparent(&format!("{}x", &v1[..55])), None);
        for bad in [
            "",
            &TP[..54],
            &TP.replace("4bf9", "4BF9"),                               // uppercase
            &TP.replacen("00-", "ff-", 1),                             // version ff
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero parent id
            &TP.replace('-', "_"),
            &TP.replacen("-01", "-0g", 1),
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(valid_traceparent(bad), None, "{bad:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(crate::layer::route::proptest_config(256))]

        /// Any text: never a panic; what passes has the shape and came back unchanged.
        #[test]
        fn traceparent_of_any_text(text in "\\PC{0,80}|[0-9a-f-]{50,60}") {
            if let Some(tp) = valid_traceparent(&text) {
                proptest::prop_assert_eq!(tp, text.as_str());
                proptest::prop_assert!(tp.len() >= 55 && tp.as_bytes()[2] == b'-');
                proptest::prop_assert!(http::HeaderValue::from_str(tp).is_ok());
            }
        }

        /// Every well-formed version-00 value passes; changing any one character of it to a
        /// character outside lowercase hex fails it.
        #[test]
        fn traceparent_one_character_off(
            trace in "[0-9a-f]{31}[1-9a-f]", parent in "[0-9a-f]{15}[1-9a-f]", flags in "[0-9a-f]{2}",
            at in 0usize..55, with in "[g-zA-Z_ .]",
        ) {
            let tp = format!("00-{trace}-{parent}-{flags}");
            proptest::prop_assert_eq!(valid_traceparent(&tp), Some(tp.as_str()));
            let mut off = tp.clone().into_bytes();
            off[at] = with.as_bytes()[0];
            let off = String::from_utf8(off).unwrap();
            proptest::prop_assert_eq!(valid_traceparent(&off), None);
        }

        /// Sizes and digests read from any header bytes (obs-text, controls, UTF-8, digits
        /// with blanks, digests) are what reading the value as visible ASCII first gives.
        #[test]
        fn sizes_and_digests_as_through_visible_ascii(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![proptest::strategy::Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff],
                0..80,
            ),
            digits in "[ \t]{0,2}[0-9]{1,21}[ \t]{0,2}",
            digest in "sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}|[a-z0-9+._-]{1,8}:[a-zA-Z0-9=_\t-]{1,70}",
            utf8 in "\\PC{0,12}",
        ) {
            for raw in [bytes, digits.into_bytes(), digest.into_bytes(), utf8.into_bytes()] {
                let Ok(v) = HeaderValue::from_bytes(&raw) else { continue };
                proptest::prop_assert_eq!(value_size(Some(&v)), value_str(Some(&v)).and_then(parse_size));
                proptest::prop_assert_eq!(
                    value_digest(Some(&v)),
                    value_str(Some(&v)).and_then(crate::layer::route::valid_digest)
                );
            }
        }
    }

    #[test]
    fn query_and_decoding() {
        assert_eq!(query_param("mount=a&from=b%2Fc", "from"), Some("b%2Fc"));
        assert_eq!(crate::percent::decode_strict("b%2Fc").as_deref(), Some("b/c"));
        assert_eq!(crate::percent::decode_strict("b%2"), None);
        assert_eq!(crate::percent::decode_strict("%ff%fe"), None);
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

    #[test]
    fn sizes_from_outside() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size(" 10\t"), Some(10));
        assert_eq!(parse_size("007"), Some(7));
        assert_eq!(parse_size("9223372036854775807"), Some(i64::MAX));
        for bad in [
            "",
            " ",
            "-1",
            "+1",
            "1e3",
            "0x10",
            "1 0",
            "10, 10",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "\u{663}",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
        assert_eq!(parse_size(&"9".repeat(10_240)), None);
        let zeros = format!("{}1", "0".repeat(10_240));
        assert_eq!(parse_size(&zeros), Some(1));
    }

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn content_ranges() {
        let total = |v: &str, unsatisfied| content_range_complete(&with("content-range", v), unsatisfied);
        assert_eq!(total("bytes 0-4/27", false), Some(27));
        assert_eq!(total("Bytes  0-26/27", false), Some(27));
        assert_eq!(total("bytes */27", true), Some(27));
        assert_eq!(total("bytes */27", false), None);
        assert_eq!(total("bytes 0-4/27", true), None);
        assert_eq!(total("bytes 0-4/*", false), None);
        assert_eq!(total("bytes 5-2/10", false), None);
        assert_eq!(total("bytes 0-10/10", false), None);
        assert_eq!(total("bytes -1-5/10", false), None);
        assert_eq!(total("bytes 0-9/9223372036854775807", false), Some(i64::MAX));
        assert_eq!(total("bytes */18446744073709551615", true), None);
        assert_eq!(total("items 0-4/27", false), None);
        assert_eq!(total("bytes=0-4/27", false), None);
    }

    #[test]
    fn upload_ranges() {
        let end = |v: &str| upload_range_end(&with("range", v));
        assert_eq!(end("0-9"), Some(9));
        assert_eq!(end("bytes=0-9"), Some(9));
        assert_eq!(end("0-0"), Some(0));
        assert_eq!(end("0-9223372036854775807"), Some(i64::MAX));
        for bad in [
            "5-2",
            "-1",
            "0--1",
            "0-",
            "1-9",
            "0-18446744073709551615",
            "0-+5",
            "+0-5",
        ] {
            assert_eq!(end(bad), None, "{bad}");
        }
        assert_eq!(upload_range_end(&HeaderMap::new()), None);
    }
}
