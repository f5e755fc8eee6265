//! The request layer both services put around their whole router: a request id (the
//! client's `X-Request-Id` when it is sane, else a new one) echoed on every response and
//! carried by the request's span, one access log line per request, and the API's error
//! shape for the answers axum writes itself (no route: 404, wrong method: 405) — so a
//! fallback, a 405 or a CORS preflight is traced like any routed request.
//!
//! The route template is known only once the router has matched; [`matched_route`], a route
//! layer, names it in the span and hands it back in the response's extensions. Unmatched
//! paths share one label (`unmatched`), so scanners cannot grow a metric family.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::HttpBody as _;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::runtime::{REQUEST_ID, request_id};

/// The request id of the request being served (in the request's extensions).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The route template that served a response (in the response's extensions).
#[derive(Debug, Clone)]
pub struct Route(pub String);

/// One served request, as the access log and the metrics see it.
#[derive(Debug)]
pub struct Served<'a> {
    pub route: &'a str,
    pub method: &'a Method,
    pub status: u16,
    pub elapsed: Duration,
}

/// Called once per served request.
pub type Observer = Arc<dyn Fn(&Served<'_>) + Send + Sync>;

/// What a service adds to the shared layer.
#[derive(Clone, Default)]
pub struct Trace {
    /// Routes logged at debug (probes polled every few seconds).
    pub quiet: &'static [&'static str],
    /// Called once per request, after the answer (the backend's HTTP metrics).
    pub observe: Option<Observer>,
}

/// Route layer: names the matched route template in the request's span and the response.
pub async fn matched_route(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    if let Some(r) = &route {
        tracing::Span::current().record("route", r.as_str());
    }
    let mut resp = next.run(req).await;
    if let Some(r) = route {
        resp.extensions_mut().insert(Route(r));
    }
    resp
}

/// Middleware around the whole router: request id, span, access log line, error shape.
pub async fn trace(State(t): State<Trace>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(req.headers());
    let method = req.method().clone();
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %method,
        route = tracing::field::Empty
    );
    let resp = next.run(req).instrument(span.clone()).await;
    let mut resp = error_shape(resp);
    let route = resp
        .extensions()
        .get::<Route>()
        .map_or("unmatched", |r| r.0.as_str())
        .to_string();
    span.record("route", route.as_str());
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    if let Some(observe) = &t.observe {
        observe(&Served {
            route: &route,
            method: &method,
            status,
            elapsed,
        });
    }
    span.in_scope(|| {
        let ms = elapsed.as_secs_f64() * 1000.0;
        if t.quiet.contains(&route.as_str()) {
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

/// An empty 404 or 405 (axum's own answers) in the API's `{"error": {"code", "message"}}`
/// shape; every other response as it is. Headers (such as `Allow`) are kept.
fn error_shape(resp: Response) -> Response {
    let status = resp.status();
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "route not found"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this route does not take that method; see the Allow header",
        ),
        _ => return resp,
    };
    if resp.headers().contains_key(header::CONTENT_TYPE)
        || resp.body().size_hint().exact() != Some(0)
    {
        return resp;
    }
    let (mut parts, _) = resp.into_parts();
    let body = axum::Json(serde_json::json!({ "error": { "code": code, "message": message } }));
    let fresh = (status, body).into_response();
    let (fresh_parts, body) = fresh.into_parts();
    parts.headers.extend(fresh_parts.headers);
    Response::from_parts(parts, body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        Router::new()
            .route("/here/{id}", get(|| async { "ok" }))
            .route_layer(axum::middleware::from_fn(matched_route))
            .layer(axum::middleware::from_fn_with_state(
                Trace::default(),
                trace,
            ))
    }

    async fn send(method: Method, path: &str) -> Response {
        app()
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(path)
                    .header(REQUEST_ID, "mine-1")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
    }

    async fn error_code(resp: Response) -> String {
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["error"]["code"].as_str().unwrap().to_string()
    }

    #[tokio::test]
    async fn a_routed_request_keeps_its_body_and_gets_the_id_and_route() {
        let r = send(Method::GET, "/here/7").await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[REQUEST_ID], "mine-1");
        assert_eq!(r.extensions().get::<Route>().unwrap().0, "/here/{id}");
    }

    #[tokio::test]
    async fn a_fallback_404_is_shaped_and_carries_the_id() {
        let r = send(Method::GET, "/nowhere").await;
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()[REQUEST_ID], "mine-1");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(error_code(r).await, "not_found");
    }

    #[tokio::test]
    async fn a_405_is_shaped_keeps_allow_and_carries_the_id() {
        let r = send(Method::DELETE, "/here/7").await;
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()[REQUEST_ID], "mine-1");
        assert!(r.headers().contains_key(header::ALLOW));
        assert_eq!(error_code(r).await, "method_not_allowed");
    }
}
