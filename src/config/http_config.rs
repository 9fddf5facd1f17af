//! The `http:` section: where the registry listens and how it is reached.

use yaml_serde::Value;

use super::listen::check_tcp_listen_addr;
use super::value::{boolean, go_duration, mapping, not_positive, string, Path};
use super::ConfigError;
use crate::url;

type Result<T> = std::result::Result<T, ConfigError>;

/// `http:` — the registry's HTTP interface. Other keys (`secret`, `tls`, `headers`, `http2`,
/// `h2c`, …, and every key of `debug` but `addr`, `prometheus` and `token`) are accepted
/// and ignored.
///
/// Listen addresses are checked when the file is loaded: with `net: tcp` (the default) `addr`
/// and `debug.addr` must be `:PORT` (all interfaces), `HOST:PORT` or `[IPv6]:PORT` with a port
/// from 0 to 65535, e.g. `:5000`, `127.0.0.1:5000` or `[::1]:5000`; `:::::` or `host:99999` is
/// an error naming the field. Go would also accept a service name as the port (`:http`); this
/// crate does not.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpConfig {
    /// `addr` — the listen address. Default `:5000`. With `net: unix`, a socket path.
    pub addr: String,
    /// `net` — `tcp` (default; also `tcp4`, `tcp6`) or `unix` (also `unixpacket`), as for Go's
    /// `net.Listen`.
    pub net: String,
    /// `host` — the externally reachable base URL (`https://registry.example.com:5000`), used to
    /// build absolute URLs such as `target.url` in events instead of the request's `Host`.
    pub host: Option<String>,
    /// `relativeurls` — `Location` headers are relative.
    pub relative_urls: bool,
    /// `prefix` — a path prefix the registry is served under (`/registry/`).
    pub prefix: Option<String>,
    /// `debug.addr` — the listen address of Distribution's debug server (`/debug/vars`,
    /// metrics), always TCP; `None` when not configured.
    pub debug_addr: Option<String>,
    /// `draintimeout` — how long a server that was told to stop lets requests in progress
    /// finish (Distribution's key); `None` when not given (a server picks its own bound).
    pub drain_timeout: Option<std::time::Duration>,
    /// `debug.prometheus.enabled` — serve metrics on the debug listener. Default `false`.
    pub debug_prometheus: bool,
    /// `debug.prometheus.path` — where on the debug listener. Default `/metrics`.
    pub debug_prometheus_path: String,
    /// `debug.token` — not Distribution's: the bearer token the debug listener's
    /// `/notifications/` routes require (`Authorization: Bearer <token>`); `None` when not
    /// given. `Debug` output shows `***` in its place.
    pub debug_token: Option<DebugToken>,
}

/// A bearer token: compared in constant time, never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct DebugToken(String);

impl DebugToken {
    /// A token; `None` when `token` is empty.
    pub fn new(token: impl Into<String>) -> Option<Self> {
        let token = token.into();
        (!token.is_empty()).then_some(Self(token))
    }

    /// Whether `given` is the token, in time that depends only on the lengths.
    pub fn matches(&self, given: &[u8]) -> bool {
        let want = self.0.as_bytes();
        want.len() == given.len() && want.iter().zip(given).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    /// The token itself, e.g. for a client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DebugToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: HttpConfig::DEFAULT_ADDR.to_owned(),
            net: HttpConfig::DEFAULT_NET.to_owned(),
            host: None,
            relative_urls: false,
            prefix: None,
            debug_addr: None,
            drain_timeout: None,
            debug_prometheus: false,
            debug_prometheus_path: HttpConfig::DEFAULT_PROMETHEUS_PATH.to_owned(),
            debug_token: None,
        }
    }
}

/// The networks of Go's `net.Listen` that a registry can listen on.
const NETS: &[&str] = &["tcp", "tcp4", "tcp6", "unix", "unixpacket"];

impl HttpConfig {
    /// The default listen address, `:5000`.
    pub const DEFAULT_ADDR: &'static str = ":5000";
    /// The default network, `tcp`.
    pub const DEFAULT_NET: &'static str = "tcp";
    /// The default path of metrics on the debug listener, `/metrics`.
    pub const DEFAULT_PROMETHEUS_PATH: &'static str = "/metrics";

    pub(crate) fn read(v: &Value, at: &Path) -> Result<Self> {
        let mut http = HttpConfig::default();
        if let Some(entries) = mapping(v, at)? {
            for (k, v) in entries {
                http.set(k, v, at)?;
            }
        }
        Ok(http)
    }

