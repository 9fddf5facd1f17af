//! Packing round trips: equal events, sound plainness, bounded size; damaged bytes never panic.

use proptest::prelude::*;

use super::*;
use crate::event::{any_special, build_strings};

/// Text from a small pool (so that fields repeat from one event to the next), or any.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["", "library/alpine", "sha256:ab", "a<b", "é\"\\", "GET"]).prop_map(String::from),
        2 => any::<String>(),
    ]
}

/// A shared string as the layer makes them: checked for plainness, or static, or plain.
fn shared() -> impl Strategy<Value = SharedStr> {
    (text(), 0..3u8).prop_map(|(s, how)| match how {
        0 => build_strings(|b| b.push_checked(&s))
            .0
            .get(build_strings(|b| b.push_checked(&s)).1),
        1 => SharedStr::from(s.as_str()),
        _ => SharedStr::from_static("application/vnd.oci.image.manifest.v1+json"),
    })
}

fn descriptor(extras: bool) -> impl Strategy<Value = Descriptor> {
    (
        (shared(), shared(), any::<i64>()),
        prop::collection::vec(text(), 0..3),
        prop::collection::btree_map(text(), text(), 0..3),
        (
            prop::option::of(text()),
            prop::option::of((
                text(),
                text(),
                text(),
                prop::collection::vec(text(), 0..3),
                text(),
            )),
            prop::option::of(text()),
        ),
    )
        .prop_map(
            move |((m, d, s), urls, annotations, (data, platform, artifact_type))| {
                let mut out = Descriptor::new(m, d, s);
                if extras {
                    out.urls = urls;
                    out.annotations = annotations;
                    out.data = data;
                    out.platform = platform.map(|(architecture, os, os_version, os_features, variant)| {
                        Box::new(Platform {
                            architecture,
                            os,
                            os_version,
                            os_features,
                            variant,
                        })
                    });
                    out.artifact_type = artifact_type;
                }
                out
            },
        )
}

fn event() -> impl Strategy<Value = Event> {
    (
        (shared(), any::<i64>(), 0u32..1_000_000_000, 0..5u8),
        (
            descriptor(true),
            any::<i64>(),
            shared(),
            shared(),
            shared(),
            shared(),
        ),
        prop::collection::vec(descriptor(true), 0..2),
        (shared(), shared(), shared(), shared(), shared(), shared()),
        (shared(), shared(), shared()),
    )
        .prop_map(|((id, secs, nanos, action), t, references, r, o)| Event {
            id,
            timestamp: Timestamp::from_unix(secs, nanos),
            action: [
                Action::Push,
                Action::Pull,
                Action::Mount,
                Action::Delete,
                Action::Ping,
            ][usize::from(action)],
            target: Target {
                descriptor: t.0,
                length: t.1,
                repository: t.2,
                from_repository: t.3,
                url: t.4,
                tag: t.5,
                references,
            },
            request: RequestRecord {
                id: r.0,
                addr: r.1,
                host: r.2,
                method: r.3,
                useragent: r.4,
                traceparent: r.5,
            },
            actor: ActorRecord { name: o.0 },
            source: SourceRecord {
                addr: o.1,
                instance_id: o.2,
            },
        })
}

/// Every shared string of an event (references' too).
fn strings(e: &Event) -> Vec<&SharedStr> {
    let mut out = vec![
        &e.id,
        &e.target.descriptor.media_type,
        &e.target.descriptor.digest,
        &e.target.repository,
        &e.target.from_repository,
        &e.target.url,
        &e.target.tag,
        &e.request.id,
        &e.request.addr,
        &e.request.host,
        &e.request.method,
        &e.request.useragent,
        &e.request.traceparent,
        &e.actor.name,
        &e.source.addr,
        &e.source.instance_id,
    ];
    for d in &e.target.references {
        out.push(&d.media_type);
        out.push(&d.digest);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x0009_aced),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// What is unpacked equals what was packed, batch for batch, whether batches joined an
    /// open pack or started one (a closed pack takes no more); a string said to be plain is,
    /// and one that was plain and is not the same as the event before's stays plain.
    #[test]
    fn round_trip(batches in prop::collection::vec(prop::collection::vec(event(), 1..4), 1..5), close_at in 0..6usize, max in 1..12usize) {
        let mut packs = Vec::new();
        let mut open: Option<Packed> = None;
        for (i, batch) in batches.iter().enumerate() {
            let batch = Batch::from(batch.clone());
            if i == close_at {
                if let Some(p) = open.as_mut() {
                    p.close();
                }
            }
            let rest = match open.as_mut() {
                Some(p) => p.join(batch, max).err(),
                None => Some(batch),
            };
            if let Some(batch) = rest {
                packs.extend(open.replace(Packed::pack(batch, max)));
            }
        }
        packs.extend(open);
        prop_assert!(packs.iter().all(|p| p.len() <= max || p.batches.len() == 1), "a joined pack past {}", max);
        let back: Vec<Vec<Event>> = packs.into_iter().flat_map(Packed::unpack).map(|b| b.to_vec()).collect();
        prop_assert_eq!(&back, &batches);
        let (back, events): (Vec<&Event>, Vec<&Event>) = (back.iter().flatten().collect(), batches.iter().flatten().collect());
        for (i, (b, e)) in back.iter().zip(&events).enumerate() {
            for (s, orig) in strings(b).into_iter().zip(strings(e)) {
                prop_assert!(!s.is_plain() || !any_special(s.as_bytes()), "{:?} said plain", s);
                if i == 0 && orig.is_plain() {
                    prop_assert!(s.is_plain(), "{:?} lost its plainness", s);
                }
            }
        }
    }

    /// Damaged bytes (never made by the queue) give events, never a panic.
    #[test]
    fn damaged_bytes_do_not_panic(meta in prop::collection::vec(any::<u8>(), 0..200), text in ".{0,40}", len in 0usize..8) {
        let packed = Packed { meta, text, batches: vec![len], len, last: None };
        let back = packed.unpack();
        prop_assert_eq!((back.len(), back[0].len()), (1, len));
    }
}

