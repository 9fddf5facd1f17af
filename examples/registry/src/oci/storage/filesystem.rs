//! Filesystem storage.
//!
//! Layout under the root directory (similar in spirit to Distribution's):
//!
//! ```text
//! blobs/<alg>/<hex[..2]>/<hex>                          blob and manifest content
//! repositories/<name>/_layers/<alg>/<hex>               link: blob visible in <name> (holds the digest)
//! repositories/<name>/_manifests/revisions/<alg>/<hex>  manifest in <name> (holds its media type)
//! repositories/<name>/_manifests/tags/<tag>             tag (holds the manifest digest)
//! uploads/<uuid>/data                                   upload in progress
//! uploads/<uuid>/repository                             the upload's repository name
//! ```
//!
//! Small files are written to a temporary file, synced, then renamed into
//! place; upload data is synced before it is renamed into `blobs/`. Upload
//! sessions survive a restart (their hash state is rebuilt from the data).

use std::collections::HashMap;
use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::fs;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::super::reference::{is_valid_name_component, is_valid_tag, Algorithm, Digest, DigestHasher};
use super::{BoxFuture, ByteStream, ChunkBounds, Storage, StorageError, StorageResult, StoredManifest};

const READ_CHUNK: usize = 64 * 1024;

/// Storage in a directory tree; blob bodies are streamed from and to files.
#[derive(Debug)]
pub struct FilesystemStorage {
    root: PathBuf,
    uploads: Mutex<HashMap<String, SharedUpload>>,
}

/// In-memory state of an upload session; `None` once committed or cancelled.
type SharedUpload = Arc<tokio::sync::Mutex<Option<Upload>>>;

#[derive(Debug)]
struct Upload {
    repo: String,
    size: u64,
    /// SHA-256 of the data so far; `None` after a restart until rebuilt.
    hasher: Option<DigestHasher>,
}

fn not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// `Ok(None)` for a missing file.
fn optional<T>(result: io::Result<T>) -> io::Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn exists(path: &Path) -> io::Result<bool> {
    Ok(optional(fs::metadata(path).await)?.is_some())
}

/// Writes `content` to a temporary file next to `path`, syncs it and renames it over `path`.
async fn write_atomic(path: &Path, content: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("path without parent"))?;
    fs::create_dir_all(dir).await?;
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
    let result = async {
        let mut file = fs::File::create(&tmp).await?;
        file.write_all(content).await?;
        file.sync_all().await?;
        drop(file);
        fs::rename(&tmp, path).await
    }
    .await;
    if result.is_err() {
        let _ = fs::remove_file(&tmp).await;
    }
    result
}

/// Hashes a whole file.
async fn hash_file(path: &Path, algorithm: Algorithm) -> io::Result<DigestHasher> {
    let mut file = fs::File::open(path).await?;
    let mut hasher = DigestHasher::new(algorithm);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok(hasher);
        }
        hasher.update(buf.get(..n).unwrap_or_default());
    }
}

/// Streams `length` bytes of `file` from its current position.
fn file_stream(file: fs::File, length: u64) -> ByteStream {
    Box::pin(futures_util::stream::try_unfold(
        (file, length),
        |(mut file, remaining)| async move {
            if remaining == 0 {
                return Ok(None);
            }
            let want = usize::try_from(remaining).unwrap_or(READ_CHUNK).min(READ_CHUNK);
            let mut buf = BytesMut::zeroed(want);
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "blob file is shorter than expected",
                ));
            }
            buf.truncate(n);
            let rest = remaining.saturating_sub(u64::try_from(n).unwrap_or(u64::MAX));
            Ok(Some((Bytes::from(buf), (file, rest))))
        },
    ))
}

