//! The compact form of a batch that waits deep in a [`MemoryQueue`](super::MemoryQueue):
//! [`Packed`], what an endpoint that is down keeps of each event it cannot deliver yet.
//!
//! An [`Event`] in memory is a 552-byte struct plus the shared buffers of its strings (about
//! 930 bytes a queued event in all). Packed, batches are two allocations: the text of their
//! strings, one after the other, and a few bytes a field saying how long each is (`meta`).
//! Batches of one event each (Distribution's `maxevents: 1`) join one pack, up to a number of
//! events, which remembers where each batch ends.
//! A string equal to the same field of the event before it (the source, the client's
//! address, host and user agent, a repository pulled again) is one byte and no text. A pull
//! event packs into about 460 bytes alone, and about 200 after one from the same client.
//!
//! ```text
//! event     id · timestamp (secs zigzag varint, nanos varint) · action u8 · descriptor ·
//!           length (zigzag) · repository · fromRepository · url · tag · references (count,
//!           descriptors) · request id, addr, host, method, useragent, traceparent · actor name ·
//!           source addr, instanceID
//! descriptor mediaType · digest · size (zigzag) · extras flags u8 · [urls (count, texts)] ·
//!           [annotations (count, key/value texts)] · [data] · [platform] · [artifactType]
//! string    kind u8 (EMPTY, SAME as the event before, TEXT, PLAIN text) · [len varint]
//! ```
//!
//! Unpacking gives back equal events, their strings slices of **one** shared buffer (the
//! text, copied once), with the same [plainness](SharedStr::is_plain) they had. The bytes are
//! the queue's own, never read from outside; a malformed one would still give events with
//! empty fields, never a panic.

use crate::event::{
    Action, ActorRecord, Batch, Descriptor, Event, Frozen, Platform, RequestRecord, SharedStr, SourceRecord,
    Span, Target, Timestamp,
};

/// Batches of events, packed (see the module's documentation).
pub(super) struct Packed {
    meta: Vec<u8>,
    text: String,
    /// How many events each batch packed has, in order.
    batches: Vec<usize>,
    len: usize,
    /// The last batch packed, while more may join (its last event is what the next event's
    /// fields are compared with); `None` once closed.
    last: Option<Batch>,
}

/// A string's kind: the empty string, the same text as the event before's same field, text
/// (its length follows), text known to be [plain](SharedStr::is_plain).
const EMPTY: u8 = 0;
const SAME: u8 = 1;
const TEXT: u8 = 2;
const PLAIN: u8 = 3;

/// The flags of a descriptor's extras that follow it.
const URLS: u8 = 1;
const ANNOTATIONS: u8 = 2;
const DATA: u8 = 4;
const PLATFORM: u8 = 8;
const ARTIFACT_TYPE: u8 = 16;

impl Packed {
    /// `batch`, packed; more batches may [join](Self::join) it, up to `max` events in all,
    /// until it is [closed](Self::close).
    pub(super) fn pack(batch: Batch, max: usize) -> Packed {
        let mut packed = Packed {
            meta: Vec::with_capacity(batch.len().saturating_mul(48)),
            text: String::with_capacity(batch.len().saturating_mul(288)),
            batches: Vec::new(),
            len: 0,
            last: None,
        };
        packed.add(batch, max);
        packed
    }

    /// Packs `batch` after the others, if the pack is open and holds at most `max` events
    /// with it; else gives it back.
    pub(super) fn join(&mut self, batch: Batch, max: usize) -> Result<(), Batch> {
        if self.last.is_none() || self.len.saturating_add(batch.len()) > max {
            return Err(batch);
        }
        self.add(batch, max);
        Ok(())
    }

    /// Packs `batch`; closes the pack when another batch as large would not fit.
    fn add(&mut self, batch: Batch, max: usize) {
        let mut w = Writer {
            meta: &mut self.meta,
            text: &mut self.text,
        };
        let mut prev = self.last.as_ref().and_then(|b| b.last());
        for e in batch.iter() {
            w.event(e, prev);
            prev = Some(e);
        }
        self.len += batch.len();
        self.batches.push(batch.len());
        let full = self.len.saturating_add(batch.len()) > max;
        self.last = Some(batch);
        if full {
            self.close();
        }
    }

    /// No more batches join: the last one is let go, and the buffers shrink to what they hold.
    pub(super) fn close(&mut self) {
        if self.last.take().is_some() {
            self.meta.shrink_to_fit();
            self.text.shrink_to_fit();
            self.batches.shrink_to_fit();
        }
    }

