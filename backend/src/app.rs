//! Building the application from settings: database, stores, tools, model and router.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use todo_core::auth::ServiceCredential;
use todo_core::conversations::conversation_store;
use todo_core::db::{Database, DbOptions};
use todo_service::serve::ServeLimits;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::access::{self, Access};
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
    let db = Database::connect(settings.database_url.as_deref(), &DbOptions::from_env()?).await?;
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

/// The router.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let access = state.access.clone();
    let router = Router::new()
        .route("/api/{user_id}/chat", post(api::chat))
        .route("/api/{user_id}/conversations", get(api::conversations))
        .route(
            "/api/{user_id}/conversations/{id}/messages",
            get(api::messages),
        )
        .route("/api/{user_id}/tasks", get(api::tasks))
        .route("/api/{user_id}/usage", get(api::usage::usage))
        // Refused fast (503, Retry-After) while draining or while the database is away.
        .route_layer(axum::middleware::from_fn_with_state(
            state.lifecycle.clone(),
            crate::lifecycle::gate,
        ))
        // Every route above needs a token naming the path's user; those below are public.
        .route_layer(axum::middleware::from_fn_with_state(
            state.access.clone(),
            access::require_owner,
        ))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .route("/openapi.json", get(api::openapi))
        .route("/", get(crate::page::index))
        .route("/assets/{file}", get(crate::page::file))
        .route_layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            telemetry::track,
        ))
        .fallback(|| async { ApiError::not_found("route") })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state);
    // Outermost: a request from a foreign Host or web page goes no further.
    access
        .with_cors(router)
        .layer(axum::middleware::from_fn_with_state(
            access.guard.clone(),
            crate::guard::check,
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
