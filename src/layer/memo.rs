//! What the layer remembers between requests once it has a lookup service, so
//! that it asks the registry less often.
//!
//! A lookup is a request to the registry, and a registry with its own
//! notifications reports it (Distribution emits a `pull` for a `HEAD` of a
//! blob). Two facts the layer has already seen pass by answer most of them:
//!
//! - the size of a blob, by digest — a digest names its content, so its size
//!   never changes (from blob reads, pushes and commits);
//! - the bytes an upload session has received (from the `Location` of the
//!   `POST` that opened it and the `Range` of each `PATCH` response). The
//!   session's status, asked before its final `PUT`, is the authority (another
//!   instance behind a load balancer may have seen some of its requests); this
//!   only settles its one ambiguous answer, `Range: 0-0`, written for 0 and for
//!   1 byte received;
//! - the references of a manifest, by digest (`includereferences`), from a hint, a
//!   lookup or the manifest passing through: a `HEAD` of a manifest already pushed or
//!   pulled through this process then needs no lookup.
//!
//! Every map is bounded (entries, and bytes for references); a forgotten entry only
//! means a lookup.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::event::Descriptor;

/// Entries kept per map.
const MAX_ENTRIES: usize = 4096;
/// Bytes (estimated) of all references kept.
const MAX_REFERENCE_BYTES: usize = 8 << 20;
/// Largest references list kept (estimated bytes); larger ones are looked up each time.
const MAX_REFERENCES_ENTRY: usize = MAX_REFERENCE_BYTES / 8;

#[derive(Debug, Default)]
pub(crate) struct Memo {
    sizes: Mutex<HashMap<String, i64>>,
    uploads: Mutex<HashMap<String, i64>>,
    references: Mutex<References>,
}

/// Manifest references by digest, with their estimated size.
#[derive(Debug, Default)]
struct References {
    by_digest: HashMap<String, (Arc<[Descriptor]>, usize)>,
    bytes: usize,
}

/// About the heap bytes a descriptor holds: its strings plus a fixed overhead.
fn descriptor_bytes(d: &Descriptor) -> usize {
    let strings = d.media_type.len()
        + d.digest.len()
        + d.urls.iter().map(|u| u.len() + 24).sum::<usize>()
        + d.annotations
            .iter()
            .map(|(k, v)| k.len() + v.len() + 64)
            .sum::<usize>()
        + d.data.as_ref().map_or(0, String::len)
        + d.artifact_type.as_ref().map_or(0, String::len)
        + d.platform.as_ref().map_or(0, |p| {
            p.architecture.len()
                + p.os.len()
                + p.os_version.len()
                + p.variant.len()
                + p.os_features.iter().map(|f| f.len() + 24).sum::<usize>()
                + 128
        });
    strings + std::mem::size_of::<Descriptor>()
}

fn insert_bounded(map: &mut HashMap<String, i64>, key: &str, value: i64) {
    if let Some(v) = map.get_mut(key) {
        *v = value;
        return;
    }
    if map.len() >= MAX_ENTRIES {
        if let Some(victim) = map.keys().next().cloned() {
            map.remove(&victim);
        }
    }
    map.insert(key.to_owned(), value);
}

impl Memo {
    /// The size of the blob `digest`, if it was seen.
    pub(crate) fn size(&self, digest: &str) -> Option<i64> {
        self.sizes.lock().ok()?.get(digest).copied()
    }

    pub(crate) fn remember_size(&self, digest: &str, size: i64) {
        if let Ok(mut m) = self.sizes.lock() {
            insert_bounded(&mut m, digest, size);
        }
    }

    /// An upload session was opened at `key` (the path of its `Location`): 0 bytes.
    pub(crate) fn upload_started(&self, key: &str) {
        if let Ok(mut m) = self.uploads.lock() {
            insert_bounded(&mut m, key, 0);
        }
    }

    /// A `PATCH` to `key` was accepted, answering `Range: 0-<range_end>`, with a
    /// body of `chunk` bytes when known.
    pub(crate) fn upload_progress(&self, key: &str, range_end: Option<i64>, chunk: Option<i64>) {
        let Ok(mut m) = self.uploads.lock() else {
            return;
        };
        let before = m.get(key).copied();
        // `0-0` is written both for 0 and for 1 byte received: only the body length tells.
        // Outside numbers: a sum that overflows is no count (the session is forgotten).
        let after = match (range_end, chunk, before) {
            (Some(end), _, _) if end > 0 => end.checked_add(1),
            (Some(0), Some(1), _) => Some(1),
            (Some(0) | None, Some(n), Some(b)) => b.checked_add(n),
            _ => None,
        };
        match after {
            Some(n) => insert_bounded(&mut m, key, n),
            None => {
                m.remove(key);
            }
        }
    }

    /// The bytes received by the session at `key` before its final `PUT`; forgets it.
    pub(crate) fn upload_finished(&self, key: &str) -> Option<i64> {
        self.uploads.lock().ok()?.remove(key)
    }

    /// The references of the manifest `digest`, if they were seen.
    pub(crate) fn references(&self, digest: &str) -> Option<Vec<Descriptor>> {
        let refs = self.references.lock().ok()?;
        refs.by_digest.get(digest).map(|(r, _)| r.to_vec())
    }

