//! Helpers of the example registry's tests, included by each as `mod support;`: the testkit
//! (`registry-notify-testkit`: loopback servers, an HTTP client, a webhook receiver,
//! processes) re-exported, a registry on loopback on either storage backend ([`Server`],
//! [`both_backends!`]), and the `registry` binary started as a process. Each test uses part of
//! it.
#![allow(dead_code, unused_imports, unused_macros)]

use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use example_registry::oci;
use http::{HeaderValue, Method, Request};
use http_body_util::Full;
use serde_json::{json, Value};

pub use registry_notify_testkit::*;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const OPTIONS: oci::RegistryOptions = oci::RegistryOptions { delete_enabled: true };

/// The value of sample `name` with exactly `labels` in Prometheus text `text` (read by the
/// independent `prometheus-parse`); panics if the text does not parse.
pub fn prom_sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("{e}: {text}"));
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && s.labels.len() == labels.len())
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name}: {other:?}"),
        })
}

/// The `sha512:<hex>` digest of `data`.
pub fn sha512(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(data)))
}

/// What the registry's answers are checked for.
pub trait RegistryReply {
    /// The body as JSON (`null` if it is not).
    fn json(&self) -> Value;
    /// The code of the first OCI error in the body.
    fn code(&self) -> String;
    /// Asserts the status, and the `Docker-Distribution-API-Version` every answer carries.
    fn expect(&self, status: u16) -> &Self;
    /// [`RegistryReply::expect`] and the OCI error code.
    fn expect_error(&self, status: u16, code: &str) -> &Self;
    /// The path (and query) of the `Location` header.
    fn location_path(&self) -> String;
}

impl RegistryReply for Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or("<no OCI error body>")
            .to_owned()
    }

    #[track_caller]
    fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(
            self.header("docker-distribution-api-version"),
            Some("registry/2.0")
        );
        self
    }

    #[track_caller]
    fn expect_error(&self, status: u16, code: &str) -> &Self {
        self.expect(status);
        assert_eq!(self.code(), code, "body: {}", String::from_utf8_lossy(&self.body));
        self
    }

    fn location_path(&self) -> String {
        let location = self.header("location").expect("Location header");
        match location.find("://") {
            Some(i) => location[i + 3..]
                .find('/')
                .map(|j| location[i + 3 + j..].to_owned())
                .unwrap_or_default(),
            None => location.to_owned(),
        }
    }
}

/// The example registry (no notification layer) on 127.0.0.1, and a client of it.
pub struct Server {
    pub addr: SocketAddr,
    pub http: Http,
    _root: Option<tempfile::TempDir>,
}

/// Serves `registry` (whose storage may live in `root`, removed with the server).
pub async fn serve(registry: oci::Registry, root: Option<tempfile::TempDir>) -> Server {
    let addr = serve_router(oci::router(registry)).await;
    Server {
        addr,
        http: Http::new(addr),
        _root: root,
    }
}

/// The registry in memory.
pub async fn memory_server() -> Server {
    serve(oci::Registry::in_memory(OPTIONS), None).await
}

/// The registry on the filesystem, in a fresh temporary directory.
pub async fn fs_server() -> Server {
    let root = tempfile::tempdir().expect("tempdir");
    let registry = oci::Registry::filesystem(root.path().join("data"), OPTIONS).expect("fs registry");
    serve(registry, Some(root)).await
}

/// Runs each scenario (an `async fn(Server)` of the invoking test) against both backends:
/// `memory::<name>` and `filesystem::<name>`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test] async fn $name() { super::$name($crate::support::memory_server().await).await; })*
        }
        mod filesystem {
            $(#[tokio::test] async fn $name() { super::$name($crate::support::fs_server().await).await; })*
        }
    };
}

impl Server {
    /// Sends `method` to `path` with `headers` (any bytes as values) and `body`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &[u8])],
        body: impl Into<Bytes>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(self.http.url(path));
        for (name, value) in headers {
            request = request.header(*name, HeaderValue::from_bytes(value).expect("header value"));
        }
        self.http
            .request(request.body(Full::new(body.into())).expect("request"))
            .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    pub async fn head(&self, path: &str) -> Reply {
        self.send(Method::HEAD, path, &[], Bytes::new()).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, &[], Bytes::new()).await
    }

    /// Monolithic `POST ?digest=` upload.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        self.send(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            &[("content-type", b"application/octet-stream")],
            data.to_vec(),
        )
        .await
        .expect(201);
        digest
    }

    pub async fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> Reply {
        self.send(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("content-type", media_type.as_bytes())],
            body.to_vec(),
        )
        .await
    }

    /// Pushes config + 2 layers and an OCI manifest tagged `tag`; returns (manifest bytes, digest).
    pub async fn push_image(&self, repo: &str, tag: &str, seed: &str) -> (Vec<u8>, String) {
        let manifest = image_manifest(self, repo, seed, OCI_MANIFEST).await;
        self.put_manifest(repo, tag, OCI_MANIFEST, &manifest)
            .await
            .expect(201);
        let digest = sha256(&manifest);
        (manifest, digest)
    }
}

