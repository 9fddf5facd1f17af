//! From a request and its response to Distribution's events.

use http::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
};
use http::uri::Scheme;
use http::{Method, Request, StatusCode};

use super::addr::{peer_addr, remote_addr};
use super::route::{self, Parsed, Reference, Route};
use super::Shared;
use crate::event::{Action, ActorRecord, Descriptor, Event, RequestRecord, Target, Timestamp};
use crate::hint::{AuthenticatedUser, EventHint, RequestId};

/// Blob events always carry this media type in Distribution.
pub(crate) const BLOB_MEDIA_TYPE: &str = "application/octet-stream";
const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Which request, as far as events are concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    ManifestPull {
        tag: Option<String>,
        digest: Option<String>,
    },
    ManifestPush {
        tag: Option<String>,
        digest: Option<String>,
    },
    ManifestDelete {
        digest: String,
    },
    TagDelete {
        tag: String,
    },
    BlobPull {
        digest: String,
    },
    BlobDelete {
        digest: String,
    },
    /// POST to `uploads/`: a mount (`mount` + `from`) or a monolithic upload (`digest`).
    UploadStart {
        mount: Option<(String, String)>,
        digest: Option<String>,
    },
    /// PUT to an upload session: the blob is committed.
    UploadCommit {
        digest: Option<String>,
    },
    /// PATCH to an upload session: no event; its progress is remembered
    /// (only with a lookup service, see [`Memo`](super::memo::Memo)).
    UploadChunk,
}

/// What the layer keeps of a request until its response arrives.
///
/// Built once per registry request, so it owns only what the events need anyway
/// (the strings of `request`, `actor`, the repository name) and moves them into the
/// event when nothing else will read them.
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    pub(crate) kind: Kind,
    pub(crate) name: String,
    pub(crate) prefix: String,
    pub(crate) method: Method,
    /// The request URI's scheme (absolute-form requests), if any.
    scheme: Option<Scheme>,
    /// `scheme://host<prefix>` of target URLs, when forwarding headers set them.
    forwarded_base: Option<String>,
    pub(crate) request: RequestRecord,
    pub(crate) actor: ActorRecord,
    pub(crate) req_content_type: Option<String>,
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

fn header_i64(h: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<i64> {
    header_str(h, name)?
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
}

/// Decodes `%XX` escapes of a query value (repository names in `from=`).
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') && !s.contains('+') {
        return Some(s.to_owned());
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
    String::from_utf8(out).ok()
}

