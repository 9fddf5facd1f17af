//! A small OCI distribution-spec (v1.1) registry on axum, good enough for
//! `skopeo`, `crane`, `oras` and Docker clients: the application the
//! notification layer wraps in the example and in the integration tests.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use example_registry::oci;
//! let registry = oci::Registry::in_memory(oci::RegistryOptions { delete_enabled: true });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
//! axum::serve(listener, oci::router(registry)).await
//! # }
//! ```
//!
//! # Event hints
//!
//! Successful responses carry a [`registry_notify::EventHint`] in their
//! extensions with what the HTTP exchange alone does not tell the
//! notification layer:
//!
//! | response | hint fields |
//! |---|---|
//! | blob upload completed (`PUT …/uploads/<id>?digest=`, monolithic `POST ?digest=`), 201 | `size`, `digest` |
//! | cross-repository mount, 201 | `size`, `digest` |
//! | blob `GET`/`HEAD`, 200/206 | `size` (of the whole blob, also for ranges), `digest` |
//! | manifest `GET`/`HEAD` (200, 304) and `PUT` (201) | `media_type`, `size`, `digest`, `references` |
//! | manifest `DELETE` by digest, 202 | `deleted_tags` (sorted; empty if none pointed at it) |
//!
//! `references` lists the config then the layers of an OCI or Docker v2
//! image manifest, or the children of an index / manifest list with their
//! `platform`; `urls`, `annotations`, `artifactType` and `data` are kept. It is
//! `None` when a manifest references nothing. Errors, upload sessions
//! (`POST`/`PATCH`/status/cancel), failed mounts (202), listings and deletes by
//! tag carry no hint.
//!
//! # Behaviour worth knowing
//!
//! * `Location` headers are absolute URLs built from `Host` (and
//!   `X-Forwarded-Proto`), like Distribution; a relative path without a usable
//!   `Host`. Upload locations carry a dummy `?_state=` query, as Distribution's do.
//! * Manifests are served as stored, whatever `Accept` says (no schema 1).
//! * A blob is visible in a repository only once pushed or mounted there.
//! * `DELETE` by digest removes the manifest and every tag pointing at it;
//!   by tag only the tag (Distribution 3); 405 UNSUPPORTED when disabled.

pub mod error;
mod handlers;
pub mod manifest;
pub mod reference;
pub mod route;
pub mod storage;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use self::storage::{FilesystemStorage, MemoryStorage, Storage};

/// Registry behaviour switches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistryOptions {
    /// Allow `DELETE` of manifests, tags and blobs (Distribution's
    /// `storage.delete.enabled`); when false they answer 405 UNSUPPORTED.
    pub delete_enabled: bool,
}

/// A registry: shared storage plus options. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Registry {
    storage: Arc<dyn Storage>,
    options: RegistryOptions,
}

impl Registry {
    /// A registry over any [`Storage`].
    pub fn new(storage: Arc<dyn Storage>, options: RegistryOptions) -> Self {
        Self { storage, options }
    }

    /// A registry keeping everything in memory.
    pub fn in_memory(options: RegistryOptions) -> Self {
        Self::new(Arc::new(MemoryStorage::new()), options)
    }

    /// A registry storing under `root` (created if missing).
    pub fn filesystem(root: PathBuf, options: RegistryOptions) -> io::Result<Self> {
        Ok(Self::new(Arc::new(FilesystemStorage::open(root)?), options))
    }

    /// The storage backend.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The options.
    pub fn options(&self) -> RegistryOptions {
        self.options
    }
}

/// The registry's axum router: every request goes to one fallback handler
/// that parses the `/v2/...` path itself.
pub fn router(registry: Registry) -> axum::Router {
    axum::Router::new()
        .fallback(handlers::dispatch)
        .with_state(registry)
}
