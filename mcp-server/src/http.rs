//! `todo-mcp http`: the tools over streamable HTTP at `/mcp`, stateless so any replica
//! serves any request, with Host and Origin validation and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::tasks::TaskStore;
use crate::tools::{Caller, Identity, TaskTools};

/// Largest JSON-RPC request body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Settings of the HTTP transport.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    /// The user served when no authentication is configured.
    pub open_user: String,
}

/// The `/mcp` router (plus `/healthz`) over a store.
pub fn router(
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
    let user = Caller(settings.open_user.clone());
    Router::new()
        .route_service("/mcp", service)
        .layer(axum::middleware::from_fn(
            move |mut req: Request, next: Next| {
                let user = user.clone();
                async move {
                    req.extensions_mut().insert(user);
                    let resp: Response = next.run(req).await;
                    resp
                }
            },
        ))
        .route("/healthz", get(|| async { "ok" }))
}

/// Serves until `shutdown` is cancelled, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Binds `addr`, logging the address actually bound (port 0 picks one).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let l = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    Ok(l)
}
