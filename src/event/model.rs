//! The event model: the fields of Distribution's `notifications.Event`.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{SharedStr, Timestamp};

/// What happened to the target: Distribution's four actions, and our test notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Action {
    /// A manifest or blob was written (for blobs: the upload was committed).
    Push,
    /// A manifest or blob was read (GET or HEAD).
    Pull,
    /// A blob was mounted from another repository (`fromRepository`).
    Mount,
    /// A manifest, blob or tag was deleted.
    Delete,
    /// Not Distribution's: a test notification an operator asked for
    /// ([`EndpointHandle::ping`](crate::endpoint::EndpointHandle::ping)), with an empty target.
    /// Receivers that only know the four actions above can ignore it.
    Ping,
}

impl Action {
    /// The wire name: `push`, `pull`, `mount`, `delete` or `ping`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Push => "push",
            Action::Pull => "pull",
            Action::Mount => "mount",
            Action::Delete => "delete",
            Action::Ping => "ping",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "push" => Ok(Action::Push),
            "pull" => Ok(Action::Pull),
            "mount" => Ok(Action::Mount),
            "delete" => Ok(Action::Delete),
            "ping" => Ok(Action::Ping),
            other => Err(format!(
                "unknown action {other:?} (expected push, pull, mount, delete or ping)"
            )),
        }
    }
}

/// An OCI platform, as found on the children of an image index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture, e.g. `amd64`.
    #[serde(default)]
    pub architecture: String,
    /// Operating system, e.g. `linux`.
    #[serde(default)]
    pub os: String,
    /// Operating system version.
    #[serde(rename = "os.version", default, skip_serializing_if = "String::is_empty")]
    pub os_version: String,
    /// Operating system features.
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant, e.g. `v8`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

/// An OCI content descriptor (`target` embeds one; `references` lists them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the content.
    #[serde(default)]
    pub media_type: SharedStr,
    /// Content digest, e.g. `sha256:…`.
    #[serde(default)]
    pub digest: SharedStr,
    /// Size in bytes.
    #[serde(default)]
    pub size: i64,
    /// Alternate download locations.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Annotations (written with sorted keys, like Go maps).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Embedded content, base64.
    #[serde(default)]
    pub data: Option<String>,
    /// Platform of an index child (boxed: most descriptors have none, and an event's
    /// target is a descriptor, so this keeps every event 112 bytes smaller).
    #[serde(default)]
    pub platform: Option<Box<Platform>>,
    /// Artifact type.
    #[serde(default)]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A descriptor with the three fields every event uses.
    pub fn new(media_type: impl Into<SharedStr>, digest: impl Into<SharedStr>, size: i64) -> Self {
        Self {
            media_type: media_type.into(),
            digest: digest.into(),
            size,
            ..Self::default()
        }
    }
}

/// What the event is about: a descriptor plus repository, URL and tag.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// The content descriptor (`mediaType`, `digest`, `size`, …).
    #[serde(flatten)]
    pub descriptor: Descriptor,
    /// Same as `size`, kept by Distribution for backwards compatibility.
    #[serde(default)]
    pub length: i64,
    /// Repository name, e.g. `library/alpine`.
    #[serde(default)]
    pub repository: SharedStr,
    /// Source repository of a `mount`.
    #[serde(default)]
    pub from_repository: SharedStr,
    /// Digest URL of the manifest or blob.
    #[serde(default)]
    pub url: SharedStr,
    /// Tag, when the request addressed one.
    #[serde(default)]
    pub tag: SharedStr,
    /// Descriptors the manifest references (with `events.includereferences`).
    #[serde(default)]
    pub references: Vec<Descriptor>,
}

/// The HTTP request that caused the event (Distribution's `RequestRecord`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Request id: all events of one request share it.
    #[serde(default)]
    pub id: SharedStr,
    /// Client address: `X-Forwarded-For`, `X-Real-Ip` or the peer `ip:port`.
    #[serde(default, skip_serializing_if = "SharedStr::is_empty")]
    pub addr: SharedStr,
    /// The `Host` the client asked for.
    #[serde(default, skip_serializing_if = "SharedStr::is_empty")]
    pub host: SharedStr,
    /// HTTP method, e.g. `HEAD` for a HEAD pull.
    #[serde(default)]
    pub method: SharedStr,
    /// The client's `User-Agent`.
    #[serde(default)]
    pub useragent: SharedStr,
    /// The W3C `traceparent` the request carried (empty if none, or not a valid one). Not part
    /// of Distribution's record and never written into an envelope: the HTTP sink sends it as
    /// the webhook POST's own `traceparent`, so a push and its webhook sit in one trace. It is
    /// kept in memory only: a durable queue or NATS carries the envelope, not this.
    #[serde(skip)]
    pub traceparent: SharedStr,
}

