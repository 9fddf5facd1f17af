//! From a request and its response to Distribution's events.
//!
//! # Numbers from outside
//!
//! Every number the layer reads — `Content-Length`, `Content-Range`, the `Range` of an
//! upload, the size in an [`EventHint`] or in a lookup's answer — is parsed strictly
//! (ASCII digits only, at most `i64::MAX`, since an event's `size` is a signed 64-bit
//! number that is never negative), and sums of them use checked arithmetic. An impossible
//! value (a sign, a reversed range, a last byte past the complete length, a sum past
//! `i64::MAX`) gives *no* value, never a wrong one: the layer then does what it does when
//! the header is absent — the size remembered for the digest, else a lookup (with a lookup
//! service), else the field stays unknown (`size: 0`).

mod draft;
mod pending;
mod request;

use http::header::HeaderMap;
use http::StatusCode;

use super::headers::{
    content_range_complete, location_path, media_type_str, media_type_value, upload_range_end, value_digest,
    value_size, ResponseHeaders, BLOB_MEDIA_TYPE,
};
use super::route;
use super::shared::Shared;
use crate::event::{
    build_strings, reserve_stamps, write_id, Action, Batch, Descriptor, Event, SharedStr, StrBuf, Target,
    Timestamp,
};
use crate::hint::EventHint;
use draft::{event_digest, remember_verified, remembered, Draft, Piece};
pub(crate) use pending::{Kind, Missing, Pending};
pub(crate) use request::pending;

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
            // A `202` opens a session; what a POST carried is not in it (a registry that takes
            // a monolithic upload answers `201`; Distribution ignores the body of one it
            // answers `202`), so the session starts empty unless its `Range` says more.
            Kind::UploadStart { .. } if status == StatusCode::ACCEPTED => {
                if let Some(key) = location_path(headers) {
                    match upload_range_end(headers) {
                        Some(end) if end > 0 => memo.upload_progress(&key, Some(end), None),
                        _ => memo.upload_started(&key),
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

    /// Appends `<base>/v2/<name>/<kind>/<digest>`, the target URL; says whether it is
    /// [plain](SharedStr::is_plain) (the name and digest are; the base may not be).
    fn write_target_url(&self, url: &mut String, shared: &Shared, kind: &str, digest: &str) -> bool {
        let scheme = self.scheme.as_ref().map_or("http", |s| s.as_str());
        let plain = match (&shared.base_url, &self.forwarded_base) {
            (Some(b), _) => {
                let start = url.len();
                url.push_str(b.trim_end_matches('/'));
                url.push_str(&self.prefix);
                !crate::event::any_special(&url.as_bytes()[start..])
            }
            (None, Some(f)) => {
                url.push_str(f);
                !crate::event::any_special(f.as_bytes())
            }
            (None, None) => {
                url.push_str(scheme);
                url.push_str("://");
                url.push_str(&self.request.host);
                url.push_str(&self.prefix);
                // The host was looked at when the request came; a scheme is plain.
                self.request.host.is_plain() && !crate::event::any_special(self.prefix.as_bytes())
            }
        };
        url.push_str("/v2/");
        url.push_str(&self.name);
        url.push('/');
        url.push_str(kind);
        url.push('/');
        url.push_str(digest);
        plain
    }

    /// Whether the response is one Distribution emits events for.
    pub(crate) fn succeeded(&self, status: StatusCode) -> bool {
        match &self.kind {
            Kind::ManifestPull { .. } => status == StatusCode::OK,
            Kind::ManifestPush { .. } => status == StatusCode::CREATED,
            Kind::ManifestDelete { .. } | Kind::TagDelete { .. } | Kind::BlobDelete { .. } => {
                status == StatusCode::ACCEPTED
            }
            // Distribution (2.8 and 3.0) emits blob pulls for partial, conditional,
            // redirected and unsatisfiable (416) reads too, each with the blob's full size.
            Kind::BlobPull { .. } => matches!(status.as_u16(), 200 | 206 | 304 | 307 | 416),
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
    ) -> (Batch, Missing) {
        if let Some(memo) = &shared.memo {
            self.remember(memo, status, headers);
        }
        if !self.succeeded(status) {
            return (Batch::none(), Missing::default());
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
    ) -> (Batch, Missing) {
        let mut missing = Missing::default();
        let at = Timestamp::now();
        if let Kind::ManifestDelete { digest } = kind {
            return (Batch::from(self.delete_events(digest, hint, shared, at)), missing);
        }
        // The strings this response adds (event id, URL, digest, …) share one buffer.
        let (strings, draft) = build_strings(|b| {
            let mut draft = self.draft(kind, b, status, headers, hint, shared, &mut missing)?;
            // The ids carry the time of the timestamp: one read of the clock for all, and one
            // reservation of their stamps (the request's id first, if it brought none).
            let new_request_id = self.request.id.is_empty();
            let stamp = reserve_stamps(at, 1 + u64::from(new_request_id));
            draft.request_id = new_request_id.then(|| {
                b.span_plain(|s| {
                    write_id(s, stamp);
                    true
                })
            });
            draft.id = b.span_plain(|s| {
                write_id(s, stamp + u64::from(new_request_id));
                true
            });
            Some(draft)
        });
        let Some(draft) = draft else {
            return (Batch::none(), missing);
        };
        if let Some(span) = draft.request_id {
            // Every later event of this request (after a lookup) has the same.
            self.request.id = strings.get(span);
        }
        // A lookup reads the name, host and credentials of the request later. (Keeping them
        // when no lookup follows would only clone what could be moved: no event changes.)
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
        (Batch::one(event), missing)
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
        let new_request_id = self.request.id.is_empty();
        let count = u64::try_from(tags.len()).unwrap_or(u64::MAX - 2) + 1;
        let first = reserve_stamps(at, count + u64::from(new_request_id));
        let (strings, (request_id, spans)) = build_strings(|b| {
            // The reserved stamps in order: the request's id first, then each event's.
            let mut stamps = first..;
            let mut id = |b: &mut StrBuf<'_>| {
                let stamp = stamps.next().unwrap_or(first);
                b.span_plain(|s| {
                    write_id(s, stamp);
                    true
                })
            };
            let request_id = new_request_id.then(|| id(b));
            let spans = std::iter::once("")
                .chain(tags.iter().map(String::as_str))
                .map(|tag| (id(b), b.push(tag)))
                .collect::<Vec<_>>();
            (request_id, spans)
        });
        if let Some(span) = request_id {
            self.request.id = strings.get(span);
        }
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
        // What the registry says it stored or served: its hint, else `Docker-Content-Digest`
        // (Distribution answers a sha512 upload with the sha256 digest it stores it under).
        let reported = hint
            .and_then(|h| h.digest.as_deref())
            .and_then(route::valid_digest)
            .or_else(|| value_digest(response.docker_content_digest));
        // A registry's hint is outside input too: a negative size is no size.
        let hint_size = hint.and_then(|h| h.size).filter(|n| *n >= 0);
        let push = matches!(kind, Kind::ManifestPush { .. });
        let mut draft = Draft::default();
        match kind {
            Kind::ManifestPull { tag, digest } | Kind::ManifestPush { tag, digest } => {
                draft.action = if push { Action::Push } else { Action::Pull };
                let Some((d, piece)) = event_digest(b, reported, digest.as_ref()) else {
                    tracing::debug!(repository = %self.name, "manifest response without a digest: no event");
                    return None;
                };
                draft.digest = piece;
                draft.tag = tag.take().unwrap_or_default();
                draft.media_type = match hint.and_then(|h| h.media_type.as_deref()) {
                    Some(m) => media_type_str(m),
                    None if push => self.req_content_type.clone().unwrap_or_default(),
                    None => media_type_value(response.content_type).unwrap_or_default(),
                };
                let size = hint_size.or_else(|| {
                    if push {
                        self.req_content_length
                    } else {
                        value_size(response.content_length)
                    }
                });
                missing.manifest = size.is_none() || draft.media_type.is_empty();
                draft.size = size.unwrap_or(0);
                draft.url = Some(b.span_plain(|s| self.write_target_url(s, shared, "manifests", d.as_str())));
                if shared.include_references {
                    match self.references(d.as_str(), hint, shared) {
                        Some(refs) => draft.references = refs,
                        // The body of a GET, as it passes, or else a lookup.
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
                let (d, piece) = event_digest(b, reported, Some(digest))?;
                let size = hint_size.or_else(|| match status.as_u16() {
                    206 => content_range_complete(headers, false),
                    // `bytes */<size>`; its Content-Length is that of the error text.
                    416 => content_range_complete(headers, true),
                    200 => value_size(response.content_length),
                    _ => None,
                });
                let size = remembered(shared, d.as_str(), size);
                missing.blob_size = size.is_none();
                self.blob(&mut draft, b, shared, piece, d.as_str(), size);
            }
            Kind::UploadStart { mount, digest } => {
                let requested = match (mount, digest) {
                    (Some((m, from)), _) => {
                        draft.action = Action::Mount;
                        draft.from_repository = from.clone();
                        m
                    }
                    (None, Some(d)) => {
                        draft.action = Action::Push;
                        d
                    }
                    (None, None) => return None,
                };
                let (d, piece) = event_digest(b, reported, Some(requested))?;
                let size = hint_size.or_else(|| {
                    if draft.action == Action::Push {
                        self.body_length().filter(|n| *n > 0).or(self.req_content_length)
                    } else {
                        None
                    }
                });
                let size = remembered(shared, d.as_str(), size)
                    .or_else(|| remembered(shared, requested.as_str(), None));
                remember_verified(shared, requested.as_str(), d.as_str(), size);
                missing.blob_size = size.is_none();
                self.blob(&mut draft, b, shared, piece, d.as_str(), size);
            }
            Kind::UploadCommit { digest } => {
                draft.action = Action::Push;
                let (d, piece) = event_digest(b, reported, digest.as_ref())?;
                // Without a hint: the bytes the session received plus this request's body.
                // The session's status (asked before this PUT) says how many, except that
                // `0-0` stands for 0 and for 1 byte: then what this layer saw decides.
                let seen = match (&shared.memo, &self.upload_key) {
                    (Some(memo), Some(key)) => memo.upload_finished(key),
                    _ => None,
                };
                // Sums of outside numbers are checked: an overflow is no size (then the
                // memo or a lookup is asked, as when the numbers are absent).
                let received = match self.upload_status_end {
                    Some(end) if end > 0 => end.checked_add(1),
                    Some(_) => seen.filter(|n| *n <= 1),
                    // No status asked: the bytes this layer saw pass, if it saw the session.
                    None => seen,
                };
                let size = hint_size.or_else(|| received?.checked_add(self.body_length()?));
                let size = remembered(shared, d.as_str(), size);
                if let Some(requested) = digest.as_ref() {
                    remember_verified(shared, requested.as_str(), d.as_str(), size);
                }
                missing.blob_size = size.is_none();
                self.blob(&mut draft, b, shared, piece, d.as_str(), size);
            }
        }
        Some(draft)
    }

    /// The references of the manifest `digest`: the hint's (when well formed), else those
    /// remembered for the digest, else those of the manifest a `PUT` sent (its body passed
    /// through whole before the response). What the hint or the body says is remembered.
    fn references(&self, digest: &str, hint: Option<&EventHint>, shared: &Shared) -> Option<Vec<Descriptor>> {
        let hinted = hint
            .and_then(|h| h.references.as_ref())
            .filter(|r| super::manifest::well_formed(r));
        if hinted.is_none() {
            if let Some(refs) = shared.memo.as_ref().and_then(|m| m.references(digest)) {
                return Some(refs);
            }
        }
        let refs = match hinted {
            Some(refs) => refs.clone(),
            None => {
                let body = self.body_tap.as_ref().and_then(|t| t.complete())?;
                super::manifest::references(&body)?
            }
        };
        if let Some(memo) = &shared.memo {
            memo.remember_references(digest, &refs);
        }
        Some(refs)
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
        draft.url = Some(b.span_plain(|s| self.write_target_url(s, shared, "blobs", text)));
        draft.media_type = media_type_str(BLOB_MEDIA_TYPE);
        draft.digest = digest;
        draft.size = size.unwrap_or(0);
    }
}

#[cfg(test)]
mod tests;
