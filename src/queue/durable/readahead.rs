//! The reader's read-ahead ([`Reader`]): what it holds between two calls — the segment file it
//! reads, the events it decoded ahead of the endpoint's worker, and the batch handed out. It
//! lives in [`Inner`](super::inner::Inner), under its own lock; `reader.rs` fills and empties
//! it, and the writer thread closes a segment file it deletes.

use std::collections::VecDeque;
use std::fs::File;

use super::frames::FrameReader;
use crate::event::{Batch, Event};

/// Events decoded ahead of the worker, at most.
pub(crate) const READAHEAD_EVENTS: usize = 256;
/// Bytes of records decoded ahead of the worker, at most (roughly).
pub(crate) const READAHEAD_BYTES: u64 = 1 << 20;

/// What the reader holds: its position, decoded events, and the batch handed out.
pub(crate) struct Reader {
    /// The segment file being read, and its first sequence number.
    pub(crate) file: Option<(u64, FrameReader<File>)>,
    /// The next sequence number wanted.
    pub(crate) next_seq: u64,
    /// Decoded events `(seq, event, record size)`, in order (holes between them are gone).
    pub(crate) cache: VecDeque<(u64, Event, u64)>,
    pub(crate) cache_bytes: u64,
    /// The batch handed out by `next`, with the sequence number of each event.
    pub(crate) inflight: Option<(Vec<u64>, Batch)>,
}

impl Reader {
    /// Closes the file of segment `first` if it is the one being read: the segment was
    /// deleted, and an open descriptor would keep its space taken (a full disk stays full).
    pub(crate) fn forget_segment(&mut self, first: u64) {
        if self.file.as_ref().is_some_and(|(f, _)| *f == first) {
            self.file = None;
        }
    }

    pub(crate) fn new(head: u64) -> Self {
        Self {
            file: None,
            next_seq: head,
            cache: VecDeque::new(),
            cache_bytes: 0,
            inflight: None,
        }
    }
}
