//! `POST /api/{user_id}/chat`: one turn, answered as JSON or streamed, with idempotent retries.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::Instrument;
use uuid::Uuid;

use super::types::ChatBody;
use super::{AppState, Area, Operation, parse_id, valid_user};
use crate::agent::events::WithEvents;
use crate::agent::{Agent, TurnAnswer, TurnError, TurnRequest, prompt};
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::openapi::{Doc, bearer, user_param};
use todo_core::conversations::{ConversationStore, Idempotency};

/// The chat operation.
pub const OPERATIONS: &[Operation] = &[Operation {
    method: Method::POST,
    path: "/api/{user_id}/chat",
    area: Area::Api,
    route: |m| axum::routing::on(m, chat),
    doc: chat_doc,
}];

fn chat_doc(d: &mut Doc) -> Value {
    let mut responses = d.errors(&[
        400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 502, 503, 504,
    ]);
    let answer = d.output::<TurnAnswer>();
    let error = d.output::<ErrorBody>();
    let mut content = d.json_content::<TurnAnswer>();
    content["text/event-stream"] = crate::sse::openapi_content(answer, error);
    responses.insert(
        "200".into(),
        json!({ "description": crate::sse::OPENAPI_DESCRIPTION, "content": content,
                "headers": { "Idempotent-Replayed": { "description": "Present (true) when this is a stored answer replayed for a repeated Idempotency-Key", "schema": { "type": "string", "enum": ["true"] } } } }),
    );
    json!({
        "operationId": "chat",
        "summary": "One chat turn: the model reads the message, calls task tools, and answers",
        "description": "A message starting with `/` is a command run directly against the task tools, without the model: /add <title> [due words] [!high|!low] [#tag…], /list [today|overdue|done|trash|all|#tag|words], /done <n>, /undone <n>, /edit <n> <field> <value>, /delete <n>, /restore <n>, /undo, /help. It answers in the same shape and is stored like any exchange; a malformed command answers its usage line. Due words are read in `timezone`. With no model configured, commands still work and any other message is answered with the commands and the settings that enable free-form chat.",
        "security": bearer(),
        "parameters": [user_param(), {
            "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "A retried request with the same key returns the stored answer without running the model or any tool again",
            "schema": { "type": "string", "minLength": 1, "maxLength": 255 }
        }],
        "requestBody": { "required": true, "content": d.json_input::<ChatBody>() },
        "responses": responses,
    })
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
        let now = chrono::Utc::now();
        let stale = now
            - chrono::Duration::from_std(state.agent.limits.turn_timeout * 2)
                .unwrap_or(chrono::Duration::minutes(2));
        let expired = crate::retention::before(now, state.idempotency_ttl);
        match state
            .conversations
            .idempotency_begin(&user, key, &request_hash(&body), stale, expired)
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
    let admitted = async {
        state.access.check_rate(&user).await.inspect_err(|e| {
            if e.code == "rate_limited" {
                state.metrics.reject("rate_limited");
            }
        })?;
        let mine = state.access.in_flight.start(&user).await.inspect_err(|e| {
            if e.code == "too_many_turns" {
                state.metrics.reject("user_turns");
            }
        })?;
        // Held by the turn until it ends, even if the client goes away.
        let slot = state
            .access
            .start_turn()
            .inspect_err(|_| state.metrics.reject("saturated"))?;
        Ok::<_, ApiError>((slot, mine))
    }
    .await;
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
    turn_slot: (tokio::sync::OwnedSemaphorePermit, crate::inflight::UserTurn),
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
    // The place is free before the answer leaves, so the person's next message finds it free.
    let (slot, mine) = turn_slot;
    drop(slot);
    mine.release().await;
    metrics.observe_turn(
        result
            .as_ref()
            .map_or_else(TurnError::metric_label, |_| "ok"),
    );
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