/// Basic auth user name from `Authorization`.
fn basic_user(h: &HeaderMap) -> Option<String> {
    use base64::Engine;
    let v = header_str(h, AUTHORIZATION)?;
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

fn request_id<B>(req: &Request<B>) -> String {
    if let Some(RequestId(id)) = req.extensions().get::<RequestId>() {
        return id.clone();
    }
    if let Some(id) = header_str(req.headers(), X_REQUEST_ID) {
        let id = id.trim();
        if !id.is_empty() && id.len() <= 200 && id.bytes().all(|c| c.is_ascii_graphic()) {
            return id.to_owned();
        }
    }
    crate::event::new_id()
}

/// The request's host: `Host`, or the URI authority (HTTP/2).
fn request_host<B>(req: &Request<B>) -> String {
    match header_str(req.headers(), http::header::HOST) {
        Some(host) => host.to_owned(),
        None => req.uri().authority().map(|a| a.to_string()).unwrap_or_default(),
    }
}

/// The base of target URLs when `Forwarded` or `X-Forwarded-Proto`/`-Host` set
/// it, like Distribution's `NewURLBuilderFromRequest`; `None` without those headers
/// (the base is then the request's scheme and host).
fn forwarded_base<B>(req: &Request<B>, host: &str, prefix: &str) -> Option<String> {
    let h = req.headers();
    let fwd = header_str(h, FORWARDED);
    if fwd.is_none() && !h.contains_key(X_FORWARDED_PROTO) && !h.contains_key(X_FORWARDED_HOST) {
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
        if let Some(p) = header_str(h, X_FORWARDED_PROTO).and_then(|v| v.split(',').next()) {
            if !p.trim().is_empty() {
                scheme = p.trim().to_owned();
            }
        }
        if let Some(fh) = header_str(h, X_FORWARDED_HOST).and_then(|v| v.split(',').next()) {
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
    let kind = match (parsed.route, method.as_str()) {
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
    let headers = req.headers();
    let actor = match req.extensions().get::<AuthenticatedUser>() {
        Some(AuthenticatedUser(name)) => ActorRecord { name: name.clone() },
        None => ActorRecord {
            name: basic_user(headers).unwrap_or_default(),
        },
    };
    let host = request_host(req);
    let forwarded_base = if shared.base_url.is_some() {
        None
    } else {
        forwarded_base(req, &host, parsed.prefix)
    };
    let upload_key = match parsed.route {
        Route::Upload { .. } if shared.memo.is_some() => Some(req.uri().path().to_owned()),
        _ => None,
    };
    let upload_target = match (&kind, &upload_key) {
        (Kind::UploadCommit { .. }, Some(_)) => req.uri().path_and_query().map(|p| p.as_str().to_owned()),
        _ => None,
    };
    let req_content_length = header_i64(headers, CONTENT_LENGTH);
    let req_body_length = req_content_length.or_else(|| {
        let http1 = matches!(req.version(), http::Version::HTTP_10 | http::Version::HTTP_11);
        (http1 && !headers.contains_key(http::header::TRANSFER_ENCODING)).then_some(0)
    });
    let request = RequestRecord {
        id: request_id(req),
        addr: remote_addr(
            headers,
            peer_addr(req.extensions()),
            shared.trusted_proxies.as_ref(),
        ),
        host,
        method: method.as_str().to_owned(),
        useragent: header_str(headers, http::header::USER_AGENT)
            .unwrap_or("")
            .to_owned(),
    };
    Some(Pending {
        kind,
        name: parsed.name().to_owned(),
        prefix: parsed.prefix.to_owned(),
        method: method.clone(),
        scheme: req.uri().scheme().cloned(),
        forwarded_base,
        request,
        actor,
        req_content_type: header_str(headers, CONTENT_TYPE).map(|v| media_type_of(v).to_owned()),
        req_content_length,
        req_body_length,
        upload_key,
        upload_target,
        upload_status_end: None,
        authorization: headers.get(AUTHORIZATION).cloned(),
        tags_before_delete: None,
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
    /// Remembers what this exchange tells about blob sizes and upload sessions.
    fn remember(&self, memo: &super::memo::Memo, status: StatusCode, headers: &HeaderMap) {
        match &self.kind {
            // A session was opened (also a mount that fell back to an upload, or a
            // POST whose body the registry ignored).
            Kind::UploadStart { .. } if status == StatusCode::ACCEPTED => {
                if let Some(key) = location_path(headers) {
                    match (upload_range_end(headers), self.req_body_length) {
                        (Some(end), _) if end > 0 => memo.upload_progress(&key, Some(end), None),
                        (_, Some(0)) => memo.upload_started(&key),
                        _ => {}
                    }
                }
            }
            Kind::UploadChunk if status == StatusCode::ACCEPTED => {
                if let Some(key) = &self.upload_key {
                    memo.upload_progress(key, upload_range_end(headers), self.req_body_length);
                }
            }
            _ => {}
        }
    }

    /// An event of this request; `keep` says whether the request's strings are still
    /// needed afterwards (more events, or a lookup), else they are moved into it.
    fn event(&mut self, action: Action, target: Target, shared: &Shared, at: Timestamp, keep: bool) -> Event {
        let (request, actor) = if keep {
            (self.request.clone(), self.actor.clone())
        } else {
            (std::mem::take(&mut self.request), std::mem::take(&mut self.actor))
        };
        Event {
            id: crate::event::new_id(),
            timestamp: at,
            action,
            target,
            request,
            actor,
            source: shared.source.clone(),
        }
    }

    /// `<base>/v2/<name>/<kind>/<digest>`, the target URL, in one allocation.
    fn target_url(&self, shared: &Shared, kind: &str, digest: &str) -> String {
        let (scheme, host) = match &self.scheme {
            Some(s) => (s.as_str(), self.request.host.as_str()),
            None => ("http", self.request.host.as_str()),
        };
        let base_len = match (&shared.base_url, &self.forwarded_base) {
            (Some(b), _) => b.len() + self.prefix.len(),
            (None, Some(f)) => f.len(),
            (None, None) => scheme.len() + 3 + host.len() + self.prefix.len(),
        };
        let mut url = String::with_capacity(base_len + 4 + self.name.len() + 2 + kind.len() + digest.len());
        match (&shared.base_url, &self.forwarded_base) {
            (Some(b), _) => {
                url.push_str(b.trim_end_matches('/'));
                url.push_str(&self.prefix);
            }
            (None, Some(f)) => url.push_str(f),
            (None, None) => {
                url.push_str(scheme);
                url.push_str("://");
                url.push_str(host);
                url.push_str(&self.prefix);
            }
        }
        url.push_str("/v2/");
        url.push_str(&self.name);
        url.push('/');
        url.push_str(kind);
        url.push('/');
        url.push_str(digest);
        url
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
        let placeholder = Kind::TagDelete { tag: String::new() };
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
        let resp_digest = || {
            header_str(headers, DOCKER_CONTENT_DIGEST)
                .and_then(route::valid_digest)
                .map(str::to_owned)
        };
        let hint_digest = || hint.and_then(|h| h.digest.clone());
        let hint_size = hint.and_then(|h| h.size);
        let mut target = Target::default();
        let action;
        let push = matches!(kind, Kind::ManifestPush { .. });
        match kind {
            Kind::ManifestPull { tag, digest } | Kind::ManifestPush { tag, digest } => {
                action = if push { Action::Push } else { Action::Pull };
                let Some(d) = resp_digest().or_else(hint_digest).or_else(|| digest.clone()) else {
                    tracing::debug!(repository = %self.name, "manifest response without a digest: no event");
                    return (Vec::new(), missing);
                };
                let tag = tag.take().unwrap_or_default();
                let media_type = hint
                    .and_then(|h| h.media_type.clone())
                    .or_else(|| {
                        if push {
                            self.req_content_type.clone()
                        } else {
                            header_str(headers, CONTENT_TYPE).map(|v| media_type_of(v).to_owned())
                        }
                    })
                    .unwrap_or_default();
                let size = hint_size.or_else(|| {
                    if push {
                        self.req_content_length
                    } else {
                        header_i64(headers, CONTENT_LENGTH)
                    }
                });
                missing.manifest = size.is_none() || media_type.is_empty();
                target.url = self.target_url(shared, "manifests", &d);
                target.descriptor = Descriptor::new(media_type, d, size.unwrap_or(0));
                target.length = target.descriptor.size;
                target.tag = tag;
                if shared.include_references {
                    match hint.and_then(|h| h.references.clone()) {
                        Some(refs) => target.references = refs,
                        None => missing.manifest = true,
                    }
                }
            }
            Kind::ManifestDelete { digest } => {
                target.repository = self.name.clone();
                target.descriptor.digest = digest.clone();
                let tags = hint
                    .and_then(|h| h.deleted_tags.clone())
                    .or_else(|| self.tags_before_delete.clone())
                    .unwrap_or_default();
                let mut events = Vec::with_capacity(1 + tags.len());
                events.push(self.event(Action::Delete, target, shared, at, true));
                for tag in tags {
                    let t = Target {
                        repository: self.name.clone(),
                        tag,
                        ..Target::default()
                    };
                    events.push(self.event(Action::Delete, t, shared, at, true));
                }
                return (events, missing);
            }
            Kind::TagDelete { tag } => {
                action = Action::Delete;
                target.tag = tag.clone();
            }
            Kind::BlobDelete { digest } => {
                action = Action::Delete;
                target.descriptor.digest = digest.clone();
            }
            Kind::BlobPull { digest } => {
                action = Action::Pull;
                let size = hint_size.or_else(|| match status.as_u16() {
                    206 => content_range_total(headers),
                    200 => header_i64(headers, CONTENT_LENGTH),
                    _ => None,
                });
                let size = remembered(shared, digest, size);
                missing.blob_size = size.is_none();
                let digest = std::mem::take(digest);
                self.blob_target(&mut target, shared, digest, size);
            }
            Kind::UploadStart { mount, digest } => {
                let d = match (mount, digest) {
                    (Some((m, from)), _) => {
                        action = Action::Mount;
                        target.from_repository = from.clone();
                        m.clone()
                    }
                    (None, Some(d)) => {
                        action = Action::Push;
                        d.clone()
                    }
                    (None, None) => return (Vec::new(), missing),
                };
                let size = hint_size.or_else(|| {
                    if action == Action::Push {
                        self.req_content_length
                    } else {
                        None
                    }
                });
                let size = remembered(shared, &d, size);
                missing.blob_size = size.is_none();
                self.blob_target(&mut target, shared, d, size);
            }
            Kind::UploadCommit { digest } => {
                action = Action::Push;
                let Some(d) = digest.clone().or_else(resp_digest).or_else(hint_digest) else {
                    return (Vec::new(), missing);
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
                    None => None,
                };
                let size = hint_size.or_else(|| Some(received? + self.req_body_length?));
                let size = remembered(shared, &d, size);
                missing.blob_size = size.is_none();
                self.blob_target(&mut target, shared, d, size);
            }
            Kind::UploadChunk => return (Vec::new(), missing),
        }
        // A lookup reads the name, host and credentials of the request later.
        let keep = missing.any() && shared.lookup.is_some();
        target.repository = if keep {
            self.name.clone()
        } else {
            std::mem::take(&mut self.name)
        };
        let event = self.event(action, target, shared, at, keep);
        (vec![event], missing)
    }

    fn blob_target(&self, target: &mut Target, shared: &Shared, digest: String, size: Option<i64>) {
        target.url = self.target_url(shared, "blobs", &digest);
        target.descriptor = Descriptor::new(BLOB_MEDIA_TYPE, digest, size.unwrap_or(0));
        target.length = target.descriptor.size;
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
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic dXNlcjpwYXNz"));
        assert_eq!(basic_user(&h).as_deref(), Some("user"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(basic_user(&h), None);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(basic_user(&h), None);
    }
}