    /// Sets one key; keys this crate does not use are ignored.
    pub(crate) fn set(&mut self, key: &str, v: &Value, at: &Path) -> Result<()> {
        let p = at.key(key);
        let non_empty = |s: String| (!s.is_empty()).then_some(s);
        match key {
            "addr" => {
                self.addr = non_empty(string(v, &p)?).unwrap_or_else(|| HttpConfig::DEFAULT_ADDR.to_owned())
            }
            "net" => {
                self.net = non_empty(string(v, &p)?).unwrap_or_else(|| HttpConfig::DEFAULT_NET.to_owned())
            }
            "host" => self.host = non_empty(string(v, &p)?),
            "relativeurls" => self.relative_urls = boolean(v, &p)?,
            "prefix" => self.prefix = non_empty(string(v, &p)?),
            "draintimeout" => {
                self.drain_timeout = if v.is_null() {
                    None
                } else {
                    match go_duration(v, &p)? {
                        ns if ns > 0 => Some(std::time::Duration::from_nanos(ns as u64)),
                        _ => return Err(not_positive(&p, v)),
                    }
                }
            }
            "debug" => {
                self.debug_addr = None;
                self.debug_prometheus = false;
                self.debug_prometheus_path = HttpConfig::DEFAULT_PROMETHEUS_PATH.to_owned();
                self.debug_token = None;
                for (k, v) in mapping(v, &p)?.unwrap_or_default() {
                    match k {
                        "addr" => self.set_debug_addr(v, &p)?,
                        "token" => self.set_debug_token(v, &p)?,
                        "prometheus" => {
                            let pp = p.key("prometheus");
                            for (k, v) in mapping(v, &pp)?.unwrap_or_default() {
                                self.set_prometheus(k, v, &pp)?;
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Sets `debug.addr` (`at` is the path of `debug`).
    pub(crate) fn set_debug_addr(&mut self, v: &Value, at: &Path) -> Result<()> {
        let addr = string(v, &at.key("addr"))?;
        self.debug_addr = (!addr.is_empty()).then_some(addr);
        Ok(())
    }

    /// Sets `debug.token` (`at` is the path of `debug`).
    pub(crate) fn set_debug_token(&mut self, v: &Value, at: &Path) -> Result<()> {
        let p = at.key("token");
        // Never echo the value in an error: say what was wrong with it instead.
        let token = string(v, &p).map_err(|_| ConfigError::at(p.as_str(), "must be a string"))?;
        if token.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
            return Err(ConfigError::at(
                p.as_str(),
                "must be printable ASCII without spaces (it is sent as a bearer token)",
            ));
        }
        self.debug_token = DebugToken::new(token);
        Ok(())
    }

    /// Sets `debug.prometheus.<key>` (`at` is the path of `prometheus`); other keys are ignored.
    pub(crate) fn set_prometheus(&mut self, key: &str, v: &Value, at: &Path) -> Result<()> {
        match key {
            "enabled" => self.debug_prometheus = boolean(v, &at.key("enabled"))?,
            "path" => {
                let path = string(v, &at.key("path"))?;
                self.debug_prometheus_path = if path.is_empty() {
                    HttpConfig::DEFAULT_PROMETHEUS_PATH.to_owned()
                } else if path.starts_with('/') {
                    path
                } else {
                    return Err(ConfigError::at(
                        "http.debug.prometheus.path",
                        format!("must start with / (got {path:?})"),
                    ));
                };
            }
            _ => {}
        }
        Ok(())
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !NETS.contains(&self.net.as_str()) {
            return Err(ConfigError::at(
                "http.net",
                format!(
                    "expected \"tcp\" or \"unix\" (or tcp4, tcp6, unixpacket), got {:?}",
                    self.net
                ),
            ));
        }
        let addrs = [
            (
                "http.addr",
                Some(&self.addr).filter(|_| self.net.starts_with("tcp")),
            ),
            ("http.debug.addr", self.debug_addr.as_ref()),
        ];
        for (key, addr) in addrs {
            let Some(addr) = addr else { continue };
            check_tcp_listen_addr(addr).map_err(|why| {
                ConfigError::at(
                    key,
                    format!(
                        "must be :PORT, HOST:PORT or [IPv6]:PORT such as \":5000\", \"127.0.0.1:5000\" or \
                         \"[::1]:5000\", got {addr:?}: {why}"
                    ),
                )
            })?;
        }
        if let Some(host) = &self.host {
            if crate::secret::split_userinfo(host).0.is_some() || host.contains(['?', '#']) {
                return Err(ConfigError::at(
                    "http.host",
                    format!(
                        "must not contain user info, a query or a fragment (got {:?})",
                        crate::secret::redact_url(host)
                    ),
                ));
            }
            if url::check_url(host).is_err() {
                return Err(ConfigError::at(
                    "http.host",
                    format!(
                        "must be an absolute http:// or https:// URL such as \"https://registry.example.com:5000\" \
                         (got {:?})",
                        crate::secret::redact_url(host)
                    ),
                ));
            }
        }
        Ok(())
    }
}
