//! A direct writer for envelopes of ordinary events, byte-identical to the serde
//! path in `wire.rs` (which stays the reference, and handles whatever this one
//! does not: references, `urls`, `annotations`, `data`, `platform`, `artifactType`).
//!
//! It exists for speed: a batched endpoint spends most of its CPU writing JSON, and
//! writing the known shape directly — keys as literals, strings copied in one piece
//! when they need no escape — is several times faster than the generic serializer.

use serde::Serializer as _;

use super::go_json::GoFormatter;
use super::{ActorRecord, Event, Format, RequestRecord, SharedStr, SourceRecord};

/// Whether [`write_envelope`] can write `e` in `format`.
pub(super) fn handles(e: &Event, format: Format) -> bool {
    let d = &e.target.descriptor;
    let common = d.urls.is_empty() && d.annotations.is_empty() && e.target.references.is_empty();
    match format {
        // Distribution 2.x writes none of the OCI 1.1 fields.
        Format::EventsV1 => common,
        Format::EventsV2 | Format::CloudEvents | Format::CloudEventsBatch => {
            common
                && d.data.as_deref().is_none_or(str::is_empty)
                && d.platform.is_none()
                && d.artifact_type.as_deref().is_none_or(str::is_empty)
        }
    }
}

/// Writes `{"events":[…]}` like `json.MarshalIndent(envelope, "", "   ")`; every
/// event must pass [`handles`].
pub(super) fn write_envelope(events: &[Event], format: Format, out: &mut Vec<u8>) {
    if events.is_empty() {
        out.extend_from_slice(b"{}");
        return;
    }
    // Sized up front: growing a buffer of many events copies all of them again. The events of
    // a batch are much alike, so the first one's size stands for each (a batch of larger
    // ones grows the buffer a few times).
    let each = events.first().map_or(0, estimated_len);
    out.reserve(each.saturating_mul(events.len()).saturating_add(32));
    out.extend_from_slice(b"{\n   \"events\": [");
    let mut stamps = Stamps::default();
    // The last event whose client members were written, and where they are in `out`.
    let mut client: Option<(&Event, std::ops::Range<usize>)> = None;
    for (i, e) in events.iter().enumerate() {
        out.extend_from_slice(if i == 0 { b"\n      {" } else { b",\n      {" });
        write_event(e, format, out, &mut stamps);
        match &client {
            // The same client as the event before: the same bytes.
            Some((last, at)) if same_client(last, e) => out.extend_from_within(at.clone()),
            _ => {
                let start = out.len();
                write_client(e, out);
                client = Some((e, start..out.len()));
            }
        }
        out.extend_from_slice(b"\n      }");
    }
    out.extend_from_slice(b"\n   ]\n}");
}

/// Whether `a` and `b` have the same members from `request.addr` on (see [`write_client`]).
fn same_client(a: &Event, b: &Event) -> bool {
    // Every field named, so that a field added to these records is not missed here: the
    // ids are each event's own, and the trace context is not written.
    let RequestRecord {
        id: _,
        addr,
        host,
        method,
        useragent,
        traceparent: _,
    } = &a.request;
    let ActorRecord { name } = &a.actor;
    let SourceRecord {
        addr: source,
        instance_id,
    } = &a.source;
    let r = &b.request;
    // Those most often shared (clones) first: they compare at once.
    instance_id.same_text(&b.source.instance_id)
        && source.same_text(&b.source.addr)
        && method.same_text(&r.method)
        && name.same_text(&b.actor.name)
        && host.same_text(&r.host)
        && useragent.same_text(&r.useragent)
        && addr.same_text(&r.addr)
}

/// About how many bytes `e` takes in an envelope: its strings plus the keys, indentation and
/// punctuation around them (≈ 690 bytes), rounded up so that escapes rarely overflow it.
fn estimated_len(e: &Event) -> usize {
    let t = &e.target;
    let d = &t.descriptor;
    let r = &e.request;
    let strings = [
        &e.id,
        &d.media_type,
        &d.digest,
        &t.repository,
        &t.from_repository,
        &t.url,
        &t.tag,
        &r.id,
        &r.addr,
        &r.host,
        &r.method,
        &r.useragent,
        &e.actor.name,
        &e.source.addr,
        &e.source.instance_id,
    ];
    strings.iter().map(|s| s.len()).sum::<usize>() + 720
}

