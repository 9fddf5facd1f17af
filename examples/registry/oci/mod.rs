//! A small OCI distribution-spec (v1.1) registry on axum, good enough for
//! `skopeo`, `crane`, `oras` and Docker clients: the application the
//! notification layer wraps in the example and in the integration tests.
//!
//! Self-contained on purpose: it is compiled both as a module of the
//! `registry` example and, through `#[path]`, of integration-test crates, so
//! everything refers to siblings with `super::` and nothing assumes a crate root.
//!
//! ```ignore
//! let registry = oci::Registry::in_memory(oci::RegistryOptions { delete_enabled: true });
//! axum::serve(listener, oci::router(registry)).await?;
//! ```
//!
//! Responses carry a [`registry_notify::EventHint`] in their extensions where
//! the HTTP exchange alone does not tell the notification layer everything
//! (see `handlers` for which responses carry which facts).

// Each crate that includes this module (the example, test crates) uses a
// different subset of it.
#![allow(dead_code)]

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
