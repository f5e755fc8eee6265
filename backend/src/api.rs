//! HTTP handlers: chat, the read endpoints, health and readiness.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use todo_core::conversations::{ConversationStore, Idempotency};
use todo_core::db::Database;
use todo_core::tasks::{ListFilter, StatusFilter, normalize_tag, validate_page, validate_query};
use tracing::Instrument;
use uuid::Uuid;

use crate::agent::events::WithEvents;
use crate::agent::{Agent, TurnError, TurnRequest, prompt};
use crate::error::{ApiError, ApiJson, ApiQuery};

pub mod usage;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub agent: Arc<Agent>,
    pub conversations: Arc<dyn ConversationStore>,
    pub max_message_chars: usize,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Authentication, rate and concurrency limits.
    pub access: Arc<crate::access::Access>,
    /// Readiness and draining (`crate::lifecycle`).
    pub lifecycle: Arc<crate::lifecycle::Lifecycle>,
}

/// Checks a user id from the path.
pub fn valid_user(raw: &str) -> Result<String, ApiError> {
    // Counted in characters, as the OpenAPI schema's maxLength is.
    if raw.is_empty() || raw.chars().count() > 128 || raw.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_user_id",
            "user_id must be 1 to 128 printable characters",
        ));
    }
    Ok(raw.to_string())
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw.trim()).map_err(|_| {
        ApiError::bad_request("invalid_conversation_id", "conversation_id must be a UUID")
    })
}

/// Body of `POST /api/{user_id}/chat`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ChatBody {
    /// What the person said (1 to MAX_MESSAGE_CHARS characters after trimming, 4000 by default).
    #[schemars(length(min = 1, max = 4000), pattern(r"\S"))]
    pub message: String,
    /// Continue this conversation (a UUID); omit to start a new one.
    #[serde(default)]
    #[schemars(with = "Option<Uuid>")]
    pub conversation_id: Option<String>,
    /// IANA time zone of the person, e.g. "Europe/Paris" (default UTC).
    #[serde(default)]
    #[schemars(schema_with = "timezone_schema")]
    pub timezone: Option<String>,
}

fn timezone_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
    schemars::json_schema!({ "type": ["string", "null"], "enum": names.into_iter().map(Some).chain([None]).collect::<Vec<_>>() })
}

const IDEMPOTENCY_HEADER: &str = "idempotency-key";

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
        })?;
    Ok(Some(s.to_string()))
}

