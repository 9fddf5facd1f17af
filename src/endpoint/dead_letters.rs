//! The dead letters an endpoint keeps so that they can be sent again.
//!
//! Every event the retry stage gives up on is kept, newest last, up to a bound
//! ([`EndpointBuilder::keep_dead_letters`](super::EndpointBuilder::keep_dead_letters), default
//! [`DEFAULT_KEEP`]); beyond it the oldest is forgotten (it is still in the dead-letter file,
//! if there is one). With a durable queue they are also kept on disk, in the queue directory
//! (`dead-letters.jsonl`, one JSON object per line: `at`, `reason`, `attempts`, `event`), and
//! read back at start; a line that does not parse is skipped with a warning. A write that fails
//! (a full disk) is logged and the letter stays in memory.
//!
//! [`EndpointHandle::redeliver`](super::EndpointHandle::redeliver) takes the selected letters out
//! and hands their events, unchanged (same ids, same bytes on the wire), to the endpoint's queue.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::event::{Event, Timestamp};
use crate::retry::DeadLetter;

/// How many dead-lettered events an endpoint keeps for redelivery unless told otherwise.
pub const DEFAULT_KEEP: usize = 1000;

/// The file, in a durable queue's directory, that keeps the endpoint's dead letters.
pub(crate) const FILE_NAME: &str = "dead-letters.jsonl";
/// Where the file is rewritten before it replaces the old one.
pub(crate) const TMP_NAME: &str = "dead-letters.jsonl.tmp";

/// One event an endpoint gave up on, kept for redelivery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeadEvent {
    /// When delivery was given up.
    pub at: Timestamp,
    /// Why (the last error, secrets redacted).
    pub reason: String,
    /// How many attempts were made.
    pub attempts: u32,
    /// The event, exactly as it was sent.
    pub event: Event,
}

/// Which kept dead letters [`EndpointHandle::redeliver`](super::EndpointHandle::redeliver)
/// sends again.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Redeliver {
    /// Every kept dead letter.
    All,
    /// The events with this id.
    Id(String),
    /// The events given up on at or after this time.
    Since(Timestamp),
}

impl Redeliver {
    fn matches(&self, letter: &DeadEvent) -> bool {
        match self {
            Redeliver::All => true,
            Redeliver::Id(id) => *letter.event.id == **id,
            Redeliver::Since(since) => letter.at >= *since,
        }
    }
}

/// Why a redelivery did not happen.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedeliverError {
    /// The endpoint is disabled, or keeps no dead letters.
    Unavailable(&'static str),
    /// The endpoint refused the events (it is shut down, or its queue cannot take them); they
    /// stay kept.
    Refused(String),
}

impl fmt::Display for RedeliverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedeliverError::Unavailable(why) => write!(f, "no redelivery: {why}"),
            RedeliverError::Refused(why) => write!(f, "redelivery refused, the events stay kept: {why}"),
        }
    }
}

impl std::error::Error for RedeliverError {}

/// The kept dead letters of one endpoint.
pub(crate) struct DeadLetterStore {
    keep: usize,
    inner: Mutex<Inner>,
}

struct Inner {
    /// Each letter with its place in the order it was kept (which ties of `at` do not give).
    letters: VecDeque<(u64, DeadEvent)>,
    next: u64,
    disk: Option<Disk>,
}

/// Letters [`DeadLetterStore::take`] took out, in their order.
pub(crate) struct Taken(Vec<(u64, DeadEvent)>);

impl Taken {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn events(&self) -> Vec<Event> {
        self.0.iter().map(|(_, l)| l.event.clone()).collect()
    }
}

struct Disk {
    dir: PathBuf,
    file: Option<File>,
    /// Lines in the file, forgotten ones included: past twice the bound, it is rewritten.
    lines: usize,
}

impl DeadLetterStore {
    /// A store keeping at most `keep` events in memory.
    pub(crate) fn in_memory(keep: usize) -> Self {
        Self {
            keep,
            inner: Mutex::new(Inner {
                letters: VecDeque::new(),
                next: 0,
                disk: None,
            }),
        }
    }

