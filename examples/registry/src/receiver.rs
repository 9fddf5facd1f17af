//! A webhook receiver: the endpoint of the registry's main job, which prints every envelope
//! it gets, and the serving loop of the root crate's `receiver` example.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// Serves every connection `listener` accepts (HTTP/1.1 with keep-alive), answering each
/// request with what `handler` makes of its head and whole body. Runs until dropped.
pub async fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(http::request::Parts, Bytes) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let handler = handler.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    Ok::<_, Infallible>(handler(parts, body).await)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// [`serve`] on 127.0.0.1 at a free port, on a thread of its own with a one-thread runtime (a
/// receiver that takes no thread of its senders', as the benches want it); returns its
/// address.
pub fn serve_on_thread<F, Fut>(handler: F) -> std::io::Result<SocketAddr>
where
    F: Fn(http::request::Parts, Bytes) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("receiver".into())
        .spawn(move || {
            runtime.block_on(async move {
                if let Ok(listener) = TcpListener::from_std(listener) {
                    serve(listener, handler).await;
                }
            })
        })?;
    Ok(addr)
}

/// Starts the main job's receiver on `addr`: it prints each envelope it receives to stdout
/// (after a line with the request line and content type) and answers 200. Returns the
/// address it listens on.
pub async fn start_printing(addr: &str) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(serve(listener, |parts, body| async move {
        use std::io::Write;
        let line = format!(
            "receiver: {} {} ({})",
            parts.method,
            parts.uri,
            parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("no content type")
        );
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.write_all(&body);
        let _ = writeln!(out);
        let _ = out.flush();
        Response::new(Full::new(Bytes::new()))
    }));
    Ok(bound)
}
