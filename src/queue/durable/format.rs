//! The on-disk format of the durable queue (version 2): segment files of marker-framed, CRC-checked
//! records, and the ack file. Version 1 segments (no markers) are still read, so that an upgraded
//! queue keeps its backlog.
//!
//! ```text
//! DIR/00000000000000000000.seg   segment, named by the first sequence number it was created for
//!   header v2 (24 bytes)  "RNQSEG" 0x00 0x02 | first u64 | crc32(first 16 bytes) u32 | 0u32
//!   record    (24 + len)  FF "RNQrec" FE | len u32 | crc32(len ‖ seq ‖ payload) u32 | seq u64 | payload
//!   gap       (32 bytes)  FF "RNQgap" FE | from u64 | to u64 | crc32(from ‖ to) u32 | 0u32
//!   header v1 (16 bytes)  "RNQSEG" 0x00 0x01 | first u64, then records without marker:
//!   record v1 (16 + len)  len u32 | crc32(len ‖ seq ‖ payload) u32 | seq u64 | payload
//! DIR/ack                        two 32-byte slots, written alternately; the valid one with the
//!   slot      (32 bytes)  "RNQACK" 0x00 0x01 | counter u64 | head u64 | crc32(first 24 bytes) u32 | 0u32
//! ```
//!
//! All integers are little-endian. The payload is an event's JSON, valid UTF-8, so it never
//! contains the bytes `FF` or `FE` the markers start and end with: after damage, a reader scans
//! forward to the next marker whose frame validates and goes on. Sequence numbers rise within a
//! segment and from one segment to the next; a `gap` frame, written just before the next record
//! after a failed write, declares that the events `[from, to)` were never written, so that a
//! jump in sequence numbers is either declared (not corruption) or counted exactly as corrupt.

use std::io::{self, Read};

/// Segment file header of format version 2.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"RNQSEG\x00\x02";
/// Segment file header of format version 1 (read, never written).
pub(crate) const SEGMENT_MAGIC_V1: [u8; 8] = *b"RNQSEG\x00\x01";
/// Ack slot magic and format version.
pub(crate) const ACK_MAGIC: [u8; 8] = *b"RNQACK\x00\x01";
/// Bytes of a version 2 segment header.
pub(crate) const SEGMENT_HEADER: u64 = 24;
/// Bytes of a version 1 segment header.
pub(crate) const SEGMENT_HEADER_V1: u64 = 16;
/// Starts every record frame.
pub(crate) const RECORD_MARKER: [u8; 8] = [0xFF, b'R', b'N', b'Q', b'r', b'e', b'c', 0xFE];
/// Starts every gap frame.
pub(crate) const GAP_MARKER: [u8; 8] = [0xFF, b'R', b'N', b'Q', b'g', b'a', b'p', 0xFE];
/// Bytes of a record frame before its payload.
pub(crate) const RECORD_HEADER: usize = 24;
/// Bytes of a version 1 record before its payload.
pub(crate) const RECORD_HEADER_V1: usize = 16;
/// Bytes of a gap frame.
pub(crate) const GAP_FRAME: usize = 32;
/// Bytes of one ack slot.
pub(crate) const ACK_SLOT: usize = 32;
/// Largest payload accepted (an event is typically under 2 KiB); a larger length is corruption.
pub(crate) const MAX_PAYLOAD: usize = 16 << 20;
/// Sequence numbers are below this; a larger one on disk was not written by the queue.
pub(crate) const MAX_SEQ: u64 = i64::MAX as u64;
/// File name extension of segments.
pub(crate) const SEGMENT_EXT: &str = "seg";
/// Suffix of a file moved aside because the queue did not write it (or cannot trust it).
pub(crate) const CORRUPT_SUFFIX: &str = ".corrupt";
/// File name of the ack file.
pub(crate) const ACK_FILE: &str = "ack";
/// The file a process holds an exclusive `flock` on while it has the queue open.
pub(crate) const LOCK_FILE: &str = "lock";
/// Files the endpoint keeps beside its queue (its dead letters, and their rewrite): not the
/// queue's to scan, and not strangers either.
pub(crate) const NEIGHBOURS: &[&str] = &["dead-letters.jsonl", "dead-letters.jsonl.tmp"];
/// The directories of an endpoint's other lanes (`lane-1`, …), each a queue of its own.
pub(crate) const LANE_PREFIX: &str = "lane-";

/// The file name of the segment whose first record has sequence number `first`.
pub(crate) fn segment_name(first: u64) -> String {
    format!("{first:020}.{SEGMENT_EXT}")
}

