//! The `/notifications/` routes of the debug listener: what each endpoint is doing, and the two
//! things an operator does to it.
//!
//! | route | answer |
//! |---|---|
//! | `GET /notifications/` | the status page: one self-contained HTML page (no outside assets) showing each endpoint's state, queue, breaker, last error and recent deliveries, with ping and redeliver buttons, refreshing itself every 2 s; it asks for the token (or takes it from `#token=…`) and sends it with its calls |
//! | `GET /notifications/status` | `{"endpoints": [EndpointStatus, …]}` |
//! | `GET /notifications/endpoints/{name}/deliveries` | `{"deliveries": [RecentDelivery, …]}`, oldest first |
//! | `GET /notifications/endpoints/{name}/deadletters` | `{"deadletters": [DeadEvent, …]}`, oldest first |
//! | `POST /notifications/endpoints/{name}/redeliver` | `{"redelivered": N}`: all kept dead letters, or `?id=<event id>`, or `?since=<RFC 3339 time>` |
//! | `POST /notifications/endpoints/{name}/ping` | the `PingOutcome`; `200` when the endpoint accepted it, else `502` |
//!
//! An unknown endpoint is `404`, a bad query `400`, a redelivery the endpoint refuses `503` (its
//! events stay kept). With `http.debug.token` every route here but the page (which holds no data)
//! answers `401` (with `WWW-Authenticate: Bearer`) unless the request carries
//! `Authorization: Bearer <token>`.

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use registry_notify::endpoint::{EndpointHandle, Redeliver, RedeliverError};
use registry_notify::metrics::LastError;
use registry_notify::Timestamp;
use serde::Serialize;
use serde_json::json;

use super::Debug;

/// One endpoint as `/notifications/status` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct EndpointStatus {
    /// The endpoint's name.
    pub name: String,
    /// Its URL, credentials (user info, query values) redacted.
    pub url: String,
    /// `ok`, or `failing` while the breaker is open (or the endpoint backs off).
    pub state: &'static str,
    /// Events queued or in flight.
    pub pending: u64,
    /// Lanes delivering at once (`concurrency`, plus lanes of an earlier run still draining).
    pub lanes: usize,
    /// Events in an HTTP attempt under way.
    pub in_flight: u64,
    /// Events delivered.
    pub delivered: u64,
    /// Attempts that failed: answered with a failure status, or no answer (transport error,
    /// timeout).
    pub failed: u64,
    /// Events given up on and handed to the dead-letter file.
    pub dead_lettered: u64,
    /// Dead-lettered events kept for redelivery.
    pub dead_letters_kept: usize,
    /// Events lost (queue overflow, a damaged or unwritable durable queue).
    pub dropped: u64,
    /// When an attempt last succeeded (`null` before the first).
    pub last_success: Option<Timestamp>,
    /// The last failed attempt: `{"at": …, "error": …}` (`null` if none failed).
    pub last_error: Option<LastError>,
    /// `open` while the endpoint is failing, else `closed`.
    pub breaker: &'static str,
    /// Bytes of a durable queue's segment files (`null` for an in-memory queue).
    pub queue_bytes: Option<u64>,
}

impl EndpointStatus {
    /// The status of the endpoint `handle` drives.
    pub fn of(handle: &EndpointHandle) -> Self {
        let m = handle.metrics();
        EndpointStatus {
            state: if m.breaker_open { "failing" } else { "ok" },
            breaker: if m.breaker_open { "open" } else { "closed" },
            failed: m.failures.saturating_add(m.errors),
            queue_bytes: handle.queue_bytes(),
            dead_letters_kept: handle.dead_letters().len(),
            lanes: handle.lanes(),
            name: m.name,
            url: m.url,
            pending: m.pending,
            in_flight: m.in_flight,
            delivered: m.delivered,
            dead_lettered: m.dead_lettered,
            dropped: m.dropped,
            last_success: m.last_success,
            last_error: m.last_error,
        }
    }
}

/// The routes, behind the token check when a token is configured.
pub(super) fn routes(debug: &Debug) -> Router<Debug> {
    let router = Router::new()
        .route("/notifications/status", get(status))
        .route("/notifications/endpoints/{name}/deliveries", get(deliveries))
        .route("/notifications/endpoints/{name}/deadletters", get(dead_letters))
        .route("/notifications/endpoints/{name}/redeliver", post(redeliver))
        .route("/notifications/endpoints/{name}/ping", post(ping));
    let router = match &debug.token {
        Some(_) => router.route_layer(axum::middleware::from_fn_with_state(debug.clone(), require_token)),
        None => router,
    };
    router
        .route("/notifications/", get(status_page))
        .route("/notifications", get(status_page))
}

