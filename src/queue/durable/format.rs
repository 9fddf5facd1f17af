//! The on-disk format of the durable queue: segment files of CRC-framed records, and the ack file.
//!
//! ```text
//! DIR/00000000000000000000.seg   segment: header, then records, named by its first sequence number
//!     header  (16 bytes)  "RNQSEG" 0x00 0x01 | first_seq u64
//!     record  (16 + len)  len u32 | crc32(len ‖ seq ‖ payload) u32 | seq u64 | payload (JSON event)
//! DIR/ack                        two 32-byte slots, written alternately; the valid one with the
//!     slot    (32 bytes)  "RNQACK" 0x00 0x01 | counter u64 | head u64 | crc32(first 24 bytes) u32 | 0u32
//! ```
//!
//! All integers are little-endian. A record's sequence number is the previous one plus one
//! within a segment, so a segment holds the events `first_seq .. next segment's first_seq` and the
//! number of events lost to a corrupt segment is known exactly. A torn write at the end of the
//! last segment (a crash) fails the length, sequence or CRC check and is cut off when the queue
//! is opened.

use std::io::{self, Read};

/// Segment file header: magic and format version.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"RNQSEG\x00\x01";
/// Ack slot magic and format version.
pub(crate) const ACK_MAGIC: [u8; 8] = *b"RNQACK\x00\x01";
/// Bytes of a segment header.
pub(crate) const SEGMENT_HEADER: u64 = 16;
/// Bytes of a record header.
pub(crate) const RECORD_HEADER: usize = 16;
/// Bytes of one ack slot.
pub(crate) const ACK_SLOT: usize = 32;
/// Largest payload accepted (an event is typically under 2 KiB); a larger length is corruption.
pub(crate) const MAX_PAYLOAD: usize = 16 << 20;
/// File name extension of segments.
pub(crate) const SEGMENT_EXT: &str = "seg";
/// File name of the ack file.
pub(crate) const ACK_FILE: &str = "ack";
/// The file a process holds an exclusive `flock` on while it has the queue open.
pub(crate) const LOCK_FILE: &str = "lock";

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

/// The header of the segment starting at `first`.
pub(crate) fn segment_header(first: u64) -> [u8; SEGMENT_HEADER as usize] {
    let mut h = [0u8; SEGMENT_HEADER as usize];
    h[..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..].copy_from_slice(&first.to_le_bytes());
    h
}

/// The first sequence number a segment header names; `None` if it is not a valid header.
pub(crate) fn parse_segment_header(h: &[u8]) -> Option<u64> {
    if h.len() < SEGMENT_HEADER as usize || h[..8] != SEGMENT_MAGIC {
        return None;
    }
    Some(u64::from_le_bytes(h[8..16].try_into().ok()?))
}

