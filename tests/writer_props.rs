//! Envelopes on arbitrary events, byte for byte, through the public API.
//!
//! `Format::encode` writes ordinary events with a fast direct writer and falls back to the serde
//! path (the reference) for an envelope holding any event the writer does not handle (references,
//! `urls`, `annotations`, …). Four properties, on events with arbitrary text (any Unicode,
//! controls, Go's escapes `<`, `>`, `&`, U+2028, U+2029, long strings) in every field:
//!
//! - the fast writer and the serde path write the same bytes, in both `events.v1` and
//!   `events.v2` (an extra event with a reference at the end forces the serde path), also
//!   where events share all or all but one of their client members (which the fast writer
//!   copies from the event before when they are the same);
//! - `events.v2` envelopes of events with every field (annotations, urls, platform, references,
//!   data, artifactType) equal serde_json's own pretty printer (three-space indent) followed by an
//!   independent rewrite to Go's escaping: `\u003c`, `\u003e`, `\u0026`, `\u2028`, `\u2029`,
//!   `\u0008`, `\u000c`;
//! - what is written reads back as the same events.
//!
//! 256 cases per property from a fixed seed; a long run (other seeds with
//! `PROPTEST_RNG_SEED=<n>`):
//!
//! ```text
//! PROPTEST_CASES=20000 cargo test --release --all-features --test writer_props
//! ```

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use registry_notify::event::ActorRecord;
use registry_notify::{
    Action, Descriptor, Envelope, Event, Format, Platform, RequestRecord, SourceRecord, Target, Timestamp,
};
use serde::Serialize;

/// 256 cases from a fixed seed (see `registry_notify_testkit::props::config`).
fn config() -> ProptestConfig {
    registry_notify_testkit::props::config(256, 0x0e17_e700)
}

/// Characters that take the escaping paths: JSON's, Go's, and multi-byte text around them.
const SPECIAL: &[&str] = &[
    "<",
    ">",
    "&",
    "\u{2028}",
    "\u{2029}",
    "\"",
    "\\",
    "/",
    "\n",
    "\r",
    "\t",
    "\u{8}",
    "\u{c}",
    "\u{0}",
    "\u{1}",
    "\u{1f}",
    "\u{7f}",
    "\u{80}",
    "\u{e2}",
    "\u{2027}",
    "\u{202a}",
    "é",
    "€",
    "\u{feff}",
    "😀",
    "\u{10ffff}",
    "a",
    "0",
    " ",
];

/// Arbitrary text, biased to the characters that need care, sometimes long.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        3 => prop::collection::vec(prop::sample::select(SPECIAL), 0..24).prop_map(|v| v.concat()),
        2 => "[a-z0-9:/._-]{0,40}",
        1 => Just(String::new()),
        1 => ("[a-z]{0,600}", prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(SPECIAL)), 0..8))
            .prop_map(|(mut s, inserts)| {
                for (at, c) in inserts {
                    let at = at.index(s.len() + 1);
                    let at = (0..=at).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
                    s.insert_str(at, c);
                }
                s
            }),
    ]
}

/// A timestamp anywhere from year -9999 to 9999 (Go's layout only up to 9999 reads back), or any.
fn timestamp(readable: bool) -> impl Strategy<Value = Timestamp> {
    let secs = if readable {
        (-62_167_219_200i64..253_402_300_800).boxed()
    } else {
        prop_oneof![
            -62_167_219_200i64..253_402_300_800,
            -400_000_000_000i64..400_000_000_000
        ]
        .boxed()
    };
    (secs, 0u32..1_000_000_000).prop_map(|(s, n)| Timestamp::from_unix(s, n))
}

fn size() -> impl Strategy<Value = i64> {
    prop_oneof![Just(0i64), 0i64..1 << 40, any::<i64>()]
}

fn action() -> impl Strategy<Value = Action> {
    prop::sample::select(vec![Action::Push, Action::Pull, Action::Mount, Action::Delete])
}

