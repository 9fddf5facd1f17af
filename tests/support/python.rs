//! Python helpers for tests that check our output with independent Python implementations
//! (`standardwebhooks`, `jsonschema`). Skips loudly when python3 or a module is missing, or
//! fails under REGISTRY_NOTIFY_REQUIRE_TOOLS=1 (CI installs them in .ci/run).
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::process::Command;

/// `python3` if it is on PATH and can import every module of `modules`.
pub fn require_python(modules: &[&str]) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("python3"))
            .find(|p| p.is_file())
    });
    let missing = match &found {
        None => Some("python3 is not on PATH".to_owned()),
        Some(python) => {
            let script = modules
                .iter()
                .map(|m| format!("import {m}"))
                .collect::<Vec<_>>()
                .join("; ");
            let ok = Command::new(python)
                .args(["-c", &script])
                .output()
                .is_ok_and(|o| o.status.success());
            (!ok).then(|| format!("python3 cannot import {} (pip install {})", modules.join(", "), modules.join(" ")))
        }
    };
    if let Some(why) = missing {
        if std::env::var_os("REGISTRY_NOTIFY_REQUIRE_TOOLS").is_some() {
            panic!("{why}, and REGISTRY_NOTIFY_REQUIRE_TOOLS is set");
        }
        eprintln!("\n*** SKIPPED: {why} ***\n");
        return None;
    }
    found
}
