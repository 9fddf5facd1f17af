//! A small tmpfs mounted for one test (a full disk on demand). Mounting needs root (CI has
//! it): without the privilege the test is skipped loudly, or fails when
//! `REGISTRY_NOTIFY_REQUIRE_TOOLS` is set.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A tmpfs of a fixed size on a temporary directory, unmounted when dropped.
pub struct Tmpfs {
    dir: tempfile::TempDir,
    mount: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=`, e.g. `"512k"`); `None` when it cannot.
    pub fn mount(size: &str) -> Option<Self> {
        crate::support::require_tool("mount")?;
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
                crate::support::skip(&format!("cannot mount a tmpfs (needs root): {why}"));
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
        let umount = |lazy: bool| {
            let mut c = Command::new("umount");
            if lazy {
                c.arg("-l");
            }
            c.arg(&self.mount)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        // Still busy (a test failed with a file open): detach it lazily, so that it cannot
        // keep the temporary directory.
        if !umount(false) {
            umount(true);
        }
        let _ = self.dir.path();
    }
}
