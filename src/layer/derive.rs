//! From a request and its response to Distribution's events.

use http::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use http::{Method, Request, StatusCode};

use super::addr::{peer_addr, remote_addr};
use super::route::{self, Parsed, Reference, Route};
use super::Shared;
use crate::event::{Action, ActorRecord, Descriptor, Event, RequestRecord, Target, Timestamp};
use crate::hint::{AuthenticatedUser, EventHint, RequestId};

/// Blob events always carry this media type in Distribution.
pub(crate) const BLOB_MEDIA_TYPE: &str = "application/octet-stream";
const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

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
}

/// What the layer keeps of a request until its response arrives.
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    pub(crate) kind: Kind,
    pub(crate) name: String,
    pub(crate) prefix: String,
    pub(crate) method: Method,
    pub(crate) base: String,
    pub(crate) request: RequestRecord,
    pub(crate) actor: ActorRecord,
    pub(crate) req_content_type: Option<String>,
    pub(crate) req_content_length: Option<i64>,
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
    if let Some(id) = header_str(req.headers(), "x-request-id") {
        let id = id.trim();
        if !id.is_empty() && id.len() <= 200 && id.bytes().all(|c| c.is_ascii_graphic()) {
            return id.to_owned();
        }
    }
    uuid::Uuid::now_v7().to_string()
}

/// The request's host: `Host`, or the URI authority (HTTP/2).
fn request_host<B>(req: &Request<B>) -> String {
    header_str(req.headers(), http::header::HOST)
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

/// The base of target URLs, like Distribution's `NewURLBuilderFromRequest`.
fn url_base<B>(req: &Request<B>, shared: &Shared, prefix: &str) -> String {
    if let Some(base) = &shared.base_url {
        return format!("{}{}", base.trim_end_matches('/'), prefix);
    }
    let h = req.headers();
    let mut scheme = req.uri().scheme_str().unwrap_or("http").to_owned();
    let mut host = request_host(req);
    if let Some(fwd) = header_str(h, "forwarded") {
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
        if let Some(p) = header_str(h, "x-forwarded-proto").and_then(|v| v.split(',').next()) {
            if !p.trim().is_empty() {
                scheme = p.trim().to_owned();
            }
        }
        if let Some(fh) = header_str(h, "x-forwarded-host").and_then(|v| v.split(',').next()) {
            if !fh.trim().is_empty() {
                host = fh.trim().to_owned();
            }
        }
    }
    format!("{scheme}://{host}{prefix}")
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
    let request = RequestRecord {
        id: request_id(req),
        addr: remote_addr(
            headers,
            peer_addr(req.extensions()),
            shared.trusted_proxies.as_ref(),
        ),
        host: request_host(req),
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
        base: url_base(req, shared, parsed.prefix),
        request,
        actor,
        req_content_type: header_str(headers, CONTENT_TYPE).map(|v| media_type_of(v).to_owned()),
        req_content_length: header_i64(headers, CONTENT_LENGTH),
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

impl Pending {
    fn event(&self, action: Action, target: Target, shared: &Shared, at: Timestamp) -> Event {
        Event {
            id: uuid::Uuid::now_v7().to_string(),
            timestamp: at,
            action,
            target,
            request: self.request.clone(),
            actor: self.actor.clone(),
            source: shared.source.clone(),
        }
    }

    pub(crate) fn manifest_url(&self, digest: &str) -> String {
        format!("{}/v2/{}/manifests/{}", self.base, self.name, digest)
    }

    pub(crate) fn blob_url(&self, digest: &str) -> String {
        format!("{}/v2/{}/blobs/{}", self.base, self.name, digest)
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
        }
    }

    /// Builds the events of a successful response.
    pub(crate) fn events(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        hint: Option<&EventHint>,
        shared: &Shared,
    ) -> (Vec<Event>, Missing) {
        let mut missing = Missing::default();
        if !self.succeeded(status) {
            return (Vec::new(), missing);
        }
        let at = Timestamp::now();
        let resp_digest = header_str(headers, DOCKER_CONTENT_DIGEST)
            .and_then(route::valid_digest)
            .map(str::to_owned);
        let hint_digest = hint.and_then(|h| h.digest.clone());
        let hint_size = hint.and_then(|h| h.size);
        let mut target = Target {
            repository: self.name.clone(),
            ..Target::default()
        };
        let action;
        match &self.kind {
            Kind::ManifestPull { tag, digest } | Kind::ManifestPush { tag, digest } => {
                let push = matches!(self.kind, Kind::ManifestPush { .. });
                action = if push { Action::Push } else { Action::Pull };
                let Some(d) = resp_digest.or(hint_digest).or_else(|| digest.clone()) else {
                    tracing::debug!(repository = %self.name, "manifest response without a digest: no event");
                    return (Vec::new(), missing);
                };
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
                target.descriptor = Descriptor::new(media_type, d.clone(), size.unwrap_or(0));
                target.length = target.descriptor.size;
                target.url = self.manifest_url(&d);
                target.tag = tag.clone().unwrap_or_default();
                if shared.include_references {
                    match hint.and_then(|h| h.references.clone()) {
                        Some(refs) => target.references = refs,
                        None => missing.manifest = true,
                    }
                }
            }
            Kind::ManifestDelete { digest } => {
                target.descriptor.digest = digest.clone();
                let mut events = vec![self.event(Action::Delete, target, shared, at)];
                let tags = hint
                    .and_then(|h| h.deleted_tags.clone())
                    .or_else(|| self.tags_before_delete.clone());
                for tag in tags.unwrap_or_default() {
                    let t = Target {
                        repository: self.name.clone(),
                        tag,
                        ..Target::default()
                    };
                    events.push(self.event(Action::Delete, t, shared, at));
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
                missing.blob_size = size.is_none();
                self.blob_target(&mut target, digest, size);
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
                    if mount.is_none() {
                        self.req_content_length
                    } else {
                        None
                    }
                });
                missing.blob_size = size.is_none();
                self.blob_target(&mut target, &d, size);
            }
            Kind::UploadCommit { digest } => {
                action = Action::Push;
                let Some(d) = digest.clone().or(resp_digest).or(hint_digest) else {
                    return (Vec::new(), missing);
                };
                missing.blob_size = hint_size.is_none();
                self.blob_target(&mut target, &d, hint_size);
            }
        }
        (vec![self.event(action, target, shared, at)], missing)
    }

    fn blob_target(&self, target: &mut Target, digest: &str, size: Option<i64>) {
        target.descriptor = Descriptor::new(BLOB_MEDIA_TYPE, digest, size.unwrap_or(0));
        target.length = target.descriptor.size;
        target.url = self.blob_url(digest);
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
