//! `request.addr`: the client address, derived as Distribution does.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::Extensions;
#[cfg(test)]
use http::HeaderMap;

/// The peer address of the connection, for `request.addr`.
///
/// Insert it into the request extensions when serving with plain hyper; with
/// axum, `ConnectInfo<SocketAddr>` is read as well when the `axum` feature is
/// enabled, and a bare `SocketAddr` extension is always read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// A set of proxy networks whose `X-Forwarded-For`/`X-Real-Ip` headers are trusted.
///
/// Distribution trusts those headers from anyone, so clients can spoof their
/// address. With [`NotificationLayer::trusted_proxies`](crate::NotificationLayer::trusted_proxies)
/// the headers are used only when the peer is in one of these networks.
///
/// ```
/// use registry_notify::layer::TrustedProxies;
/// let proxies: TrustedProxies = "10.0.0.0/8, 127.0.0.1, ::1".parse().unwrap();
/// assert!(proxies.contains("10.1.2.3".parse().unwrap()));
/// assert!(!proxies.contains("192.168.0.1".parse().unwrap()));
/// assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Whether `ip` lies in one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.0.iter().any(|&(net, bits)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(bits))
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(bits))
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// Parses a comma-separated list of addresses and CIDR networks.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (addr, bits) = match part.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (part, None),
            };
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| format!("trusted proxy {part:?}: not an IP address"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(b) => b
                    .parse::<u8>()
                    .ok()
                    .filter(|&b| b <= max)
                    .ok_or_else(|| format!("trusted proxy {part:?}: prefix length must be 0..={max}"))?,
                None => max,
            };
            let (ip, bits) = match ip {
                IpAddr::V6(v6) if bits >= 96 => match v6.to_ipv4_mapped() {
                    Some(v4) => (IpAddr::V4(v4), bits - 96),
                    None => (ip, bits),
                },
                _ => (ip, bits),
            };
            nets.push((ip, bits));
        }
        Ok(TrustedProxies(nets))
    }
}

pub(crate) fn peer_addr(ext: &Extensions) -> Option<SocketAddr> {
    if let Some(PeerAddr(a)) = ext.get::<PeerAddr>() {
        return Some(*a);
    }
    if let Some(a) = ext.get::<SocketAddr>() {
        return Some(*a);
    }
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(a)) = ext.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(*a);
    }
    None
}

/// Distribution's `RemoteAddr`: the first `X-Forwarded-For` entry if it is an
/// IP, else `X-Real-Ip` if it is an IP, else the peer `ip:port`.
#[cfg(test)]
pub(crate) fn remote_addr(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trusted: Option<&TrustedProxies>,
) -> String {
    let mut s = String::new();
    let headers = super::headers::RequestHeaders::scan(headers);
    write_remote_addr(&mut s, &headers, peer, trusted);
    s
}

/// Appends the client's address (Distribution's `RemoteAddr`) to `out`.
pub(crate) fn write_remote_addr(
    out: &mut String,
    headers: &super::headers::RequestHeaders<'_>,
    peer: Option<SocketAddr>,
    trusted: Option<&TrustedProxies>,
) {
    use std::fmt::Write;
    let trust_headers = match (trusted, peer) {
        (None, _) => true,
        (Some(t), Some(p)) => t.contains(p.ip()),
        (Some(_), None) => false,
    };
    if trust_headers {
        let header_ip = |value: Option<&http::HeaderValue>, first: bool| -> Option<IpAddr> {
            let v = value?.to_str().ok()?;
            let v = if first { v.split(',').next()? } else { v };
            v.trim().parse().ok()
        };
        let forwarded_for = header_ip(headers.x_forwarded_for, true);
        if let Some(ip) = forwarded_for.or_else(|| header_ip(headers.x_real_ip, false)) {
            let _ = write!(out, "{ip}");
            return;
        }
    }
    match peer {
        Some(SocketAddr::V4(v4)) => {
            // `a.b.c.d:port` without the formatting machinery: this runs per request.
            for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_decimal(out, u32::from(octet));
            }
            out.push(':');
            push_decimal(out, u32::from(v4.port()));
        }
        Some(p) => {
            let _ = write!(out, "{p}");
        }
        None => {}
    }
}

fn push_decimal(s: &mut String, n: u32) {
    s.push_str(crate::event::decimal(u64::from(n), &mut [0; 20]));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn distribution_order() {
        let peer = Some("10.0.0.2:4444".parse().unwrap());
        assert_eq!(remote_addr(&h(&[]), peer, None), "10.0.0.2:4444");
        assert_eq!(
            remote_addr(&h(&[("x-forwarded-for", " 1.2.3.4 , 5.6.7.8")]), peer, None),
            "1.2.3.4"
        );
        assert_eq!(
            remote_addr(
                &h(&[("x-forwarded-for", "nope"), ("x-real-ip", "::1")]),
                peer,
                None
            ),
            "::1"
        );
        assert_eq!(
            remote_addr(&h(&[("x-real-ip", "junk")]), peer, None),
            "10.0.0.2:4444"
        );
        assert_eq!(remote_addr(&h(&[]), None, None), "");
        for a in [
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.20.3.4:80",
            "[::1]:5000",
            "[fe80::1%2]:1",
        ] {
            let peer: SocketAddr = a.parse().unwrap();
            assert_eq!(remote_addr(&h(&[]), Some(peer), None), peer.to_string());
        }
    }

    #[test]
    fn trusted_only() {
        let t: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let hdr = h(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            remote_addr(&hdr, Some("10.9.9.9:1".parse().unwrap()), Some(&t)),
            "1.2.3.4"
        );
        assert_eq!(
            remote_addr(&hdr, Some("11.0.0.1:1".parse().unwrap()), Some(&t)),
            "11.0.0.1:1"
        );
        assert_eq!(remote_addr(&hdr, None, Some(&t)), "");
        let t6: TrustedProxies = "::ffff:127.0.0.1, fd00::/8".parse().unwrap();
        assert!(t6.contains("127.0.0.1".parse().unwrap()));
        assert!(t6.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(t6.contains("fd12::1".parse().unwrap()));
    }
}