/// `,\n`, the indentation of an event's members (9 spaces), and `"key": `, as one literal.
macro_rules! event_key {
    ($key:literal) => {
        concat!(",\n         \"", $key, "\": ")
    };
}

/// The same for the members of the objects inside an event (12 spaces).
macro_rules! nested_key {
    ($key:literal) => {
        concat!(",\n            \"", $key, "\": ")
    };
}

/// A member whose value is a string: the key literal and the value's opening quote.
macro_rules! str_key {
    ($which:ident, $key:literal) => {
        concat!($which!($key), "\"")
    };
}

/// The members of one JSON object at a given depth.
///
/// Each member is written with one copy of a literal made at compile time (the separator,
/// the indentation, the quoted key and, for strings, the value's opening quote); the
/// first member skips the literal's comma. The methods that take a key are inlined, so that
/// the key's length is a constant and its copy needs no call.
struct Obj<'a> {
    out: &'a mut Vec<u8>,
    /// Indentation of the members, in spaces.
    indent: usize,
    empty: bool,
}

const SPACES: &[u8; 64] = b"                                                                ";

impl<'a> Obj<'a> {
    fn open(out: &'a mut Vec<u8>, indent: usize) -> Self {
        out.push(b'{');
        Obj {
            out,
            indent,
            empty: true,
        }
    }

    /// Writes a member's key literal (see the macros above).
    #[inline(always)]
    fn key(&mut self, key: &'static str) {
        let start = usize::from(self.empty);
        self.empty = false;
        self.out.extend_from_slice(&key.as_bytes()[start..]);
    }

    /// `key` comes from [`str_key!`]: it already holds the opening quote.
    fn text(&mut self, key: &'static str, value: &str) {
        self.key(key);
        write_str_rest(self.out, value);
    }

    /// [`text`](Self::text) for a field: copied without a look when it is known to be plain.
    #[inline(always)]
    fn str(&mut self, key: &'static str, value: &SharedStr) {
        if value.is_plain() {
            self.ascii(key, value.byte_slice());
        } else {
            self.text(key, value);
        }
    }

    /// Like [`str`](Self::str) for a value known to need no escape (checked in debug builds).
    #[inline(always)]
    fn ascii(&mut self, key: &'static str, value: &[u8]) {
        debug_assert!(!any_special(value));
        self.key(key);
        self.out.extend_from_slice(value);
        self.out.push(b'"');
    }

    #[inline(always)]
    fn str_nonempty(&mut self, key: &'static str, value: &SharedStr) {
        if !value.is_empty() {
            self.str(key, value);
        }
    }

    #[inline(always)]
    fn int(&mut self, key: &'static str, value: i64) {
        self.raw(key, int_ascii(value, &mut [0; 21]));
    }

    /// A member whose value is `json` as it is (a number's digits).
    #[inline(always)]
    fn raw(&mut self, key: &'static str, json: &[u8]) {
        self.key(key);
        self.out.extend_from_slice(json);
    }

