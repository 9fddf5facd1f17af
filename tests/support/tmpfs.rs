//! A small tmpfs mounted for one test (a full disk on demand). Mounting needs root (CI has
//! it): without the privilege the test is skipped loudly, or fails when
//! `REGISTRY_NOTIFY_REQUIRE_TOOLS` is set.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a fixed size, unmounted (lazily, so an open file cannot keep it) when dropped.
pub struct Tmpfs {
    dir: tempfile::TempDir,
    mount: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=`, e.g. `"512k"`); `None` when it cannot.
    pub fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mount = dir.path().join("fs");
        std::fs::create_dir(&mount).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Self { dir, mount }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
                    Err(e) => e.to_string(),
                };
                if std::env::var_os("REGISTRY_NOTIFY_REQUIRE_TOOLS").is_some() {
                    panic!("cannot mount a tmpfs ({why}) and REGISTRY_NOTIFY_REQUIRE_TOOLS is set");
                }
                eprintln!("\n*** SKIPPED: cannot mount a tmpfs (needs root): {why} ***\n");
                None
            }
        }
    }

    /// The mounted directory.
    pub fn path(&self) -> &Path {
        &self.mount
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        let _ = self.dir.path();
    }
}
