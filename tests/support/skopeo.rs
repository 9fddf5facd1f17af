//! What the skopeo-driven end-to-end tests share (`golden_skopeo.rs`, `proxy_e2e.rs`,
//! `third_party_ferro.rs`): running skopeo, building test images with the golden capture's
//! script, requests as curl sends them, and comparing event lists without regard to order.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// The user agent the golden capture's curl steps sent.
pub const CURL: &str = "curl/7.88.1";

/// Runs skopeo and fails the test with its stderr if it fails (or hangs for two minutes).
pub async fn skopeo(args: &[&str]) {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("skopeo").args(args).output(),
    )
    .await
    .expect("skopeo hung")
    .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds an OCI image layout in `work/dir` with `tests/fixtures/golden/build_image.py`
/// and returns its description (digests and sizes).
pub fn build_image(work: &Path, dir: &str, extra: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden/build_image.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(work.join(dir))
        .args(extra)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `v` in a canonical order, for comparing events whose order is not part of the contract.
pub fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(|e| e.to_string());
    v
}

/// One skopeo scenario at a time in a test binary: skopeo's blob-info cache, which decides
/// whether it mounts, is one file for the whole machine.
static SCENARIO: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What a skopeo scenario holds while it runs: the scenario lock and its work directory.
pub struct Scenario {
    _turn: tokio::sync::MutexGuard<'static, ()>,
    dir: tempfile::TempDir,
}

impl Scenario {
    /// Where the scenario builds its images.
    pub fn work(&self) -> std::path::PathBuf {
        self.dir.path().to_path_buf()
    }
}

/// Starts a scenario needing `tools` (besides skopeo and python3, always needed); `None`
/// when one is missing (skipped loudly, or a failure under `REGISTRY_NOTIFY_REQUIRE_TOOLS`).
pub async fn scenario(tools: &[&str]) -> Option<Scenario> {
    for tool in ["skopeo", "python3"].iter().chain(tools) {
        crate::support::require_tool(tool)?;
    }
    Some(Scenario {
        _turn: SCENARIO.lock().await,
        dir: tempfile::tempdir().unwrap(),
    })
}

/// A request as curl sends it (its `User-Agent`), with `headers` after it.
pub async fn curl(
    http: &crate::support::Http,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> crate::support::Reply {
    let mut h = vec![("user-agent", CURL)];
    h.extend_from_slice(headers);
    http.send(method, path, &h, body).await
}

/// `oci:<work>/<dir>:<tag>`, an image layout made by [`build_image`].
pub fn oci(work: &Path, dir: &str, tag: &str) -> String {
    format!("oci:{}:{tag}", work.join(dir).display())
}

/// What a scenario's steps drive: skopeo, and requests as curl sends them, against the
/// registry at `http`, with images built in `work`.
pub struct Driver {
    /// A client of the registry.
    pub http: crate::support::Http,
    /// Where the images are built ([`build_image`]).
    pub work: std::path::PathBuf,
}

impl Driver {
    /// Runs skopeo (see [`skopeo`]).
    pub async fn skopeo(&self, args: &[&str]) {
        skopeo(args).await;
    }

    /// A request to the registry as curl sends it (see [`curl`]).
    pub async fn curl(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> crate::support::Reply {
        curl(&self.http, method, path, headers, body).await
    }

    /// `oci:<work>/<dir>:<tag>` (see [`oci`]).
    pub fn oci(&self, dir: &str, tag: &str) -> String {
        oci(&self.work, dir, tag)
    }

    /// `docker://<registry>/<reference>`.
    pub fn docker(&self, reference: &str) -> String {
        format!(
            "docker://{}/{reference}",
            self.http.base.trim_start_matches("http://")
        )
    }
}

/// The golden captures' normalisation of one event: ids, timestamps and ports become
/// placeholders, and each of `ours` (the `host:port` a test's registry listens on) in
/// `request.host` and `target.url` becomes the capture's `127.0.0.1:5000`.
pub fn normalise(mut e: Value, ours: &[&str]) -> Value {
    e["id"] = "<uuid>".into();
    e["timestamp"] = "<rfc3339nano>".into();
    e["request"]["id"] = "<uuid>".into();
    let addr = e["request"]["addr"].as_str().unwrap_or("").to_string();
    if let Some((ip, _)) = addr.rsplit_once(':') {
        e["request"]["addr"] = format!("{ip}:<port>").into();
    }
    let mut host = e["request"]["host"].as_str().unwrap_or("").to_string();
    let mut url = e["target"]["url"].as_str().map(str::to_string);
    for ours in ours {
        host = host.replace(ours, "127.0.0.1:5000");
        url = url.map(|u| u.replace(ours, "127.0.0.1:5000"));
    }
    e["request"]["host"] = host.into();
    if let Some(url) = url {
        e["target"]["url"] = url.into();
    }
    e["source"]["addr"] = "<hostname>:5000".into();
    e["source"]["instanceID"] = "<uuid>".into();
    e
}