/// Who made the request (Distribution's `ActorRecord`); `{}` when anonymous.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorRecord {
    /// The authenticated user name.
    #[serde(default, skip_serializing_if = "SharedStr::is_empty")]
    pub name: SharedStr,
}

/// Which registry instance produced the event (Distribution's `SourceRecord`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// `hostname:port` of the registry.
    #[serde(default, skip_serializing_if = "SharedStr::is_empty")]
    pub addr: SharedStr,
    /// A UUID that changes each time the process starts.
    #[serde(rename = "instanceID", default, skip_serializing_if = "SharedStr::is_empty")]
    pub instance_id: SharedStr,
}

/// One registry notification event.
///
/// Serialising an `Event` with serde writes the default format,
/// [`Format::EventsV2`](crate::Format::EventsV2); [`Format::encode`](crate::Format::encode)
/// writes an envelope in either format, byte for byte as Distribution does.
/// Deserialising accepts both formats.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Event {
    /// Unique id of the event; the same on every delivery attempt.
    #[serde(default)]
    pub id: SharedStr,
    /// When the event was created.
    pub timestamp: Timestamp,
    /// What happened.
    pub action: Action,
    /// What it happened to.
    #[serde(default)]
    pub target: Target,
    /// The request that caused it.
    #[serde(default)]
    pub request: RequestRecord,
    /// Who made the request.
    #[serde(default)]
    pub actor: ActorRecord,
    /// Which registry instance saw it.
    #[serde(default)]
    pub source: SourceRecord,
}

impl Event {
    /// A new event with a fresh UUIDv7 id and the current time.
    pub fn new(action: Action, target: Target) -> Self {
        Self {
            id: new_id().into(),
            timestamp: Timestamp::now(),
            action,
            target,
            request: RequestRecord::default(),
            actor: ActorRecord::default(),
            source: SourceRecord::default(),
        }
    }
}

/// The largest spare batch a thread keeps for [`Batch::one`], in events.
const SPARE_CAPACITY: usize = 4;

thread_local! {
    /// The allocations of a batch of one, emptied by a queue, for the next one made here.
    static SPARE: Cell<Option<Arc<Vec<Event>>>> = const { Cell::new(None) };
}

/// A cheap-to-clone, immutable batch of events: what every sink stage carries.
///
/// ```
/// use registry_notify::{Action, Batch, Event, Target};
/// let batch = Batch::from(vec![Event::new(Action::Push, Target::default())]);
/// let copy = batch.clone(); // an `Arc` clone, no event is copied
/// assert_eq!(copy.len(), 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Batch(Arc<Vec<Event>>);

impl Batch {
    /// The events of the batch.
    pub fn events(&self) -> &[Event] {
        &self.0
    }

    /// Keep only the events for which `f` is true; returns `self` unchanged
    /// (no allocation) when all are kept.
    pub fn retain(self, mut f: impl FnMut(&Event) -> bool) -> Self {
        if self.0.iter().all(&mut f) {
            return self;
        }
        match Arc::try_unwrap(self.0) {
            Ok(mut events) => {
                events.retain(f);
                Batch(Arc::new(events))
            }
            Err(shared) => Batch(Arc::new(shared.iter().filter(|e| f(e)).cloned().collect())),
        }
    }

    /// Moves events of `more` to the end of this batch, up to `max` events in all, when each
    /// batch is held by its holder alone; gives back what was not moved (`None` when all was).
    ///
    /// The first time events join a batch, room for `max` is made at once, so that a
    /// batch filled one event at a time moves each event once rather than at every growth.
    pub(crate) fn absorb(&mut self, mut more: Batch, max: usize) -> Option<Batch> {
        let room = max.saturating_sub(self.len());
        let Some(events) = Arc::get_mut(&mut self.0).filter(|_| room > 0) else {
            return Some(more);
        };
        let Some(added) = Arc::get_mut(&mut more.0) else {
            return Some(more);
        };
        events.reserve_exact(max.saturating_sub(events.len()));
        if added.len() <= room {
            events.append(added);
            // Emptied: its allocations serve the next batch of one made on this thread.
            Batch::keep_spare(more.0);
            return None;
        }
        events.extend(added.drain(..room));
        Some(more)
    }

