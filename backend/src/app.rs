//! Building the application from settings: database, stores, tools, model and router.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use todo_core::auth::ServiceCredential;
use todo_core::conversations::conversation_store;
use todo_core::db::Database;
use todo_service::serve::ServeLimits;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::access::Access;
use crate::agent::Agent;
use crate::agent::llm::Llm;
use crate::agent::toolbox::Toolbox;
use crate::api::{self, AppState};
use crate::config::Settings;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::telemetry;

/// Connects the database (migrating it) and assembles the state.
pub async fn build_state(settings: &Settings) -> anyhow::Result<AppState> {
    let db = Database::connect(settings.database_url.as_deref(), &settings.db).await?;
    db.migrate().await?;
    let tasks = db.task_store();
    for w in crate::preflight::check_auth(&settings.access)? {
        tracing::warn!("{w}");
    }
    let toolbox = match &settings.mcp_server_url {
        Some(url) => {
            let secret = settings.access.mcp_service_secret.as_ref().context(
                "MCP_SERVER_URL is set but MCP_SERVICE_SECRET is not: the backend authenticates \
                 to todo-mcp with a credential signed by that shared secret (set the same value \
                 on both)",
            )?;
            for w in crate::preflight::check_remote_mcp(url, &settings.access)? {
                tracing::warn!("{w}");
            }
            // Valid for one turn: a session is opened per turn.
            let ttl = settings.limits.turn_timeout + std::time::Duration::from_secs(60);
            Toolbox::remote(url, ServiceCredential::new(secret, ttl)).await?
        }
        None => Toolbox::in_process(tasks.clone()).await?,
    };
    // A turn's place in the per-user cap outlives a dead process by at most its deadline,
    // the storage grace and a margin.
    let hold = settings.limits.turn_timeout + std::time::Duration::from_secs(60);
    let access = Arc::new(
        Access::new(&settings.access)?
            .counted_in(&db, settings.access.rate_limit_per_minute)
            .turns_counted_in(&db, settings.access.max_turns_per_user, hold),
    );
    if let Some(v) = access.verifier() {
        v.warm_up().await;
    }
    let llm = match &settings.llm {
        Some(c) => Some(Llm::new(c.clone()).context("building the LLM client")?),
        None => {
            tracing::warn!(
                "no LLM configured (OPENAI_API_KEY, OPENAI_BASE_URL, LLM_MODEL): chat turns will answer 503"
            );
            None
        }
    };
    let conversations = conversation_store(&db);
    let metrics = Arc::new(Metrics::new());
    let agent = Agent {
        llm,
        toolbox,
        conversations: conversations.clone(),
        tasks,
        prompt: settings.prompt.clone(),
        limits: settings.limits.clone(),
        metrics: metrics.clone(),
        prices: Arc::new(settings.prices.clone()),
    };
    let lifecycle = crate::lifecycle::Lifecycle::start(db.clone());
    Ok(AppState {
        lifecycle,
        db,
        agent: Arc::new(agent),
        conversations,
        max_message_chars: settings.max_message_chars,
        metrics,
        access,
        idempotency_ttl: settings.retention.idempotency_ttl,
    })
}

/// The application: every operation of `crate::api`, the Host/Origin guard and CORS, and
/// outermost the request layer, so that everything — a fallback 404, a 405, a refused Host,
/// a CORS preflight — gets a request id, an access log line and the error shape.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let access = state.access.clone();
    let metrics = state.metrics.clone();
    let router = api::routes(&state)
        .route_layer(axum::middleware::from_fn(
            todo_service::trace::matched_route,
        ))
        .fallback(|| async { ApiError::not_found("route") })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state);
    // A request from a foreign Host or web page goes no further than the guard.
    access
        .with_cors(router)
        .layer(axum::middleware::from_fn_with_state(
            access.guard.clone(),
            crate::guard::check,
        ))
        .layer(axum::middleware::from_fn_with_state(
            telemetry::trace(metrics),
            todo_service::trace::trace,
        ))
}

/// Serves on `listener` until `shutdown`, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    serve_with(listener, app, shutdown, ServeLimits::default()).await
}

/// [`serve`] with explicit header-timeout and connection bounds (slow clients are cut off).
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    limits: ServeLimits,
) -> anyhow::Result<()> {
    todo_service::serve::serve(listener, app, shutdown, limits)
        .await
        .context("HTTP server failed")
}

/// Binds `addr`.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}
