//! A webhook receiver for registry notifications.
//!
//! ```text
//! cargo run --example receiver -- --listen 127.0.0.1:5055 [--out events.jsonl] [--status 200]
//! ```
//!
//! Each POST body (an envelope) is written as one compact JSON line — key order
//! and values exactly as sent — to stdout, or appended to `--out`. Answers
//! `--status` (default 200). Serves HTTP/1.1 with keep-alive; fast enough to be
//! the endpoint of the load benchmarks.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};

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
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut listen = None;
    let mut out = None;
    let mut status = StatusCode::OK;
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--listen" => listen = Some(value("--listen")?.parse().map_err(|e| format!("--listen: {e}"))?),
            "--out" => out = Some(value("--out")?),
            "--status" => {
                status = value("--status")?
                    .parse::<u16>()
                    .ok()
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .ok_or("--status: not an HTTP status")?
            }
            "-h" | "--help" => {
                return Err("usage: receiver --listen 127.0.0.1:PORT [--out FILE] [--status CODE]".into())
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        listen: listen.ok_or("--listen 127.0.0.1:PORT is required")?,
        out,
        status,
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
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let sink = sink.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let sink = sink.clone();
                async move {
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    if !body.is_empty() {
                        let mut line = compact(&body);
                        line.push(b'\n');
                        if let Ok(mut w) = sink.lock() {
                            let _ = w.write_all(&line).and_then(|_| w.flush());
                        }
                    }
                    let mut resp = Response::new(Full::new(Bytes::new()));
                    *resp.status_mut() = status;
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