    /// How many events it holds.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The batches, as they were packed.
    pub(super) fn unpack(self) -> Vec<Batch> {
        let mut r = Reader {
            meta: &self.meta,
            at: 0,
            text: Frozen::from_text(&self.text),
            text_str: &self.text,
            cursor: 0,
        };
        let mut events: Vec<Event> = Vec::with_capacity(self.len);
        for _ in 0..self.len {
            let e = r.event(events.last());
            events.push(e);
        }
        if let [_] = self.batches[..] {
            return vec![Batch::from(events)];
        }
        let mut events = events.into_iter();
        self.batches
            .iter()
            .map(|&n| events.by_ref().take(n).collect())
            .collect()
    }
}

struct Writer<'a> {
    meta: &'a mut Vec<u8>,
    text: &'a mut String,
}

impl Writer<'_> {
    fn varint(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.meta.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.meta.push(n as u8);
    }

    fn signed(&mut self, n: i64) {
        self.varint(((n << 1) ^ (n >> 63)) as u64);
    }

    fn len_of(&mut self, n: usize) {
        self.varint(n as u64);
    }

    fn text(&mut self, s: &str) {
        self.len_of(s.len());
        self.text.push_str(s);
    }

    fn shared(&mut self, s: &SharedStr, prev: Option<&SharedStr>) {
        if s.is_empty() {
            self.meta.push(EMPTY);
        } else if prev.is_some_and(|p| p.same_text(s)) {
            self.meta.push(SAME);
        } else {
            self.meta.push(if s.is_plain() { PLAIN } else { TEXT });
            self.text(s.as_str());
        }
    }

    fn event(&mut self, e: &Event, prev: Option<&Event>) {
        self.shared(&e.id, None);
        self.signed(e.timestamp.unix_seconds());
        self.varint(u64::from(e.timestamp.subsec_nanos()));
        self.meta.push(match e.action {
            Action::Push => 0,
            Action::Pull => 1,
            Action::Mount => 2,
            Action::Delete => 3,
            Action::Ping => 4,
        });
        let t = &e.target;
        let pt = prev.map(|p| &p.target);
        self.descriptor(&t.descriptor, pt.map(|p| &p.descriptor));
        self.signed(t.length);
        self.shared(&t.repository, pt.map(|p| &p.repository));
        self.shared(&t.from_repository, pt.map(|p| &p.from_repository));
        self.shared(&t.url, pt.map(|p| &p.url));
        self.shared(&t.tag, pt.map(|p| &p.tag));
        self.len_of(t.references.len());
        for d in &t.references {
            self.descriptor(d, None);
        }
        let RequestRecord {
            id,
            addr,
            host,
            method,
            useragent,
            traceparent,
        } = &e.request;
        let pr = prev.map(|p| &p.request);
        self.shared(id, pr.map(|p| &p.id));
        self.shared(addr, pr.map(|p| &p.addr));
        self.shared(host, pr.map(|p| &p.host));
        self.shared(method, pr.map(|p| &p.method));
        self.shared(useragent, pr.map(|p| &p.useragent));
        self.shared(traceparent, pr.map(|p| &p.traceparent));
        self.shared(&e.actor.name, prev.map(|p| &p.actor.name));
        let SourceRecord { addr, instance_id } = &e.source;
        self.shared(addr, prev.map(|p| &p.source.addr));
        self.shared(instance_id, prev.map(|p| &p.source.instance_id));
    }

    fn descriptor(&mut self, d: &Descriptor, prev: Option<&Descriptor>) {
        let Descriptor {
            media_type,
            digest,
            size,
            urls,
            annotations,
            data,
            platform,
            artifact_type,
        } = d;
        self.shared(media_type, prev.map(|p| &p.media_type));
        self.shared(digest, prev.map(|p| &p.digest));
        self.signed(*size);
        let flags = if urls.is_empty() { 0 } else { URLS }
            | if annotations.is_empty() { 0 } else { ANNOTATIONS }
            | if data.is_some() { DATA } else { 0 }
            | if platform.is_some() { PLATFORM } else { 0 }
            | if artifact_type.is_some() { ARTIFACT_TYPE } else { 0 };
        self.meta.push(flags);
        if !urls.is_empty() {
            self.len_of(urls.len());
            for u in urls {
                self.text(u);
            }
        }
        if !annotations.is_empty() {
            self.len_of(annotations.len());
            for (k, v) in annotations {
                self.text(k);
                self.text(v);
            }
        }
        if let Some(data) = data {
            self.text(data);
        }
        if let Some(p) = platform {
            let Platform {
                architecture,
                os,
                os_version,
                os_features,
                variant,
            } = &**p;
            self.text(architecture);
            self.text(os);
            self.text(os_version);
            self.len_of(os_features.len());
            for f in os_features {
                self.text(f);
            }
            self.text(variant);
        }
        if let Some(a) = artifact_type {
            self.text(a);
        }
    }
}