fn request_hash(body: &ChatBody) -> String {
    let mut h = Sha256::new();
    for part in [
        body.message.as_str(),
        body.conversation_id.as_deref().unwrap_or(""),
        body.timezone.as_deref().unwrap_or(""),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    format!("{:x}", h.finalize())
}

fn json_response(status: StatusCode, body: String, replayed: bool) -> Response {
    let mut r = (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if replayed {
        r.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    r
}

/// `POST /api/{user_id}/chat`.
pub async fn chat(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ChatBody>,
) -> Result<Response, ApiError> {
    let user = valid_user(&user_id)?;
    let message = body.message.trim().to_string();
    if message.is_empty() {
        return Err(ApiError::unprocessable(
            "empty_message",
            "message must not be empty",
        ));
    }
    let n = message.chars().count();
    if n > state.max_message_chars {
        return Err(ApiError::unprocessable(
            "message_too_long",
            format!(
                "message is {n} characters; the limit is {}",
                state.max_message_chars
            ),
        ));
    }
    let conversation_id = body.conversation_id.as_deref().map(parse_id).transpose()?;
    let timezone = match body
        .timezone
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        None => chrono_tz::UTC,
        Some(t) => prompt::parse_timezone(t).ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_timezone",
                format!("unknown time zone {t:?}; use an IANA name such as Europe/Paris"),
            )
        })?,
    };
    let key = idempotency_key(&headers)?;
    let mut resume = false;
    let mut conversation_id = conversation_id;
    if let Some(key) = &key {
        let stale = chrono::Utc::now()
            - chrono::Duration::from_std(state.agent.limits.turn_timeout * 2)
                .unwrap_or(chrono::Duration::minutes(2));
        match state
            .conversations
            .idempotency_begin(&user, key, &request_hash(&body), stale)
            .await?
        {
            Idempotency::New => {}
            Idempotency::Replay { status, body } => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                if status == StatusCode::OK && crate::sse::wants_stream(&headers) {
                    return Ok(crate::sse::replay(body));
                }
                return Ok(json_response(status, body, true));
            }
            Idempotency::Mismatch => {
                return Err(ApiError::unprocessable(
                    "idempotency_key_reused",
                    "This Idempotency-Key was used with a different request body.",
                ));
            }
            Idempotency::InProgress => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_in_progress",
                    "A request with this Idempotency-Key is still being answered.",
                )
                .with_retry_after(1));
            }
            Idempotency::Resume {
                conversation_id: stored,
            } => {
                if let Some(c) = stored {
                    conversation_id = Some(c);
                    resume = true;
                }
            }
        }
    }

    // The limits count turns that will run: a replay or a retry of a running turn (answered
    // above) is never refused by them. A refused keyed request leaves its key free to retry.
    let admitted = state
        .access
        .check_rate(&user)
        .await
        .inspect_err(|e| {
            if e.code == "rate_limited" {
                state.metrics.reject("rate_limited");
            }
        })
        .and_then(|()| {
            state
                .access
                .in_flight
                .start(&user)
                .inspect_err(|_| state.metrics.reject("user_turns"))
        })
        // Held by the turn until it ends, even if the client goes away.
        .and_then(|mine| {
            state
                .access
                .start_turn()
                .map(|slot| (slot, mine))
                .inspect_err(|_| state.metrics.reject("saturated"))
        });
    let turn_slot = match admitted {
        Ok(slot) => slot,
        Err(e) => {
            if let Some(k) = &key
                && let Err(e) = state.conversations.idempotency_finish(&user, k, None).await
            {
                tracing::warn!(error = %e, "releasing a refused idempotency key failed");
            }
            return Err(e);
        }
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let req = TurnRequest {
        user: user.clone(),
        conversation_id,
        message,
        timezone,
        resume,
        on_stored: Some(tx),
    };
    // A streamed turn's events go to the client as they happen (`crate::sse`).
    let (sink, events) = match crate::sse::wants_stream(&headers) {
        true => {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        }
        false => (None, None),
    };
    // The turn runs to its end even if the client goes away, so history and leases stay right.
    let task = tokio::spawn(
        keyed_turn(
            state.agent.clone(),
            state.conversations.clone(),
            state.metrics.clone(),
            turn_slot,
            key,
            req,
            rx,
        )
        .with_events(sink)
        .instrument(tracing::Span::current()),
    );
    if let Some(events) = events {
        return crate::sse::turn(events, task).await;
    }
    match task.await {
        Ok(Ok((status, body))) => Ok(json_response(status, body, false)),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(ApiError::internal("chat turn panicked", &e)),
    }
}

/// Runs a turn and keeps its idempotency record in step: linked to the conversation once the
/// message is stored, then `done` with the answer or `failed` (so a retry resumes it).
async fn keyed_turn(
    agent: Arc<Agent>,
    store: Arc<dyn ConversationStore>,
    metrics: Arc<crate::metrics::Metrics>,
    turn_slot: impl Send,
    key: Option<String>,
    req: TurnRequest,
    stored: tokio::sync::oneshot::Receiver<Uuid>,
) -> Result<(StatusCode, String), ApiError> {
    let user = req.user.clone();
    let link = async {
        if let (Some(k), Ok(id)) = (&key, stored.await)
            && let Err(e) = store.idempotency_conversation(&user, k, id).await
        {
            tracing::warn!(error = %e, "linking an idempotency key to its conversation failed");
        }
    };
    // Commands (and every message when no model is configured) are answered without the model.
    let (result, ()) = tokio::join!(crate::commands::run_turn(&agent, req), link);
    drop(turn_slot);
    metrics.observe_turn(match &result {
        Ok(_) => "ok",
        Err(TurnError::NotFound) => "not_found",
        Err(TurnError::Busy) => "busy",
        Err(TurnError::Timeout) => "timeout",
        Err(TurnError::Llm(_)) => "llm_error",
        Err(_) => "error",
    });
    let answer = match result {
        Ok(answer) => answer,
        Err(e) => {
            if let Some(k) = &key {
                let _ = store.idempotency_finish(&user, k, None).await;
            }
            return Err(e.into());
        }
    };
    let body = serde_json::to_string(&answer).unwrap_or_default();
    if let Some(k) = &key
        && let Err(e) = store
            .idempotency_finish(&user, k, Some((StatusCode::OK.as_u16(), &body)))
            .await
    {
        tracing::warn!(error = %e, "storing an idempotent answer failed");
    }
    Ok((StatusCode::OK, body))
}