impl FilesystemStorage {
    /// Opens (creating if needed) storage rooted at `root`.
    pub fn open(root: PathBuf) -> io::Result<Self> {
        for dir in ["blobs", "repositories", "uploads"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        Ok(Self {
            root,
            uploads: Mutex::new(HashMap::new()),
        })
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root
            .join("blobs")
            .join(digest.algorithm().name())
            .join(hex.get(..2).unwrap_or(hex))
            .join(hex)
    }

    fn repo_dir(&self, repo: &str) -> PathBuf {
        self.root.join("repositories").join(repo)
    }

    fn layer_link(&self, repo: &str, digest: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("_layers")
            .join(digest.algorithm().name())
            .join(digest.hex())
    }

    fn manifests_dir(&self, repo: &str) -> PathBuf {
        self.repo_dir(repo).join("_manifests")
    }

    fn revision(&self, repo: &str, digest: &Digest) -> PathBuf {
        self.manifests_dir(repo)
            .join("revisions")
            .join(digest.algorithm().name())
            .join(digest.hex())
    }

    fn tags_dir(&self, repo: &str) -> PathBuf {
        self.manifests_dir(repo).join("tags")
    }

    fn upload_dir(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    fn upload_map(&self) -> MutexGuard<'_, HashMap<String, SharedUpload>> {
        self.uploads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The session `id`, loading it from disk if it predates a restart.
    async fn upload(&self, id: &str) -> StorageResult<SharedUpload> {
        // Ids become path components: accept only canonical UUIDs.
        if uuid::Uuid::parse_str(id).map(|u| u.to_string()).ok().as_deref() != Some(id) {
            return Err(StorageError::UploadUnknown);
        }
        if let Some(entry) = self.upload_map().get(id) {
            return Ok(entry.clone());
        }
        let dir = self.upload_dir(id);
        let repo =
            optional(fs::read_to_string(dir.join("repository")).await)?.ok_or(StorageError::UploadUnknown)?;
        let size = optional(fs::metadata(dir.join("data")).await)?
            .ok_or(StorageError::UploadUnknown)?
            .len();
        let upload = Upload {
            repo,
            size,
            hasher: None,
        };
        let entry = self
            .upload_map()
            .entry(id.to_owned())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(Some(upload))))
            .clone();
        Ok(entry)
    }

    async fn is_linked(&self, repo: &str, digest: &Digest) -> io::Result<bool> {
        exists(&self.layer_link(repo, digest)).await
    }

    async fn link(&self, repo: &str, digest: &Digest) -> io::Result<()> {
        write_atomic(&self.layer_link(repo, digest), digest.to_string().as_bytes()).await
    }

    async fn linked_size(&self, repo: &str, digest: &Digest) -> io::Result<Option<u64>> {
        if !self.is_linked(repo, digest).await? {
            return Ok(None);
        }
        Ok(optional(fs::metadata(self.blob_path(digest)).await)?.map(|m| m.len()))
    }

    /// Appends `body` to the session's data file, rolling back on failure.
    async fn append(
        &self,
        id: &str,
        upload: &mut Upload,
        bounds: ChunkBounds,
        mut body: ByteStream,
    ) -> StorageResult<u64> {
        let current = upload.size;
        if bounds.offset.is_some_and(|offset| offset != current) {
            return Err(StorageError::UploadOffsetMismatch { current });
        }
        let data = self.upload_dir(id).join("data");
        let mut hasher = match upload.hasher.take() {
            Some(hasher) => hasher,
            None => hash_file(&data, Algorithm::Sha256).await?,
        };
        let saved = hasher.clone();
        let mut file = fs::OpenOptions::new().write(true).open(&data).await?;
        let result: StorageResult<u64> = async {
            file.seek(SeekFrom::Start(current)).await?;
            let mut written: u64 = 0;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(StorageError::UploadBody)?;
                written = written.saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
                if bounds.length.is_some_and(|length| written > length) {
                    return Err(StorageError::UploadLengthMismatch { current });
                }
                file.write_all(&chunk).await?;
                hasher.update(&chunk);
            }
            if bounds.length.is_some_and(|length| written != length) {
                return Err(StorageError::UploadLengthMismatch { current });
            }
            file.flush().await?;
            Ok(written)
        }
        .await;
        match result {
            Ok(written) => {
                upload.size = current.saturating_add(written);
                upload.hasher = Some(hasher);
                Ok(upload.size)
            }
            Err(e) => {
                if let Err(truncate) = file.set_len(current).await {
                    tracing::error!(error = %truncate, "rolling back upload {id}");
                }
                upload.hasher = Some(saved);
                Err(e)
            }
        }
    }
}

impl Storage for FilesystemStorage {
    fn blob_size<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<Option<u64>>> {
        Box::pin(async move { Ok(self.linked_size(repo, digest).await?) })
    }