struct Reader<'a> {
    meta: &'a [u8],
    at: usize,
    text: Frozen,
    text_str: &'a str,
    /// Where the next string's text starts.
    cursor: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.meta.get(self.at).copied().unwrap_or(0);
        self.at = self.at.saturating_add(1);
        b
    }

    fn varint(&mut self) -> u64 {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte();
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
        }
        n
    }

    fn signed(&mut self) -> i64 {
        let n = self.varint();
        ((n >> 1) as i64) ^ -((n & 1) as i64)
    }

    /// A count, bounded by what the rest of `meta` could describe (a byte an item at least).
    fn count(&mut self) -> usize {
        let n = usize::try_from(self.varint()).unwrap_or(usize::MAX);
        n.min(self.meta.len().saturating_sub(self.at))
    }

    /// The next text's range in the text buffer.
    fn range(&mut self) -> (usize, usize) {
        let len = usize::try_from(self.varint()).unwrap_or(usize::MAX);
        let start = self.cursor;
        let end = start.saturating_add(len);
        self.cursor = end;
        (start, end)
    }

    fn text(&mut self) -> String {
        let (start, end) = self.range();
        self.text_str.get(start..end).unwrap_or_default().to_owned()
    }

    fn shared(&mut self, prev: Option<&SharedStr>) -> SharedStr {
        match self.byte() {
            SAME => prev.cloned().unwrap_or_default(),
            kind @ (TEXT | PLAIN) => {
                let (start, end) = self.range();
                self.text.get(Span::new(start, end, kind == PLAIN))
            }
            _ => SharedStr::new(),
        }
    }

    fn event(&mut self, prev: Option<&Event>) -> Event {
        let id = self.shared(None);
        let secs = self.signed();
        let nanos = u32::try_from(self.varint()).unwrap_or(0);
        let action = match self.byte() {
            0 => Action::Push,
            1 => Action::Pull,
            2 => Action::Mount,
            3 => Action::Delete,
            _ => Action::Ping,
        };
        let pt = prev.map(|p| &p.target);
        let descriptor = self.descriptor(pt.map(|p| &p.descriptor));
        let length = self.signed();
        let repository = self.shared(pt.map(|p| &p.repository));
        let from_repository = self.shared(pt.map(|p| &p.from_repository));
        let url = self.shared(pt.map(|p| &p.url));
        let tag = self.shared(pt.map(|p| &p.tag));
        let references = (0..self.count()).map(|_| self.descriptor(None)).collect();
        let pr = prev.map(|p| &p.request);
        let request = RequestRecord {
            id: self.shared(pr.map(|p| &p.id)),
            addr: self.shared(pr.map(|p| &p.addr)),
            host: self.shared(pr.map(|p| &p.host)),
            method: self.shared(pr.map(|p| &p.method)),
            useragent: self.shared(pr.map(|p| &p.useragent)),
            traceparent: self.shared(pr.map(|p| &p.traceparent)),
        };
        let actor = ActorRecord {
            name: self.shared(prev.map(|p| &p.actor.name)),
        };
        let source = SourceRecord {
            addr: self.shared(prev.map(|p| &p.source.addr)),
            instance_id: self.shared(prev.map(|p| &p.source.instance_id)),
        };
        Event {
            id,
            timestamp: Timestamp::from_unix(secs, nanos),
            action,
            target: Target {
                descriptor,
                length,
                repository,
                from_repository,
                url,
                tag,
                references,
            },
            request,
            actor,
            source,
        }
    }

    fn descriptor(&mut self, prev: Option<&Descriptor>) -> Descriptor {
        let media_type = self.shared(prev.map(|p| &p.media_type));
        let digest = self.shared(prev.map(|p| &p.digest));
        let size = self.signed();
        let flags = self.byte();
        let mut d = Descriptor::new(media_type, digest, size);
        if flags & URLS != 0 {
            d.urls = (0..self.count()).map(|_| self.text()).collect();
        }
        if flags & ANNOTATIONS != 0 {
            d.annotations = (0..self.count()).map(|_| (self.text(), self.text())).collect();
        }
        if flags & DATA != 0 {
            d.data = Some(self.text());
        }
        if flags & PLATFORM != 0 {
            d.platform = Some(Box::new(Platform {
                architecture: self.text(),
                os: self.text(),
                os_version: self.text(),
                os_features: (0..self.count()).map(|_| self.text()).collect(),
                variant: self.text(),
            }));
        }
        if flags & ARTIFACT_TYPE != 0 {
            d.artifact_type = Some(self.text());
        }
        d
    }
}

#[cfg(test)]
mod tests;
