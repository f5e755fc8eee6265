//! The streamed form of an answer (`stream: true`): chat-completion chunks as server-sent
//! events, the way OpenAI sends them — text in small pieces, each tool call's arguments
//! in two fragments, `finish_reason` in its own chunk, usage in a last chunk without
//! choices when `stream_options.include_usage` asks for it, then `[DONE]`.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Splits text into pieces of about `n` characters (never inside a character).
fn pieces(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(n.max(1)).map(|c| c.iter().collect()).collect()
}

/// The chunks of a completion body built by `completion_body`.
pub(super) fn chunks(body: &Value, include_usage: bool) -> Vec<Value> {
    let base = |choices: Value| {
        json!({
            "id": body["id"], "object": "chat.completion.chunk", "created": body["created"],
            "model": body["model"], "system_fingerprint": "mock-llm", "choices": choices,
        })
    };
    let choice = &body["choices"][0];
    let message = &choice["message"];
    let mut out = vec![base(
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
    )];
    if let Some(text) = message["content"].as_str() {
        for p in pieces(text, 6) {
            out.push(base(
                json!([{"index": 0, "delta": {"content": p}, "finish_reason": null}]),
            ));
        }
    }
    for (i, call) in message["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let args = call["function"]["arguments"].as_str().unwrap_or("");
        let cut = args
            .char_indices()
            .nth(args.chars().count() / 2)
            .map_or(0, |(b, _)| b);
        out.push(base(json!([{"index": 0, "delta": {"tool_calls": [{
            "index": i, "id": call["id"], "type": "function",
            "function": {"name": call["function"]["name"], "arguments": &args[..cut]},
        }]}, "finish_reason": null}])));
        out.push(base(json!([{"index": 0, "delta": {"tool_calls": [{
            "index": i, "function": {"arguments": &args[cut..]},
        }]}, "finish_reason": null}])));
    }
    out.push(base(
        json!([{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]),
    ));
    if include_usage {
        let mut last = base(json!([]));
        last["usage"] = body["usage"].clone();
        out.push(last);
    }
    out
}

/// The chunks as an event stream, `delay` apart.
pub(super) fn response(chunks: Vec<Value>, delay: Duration) -> Response {
    let mut events: Vec<Bytes> = chunks
        .into_iter()
        .map(|c| Bytes::from(format!("data: {c}\n\n")))
        .collect();
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    let body = futures::stream::unfold(
        (events.into_iter(), true),
        move |(mut it, first)| async move {
            let next = it.next()?;
            if !first && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Some((Ok::<_, std::convert::Infallible>(next), (it, false)))
        },
    );
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_reassemble_into_the_completion() {
        let body = json!({"id": "c", "created": 1, "model": "m", "choices": [{"index": 0,
            "message": {"role": "assistant", "content": "Hello there, caf\u{e9}!",
                "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "add_task", "arguments": "{\"title\":\"Th\u{e9}\"}"}}]},
            "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}});
        let cs = chunks(&body, true);
        let text: String = cs
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Hello there, caf\u{e9}!");
        let args: String = cs
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(args, "{\"title\":\"Th\u{e9}\"}");
        assert!(
            cs.iter()
                .filter(|c| c["choices"][0]["delta"]["tool_calls"].is_array())
                .count()
                == 2
        );
        let last = cs.last().unwrap();
        assert_eq!(last["choices"], json!([]));
        assert_eq!(last["usage"]["total_tokens"], 7);
        assert!(chunks(&body, false).last().unwrap().get("usage").is_none());
    }
}
