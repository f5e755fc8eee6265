//! Operating the service: health, readiness, metrics, the API description, and the chat
//! page with its assets — all outside `/api` and without a token.

use axum::extract::State;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{AppState, Area, Operation};
use crate::error::{ApiError, ErrorBody};
use crate::openapi::text_ok;

/// The public operations.
pub const OPERATIONS: &[Operation] = &[
    Operation {
        method: Method::GET,
        path: "/healthz",
        area: Area::Public,
        route: |m| axum::routing::on(m, healthz),
        doc: |_| json!({ "operationId": "healthz", "responses": text_ok("The process is alive") }),
    },
    Operation {
        method: Method::GET,
        path: "/readyz",
        area: Area::Public,
        route: |m| axum::routing::on(m, readyz),
        doc: |d| {
            let mut responses = text_ok("The database answers");
            if let Some(m) = responses.as_object_mut() {
                m.extend(d.errors(&[503]));
            }
            json!({ "operationId": "readyz", "responses": responses })
        },
    },
    Operation {
        method: Method::GET,
        path: "/metrics",
        area: Area::Public,
        route: |m| axum::routing::on(m, metrics),
        doc: |_| json!({ "operationId": "metrics", "responses": { "200": { "description": "Prometheus / OpenMetrics text", "content": { "application/openmetrics-text": { "schema": { "type": "string" } } } } } }),
    },
    Operation {
        method: Method::GET,
        path: "/openapi.json",
        area: Area::Public,
        route: |m| axum::routing::on(m, openapi),
        doc: |_| json!({ "operationId": "openapi", "responses": { "200": { "description": "This document", "content": { "application/json": { "schema": { "type": "object" } } } } } }),
    },
    Operation {
        method: Method::GET,
        path: "/",
        area: Area::Public,
        route: |m| axum::routing::on(m, crate::page::index),
        doc: |_| json!({ "operationId": "chatPage", "summary": "The chat page", "responses": { "200": { "description": "The chat page (HTML; its script and style sheet are under /assets/)", "content": { "text/html": { "schema": { "type": "string" } } } } } }),
    },
    Operation {
        method: Method::GET,
        path: "/assets/{file}",
        area: Area::Public,
        route: |m| axum::routing::on(m, crate::page::file),
        doc: |d| {
            json!({ "operationId": "pageAsset", "summary": "The chat page's script and style sheet",
                "parameters": [{ "name": "file", "in": "path", "required": true, "schema": { "type": "string", "enum": ["app.js", "app.css"] } }],
                "responses": {
                    "200": { "description": "The file", "content": { "text/javascript": { "schema": { "type": "string" } }, "text/css": { "schema": { "type": "string" } } } },
                    "404": { "description": "No such file", "content": d.json_content::<ErrorBody>() } } })
        },
    },
];

/// `GET /openapi.json`: the API description.
pub async fn openapi() -> Response {
    static DOC: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| super::document().to_string());
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        DOC.as_str(),
    )
        .into_response()
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics.render(state.db.pool_stats());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the database answers and the process is not shutting down.
pub async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state.lifecycle.ready().await?;
    Ok("ready")
}
