//! A chat turn as server-sent events, for `Accept: text/event-stream`.
//!
//! Events, in order: `started` (`{"conversation_id"}`), any number of `delta`
//! (`{"text"}`), `tool_call_started` (`{"id","name","arguments"}`) and
//! `tool_call_finished` (`{"id","name","result","is_error"}`), then exactly one of `done`
//! (data: the JSON answer of a non-streamed turn, byte for byte) or `error` (data: the
//! API's error body `{"error":{"code","message"}}`). Comment lines keep idle connections
//! open. A turn that fails before it has started (unknown conversation, busy, tools
//! unreachable) answers a plain JSON error with its status instead of a stream.

use std::convert::Infallible;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;

use crate::agent::events::TurnEvent;
use crate::error::ApiError;

/// The result of a spawned turn: status and JSON body, or the error.
pub type TurnTask = JoinHandle<Result<(StatusCode, String), ApiError>>;

const EVENT_STREAM: &str = "text/event-stream";

/// Whether the request asks for a stream: `text/event-stream` among its `Accept` ranges
/// (and not refused with `q=0`).
pub fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case(EVENT_STREAM) && !refused
        })
}

fn event(e: &TurnEvent) -> Event {
    match serde_json::to_string(e) {
        Ok(data) => Event::default().event(e.name()).data(data),
        // Our own types always serialise; if one ever did not, the client sees a comment.
        Err(_) => Event::default().comment("unserialisable event"),
    }
}

fn error_event(e: &ApiError) -> Event {
    e.log_cause();
    let data = serde_json::to_string(&e.body()).unwrap_or_default();
    Event::default().event("error").data(data)
}

/// The last event of a turn: the answer, or the error.
fn end_event(result: Result<(StatusCode, String), ApiError>) -> Event {
    match result {
        Ok((_, body)) => Event::default().event("done").data(body),
        Err(e) => error_event(&e),
    }
}

fn conversation_of(body: &str) -> Option<TurnEvent> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let id = uuid::Uuid::parse_str(v["conversation_id"].as_str()?).ok()?;
    Some(TurnEvent::Started {
        conversation_id: id,
    })
}

fn respond(events: impl Stream<Item = Event> + Send + 'static) -> Response {
    let mut r = Sse::new(events.map(Ok::<_, Infallible>))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    // Proxies such as nginx would otherwise hold the events back.
    r.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

/// A finished turn's stored answer, streamed: `started` and `done`.
pub fn replay(body: String) -> Response {
    let mut r = answered(body);
    r.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    r
}

/// Streams a running turn. Waits for its first event first, so that a turn refused before
/// it started answers a plain JSON error with the right status.
pub async fn turn(
    mut rx: UnboundedReceiver<TurnEvent>,
    mut task: TurnTask,
) -> Result<Response, ApiError> {
    let first = tokio::select! {
        biased;
        e = rx.recv() => e,
        r = &mut task => {
            // Ended before any event: either refused (plain error) or answered without
            // the loop (streamed as a replay would be).
            let (_, body) = r.map_err(|e| ApiError::internal("chat turn panicked", &e))??;
            // Events sent just before the end are still in the channel.
            let mut rest = Vec::new();
            while let Ok(e) = rx.try_recv() {
                rest.push(event(&e));
            }
            if rest.is_empty() {
                return Ok(answered(body));
            }
            let done = Event::default().event("done").data(body);
            return Ok(respond(stream::iter(rest.into_iter().chain([done]))));
        }
    };
    let Some(first) = first else {
        // The channel closed without an event: the turn is over.
        let (_, body) = task
            .await
            .map_err(|e| ApiError::internal("chat turn panicked", &e))??;
        return Ok(answered(body));
    };
    let rest = stream::unfold(Some((rx, task)), |state| async move {
        let (mut rx, task) = state?;
        match rx.recv().await {
            Some(e) => Some((event(&e), Some((rx, task)))),
            None => {
                let end = match task.await {
                    Ok(r) => end_event(r),
                    Err(e) => error_event(&ApiError::internal("chat turn panicked", &e)),
                };
                Some((end, None))
            }
        }
    });
    Ok(respond(stream::iter([event(&first)]).chain(rest)))
}

/// A turn answered in one piece, as a stream: `started` and `done`.
fn answered(body: String) -> Response {
    let first = conversation_of(&body).map(|e| event(&e));
    let done = Event::default().event("done").data(body);
    respond(stream::iter(first.into_iter().chain([done])))
}

/// The `text/event-stream` media type of the chat answer, for the OpenAPI document: the
/// events by name, each with the schema of its `data` (`answer` and `error` are references
/// to the JSON answer and the error body).
pub fn openapi_content(answer: serde_json::Value, error: serde_json::Value) -> serde_json::Value {
    let s = |props: serde_json::Value, required: &[&str]| serde_json::json!({ "type": "object", "properties": props, "required": required });
    serde_json::json!({
        "schema": { "type": "string", "description": "Server-sent events; see x-events for each event's data" },
        "x-events": {
            "started": s(serde_json::json!({ "conversation_id": { "type": "string", "format": "uuid" } }), &["conversation_id"]),
            "delta": s(serde_json::json!({ "text": { "type": "string" } }), &["text"]),
            "tool_call_started": s(serde_json::json!({
                "id": { "type": "string" }, "name": { "type": "string" },
                "arguments": { "description": "The arguments as an object, or the model's text when it was not JSON" }
            }), &["id", "name", "arguments"]),
            "tool_call_finished": s(serde_json::json!({
                "id": { "type": "string" }, "name": { "type": "string" },
                "result": { "description": "The tool's structured result, or {\"error\": message}" },
                "is_error": { "type": "boolean" }
            }), &["id", "name", "result", "is_error"]),
            "done": answer,
            "error": error,
        }
    })
}

/// What the chat operation's 200 says about streaming.
pub const OPENAPI_DESCRIPTION: &str = "The turn's answer. With `Accept: text/event-stream` the same turn as server-sent \
events: `started`, then `delta` (text as the model writes it), `tool_call_started` and `tool_call_finished` \
in the order they happen, and last exactly one `done` (data: the JSON answer, byte for byte) or `error` (data: \
the error body). A request refused before the turn starts gets a plain JSON error with its status instead.";

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn the_accept_header_decides() {
        assert!(wants_stream(&accept("text/event-stream")));
        assert!(wants_stream(&accept(
            "application/json, Text/Event-Stream;q=0.5"
        )));
        assert!(!wants_stream(&accept("text/event-stream;q=0")));
        assert!(!wants_stream(&accept("application/json")));
        assert!(!wants_stream(&accept("*/*")));
        assert!(!wants_stream(&HeaderMap::new()));
    }
}

#[cfg(test)]
mod doc_tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_documented_fields_are_the_serialised_ones() {
        let doc = openapi_content(json!({}), json!({}));
        let samples = [
            TurnEvent::Started {
                conversation_id: uuid::Uuid::nil(),
            },
            TurnEvent::Delta { text: "x".into() },
            TurnEvent::ToolCallStarted {
                id: "c".into(),
                name: "n".into(),
                arguments: json!({}),
            },
            TurnEvent::ToolCallFinished {
                id: "c".into(),
                name: "n".into(),
                result: json!({}),
                is_error: false,
            },
        ];
        for e in samples {
            let v = serde_json::to_value(&e).unwrap();
            let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
            keys.sort_unstable();
            let mut documented: Vec<&str> = doc["x-events"][e.name()]["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap())
                .collect();
            documented.sort_unstable();
            assert_eq!(keys, documented, "{}", e.name());
        }
    }
}