    fn blob_read<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
        offset: u64,
        length: u64,
    ) -> BoxFuture<'a, StorageResult<Option<ByteStream>>> {
        Box::pin(async move {
            if !self.is_linked(repo, digest).await? {
                return Ok(None);
            }
            let Some(mut file) = optional(fs::File::open(self.blob_path(digest)).await)? else {
                return Ok(None);
            };
            file.seek(SeekFrom::Start(offset)).await?;
            Ok(Some(file_stream(file, length)))
        })
    }

    fn blob_mount<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
        from: &'a str,
    ) -> BoxFuture<'a, StorageResult<Option<u64>>> {
        Box::pin(async move {
            let Some(size) = self.linked_size(from, digest).await? else {
                return Ok(None);
            };
            self.link(repo, digest).await?;
            Ok(Some(size))
        })
    }

    fn blob_unlink<'a>(&'a self, repo: &'a str, digest: &'a Digest) -> BoxFuture<'a, StorageResult<bool>> {
        Box::pin(async move { Ok(optional(fs::remove_file(self.layer_link(repo, digest)).await)?.is_some()) })
    }

    fn upload_create<'a>(&'a self, repo: &'a str) -> BoxFuture<'a, StorageResult<String>> {
        Box::pin(async move {
            let id = uuid::Uuid::new_v4().to_string();
            let dir = self.upload_dir(&id);
            fs::create_dir_all(&dir).await?;
            fs::File::create(dir.join("data")).await?;
            write_atomic(&dir.join("repository"), repo.as_bytes()).await?;
            let upload = Upload {
                repo: repo.to_owned(),
                size: 0,
                hasher: Some(DigestHasher::new(Algorithm::Sha256)),
            };
            self.upload_map()
                .insert(id.clone(), Arc::new(tokio::sync::Mutex::new(Some(upload))));
            Ok(id)
        })
    }

    fn upload_size<'a>(&'a self, repo: &'a str, id: &'a str) -> BoxFuture<'a, StorageResult<Option<u64>>> {
        Box::pin(async move {
            let entry = match self.upload(id).await {
                Ok(entry) => entry,
                Err(StorageError::UploadUnknown) => return Ok(None),
                Err(e) => return Err(e),
            };
            let guard = entry.lock().await;
            Ok(guard.as_ref().filter(|u| u.repo == repo).map(|u| u.size))
        })
    }

    fn upload_write<'a>(
        &'a self,
        repo: &'a str,
        id: &'a str,
        bounds: ChunkBounds,
        body: ByteStream,
    ) -> BoxFuture<'a, StorageResult<u64>> {
        Box::pin(async move {
            let entry = self.upload(id).await?;
            let mut guard = entry.lock().await;
            let upload = guard
                .as_mut()
                .filter(|u| u.repo == repo)
                .ok_or(StorageError::UploadUnknown)?;
            self.append(id, upload, bounds, body).await
        })
    }

    fn upload_commit<'a>(
        &'a self,
        repo: &'a str,
        id: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<u64>> {
        Box::pin(async move {
            let entry = self.upload(id).await?;
            let mut guard = entry.lock().await;
            let upload = guard
                .as_ref()
                .filter(|u| u.repo == repo)
                .ok_or(StorageError::UploadUnknown)?;
            let dir = self.upload_dir(id);
            let data = dir.join("data");
            let computed = match (digest.algorithm(), &upload.hasher) {
                (Algorithm::Sha256, Some(hasher)) => hasher.clone().finish(),
                (algorithm, _) => hash_file(&data, algorithm).await?.finish(),
            };
            if computed != *digest {
                return Err(StorageError::DigestMismatch { computed });
            }
            let size = upload.size;
            let target = self.blob_path(digest);
            if !exists(&target).await? {
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).await?;
                }
                fs::File::open(&data).await?.sync_all().await?;
                fs::rename(&data, &target).await?;
            }
            self.link(repo, digest).await?;
            // Remove the directory while the (locked) entry is still in the map,
            // so that no concurrent request reloads the session from disk.
            if let Err(e) = fs::remove_dir_all(&dir).await {
                tracing::warn!(error = %e, "removing finished upload {id}");
            }
            *guard = None;
            self.upload_map().remove(id);
            Ok(size)
        })
    }

    fn upload_cancel<'a>(&'a self, repo: &'a str, id: &'a str) -> BoxFuture<'a, StorageResult<bool>> {
        Box::pin(async move {
            let entry = match self.upload(id).await {
                Ok(entry) => entry,
                Err(StorageError::UploadUnknown) => return Ok(false),
                Err(e) => return Err(e),
            };
            let mut guard = entry.lock().await;
            if guard.as_ref().is_none_or(|u| u.repo != repo) {
                return Ok(false);
            }
            optional(fs::remove_dir_all(self.upload_dir(id)).await)?;
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
            let Some(media_type) = optional(fs::read_to_string(self.revision(repo, digest)).await)? else {
                return Ok(None);
            };
            let Some(content) = optional(fs::read(self.blob_path(digest)).await)? else {
                return Ok(None);
            };
            Ok(Some(StoredManifest {
                media_type,
                content: Bytes::from(content),
            }))
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
            let content_path = self.blob_path(digest);
            if !exists(&content_path).await? {
                write_atomic(&content_path, &manifest.content).await?;
            }
            write_atomic(&self.revision(repo, digest), manifest.media_type.as_bytes()).await?;
            if let Some(tag) = tag {
                write_atomic(&self.tags_dir(repo).join(tag), digest.to_string().as_bytes()).await?;
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
            let revision = self.revision(repo, digest);
            if !exists(&revision).await? {
                return Ok(None);
            }
            let mut removed = Vec::new();
            for tag in list_names(&self.tags_dir(repo)).await? {
                if !is_valid_tag(&tag) {
                    continue;
                }
                let path = self.tags_dir(repo).join(&tag);
                let points_here = optional(fs::read_to_string(&path).await)?
                    .is_some_and(|target| target.trim() == digest.to_string());
                if points_here && optional(fs::remove_file(&path).await)?.is_some() {
                    removed.push(tag);
                }
            }
            optional(fs::remove_file(&revision).await)?;
            removed.sort();
            Ok(Some(removed))
        })
    }

    fn manifest_digests<'a>(&'a self, repo: &'a str) -> BoxFuture<'a, StorageResult<Vec<Digest>>> {
        Box::pin(async move {
            let mut digests = Vec::new();
            for algorithm in Algorithm::ALL {
                let dir = self.manifests_dir(repo).join("revisions").join(algorithm.name());
                for hex in list_names(&dir).await? {
                    if let Ok(digest) = Digest::parse(&format!("{}:{hex}", algorithm.name())) {
                        digests.push(digest);
                    }
                }
            }
            digests.sort();
            Ok(digests)
        })
    }

    fn tag_get<'a>(&'a self, repo: &'a str, tag: &'a str) -> BoxFuture<'a, StorageResult<Option<Digest>>> {
        Box::pin(async move {
            let Some(target) = optional(fs::read_to_string(self.tags_dir(repo).join(tag)).await)? else {
                return Ok(None);
            };
            match Digest::parse(target.trim()) {
                Ok(digest) => Ok(Some(digest)),
                Err(e) => {
                    tracing::error!(error = %e, "corrupt tag file for {repo}:{tag}");
                    Ok(None)
                }
            }
        })
    }

    fn tag_delete<'a>(&'a self, repo: &'a str, tag: &'a str) -> BoxFuture<'a, StorageResult<bool>> {
        Box::pin(async move { Ok(optional(fs::remove_file(self.tags_dir(repo).join(tag)).await)?.is_some()) })
    }

    fn tags<'a>(&'a self, repo: &'a str) -> BoxFuture<'a, StorageResult<Option<Vec<String>>>> {
        Box::pin(async move {
            if !exists(&self.manifests_dir(repo)).await? {
                return Ok(None);
            }
            let mut tags: Vec<String> = list_names(&self.tags_dir(repo))
                .await?
                .into_iter()
                .filter(|t| is_valid_tag(t))
                .collect();
            tags.sort();
            Ok(Some(tags))
        })
    }

    fn repositories(&self) -> BoxFuture<'_, StorageResult<Vec<String>>> {
        Box::pin(async move {
            let mut repos = Vec::new();
            let mut pending = vec![(self.root.join("repositories"), String::new())];
            while let Some((dir, prefix)) = pending.pop() {
                let Some(mut entries) = optional(fs::read_dir(&dir).await)? else {
                    continue;
                };
                while let Some(entry) = entries.next_entry().await? {
                    if !entry.file_type().await?.is_dir() {
                        continue;
                    }
                    let Ok(name) = entry.file_name().into_string() else {
                        continue;
                    };
                    if name == "_manifests" && !prefix.is_empty() {
                        repos.push(prefix.clone());
                    } else if is_valid_name_component(&name) {
                        let child = if prefix.is_empty() {
                            name
                        } else {
                            format!("{prefix}/{name}")
                        };
                        pending.push((entry.path(), child));
                    }
                }
            }
            repos.sort();
            Ok(repos)
        })
    }
}

/// UTF-8 file names in `dir` (empty if it does not exist); temporary files are skipped.
async fn list_names(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    let Some(mut entries) = optional(fs::read_dir(dir).await)? else {
        return Ok(names);
    };
    while let Some(entry) = entries.next_entry().await? {
        if let Ok(name) = entry.file_name().into_string() {
            if !name.starts_with(".tmp-") {
                names.push(name);
            }
        }
    }
    Ok(names)
}
