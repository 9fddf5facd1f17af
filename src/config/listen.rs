//! Listen addresses (`http.addr`, `http.debug.addr`), checked as Go's `net.Listen("tcp", addr)`
//! reads them, so that an address the registry could never listen on is refused when the file is
//! loaded rather than when the server starts.
//!
//! Accepted: `:PORT` (all interfaces), `HOST:PORT` with a host name or an IPv4 address, and
//! `[IPv6]:PORT` (with an optional `%zone`). `PORT` is a decimal number from 0 to 65535 (0 picks
//! a free port). Refused: anything else, e.g. `:::::`, `host:99999`, `5000` (no port), `::1:5000`
//! (an IPv6 address needs brackets), `:abc`. Go would also take a service name from
//! `/etc/services` as the port (`:http`); we do not, since the registry's port is worth writing
//! down.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Why `addr` is not a TCP listen address, or `Ok` when it is one.
pub(crate) fn check_tcp_listen_addr(addr: &str) -> Result<(), String> {
    let (host, port) = split_host_port(addr)?;
    check_port(port)?;
    if let Some(v6) = host.strip_prefix('[') {
        // `split_host_port` saw the closing bracket.
        let inner = v6.strip_suffix(']').unwrap_or(v6);
        let (ip, zone) = match inner.split_once('%') {
            Some((ip, zone)) => (ip, Some(zone)),
            None => (inner, None),
        };
        if ip.parse::<Ipv6Addr>().is_err() {
            return Err(format!("{inner:?} in brackets is not an IPv6 address"));
        }
        if zone.is_some_and(|z| z.is_empty() || !z.bytes().all(is_name_byte)) {
            return Err(format!("invalid IPv6 zone in {inner:?}"));
        }
        return Ok(());
    }
    check_host(host)
}

/// Splits `host:port` or `[host]:port` like Go's `net.SplitHostPort`; the host keeps its
/// brackets.
fn split_host_port(addr: &str) -> Result<(&str, &str), String> {
    if addr.starts_with('[') {
        let Some(end) = addr.find(']') else {
            return Err("missing ']' after an IPv6 address".to_owned());
        };
        let (host, rest) = addr.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(port) => Ok((host, port)),
            None if rest.is_empty() => Err("missing port".to_owned()),
            None => Err(format!("unexpected {rest:?} after ']' (expected :PORT)")),
        };
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err("missing port".to_owned());
    };
    if host.contains(':') {
        return Err("too many colons (an IPv6 address needs brackets, e.g. [::1]:5000)".to_owned());
    }
    if host.contains(['[', ']']) || port.contains(['[', ']']) {
        return Err("unexpected '[' or ']'".to_owned());
    }
    Ok((host, port))
}

fn check_port(port: &str) -> Result<(), String> {
    if port.is_empty() {
        return Err("missing port number (write :0 for any free port)".to_owned());
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port {port:?} is not a number"));
    }
    // Checked: the digits come from the file and may be many.
    let value = port
        .bytes()
        .try_fold(0u32, |n, b| n.checked_mul(10)?.checked_add(u32::from(b - b'0')));
    match value {
        Some(n) if n <= u32::from(u16::MAX) => Ok(()),
        _ => Err(format!("port {port} is out of range (0-65535)")),
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'
}

/// An empty host (all interfaces), an IPv4 address, or a DNS name.
fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Ok(());
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return host
            .parse::<Ipv4Addr>()
            .map(|_| ())
            .map_err(|_| format!("{host:?} is not an IPv4 address"));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let valid = name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(is_name_byte)
        });
    if valid {
        Ok(())
    } else {
        Err(format!("{host:?} is not a host name or an IP address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted() {
        for addr in [
            ":5000",
            ":0",
            ":65535",
            "localhost:5000",
            "0.0.0.0:5000",
            "127.0.0.1:5001",
            "registry.example.com:443",
            "registry.example.com.:443",
            "my_host-1:80",
            "[::]:5000",
            "[::1]:5000",
            "[2001:db8::1]:65535",
            "[fe80::1%eth0]:5000",
            "[::ffff:127.0.0.1]:80",
            ":00080",
        ] {
            assert_eq!(check_tcp_listen_addr(addr), Ok(()), "{addr}");
        }
    }

    #[test]
    fn refused_with_the_reason() {
        for (addr, why) in [
            (":::::", "too many colons"),
            ("::1:5000", "too many colons"),
            ("host:99999", "port 99999 is out of range (0-65535)"),
            (":65536", "out of range"),
            (":99999999999999999999999", "out of range"),
            ("5000", "missing port"),
            ("localhost", "missing port"),
            ("", "missing port"),
            ("localhost:", "missing port number"),
            (":", "missing port number"),
            (":abc", "port \"abc\" is not a number"),
            (":http", "is not a number"),
            (":5000abc", "is not a number"),
            (": 5000", "is not a number"),
            (":-1", "is not a number"),
            (":+80", "is not a number"),
            ("[::1]", "missing port"),
            ("[::1", "missing ']'"),
            ("[::1]5000", "unexpected \"5000\" after ']'"),
            ("[::1]:", "missing port number"),
            ("[localhost]:80", "is not an IPv6 address"),
            ("[127.0.0.1]:80", "is not an IPv6 address"),
            ("[fe80::1%]:80", "invalid IPv6 zone"),
            ("[fe80::1%e th]:80", "invalid IPv6 zone"),
            ("a]:80", "unexpected '[' or ']'"),
            ("256.1.1.1:80", "is not an IPv4 address"),
            ("1.2.3:80", "is not an IPv4 address"),
            ("host name:80", "is not a host name"),
            ("-host:80", "is not a host name"),
            ("a..b:80", "is not a host name"),
            ("héllo:80", "is not a host name"),
            (" :5000", "is not a host name"),
        ] {
            let got = check_tcp_listen_addr(addr).expect_err(addr);
            assert!(got.contains(why), "{addr:?}: {got}");
        }
    }

    #[test]
    fn long_labels_and_names() {
        let label = "a".repeat(63);
        assert_eq!(check_tcp_listen_addr(&format!("{label}:1")), Ok(()));
        assert!(check_tcp_listen_addr(&format!("{label}a:1")).is_err());
        let name = vec!["a".repeat(50); 5].join(".");
        assert!(name.len() > 253);
        assert!(check_tcp_listen_addr(&format!("{name}:1")).is_err());
    }
}