/// A pull as the layer makes it packs into less than half of what it holds in memory, and
/// the client's members of a second event cost a byte each.
#[test]
fn a_pull_packs_small() {
    let (strings, spans) = build_strings(|b| {
        [
            "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "sha256:ae40c5188662bc7902612ed0ceb103e138a8f36d041b758626c5d5b71f517e05",
            "library/test",
            "http://127.0.0.1:5000/v2/library/test/manifests/sha256:ae40c5188662bc7902612ed0ceb103e138a8f36d041b758626c5d5b71f517e05",
            "latest",
            "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
            "127.0.0.1:40000",
            "127.0.0.1:5000",
            "skopeo/1.9.3",
        ]
        .map(|s| b.push_plain(s))
    });
    let s = |i: usize| strings.get(spans[i]);
    let mut target = Target {
        descriptor: Descriptor::new("application/vnd.oci.image.manifest.v1+json", s(1), 555),
        length: 555,
        repository: s(2),
        url: s(3),
        tag: s(4),
        ..Target::default()
    };
    target.from_repository = SharedStr::new();
    let event = Event {
        id: s(0),
        timestamp: Timestamp::from_unix(1_764_000_000, 123_456_789),
        action: Action::Pull,
        target,
        request: RequestRecord {
            id: s(5),
            addr: s(6),
            host: s(7),
            method: SharedStr::from_static("GET"),
            useragent: s(8),
            traceparent: SharedStr::new(),
        },
        actor: ActorRecord::default(),
        source: SourceRecord {
            addr: SharedStr::from("registry-host:5000"),
            instance_id: SharedStr::from("0193a1b2-0000-7e5f-8a9b-0c1d2e3f4a5b"),
        },
    };
    let one = Packed::pack(Batch::from(event.clone()), 1);
    let bytes = one.meta.len() + one.text.len();
    assert!(bytes < 480, "{bytes} bytes");
    let mut second = event.clone();
    second.id = SharedStr::from("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d");
    second.request.id = SharedStr::from("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5e");
    let two = Packed::pack(Batch::from(vec![event.clone(), second.clone()]), 2);
    let more = two.meta.len() + two.text.len() - bytes;
    // Two new ids (36 bytes of text each, and their kind and length), a timestamp, the rest
    // a byte each.
    assert!(more < 120, "{more} bytes");
    // The same when the second joins as a batch of its own.
    let mut joined = Packed::pack(Batch::from(event.clone()), 3);
    assert!(joined.join(Batch::from(second.clone()), 3).is_ok());
    assert_eq!(joined.meta.len() + joined.text.len(), bytes + more);
    assert!(
        joined.join(Batch::from(vec![second.clone(); 2]), 3).is_err(),
        "past its most"
    );
    joined.close();
    assert!(joined.join(Batch::from(second.clone()), 3).is_err(), "closed");
    // Closed at once when another batch as large would not fit.
    let mut full = Packed::pack(Batch::from(event.clone()), 2);
    assert!(full.join(Batch::from(second.clone()), 2).is_ok());
    assert!(full.last.is_none());
    let batches = joined.unpack();
    assert_eq!(batches.iter().map(|b| b.len()).collect::<Vec<_>>(), [1, 1]);
    let flat = |batches: Vec<Batch>| batches.iter().flat_map(|b| b.to_vec()).collect::<Vec<_>>();
    assert_eq!(flat(batches), vec![event.clone(), second.clone()]);
    assert_eq!(flat(two.unpack()), vec![event, second]);
}

/// Numbers at their types' limits come back as they were.
#[test]
fn numbers_at_their_limits() {
    let events: Vec<Event> = [i64::MIN, -1, 0, 1, i64::MAX]
        .into_iter()
        .map(|n| {
            let mut e = Event::new(Action::Push, Target::default());
            e.timestamp = Timestamp::from_unix(n, 999_999_999);
            e.target.descriptor.size = n;
            e.target.length = n.wrapping_neg();
            e.target.references = vec![Descriptor::new("m", "d", n)];
            e
        })
        .collect();
    let back = Packed::pack(Batch::from(events.clone()), 5).unpack();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].to_vec(), events);
}