/// The status page (`status.html`), which loads nothing from elsewhere.
async fn status_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        include_str!("status.html"),
    )
        .into_response()
}

/// `401` unless the request carries `Authorization: Bearer <http.debug.token>`.
async fn require_token(State(debug): State<Debug>, request: Request, next: Next) -> Response {
    let Some(token) = &debug.token else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| bearer(v.as_bytes()));
    if given.is_some_and(|g| token.matches(g)) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"notifications\"")],
        Json(json!({ "error": "a bearer token is required (http.debug.token)" })),
    )
        .into_response()
}

/// The credentials of an `Authorization: Bearer …` value (the scheme in any case).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| rest.trim_ascii())
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn no_such_endpoint() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint")
}

async fn status(State(debug): State<Debug>) -> Response {
    let endpoints: Vec<EndpointStatus> = debug.endpoints.iter().map(EndpointStatus::of).collect();
    Json(json!({ "endpoints": endpoints })).into_response()
}

async fn deliveries(State(debug): State<Debug>, Path(name): Path<String>) -> Response {
    match debug.endpoint(&name) {
        Some(e) => Json(json!({ "deliveries": e.recent_deliveries() })).into_response(),
        None => no_such_endpoint(),
    }
}

async fn dead_letters(State(debug): State<Debug>, Path(name): Path<String>) -> Response {
    match debug.endpoint(&name) {
        Some(e) => Json(json!({ "deadletters": e.dead_letters() })).into_response(),
        None => no_such_endpoint(),
    }
}

async fn redeliver(
    State(debug): State<Debug>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(endpoint) = debug.endpoint(&name) else {
        return no_such_endpoint();
    };
    let which = match selection(query.as_deref().unwrap_or("")) {
        Ok(which) => which,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    match endpoint.redeliver(&which).await {
        Ok(n) => Json(json!({ "redelivered": n })).into_response(),
        Err(e @ RedeliverError::Unavailable(_)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// What `?id=` or `?since=` selects (nothing: all).
fn selection(query: &str) -> Result<Redeliver, String> {
    let mut which = Redeliver::All;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value).ok_or("a query value is not valid percent-encoded UTF-8")?;
        if which != Redeliver::All {
            return Err("give at most one of id and since".into());
        }
        which = match key {
            "id" if !value.is_empty() => Redeliver::Id(value),
            "since" => Redeliver::Since(
                value
                    .parse::<Timestamp>()
                    .map_err(|e| format!("since: {e} (an RFC 3339 time such as 2026-12-05T10:00:00Z)"))?,
            ),
            "id" => return Err("id must not be empty".into()),
            _ => return Err("unknown query parameter (expected id or since)".into()),
        };
    }
    Ok(which)
}

/// `%XX` escapes decoded; `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

async fn ping(State(debug): State<Debug>, Path(name): Path<String>) -> Response {
    let Some(endpoint) = debug.endpoint(&name) else {
        return no_such_endpoint();
    };
    match endpoint.ping().await {
        Some(outcome) if outcome.ok => Json(outcome).into_response(),
        Some(outcome) => (StatusCode::BAD_GATEWAY, Json(outcome)).into_response(),
        None => error(StatusCode::CONFLICT, "the endpoint is disabled"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_credentials() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b""), None);
    }

    #[test]
    fn redelivery_selections() {
        assert_eq!(selection(""), Ok(Redeliver::All));
        assert_eq!(selection("id=01a2-x"), Ok(Redeliver::Id("01a2-x".into())));
        assert_eq!(
            selection("since=2026-12-05T10%3A00%3A00%2B01%3A00"),
            Ok(Redeliver::Since("2026-12-05T09:00:00Z".parse().unwrap()))
        );
        for bad in [
            "id=",
            "since=yesterday",
            "id=a&since=2026-12-05T10:00:00Z",
            "what=1",
            "id=%zz",
            "id=%ff",
        ] {
            assert!(selection(bad).is_err(), "{bad}");
        }
    }
}
