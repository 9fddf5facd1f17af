//! Storage backends: a [`Storage`] trait with an in-memory and a filesystem implementation.
//!
//! The model follows Distribution's: blob content is global and
//! content-addressed, but a blob is only *visible* in a repository once it is
//! linked there (pushed or mounted into it). Manifests are per repository,
//! addressed by digest, and tags point at manifest digests.

mod filesystem;
mod memory;

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;

pub use filesystem::FilesystemStorage;
pub use memory::MemoryStorage;

use super::reference::Digest;

/// A boxed, sendable future (keeps [`Storage`] usable as a trait object).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A stream of body bytes, as read from a request or written to a response.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + 'static>>;

/// A manifest as stored: its bytes, verbatim, and its media type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredManifest {
    /// Media type served as `Content-Type`.
    pub media_type: String,
    /// The exact bytes pushed.
    pub content: Bytes,
}

/// Storage failures.
#[derive(Debug)]
pub enum StorageError {
    /// The upload session does not exist (or belongs to another repository).
    UploadUnknown,
    /// A chunk did not start at the current end of the upload.
    UploadOffsetMismatch {
        /// Bytes received so far.
        current: u64,
    },
    /// A chunk's body was not as long as its declared range or `Content-Length`.
    UploadLengthMismatch {
        /// Bytes received so far (the chunk was discarded).
        current: u64,
    },
    /// Reading the chunk from the client failed; the chunk was discarded.
    UploadBody(io::Error),
    /// The uploaded content does not have the digest the client gave.
    DigestMismatch {
        /// The digest of what was uploaded.
        computed: Digest,
    },
    /// A backend I/O error.
    Io(io::Error),
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::UploadUnknown => f.write_str("upload unknown"),
            StorageError::UploadOffsetMismatch { current } => {
                write!(f, "chunk does not start at the upload's current size {current}")
            }
            StorageError::UploadLengthMismatch { current } => {
                write!(
                    f,
                    "chunk length does not match its declared length (upload size {current})"
                )
            }
            StorageError::UploadBody(e) => write!(f, "reading the request body: {e}"),
            StorageError::DigestMismatch { computed } => write!(f, "content digest is {computed}"),
            StorageError::Io(e) => write!(f, "storage I/O error: {e}"),
        }
    }
}

impl std::error::Error for StorageError {}

impl From<io::Error> for StorageError {
    fn from(e: io::Error) -> Self {
        StorageError::Io(e)
    }
}

/// Storage result.
pub type StorageResult<T> = Result<T, StorageError>;

/// Where a chunk must go in an upload, and how long it must be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkBounds {
    /// Required start offset (from `Content-Range`); `None` appends.
    pub offset: Option<u64>,
    /// Required length (from `Content-Range` / `Content-Length`); `None` takes the whole body.
    pub length: Option<u64>,
}

/// A registry storage backend.
///
/// All names, tags and digests passed in have been validated by the caller
/// (names match the repository grammar, upload ids are UUIDs).
pub trait Storage: Send + Sync + fmt::Debug + 'static {
    /// Size of `digest` if it is linked into `repo`.
    fn blob_size<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<Option<u64>>>;

    /// `length` bytes of `digest` from `offset`, if linked into `repo`.
    fn blob_read<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
        offset: u64,
        length: u64,
    ) -> BoxFuture<'a, StorageResult<Option<ByteStream>>>;

    /// Links `digest` into `repo` if `from` has it; returns its size, or `None` if `from` lacks it.
    fn blob_mount<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
        from: &'a str,
    ) -> BoxFuture<'a, StorageResult<Option<u64>>>;

    /// Unlinks `digest` from `repo`; `false` if it was not linked.
    fn blob_unlink<'a>(&'a self, repo: &'a str, digest: &'a Digest) -> BoxFuture<'a, StorageResult<bool>>;

    /// Starts an upload session in `repo`; returns its id (a UUID).
    fn upload_create<'a>(&'a self, repo: &'a str) -> BoxFuture<'a, StorageResult<String>>;

    /// Bytes received so far by an upload, or `None` if unknown.
    fn upload_size<'a>(&'a self, repo: &'a str, id: &'a str) -> BoxFuture<'a, StorageResult<Option<u64>>>;

    /// Appends a chunk, streaming `body` into the upload. On any failure the
    /// upload is left as it was before the call. Returns the new size.
    fn upload_write<'a>(
        &'a self,
        repo: &'a str,
        id: &'a str,
        bounds: ChunkBounds,
        body: ByteStream,
    ) -> BoxFuture<'a, StorageResult<u64>>;

    /// Verifies the upload against `digest`, stores it as a blob linked into
    /// `repo` and ends the session. Returns the blob size. On a digest
    /// mismatch the session is kept.
    fn upload_commit<'a>(
        &'a self,
        repo: &'a str,
        id: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<u64>>;

    /// Cancels an upload; `false` if unknown.
    fn upload_cancel<'a>(&'a self, repo: &'a str, id: &'a str) -> BoxFuture<'a, StorageResult<bool>>;

    /// The manifest `digest` of `repo`.
    fn manifest_get<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<Option<StoredManifest>>>;

    /// Stores a manifest under `digest` (already verified) and points `tag` at it.
    fn manifest_put<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
        manifest: StoredManifest,
        tag: Option<&'a str>,
    ) -> BoxFuture<'a, StorageResult<()>>;

    /// Deletes a manifest and every tag pointing at it; returns those tags
    /// (sorted), or `None` if the manifest is unknown.
    fn manifest_delete<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<Option<Vec<String>>>>;

    /// Digests of every manifest stored in `repo`.
    fn manifest_digests<'a>(&'a self, repo: &'a str) -> BoxFuture<'a, StorageResult<Vec<Digest>>>;

    /// The digest `tag` points at.
    fn tag_get<'a>(&'a self, repo: &'a str, tag: &'a str) -> BoxFuture<'a, StorageResult<Option<Digest>>>;

    /// Removes a tag; `false` if unknown.
    fn tag_delete<'a>(&'a self, repo: &'a str, tag: &'a str) -> BoxFuture<'a, StorageResult<bool>>;

    /// Sorted tags of `repo`, or `None` if no manifest was ever pushed to it.
    fn tags<'a>(&'a self, repo: &'a str) -> BoxFuture<'a, StorageResult<Option<Vec<String>>>>;

    /// Sorted names of the repositories a manifest was ever pushed to.
    fn repositories(&self) -> BoxFuture<'_, StorageResult<Vec<String>>>;
}