    /// Opens a nested object as the value of `key`.
    #[inline(always)]
    fn object(&mut self, key: &'static str) -> Obj<'_> {
        self.key(key);
        let indent = self.indent + 3;
        Obj::open(self.out, indent)
    }

    fn close(self) {
        if !self.empty {
            self.out.push(b'\n');
            self.out.extend_from_slice(&SPACES[..self.indent - 3]);
        }
        self.out.push(b'}');
    }
}

/// The RFC 3339 text of the last timestamp written: the events of a batch mostly share their
/// second, whose date and time are then kept and only the fraction is written again.
#[derive(Default)]
struct Stamps {
    second: Option<i64>,
    buf: [u8; 32],
}

impl Stamps {
    fn write(&mut self, t: &super::Timestamp) -> Option<&[u8]> {
        if self.second == Some(t.unix_seconds()) {
            let len = super::timestamp::write_fraction(&mut self.buf, t.subsec_nanos());
            return Some(&self.buf[..len]);
        }
        self.second = None;
        let len = t.write_rfc3339_ascii(&mut self.buf)?.len();
        self.second = Some(t.unix_seconds());
        Some(&self.buf[..len])
    }
}

/// An event's members up to the `id` of its `request`, whose object is left open for
/// [`write_client`].
fn write_event(e: &Event, format: Format, out: &mut Vec<u8>, stamps: &mut Stamps) {
    // The event's own `{` is written by the caller; its members are at depth 3.
    let mut o = Obj {
        out,
        indent: 9,
        empty: true,
    };
    o.str_nonempty(str_key!(event_key, "id"), &e.id);
    match stamps.write(&e.timestamp) {
        Some(ts) => o.ascii(str_key!(event_key, "timestamp"), ts),
        None => o.text(str_key!(event_key, "timestamp"), &e.timestamp.to_string()),
    }
    o.ascii(str_key!(event_key, "action"), e.action.as_str().as_bytes());

    let t = &e.target;
    let d = &t.descriptor;
    let mut target = o.object(event_key!("target"));
    // `length` is `size` again (Distribution's backwards compatibility): its digits are
    // written once and copied.
    let mut size_buf = [0; 21];
    let size = int_ascii(d.size, &mut size_buf);
    match format {
        Format::EventsV1 => {
            target.str_nonempty(str_key!(nested_key, "mediaType"), &d.media_type);
            if d.size != 0 {
                target.raw(nested_key!("size"), size);
            }
            target.str_nonempty(str_key!(nested_key, "digest"), &d.digest);
        }
        Format::EventsV2 | Format::CloudEvents | Format::CloudEventsBatch => {
            target.str(str_key!(nested_key, "mediaType"), &d.media_type);
            target.str(str_key!(nested_key, "digest"), &d.digest);
            target.raw(nested_key!("size"), size);
        }
    }
    if t.length == d.size {
        if t.length != 0 {
            target.raw(nested_key!("length"), size);
        }
    } else if t.length != 0 {
        target.int(nested_key!("length"), t.length);
    }
    target.str_nonempty(str_key!(nested_key, "repository"), &t.repository);
    target.str_nonempty(str_key!(nested_key, "fromRepository"), &t.from_repository);
    target.str_nonempty(str_key!(nested_key, "url"), &t.url);
    target.str_nonempty(str_key!(nested_key, "tag"), &t.tag);
    target.close();

    let mut request = o.object(event_key!("request"));
    request.str(str_key!(nested_key, "id"), &e.request.id);
}

/// The rest of an event after [`write_event`]: the members of `request` after its `id`, then
/// `actor` and `source`. They say which client sent the request to which registry, so the
/// events of one client's requests share them: [`write_envelope`] writes them once and copies
/// them for the events that follow from the same client.
fn write_client(e: &Event, out: &mut Vec<u8>) {
    let r = &e.request;
    // The request object is open, its `id` written.
    let mut request = Obj {
        out,
        indent: 12,
        empty: false,
    };
    request.str_nonempty(str_key!(nested_key, "addr"), &r.addr);
    request.str_nonempty(str_key!(nested_key, "host"), &r.host);
    request.str(str_key!(nested_key, "method"), &r.method);
    request.str(str_key!(nested_key, "useragent"), &r.useragent);
    request.close();

    let mut o = Obj {
        out,
        indent: 9,
        empty: false,
    };
    let mut actor = o.object(event_key!("actor"));
    actor.str_nonempty(str_key!(nested_key, "name"), &e.actor.name);
    actor.close();

    let mut source = o.object(event_key!("source"));
    source.str_nonempty(str_key!(nested_key, "addr"), &e.source.addr);
    source.str_nonempty(str_key!(nested_key, "instanceID"), &e.source.instance_id);
    source.close();
}

/// Whether any byte of `b` may need Go's escaping: controls, `"`, `\\`, `<`, `>`, `&`, or
/// any byte above 0x7F (a superset: U+2028/U+2029 need escaping, and other non-ASCII text
/// merely takes the exact path).
///
/// Eight bytes at a time with word arithmetic (the tail padded with a harmless byte),
/// without `unsafe`: `"` and `&` are found together as `x | 0x04 == 0x26`, `<` and `>` as
/// `x | 0x02 == 0x3E`.
pub(crate) fn any_special(b: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    /// High bit set in the bytes of `x` that are zero (exact as an "any" test: a false
    /// positive needs a borrow, which only a true zero byte starts).
    #[inline(always)]
    fn zero_bytes(x: u64) -> u64 {
        x.wrapping_sub(ONES) & !x
    }
    #[inline(always)]
    fn word_special(x: u64) -> bool {
        // Bytes below 0x20: the same borrow trick, valid for bounds up to 0x80; bytes
        // above 0x7F have their high bit set already. (`^` would do as well as `|`: the
        // lowest flagged byte is a true hit of each term flagging it, as borrows only reach
        // upwards, and no byte is a true hit of two terms.)
        let hits = x
            | (x.wrapping_sub(ONES * 0x20) & !x)
            | zero_bytes((x | (ONES * 0x04)) ^ (ONES * 0x26))
            | zero_bytes((x | (ONES * 0x02)) ^ (ONES * 0x3E))
            | zero_bytes(x ^ (ONES * u64::from(b'\\')));
        hits & HIGH != 0
    }
    let mut words = b.chunks_exact(8);
    for word in &mut words {
        let word: [u8; 8] = word.try_into().unwrap_or([b'a'; 8]);
        if word_special(u64::from_ne_bytes(word)) {
            return true;
        }
    }
    let tail = words.remainder();
    let mut padded = [b'a'; 8];
    padded[..tail.len()].copy_from_slice(tail);
    word_special(u64::from_ne_bytes(padded))
}

/// A JSON string with Go's escaping; copied in one piece when nothing needs escaping.
#[cfg(test)]
fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    write_str_rest(out, s);
}

