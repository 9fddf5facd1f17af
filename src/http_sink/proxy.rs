//! Outbound HTTP proxies: `HTTP_PROXY` / `HTTPS_PROXY` / `NO_PROXY`, as Distribution honours
//! them through Go's `http.ProxyFromEnvironment`, or one proxy set per endpoint.
//!
//! An `http://` endpoint behind a proxy is sent to the proxy in absolute form
//! (`POST http://host/path`), with `Proxy-Authorization` when the proxy URL has credentials;
//! an `https://` endpoint goes through a `CONNECT` tunnel, and TLS runs end to end with the
//! endpoint inside it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderValue, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use tower_service::Service;

use crate::sink::BoxError;

/// Which proxy an endpoint's requests go through.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Proxy {
    /// `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` (either case), read when the
    /// endpoint is built — what Distribution does, loopback destinations included, which
    /// are never proxied. The default.
    #[default]
    FromEnv,
    /// Straight to the endpoint, whatever the environment says.
    None,
    /// This proxy (`http://[user:password@]host:port`, or `https://` for `http://`
    /// endpoints), whatever the environment says.
    Url(String),
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Proxy::FromEnv => f.write_str("FromEnv"),
            Proxy::None => f.write_str("None"),
            Proxy::Url(url) => f.debug_tuple("Url").field(&redact(url)).finish(),
        }
    }
}

/// How an endpoint's requests reach it through a proxy.
#[derive(Clone)]
pub(crate) struct ProxyRoute {
    /// The proxy, without credentials.
    pub(crate) uri: Uri,
    /// `Proxy-Authorization` from the proxy URL's credentials (marked sensitive).
    pub(crate) authorization: Option<HeaderValue>,
    /// `CONNECT` tunnel (https endpoints) rather than absolute-form requests.
    pub(crate) tunnel: bool,
    /// The proxy's `scheme://host:port`, for logs.
    pub(crate) redacted: String,
    /// The credentials, to scrub from error messages.
    pub(crate) secrets: Vec<String>,
}

impl fmt::Debug for ProxyRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyRoute")
            .field("proxy", &self.redacted)
            .field("tunnel", &self.tunnel)
            .finish_non_exhaustive()
    }
}

/// `scheme://host:port` of a proxy URL, without credentials, path or query.
fn redact(url: &str) -> String {
    match url.parse::<Uri>() {
        Ok(uri) => {
            let host = uri.authority().map_or("", |a| a.as_str());
            let host = host.rsplit('@').next().unwrap_or(host);
            format!("{}://{host}", uri.scheme_str().unwrap_or("http"))
        }
        Err(_) => "<invalid proxy url>".into(),
    }
}

/// The route to `endpoint` under `setting`; `Ok(None)` means straight to the endpoint.
pub(crate) fn resolve(setting: &Proxy, endpoint: &Uri) -> Result<Option<ProxyRoute>, String> {
    let intercept = match setting {
        Proxy::None => return Ok(None),
        // Like Go's `ProxyFromEnvironment`, loopback destinations never use the environment's
        // proxy: a receiver beside the registry stays reachable.
        Proxy::FromEnv if is_loopback(endpoint) => return Ok(None),
        Proxy::FromEnv => Matcher::from_env().intercept(endpoint),
        Proxy::Url(url) => {
            let parsed: Uri = url
                .parse()
                .map_err(|_| format!("invalid proxy url {:?}", redact(url)))?;
            if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none() {
                return Err(format!(
                    "proxy url {:?} must be http://host:port or https://host:port",
                    redact(url)
                ));
            }
            Matcher::builder().all(url.clone()).build().intercept(endpoint)
        }
    };
    let Some(intercept) = intercept else {
        return Ok(None);
    };
    route(&intercept, endpoint).map(Some)
}

/// `localhost`, `*.localhost`, 127.0.0.0/8 and ::1.
fn is_loopback(uri: &Uri) -> bool {
    let Some(host) = uri.host() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn route(intercept: &Intercept, endpoint: &Uri) -> Result<ProxyRoute, String> {
    let proxy = intercept.uri();
    let redacted = redact(&proxy.to_string());
    let host = proxy
        .authority()
        .map(|a| a.as_str().rsplit('@').next().unwrap_or("").to_owned())
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("proxy {redacted:?} has no host"))?;
    let scheme = proxy.scheme_str().unwrap_or("http");
    let tunnel = endpoint.scheme_str() == Some("https");
    if tunnel && scheme == "https" {
        return Err(format!(
            "proxy {redacted:?}: an https:// proxy in front of an https:// endpoint is not supported; use an http:// proxy (the tunnel still carries TLS end to end)"
        ));
    }
    let uri: Uri = format!("{scheme}://{host}/")
        .parse()
        .map_err(|_| format!("invalid proxy url {redacted:?}"))?;
    let mut secrets = Vec::new();
    if let Some((user, password)) = intercept.raw_auth() {
        secrets.push(user.to_owned());
        secrets.push(password.to_owned());
    }
    let authorization = intercept.basic_auth().cloned().map(|mut value| {
        if let Ok(text) = value.to_str() {
            secrets.push(text.to_owned());
        }
        value.set_sensitive(true);
        value
    });
    Ok(ProxyRoute {
        uri,
        authorization,
        tunnel,
        redacted,
        secrets,
    })
}

