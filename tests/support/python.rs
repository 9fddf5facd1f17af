//! Python helpers for tests that check our output with independent Python implementations
//! (`standardwebhooks`, `jsonschema`). Skips loudly when python3 or a module is missing, or
//! fails under REGISTRY_NOTIFY_REQUIRE_TOOLS=1 (CI installs them in .ci/run).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The Python interpreter (`sys.executable` of `python3` on PATH, so later runs skip any
/// version-manager shim) if it can import every module of `modules`. Checked once per
/// process and module list.
pub fn require_python(modules: &[&str]) -> Option<PathBuf> {
    static CHECKED: OnceLock<Mutex<HashMap<String, Result<PathBuf, String>>>> = OnceLock::new();
    let key = modules.join(",");
    let result = CHECKED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap()
        .entry(key)
        .or_insert_with(|| check(modules))
        .clone();
    match result {
        Ok(python) => Some(python),
        Err(why) => {
            crate::support::skip(&why);
            None
        }
    }
}

fn check(modules: &[&str]) -> Result<PathBuf, String> {
    let python = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("python3"))
                .find(|p| p.is_file())
        })
        .ok_or("python3 is not on PATH")?;
    let mut script = String::from("import sys\n");
    for m in modules {
        script.push_str(&format!("import {m}\n"));
    }
    script.push_str("print(sys.executable)\n");
    let out = Command::new(&python)
        .args(["-c", &script])
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    let executable = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || executable.is_empty() {
        return Err(format!(
            "python3 cannot import {} (pip install {})",
            modules.join(", "),
            modules.join(" ")
        ));
    }
    Ok(PathBuf::from(executable))
}
