//! In-memory storage: maps behind locks. Everything is lost on exit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::super::reference::{Algorithm, Digest, DigestHasher};
use super::{BoxFuture, ByteStream, ChunkBounds, Storage, StorageError, StorageResult, StoredManifest};

/// Storage that keeps blobs, manifests, tags and uploads in memory.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    state: RwLock<State>,
    uploads: Mutex<HashMap<String, SharedUpload>>,
}

/// An upload session; `None` once committed or cancelled (for requests that
/// were waiting on the lock meanwhile).
type SharedUpload = Arc<tokio::sync::Mutex<Option<Upload>>>;

#[derive(Debug, Default)]
struct State {
    blobs: HashMap<Digest, Bytes>,
    repos: BTreeMap<String, Repo>,
}

#[derive(Debug, Default)]
struct Repo {
    layers: HashSet<Digest>,
    manifests: HashMap<Digest, StoredManifest>,
    tags: BTreeMap<String, Digest>,
    /// A manifest was pushed at some point (makes the repository listed).
    has_manifests: bool,
}

#[derive(Debug)]
struct Upload {
    repo: String,
    data: BytesMut,
    /// SHA-256 of `data`.
    hasher: DigestHasher,
}

impl MemoryStorage {
    /// Empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn upload_map(&self) -> MutexGuard<'_, HashMap<String, SharedUpload>> {
        self.uploads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn upload(&self, id: &str) -> StorageResult<SharedUpload> {
        self.upload_map()
            .get(id)
            .cloned()
            .ok_or(StorageError::UploadUnknown)
    }

    fn linked_blob(&self, repo: &str, digest: &Digest) -> Option<Bytes> {
        let state = self.read();
        let linked = state.repos.get(repo).is_some_and(|r| r.layers.contains(digest));
        linked.then(|| state.blobs.get(digest).cloned()).flatten()
    }
}