#[cfg(feature = "https")]
type Direct = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "https"))]
type Direct = HttpConnector;

#[cfg(feature = "https")]
type Tunneled =
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::proxy::Tunnel<HttpConnector>>;

/// The stream every connector of an endpoint yields.
#[cfg(feature = "https")]
pub(crate) type Stream = hyper_rustls::MaybeHttpsStream<hyper_util::rt::TokioIo<tokio::net::TcpStream>>;
#[cfg(not(feature = "https"))]
pub(crate) type Stream = hyper_util::rt::TokioIo<tokio::net::TcpStream>;

/// Opens connections for an endpoint: straight (to the endpoint or to an absolute-form
/// proxy), or through a `CONNECT` tunnel.
#[derive(Clone)]
pub(crate) enum Connector {
    Direct(Direct),
    #[cfg(feature = "https")]
    Tunnel(Tunneled),
}

impl Connector {
    pub(crate) fn direct(inner: Direct) -> Self {
        Connector::Direct(inner)
    }

    #[cfg(feature = "https")]
    pub(crate) fn tunnel(inner: Tunneled) -> Self {
        Connector::Tunnel(inner)
    }
}

impl Service<Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Connector::Direct(c) => c.poll_ready(cx).map_err(Into::into),
            #[cfg(feature = "https")]
            Connector::Tunnel(c) => c.poll_ready(cx),
        }
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        match self {
            Connector::Direct(c) => {
                let connecting = c.call(dst);
                // The error is already a `BoxError` with TLS, a `ConnectError` without.
                #[allow(clippy::useless_conversion)]
                Box::pin(async move { connecting.await.map_err(Into::into) })
            }
            #[cfg(feature = "https")]
            Connector::Tunnel(c) => Box::pin(c.call(dst)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> Uri {
        url.parse().unwrap()
    }

    #[test]
    fn explicit_proxy_routes() {
        let set = Proxy::Url("http://alice:s3cret@proxy.internal:3128".into());
        let r = resolve(&set, &endpoint("http://hooks.example.com/x"))
            .unwrap()
            .unwrap();
        assert_eq!(r.uri, "http://proxy.internal:3128/");
        assert!(!r.tunnel);
        assert_eq!(r.redacted, "http://proxy.internal:3128");
        assert!(r.authorization.as_ref().unwrap().is_sensitive());
        // "alice:s3cret" in base64.
        assert_eq!(r.authorization.unwrap(), "Basic YWxpY2U6czNjcmV0");
        assert!(!format!("{set:?} {:?}", resolve(&set, &endpoint("https://h/")).unwrap()).contains("s3cret"));

        let r = resolve(&set, &endpoint("https://hooks.example.com/x"))
            .unwrap()
            .unwrap();
        assert!(r.tunnel);
        assert!(resolve(&Proxy::None, &endpoint("http://h/")).unwrap().is_none());
    }

    #[test]
    fn loopback_never_uses_the_environment() {
        for url in [
            "http://127.0.0.1:5055/",
            "http://[::1]/",
            "http://localhost/",
            "https://a.localhost/",
        ] {
            assert!(is_loopback(&endpoint(url)), "{url}");
            assert!(resolve(&Proxy::FromEnv, &endpoint(url)).unwrap().is_none());
        }
        for url in [
            "http://10.0.0.1/",
            "http://hooks.example.com/",
            "http://localhost.example.com/",
        ] {
            assert!(!is_loopback(&endpoint(url)), "{url}");
        }
    }

    #[test]
    fn bad_proxies_are_errors_without_secrets() {
        for url in [
            "ftp://alice:s3cret@proxy:21",
            "not a url",
            "http://alice:s3cret@/",
        ] {
            let e = resolve(&Proxy::Url(url.into()), &endpoint("http://h/")).unwrap_err();
            assert!(!e.contains("s3cret"), "{e}");
        }
        let e = resolve(
            &Proxy::Url("https://alice:s3cret@proxy:443".into()),
            &endpoint("https://h/"),
        )
        .unwrap_err();
        assert!(e.contains("not supported") && !e.contains("s3cret"), "{e}");
    }
}
