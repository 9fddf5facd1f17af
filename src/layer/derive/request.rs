//! What the layer keeps of a request: [`pending`].

use std::borrow::Cow;

use http::header::HeaderValue;
use http::{Method, Request};

use super::pending::{Kind, Pending};
use crate::event::{build_strings, ActorRecord, PlainTable, RequestRecord, SharedStr, Span, StrBuf};
use crate::hint::{AuthenticatedUser, RequestId};
use crate::layer::addr::{peer_addr, write_remote_addr};
use crate::layer::headers::{
    media_type_value, query_param, valid_traceparent, value_size, value_str, RequestHeaders,
};
use crate::layer::route::{self, Parsed, Reference, Route};
use crate::layer::shared::Shared;
use crate::percent::decode_strict;

/// Basic auth user name from `Authorization`.
fn basic_user(authorization: Option<&HeaderValue>) -> Option<String> {
    use base64::Engine;
    let v = value_str(authorization)?;
    let (scheme, cred) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(cred.trim())
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (user, _) = raw.split_once(':')?;
    Some(user.to_owned())
}

/// Appends the request id the request brings: the [`RequestId`] extension, or a sane
/// `X-Request-Id`. Without one the span is empty, and the layer makes an id only if the
/// response yields events (with their ids: one read of the clock for all of them).
fn write_request_id<B>(out: &mut StrBuf<'_>, req: &Request<B>, h: &RequestHeaders<'_>) -> Span {
    if let Some(RequestId(id)) = req.extensions().get::<RequestId>() {
        return out.push_checked(id);
    }
    if let Some(id) = value_str(h.x_request_id) {
        let id = id.trim();
        if !id.is_empty() && id.len() <= 200 && id.bytes().all(|c| c.is_ascii_graphic()) {
            return out.push_checked(id);
        }
    }
    Span::default()
}

/// The request's host: `Host`, or the URI authority (HTTP/2).
fn request_host<'a, B>(req: &'a Request<B>, h: &RequestHeaders<'a>) -> &'a str {
    match value_str(h.host) {
        Some(host) => host,
        None => req.uri().authority().map_or("", |a| a.as_str()),
    }
}

/// The method as a shared, plain [`SharedStr`] (any other method is copied).
fn method_str(method: &Method) -> SharedStr {
    static METHODS: PlainTable =
        PlainTable::new(&["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"]);
    let i = match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::PUT => 2,
        Method::POST => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        _ => usize::MAX,
    };
    METHODS.get(i).unwrap_or_else(|| SharedStr::from(method.as_str()))
}

/// The base of target URLs when `Forwarded` or `X-Forwarded-Proto`/`-Host` set
/// it, like Distribution's `NewURLBuilderFromRequest`; `None` without those headers
/// (the base is then the request's scheme and host).
fn forwarded_base<B>(req: &Request<B>, h: &RequestHeaders<'_>, host: &str, prefix: &str) -> Option<String> {
    let fwd = value_str(h.forwarded);
    if h.forwarded.is_none() && h.x_forwarded_proto.is_none() && h.x_forwarded_host.is_none() {
        return None;
    }
    let mut scheme = req.uri().scheme_str().unwrap_or("http").to_owned();
    let mut host = host.to_owned();
    if let Some(fwd) = fwd {
        let first = fwd.split(',').next().unwrap_or("");
        for pair in first.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                let v = v.trim_matches('"');
                match k.trim().to_ascii_lowercase().as_str() {
                    "proto" if !v.is_empty() => scheme = v.to_owned(),
                    "host" if !v.is_empty() => host = v.to_owned(),
                    _ => {}
                }
            }
        }
    } else {
        if let Some(p) = value_str(h.x_forwarded_proto).and_then(|v| v.split(',').next()) {
            if !p.trim().is_empty() {
                scheme = p.trim().to_owned();
            }
        }
        if let Some(fh) = value_str(h.x_forwarded_host).and_then(|v| v.split(',').next()) {
            if !fh.trim().is_empty() {
                host = fh.trim().to_owned();
            }
        }
    }
    Some(format!("{scheme}://{host}{prefix}"))
}