    /// Remembers the references of the manifest `digest`, unless they are too large to keep.
    pub(crate) fn remember_references(&self, digest: &str, references: &[Descriptor]) {
        let bytes = references
            .iter()
            .map(descriptor_bytes)
            .fold(digest.len(), usize::saturating_add);
        if bytes > MAX_REFERENCES_ENTRY {
            return;
        }
        let Ok(mut refs) = self.references.lock() else {
            return;
        };
        if let Some((_, old)) = refs.by_digest.remove(digest) {
            refs.bytes = refs.bytes.saturating_sub(old);
        }
        while refs.by_digest.len() >= MAX_ENTRIES || refs.bytes.saturating_add(bytes) > MAX_REFERENCE_BYTES {
            let Some(victim) = refs.by_digest.keys().next().cloned() else {
                break;
            };
            if let Some((_, old)) = refs.by_digest.remove(&victim) {
                refs.bytes = refs.bytes.saturating_sub(old);
            }
        }
        refs.bytes = refs.bytes.saturating_add(bytes);
        refs.by_digest
            .insert(digest.to_owned(), (references.into(), bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_offsets() {
        let m = Memo::default();
        m.upload_started("/v2/a/blobs/uploads/1");
        m.upload_progress("/v2/a/blobs/uploads/1", Some(9), Some(10));
        m.upload_progress("/v2/a/blobs/uploads/1", Some(19), None);
        assert_eq!(m.upload_finished("/v2/a/blobs/uploads/1"), Some(20));
        assert_eq!(m.upload_finished("/v2/a/blobs/uploads/1"), None);
        // `0-0` is ambiguous without the body length.
        m.upload_started("k");
        m.upload_progress("k", Some(0), None);
        assert_eq!(m.upload_finished("k"), None);
        m.upload_started("k");
        m.upload_progress("k", Some(0), Some(1));
        assert_eq!(m.upload_finished("k"), Some(1));
        m.upload_started("k");
        m.upload_progress("k", Some(0), Some(0));
        assert_eq!(m.upload_finished("k"), Some(0));
        // A session never seen opening still counts from an unambiguous Range.
        m.upload_progress("other", Some(99), None);
        assert_eq!(m.upload_finished("other"), Some(100));
    }

    #[test]
    fn overflowing_offsets_are_no_count() {
        let m = Memo::default();
        m.upload_started("k");
        m.upload_progress("k", Some(i64::MAX), Some(3));
        assert_eq!(m.upload_finished("k"), None);
        m.upload_progress("k", Some(i64::MAX - 1), None);
        m.upload_progress("k", None, Some(2));
        assert_eq!(m.upload_finished("k"), None, "i64::MAX + 2 bytes");
        m.upload_progress("k", Some(i64::MAX - 1), None);
        m.upload_progress("k", Some(0), Some(0));
        assert_eq!(m.upload_finished("k"), Some(i64::MAX));
    }

    #[test]
    fn bounded() {
        let m = Memo::default();
        for i in 0..MAX_ENTRIES + 10 {
            m.remember_size(&format!("sha256:{i}"), i as i64);
        }
        assert_eq!(m.sizes.lock().unwrap().len(), MAX_ENTRIES);
        m.remember_size("sha256:x", 1);
        m.remember_size("sha256:x", 2);
        assert_eq!(m.size("sha256:x"), Some(2));
    }

    fn refs(n: usize, annotation: usize) -> Vec<Descriptor> {
        (0..n)
            .map(|i| {
                let mut d = Descriptor::new(
                    "application/vnd.oci.image.layer.v1.tar",
                    format!("sha256:{i:064}"),
                    1,
                );
                if annotation > 0 {
                    d.annotations.insert("a".into(), "x".repeat(annotation));
                }
                d
            })
            .collect()
    }

    #[test]
    fn references_by_digest_bounded_in_entries_and_bytes() {
        let m = Memo::default();
        assert_eq!(m.references("sha256:m"), None);
        m.remember_references("sha256:m", &refs(2, 0));
        assert_eq!(m.references("sha256:m"), Some(refs(2, 0)));
        m.remember_references("sha256:m", &[]);
        assert_eq!(m.references("sha256:m"), Some(Vec::new()));
        // Too large to keep: not remembered (a lookup each time instead).
        m.remember_references("sha256:big", &refs(1, MAX_REFERENCES_ENTRY));
        assert_eq!(m.references("sha256:big"), None);
        // Many small lists: at most MAX_ENTRIES.
        for i in 0..MAX_ENTRIES + 10 {
            m.remember_references(&format!("sha256:{i}"), &refs(1, 0));
        }
        let held = m.references.lock().unwrap().by_digest.len();
        assert_eq!(held, MAX_ENTRIES);
        // Large lists: at most MAX_REFERENCE_BYTES, and the count of bytes stays exact.
        for i in 0..64 {
            m.remember_references(&format!("sha512:{i}"), &refs(4, MAX_REFERENCES_ENTRY / 8));
        }
        let r = m.references.lock().unwrap();
        assert!(r.bytes <= MAX_REFERENCE_BYTES, "{}", r.bytes);
        let sum: usize = r.by_digest.values().map(|(_, b)| *b).sum();
        assert_eq!(sum, r.bytes);
    }
}
