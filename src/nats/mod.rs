//! Scale-out through NATS JetStream (feature `nats`): registry replicas publish, a pool of
//! workers delivers.
//!
//! ```text
//!  registry replica ─┐                                   ┌─ worker ─ filter → retry → HTTP ─┐
//!  registry replica ─┼─▶ queue → retry → Publisher ─▶ JetStream stream ─▶ durable consumer ─┤   endpoints
//!  registry replica ─┘   (memory or durable)            (file storage)   └─ worker ─ … ─────┘
//! ```
//!
//! **Publishing.** [`publisher_endpoint`] turns `notifications.nats` into an ordinary
//! [`Endpoint`](crate::endpoint::Endpoint) whose innermost stage is a [`Publisher`] instead of
//! an HTTP POST ([`Endpoint::builder_for_sink`](crate::endpoint::Endpoint::builder_for_sink)):
//! the request path only pushes into the endpoint's queue (in memory, or on disk with
//! `queue.path`), and the queue worker publishes each batch and awaits JetStream's
//! persistence acknowledgement. While NATS is unreachable the retry stage retries forever
//! (exponential backoff, 100 ms to 5 s, never dead-lettered) and events wait in the queue; a
//! batch is removed from the queue only once the server acknowledged it. Every message
//! carries a `Nats-Msg-Id` header derived from its events' ids, so a batch published again
//! after a lost acknowledgement is dropped by the server's deduplication window
//! (`duplicatewindow`, default 2 min). With
//! [`Notifications::builder`](crate::notifications::Notifications::builder), use
//! [`NotificationsBuilder::nats`](crate::notifications::NotificationsBuilder::nats) or a
//! configuration with `notifications.nats`.
//!
//! **Messages.** One message holds up to `maxevents` consecutive events with the same
//! subject: `<subject>.<repository segments>` (`subjectby: repository`, each segment escaped
//! by [`subject_token`]), `<subject>.<action>` (`subjectby: action`) or `<subject>`
//! (`none`). The payload is a Distribution `events.v2` envelope (`{"events":[…]}`, content type
//! in the `Content-Type` header), readable by any consumer of the stream.
//!
//! **Delivering.** A [`Worker`] pulls from a durable pull consumer (`consumer`, explicit
//! acknowledgement) that any number of workers share, and drives each configured endpoint's
//! filter → retry → HTTP stack ([`Endpoint::spawn_unqueued`](crate::endpoint::Endpoint::spawn_unqueued)).
//! A message is acknowledged only once every endpoint delivered it, filtered it out or
//! dead-lettered it (the endpoint's `retry.maxattempts` / `maxage`); while an endpoint retries,
//! the worker sends in-progress acknowledgements every third of `ackwait`, so long retries do
//! not make the server redeliver. A worker that dies leaves its messages unacknowledged: the
//! server redelivers them to another worker after `ackwait`. Delivery is therefore
//! at-least-once: a receiver may see an event twice, always with the same id and content.
//!
//! **Ordering.** JetStream keeps one order for the stream; events of one replica appear in the
//! order that replica's queue published them, and replicas interleave. *With one worker*, each
//! endpoint receives the events in stream order (one batch in flight per endpoint), except
//! that a redelivered message (its acknowledgement was lost, or a worker stopped before
//! acknowledging it) arrives again after later ones. *With several workers*, messages are
//! spread across the workers and each endpoint sees each worker's share in order, but there
//! is no order between workers: two events of the same repository may reach an endpoint in
//! either order. Receivers that need order should use the event timestamps or ids (UUIDv7,
//! time-ordered per replica).
//!
//! **Head of line.** Because one acknowledgement covers every endpoint, an endpoint that is
//! down holds up to `maxinflight` messages per worker; once those are in flight the worker
//! pulls no more, so the other endpoints wait too, until the failing endpoint recovers or
//! dead-letters (its `retry.maxage`, default 24 h). Give such endpoints a short `maxage` or
//! their own worker pool with its own `consumer` name.
//!
//! **NATS restarts.** The stream and consumer use file storage and survive a restart of the
//! server. nats-server syncs its files periodically (`sync_interval`, default 2 min): a
//! graceful restart loses nothing, a crash of the *machine* may lose what was not synced yet.

mod publisher;
mod worker;

pub use publisher::{publisher_endpoint, Publisher};
pub use worker::{Worker, WorkerHandle};

use std::time::Duration;

use async_nats::jetstream;

use crate::config::{NatsSettings, SubjectBy};
use crate::event::{Event, Format};

/// Longest subject suffix kept as it is; longer ones become a hash token.
const MAX_SUFFIX: usize = 200;

/// Escapes `text` into one valid NATS subject token: ASCII letters, digits, `_` and `-` stay;
/// every other byte becomes `~XX` (upper-case hex); the empty string becomes `~`. The mapping
/// is injective, and the result never contains `.`, `*`, `>` or whitespace.
///
/// ```
/// use registry_notify::nats::subject_token;
/// assert_eq!(subject_token("alpine"), "alpine");
/// assert_eq!(subject_token("my.repo"), "my~2Erepo");
/// assert_eq!(subject_token("a*>b c"), "a~2A~3Eb~20c");
/// assert_eq!(subject_token(""), "~");
/// ```
pub fn subject_token(text: &str) -> String {
    if text.is_empty() {
        return "~".to_owned();
    }
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("~{b:02X}"));
        }
    }
    out
}

