//! Opening a queue directory: every segment is scanned (streamed, so memory stays bounded
//! whatever the backlog), so that the pending count is exact and every damaged record is known and
//! counted; files the queue did not write are moved aside; a torn tail is cut off.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::format::{self, Header, MAX_SEQ};
use super::frames::{Frame, FrameReader};
use super::state::{Holes, Seg};

/// What a previous run left, as the queue opens.
pub(crate) struct Recovered {
    pub(crate) segments: VecDeque<Seg>,
    pub(crate) holes: Holes,
    pub(crate) head: u64,
    pub(crate) tail: u64,
    /// One past the last event the files hold or declare (below `tail` if the ack head lies in
    /// a torn tail that was cut off).
    pub(crate) next_seq: u64,
    /// Records on disk from `head` on.
    pub(crate) live: u64,
    pub(crate) used_bytes: u64,
    /// Events from `head` on lost to damage.
    pub(crate) corrupt_events: u64,
    pub(crate) corrupt_bytes: u64,
    pub(crate) corrupt_tails: u64,
    /// The last segment the writer appends to, and its length.
    pub(crate) resume: Option<(u64, u64)>,
    /// New events go to a new segment (the last one is version 1).
    pub(crate) rotate: bool,
    pub(crate) ack_file: File,
    pub(crate) ack_counter: u64,
}

/// What scanning one segment file found.
struct FileScan {
    seg: Seg,
    records: u64,
    /// Records from the tentative ack head on.
    records_from_head: u64,
    /// Missing ranges no gap frame declares (damage), and declared ones.
    corrupt: Vec<(u64, u64)>,
    declared: Vec<(u64, u64)>,
    /// File offset just past the last valid frame, and damaged bytes before it.
    valid_len: u64,
    inner_damage: u64,
    file_len: u64,
}

enum Verdict {
    Keep(FileScan),
    /// Not written by the queue, or not to be trusted: moved aside.
    Aside(String),
    /// Nothing in it (a file torn at creation): removed.
    Remove(&'static str),
}

/// Scans `dir` (whose lock is held) and returns its recovered state.
pub(crate) fn recover(dir: &Path) -> io::Result<Recovered> {
    let mut candidates: Vec<(u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            tracing::warn!(queue = %dir.display(), file = ?entry.file_name(), "durable queue: file not ours, ignored");
            continue;
        };
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if name == format::ACK_FILE
            || name == format::LOCK_FILE
            || format::NEIGHBOURS.contains(&name)
            || name.ends_with(format::CORRUPT_SUFFIX)
            || (name.starts_with(format::LANE_PREFIX) && !is_file)
        {
            continue;
        }
        match format::parse_segment_name(name) {
            Some(first) if is_file => candidates.push((first, entry.path())),
            _ if name.ends_with(&format!(".{}", format::SEGMENT_EXT)) => {
                aside(dir, &entry.path(), "not a segment of this queue (name or type)");
            }
            _ => tracing::warn!(queue = %dir.display(), file = name, "durable queue: file not ours, ignored"),
        }
    }
    candidates.sort_unstable();