/// An event the fast writer handles: no references, `urls`, `annotations`, `data`, `platform` or
/// `artifactType`.
fn ordinary_event(readable: bool) -> impl Strategy<Value = Event> {
    (
        (text(), timestamp(readable), action()),
        // `length` is mostly `size` again, as in the events the layer makes.
        (text(), text(), size(), prop::option::of(size())),
        (text(), text(), text(), text()),
        (text(), text(), text(), text(), text()),
        (text(), text(), text()),
    )
        .prop_map(|((id, timestamp, action), d, t, r, other)| Event {
            id: id.into(),
            timestamp,
            action,
            target: Target {
                descriptor: Descriptor::new(d.0, d.1, d.2),
                length: d.3.unwrap_or(d.2),
                repository: t.0.into(),
                from_repository: t.1.into(),
                url: t.2.into(),
                tag: t.3.into(),
                references: Vec::new(),
            },
            request: RequestRecord {
                id: r.0.into(),
                addr: r.1.into(),
                host: r.2.into(),
                method: r.3.into(),
                useragent: r.4.into(),
                ..RequestRecord::default()
            },
            actor: ActorRecord { name: other.0.into() },
            source: SourceRecord {
                addr: other.1.into(),
                instance_id: other.2.into(),
            },
        })
}

/// `Some` text, never `Some("")` (which is written as nothing, so reads back as `None`).
fn some_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(text().prop_filter("non-empty", |s| !s.is_empty()))
}

fn platform() -> impl Strategy<Value = Platform> {
    (
        text(),
        text(),
        text(),
        prop::collection::vec(text(), 0..3),
        text(),
    )
        .prop_map(|(architecture, os, os_version, os_features, variant)| Platform {
            architecture,
            os,
            os_version,
            os_features,
            variant,
        })
}

/// A descriptor with every field.
fn full_descriptor() -> impl Strategy<Value = Descriptor> {
    (
        (text(), text(), size()),
        prop::collection::vec(text(), 0..3),
        prop::collection::btree_map(text(), text(), 0..3),
        (
            some_text(),
            prop::option::of(platform().prop_map(Box::new)),
            some_text(),
        ),
    )
        .prop_map(
            |((m, d, s), urls, annotations, (data, platform, artifact_type))| Descriptor {
                urls,
                annotations: annotations.into_iter().collect::<BTreeMap<_, _>>(),
                data,
                platform,
                artifact_type,
                ..Descriptor::new(m, d, s)
            },
        )
}

/// An event with every field, references included.
fn full_event() -> impl Strategy<Value = Event> {
    (
        ordinary_event(true),
        full_descriptor(),
        prop::collection::vec(full_descriptor(), 0..3),
    )
        .prop_map(|(mut e, descriptor, references)| {
            e.target.descriptor = descriptor;
            e.target.references = references;
            e
        })
}

/// serde_json's pretty printer with Go's indent of three spaces.
fn serde_pretty<T: Serialize>(value: &T) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        serde_json::ser::PrettyFormatter::with_indent(b"   "),
    );
    value.serialize(&mut ser).unwrap();
    String::from_utf8(out).unwrap()
}