    /// A store kept in `dir` (a durable queue's directory, whose lock is held), with what the
    /// file there holds.
    pub(crate) fn on_disk(keep: usize, dir: &Path) -> Self {
        let path = dir.join(FILE_NAME);
        let (read, lines) = read_file(&path);
        let mut letters: VecDeque<(u64, DeadEvent)> = (0u64..).zip(read).collect();
        let next = letters.len() as u64;
        while letters.len() > keep {
            letters.pop_front();
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .inspect_err(|e| {
                tracing::warn!(file = %path.display(), error = %e,
                    "notifications: cannot open the dead-letter store; dead letters are kept in memory only")
            })
            .ok();
        let store = Self {
            keep,
            inner: Mutex::new(Inner {
                letters,
                next,
                disk: Some(Disk {
                    dir: dir.to_owned(),
                    file,
                    lines,
                }),
            }),
        };
        store.lock().compact_if_needed(keep);
        store
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps the events of `letter`.
    pub(crate) fn keep(&self, letter: &DeadLetter) {
        if self.keep == 0 {
            return;
        }
        let at = Timestamp::now();
        let mut inner = self.lock();
        let mut lines = Vec::new();
        for event in letter.batch.iter() {
            let kept = DeadEvent {
                at,
                reason: letter.reason.clone(),
                attempts: letter.attempts,
                event: event.clone(),
            };
            if inner.disk.is_some() {
                if let Ok(mut line) = serde_json::to_vec(&kept) {
                    line.push(b'\n');
                    lines.extend_from_slice(&line);
                }
            }
            let seq = inner.next;
            inner.next += 1;
            inner.letters.push_back((seq, kept));
            if inner.letters.len() > self.keep {
                inner.letters.pop_front();
            }
        }
        if let Some(disk) = &mut inner.disk {
            disk.append(&lines, letter.batch.len());
        }
        inner.compact_if_needed(self.keep);
    }

    /// The kept letters, oldest first.
    pub(crate) fn list(&self) -> Vec<DeadEvent> {
        self.lock().letters.iter().map(|(_, l)| l.clone()).collect()
    }

    /// Takes the letters `which` selects out of the store, oldest first.
    pub(crate) fn take(&self, which: &Redeliver) -> Taken {
        let mut inner = self.lock();
        let (taken, left): (VecDeque<_>, VecDeque<_>) =
            inner.letters.drain(..).partition(|(_, l)| which.matches(l));
        inner.letters = left;
        if !taken.is_empty() {
            inner.rewrite();
        }
        Taken(Vec::from(taken))
    }

    /// Puts back letters [`take`](Self::take) took (their redelivery was refused), in their
    /// place.
    pub(crate) fn restore(&self, taken: Taken) {
        let mut inner = self.lock();
        inner.letters.extend(taken.0);
        inner.letters.make_contiguous().sort_by_key(|(seq, _)| *seq);
        while inner.letters.len() > self.keep {
            inner.letters.pop_front();
        }
        inner.rewrite();
    }
}

impl Inner {
    fn compact_if_needed(&mut self, keep: usize) {
        if self
            .disk
            .as_ref()
            .is_some_and(|d| d.lines > keep.saturating_mul(2).max(16))
        {
            self.rewrite();
        }
    }

    /// Replaces the file with what is kept (write, fsync, rename).
    fn rewrite(&mut self) {
        let Some(disk) = &mut self.disk else {
            return;
        };
        let tmp = disk.dir.join(TMP_NAME);
        let path = disk.dir.join(FILE_NAME);
        let written = (|| -> std::io::Result<File> {
            let mut out = std::io::BufWriter::new(File::create(&tmp)?);
            for (_, letter) in &self.letters {
                serde_json::to_writer(&mut out, letter)?;
                out.write_all(b"\n")?;
            }
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            OpenOptions::new().append(true).open(&path)
        })();
        match written {
            Ok(file) => {
                disk.file = Some(file);
                disk.lines = self.letters.len();
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                tracing::warn!(file = %path.display(), error = %e,
                    "notifications: cannot rewrite the dead-letter store; it keeps letters already redelivered until the next rewrite");
            }
        }
    }
}

impl Disk {
    fn append(&mut self, bytes: &[u8], events: usize) {
        let Some(file) = &mut self.file else {
            return;
        };
        let result = file.write_all(bytes).and_then(|()| file.sync_data());
        match result {
            Ok(()) => self.lines = self.lines.saturating_add(events),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, events,
                    "notifications: cannot write dead letters to disk; they are kept in memory only");
                // A partial line would spoil the next one: start the file again from memory.
                self.lines = usize::MAX;
            }
        }
    }
}