/// The subject of `event`: see the [module docs](self).
///
/// ```
/// use registry_notify::config::{NatsSettings, SubjectBy};
/// use registry_notify::nats::subject_for;
/// use registry_notify::{Action, Event, Target};
///
/// let mut event = Event::new(Action::Push, Target::default());
/// event.target.repository = "library/my.app".into();
/// let mut settings = NatsSettings::new("nats://127.0.0.1:4222");
/// assert_eq!(subject_for(&settings, &event), "registry.notifications.library.my~2Eapp");
/// settings.subject_by = SubjectBy::Action;
/// assert_eq!(subject_for(&settings, &event), "registry.notifications.push");
/// ```
pub fn subject_for(settings: &NatsSettings, event: &Event) -> String {
    let suffix = match settings.subject_by {
        SubjectBy::None => return settings.subject.clone(),
        SubjectBy::Action => event.action.as_str().to_owned(),
        SubjectBy::Repository => {
            let tokens: Vec<String> = event.target.repository.split('/').map(subject_token).collect();
            let joined = tokens.join(".");
            if joined.len() <= MAX_SUFFIX {
                joined
            } else {
                // Servers refuse very long subjects; a hash keeps it short and distinct.
                format!("~H{:016X}", fnv1a(event.target.repository.as_bytes()))
            }
        }
    };
    format!("{}.{suffix}", settings.subject)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The `Nats-Msg-Id` of a message holding `events`: the id of a single event, or
/// `<first id>..<last id>` for several (a queue never reorders, so the ends name the run).
/// `None` when an id is empty (no deduplication then).
pub(crate) fn message_id(events: &[Event]) -> Option<String> {
    let (first, last) = (events.first()?, events.last()?);
    if first.id.is_empty() || last.id.is_empty() {
        return None;
    }
    Some(if events.len() == 1 {
        first.id.to_string()
    } else {
        format!("{}..{}", first.id, last.id)
    })
}

/// The payload of a message: an `events.v2` envelope.
pub(crate) fn encode(events: &[Event]) -> bytes::Bytes {
    Format::EventsV2.encode(events).into()
}

/// The events of a message payload.
pub(crate) fn decode(payload: &[u8]) -> Result<Vec<Event>, serde_json::Error> {
    serde_json::from_slice::<crate::event::Envelope>(payload).map(|e| e.events)
}

/// Connects to the server(s) of `settings` (the client reconnects by itself afterwards).
/// Credentials in the URL are handed to the client apart from the addresses, so that neither
/// its logs nor ours contain them.
pub(crate) async fn connect(settings: &NatsSettings, name: &str) -> Result<async_nats::Client, String> {
    let (servers, credentials) = settings.servers_and_credentials();
    let addrs: Vec<async_nats::ServerAddr> = servers
        .iter()
        .map(|u| u.parse::<async_nats::ServerAddr>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("invalid nats url {:?}", settings.redacted_url()))?;
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None);
    match credentials {
        Some((user, Some(password))) => options = options.user_and_password(user, password),
        Some((token, None)) => options = options.token(token),
        None => {}
    }
    options
        .connect(addrs)
        .await
        .map_err(|e| format!("connecting to {}: {e}", settings.redacted_url()))
}

/// Gets the stream of `settings`, creating it (file storage) if it does not exist.
pub(crate) async fn ensure_stream(
    js: &jetstream::Context,
    settings: &NatsSettings,
) -> Result<jetstream::stream::Stream, String> {
    let config = jetstream::stream::Config {
        name: settings.stream.clone(),
        subjects: vec![settings.subject.clone(), format!("{}.>", settings.subject)],
        storage: jetstream::stream::StorageType::File,
        duplicate_window: settings.duplicate_window,
        ..Default::default()
    };
    js.get_or_create_stream(config)
        .await
        .map_err(|e| format!("stream {:?}: {e}", settings.stream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, Target};

    #[test]
    fn tokens_are_valid_and_injective() {
        let names = ["a", "a.b", "a~2Eb", "a/b", "", "~", "é", "a b", "*", ">", "A-b_c"];
        let tokens: Vec<String> = names.iter().map(|n| subject_token(n)).collect();
        for t in &tokens {
            assert!(!t.is_empty());
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"~_-".contains(&b)),
                "{t}"
            );
        }
        let unique: std::collections::HashSet<&String> = tokens.iter().collect();
        assert_eq!(unique.len(), names.len());
    }

    #[test]
    fn long_repositories_get_a_short_subject() {
        let settings = NatsSettings::new("nats://h");
        let mut event = Event::new(Action::Push, Target::default());
        event.target.repository = "x/".repeat(500).into();
        let subject = subject_for(&settings, &event);
        assert!(subject.len() < 64, "{subject}");
        event.target.repository = Default::default();
        assert_eq!(subject_for(&settings, &event), "registry.notifications.~");
        event.target.repository = "a//b".into();
        assert_eq!(subject_for(&settings, &event), "registry.notifications.a.~.b");
    }

    #[test]
    fn payload_round_trips_and_ids_name_the_run() {
        let mut a = Event::new(Action::Push, Target::default());
        a.target.repository = "r".into();
        a.target.tag = "t".into();
        a.target.descriptor.annotations.insert("k".into(), "v".into());
        a.request.method = "PUT".into();
        a.actor.name = "me".into();
        let b = Event::new(Action::Delete, Target::default());
        let events = vec![a.clone(), b.clone()];
        assert_eq!(decode(&encode(&events)).unwrap(), events);
        assert_eq!(message_id(&events[..1]).unwrap(), a.id);
        assert_eq!(message_id(&events).unwrap(), format!("{}..{}", a.id, b.id));
        assert_eq!(message_id(&[]), None);
    }
}
