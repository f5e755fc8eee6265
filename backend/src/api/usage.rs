//! `GET /api/{user_id}/usage`: one person's token usage and cost, per day and per
//! conversation, in a range of UTC days.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;

use super::{AppState, parse_id, valid_user};
use crate::error::{ApiError, ApiQuery};
use crate::usage;

/// Days covered when `from` is not given.
pub const DEFAULT_DAYS: u64 = 30;

/// Query of the usage endpoint.
#[derive(Debug, Deserialize)]
pub struct UsageQuery {
    /// First UTC day, `YYYY-MM-DD` (default: 29 days before `to`).
    pub from: Option<String>,
    /// Last UTC day, inclusive (default: today).
    pub to: Option<String>,
    /// Only this conversation.
    pub conversation_id: Option<String>,
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