/// Inspects a request; `None` when it cannot yield an event.
pub(crate) fn pending<B>(req: &Request<B>, shared: &Shared) -> Option<Box<Pending>> {
    let parsed: Parsed<'_> = route::parse(req.uri().path())?;
    let method = req.method();
    let query = req.uri().query().unwrap_or("");
    let kind: Kind<Cow<'_, str>> = match (parsed.route, method.as_str()) {
        (Route::Manifest { reference, .. }, "GET" | "HEAD") => match reference {
            Reference::Tag(t) => Kind::ManifestPull {
                tag: Some(t.into()),
                digest: None,
            },
            Reference::Digest(d) => Kind::ManifestPull {
                tag: None,
                digest: Some(d.into()),
            },
        },
        (Route::Manifest { reference, .. }, "PUT") => match reference {
            Reference::Tag(t) => Kind::ManifestPush {
                tag: Some(t.into()),
                digest: None,
            },
            Reference::Digest(d) => Kind::ManifestPush {
                tag: None,
                digest: Some(d.into()),
            },
        },
        (Route::Manifest { reference, .. }, "DELETE") => match reference {
            Reference::Tag(t) => Kind::TagDelete { tag: t.into() },
            Reference::Digest(d) => Kind::ManifestDelete { digest: d.into() },
        },
        (Route::Blob { digest, .. }, "GET" | "HEAD") => Kind::BlobPull {
            digest: digest.into(),
        },
        (Route::Blob { digest, .. }, "DELETE") => Kind::BlobDelete {
            digest: digest.into(),
        },
        (Route::UploadStart { .. }, "POST") => {
            // Clients percent-encode query values (skopeo sends `sha256%3A…`, `library%2Ftest`).
            let digest_param = |key: &str| {
                query_param(query, key)
                    .and_then(decode_strict)
                    .filter(|d| route::valid_digest(d).is_some())
            };
            let digest = digest_param("digest");
            let mount = match (digest_param("mount"), query_param(query, "from")) {
                (Some(m), Some(f)) => decode_strict(f)
                    .filter(|f| route::valid_name(f).is_some())
                    .map(|f| (m, f)),
                _ => None,
            };
            Kind::UploadStart { mount, digest }
        }
        (Route::Upload { .. }, "PUT") => Kind::UploadCommit {
            digest: query_param(query, "digest")
                .and_then(decode_strict)
                .filter(|d| route::valid_digest(d).is_some()),
        },
        (Route::Upload { .. }, "PATCH") if shared.memo.is_some() => Kind::UploadChunk,
        _ => return None,
    };
    if shared.skip_head_pulls && method == Method::HEAD {
        return None;
    }
    let headers = RequestHeaders::scan(req.headers());
    let host = request_host(req, &headers);
    let forwarded_base = if shared.base_url.is_some() {
        None
    } else {
        forwarded_base(req, &headers, host, parsed.prefix)
    };
    let upload_key = match parsed.route {
        Route::Upload { .. } if shared.memo.is_some() => Some(req.uri().path().to_owned()),
        _ => None,
    };
    let upload_target = match (&kind, &upload_key) {
        (Kind::UploadCommit { .. }, Some(_)) => req.uri().path_and_query().map(|p| p.as_str().to_owned()),
        _ => None,
    };
    let req_content_length = value_size(headers.content_length);
    let req_body_length = req_content_length.or_else(|| {
        let http1 = matches!(req.version(), http::Version::HTTP_10 | http::Version::HTTP_11);
        (http1 && headers.transfer_encoding.is_none()).then_some(0)
    });
    // Every string of the request in one buffer.
    let (strings, (kind, name, id, addr, host, useragent, user, traceparent)) = build_strings(|b| {
        // Tags, digests and names passed their grammars: nothing in them needs escaping.
        let kind = kind.map(|s| b.push_plain(&s));
        let name = b.push_plain(parsed.name());
        let id = write_request_id(b, req, &headers);
        let addr = b.span_plain(|s| {
            let start = s.len();
            write_remote_addr(
                s,
                &headers,
                peer_addr(req.extensions()),
                shared.trusted_proxies.as_ref(),
            );
            !crate::event::any_special(&s.as_bytes()[start..])
        });
        // Text from headers is looked at once here, so that encoders need not.
        let host = b.push_checked(host);
        let useragent = b.push_checked(value_str(headers.user_agent).unwrap_or(""));
        let user = match req.extensions().get::<AuthenticatedUser>() {
            Some(AuthenticatedUser(name)) => b.push(name),
            None => basic_user(headers.authorization)
                .map(|u| b.push(&u))
                .unwrap_or_default(),
        };
        let traceparent = b.push(
            value_str(headers.traceparent)
                .and_then(valid_traceparent)
                .unwrap_or(""),
        );
        (kind, name, id, addr, host, useragent, user, traceparent)
    });
    let get = |span: Span| strings.get(span);
    // Boxed where it is made: it is moved into the response future and on to the events'
    // hand-off, ≈ 600 bytes each time unboxed.
    Some(Box::new(Pending {
        kind: kind.map(get),
        name: get(name),
        prefix: parsed.prefix.to_owned(),
        method: method.clone(),
        scheme: req.uri().scheme().cloned(),
        forwarded_base,
        request: RequestRecord {
            id: get(id),
            addr: get(addr),
            host: get(host),
            method: method_str(method),
            useragent: get(useragent),
            traceparent: get(traceparent),
        },
        actor: ActorRecord { name: get(user) },
        req_content_type: media_type_value(headers.content_type),
        req_content_length,
        req_body_length,
        upload_key,
        upload_target,
        upload_status_end: None,
        authorization: headers.authorization.cloned(),
        tags_before_delete: None,
        body_tap: None,
        lookup: None,
        memo: shared.include_references.then(|| shared.memo.clone()).flatten(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every method is its own text; the usual ones are shared plain copies.
    #[test]
    fn methods_as_text() {
        for m in ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"] {
            let text = method_str(&Method::from_bytes(m.as_bytes()).unwrap());
            assert_eq!((text.as_str(), text.is_plain()), (m, true));
        }
        for m in ["CONNECT", "TRACE", "PROPFIND"] {
            assert_eq!(method_str(&Method::from_bytes(m.as_bytes()).unwrap()), m);
        }
    }

    #[test]
    fn basic_auth_user() {
        let user = |v: &'static str| basic_user(Some(&HeaderValue::from_static(v)));
        assert_eq!(user("Basic dXNlcjpwYXNz").as_deref(), Some("user"));
        assert_eq!(user("Bearer abc"), None);
        assert_eq!(user("Basic !!!"), None);
        assert_eq!(basic_user(None), None);
    }

    /// The base of target URLs from `Forwarded` (empty values ignored) or from either of
    /// `X-Forwarded-Proto` and `X-Forwarded-Host` alone; none without such headers.
    #[test]
    fn forwarded_bases() {
        let layer = crate::NotificationLayer::new(crate::dispatcher::Dispatcher::disabled());
        let base = |headers: &[(&str, &str)]| {
            let mut req = Request::builder()
                .uri("/v2/a/manifests/t")
                .header("host", "reg:5000");
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            pending(&req.body(()).unwrap(), &layer.shared)
                .unwrap()
                .forwarded_base
        };
        assert_eq!(base(&[]), None);
        assert_eq!(
            base(&[("x-forwarded-proto", "https")]).as_deref(),
            Some("https://reg:5000")
        );
        assert_eq!(
            base(&[("x-forwarded-host", "front")]).as_deref(),
            Some("http://front")
        );
        assert_eq!(
            base(&[("forwarded", "proto=https;host=\"front:443\", for=1.2.3.4")]).as_deref(),
            Some("https://front:443")
        );
        assert_eq!(
            base(&[("forwarded", "proto=;host=\"\"")]).as_deref(),
            Some("http://reg:5000")
        );
    }

    /// A client's `X-Request-Id` is the events' request id only when it is sane: not empty
    /// (after trimming), at most 200 bytes, visible ASCII; else the layer makes one.
    #[test]
    fn request_ids_from_the_client_only_when_sane() {
        let layer = crate::NotificationLayer::new(crate::dispatcher::Dispatcher::disabled());
        let id_of = |given: &str| {
            let req = Request::builder()
                .uri("/v2/a/manifests/t")
                .header("x-request-id", given)
                .body(())
                .unwrap();
            pending(&req, &layer.shared).unwrap().request.id.to_string()
        };
        let longest = "i".repeat(200);
        for sane in ["abc-123", " padded ", longest.as_str()] {
            assert_eq!(id_of(sane), sane.trim());
        }
        let too_long = "i".repeat(201);
        for insane in ["", "   ", "a b", "caf\u{e9}", too_long.as_str()] {
            // None yet: the events' request id is made with them (see `derive::tests`).
            assert_eq!(id_of(insane), "", "{insane:?}");
        }
    }
}
