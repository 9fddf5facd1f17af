//! From a request and its response to Distribution's events.

use std::borrow::Cow;

use http::header::{HeaderMap, HeaderValue, CONTENT_RANGE};
use http::uri::Scheme;
use http::{Method, Request, StatusCode};

use super::addr::{peer_addr, write_remote_addr};
use super::route::{self, Parsed, Reference, Route};
use super::Shared;
use crate::event::{
    build_strings, write_new_id, Action, ActorRecord, Descriptor, Event, Frozen, RequestRecord, SharedStr,
    Span, StrBuf, Target, Timestamp,
};
use crate::hint::{AuthenticatedUser, EventHint, RequestId};

/// Blob events always carry this media type in Distribution.
pub(crate) const BLOB_MEDIA_TYPE: &str = "application/octet-stream";

/// Which request, as far as events are concerned. Its strings are slices of the
/// request's shared buffer (`S` = [`SharedStr`]), or borrowed while it is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind<S = SharedStr> {
    ManifestPull {
        tag: Option<S>,
        digest: Option<S>,
    },
    ManifestPush {
        tag: Option<S>,
        digest: Option<S>,
    },
    ManifestDelete {
        digest: S,
    },
    TagDelete {
        tag: S,
    },
    BlobPull {
        digest: S,
    },
    BlobDelete {
        digest: S,
    },
    /// POST to `uploads/`: a mount (`mount` + `from`) or a monolithic upload (`digest`).
    UploadStart {
        mount: Option<(S, S)>,
        digest: Option<S>,
    },
    /// PUT to an upload session: the blob is committed.
    UploadCommit {
        digest: Option<S>,
    },
    /// PATCH to an upload session: no event; its progress is remembered
    /// (only with a lookup service, see [`Memo`](super::memo::Memo)).
    UploadChunk,
}

impl<S> Kind<S> {
    /// The same kind with every string converted by `f`.
    fn map<T>(self, mut f: impl FnMut(S) -> T) -> Kind<T> {
        match self {
            Kind::ManifestPull { tag, digest } => Kind::ManifestPull {
                tag: tag.map(&mut f),
                digest: digest.map(&mut f),
            },
            Kind::ManifestPush { tag, digest } => Kind::ManifestPush {
                tag: tag.map(&mut f),
                digest: digest.map(&mut f),
            },
            Kind::ManifestDelete { digest } => Kind::ManifestDelete { digest: f(digest) },
            Kind::TagDelete { tag } => Kind::TagDelete { tag: f(tag) },
            Kind::BlobPull { digest } => Kind::BlobPull { digest: f(digest) },
            Kind::BlobDelete { digest } => Kind::BlobDelete { digest: f(digest) },
            Kind::UploadStart { mount, digest } => Kind::UploadStart {
                mount: mount.map(|(m, from)| (f(m), f(from))),
                digest: digest.map(&mut f),
            },
            Kind::UploadCommit { digest } => Kind::UploadCommit {
                digest: digest.map(&mut f),
            },
            Kind::UploadChunk => Kind::UploadChunk,
        }
    }
}

/// What the layer keeps of a request until its response arrives.
///
/// Built once per registry request: the strings the events need (those of `request`,
/// `actor`, the repository name, the tag or digest of the path) are slices of **one**
/// buffer, allocated once and shared by the request's events.
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    pub(crate) kind: Kind,
    pub(crate) name: SharedStr,
    pub(crate) prefix: String,
    pub(crate) method: Method,
    /// The request URI's scheme (absolute-form requests), if any.
    scheme: Option<Scheme>,
    /// `scheme://host<prefix>` of target URLs, when forwarding headers set them.
    forwarded_base: Option<String>,
    pub(crate) request: RequestRecord,
    pub(crate) actor: ActorRecord,
    pub(crate) req_content_type: Option<SharedStr>,
    pub(crate) req_content_length: Option<i64>,
    /// The request body's length: `Content-Length`, or 0 for an HTTP/1 request
    /// without `Content-Length` and `Transfer-Encoding`.
    req_body_length: Option<i64>,
    /// The path of an upload session (PATCH, PUT), when sizes are remembered.
    pub(crate) upload_key: Option<String>,
    /// The path and query of the upload session a PUT commits (with a lookup service).
    pub(crate) upload_target: Option<String>,
    /// `Range` end of the session's status, asked before its final PUT was forwarded.
    pub(crate) upload_status_end: Option<i64>,
    /// Forwarded on lookups so they pass the registry's auth.
    pub(crate) authorization: Option<HeaderValue>,
    /// Tags found (by a lookup before the delete) to point at a deleted manifest.
    pub(crate) tags_before_delete: Option<Vec<String>>,
    /// A copy of the request body as it passes (a manifest `PUT` with references wanted).
    pub(crate) body_tap: Option<std::sync::Arc<super::request_body::Tap>>,
    /// Where to ask for what the exchange lacks (the lookup service, or the wrapped one).
    pub(crate) lookup: Option<std::sync::Arc<dyn super::lookup::Lookup>>,
}

