//! The one error shape of the API: `{"error": {"code", "message"}}` with the fitting status.
//! Internal detail is logged, never sent.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::agent::TurnError;
use crate::agent::llm::LlmError;

/// The body of every error response.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable code for programs and a message for people.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// An API error.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
    /// What failed underneath, with its cause chain: logged once, when the error becomes a
    /// response, never sent to the client.
    pub cause: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            cause: None,
        }
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// A failure whose detail must stay in the logs.
    pub fn internal(context: &str, err: &dyn std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on our side.",
        )
        .caused_by(context, err)
    }

    pub fn unavailable(context: &str, err: &dyn std::fmt::Display) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The service cannot reach its database right now; try again shortly.",
        )
        .with_retry_after(2)
        .caused_by(context, err)
    }

    /// The task tools (the in-process or remote MCP server) could not be reached: a transport
    /// failure, not a database one.
    pub fn tools_unavailable(context: &str, err: &dyn std::fmt::Display) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "tools_unavailable",
            "The service cannot reach its task tools right now; try again shortly.",
        )
        .with_retry_after(2)
        .caused_by(context, err)
    }

    /// Records what failed underneath (logged once, at the edge).
    pub fn caused_by(mut self, context: &str, err: &dyn std::fmt::Display) -> Self {
        self.cause = Some(format!("{context}: {err}"));
        self
    }

    /// Logs what failed underneath, if anything did: called once, where the error leaves the
    /// service (a response, or a stream's `error` event).
    pub fn log_cause(&self) {
        if let Some(cause) = &self.cause {
            tracing::error!(status = self.status.as_u16(), code = self.code, error = %cause, "request failed");
        }
    }

    /// The body this error answers with.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message.clone(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log_cause();
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

impl From<todo_core::conversations::StoreError> for ApiError {
    fn from(e: todo_core::conversations::StoreError) -> Self {
        match e {
            todo_core::conversations::StoreError::NotFound => ApiError::not_found("conversation"),
            todo_core::conversations::StoreError::LeaseLost => ApiError::new(
                StatusCode::CONFLICT,
                "conversation_busy",
                "This turn took too long and the conversation moved on; send the message again.",
            )
            .with_retry_after(1),
            todo_core::conversations::StoreError::Database(d) => {
                ApiError::unavailable("database call failed", &todo_core::error::Chain(&d))
            }
        }
    }
}

impl TurnError {
    /// The label of a turn's outcome in `/metrics` (`chat_turns_total{outcome}`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            TurnError::NotFound => "not_found",
            TurnError::Busy => "busy",
            TurnError::Timeout => "timeout",
            TurnError::Llm(_) => "llm_error",
            _ => "error",
        }
    }
}

impl LlmError {
    /// The label of a failed model call in `/metrics` (`llm_requests_total{outcome}`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            LlmError::RateLimited => "rate_limited",
            LlmError::Unavailable(_) => "unavailable",
            LlmError::Rejected { .. } => "rejected",
            LlmError::BadReply(_) => "bad_reply",
            LlmError::Truncated { .. } => "truncated",
        }
    }
}

impl From<TurnError> for ApiError {
    fn from(e: TurnError) -> Self {
        use StatusCode as S;
        match e {
            TurnError::NotFound => ApiError::not_found("conversation"),
            TurnError::Busy => ApiError::new(
                S::CONFLICT,
                "conversation_busy",
                "Another message of this conversation is still being answered; send this one when it is done.",
            )
            .with_retry_after(1),
            TurnError::NotConfigured => ApiError::new(
                S::SERVICE_UNAVAILABLE,
                "llm_not_configured",
                "No language model is configured: set OPENAI_API_KEY, OPENAI_BASE_URL and LLM_MODEL.",
            ),
            TurnError::Timeout => ApiError::new(
                S::GATEWAY_TIMEOUT,
                "llm_timeout",
                "The language model did not answer in time. Your message was saved; send it again to retry.",
            ),
            TurnError::Llm(LlmError::RateLimited) => ApiError::new(
                S::SERVICE_UNAVAILABLE,
                "llm_rate_limited",
                "The language model is rate limited. Your message was saved; try again shortly.",
            )
            .with_retry_after(10),
            TurnError::Llm(LlmError::Unavailable(why)) => {
                tracing::warn!(?why, "language model unavailable");
                ApiError::new(
                    S::BAD_GATEWAY,
                    "llm_unavailable",
                    "The language model could not be reached. Your message was saved; try again shortly.",
                )
            }
            TurnError::Llm(LlmError::Rejected { status, message }) => {
                // Debug-formatted: text from the network cannot break a plain-text log line.
                tracing::error!(status, ?message, "language model rejected the request");
                ApiError::new(
                    S::BAD_GATEWAY,
                    "llm_rejected",
                    format!("The language model refused the request (HTTP {status}); check the LLM settings."),
                )
            }
            TurnError::Llm(LlmError::BadReply(why)) => {
                tracing::error!(?why, "language model reply unusable");
                ApiError::new(S::BAD_GATEWAY, "llm_bad_reply", "The language model sent a reply that could not be used.")
            }
            TurnError::Llm(LlmError::Truncated { max_tokens }) => ApiError::new(
                S::BAD_GATEWAY,
                "llm_reply_truncated",
                format!(
                    "The language model's reply was cut off at its limit of {max_tokens} tokens, so it was not used. Your message was saved; send it again, or raise LLM_MAX_TOKENS."
                ),
            ),
            TurnError::Store(e) => e.into(),
            TurnError::Tools(e) => {
                ApiError::tools_unavailable("reaching the task tools failed", &format!("{e:#}"))
            }
        }
    }
}

/// `Json` whose rejections use the API's error shape.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
            _ => "malformed_body",
        };
        ApiError::new(status, code, r.body_text())
    }
}

/// `Query` whose rejections use the API's error shape.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request("invalid_query", r.body_text())
    }
}