/// Pushes the blobs of an image and returns its manifest (not pushed).
pub async fn image_manifest(server: &Server, repo: &str, seed: &str, media_type: &str) -> Vec<u8> {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#).into_bytes();
    let layer1 = format!("layer one {seed}").into_bytes();
    let layer2 = format!("layer two {seed}").into_bytes();
    let config_type = if media_type == DOCKER_V2 {
        "application/vnd.docker.container.image.v1+json"
    } else {
        "application/vnd.oci.image.config.v1+json"
    };
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_type, "digest": server.push_blob(repo, &config).await, "size": config.len()},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": server.push_blob(repo, &layer1).await,
             "size": layer1.len(), "annotations": {"org.example": "x"}},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": server.push_blob(repo, &layer2).await,
             "size": layer2.len()},
        ],
    });
    serde_json::to_vec_pretty(&manifest).expect("json")
}

pub fn index_manifest(children: &[(&str, usize, &str)]) -> Vec<u8> {
    let manifests: Vec<Value> = children
        .iter()
        .map(|(digest, size, arch)| {
            json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": size,
                   "platform": {"architecture": arch, "os": "linux"}})
        })
        .collect();
    serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}))
        .expect("json")
}

/// `registry serve <config>` (this package's binary), its output appended to `log`, killed
/// when dropped.
pub fn registry_serve(config: &Path, log: &Path) -> tokio::process::Command {
    let mut command = process::logged(Path::new(env!("CARGO_BIN_EXE_registry")), log);
    command.arg("serve").arg(config);
    command
}

/// Writes `config` to `<dir>/config.yml` and starts `registry serve` on it; returns once it
/// listens on 127.0.0.1:`port`, its output in `<dir>/registry.log`.
pub async fn serve_config(dir: &Path, port: u16, config: &str) -> tokio::process::Child {
    let path = dir.join("config.yml");
    std::fs::write(&path, config).unwrap();
    let mut child = registry_serve(&path, &dir.join("registry.log"))
        .spawn()
        .expect("spawn the registry");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    process::wait_listening(&mut child, addr, "registry").await;
    child
}

/// A `registry serve` config: the registry on 127.0.0.1:`port` from memory, its debug listener on
/// `debug_addr` with the bearer `token`, and `endpoints` (the items of
/// `notifications.endpoints`, each starting `    - name: …`).
pub fn config_with_debug(port: u16, debug_addr: &str, token: &str, endpoints: &str) -> String {
    format!(
        "version: 0.1\nhttp:\n  addr: 127.0.0.1:{port}\n  debug:\n    addr: \"{debug_addr}\"\n    token: {token}\n\
         storage:\n  inmemory: {{}}\nnotifications:\n  endpoints:\n{endpoints}"
    )
}

/// A `registry serve` process with its debug listener, killed when dropped.
pub struct WithDebug {
    pub process: process::Process,
    /// A client of the registry.
    pub client: registry_notify_testkit::Http,
    /// A client of the debug listener.
    pub debug: registry_notify_testkit::Http,
    pub debug_port: u16,
}

/// Writes `config` (listening on `port`, its debug listener on `debug_port`) to
/// `<dir>/config.yml`, starts `registry serve` on it and returns once both listen; its output
/// goes to `<dir>/registry.log`.
pub async fn start_with_debug(dir: &Path, config: &str, port: u16, debug_port: u16) -> WithDebug {
    let path = dir.join("config.yml");
    std::fs::write(&path, config).unwrap();
    let log = dir.join("registry.log");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut process = process::Process::start(registry_serve(&path, &log), addr, &log, "registry").await;
    let debug_addr: SocketAddr = format!("127.0.0.1:{debug_port}").parse().unwrap();
    process::wait_listening(&mut process.child, debug_addr, "debug listener").await;
    WithDebug {
        process,
        client: registry_notify_testkit::Http::new(addr),
        debug: registry_notify_testkit::Http::new(debug_addr),
        debug_port,
    }
}
