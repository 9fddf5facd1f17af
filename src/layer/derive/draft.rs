//! The parts of an event being drafted from a response, before its strings are frozen.

use crate::event::{Action, Descriptor, Frozen, SharedStr, Span, StrBuf};
use crate::layer::shared::Shared;

/// A string of an event being drafted: one the request already shares, or one written
/// to the response's buffer.
#[derive(Debug)]
pub(super) enum Piece {
    Shared(SharedStr),
    At(Span),
}

impl Default for Piece {
    fn default() -> Self {
        Piece::Shared(SharedStr::new())
    }
}

impl Piece {
    pub(super) fn resolve(self, strings: &Frozen) -> SharedStr {
        match self {
            Piece::Shared(s) => s,
            Piece::At(span) => strings.get(span),
        }
    }
}

/// The text of an event's digest: the response's, or the request's.
pub(super) enum DigestText<'a> {
    Reported(&'a str),
    Requested(SharedStr),
}

impl DigestText<'_> {
    pub(super) fn as_str(&self) -> &str {
        match self {
            DigestText::Reported(d) => d,
            DigestText::Requested(d) => d.as_str(),
        }
    }
}

/// The digest an event names: the one the registry `reported` (hint or
/// `Docker-Content-Digest`, already checked), else the one the request named. Sizes are
/// then remembered and recalled for this digest only, never for the other one.
pub(super) fn event_digest<'a>(
    b: &mut StrBuf<'_>,
    reported: Option<&'a str>,
    requested: Option<&SharedStr>,
) -> Option<(DigestText<'a>, Piece)> {
    match (reported, requested) {
        // The same text either way; this arm only saves copying it into the buffer.
        (Some(r), Some(q)) if r == q.as_str() => {
            Some((DigestText::Requested(q.clone()), Piece::Shared(q.clone())))
        }
        (Some(r), _) => Some((DigestText::Reported(r), Piece::At(b.push_plain(r)))),
        (None, Some(q)) => Some((DigestText::Requested(q.clone()), Piece::Shared(q.clone()))),
        (None, None) => None,
    }
}

/// The fields of the event a response yields, before its buffer is frozen.
#[derive(Debug)]
pub(super) struct Draft {
    pub(super) id: Span,
    /// The request's id, when the layer made it with the event's (the request brought none).
    pub(super) request_id: Option<Span>,
    pub(super) action: Action,
    pub(super) media_type: SharedStr,
    pub(super) digest: Piece,
    pub(super) size: i64,
    pub(super) url: Option<Span>,
    pub(super) tag: SharedStr,
    pub(super) from_repository: SharedStr,
    pub(super) references: Vec<Descriptor>,
}

impl Default for Draft {
    fn default() -> Self {
        Draft {
            id: Span::default(),
            request_id: None,
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
pub(super) fn remembered(shared: &Shared, digest: &str, size: Option<i64>) -> Option<i64> {
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

/// A blob committed with `digest=requested` and answered with a success is the bytes that
/// hash to `requested` (the registry verified them), whatever digest it reports: its size
/// is remembered under the requested digest too, so that a later mount or read by that
/// digest needs no lookup (which may come too late: the blob can be gone by then).
pub(super) fn remember_verified(shared: &Shared, requested: &str, reported: &str, size: Option<i64>) {
    if let (Some(memo), Some(n)) = (&shared.memo, size) {
        if requested != reported {
            memo.remember_size(requested, n);
        }
    }
}