fn record_crc(len: u32, seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends the record `seq` carrying `payload` to `buf`.
pub(crate) fn encode_record(buf: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    let len = payload.len() as u32;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&record_crc(len, seq, payload).to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// The bytes a record with a payload of `len` bytes takes.
pub(crate) fn record_size(len: usize) -> u64 {
    (RECORD_HEADER + len) as u64
}

/// What reading one record found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read1 {
    /// A valid record; its payload is in the buffer. The size is header plus payload.
    Record {
        /// Its sequence number.
        seq: u64,
        /// Bytes it takes in the file.
        size: u64,
    },
    /// The end of the data, exactly at a record boundary.
    End,
    /// Some bytes, but not a whole record (a torn write, or a file cut short).
    Truncated,
    /// A whole header that fails its checks (length, sequence or CRC).
    Corrupt(&'static str),
}

/// Reads the record that should carry `expected` from `r` into `payload`.
pub(crate) fn read_record(r: &mut impl Read, expected: u64, payload: &mut Vec<u8>) -> io::Result<Read1> {
    let mut h = [0u8; RECORD_HEADER];
    match read_full(r, &mut h)? {
        0 => return Ok(Read1::End),
        n if n < RECORD_HEADER => return Ok(Read1::Truncated),
        _ => {}
    }
    let len = u32::from_le_bytes(h[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes"));
    let seq = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
    if len as usize > MAX_PAYLOAD {
        return Ok(Read1::Corrupt("record length out of range"));
    }
    if seq != expected {
        return Ok(Read1::Corrupt("unexpected sequence number"));
    }
    payload.clear();
    payload.resize(len as usize, 0);
    if read_full(r, payload)? < len as usize {
        return Ok(Read1::Truncated);
    }
    if record_crc(len, seq, payload) != crc {
        return Ok(Read1::Corrupt("checksum mismatch"));
    }
    Ok(Read1::Record {
        seq,
        size: record_size(len as usize),
    })
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

/// What a full scan of a segment found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    /// The first sequence number, from the header; `None` if the header is missing or invalid.
    pub(crate) first: Option<u64>,
    /// Valid records, from the header on.
    pub(crate) records: u64,
    /// Byte offset just past the last valid record (the header's end if none).
    pub(crate) valid_len: u64,
    /// Bytes after `valid_len` (a torn or corrupt tail).
    pub(crate) trailing: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub(crate) problem: Option<&'static str>,
}

/// Validates a whole segment whose data is `r` (`file_len` bytes long).
pub(crate) fn scan_segment(r: &mut impl Read, file_len: u64) -> io::Result<Scan> {
    let mut h = [0u8; SEGMENT_HEADER as usize];
    let got = read_full(r, &mut h)?;
    let Some(first) = parse_segment_header(&h[..got]) else {
        return Ok(Scan {
            first: None,
            records: 0,
            valid_len: 0,
            trailing: file_len,
            problem: Some("invalid segment header"),
        });
    };
    let mut scan = Scan {
        first: Some(first),
        valid_len: SEGMENT_HEADER,
        ..Scan::default()
    };
    let mut payload = Vec::new();
    loop {
        match read_record(r, first + scan.records, &mut payload)? {
            Read1::Record { size, .. } => {
                scan.records += 1;
                scan.valid_len += size;
            }
            Read1::End => break,
            Read1::Truncated => {
                scan.problem = Some("truncated record");
                break;
            }
            Read1::Corrupt(why) => {
                scan.problem = Some(why);
                break;
            }
        }
    }
    scan.trailing = file_len.saturating_sub(scan.valid_len);
    Ok(scan)
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
    let crc = u32::from_le_bytes(s[24..28].try_into().ok()?);
    if crc32fast::hash(&s[..24]) != crc {
        return None;
    }
    let counter = u64::from_le_bytes(s[8..16].try_into().ok()?);
    let head = u64::from_le_bytes(s[16..24].try_into().ok()?);
    Some((counter, head))
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

    fn records(first: u64, payloads: &[&[u8]]) -> Vec<u8> {
        let mut buf = segment_header(first).to_vec();
        for (i, p) in payloads.iter().enumerate() {
            encode_record(&mut buf, first + i as u64, p);
        }
        buf
    }

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
            "",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn records_round_trip() {
        let data = records(7, &[b"{}", b"", b"{\"id\":\"x\"}"]);
        assert_eq!(data.len(), 16 + 3 * 16 + 2 + 10);
        let mut r = &data[16..];
        let mut p = Vec::new();
        assert_eq!(
            read_record(&mut r, 7, &mut p).unwrap(),
            Read1::Record { seq: 7, size: 18 }
        );
        assert_eq!(p, b"{}");
        assert_eq!(
            read_record(&mut r, 8, &mut p).unwrap(),
            Read1::Record { seq: 8, size: 16 }
        );
        assert!(p.is_empty());
        assert!(matches!(
            read_record(&mut r, 9, &mut p).unwrap(),
            Read1::Record { .. }
        ));
        assert_eq!(p, b"{\"id\":\"x\"}");
        assert_eq!(read_record(&mut r, 10, &mut p).unwrap(), Read1::End);
    }

    #[test]
    fn damage_is_detected() {
        let data = records(0, &[b"hello", b"world"]);
        let mut p = Vec::new();
        // Wrong expected sequence number.
        assert_eq!(
            read_record(&mut &data[16..], 1, &mut p).unwrap(),
            Read1::Corrupt("unexpected sequence number")
        );
        // A flipped payload bit.
        let mut flipped = data.clone();
        flipped[16 + 16] ^= 1;
        assert_eq!(
            read_record(&mut &flipped[16..], 0, &mut p).unwrap(),
            Read1::Corrupt("checksum mismatch")
        );
        // An absurd length.
        let mut long = data.clone();
        long[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            read_record(&mut &long[16..], 0, &mut p).unwrap(),
            Read1::Corrupt("record length out of range")
        );
        // Every cut inside a record is a truncation, every cut at a boundary an end.
        let one = 16 + 16 + 5;
        for cut in 17..data.len() {
            let mut r = &data[16..cut];
            let first = read_record(&mut r, 0, &mut p).unwrap();
            if cut < one {
                assert_eq!(first, Read1::Truncated, "cut at {cut}");
                continue;
            }
            let second = read_record(&mut r, 1, &mut p).unwrap();
            let want = if cut == one { Read1::End } else { Read1::Truncated };
            assert_eq!(second, want, "cut at {cut}");
        }
    }

    #[test]
    fn scan_finds_the_valid_prefix() {
        let data = records(100, &[b"a", b"bb", b"ccc"]);
        let len = data.len() as u64;
        let scan = scan_segment(&mut &data[..], len).unwrap();
        assert_eq!(
            scan,
            Scan {
                first: Some(100),
                records: 3,
                valid_len: len,
                trailing: 0,
                problem: None
            }
        );
        // A torn tail: half of the last record.
        let torn = &data[..data.len() - 2];
        let scan = scan_segment(&mut &torn[..], torn.len() as u64).unwrap();
        assert_eq!((scan.records, scan.trailing), (2, 17));
        assert_eq!(scan.problem, Some("truncated record"));
        // Garbage after valid records.
        let mut garbage = data.clone();
        garbage.extend_from_slice(&[0xAB; 40]);
        let scan = scan_segment(&mut &garbage[..], garbage.len() as u64).unwrap();
        assert_eq!((scan.records, scan.valid_len, scan.trailing), (3, len, 40));
        // Zeros (a preallocated or zero-filled tail) are corrupt too: sequence 0 ≠ 103.
        let mut zeros = data.clone();
        zeros.extend_from_slice(&[0; 64]);
        let scan = scan_segment(&mut &zeros[..], zeros.len() as u64).unwrap();
        assert_eq!((scan.records, scan.trailing), (3, 64));
        // No header at all.
        let scan = scan_segment(&mut &b"RNQ"[..], 3).unwrap();
        assert_eq!((scan.first, scan.trailing), (None, 3));
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