fn len_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl Storage for MemoryStorage {
    fn blob_size<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<Option<u64>>> {
        Box::pin(async move { Ok(self.linked_blob(repo, digest).map(|b| len_u64(b.len()))) })
    }

    fn blob_read<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
        offset: u64,
        length: u64,
    ) -> BoxFuture<'a, StorageResult<Option<ByteStream>>> {
        Box::pin(async move {
            let Some(blob) = self.linked_blob(repo, digest) else {
                return Ok(None);
            };
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(blob.len());
            let end = start
                .saturating_add(usize::try_from(length).unwrap_or(usize::MAX))
                .min(blob.len());
            let chunk = blob.slice(start..end);
            let stream: ByteStream = Box::pin(futures_util::stream::once(async move { Ok(chunk) }));
            Ok(Some(stream))
        })
    }

    fn blob_mount<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
        from: &'a str,
    ) -> BoxFuture<'a, StorageResult<Option<u64>>> {
        Box::pin(async move {
            let mut state = self.write();
            let in_source = state.repos.get(from).is_some_and(|r| r.layers.contains(digest));
            let Some(size) = state
                .blobs
                .get(digest)
                .map(|b| len_u64(b.len()))
                .filter(|_| in_source)
            else {
                return Ok(None);
            };
            state
                .repos
                .entry(repo.to_owned())
                .or_default()
                .layers
                .insert(digest.clone());
            Ok(Some(size))
        })
    }

    fn blob_unlink<'a>(&'a self, repo: &'a str, digest: &'a Digest) -> BoxFuture<'a, StorageResult<bool>> {
        Box::pin(async move {
            Ok(self
                .write()
                .repos
                .get_mut(repo)
                .is_some_and(|r| r.layers.remove(digest)))
        })
    }

    fn upload_create<'a>(&'a self, repo: &'a str) -> BoxFuture<'a, StorageResult<String>> {
        Box::pin(async move {
            let id = uuid::Uuid::new_v4().to_string();
            let upload = Upload {
                repo: repo.to_owned(),
                data: BytesMut::new(),
                hasher: DigestHasher::new(Algorithm::Sha256),
            };
            self.upload_map()
                .insert(id.clone(), Arc::new(tokio::sync::Mutex::new(Some(upload))));
            Ok(id)
        })
    }

    fn upload_size<'a>(&'a self, repo: &'a str, id: &'a str) -> BoxFuture<'a, StorageResult<Option<u64>>> {
        Box::pin(async move {
            let Ok(entry) = self.upload(id) else {
                return Ok(None);
            };
            let guard = entry.lock().await;
            Ok(guard
                .as_ref()
                .filter(|u| u.repo == repo)
                .map(|u| len_u64(u.data.len())))
        })
    }

    fn upload_write<'a>(
        &'a self,
        repo: &'a str,
        id: &'a str,
        bounds: ChunkBounds,
        mut body: ByteStream,
    ) -> BoxFuture<'a, StorageResult<u64>> {
        Box::pin(async move {
            let entry = self.upload(id)?;
            let mut guard = entry.lock().await;
            let upload = guard
                .as_mut()
                .filter(|u| u.repo == repo)
                .ok_or(StorageError::UploadUnknown)?;
            let start = upload.data.len();
            let current = len_u64(start);
            if bounds.offset.is_some_and(|offset| offset != current) {
                return Err(StorageError::UploadOffsetMismatch { current });
            }
            let saved = upload.hasher.clone();
            let mut written: u64 = 0;
            let mut failure = None;
            while let Some(chunk) = body.next().await {
                match chunk {
                    Ok(chunk) => {
                        written = written.saturating_add(len_u64(chunk.len()));
                        if bounds.length.is_some_and(|length| written > length) {
                            failure = Some(StorageError::UploadLengthMismatch { current });
                            break;
                        }
                        upload.data.extend_from_slice(&chunk);
                        upload.hasher.update(&chunk);
                    }
                    Err(e) => {
                        failure = Some(StorageError::UploadBody(e));
                        break;
                    }
                }
            }
            if failure.is_none() && bounds.length.is_some_and(|length| written != length) {
                failure = Some(StorageError::UploadLengthMismatch { current });
            }
            if let Some(failure) = failure {
                upload.data.truncate(start);
                upload.hasher = saved;
                return Err(failure);
            }
            Ok(len_u64(upload.data.len()))
        })
    }

    fn upload_commit<'a>(
        &'a self,
        repo: &'a str,
        id: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<u64>> {
        Box::pin(async move {
            let entry = self.upload(id)?;
            let mut guard = entry.lock().await;
            let upload = guard
                .as_ref()
                .filter(|u| u.repo == repo)
                .ok_or(StorageError::UploadUnknown)?;
            let computed = match digest.algorithm() {
                Algorithm::Sha256 => upload.hasher.clone().finish(),
                other => Digest::compute(other, &upload.data),
            };
            if computed != *digest {
                return Err(StorageError::DigestMismatch { computed });
            }
            let upload = guard.take().ok_or(StorageError::UploadUnknown)?;
            self.upload_map().remove(id);
            let content = upload.data.freeze();
            let size = len_u64(content.len());
            let mut state = self.write();
            state.blobs.entry(digest.clone()).or_insert(content);
            state
                .repos
                .entry(repo.to_owned())
                .or_default()
                .layers
                .insert(digest.clone());
            Ok(size)
        })
    }

    fn upload_cancel<'a>(&'a self, repo: &'a str, id: &'a str) -> BoxFuture<'a, StorageResult<bool>> {
        Box::pin(async move {
            let Ok(entry) = self.upload(id) else {
                return Ok(false);
            };
            let mut guard = entry.lock().await;
            if guard.as_ref().is_none_or(|u| u.repo != repo) {
                return Ok(false);
            }
            *guard = None;
            self.upload_map().remove(id);
            Ok(true)
        })
    }

    fn manifest_get<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<Option<StoredManifest>>> {
        Box::pin(async move {
            Ok(self
                .read()
                .repos
                .get(repo)
                .and_then(|r| r.manifests.get(digest))
                .cloned())
        })
    }

    fn manifest_put<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
        manifest: StoredManifest,
        tag: Option<&'a str>,
    ) -> BoxFuture<'a, StorageResult<()>> {
        Box::pin(async move {
            let mut state = self.write();
            let repo = state.repos.entry(repo.to_owned()).or_default();
            repo.has_manifests = true;
            repo.manifests.insert(digest.clone(), manifest);
            if let Some(tag) = tag {
                repo.tags.insert(tag.to_owned(), digest.clone());
            }
            Ok(())
        })
    }

    fn manifest_delete<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<Option<Vec<String>>>> {
        Box::pin(async move {
            let mut state = self.write();
            let Some(repo) = state.repos.get_mut(repo) else {
                return Ok(None);
            };
            if repo.manifests.remove(digest).is_none() {
                return Ok(None);
            }
            let removed: Vec<String> = repo
                .tags
                .iter()
                .filter(|(_, d)| *d == digest)
                .map(|(t, _)| t.clone())
                .collect();
            for tag in &removed {
                repo.tags.remove(tag);
            }
            Ok(Some(removed))
        })
    }

    fn manifest_digests<'a>(&'a self, repo: &'a str) -> BoxFuture<'a, StorageResult<Vec<Digest>>> {
        Box::pin(async move {
            let mut digests: Vec<Digest> = self
                .read()
                .repos
                .get(repo)
                .map(|r| r.manifests.keys().cloned().collect())
                .unwrap_or_default();
            digests.sort();
            Ok(digests)
        })
    }

    fn tag_get<'a>(&'a self, repo: &'a str, tag: &'a str) -> BoxFuture<'a, StorageResult<Option<Digest>>> {
        Box::pin(async move { Ok(self.read().repos.get(repo).and_then(|r| r.tags.get(tag)).cloned()) })
    }

    fn tag_delete<'a>(&'a self, repo: &'a str, tag: &'a str) -> BoxFuture<'a, StorageResult<bool>> {
        Box::pin(async move {
            Ok(self
                .write()
                .repos
                .get_mut(repo)
                .is_some_and(|r| r.tags.remove(tag).is_some()))
        })
    }

    fn tags<'a>(&'a self, repo: &'a str) -> BoxFuture<'a, StorageResult<Option<Vec<String>>>> {
        Box::pin(async move {
            Ok(self
                .read()
                .repos
                .get(repo)
                .filter(|r| r.has_manifests)
                .map(|r| r.tags.keys().cloned().collect()))
        })
    }

    fn repositories(&self) -> BoxFuture<'_, StorageResult<Vec<String>>> {
        Box::pin(async move {
            Ok(self
                .read()
                .repos
                .iter()
                .filter(|(_, r)| r.has_manifests)
                .map(|(n, _)| n.clone())
                .collect())
        })
    }
}
