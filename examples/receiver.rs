//! A webhook receiver for registry notifications.
//!
//! ```text
//! cargo run --example receiver -- --listen 127.0.0.1:5055 [--out events.jsonl] [--status 200]
//!     [--signing-secret whsec_… ...]
//! ```
//!
//! Each POST body (an envelope) is written as one compact JSON line — key order
//! and values exactly as sent — to stdout, or appended to `--out`. Answers
//! `--status` (default 200). Serves HTTP/1.1 with keep-alive; fast enough to be
//! the endpoint of the load benchmarks.
//!
//! With `--signing-secret` (repeatable: any of them may match), every request must carry a
//! valid [Standard Webhooks](registry_notify::signing) signature: one that does not is
//! answered `401 Unauthorized`, reported on stderr and not written out. The secret is
//! also read from `RECEIVER_SIGNING_SECRET` so it need not appear in a process list.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

/// Removes insignificant whitespace from JSON without reordering anything.
fn compact(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let (mut in_str, mut escaped) = (false, false);
    for &c in json {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_str = false;
            }
        } else if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
            if c == b'"' {
                in_str = true;
            }
            out.push(c);
        }
    }
    out
}

struct Args {
    listen: SocketAddr,
    out: Option<String>,
    status: StatusCode,
    signing_secrets: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut listen = None;
    let mut out = None;
    let mut status = StatusCode::OK;
    let mut signing_secrets: Vec<String> = std::env::var("RECEIVER_SIGNING_SECRET").into_iter().collect();
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--listen" => listen = Some(value("--listen")?.parse().map_err(|e| format!("--listen: {e}"))?),
            "--out" => out = Some(value("--out")?),
            "--signing-secret" => signing_secrets.push(value("--signing-secret")?),
            "--status" => {
                status = value("--status")?
                    .parse::<u16>()
                    .ok()
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .ok_or("--status: not an HTTP status")?
            }
            "-h" | "--help" => {
                return Err(
                    "usage: receiver --listen 127.0.0.1:PORT [--out FILE] [--status CODE] [--signing-secret whsec_...]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        listen: listen.ok_or("--listen 127.0.0.1:PORT is required")?,
        out,
        status,
        signing_secrets,
    })
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let sink: Box<dyn Write + Send> = match &args.out {
        Some(path) => match std::fs::OpenOptions::new().create(true).append(true).open(path) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("--out {path}: {e}");
                std::process::exit(1);
            }
        },
        None => Box::new(std::io::stdout()),
    };
    let sink = Arc::new(Mutex::new(std::io::BufWriter::new(sink)));
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("listen {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    eprintln!(
        "receiver listening on http://{}",
        listener.local_addr().expect("bound")
    );
    let status = args.status;
    let verifier = if args.signing_secrets.is_empty() {
        None
    } else {
        match registry_notify::signing::Verifier::new(&args.signing_secrets) {
            Ok(v) => Some(Arc::new(v)),
            Err(e) => {
                eprintln!("--signing-secret: {e}");
                std::process::exit(2);
            }
        }
    };
    example_registry::receiver::serve(listener, move |parts, body| {
        let sink = sink.clone();
        let verifier = verifier.clone();
        async move {
            if let Some(verifier) = &verifier {
                if let Err(e) = verifier.verify(&parts.headers, &body) {
                    eprintln!("rejected {} {}: signature: {e}", parts.method, parts.uri.path());
                    let mut resp = Response::new(Full::new(Bytes::from_static(b"bad signature\n")));
                    *resp.status_mut() = StatusCode::UNAUTHORIZED;
                    return resp;
                }
            }
            if !body.is_empty() {
                let mut line = compact(&body);
                line.push(b'\n');
                if let Ok(mut w) = sink.lock() {
                    let _ = w.write_all(&line).and_then(|_| w.flush());
                }
            }
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = status;
            resp
        }
    })
    .await;
}