/// The letters in the file at `path` (none if it is missing), and its line count.
fn read_file(path: &Path) -> (VecDeque<DeadEvent>, usize) {
    let mut letters = VecDeque::new();
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (letters, 0),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "notifications: cannot read the dead-letter store; starting empty");
            return (letters, 0);
        }
    };
    let (mut lines, mut bad) = (0usize, 0usize);
    for line in std::io::BufReader::new(file).split(b'\n') {
        let Ok(line) = line else {
            bad += 1;
            break;
        };
        lines += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<DeadEvent>(&line) {
            Ok(letter) => letters.push_back(letter),
            Err(_) => bad += 1,
        }
    }
    if bad > 0 {
        tracing::warn!(file = %path.display(), lines = bad,
            "notifications: damaged lines in the dead-letter store skipped");
        // Rewritten at once, without them.
        lines = usize::MAX;
    }
    (letters, lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, Batch, Target};

    fn letter(n: usize) -> DeadLetter {
        DeadLetter {
            endpoint: "ep".into(),
            batch: Batch::from(
                (0..n)
                    .map(|_| Event::new(Action::Push, Target::default()))
                    .collect::<Vec<_>>(),
            ),
            reason: "503 Service Unavailable".into(),
            attempts: 3,
        }
    }

    #[test]
    fn keeps_at_most_the_bound_and_selects() {
        let store = DeadLetterStore::in_memory(3);
        let first = letter(2);
        store.keep(&first);
        // Two keeps at distinct times, for `Since`.
        std::thread::sleep(std::time::Duration::from_millis(2));
        store.keep(&letter(2));
        let kept = store.list();
        assert_eq!(kept.len(), 3, "the oldest is forgotten");
        assert_eq!(kept[0].event.id, first.batch[1].id);
        let id = kept[1].event.id.to_string();
        let taken = store.take(&Redeliver::Id(id.clone()));
        assert_eq!(taken.events().len(), 1);
        assert_eq!(*taken.events()[0].id, *id);
        assert_eq!(store.list().len(), 2);
        assert!(store
            .take(&Redeliver::Since(Timestamp::from_unix(i64::MAX / 4, 0)))
            .is_empty());
        store.restore(taken);
        assert_eq!(store.list(), kept, "restored in its place");
        let since = store.take(&Redeliver::Since(kept[1].at));
        assert_eq!(since.events(), [kept[1].event.clone(), kept[2].event.clone()]);
        store.restore(since);
        assert_eq!(store.take(&Redeliver::All).events().len(), 3);
        assert!(store.list().is_empty());
    }

    #[cfg(feature = "durable")]
    #[test]
    fn the_durable_queue_leaves_the_files_alone() {
        use crate::queue::durable::format::{LANE_PREFIX, NEIGHBOURS};
        assert_eq!(NEIGHBOURS, [FILE_NAME, TMP_NAME]);
        // The lanes' directories (`Endpoint::lane_queues`).
        assert_eq!(LANE_PREFIX, "lane-");
    }

    #[test]
    fn zero_keeps_nothing() {
        let store = DeadLetterStore::in_memory(0);
        store.keep(&letter(1));
        assert!(store.list().is_empty());
    }

    #[test]
    fn survives_a_restart_and_damaged_lines() {
        let dir = tempfile::tempdir().unwrap();
        let store = DeadLetterStore::on_disk(10, dir.path());
        let dl = letter(3);
        store.keep(&dl);
        let kept = store.list();
        drop(store);
        // A torn last line, and garbage in the middle.
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(b"not json\n{\"at\":");
        std::fs::write(&path, &bytes).unwrap();
        let store = DeadLetterStore::on_disk(10, dir.path());
        assert_eq!(store.list(), kept);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "rewritten without the damage: {text}");
        // Redelivered letters leave the file.
        let taken = store.take(&Redeliver::Id(kept[0].event.id.to_string()));
        assert_eq!(taken.events().len(), 1);
        drop(store);
        let store = DeadLetterStore::on_disk(2, dir.path());
        assert_eq!(store.list(), kept[1..]);
        assert!(!dir.path().join(TMP_NAME).exists());
    }

    #[test]
    fn the_file_is_compacted_past_twice_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store = DeadLetterStore::on_disk(8, dir.path());
        for _ in 0..20 {
            store.keep(&letter(1));
        }
        let lines = std::fs::read_to_string(dir.path().join(FILE_NAME))
            .unwrap()
            .lines()
            .count();
        assert!((8..=16).contains(&lines), "{lines}");
        assert_eq!(store.list().len(), 8);
    }
}