/// A page of conversations.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ConversationList {
    pub conversations: Vec<todo_core::conversations::Conversation>,
}

/// Messages of one conversation, oldest first.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct MessageList {
    pub conversation_id: Uuid,
    pub messages: Vec<todo_core::conversations::Message>,
}

/// Paging query.
#[derive(Debug, Deserialize)]
pub struct Page {
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

fn page(p: &Page) -> Result<(u32, u32), ApiError> {
    validate_page(p.limit, p.offset).map_err(|e| ApiError::unprocessable("invalid_page", e.0))
}

/// `GET /api/{user_id}/conversations`.
pub async fn conversations(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    ApiQuery(p): ApiQuery<Page>,
) -> Result<Response, ApiError> {
    let user = valid_user(&user_id)?;
    let (limit, offset) = page(&p)?;
    let list = state.conversations.list(&user, limit, offset).await?;
    Ok(axum::Json(ConversationList {
        conversations: list,
    })
    .into_response())
}

/// Query of the messages endpoint.
#[derive(Debug, Deserialize)]
pub struct MessagesQuery {
    /// Only messages after this sequence number.
    pub after: Option<i64>,
    pub limit: Option<u32>,
}

/// `GET /api/{user_id}/conversations/{id}/messages`.
pub async fn messages(
    State(state): State<AppState>,
    Path((user_id, id)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<MessagesQuery>,
) -> Result<Response, ApiError> {
    let user = valid_user(&user_id)?;
    let id = parse_id(&id)?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 500 {
        return Err(ApiError::unprocessable(
            "invalid_page",
            "limit must be between 1 and 500",
        ));
    }
    let msgs = state
        .conversations
        .messages(&user, id, q.after.unwrap_or(0), limit)
        .await?;
    Ok(axum::Json(MessageList {
        conversation_id: id,
        messages: msgs,
    })
    .into_response())
}

/// Query of the tasks endpoint.
#[derive(Debug, Deserialize)]
pub struct TasksQuery {
    pub status: Option<StatusFilter>,
    pub query: Option<String>,
    pub tag: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

/// `GET /api/{user_id}/tasks`.
pub async fn tasks(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    ApiQuery(q): ApiQuery<TasksQuery>,
) -> Result<Response, ApiError> {
    let user = valid_user(&user_id)?;
    let (limit, offset) = page(&Page {
        limit: q.limit,
        offset: q.offset,
    })?;
    let invalid =
        |e: todo_core::tasks::InvalidInput| ApiError::unprocessable("invalid_filter", e.0);
    let filter = ListFilter {
        status: q.status.unwrap_or_default(),
        query: q
            .query
            .as_deref()
            .map(validate_query)
            .transpose()
            .map_err(invalid)?
            .flatten(),
        // `tag=` (empty, as a form sends it) means no tag filter, as `query=` does.
        tag: q
            .tag
            .as_deref()
            .filter(|t| !t.trim().trim_start_matches('#').trim().is_empty())
            .map(normalize_tag)
            .transpose()
            .map_err(invalid)?,
        due_before: None,
        due_after: None,
        parent: None,
        hide_subtasks: false,
        limit,
        offset,
    };
    if state.agent.toolbox.is_remote() {
        // The remote todo-mcp's store is the one the tools write: read that one.
        let page = crate::remote_read::list_tasks(&state.agent, &user, &filter)
            .await
            .map_err(|e| {
                ApiError::unavailable("listing tasks through MCP failed", &format!("{e:#}"))
            })?;
        return Ok(axum::Json(page).into_response());
    }
    let page = state
        .agent
        .tasks
        .list(&user, &filter)
        .await
        .map_err(|e| ApiError::unavailable("listing tasks failed", &e))?;
    Ok(axum::Json(page).into_response())
}

/// `GET /openapi.json`: the API description.
pub async fn openapi() -> Response {
    static DOC: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| crate::openapi::document().to_string());
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