    /// The empty batch, shared: no allocation.
    pub(crate) fn none() -> Batch {
        static NONE: std::sync::OnceLock<Batch> = std::sync::OnceLock::new();
        NONE.get_or_init(Batch::default).clone()
    }

    /// A batch of one event, made in the allocations of the last batch of one that a queue
    /// [absorbed](Self::absorb) on this thread, if there is one: a request's event then
    /// costs no allocation of its own batch, where it cost two (the vector and its `Arc`).
    pub(crate) fn one(event: Event) -> Batch {
        if let Ok(Some(mut spare)) = SPARE.try_with(Cell::take) {
            if let Some(events) = Arc::get_mut(&mut spare) {
                events.push(event);
                return Batch(spare);
            }
        }
        Batch(Arc::new(vec![event]))
    }

    /// Keeps `spare` for [`one`](Self::one) if it is empty, small and held here alone (one
    /// per thread: the one kept before is freed).
    fn keep_spare(mut spare: Arc<Vec<Event>>) {
        if Arc::get_mut(&mut spare).is_some_and(|v| v.is_empty() && v.capacity() <= SPARE_CAPACITY) {
            let _ = SPARE.try_with(|slot| slot.set(Some(spare)));
        }
    }

    /// The events, to change them in place: the batch is copied first if another handle
    /// shares it.
    pub(crate) fn events_mut(&mut self) -> &mut [Event] {
        Arc::make_mut(&mut self.0).as_mut_slice()
    }

    /// Moves the events `skip..skip + n` out of the batch and drops the `skip` before them,
    /// when this handle holds the batch alone (else `None`, and the batch is unchanged); the
    /// batch keeps the events after them.
    pub(crate) fn move_out(&mut self, skip: usize, n: usize) -> Option<Vec<Event>> {
        let events = Arc::get_mut(&mut self.0)?;
        events.drain(..skip.min(events.len()));
        Some(events.drain(..n.min(events.len())).collect())
    }

    /// The events by value: moved out when this is the only handle on them,
    /// cloned otherwise.
    pub(crate) fn into_events(self) -> Vec<Event> {
        Arc::try_unwrap(self.0).unwrap_or_else(|shared| shared.to_vec())
    }
}

impl std::ops::Deref for Batch {
    type Target = [Event];
    fn deref(&self) -> &[Event] {
        &self.0
    }
}

impl From<Vec<Event>> for Batch {
    fn from(v: Vec<Event>) -> Self {
        Batch(Arc::new(v))
    }
}

impl From<Event> for Batch {
    fn from(e: Event) -> Self {
        Batch(Arc::new(vec![e]))
    }
}

impl FromIterator<Event> for Batch {
    fn from_iter<I: IntoIterator<Item = Event>>(iter: I) -> Self {
        Batch(Arc::new(iter.into_iter().collect()))
    }
}

/// The body of a notification POST: `{"events":[…]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Envelope {
    /// The events.
    #[serde(default)]
    pub events: Vec<Event>,
}

impl SourceRecord {
    /// Distribution's source for a registry listening on `listen_addr`
    /// (`http.addr`, e.g. `:5000` or `0.0.0.0:5000`): `addr` is the host name
    /// joined with the port, `instanceID` a UUID fixed for the process.
    pub fn local(listen_addr: &str) -> Self {
        let port = listen_addr
            .rsplit_once(':')
            .map(|(_, p)| p)
            .filter(|p| !p.is_empty());
        let addr = match (hostname::get().ok().and_then(|h| h.into_string().ok()), port) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            _ => listen_addr.to_owned(),
        };
        Self {
            addr: addr.into(),
            instance_id: instance_id_shared(),
        }
    }
}

/// A fresh event or request id: a UUIDv7, monotonic within the process like
/// `Uuid::now_v7`'s (a 12-bit sub-millisecond sequence, as Go's `uuid.NewV7`), with
/// its random bits from the thread's generator rather than a system call per id.
pub(crate) fn new_id() -> String {
    let mut id = String::with_capacity(uuid::fmt::Hyphenated::LENGTH);
    write_new_id(&mut id);
    id
}

/// Appends a fresh id (see [`new_id`]) to `out`, reading the clock.
pub(crate) fn write_new_id(out: &mut String) {
    write_new_id_at(out, Timestamp::now());
}

/// Appends a fresh id (see [`new_id`]) made at `now`: an event's id carries the time of its
/// `timestamp` without a second read of the clock.
pub(crate) fn write_new_id_at(out: &mut String, now: Timestamp) {
    write_id(out, reserve_stamps(now, 1));
}

