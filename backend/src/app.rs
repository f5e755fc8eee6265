//! Building the application from settings: database, stores, tools, model and router.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use todo_mcp::db::{Database, DbOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::agent::Agent;
use crate::agent::llm::Llm;
use crate::agent::toolbox::Toolbox;
use crate::api::{self, AppState};
use crate::config::Settings;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::conversation_store;
use crate::telemetry;

/// Connects the database (migrating it) and assembles the state.
pub async fn build_state(settings: &Settings) -> anyhow::Result<AppState> {
    let db = Database::connect(settings.database_url.as_deref(), &DbOptions::from_env()?).await?;
    db.migrate().await?;
    let tasks = db.task_store();
    let toolbox = match &settings.mcp_server_url {
        Some(url) => Toolbox::remote(url).await?,
        None => Toolbox::in_process(tasks.clone()).await?,
    };
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
    };
    Ok(AppState {
        db,
        agent: Arc::new(agent),
        conversations,
        max_message_chars: settings.max_message_chars,
        metrics,
    })
}

/// The router.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/api/{user_id}/chat", post(api::chat))
        .route("/api/{user_id}/conversations", get(api::conversations))
        .route(
            "/api/{user_id}/conversations/{id}/messages",
            get(api::messages),
        )
        .route("/api/{user_id}/tasks", get(api::tasks))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .route("/openapi.json", get(api::openapi))
        .route_layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            telemetry::track,
        ))
        .fallback(|| async { ApiError::not_found("route") })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Serves on `listener` until `shutdown`, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("HTTP server failed")
}

/// Binds `addr`.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}
