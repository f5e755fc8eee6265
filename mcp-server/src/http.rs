//! `todo-mcp http`: the tools over streamable HTTP at `/mcp`, stateless so any replica
//! serves any request, with Host and Origin validation and graceful shutdown. With
//! authentication configured every `/mcp` request carries a verified bearer token whose `sub`
//! is the caller; the RFC 9728 protected-resource metadata tells clients where to get one.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::tools::{CHANGE_GROUP_HEADER, Caller, ChangeGroup, Identity, TaskTools};
use todo_core::auth::{AuthError, Verifier, bearer_token};
use todo_core::tasks::TaskStore;
use todo_service::runtime::host_allowed;

/// Largest JSON-RPC request body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Settings of the HTTP transport.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    /// The user served when no authentication is configured.
    pub open_user: String,
    /// Token verification; `None` serves `open_user` unauthenticated (loopback only).
    pub auth: Option<Verifier>,
    /// Public base URL (`MCP_PUBLIC_URL`, e.g. `https://mcp.example.com`) named in the
    /// protected-resource metadata; unset, it is derived from an accepted `Host`.
    pub public_url: Option<String>,
    /// Authorization servers named in the metadata (`AUTH_ISSUER`).
    pub authorization_servers: Vec<String>,
}

/// Path of the RFC 9728 protected-resource metadata document.
pub const RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// What the authentication layer needs, shared by every request.
struct Gate {
    settings: HttpSettings,
}

impl Gate {
    /// The base URL clients reach this server at.
    fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(u) = &self.settings.public_url {
            return u.trim_end_matches('/').to_string();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| host_allowed(h, &self.settings.allowed_hosts));
        format!("http://{}", host.unwrap_or("localhost"))
    }

    fn unauthorized(&self, headers: &HeaderMap, err: &AuthError) -> Response {
        tracing::debug!(reason = %err, "MCP request refused");
        let metadata = format!("{}{RESOURCE_METADATA_PATH}", self.base_url(headers));
        let challenge = err.www_authenticate(&[("resource_metadata", &metadata)]);
        let body = serde_json::json!({
            "error": err.oauth_code().unwrap_or("invalid_request"),
            "error_description": err.to_string(),
        });
        let mut resp = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }

    fn metadata(&self, headers: &HeaderMap) -> Response {
        if self.settings.auth.is_none() {
            return StatusCode::NOT_FOUND.into_response();
        }
        let base = self.base_url(headers);
        axum::Json(serde_json::json!({
            "resource": format!("{base}/mcp"),
            "authorization_servers": self.settings.authorization_servers,
            "bearer_methods_supported": ["header"],
            "resource_name": "todo-mcp",
        }))
        .into_response()
    }
}

/// Names the caller of an `/mcp` request: the verified `sub`, or the open user.
async fn authenticate(gate: Arc<Gate>, mut req: Request, next: Next) -> Response {
    let caller = match &gate.settings.auth {
        None => gate.settings.open_user.clone(),
        Some(verifier) => {
            let verified = match bearer_token(req.headers()) {
                Ok(token) => verifier.verify(token).await,
                Err(e) => Err(e),
            };
            match verified {
                Ok(user) => user.sub.into(),
                Err(e) => return gate.unauthorized(req.headers(), &e),
            }
        }
    };
    req.extensions_mut().insert(Caller(caller));
    if let Some(group) = req
        .headers()
        .get(CHANGE_GROUP_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(ChangeGroup::from_header)
    {
        req.extensions_mut().insert(group);
    }
    next.run(req).await
}

/// The `/mcp` router (plus `/healthz`) over a store, traced as a whole ([`traced`]).
pub fn router(
    store: Arc<dyn TaskStore>,
    settings: HttpSettings,
    shutdown: CancellationToken,
) -> Router {
    traced(routes(store, settings, shutdown))
}

/// Request id, span, access log line and the error shape around every request of `app`,
/// including its fallback and 405s (`todo_service::trace`). Applied last, over every route.
pub fn traced(app: Router) -> Router {
    app.route_layer(axum::middleware::from_fn(
        todo_service::trace::matched_route,
    ))
    .layer(axum::middleware::from_fn_with_state(
        todo_service::trace::Trace {
            quiet: &["/healthz", "/readyz"],
            observe: None,
        },
        todo_service::trace::trace,
    ))
}

/// The routes of [`router`], without the request layer.
pub fn routes(
    store: Arc<dyn TaskStore>,
    settings: HttpSettings,
    shutdown: CancellationToken,
) -> Router {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_allowed_hosts(settings.allowed_hosts.clone())
        .with_allowed_origins(settings.allowed_origins.clone())
        .enforce_origin_validation()
        .with_max_request_body_bytes(MAX_BODY_BYTES)
        .with_cancellation_token(shutdown.child_token());
    let service = StreamableHttpService::new(
        move || Ok(TaskTools::new(store.clone(), Identity::PerRequest)),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    let gate = Arc::new(Gate { settings });
    let for_auth = gate.clone();
    let metadata = move |headers: HeaderMap| {
        let gate = gate.clone();
        async move { gate.metadata(&headers) }
    };
    Router::new()
        .route_service("/mcp", service)
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| authenticate(for_auth.clone(), req, next),
        ))
        .route("/healthz", get(|| async { "ok" }))
        .route(RESOURCE_METADATA_PATH, get(metadata.clone()))
        .route(&format!("{RESOURCE_METADATA_PATH}/mcp"), get(metadata))
}

/// Adds `GET /readyz` to `app`: 200 while `db` answers, 503 (JSON) while it does not, so a
/// balancer stops sending tool calls that could only fail; it recovers by itself.
pub fn with_readiness(app: Router, db: todo_core::db::Database) -> Router {
    app.route(
        "/readyz",
        get(move || {
            let db = db.clone();
            async move {
                let timeout = std::time::Duration::from_secs(2);
                match tokio::time::timeout(timeout, db.ping()).await {
                    Ok(Ok(())) => (StatusCode::OK, "ready").into_response(),
                    _ => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [(header::RETRY_AFTER, "2")],
                        axum::Json(serde_json::json!({"error": {
                            "code": "database_unavailable",
                            "message": "The tool server cannot reach its database right now."
                        }})),
                    )
                        .into_response(),
                }
            }
        }),
    )
}

/// Serves until `shutdown` is cancelled, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with(
        listener,
        app,
        shutdown,
        todo_service::serve::ServeLimits::default(),
    )
    .await
}

/// [`serve`] with explicit header-timeout and connection bounds.
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    limits: todo_service::serve::ServeLimits,
) -> std::io::Result<()> {
    todo_service::serve::serve(listener, app, shutdown, limits).await
}

/// Binds `addr`, logging the address actually bound (port 0 picks one).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let l = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    Ok(l)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod readiness_tests {
    use super::*;
    use todo_core::db::{Database, DbOptions};

    async fn status_of(app: Router) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let r = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
        server.abort();
        r.status().as_u16()
    }

    #[tokio::test]
    async fn readyz_follows_the_database() {
        // A plain file database: this crate's unit tests cannot use todo-test-support,
        // which links the library's non-test build.
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("todo.db").display());
        let db = Database::connect(Some(&url), &DbOptions::default())
            .await
            .unwrap();
        assert_eq!(
            status_of(with_readiness(Router::new(), db.clone())).await,
            200
        );
        db.close().await;
        assert_eq!(
            status_of(with_readiness(Router::new(), db.clone())).await,
            503
        );
    }
}
