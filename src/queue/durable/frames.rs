//! Reading a segment's frames: a buffered scanner that validates each frame and, after damage,
//! resynchronises on the next marker whose frame validates. Used both when the queue opens
//! (recovery) and by the reader ahead of the endpoint's worker.

use std::io::{self, Read};

use super::format::{self, GAP_FRAME, GAP_MARKER, RECORD_HEADER, RECORD_HEADER_V1, RECORD_MARKER};

/// Bytes read from the file at a time.
const CHUNK: usize = 64 << 10;

/// One frame found in a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A valid record; its payload is [`FrameReader::payload`] until the next call.
    Record {
        /// Its sequence number.
        seq: u64,
        /// Bytes it takes in the file.
        size: u64,
    },
    /// A valid gap frame: the events `[from, to)` were never written.
    Gap {
        /// First event not written.
        from: u64,
        /// The event after the last one not written.
        to: u64,
    },
    /// The end of the readable data.
    End,
}

/// A frame, and the bytes skipped as damage before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Next {
    /// What was found.
    pub(crate) frame: Frame,
    /// Bytes before it that are not part of any valid frame.
    pub(crate) skipped: u64,
}

/// Reads the frames of one segment file from `src`, up to a byte limit that can grow (the part of
/// a segment the writer has published).
pub(crate) struct FrameReader<R> {
    src: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// File offset of `buf[start]`.
    pos: u64,
    limit: u64,
    /// Format version 1: no markers, consecutive sequence numbers from `v1_next`; the first bad
    /// record ends the segment.
    v1_next: Option<u64>,
    payload: (usize, usize),
}

impl<R: Read> FrameReader<R> {
    /// Reads from `src`, whose position is the file offset `pos`, until file offset `limit`.
    pub(crate) fn new(src: R, pos: u64, limit: u64) -> Self {
        Self {
            src,
            buf: Vec::new(),
            start: 0,
            end: 0,
            pos,
            limit,
            v1_next: None,
            payload: (0, 0),
        }
    }

    /// Reads version 1 records, expected to start at sequence number `first`.
    pub(crate) fn v1(mut self, first: u64) -> Self {
        self.v1_next = Some(first);
        self
    }

    /// Raises the byte limit (never lowers it below what is buffered).
    pub(crate) fn set_limit(&mut self, limit: u64) {
        self.limit = self.limit.max(limit);
    }

    /// The file offset just past the last frame returned (or skipped).
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    /// The payload of the last record returned.
    pub(crate) fn payload(&self) -> &[u8] {
        &self.buf[self.payload.0..self.payload.1]
    }

    fn avail(&self) -> usize {
        self.end - self.start
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.pos = self.pos.saturating_add(n as u64);
    }

