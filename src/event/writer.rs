//! A direct writer for envelopes of ordinary events, byte-identical to the serde
//! path in `format.rs` (which stays the reference, and handles whatever this one
//! does not: references, `urls`, `annotations`, `data`, `platform`, `artifactType`).
//!
//! It exists for speed: a batched endpoint spends most of its CPU writing JSON, and
//! writing the known shape directly — keys as literals, strings copied in one piece
//! when they need no escape — is several times faster than the generic serializer.

use serde::Serializer as _;

use super::format::GoFormatter;
use super::{Event, Format};

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
    out.extend_from_slice(b"{\n   \"events\": [");
    for (i, e) in events.iter().enumerate() {
        out.extend_from_slice(if i == 0 { b"\n      {" } else { b",\n      {" });
        write_event(e, format, out);
        out.extend_from_slice(b"\n      }");
    }
    out.extend_from_slice(b"\n   ]\n}");
}

/// The members of one JSON object at a given depth.
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

    fn key(&mut self, key: &str) {
        self.out
            .extend_from_slice(if self.empty { b"\n" } else { b",\n" });
        self.empty = false;
        self.out.extend_from_slice(&SPACES[..self.indent]);
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\": ");
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        write_str(self.out, value);
    }

    fn str_nonempty(&mut self, key: &str, value: &str) {
        if !value.is_empty() {
            self.str(key, value);
        }
    }

    fn int(&mut self, key: &str, value: i64) {
        self.key(key);
        write_int(self.out, value);
    }

    /// Opens a nested object as the value of `key`.
    fn object(&mut self, key: &str) -> Obj<'_> {
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

fn write_event(e: &Event, format: Format, out: &mut Vec<u8>) {
    // The event's own `{` is written by the caller; its members are at depth 3.
    let mut o = Obj {
        out,
        indent: 9,
        empty: true,
    };
    o.str_nonempty("id", &e.id);
    o.key("timestamp");
    let mut buf = [0u8; 32];
    match e.timestamp.write_rfc3339(&mut buf) {
        Some(ts) => write_str(o.out, ts),
        None => write_str(o.out, &e.timestamp.to_string()),
    }
    o.key("action");
    o.out.push(b'"');
    o.out.extend_from_slice(e.action.as_str().as_bytes());
    o.out.push(b'"');

    let t = &e.target;
    let d = &t.descriptor;
    let mut target = o.object("target");
    match format {
        Format::EventsV1 => {
            target.str_nonempty("mediaType", &d.media_type);
            if d.size != 0 {
                target.int("size", d.size);
            }
            target.str_nonempty("digest", &d.digest);
        }
        Format::EventsV2 | Format::CloudEvents | Format::CloudEventsBatch => {
            target.str("mediaType", &d.media_type);
            target.str("digest", &d.digest);
            target.int("size", d.size);
        }
    }
    if t.length != 0 {
        target.int("length", t.length);
    }
    target.str_nonempty("repository", &t.repository);
    target.str_nonempty("fromRepository", &t.from_repository);
    target.str_nonempty("url", &t.url);
    target.str_nonempty("tag", &t.tag);
    target.close();

    let r = &e.request;
    let mut request = o.object("request");
    request.str("id", &r.id);
    request.str_nonempty("addr", &r.addr);
    request.str_nonempty("host", &r.host);
    request.str("method", &r.method);
    request.str("useragent", &r.useragent);
    request.close();

    let mut actor = o.object("actor");
    actor.str_nonempty("name", &e.actor.name);
    actor.close();

    let mut source = o.object("source");
    source.str_nonempty("addr", &e.source.addr);
    source.str_nonempty("instanceID", &e.source.instance_id);
    source.close();
}

/// A JSON string with Go's escaping; copied in one piece when nothing needs escaping.
fn write_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    // No early exit, so that the compiler can check many bytes at a time.
    let special = b.iter().fold(false, |acc, &c| {
        acc | (c < 0x20) | (c == b'"') | (c == b'\\') | (c == b'<') | (c == b'>') | (c == b'&') | (c == 0xE2)
    });
    if special {
        let mut ser = serde_json::Serializer::with_formatter(&mut *out, GoFormatter::new());
        // Writing a string into a Vec cannot fail.
        let _ = (&mut ser).serialize_str(s);
        return;
    }
    out.reserve(b.len() + 2);
    out.push(b'"');
    out.extend_from_slice(b);
    out.push(b'"');
}

fn write_int(out: &mut Vec<u8>, v: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}