/// Reserves `n` consecutive stamps made at `now` and gives the first: the ids
/// [`write_id`] makes of them come in that order, and after every id made before.
///
/// Ids are unique, not secret: the 60-bit stamp (milliseconds and sequence) is strictly
/// increasing within the process, so no two ids of one process are equal whatever the
/// random bits, and 62 random bits tell processes apart. The ids of one request (its
/// request id and its events' ids) take their stamps at once: one update of the shared
/// stamp for all of them.
pub(crate) fn reserve_stamps(now: Timestamp, n: u64) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    // Milliseconds since the epoch (48 bits) and the sequence (12 bits), as one number.
    static LAST: AtomicU64 = AtomicU64::new(0);
    let (secs, nanos) = (now.unix_seconds().max(0) as u64, u64::from(now.subsec_nanos()));
    let millis = secs.wrapping_mul(1000).wrapping_add(nanos / 1_000_000) & ((1 << 48) - 1);
    let sub = ((nanos % 1_000_000) * 4096) / 1_000_000;
    let now = (millis << 12) | sub;
    let n = n.max(1);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let first = now.max(last.wrapping_add(1));
        match LAST.compare_exchange_weak(
            last,
            first.wrapping_add(n - 1),
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => return first,
            Err(current) => last = current,
        }
    }
}

/// Appends the UUIDv7 of `stamp` (from [`reserve_stamps`]) with random bits from the thread's
/// generator (wyrand, seeded from the operating system's: a few instructions per id instead
/// of a ChaCha block's share).
pub(crate) fn write_id(out: &mut String, stamp: u64) {
    let high = ((stamp >> 12) << 16) | 0x7000 | (stamp & 0x0fff);
    let low = (random_u64() >> 2) | 0x8000_0000_0000_0000;
    let uuid = uuid::Uuid::from_u64_pair(high, low);
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    out.push_str(uuid.hyphenated().encode_lower(&mut buf));
}

/// 64 bits from the thread's wyrand generator, seeded once per thread from the operating
/// system's generator (through `rand`).
fn random_u64() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(rand::random());
    }
    STATE.with(|state| {
        let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
        state.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) ^ t) as u64
    })
}

/// The per-process instance id (`source.instanceID`).
pub fn instance_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| uuid::Uuid::now_v7().to_string())
}

/// The per-process instance id as a [`SharedStr`], made once: known to be plain, so that
/// encoders copy it without looking at it.
pub(crate) fn instance_id_shared() -> SharedStr {
    static ID: std::sync::OnceLock<SharedStr> = std::sync::OnceLock::new();
    ID.get_or_init(|| SharedStr::from(instance_id())).clone()
}

#[cfg(test)]
mod tests {
    fn event(n: u8) -> super::Event {
        let mut e = super::Event::new(super::Action::Pull, super::Target::default());
        e.target.tag = n.to_string().into();
        e
    }

    fn tags(b: &super::Batch) -> Vec<String> {
        b.iter().map(|e| e.target.tag.to_string()).collect()
    }

    /// A batch of one that a queue absorbed leaves its allocation to the next batch of one made
    /// on the thread; the events are those given, in order, whatever allocation holds them.
    /// (Told apart by capacity: a new batch of one has room for one event, the spare here for
    /// three; addresses would not tell, since the allocator hands freed ones out again.)
    #[test]
    fn a_batch_of_one_reuses_the_one_absorbed_before() {
        let mut back = super::Batch::one(event(0));
        let mut roomy = Vec::with_capacity(3);
        roomy.push(event(1));
        assert!(back.absorb(super::Batch::from(roomy), 100).is_none());
        let second = super::Batch::one(event(2));
        assert_eq!(second.0.capacity(), 3, "the spare was not reused");
        assert!(back.absorb(second, 100).is_none());
        assert_eq!(tags(&back), ["0", "1", "2"]);
        // Taken once, and kept again: the next batch of one has it, the one after is new.
        let third = super::Batch::one(event(3));
        let fourth = super::Batch::one(event(4));
        assert_eq!((third.0.capacity(), fourth.0.capacity()), (3, 1));
        assert_eq!(
            (tags(&third), tags(&fourth)),
            (vec!["3".to_owned()], vec!["4".to_owned()])
        );
    }