    /// Buffers at least `n` bytes if the data (up to the limit) has them; returns how many are
    /// buffered, at most `n`.
    ///
    /// (Mutation testing: `>=`→`>` below, `<`→`<=` in the resize and the read loop, and `>`→`>=`
    /// in the shrink test change only work done — a needless move, a resize to the same
    /// length, one more read while data is there, a shrink at exactly four chunks — never what
    /// is returned.)
    fn ensure(&mut self, n: usize) -> io::Result<usize> {
        if self.avail() >= n {
            return Ok(n);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let want = n.max(CHUNK);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        } else if self.buf.len() > 4 * want && self.end <= want {
            // A large frame passed: give the memory back. (Only memory depends on this test.)
            self.buf.truncate(want);
            self.buf.shrink_to_fit();
        }
        while self.end < n {
            let at = self.pos.saturating_add(self.end as u64);
            let room = self.limit.saturating_sub(at);
            if room == 0 {
                break;
            }
            let space = self.buf.len() - self.end;
            let take = space.min(usize::try_from(room).unwrap_or(usize::MAX));
            match self.src.read(&mut self.buf[self.end..self.end + take]) {
                Ok(0) => break,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.avail().min(n))
    }

    /// The next valid frame, skipping (and counting) damage.
    pub(crate) fn next(&mut self) -> io::Result<Next> {
        if let Some(expected) = self.v1_next {
            return self.next_v1(expected);
        }
        let mut skipped = 0u64;
        loop {
            let avail = self.ensure(8)?;
            if avail < 8 {
                // Too few bytes left for any frame.
                skipped += avail as u64;
                self.consume(avail);
                return Ok(Next {
                    frame: Frame::End,
                    skipped,
                });
            }
            let marker = &self.buf[self.start..self.start + 8];
            let found = if marker == RECORD_MARKER {
                self.try_record()?
            } else if marker == GAP_MARKER {
                self.try_gap()?
            } else {
                None
            };
            if let Some(frame) = found {
                return Ok(Next { frame, skipped });
            }
            // Not a valid frame here: on to the next byte that can start a marker.
            let rest = &self.buf[self.start + 1..self.end];
            let k = rest
                .iter()
                .position(|&b| b == 0xFF)
                .map_or(self.avail(), |i| i + 1);
            skipped += k as u64;
            self.consume(k);
        }
    }

    fn try_record(&mut self) -> io::Result<Option<Frame>> {
        // (Equivalent under mutation, `<`→`>`: a header read from stale buffer bytes is
        // followed by the check that the whole record, header included, was read.)
        if self.ensure(RECORD_HEADER)? < RECORD_HEADER {
            return Ok(None);
        }
        let h = &self.buf[self.start..self.start + RECORD_HEADER];
        let Some((len, crc, seq)) = format::parse_record_header(h) else {
            return Ok(None);
        };
        let size = RECORD_HEADER + len;
        if self.ensure(size)? < size {
            return Ok(None);
        }
        let payload = (self.start + RECORD_HEADER, self.start + size);
        if !format::record_valid(len, crc, seq, &self.buf[payload.0..payload.1]) {
            return Ok(None);
        }
        self.payload = payload;
        self.consume(size);
        Ok(Some(Frame::Record {
            seq,
            size: size as u64,
        }))
    }

    fn try_gap(&mut self) -> io::Result<Option<Frame>> {
        if self.ensure(GAP_FRAME)? < GAP_FRAME {
            return Ok(None);
        }
        let Some((from, to)) = format::parse_gap(&self.buf[self.start..self.start + GAP_FRAME]) else {
            return Ok(None);
        };
        self.consume(GAP_FRAME);
        Ok(Some(Frame::Gap { from, to }))
    }

    /// Version 1: the next record must carry `expected`; anything else ends the segment (the
    /// bytes left are reported by the caller from the file length).
    fn next_v1(&mut self, expected: u64) -> io::Result<Next> {
        let end = Next {
            frame: Frame::End,
            skipped: 0,
        };
        // (Equivalent under mutation, `<`→`>`: as in `try_record`.)
        if self.ensure(RECORD_HEADER_V1)? < RECORD_HEADER_V1 {
            return Ok(end);
        }
        let h = &self.buf[self.start..self.start + RECORD_HEADER_V1];
        let Some((len, crc, seq)) = format::parse_record_header_v1(h) else {
            return Ok(end);
        };
        if seq != expected || seq >= format::MAX_SEQ {
            return Ok(end);
        }
        let size = RECORD_HEADER_V1 + len;
        if self.ensure(size)? < size {
            return Ok(end);
        }
        let payload = (self.start + RECORD_HEADER_V1, self.start + size);
        if !format::record_valid(len, crc, seq, &self.buf[payload.0..payload.1]) {
            return Ok(end);
        }
        self.payload = payload;
        self.consume(size);
        self.v1_next = Some(seq + 1);
        Ok(Next {
            frame: Frame::Record {
                seq,
                size: size as u64,
            },
            skipped: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::durable::format::{encode_gap, encode_record};

    fn frames(data: &[u8]) -> Vec<Next> {
        let mut r = FrameReader::new(data, 0, data.len() as u64);
        let mut out = Vec::new();
        loop {
            let n = r.next().unwrap();
            out.push(n);
            if n.frame == Frame::End {
                return out;
            }
        }
    }

    fn seqs(found: &[Next]) -> Vec<u64> {
        found
            .iter()
            .filter_map(|n| match n.frame {
                Frame::Record { seq, .. } => Some(seq),
                _ => None,
            })
            .collect()
    }

    fn log(n: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        for seq in 0..n {
            encode_record(&mut buf, seq, format!("{{\"n\":{seq}}}").as_bytes());
        }
        buf
    }

    /// A read interrupted by a signal is retried; any other read error is returned, not
    /// retried (a disk that fails keeps failing: retrying would spin).
    #[test]
    fn interrupted_reads_are_retried_and_errors_returned() {
        struct Flaky<'a> {
            data: &'a [u8],
            calls: u32,
            fail: io::ErrorKind,
        }
        impl io::Read for Flaky<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.calls += 1;
                if self.calls == 1 {
                    return Err(io::Error::from(self.fail));
                }
                self.data.read(buf)
            }
        }
        let data = log(2);
        let src = Flaky {
            data: &data,
            calls: 0,
            fail: io::ErrorKind::Interrupted,
        };
        let mut r = FrameReader::new(src, 0, data.len() as u64);
        assert!(matches!(r.next().unwrap().frame, Frame::Record { seq: 0, .. }));
        let src = Flaky {
            data: &data,
            calls: 0,
            fail: io::ErrorKind::Other,
        };
        let mut r = FrameReader::new(src, 0, data.len() as u64);
        assert_eq!(r.next().unwrap_err().kind(), io::ErrorKind::Other);
    }

    #[test]
    fn reads_records_and_gaps() {
        let mut data = log(3);
        data.extend_from_slice(&encode_gap(3, 7));
        encode_record(&mut data, 7, b"{}");
        let found = frames(&data);
        assert_eq!(seqs(&found), [0, 1, 2, 7]);
        assert_eq!(found[3].frame, Frame::Gap { from: 3, to: 7 });
        assert!(found.iter().all(|n| n.skipped == 0));
    }

    #[test]
    fn a_damaged_record_costs_that_record_only() {
        let data = log(10);
        let one = data.len() / 10;
        for at in 0..data.len() {
            let mut bad = data.clone();
            bad[at] ^= 0x41;
            let got = seqs(&frames(&bad));
            let hit = (at / one) as u64;
            let want: Vec<u64> = (0..10).filter(|s| *s != hit).collect();
            assert_eq!(got, want, "flip at {at}");
        }
    }

    #[test]
    fn garbage_and_torn_tails_are_skipped() {
        let mut data = vec![0xAB; 50];
        data.extend(log(2));
        data.extend_from_slice(&[0xFF; 5]);
        let found = frames(&data);
        assert_eq!(seqs(&found), [0, 1]);
        assert_eq!(found[0].skipped, 50);
        assert_eq!(found.last().unwrap().skipped, 5);
        // A record cut short.
        let full = log(3);
        let found = frames(&full[..full.len() - 3]);
        assert_eq!(seqs(&found), [0, 1]);
    }

    #[test]
    fn the_limit_grows() {
        let data = log(4);
        let one = (data.len() / 4) as u64;
        let mut r = FrameReader::new(&data[..], 0, one);
        assert!(matches!(r.next().unwrap().frame, Frame::Record { seq: 0, .. }));
        assert_eq!(r.next().unwrap().frame, Frame::End);
        r.set_limit(data.len() as u64);
        assert!(matches!(r.next().unwrap().frame, Frame::Record { seq: 1, .. }));
        assert_eq!(r.position(), 2 * one);
    }

    #[test]
    fn version_1_stops_at_the_first_bad_record() {
        let mut data = Vec::new();
        for seq in 4..7u64 {
            let p = b"{}";
            let mut h = crc32fast::Hasher::new();
            h.update(&2u32.to_le_bytes());
            h.update(&seq.to_le_bytes());
            h.update(p);
            data.extend_from_slice(&2u32.to_le_bytes());
            data.extend_from_slice(&h.finalize().to_le_bytes());
            data.extend_from_slice(&seq.to_le_bytes());
            data.extend_from_slice(p);
        }
        let mut r = FrameReader::new(&data[..], 0, data.len() as u64).v1(4);
        let mut got = Vec::new();
        while let Frame::Record { seq, .. } = r.next().unwrap().frame {
            got.push(seq);
        }
        assert_eq!(got, [4, 5, 6]);
        data[18 + 16] ^= 1;
        let mut r = FrameReader::new(&data[..], 0, data.len() as u64).v1(4);
        assert!(matches!(r.next().unwrap().frame, Frame::Record { seq: 4, .. }));
        assert_eq!(r.next().unwrap().frame, Frame::End);
    }
    /// A version 1 record with `seq` and `payload`.
    fn record_v1(data: &mut Vec<u8>, seq: u64, payload: &[u8]) {
        let len = payload.len() as u32;
        let mut h = crc32fast::Hasher::new();
        h.update(&len.to_le_bytes());
        h.update(&seq.to_le_bytes());
        h.update(payload);
        data.extend_from_slice(&len.to_le_bytes());
        data.extend_from_slice(&h.finalize().to_le_bytes());
        data.extend_from_slice(&seq.to_le_bytes());
        data.extend_from_slice(payload);
    }

    /// A version 1 record whose sequence number is not the next one ends the segment, even with
    /// a valid checksum.
    #[test]
    fn version_1_ends_at_a_sequence_number_out_of_turn() {
        let mut data = Vec::new();
        for seq in [0u64, 1, 3, 4] {
            record_v1(&mut data, seq, b"{}");
        }
        let mut r = FrameReader::new(&data[..], 0, data.len() as u64).v1(0);
        let mut got = Vec::new();
        while let Frame::Record { seq, .. } = r.next().unwrap().frame {
            got.push(seq);
        }
        assert_eq!(got, [0, 1]);
    }

    /// Bytes past the limit are never read as a frame, even where the buffer still holds
    /// earlier bytes that would complete one: after a frame is consumed and the rest moved to
    /// the front, the bytes behind the rest are the old ones. Here the next frame's missing part
    /// is byte for byte what lies there (the same payload, or the same gap frame).
    #[test]
    fn bytes_past_the_limit_are_never_read_as_a_frame() {
        let payload = [0x5Au8; 64];
        // Version 2 records: the second is cut halfway through its payload.
        let mut data = Vec::new();
        encode_record(&mut data, 0, &payload);
        encode_record(&mut data, 1, &payload);
        let one = data.len() / 2;
        let cut = (one + RECORD_HEADER + 32) as u64;
        let mut r = FrameReader::new(&data[..], 0, cut);
        assert!(matches!(r.next().unwrap().frame, Frame::Record { seq: 0, .. }));
        assert_eq!(r.next().unwrap().frame, Frame::End, "record 1 is not all there");

        // Version 1 records.
        let mut data = Vec::new();
        record_v1(&mut data, 0, &payload);
        record_v1(&mut data, 1, &payload);
        let one = data.len() / 2;
        let cut = (one + RECORD_HEADER_V1 + 32) as u64;
        let mut r = FrameReader::new(&data[..], 0, cut).v1(0);
        assert!(matches!(r.next().unwrap().frame, Frame::Record { seq: 0, .. }));
        assert_eq!(r.next().unwrap().frame, Frame::End, "record 1 is not all there");

        // Two identical gap frames, the second cut in half.
        let mut data = encode_gap(3, 5).to_vec();
        data.extend_from_slice(&encode_gap(3, 5));
        let mut r = FrameReader::new(&data[..], 0, (GAP_FRAME + GAP_FRAME / 2) as u64);
        assert_eq!(r.next().unwrap().frame, Frame::Gap { from: 3, to: 5 });
        assert_eq!(
            r.next().unwrap().frame,
            Frame::End,
            "the second gap is not all there"
        );
    }

    /// A gap frame is read wherever it lies: first in the data, or after other frames.
    #[test]
    fn a_gap_frame_first_in_the_data() {
        let mut data = encode_gap(0, 4).to_vec();
        encode_record(&mut data, 4, b"{}");
        let found = frames(&data);
        assert_eq!(found[0].frame, Frame::Gap { from: 0, to: 4 });
        assert_eq!(seqs(&found), [4]);
        assert!(found.iter().all(|n| n.skipped == 0));
    }

    /// Reads go in chunks: a log that fits in one chunk takes one read, whatever its frames; a
    /// log of many chunks is read whole, across chunk edges.
    #[test]
    fn reads_go_in_chunks() {
        struct Counting<'a> {
            data: &'a [u8],
            reads: usize,
        }
        impl io::Read for Counting<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.reads += 1;
                self.data.read(buf)
            }
        }
        let data = log(100);
        assert!(data.len() < CHUNK);
        let mut r = FrameReader::new(
            Counting {
                data: &data,
                reads: 0,
            },
            0,
            data.len() as u64,
        );
        let mut n = 0;
        while let Frame::Record { .. } = r.next().unwrap().frame {
            n += 1;
        }
        assert_eq!((n, r.src.reads), (100, 1));

        let mut big = Vec::new();
        for seq in 0..3000u64 {
            encode_record(
                &mut big,
                seq,
                format!("{{\"n\":{seq},\"pad\":\"{}\"}}", "x".repeat(64)).as_bytes(),
            );
        }
        assert!(big.len() > 3 * CHUNK);
        let found = frames(&big);
        assert_eq!(seqs(&found), (0..3000).collect::<Vec<_>>());
        assert!(found.iter().all(|n| n.skipped == 0));
    }

    /// The buffer grows for a large frame and gives the memory back after it, but keeps up to
    /// four chunks (no reallocation for each mid-size frame).
    #[test]
    fn the_buffer_shrinks_after_a_large_frame() {
        let mut data = Vec::new();
        encode_record(&mut data, 0, &vec![b'a'; 1 << 20]);
        for seq in 1..4 {
            encode_record(&mut data, seq, b"{}");
        }
        let mut r = FrameReader::new(&data[..], 0, data.len() as u64);
        assert!(matches!(r.next().unwrap().frame, Frame::Record { seq: 0, .. }));
        assert!(r.buf.capacity() > 1 << 20);
        assert!(matches!(r.next().unwrap().frame, Frame::Record { seq: 1, .. }));
        assert!(r.buf.capacity() <= 4 * CHUNK, "{}", r.buf.capacity());

        let mut data = Vec::new();
        encode_record(&mut data, 0, &vec![b'a'; 2 * CHUNK]);
        for seq in 1..4 {
            encode_record(&mut data, seq, b"{}");
        }
        let mut r = FrameReader::new(&data[..], 0, data.len() as u64);
        let mut n = 0;
        while let Frame::Record { .. } = r.next().unwrap().frame {
            n += 1;
            assert!(r.buf.capacity() > 2 * CHUNK, "kept after record {n}");
        }
        assert_eq!(n, 4);
    }
}