/// Fields the exchange did not carry, to be fetched by a lookup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Missing {
    /// The blob's size: ask with `HEAD /v2/<name>/blobs/<digest>`.
    pub(crate) blob_size: bool,
    /// Media type, size or references of a manifest: ask with `GET /v2/<name>/manifests/<digest>`.
    pub(crate) manifest: bool,
}

impl Missing {
    pub(crate) fn any(&self) -> bool {
        self.blob_size || self.manifest
    }
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn header_str(h: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The request headers the layer reads, found in one pass over the map (each the first
/// value of its name, as `HeaderMap::get` gives): cheaper than a hashed lookup per name.
#[derive(Default)]
pub(crate) struct RequestHeaders<'a> {
    host: Option<&'a HeaderValue>,
    user_agent: Option<&'a HeaderValue>,
    authorization: Option<&'a HeaderValue>,
    content_type: Option<&'a HeaderValue>,
    content_length: Option<&'a HeaderValue>,
    transfer_encoding: Option<&'a HeaderValue>,
    x_request_id: Option<&'a HeaderValue>,
    forwarded: Option<&'a HeaderValue>,
    x_forwarded_proto: Option<&'a HeaderValue>,
    x_forwarded_host: Option<&'a HeaderValue>,
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
struct ResponseHeaders<'a> {
    docker_content_digest: Option<&'a HeaderValue>,
    content_type: Option<&'a HeaderValue>,
    content_length: Option<&'a HeaderValue>,
}

impl<'a> ResponseHeaders<'a> {
    fn scan(headers: &'a HeaderMap) -> Self {
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

fn value_str(v: Option<&HeaderValue>) -> Option<&str> {
    v.and_then(|v| v.to_str().ok())
}

fn value_i64(v: Option<&HeaderValue>) -> Option<i64> {
    value_str(v)?.trim().parse::<i64>().ok().filter(|n| *n >= 0)
}

/// Decodes `%XX` escapes of a query value (repository names in `from=`).
fn percent_decode(s: &str) -> Option<Cow<'_, str>> {
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

/// Appends the request id: the [`RequestId`] extension, a sane `X-Request-Id`, or a new id.
fn write_request_id<B>(out: &mut StrBuf<'_>, req: &Request<B>, h: &RequestHeaders<'_>) -> Span {
    if let Some(RequestId(id)) = req.extensions().get::<RequestId>() {
        return out.push(id);
    }
    if let Some(id) = value_str(h.x_request_id) {
        let id = id.trim();
        if !id.is_empty() && id.len() <= 200 && id.bytes().all(|c| c.is_ascii_graphic()) {
            return out.push(id);
        }
    }
    out.span(write_new_id)
}

/// The request's host: `Host`, or the URI authority (HTTP/2).
fn request_host<'a, B>(req: &'a Request<B>, h: &RequestHeaders<'a>) -> &'a str {
    match value_str(h.host) {
        Some(host) => host,
        None => req.uri().authority().map_or("", |a| a.as_str()),
    }
}

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

/// `media_type` as a [`SharedStr`]: static when it is a well-known one.
fn media_type_str(media_type: &str) -> SharedStr {
    match KNOWN_MEDIA_TYPES.iter().find(|m| **m == media_type) {
        Some(m) => SharedStr::from_static(m),
        None => SharedStr::from(media_type),
    }
}

/// The method as a static [`SharedStr`] (any other method is copied).
fn method_str(method: &Method) -> SharedStr {
    const METHODS: &[&str] = &["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"];
    match METHODS.iter().find(|m| **m == method.as_str()) {
        Some(m) => SharedStr::from_static(m),
        None => SharedStr::from(method.as_str()),
    }
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
pub(crate) fn pending<B>(req: &Request<B>, shared: &Shared) -> Option<Pending> {
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
                    .and_then(percent_decode)
                    .filter(|d| route::valid_digest(d).is_some())
            };
            let digest = digest_param("digest");
            let mount = match (digest_param("mount"), query_param(query, "from")) {
                (Some(m), Some(f)) => percent_decode(f)
                    .filter(|f| route::valid_name(f).is_some())
                    .map(|f| (m, f)),
                _ => None,
            };
            Kind::UploadStart { mount, digest }
        }
        (Route::Upload { .. }, "PUT") => Kind::UploadCommit {
            digest: query_param(query, "digest")
                .and_then(percent_decode)
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
    let req_content_length = value_i64(headers.content_length);
    let req_body_length = req_content_length.or_else(|| {
        let http1 = matches!(req.version(), http::Version::HTTP_10 | http::Version::HTTP_11);
        (http1 && headers.transfer_encoding.is_none()).then_some(0)
    });
    // Every string of the request in one buffer.
    let (strings, (kind, name, id, addr, host, useragent, user)) = build_strings(|b| {
        let kind = kind.map(|s| b.push(&s));
        let name = b.push(parsed.name());
        let id = write_request_id(b, req, &headers);
        let addr = b.span(|s| {
            write_remote_addr(
                s,
                &headers,
                peer_addr(req.extensions()),
                shared.trusted_proxies.as_ref(),
            )
        });
        let host = b.push(host);
        let useragent = b.push(value_str(headers.user_agent).unwrap_or(""));
        let user = match req.extensions().get::<AuthenticatedUser>() {
            Some(AuthenticatedUser(name)) => b.push(name),
            None => basic_user(headers.authorization)
                .map(|u| b.push(&u))
                .unwrap_or_default(),
        };
        (kind, name, id, addr, host, useragent, user)
    });
    let get = |span: Span| strings.get(span);
    Some(Pending {
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
        },
        actor: ActorRecord { name: get(user) },
        req_content_type: value_str(headers.content_type).map(|v| media_type_str(media_type_of(v))),
        req_content_length,
        req_body_length,
        upload_key,
        upload_target,
        upload_status_end: None,
        authorization: headers.authorization.cloned(),
        tags_before_delete: None,
        body_tap: None,
        lookup: None,
    })
}

/// `application/json; charset=utf-8` → `application/json`.
pub(crate) fn media_type_of(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Total size from `Content-Range: bytes a-b/total`.
fn content_range_total(h: &HeaderMap) -> Option<i64> {
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
fn location_path(h: &HeaderMap) -> Option<String> {
    let loc = header_str(h, http::header::LOCATION)?;
    let uri: http::Uri = loc.parse().ok()?;
    Some(uri.path().to_owned())
}

impl Pending {
    /// The request body's length: the bytes that passed through the layer (counted for
    /// uploads), else what the headers said.
    fn body_length(&self) -> Option<i64> {
        self.body_tap
            .as_ref()
            .and_then(|t| t.counted())
            .and_then(|n| i64::try_from(n).ok())
            .or(self.req_body_length)
    }

    /// Remembers what this exchange tells about blob sizes and upload sessions.
    fn remember(&self, memo: &super::memo::Memo, status: StatusCode, headers: &HeaderMap) {
        match &self.kind {
            // A session was opened (also a mount that fell back to an upload, or a
            // POST whose body the registry ignored).
            Kind::UploadStart { .. } if status == StatusCode::ACCEPTED => {
                if let Some(key) = location_path(headers) {
                    match (upload_range_end(headers), self.body_length()) {
                        (Some(end), _) if end > 0 => memo.upload_progress(&key, Some(end), None),
                        (_, Some(0)) => memo.upload_started(&key),
                        _ => {}
                    }
                }
            }
            Kind::UploadChunk if status == StatusCode::ACCEPTED => {
                if let Some(key) = &self.upload_key {
                    memo.upload_progress(key, upload_range_end(headers), self.body_length());
                }
            }
            _ => {}
        }
    }

    /// An event of this request; `keep` says whether the request's strings are still
    /// needed afterwards (more events, or a lookup), else they are moved into it.
    fn event(
        &mut self,
        id: SharedStr,
        action: Action,
        target: Target,
        shared: &Shared,
        at: Timestamp,
        keep: bool,
    ) -> Event {
        let (request, actor) = if keep {
            (self.request.clone(), self.actor.clone())
        } else {
            (std::mem::take(&mut self.request), std::mem::take(&mut self.actor))
        };
        Event {
            id,
            timestamp: at,
            action,
            target,
            request,
            actor,
            source: shared.source.clone(),
        }
    }

    /// Appends `<base>/v2/<name>/<kind>/<digest>`, the target URL.
    fn write_target_url(&self, url: &mut String, shared: &Shared, kind: &str, digest: &str) {
        let scheme = self.scheme.as_ref().map_or("http", |s| s.as_str());
        match (&shared.base_url, &self.forwarded_base) {
            (Some(b), _) => {
                url.push_str(b.trim_end_matches('/'));
                url.push_str(&self.prefix);
            }
            (None, Some(f)) => url.push_str(f),
            (None, None) => {
                url.push_str(scheme);
                url.push_str("://");
                url.push_str(&self.request.host);
                url.push_str(&self.prefix);
            }
        }
        url.push_str("/v2/");
        url.push_str(&self.name);
        url.push('/');
        url.push_str(kind);
        url.push('/');
        url.push_str(digest);
    }

    /// Whether the response is one Distribution emits events for.
    pub(crate) fn succeeded(&self, status: StatusCode) -> bool {
        match &self.kind {
            Kind::ManifestPull { .. } => status == StatusCode::OK,
            Kind::ManifestPush { .. } => status == StatusCode::CREATED,
            Kind::ManifestDelete { .. } | Kind::TagDelete { .. } | Kind::BlobDelete { .. } => {
                status == StatusCode::ACCEPTED
            }
            // Distribution emits blob pulls for partial and redirected reads too.
            Kind::BlobPull { .. } => matches!(status.as_u16(), 200 | 206 | 304 | 307),
            Kind::UploadStart { mount, digest } => {
                status == StatusCode::CREATED && (mount.is_some() || digest.is_some())
            }
            Kind::UploadCommit { .. } => matches!(status.as_u16(), 201 | 204),
            Kind::UploadChunk => false,
        }
    }

    /// Builds the events of a successful response.
    ///
    /// Moves the strings the events need out of `self` when nothing reads them later
    /// (a lookup for missing fields does).
    pub(crate) fn events(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        hint: Option<&EventHint>,
        shared: &Shared,
    ) -> (Vec<Event>, Missing) {
        if let Some(memo) = &shared.memo {
            self.remember(memo, status, headers);
        }
        if !self.succeeded(status) {
            return (Vec::new(), Missing::default());
        }
        // The kind is worked on apart from the rest; its strings may be moved out.
        let placeholder = Kind::TagDelete {
            tag: SharedStr::new(),
        };
        let mut kind = std::mem::replace(&mut self.kind, placeholder);
        let result = self.events_of(&mut kind, status, headers, hint, shared);
        self.kind = kind;
        result
    }

    fn events_of(
        &mut self,
        kind: &mut Kind,
        status: StatusCode,
        headers: &HeaderMap,
        hint: Option<&EventHint>,
        shared: &Shared,
    ) -> (Vec<Event>, Missing) {
        let mut missing = Missing::default();
        let at = Timestamp::now();
        if let Kind::ManifestDelete { digest } = kind {
            return (self.delete_events(digest, hint, shared, at), missing);
        }
        // The strings this response adds (event id, URL, digest, …) share one buffer.
        let (strings, draft) =
            build_strings(|b| self.draft(kind, b, status, headers, hint, shared, &mut missing));
        let Some(draft) = draft else {
            return (Vec::new(), missing);
        };
        // A lookup reads the name, host and credentials of the request later.
        let keep = missing.any() && self.lookup.is_some();
        let target = Target {
            descriptor: Descriptor {
                media_type: draft.media_type,
                digest: draft.digest.resolve(&strings),
                size: draft.size,
                ..Descriptor::default()
            },
            length: draft.size,
            repository: if keep {
                self.name.clone()
            } else {
                std::mem::take(&mut self.name)
            },
            from_repository: draft.from_repository,
            url: draft.url.map_or_else(SharedStr::new, |span| strings.get(span)),
            tag: draft.tag,
            references: draft.references,
        };
        let event = self.event(strings.get(draft.id), draft.action, target, shared, at, keep);
        (vec![event], missing)
    }

    /// A delete by digest: the manifest's event, then one per tag that pointed at it.
    fn delete_events(
        &mut self,
        digest: &SharedStr,
        hint: Option<&EventHint>,
        shared: &Shared,
        at: Timestamp,
    ) -> Vec<Event> {
        let tags = hint
            .and_then(|h| h.deleted_tags.as_ref())
            .or(self.tags_before_delete.as_ref());
        let tags = tags.map_or(&[][..], Vec::as_slice);
        let (strings, spans) = build_strings(|b| {
            std::iter::once("")
                .chain(tags.iter().map(String::as_str))
                .map(|tag| (b.span(write_new_id), b.push(tag)))
                .collect::<Vec<_>>()
        });
        let mut events = Vec::with_capacity(spans.len());
        for (i, (id, tag)) in spans.into_iter().enumerate() {
            let mut target = Target {
                repository: self.name.clone(),
                tag: strings.get(tag),
                ..Target::default()
            };
            if i == 0 {
                target.descriptor.digest = digest.clone();
            }
            events.push(self.event(strings.get(id), Action::Delete, target, shared, at, true));
        }
        events
    }

    /// What the event of a response says, with its new strings written to `b`; `None`
    /// when the response yields no event.
    #[allow(clippy::too_many_arguments)]
    fn draft(
        &self,
        kind: &mut Kind,
        b: &mut StrBuf<'_>,
        status: StatusCode,
        headers: &HeaderMap,
        hint: Option<&EventHint>,
        shared: &Shared,
        missing: &mut Missing,
    ) -> Option<Draft> {
        let response = ResponseHeaders::scan(headers);
        let resp_digest = value_str(response.docker_content_digest).and_then(route::valid_digest);
        let hint_digest = hint.and_then(|h| h.digest.as_deref());
        let hint_size = hint.and_then(|h| h.size);
        let push = matches!(kind, Kind::ManifestPush { .. });
        let mut draft = Draft::default();
        match kind {
            Kind::ManifestPull { tag, digest } | Kind::ManifestPush { tag, digest } => {
                draft.action = if push { Action::Push } else { Action::Pull };
                let Some((d, piece)) = resp_digest
                    .or(hint_digest)
                    .map(|d| (d, Piece::At(b.push(d))))
                    .or_else(|| digest.as_ref().map(|d| (d.as_str(), Piece::Shared(d.clone()))))
                else {
                    tracing::debug!(repository = %self.name, "manifest response without a digest: no event");
                    return None;
                };
                draft.digest = piece;
                draft.tag = tag.take().unwrap_or_default();
                draft.media_type = match hint.and_then(|h| h.media_type.as_deref()) {
                    Some(m) => media_type_str(m),
                    None if push => self.req_content_type.clone().unwrap_or_default(),
                    None => value_str(response.content_type)
                        .map(|v| media_type_str(media_type_of(v)))
                        .unwrap_or_default(),
                };
                let size = hint_size.or_else(|| {
                    if push {
                        self.req_content_length
                    } else {
                        value_i64(response.content_length)
                    }
                });
                missing.manifest = size.is_none() || draft.media_type.is_empty();
                draft.size = size.unwrap_or(0);
                draft.url = Some(b.span(|s| self.write_target_url(s, shared, "manifests", d)));
                if shared.include_references {
                    match hint.and_then(|h| h.references.clone()) {
                        Some(refs) => draft.references = refs,
                        None => missing.manifest = true,
                    }
                }
            }
            Kind::ManifestDelete { .. } | Kind::UploadChunk => return None,
            Kind::TagDelete { tag } => {
                draft.action = Action::Delete;
                draft.tag = tag.clone();
            }
            Kind::BlobDelete { digest } => {
                draft.action = Action::Delete;
                draft.digest = Piece::Shared(digest.clone());
            }
            Kind::BlobPull { digest } => {
                draft.action = Action::Pull;
                let size = hint_size.or_else(|| match status.as_u16() {
                    206 => content_range_total(headers),
                    200 => value_i64(response.content_length),
                    _ => None,
                });
                let size = remembered(shared, digest, size);
                missing.blob_size = size.is_none();
                self.blob(&mut draft, b, shared, Piece::Shared(digest.clone()), digest, size);
            }
            Kind::UploadStart { mount, digest } => {
                let d = match (mount, digest) {
                    (Some((m, from)), _) => {
                        draft.action = Action::Mount;
                        draft.from_repository = from.clone();
                        m.clone()
                    }
                    (None, Some(d)) => {
                        draft.action = Action::Push;
                        d.clone()
                    }
                    (None, None) => return None,
                };
                let size = hint_size.or_else(|| {
                    if draft.action == Action::Push {
                        self.body_length().filter(|n| *n > 0).or(self.req_content_length)
                    } else {
                        None
                    }
                });
                let size = remembered(shared, &d, size);
                missing.blob_size = size.is_none();
                let text = d.clone();
                self.blob(&mut draft, b, shared, Piece::Shared(d), &text, size);
            }
            Kind::UploadCommit { digest } => {
                draft.action = Action::Push;
                let (d, piece) = match digest {
                    Some(d) => (d.to_string(), Piece::Shared(d.clone())),
                    None => {
                        let d = resp_digest.or(hint_digest)?;
                        (d.to_owned(), Piece::At(b.push(d)))
                    }
                };
                // Without a hint: the bytes the session received plus this request's body.
                // The session's status (asked before this PUT) says how many, except that
                // `0-0` stands for 0 and for 1 byte: then what this layer saw decides.
                let seen = match (&shared.memo, &self.upload_key) {
                    (Some(memo), Some(key)) => memo.upload_finished(key),
                    _ => None,
                };
                let received = match self.upload_status_end {
                    Some(end) if end > 0 => Some(end + 1),
                    Some(_) => seen.filter(|n| *n <= 1),
                    // No status asked: the bytes this layer saw pass, if it saw the session.
                    None => seen,
                };
                let size = hint_size.or_else(|| Some(received? + self.body_length()?));
                let size = remembered(shared, &d, size);
                missing.blob_size = size.is_none();
                self.blob(&mut draft, b, shared, piece, &d, size);
            }
        }
        draft.id = b.span(write_new_id);
        Some(draft)
    }

    /// A blob's descriptor and URL.
    fn blob(
        &self,
        draft: &mut Draft,
        b: &mut StrBuf<'_>,
        shared: &Shared,
        digest: Piece,
        text: &str,
        size: Option<i64>,
    ) {
        draft.url = Some(b.span(|s| self.write_target_url(s, shared, "blobs", text)));
        draft.media_type = SharedStr::from_static(BLOB_MEDIA_TYPE);
        draft.digest = digest;
        draft.size = size.unwrap_or(0);
    }
}

/// A string of an event being drafted: one the request already shares, or one written
/// to the response's buffer.
#[derive(Debug)]
enum Piece {
    Shared(SharedStr),
    At(Span),
}

impl Default for Piece {
    fn default() -> Self {
        Piece::Shared(SharedStr::new())
    }
}

impl Piece {
    fn resolve(self, strings: &Frozen) -> SharedStr {
        match self {
            Piece::Shared(s) => s,
            Piece::At(span) => strings.get(span),
        }
    }
}

/// The fields of the event a response yields, before its buffer is frozen.
#[derive(Debug)]
struct Draft {
    id: Span,
    action: Action,
    media_type: SharedStr,
    digest: Piece,
    size: i64,
    url: Option<Span>,
    tag: SharedStr,
    from_repository: SharedStr,
    references: Vec<Descriptor>,
}

impl Default for Draft {
    fn default() -> Self {
        Draft {
            id: Span::default(),
            action: Action::Pull,
            media_type: SharedStr::new(),
            digest: Piece::default(),
            size: 0,
            url: None,
            tag: SharedStr::new(),
            from_repository: SharedStr::new(),
            references: Vec::new(),
        }
    }
}

/// A known size is remembered for `digest`; an unknown one is recalled, if it was seen.
fn remembered(shared: &Shared, digest: &str, size: Option<i64>) -> Option<i64> {
    let Some(memo) = &shared.memo else {
        return size;
    };
    match size {
        Some(n) => {
            memo.remember_size(digest, n);
            Some(n)
        }
        None => memo.size(digest),
    }
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
    fn basic_auth_user() {
        let user = |v: &'static str| basic_user(Some(&HeaderValue::from_static(v)));
        assert_eq!(user("Basic dXNlcjpwYXNz").as_deref(), Some("user"));
        assert_eq!(user("Bearer abc"), None);
        assert_eq!(user("Basic !!!"), None);
        assert_eq!(basic_user(None), None);
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