    /// What a batch cannot absorb stays whole: a batch shared with another handle is given
    /// back untouched (and kept by no one as a spare), and the events past `max` stay in the
    /// batch they came in.
    #[test]
    fn absorbing_shared_or_overflowing_batches() {
        let mut back = super::Batch::from(vec![event(0), event(1)]);
        let shared = super::Batch::one(event(2));
        let other = shared.clone();
        let rest = back.absorb(shared, 100).expect("a shared batch is not absorbed");
        assert_eq!(
            (tags(&back), tags(&rest), tags(&other)),
            (vec!["0".into(), "1".into()], vec!["2".into()], vec!["2".into()])
        );
        drop(rest);

        let more = super::Batch::from(vec![event(3), event(4), event(5)]);
        let place = std::sync::Arc::as_ptr(&more.0);
        let rest = back.absorb(more, 4).expect("past max");
        assert_eq!(tags(&back), ["0", "1", "3", "4"]);
        assert_eq!(tags(&rest), ["5"]);
        assert_eq!(std::sync::Arc::as_ptr(&rest.0), place);
        // A full batch absorbs nothing.
        let again = back.absorb(rest, 4).expect("full");
        assert_eq!(tags(&again), ["5"]);
    }

    /// A batch emptied by absorbing is kept as a spare only when it is small: a large one is
    /// freed, and a batch of one is made in an allocation of its own.
    #[test]
    fn large_batches_are_not_kept_as_spares() {
        let mut back = super::Batch::from(Vec::with_capacity(200));
        let big = super::Batch::from(
            (0..super::SPARE_CAPACITY as u8 + 1)
                .map(event)
                .collect::<Vec<_>>(),
        );
        assert!(back.absorb(big, 200).is_none());
        let one = super::Batch::one(event(9));
        assert_eq!(one.0.capacity(), 1);
        assert_eq!(tags(&one), ["9"]);
    }

    /// Changing the events of a shared batch changes a copy: the other handle keeps its own.
    #[test]
    fn events_mut_copies_a_shared_batch() {
        let mut a = super::Batch::one(event(1));
        let b = a.clone();
        a.events_mut()[0].target.tag = "x".into();
        assert_eq!((tags(&a), tags(&b)), (vec!["x".to_owned()], vec!["1".to_owned()]));
        assert!(super::Batch::none().is_empty());
    }

    #[test]
    fn ids_are_ordered_v7() {
        let ids: Vec<String> = (0..10_000).map(|_| super::new_id()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
        }
        let u = uuid::Uuid::parse_str(&ids[0]).unwrap();
        assert_eq!(u.get_version_num(), 7);
        assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
        let (secs, _) = u.get_timestamp().unwrap().to_unix();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(secs.abs_diff(now) < 5);
    }

    /// The stamps reserved at once are consecutive, and later ones come after them: a
    /// request's own id sorts before its events' ids, and both after every earlier id.
    #[test]
    fn reserved_stamps_are_consecutive_and_ordered() {
        let at = super::Timestamp::now();
        let before = super::new_id();
        let first = super::reserve_stamps(at, 3);
        let next = super::reserve_stamps(at, 1);
        assert_eq!(next, first + 3);
        let ids: Vec<String> = (first..=next)
            .map(|stamp| {
                let mut s = String::new();
                super::write_id(&mut s, stamp);
                s
            })
            .collect();
        assert!(before < ids[0], "{before} !< {}", ids[0]);
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
        }
        // Zero is taken as one: the stamp is still reserved.
        let zero = super::reserve_stamps(at, 0);
        assert_eq!(super::reserve_stamps(at, 1), zero + 1);
    }

    /// An id made at a given time carries that time (to the millisecond, unless ids made
    /// later already took it: then just after), and ids made at one instant still differ
    /// and keep their order; their random halves differ too.
    #[test]
    fn ids_made_at_a_time_carry_it() {
        let at = super::Timestamp::now();
        let ids: Vec<String> = (0..1000)
            .map(|_| {
                let mut s = String::new();
                super::write_new_id_at(&mut s, at);
                s
            })
            .collect();
        let at_ms = at.unix_nanos() / 1_000_000;
        let first = uuid::Uuid::parse_str(&ids[0]).unwrap();
        let (secs, nanos) = first.get_timestamp().unwrap().to_unix();
        let ms = i128::from(secs) * 1000 + i128::from(nanos / 1_000_000);
        assert!((at_ms..at_ms + 1000).contains(&ms), "{ms} vs {at_ms}");
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
        }
        let randoms: std::collections::HashSet<u64> = ids
            .iter()
            .map(|id| uuid::Uuid::parse_str(id).unwrap().as_u64_pair().1 & 0x3fff_ffff_ffff_ffff)
            .collect();
        assert_eq!(randoms.len(), ids.len(), "random halves repeat");
    }
}