    let ack_path = dir.join(format::ACK_FILE);
    let mut ack_file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&ack_path)?;
    let mut data = Vec::new();
    (&mut ack_file)
        .take(2 * format::ACK_SLOT as u64)
        .read_to_end(&mut data)?;
    let ack = format::decode_ack_file(&data).filter(|&(counter, head)| counter < MAX_SEQ && head < MAX_SEQ);
    if ack.is_none() && !data.is_empty() {
        tracing::warn!(queue = %dir.display(), "durable queue: ack file not valid; every event on disk is delivered again");
    }
    let ack_head = ack.map(|(_, head)| head);

    let mut segments: VecDeque<Seg> = VecDeque::new();
    let mut holes = Holes::default();
    let mut corrupt: Vec<(u64, u64)> = Vec::new();
    let mut expected: Option<u64> = None;
    let (mut records, mut records_from_head) = (0u64, 0u64);
    let (mut corrupt_bytes, mut corrupt_tails) = (0u64, 0u64);
    let mut last: Option<(PathBuf, FileScan)> = None;
    for (first, path) in candidates {
        let verdict = if first >= MAX_SEQ {
            Verdict::Aside(format!("sequence number {first} out of range"))
        } else if expected.is_some_and(|e| first < e) {
            Verdict::Aside("overlaps the sequence numbers of the segment before".into())
        } else {
            let prev_damaged = last.as_ref().is_some_and(|(_, p)| p.file_len > p.valid_len);
            scan_file(
                &path,
                first,
                expected.unwrap_or(first),
                prev_damaged,
                ack_head.unwrap_or(0),
            )?
        };
        let scan = match verdict {
            Verdict::Keep(scan) => scan,
            Verdict::Aside(why) => {
                aside(dir, &path, &why);
                continue;
            }
            Verdict::Remove(why) => {
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        tracing::warn!(queue = %dir.display(), segment = %path.display(), problem = why,
                        "durable queue: empty segment removed")
                    }
                    Err(e) => {
                        tracing::warn!(queue = %dir.display(), segment = %path.display(), problem = why,
                        error = %e, "durable queue: empty segment cannot be removed; ignored")
                    }
                }
                continue;
            }
        };
        if let Some((_, prev)) = last.take() {
            // A sealed segment: damage after its last valid frame is counted, not cut.
            corrupt_bytes = corrupt_bytes.saturating_add(prev.file_len.saturating_sub(prev.valid_len));
        }
        for &(a, b) in scan.declared.iter().chain(&scan.corrupt) {
            holes.insert(a, b);
        }
        corrupt.extend_from_slice(&scan.corrupt);
        corrupt_bytes = corrupt_bytes.saturating_add(scan.inner_damage);
        records = records.saturating_add(scan.records);
        records_from_head = records_from_head.saturating_add(scan.records_from_head);
        expected = Some(expected.map_or(scan.seg.end, |e| e.max(scan.seg.end)));
        segments.push_back(scan.seg);
        last = Some((path, scan));
    }

    // The last segment may end with a torn write (a crash): cut it off.
    let mut cut = 0u64;
    if let Some((path, scan)) = &last {
        let trailing = scan.file_len.saturating_sub(scan.valid_len);
        cut = trailing;
        if trailing > 0 {
            corrupt_tails += 1;
            corrupt_bytes = corrupt_bytes.saturating_add(trailing);
            tracing::warn!(queue = %dir.display(), segment = %path.display(), bytes = trailing,
                records = scan.records, "durable queue: corrupt or truncated tail cut off");
            let file = OpenOptions::new().write(true).open(path)?;
            file.set_len(scan.valid_len)?;
            file.sync_all()?;
            if let Some(s) = segments.back_mut() {
                s.bytes = scan.valid_len;
                s.written = scan.valid_len;
            }
        }
    }

    let oldest = segments.front().map(|s| s.first);
    // One past the last event the files hold or declare: where the writer goes on.
    let next_seq = match (expected, ack_head) {
        (Some(e), _) => e,
        // Nothing on disk: sequence numbers go on after the acknowledged ones.
        (None, head) => head.unwrap_or(0),
    };
    let mut tail = next_seq;
    // An ack head may lie in a torn tail just cut off (a machine crash wrote the ack before the
    // records): as many records as the cut bytes could have held.
    let reach = next_seq.saturating_add(cut / format::RECORD_HEADER as u64);
    let mut rewrite_ack = false;
    // (Equivalent under mutation, `h > tail`→`h >= tail`: at `h == tail` the third arm gives
    // the same head.)
    let head = match (ack_head, oldest) {
        (Some(h), Some(_)) if h > tail && h <= reach => {
            tail = h;
            h
        }
        (Some(h), Some(oldest)) if h > tail => {
            tracing::warn!(queue = %dir.display(), ack_head = h, last = tail,
                "durable queue: the ack file names events beyond the last one on disk; not trusted, \
                 every event on disk is delivered again");
            rewrite_ack = true;
            oldest
        }
        (Some(h), Some(oldest)) => h.max(oldest),
        (Some(h), None) => h,
        (None, oldest) => oldest.unwrap_or(tail),
    };
    let live = if Some(head) == ack_head {
        records_from_head
    } else {
        records
    };
    holes.prune_below(head);
    let corrupt_events = corrupt
        .iter()
        .map(|&(a, b)| b.min(tail).saturating_sub(a.max(head)))
        .fold(0u64, u64::saturating_add);
    if corrupt_events > 0 {
        tracing::warn!(queue = %dir.display(), events = corrupt_events,
            "durable queue: damaged records skipped (counted as corrupt)");
    }
    let used_bytes = segments.iter().map(|s| s.bytes).fold(0u64, u64::saturating_add);
    let rotate = segments.back().is_some_and(|s| s.v1);
    let resume = segments.back().filter(|s| !s.v1).map(|s| (s.first, s.written));

    let mut ack_counter = ack.map_or(0, |(counter, _)| counter);
    if rewrite_ack || (ack.is_none() && !data.is_empty()) {
        // Replace what is not trusted at once, so that events appended later are not taken for
        // acknowledged by the next start.
        ack_counter = 2;
        let slots = [format::encode_ack(2, head), format::encode_ack(1, head)].concat();
        let written = ack_file
            .seek(SeekFrom::Start(0))
            .and_then(|_| ack_file.write_all(&slots))
            .and_then(|()| ack_file.set_len(slots.len() as u64))
            .and_then(|()| ack_file.sync_all());
        if let Err(e) = written {
            tracing::error!(queue = %dir.display(), error = %e, "durable queue: cannot rewrite the ack file; removing it");
            std::fs::remove_file(&ack_path)?;
        }
    }
    Ok(Recovered {
        segments,
        holes,
        head,
        tail,
        next_seq,
        live,
        used_bytes,
        corrupt_events,
        corrupt_bytes,
        corrupt_tails,
        resume,
        rotate,
        ack_file,
        ack_counter,
    })
}