/// The first sequence number of a segment, from its file name; `None` for other files.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(SEGMENT_EXT)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The version 2 header of the segment starting at `first`.
pub(crate) fn segment_header(first: u64) -> [u8; SEGMENT_HEADER as usize] {
    let mut h = [0u8; SEGMENT_HEADER as usize];
    h[..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..16].copy_from_slice(&first.to_le_bytes());
    let crc = crc32fast::hash(&h[..16]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

/// What a segment file's first bytes say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Header {
    /// A valid version 2 header naming this first sequence number.
    V2(u64),
    /// A version 1 header naming this first sequence number.
    V1(u64),
    /// Not a valid header (damaged, torn, or not ours).
    Invalid,
}

/// Parses the start of a segment file.
pub(crate) fn parse_segment_header(h: &[u8]) -> Header {
    if h.len() >= SEGMENT_HEADER as usize && h[..8] == SEGMENT_MAGIC {
        let crc = le_u32(h, 16);
        if crc32fast::hash(&h[..16]) == crc && le_u32(h, 20) == 0 {
            return Header::V2(le_u64(h, 8));
        }
        return Header::Invalid;
    }
    if h.len() >= SEGMENT_HEADER_V1 as usize && h[..8] == SEGMENT_MAGIC_V1 {
        return Header::V1(le_u64(h, 8));
    }
    Header::Invalid
}

/// Whether `h` is a strict prefix of a segment header: a file torn while it was created.
pub(crate) fn is_header_prefix(h: &[u8], first: u64) -> bool {
    h.len() < SEGMENT_HEADER as usize && segment_header(first).starts_with(h)
}

fn record_crc(len: u32, seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends the record `seq` carrying `payload` (at most [`MAX_PAYLOAD`] bytes) to `buf`.
pub(crate) fn encode_record(buf: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    let len = u32::try_from(payload.len().min(MAX_PAYLOAD)).unwrap_or(u32::MAX);
    buf.extend_from_slice(&RECORD_MARKER);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&record_crc(len, seq, payload).to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// The bytes a record with a payload of `len` bytes takes.
pub(crate) fn record_size(len: usize) -> u64 {
    (RECORD_HEADER as u64).saturating_add(len as u64)
}

/// The frame declaring that the events `[from, to)` were not written.
pub(crate) fn encode_gap(from: u64, to: u64) -> [u8; GAP_FRAME] {
    let mut g = [0u8; GAP_FRAME];
    g[..8].copy_from_slice(&GAP_MARKER);
    g[8..16].copy_from_slice(&from.to_le_bytes());
    g[16..24].copy_from_slice(&to.to_le_bytes());
    let crc = crc32fast::hash(&g[8..24]);
    g[24..28].copy_from_slice(&crc.to_le_bytes());
    g
}

/// What a whole record header (24 bytes, marker included) claims, if its fields are plausible:
/// `(len, crc, seq)`.
pub(crate) fn parse_record_header(h: &[u8]) -> Option<(usize, u32, u64)> {
    if h.len() < RECORD_HEADER || h[..8] != RECORD_MARKER {
        return None;
    }
    let len = le_u32(h, 8) as usize;
    (len <= MAX_PAYLOAD).then_some((len, le_u32(h, 12), le_u64(h, 16)))
}

/// Whether `payload` matches the header's checksum.
pub(crate) fn record_valid(len: usize, crc: u32, seq: u64, payload: &[u8]) -> bool {
    u32::try_from(len).is_ok_and(|l| payload.len() == len && record_crc(l, seq, payload) == crc)
}

/// `(from, to)` of a valid gap frame.
pub(crate) fn parse_gap(g: &[u8]) -> Option<(u64, u64)> {
    if g.len() < GAP_FRAME || g[..8] != GAP_MARKER || le_u32(g, 28) != 0 {
        return None;
    }
    if crc32fast::hash(&g[8..24]) != le_u32(g, 24) {
        return None;
    }
    let (from, to) = (le_u64(g, 8), le_u64(g, 16));
    (from < to && to <= MAX_SEQ).then_some((from, to))
}

/// `(len, crc, seq)` of a version 1 record header, if its length is plausible.
pub(crate) fn parse_record_header_v1(h: &[u8]) -> Option<(usize, u32, u64)> {
    if h.len() < RECORD_HEADER_V1 {
        return None;
    }
    let len = le_u32(h, 0) as usize;
    (len <= MAX_PAYLOAD).then_some((len, le_u32(h, 4), le_u64(h, 8)))
}

/// Reads until `buf` is full or the end of the data; returns how many bytes were read.
pub(crate) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// One ack slot recording that every event before `head` was acknowledged.
pub(crate) fn encode_ack(counter: u64, head: u64) -> [u8; ACK_SLOT] {
    let mut s = [0u8; ACK_SLOT];
    s[..8].copy_from_slice(&ACK_MAGIC);
    s[8..16].copy_from_slice(&counter.to_le_bytes());
    s[16..24].copy_from_slice(&head.to_le_bytes());
    let crc = crc32fast::hash(&s[..24]);
    s[24..28].copy_from_slice(&crc.to_le_bytes());
    s
}

/// `(counter, head)` of a valid ack slot.
pub(crate) fn decode_ack(s: &[u8]) -> Option<(u64, u64)> {
    if s.len() < ACK_SLOT || s[..8] != ACK_MAGIC {
        return None;
    }
    if crc32fast::hash(&s[..24]) != le_u32(s, 24) {
        return None;
    }
    Some((le_u64(s, 8), le_u64(s, 16)))
}

/// The newest valid `(counter, head)` of an ack file's contents (two slots).
pub(crate) fn decode_ack_file(data: &[u8]) -> Option<(u64, u64)> {
    data.chunks(ACK_SLOT)
        .take(2)
        .filter_map(decode_ack)
        .max_by_key(|(counter, _)| *counter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(segment_name(42), "00000000000000000042.seg");
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        for bad in [
            "ack",
            "42.seg",
            "0000000000000000004x.seg",
            "00000000000000000042.tmp",
            "99999999999999999999.seg",
            "",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn headers() {
        let h = segment_header(7);
        assert_eq!(parse_segment_header(&h), Header::V2(7));
        let mut flipped = h;
        flipped[9] ^= 1;
        assert_eq!(parse_segment_header(&flipped), Header::Invalid);
        let mut v1 = SEGMENT_MAGIC_V1.to_vec();
        v1.extend_from_slice(&9u64.to_le_bytes());
        assert_eq!(parse_segment_header(&v1), Header::V1(9));
        assert_eq!(parse_segment_header(b"RNQ"), Header::Invalid);
        assert!(is_header_prefix(b"RNQ", 7));
        assert!(is_header_prefix(b"", 7));
        assert!(!is_header_prefix(b"XNQ", 7));
    }

    #[test]
    fn records_and_gaps() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 5, b"{}");
        assert_eq!(buf.len() as u64, record_size(2));
        let (len, crc, seq) = parse_record_header(&buf).unwrap();
        assert_eq!((len, seq), (2, 5));
        assert!(record_valid(len, crc, seq, &buf[RECORD_HEADER..]));
        assert!(!record_valid(len, crc, seq + 1, &buf[RECORD_HEADER..]));
        let mut long = buf.clone();
        long[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_record_header(&long), None);

        let g = encode_gap(3, 9);
        assert_eq!(parse_gap(&g), Some((3, 9)));
        assert_eq!(parse_gap(&encode_gap(9, 3)), None, "backwards");
        assert_eq!(parse_gap(&encode_gap(1, u64::MAX)), None, "absurd");
        let mut bad = g;
        bad[10] ^= 4;
        assert_eq!(parse_gap(&bad), None);
        // Its checksum holds, but the marker or the reserved word is wrong, or it is cut short.
        let mut marker = g;
        marker[0] ^= 1;
        assert_eq!(parse_gap(&marker), None, "marker");
        let mut reserved = g;
        reserved[28] = 1;
        assert_eq!(parse_gap(&reserved), None, "reserved");
        assert_eq!(parse_gap(&g[..GAP_FRAME - 1]), None, "short");
        assert_eq!(parse_gap(&g[..4]), None, "shorter than the marker");
    }

    #[test]
    fn markers_never_occur_in_json() {
        let json = serde_json::to_vec(&serde_json::json!({"id": "ÿþ\u{fffe}", "x": [1, 2.5, null]})).unwrap();
        assert!(!json.contains(&0xFF) && !json.contains(&0xFE));
    }

    #[test]
    fn ack_slots() {
        let a = encode_ack(1, 10);
        let b = encode_ack(2, 20);
        assert_eq!(decode_ack(&a), Some((1, 10)));
        let mut file = [a, b].concat();
        assert_eq!(decode_ack_file(&file), Some((2, 20)));
        // A torn newer slot falls back to the older one.
        file[ACK_SLOT + 17] ^= 0xFF;
        assert_eq!(decode_ack_file(&file), Some((1, 10)));
        assert_eq!(decode_ack_file(&file[..ACK_SLOT]), Some((1, 10)));
        assert_eq!(decode_ack_file(b"garbage"), None);
        assert_eq!(decode_ack_file(&[]), None);
    }
}
