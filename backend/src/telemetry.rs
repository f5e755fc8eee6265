//! Per-request telemetry: a request id (the client's `X-Request-Id` when it is sane, else a
//! new one) echoed back and carried by the request's span, which names the route template;
//! and the HTTP metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::metrics::Metrics;

pub use todo_service::runtime::REQUEST_ID;

/// The request id of the request being served (in the request's extensions).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Middleware: request id, span, access log line and HTTP metrics.
pub async fn track(State(metrics): State<Arc<Metrics>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = todo_service::runtime::request_id(req.headers());
    // Unmatched paths share one label so that scanners cannot grow the metric families.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().as_str().to_string();
    req.extensions_mut().insert(RequestId(id.clone()));
    let quiet = matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics");
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let mut resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    metrics.observe_http(&route, &method, status, elapsed);
    span.in_scope(|| {
        let ms = elapsed.as_secs_f64() * 1000.0;
        if quiet {
            tracing::debug!(status, elapsed_ms = ms, "served");
        } else if status == 503 {
            // Shedding load or missing configuration: expected states, not faults.
            tracing::warn!(status, elapsed_ms = ms, "served");
        } else if status >= 500 {
            tracing::error!(status, elapsed_ms = ms, "served");
        } else {
            tracing::info!(status, elapsed_ms = ms, "served");
        }
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}