/// JSON text as Go's `encoding/json` escapes it, from serde_json's: `<`, `>`, `&`, U+2028 and
/// U+2029 (which only occur inside strings) as `\u…`, and `\b`, `\f` spelt `\u0008`, `\u000c`.
fn go_escaping(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut chars = json.chars();
    while let Some(c) = chars.next() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            '\\' => match chars.next() {
                Some('b') => out.push_str("\\u0008"),
                Some('f') => out.push_str("\\u000c"),
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

/// An event the fast writer leaves to serde.
fn with_reference() -> Event {
    let mut e = Event::new(Action::Push, Target::default());
    e.target.references.push(Descriptor::new("m", "d", 1));
    e
}

const ENVELOPE_END: &[u8] = b"\n   ]\n}";

/// Gives `to` the client members of `from` (`request.addr`, `host`, `method`, `useragent`,
/// `actor`, `source`), all of them or all but the one numbered `except`.
fn copy_client(from: &Event, to: &mut Event, except: Option<usize>) {
    let keep = |i: usize| except != Some(i);
    if keep(0) {
        to.request.addr = from.request.addr.clone();
    }
    if keep(1) {
        to.request.host = from.request.host.clone();
    }
    if keep(2) {
        to.request.method = from.request.method.clone();
    }
    if keep(3) {
        to.request.useragent = from.request.useragent.clone();
    }
    if keep(4) {
        to.actor = from.actor.clone();
    }
    if keep(5) {
        to.source.addr = from.source.addr.clone();
    }
    if keep(6) {
        to.source.instance_id = from.source.instance_id.clone();
    }
}

/// The fast writer's bytes for `events` equal the serde path's, in both Distribution formats.
fn assert_fast_equals_serde(events: &[Event]) -> Result<(), TestCaseError> {
    for format in [Format::EventsV1, Format::EventsV2] {
        let fast = format.encode(events);
        let mut forced = events.to_vec();
        forced.push(with_reference());
        let reference = format.encode(&forced);
        // `{"events": [e1, …, en` is common; then the reference goes on with its extra event.
        prop_assert!(fast.ends_with(ENVELOPE_END));
        let common = fast.len() - ENVELOPE_END.len();
        prop_assert_eq!(
            String::from_utf8_lossy(&fast[..common]),
            String::from_utf8_lossy(&reference[..common.min(reference.len())]),
            "{}",
            format
        );
        prop_assert!(reference[common..].starts_with(b",\n      {"), "{}", format);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// The fast writer equals the serde path, byte for byte, in both Distribution formats.
    #[test]
    fn fast_writer_equals_the_serde_path(events in prop::collection::vec(ordinary_event(false), 1..4)) {
        assert_fast_equals_serde(&events)?;
    }

    /// The same when events come from the same client as an event before them (the writer
    /// copies the members it wrote for that one), from the same client but for one member, or
    /// from another: each event's client members are its own.
    #[test]
    fn events_of_one_client_are_written_as_their_own(
        mut events in prop::collection::vec(ordinary_event(false), 2..7),
        shares in prop::collection::vec((any::<prop::sample::Index>(), prop::option::of(0..7usize), any::<bool>()), 6),
    ) {
        for (i, (from, except, share)) in shares.into_iter().enumerate().take(events.len() - 1) {
            let i = i + 1;
            if share {
                let from = events[from.index(i)].clone();
                copy_client(&from, &mut events[i], except);
            }
        }
        assert_fast_equals_serde(&events)?;
    }

    /// `events.v2` envelopes of events with every field equal serde_json with Go's escaping.
    #[test]
    fn envelopes_equal_serde_json_with_go_escaping(
        ordinary in prop::collection::vec(ordinary_event(false), 0..3),
        full in prop::collection::vec(full_event(), 0..2),
    ) {
        for events in [ordinary.clone(), [ordinary, full].concat()] {
            let got = String::from_utf8(Format::EventsV2.encode(&events)).unwrap();
            let want = go_escaping(&serde_pretty(&Envelope { events }));
            prop_assert_eq!(got, want);
        }
    }

    /// What is written reads back as the same events.
    #[test]
    fn envelopes_read_back(
        ordinary in prop::collection::vec(ordinary_event(true), 1..3),
        full in prop::collection::vec(full_event(), 0..2),
    ) {
        for format in [Format::EventsV1, Format::EventsV2] {
            let back: Envelope = serde_json::from_slice(&format.encode(&ordinary)).unwrap();
            prop_assert_eq!(&back.events, &ordinary, "{}", format);
        }
        let all = [ordinary, full].concat();
        let back: Envelope = serde_json::from_slice(&Format::EventsV2.encode(&all)).unwrap();
        prop_assert_eq!(back.events, all);
    }
}

/// The escapes themselves, once, so that a wrong rewrite in `go_escaping` cannot hide one.
#[test]
fn go_escapes_by_example() {
    let mut e = Event::new(Action::Push, Target::default());
    e.target.tag = "<>&\u{2028}\u{2029}\u{8}\u{c}\n\"\\/\u{1}\u{7f}é".into();
    let v2 = String::from_utf8(Format::EventsV2.encode(std::slice::from_ref(&e))).unwrap();
    assert!(
        v2.contains(r#""tag": "\u003c\u003e\u0026\u2028\u2029\u0008\u000c\n\"\\/\u0001"#),
        "{v2}"
    );
    assert_eq!(v2, go_escaping(&serde_pretty(&Envelope { events: vec![e] })));
    assert_eq!(go_escaping(r#""\\b\\f\b""#), r#""\\b\\f\u0008""#);
}