/// The rest of a JSON string whose opening quote is already written: the text, copied in
/// one piece when nothing needs escaping, and the closing quote.
fn write_str_rest(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    if any_special(b) {
        // The exact path writes the quotes itself.
        out.pop();
        let mut ser = serde_json::Serializer::with_formatter(&mut *out, GoFormatter::new());
        // Writing a string into a Vec cannot fail.
        let _ = (&mut ser).serialize_str(s);
        return;
    }
    out.extend_from_slice(b);
    out.push(b'"');
}

/// `v` in decimal, with its sign, written into the end of `buf`.
fn int_ascii(v: i64, buf: &mut [u8; 21]) -> &[u8] {
    let start = buf.len() - decimal_ascii(v.unsigned_abs(), buf).len();
    if v < 0 {
        buf[start - 1] = b'-';
        return &buf[start - 1..];
    }
    &buf[start..]
}

/// `n` in decimal, written into the end of `buf` (20 digits hold every `u64`).
pub(crate) fn decimal(n: u64, buf: &mut [u8; 20]) -> &str {
    // ASCII digits only.
    std::str::from_utf8(decimal_ascii(n, buf)).unwrap_or_default()
}

/// [`decimal`] as bytes, for a writer of bytes (no UTF-8 check), at the end of `buf` (at least
/// 20 bytes long).
fn decimal_ascii<const N: usize>(mut n: u64, buf: &mut [u8; N]) -> &[u8] {
    const { assert!(N >= 20, "20 digits hold every u64") };
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers with their sign, at the limits of `i64` too (a size is never negative in an
    /// event the layer made, but an event of your own may say anything).
    #[test]
    fn integers_as_text() {
        for v in [0, 1, -1, 9, 10, 555, -555, i64::MAX, i64::MIN, i64::MIN + 1] {
            let mut buf = [0; 21];
            assert_eq!(int_ascii(v, &mut buf), v.to_string().as_bytes(), "{v}");
        }
    }

    /// Go's escaping through serde, the reference for `write_str`.
    fn reference(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter::new());
        (&mut ser).serialize_str(s).unwrap();
        out
    }

    /// Every special character at every position of strings around the 16-byte chunk
    /// boundaries is noticed, and the output equals the reference.
    #[test]
    fn write_str_matches_reference_at_every_position() {
        let specials = [
            "\"", "\\", "<", ">", "&", "\n", "\u{1}", "\u{2028}", "\u{2029}", "\u{e000}", "é",
        ];
        for len in 0..40 {
            for at in 0..=len {
                for special in specials {
                    let s = format!("{}{special}{}", "a".repeat(at), "b".repeat(len - at));
                    let mut out = Vec::new();
                    write_str(&mut out, &s);
                    assert_eq!(out, reference(&s), "{s:?}");
                }
            }
            let plain = "x".repeat(len);
            assert!(!any_special(plain.as_bytes()));
        }
    }

    /// The word check flags exactly the ASCII bytes Go escapes, and every non-ASCII byte,
    /// at every position of a word and of a tail.
    #[test]
    fn special_bytes_are_found_exactly() {
        let special = |c: u8| !(0x20..0x80).contains(&c) || b"\"\\<>&".contains(&c);
        for len in [1, 7, 8, 9, 13, 16] {
            for at in 0..len {
                for c in 0..=255u8 {
                    let mut b = vec![b'a'; len];
                    b[at] = c;
                    assert_eq!(any_special(&b), special(c), "byte {c:#x} at {at} of {len}");
                }
            }
        }
    }

    /// Events that share their second, then do not, then do again (and one whose year
    /// takes the general path between them): each timestamp is written whole, as the
    /// serde reference writes it, and plain and escaped fields agree with it too.
    #[test]
    fn timestamps_of_one_second_and_of_others() {
        use crate::event::{Action, Target, Timestamp};
        let second = 1_733_000_000;
        let times = [
            (second, 0),
            (second, 5),
            (second, 123_456_789),
            (second, 100_000_000),
            (second + 1, 999_999_999),
            (second, 7_000),
            (253_402_300_800, 10),
            (253_402_300_800, 20),
            (second, 0),
        ];
        let events: Vec<Event> = times
            .iter()
            .enumerate()
            .map(|(i, (secs, nanos))| {
                let mut e = Event::new(Action::Pull, Target::default());
                e.timestamp = Timestamp::from_unix(*secs, *nanos);
                e.target.repository = if i % 2 == 0 {
                    "a/b".into()
                } else {
                    "a<b>\"c".into()
                };
                e
            })
            .collect();
        for format in [Format::EventsV1, Format::EventsV2] {
            let mut fast = Vec::new();
            write_envelope(&events, format, &mut fast);
            let mut reference = Vec::new();
            super::super::wire::encode_envelope(&events, format, &mut reference);
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                String::from_utf8(reference).unwrap()
            );
        }
    }

    /// The size estimate covers an ordinary event in either format, so encoding an
    /// envelope allocates once.
    #[test]
    fn estimate_covers_the_event() {
        use crate::event::{Action, Descriptor, SourceRecord, Target};
        let digest = format!("sha256:{}", "ab".repeat(32));
        let mut e = Event::new(
            Action::Push,
            Target {
                descriptor: Descriptor::new("application/vnd.oci.image.manifest.v1+json", &digest, 1 << 40),
                length: 1 << 40,
                repository: "a/b".into(),
                from_repository: "c/d".into(),
                url: format!("http://registry.example.com:5000/v2/a/b/manifests/{digest}").into(),
                tag: "latest".into(),
                ..Target::default()
            },
        );
        e.request.addr = "[2001:db8::1]:65535".into();
        e.request.method = "PUT".into();
        e.actor.name = "alice".into();
        e.source = SourceRecord::local("127.0.0.1:5000");
        for format in [Format::EventsV1, Format::EventsV2] {
            let mut out = Vec::new();
            write_envelope(std::slice::from_ref(&e), format, &mut out);
            assert!(
                out.len() <= estimated_len(&e) + 32,
                "{} > {}",
                out.len(),
                estimated_len(&e)
            );
            // … without reserving far more than it takes (the estimate is a capacity hint:
            // `+ 32` as `- 32` would only change how much slack there is).
            assert!(
                estimated_len(&e) < 2 * out.len(),
                "{} vs {}",
                estimated_len(&e),
                out.len()
            );
            assert!(
                out.capacity() < 2 * out.len(),
                "{} vs {}",
                out.capacity(),
                out.len()
            );
        }
    }
}
