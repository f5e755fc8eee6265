//! The read endpoints: conversations, their messages, tasks, and usage — each for the path's
//! user only.

use axum::extract::{Path, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use serde_json::{Value, json};
use todo_core::tasks::{ListInput, StatusFilter, TaskPage, validate_page};

use super::types::{ConversationList, MessageList, MessagesQuery, Page, TasksQuery, UsageQuery};
use super::{AppState, Area, Operation, parse_id, valid_user};
use crate::error::{ApiError, ApiQuery};
use crate::openapi::{API_ERRORS, Doc, bearer, page_params, query_param, user_param};
use crate::usage;

/// Days covered by the usage report when `from` is not given.
pub const DEFAULT_DAYS: u64 = 30;

/// The read operations.
pub const OPERATIONS: &[Operation] = &[
    Operation {
        method: Method::GET,
        path: "/api/{user_id}/conversations",
        area: Area::Api,
        route: |m| axum::routing::on(m, conversations),
        doc: |d| {
            let ok = json!({ "description": "Conversations, most recent first", "content": d.json_content::<ConversationList>() });
            let parameters: Vec<Value> = std::iter::once(user_param())
                .chain(page_params(100))
                .collect();
            json!({
                "operationId": "listConversations", "security": bearer(),
                "parameters": parameters,
                "responses": d.responses(API_ERRORS, ok),
            })
        },
    },
    Operation {
        method: Method::GET,
        path: "/api/{user_id}/conversations/{id}/messages",
        area: Area::Api,
        route: |m| axum::routing::on(m, messages),
        doc: |d| {
            let ok = json!({ "description": "Messages, oldest first", "content": d.json_content::<MessageList>() });
            json!({
                "operationId": "listMessages", "security": bearer(),
                "parameters": [
                    user_param(),
                    { "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } },
                    query_param("after", "Only messages after this sequence number", json!({ "type": "integer", "format": "int64" })),
                    query_param("limit", "Page size", json!({ "type": "integer", "minimum": 1, "maximum": 500 })),
                ],
                "responses": d.responses(&[400, 401, 403, 404, 422, 500, 503], ok),
            })
        },
    },
    Operation {
        method: Method::GET,
        path: "/api/{user_id}/tasks",
        area: Area::Api,
        route: |m| axum::routing::on(m, tasks),
        doc: tasks_doc,
    },
    Operation {
        method: Method::GET,
        path: "/api/{user_id}/usage",
        area: Area::Api,
        route: |m| axum::routing::on(m, usage),
        doc: |d| {
            let ok = json!({ "description": "Token usage and cost per day (UTC) and model, and per conversation", "content": d.json_content::<usage::UsageReport>() });
            let date = json!({ "type": "string", "format": "date" });
            json!({
                "operationId": "getUsage", "security": bearer(),
                "summary": "The person's model tokens and their cost (with LLM_PRICES) over a range of UTC days (a range ending before it starts is empty)",
                "parameters": [
                    user_param(),
                    query_param("from", "First UTC day (default: 29 days before `to`)", date.clone()),
                    query_param("to", "Last UTC day, inclusive (default: today)", date),
                    query_param("conversation_id", "Only this conversation", json!({ "type": "string", "format": "uuid" })),
                ],
                "responses": d.responses(&[400, 401, 403, 404, 422, 500, 503], ok),
            })
        },
    },
];

fn tasks_doc(d: &mut Doc) -> Value {
    let ok = json!({ "description": "A page of tasks", "content": d.json_content::<TaskPage>() });
    let mut parameters = vec![
        user_param(),
        query_param("status", "Which tasks", d.input::<StatusFilter>()),
        query_param(
            "query",
            "Text in title or description",
            json!({ "type": "string", "maxLength": 200 }),
        ),
        query_param(
            "tag",
            "Only tasks with this tag (an optional leading #; empty: no tag filter)",
            json!({ "type": "string", "maxLength": 33, "pattern": "^#?[A-Za-z0-9_-]{0,32}$" }),
        ),
    ];
    parameters.extend(page_params(100));
    json!({
        "operationId": "listTasks", "security": bearer(),
        "parameters": parameters,
        "responses": d.responses(API_ERRORS, ok),
    })
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
    let filter = ListInput {
        status: q.status,
        query: q.query.as_deref(),
        tag: q.tag.as_deref(),
        ..ListInput::default()
    }
    .validate((limit, offset))
    .map_err(|e| ApiError::unprocessable("invalid_filter", e.0))?;
    if state.agent.toolbox.is_remote() {
        // The remote todo-mcp's store is the one the tools write: read that one.
        let page = crate::remote_read::list_tasks(&state.agent, &user, &filter)
            .await
            .map_err(|e| {
                ApiError::tools_unavailable("listing tasks through MCP failed", &format!("{e:#}"))
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

fn day(name: &str, raw: Option<&str>) -> Result<Option<NaiveDate>, ApiError> {
    raw.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
                ApiError::unprocessable(
                    "invalid_range",
                    format!("{name} must be a date such as 2026-12-01"),
                )
            })
        })
        .transpose()
}

/// `GET /api/{user_id}/usage`.
pub async fn usage(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Response, ApiError> {
    let user = valid_user(&user_id)?;
    let to = day("to", q.to.as_deref())?.unwrap_or_else(|| Utc::now().date_naive());
    let from = match day("from", q.from.as_deref())? {
        Some(d) => d,
        None => to
            .checked_sub_days(chrono::Days::new(DEFAULT_DAYS - 1))
            .unwrap_or(to),
    };
    // Every schema-valid range is answered: one that ends before it starts covers no day.
    // The sums are one grouped query over the person's own messages, whatever the range.
    let conversation = q.conversation_id.as_deref().map(parse_id).transpose()?;
    if let Some(id) = conversation {
        // Another user's conversation is not found, as on the messages endpoint.
        state.conversations.messages(&user, id, i64::MAX, 1).await?;
    }
    let report = usage::report(
        &state.db,
        &state.agent.prices,
        &user,
        from,
        to,
        conversation,
    )
    .await
    .map_err(|e| ApiError::unavailable("reading usage failed", &e))?;
    Ok(axum::Json(report).into_response())
}