/// Moves a file the queue cannot trust out of the way: `<name>.corrupt`, one log line.
fn aside(dir: &Path, path: &Path, why: &str) {
    let mut to = path.as_os_str().to_owned();
    to.push(format::CORRUPT_SUFFIX);
    match std::fs::rename(path, &to) {
        Ok(()) => tracing::warn!(queue = %dir.display(), file = %path.display(), problem = why,
            "durable queue: file moved aside as .corrupt"),
        Err(e) => tracing::warn!(queue = %dir.display(), file = %path.display(), problem = why, error = %e,
            "durable queue: file not trusted and cannot be moved aside; ignored"),
    }
}

/// Scans segment file `path`, named for `first`; the events before `expected` are accounted for
/// by the segments before it, the last of which ended with damage if `prev_damaged`. Records
/// before `head` are acknowledged.
///
/// A jump in sequence numbers is damage (counted) when damaged bytes lie just before it — in this
/// file, or at the end of the segment before for its first frame; a jump with no damage next to it
/// was declared by a gap frame or is not damage of ours (version 1 files, which did not declare
/// failed writes, or a crafted file): a hole, not counted.
fn scan_file(path: &Path, first: u64, expected: u64, prev_damaged: bool, head: u64) -> io::Result<Verdict> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut reader = io::BufReader::with_capacity(64, &file);
    let mut h = [0u8; format::SEGMENT_HEADER as usize];
    let got = format::read_full(&mut reader, &mut h)?;
    drop(reader);
    let header = format::parse_segment_header(&h[..got]);
    if file_len == 0 || (file_len == got as u64 && format::is_header_prefix(&h[..got], first)) {
        return Ok(Verdict::Remove("torn while it was created"));
    }
    let (v1, start) = match header {
        Header::V2(f) | Header::V1(f) if f != first => {
            return Ok(Verdict::Aside(format!("its header names sequence number {f}")));
        }
        Header::V1(_) => (true, format::SEGMENT_HEADER_V1),
        Header::V2(_) | Header::Invalid => (false, format::SEGMENT_HEADER.min(file_len)),
    };
    let mut src = &file;
    src.seek(SeekFrom::Start(start))?;
    let mut frames = FrameReader::new(src, start, file_len);
    if v1 {
        frames = frames.v1(first);
    }
    let mut scan = FileScan {
        seg: Seg {
            first,
            end: first,
            bytes: file_len,
            written: file_len,
            v1,
        },
        records: 0,
        records_from_head: 0,
        corrupt: Vec::new(),
        declared: Vec::new(),
        valid_len: start,
        inner_damage: 0,
        file_len,
    };
    let mut next = expected;
    let mut last_record: Option<u64> = None;
    let mut gaps = 0u64;
    let mut damage_before = prev_damaged;
    // (Equivalent under mutation: `>`→`>=` in the `seq > next`, `from > next` and `to > next`
    // tests below, and `<`→`<=` in `next < first` after the loop, only add empty ranges.)
    loop {
        let found = frames.next()?;
        damage_before |= found.skipped > 0;
        match found.frame {
            Frame::End => break,
            Frame::Record { seq, .. } => {
                if seq >= MAX_SEQ {
                    return Ok(Verdict::Aside(format!("record {seq} out of range")));
                }
                if seq < first {
                    return Ok(Verdict::Aside(format!("record {seq} precedes the file name")));
                }
                if seq < next || last_record.is_some_and(|l| seq <= l) {
                    return Ok(Verdict::Aside(format!("record {seq} goes backwards")));
                }
                if seq > next {
                    let missing = if damage_before {
                        &mut scan.corrupt
                    } else {
                        &mut scan.declared
                    };
                    missing.push((next, seq));
                }
                next = seq.saturating_add(1);
                last_record = Some(seq);
                scan.records += 1;
                if seq >= head {
                    scan.records_from_head += 1;
                }
            }
            Frame::Gap { from, to } => {
                if to < first || last_record.is_some_and(|l| to <= l) {
                    return Ok(Verdict::Aside(format!("gap {from}..{to} goes backwards")));
                }
                if from > next {
                    let missing = if damage_before {
                        &mut scan.corrupt
                    } else {
                        &mut scan.declared
                    };
                    missing.push((next, from));
                }
                if to > next {
                    scan.declared.push((from.max(next), to));
                    next = to;
                }
                gaps += 1;
            }
        }
        scan.inner_damage = scan.inner_damage.saturating_add(found.skipped);
        scan.valid_len = frames.position();
        damage_before = false;
    }
    if scan.records == 0 && gaps == 0 {
        if header == Header::Invalid {
            return Ok(Verdict::Aside("neither a valid header nor a valid record".into()));
        }
        if file_len <= start {
            return Ok(Verdict::Remove("nothing after its header"));
        }
        // Ours (its header says so), every record damaged: kept, so that the damage is counted
        // (or, in the last segment, cut off as a torn tail).
    }
    if next < first {
        // No frame: what came before the segment's name is damage at the end of the segment
        // before, or not ours to count.
        let missing = if prev_damaged {
            &mut scan.corrupt
        } else {
            &mut scan.declared
        };
        missing.push((next, first));
        next = first;
    }
    scan.seg.end = next;
    Ok(Verdict::Keep(scan))
}
