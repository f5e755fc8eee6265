//! Per-request telemetry: the shared request layer of `todo_service::trace` (request id, span,
//! access log line, error shape), fed into this service's HTTP metrics.

use std::sync::Arc;

use axum::http::Method;
use todo_service::trace::{Served, Trace};

use crate::metrics::Metrics;

pub use todo_service::runtime::REQUEST_ID;
pub use todo_service::trace::RequestId;

/// The request layer's settings for the backend: probes and scrapes log at debug; every
/// request, routed or not, is counted by route template.
pub fn trace(metrics: Arc<Metrics>) -> Trace {
    Trace {
        quiet: &["/healthz", "/readyz", "/metrics"],
        observe: Some(Arc::new(move |s: &Served<'_>| {
            // A made-up method must not grow the metric family either.
            let method = match *s.method {
                Method::GET
                | Method::POST
                | Method::HEAD
                | Method::OPTIONS
                | Method::PUT
                | Method::PATCH
                | Method::DELETE => s.method.as_str(),
                _ => "other",
            };
            metrics.observe_http(s.route, method, s.status, s.elapsed);
        })),
    }
}
