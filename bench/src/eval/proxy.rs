//! A recording proxy between the backend and the model endpoint: it forwards every request
//! unchanged and notes, per model call, the prompt tokens sent, the prompt tokens the server
//! actually processed (reused prefix excluded, where the server says), completion tokens and
//! time. Plain JSON answers and streamed (SSE) answers are both read.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// One model call as the proxy saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Call {
    pub prompt_tokens: u64,
    /// `usage.prompt_tokens_details.cached_tokens` (OpenAI, vLLM) or llama.cpp's `timings.cache_n`.
    pub cached_tokens: Option<u64>,
    /// Prompt tokens the server evaluated: llama.cpp's `timings.prompt_n`, else sent minus
    /// cached, else everything sent.
    pub processed_tokens: u64,
    pub completion_tokens: u64,
    pub millis: u64,
    pub status: u16,
}

/// Token counts read from one response body.
pub fn account(body: &[u8], content_type: &str) -> (u64, Option<u64>, Option<u64>, u64) {
    let mut usage = Value::Null;
    let mut timings = Value::Null;
    let mut take = |v: &Value| {
        if v["usage"].is_object() {
            usage = v["usage"].clone();
        }
        if v["timings"].is_object() {
            timings = v["timings"].clone();
        }
    };
    let text = String::from_utf8_lossy(body);
    if content_type.contains("text/event-stream") || text.trim_start().starts_with("data:") {
        for line in text.lines() {
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            if let Ok(v) = serde_json::from_str::<Value>(data.trim()) {
                take(&v);
            }
        }
    } else if let Ok(v) = serde_json::from_str::<Value>(&text) {
        take(&v);
    }
    let n = |v: &Value| v.as_u64();
    let prompt = n(&usage["prompt_tokens"])
        .or_else(|| Some(n(&timings["prompt_n"])? + n(&timings["cache_n"]).unwrap_or(0)))
        .unwrap_or(0);
    let cached =
        n(&usage["prompt_tokens_details"]["cached_tokens"]).or_else(|| n(&timings["cache_n"]));
    let processed = n(&timings["prompt_n"]);
    let completion = n(&usage["completion_tokens"])
        .or_else(|| n(&timings["predicted_n"]))
        .unwrap_or(0);
    (prompt, cached, processed, completion)
}

/// Shared state of the proxy.
pub struct Recorder {
    upstream: String,
    http: reqwest::Client,
    calls: Mutex<Vec<Call>>,
    /// Every request and answer, one JSON line each, when asked for (reading failures).
    exchanges: Option<Mutex<std::fs::File>>,
}

impl Recorder {
    pub fn new(
        upstream: &str,
        exchanges: Option<&std::path::Path>,
    ) -> anyhow::Result<Arc<Recorder>> {
        let exchanges = match exchanges {
            Some(p) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            )),
            None => None,
        };
        Ok(Arc::new(Recorder {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder().no_proxy().build()?,
            calls: Mutex::new(Vec::new()),
            exchanges,
        }))
    }

    fn log_exchange(&self, request: &[u8], answer: &[u8]) {
        use std::io::Write;
        let Some(file) = &self.exchanges else { return };
        let as_json = |b: &[u8]| {
            serde_json::from_slice::<serde_json::Value>(b)
                .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(b).into()))
        };
        let line = serde_json::json!({"request": as_json(request), "answer": as_json(answer)});
        let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(f, "{line}");
    }

    /// The calls recorded since the last `take`.
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn push(&self, c: Call) {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).push(c);
    }
}

/// Serves the proxy on `listener` until the process ends. Paths are forwarded below the
/// upstream base: `/v1/chat/completions` → `{upstream}/chat/completions`.
pub async fn serve(listener: tokio::net::TcpListener, rec: Arc<Recorder>) {
    let app = axum::Router::new().fallback(forward).with_state(rec);
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("todo-eval: the proxy stopped: {e}");
    }
}

async fn forward(State(rec): State<Arc<Recorder>>, req: Request) -> Response {
    let path = req.uri().path().trim_start_matches("/v1").to_string();
    let headers: HeaderMap = req.headers().clone();
    let body = match axum::body::to_bytes(req.into_body(), 32 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::BAD_REQUEST, "body too large").into_response(),
    };
    let started = Instant::now();
    let mut out = rec
        .http
        .post(format!("{}{path}", rec.upstream))
        .body(body.clone());
    for h in [header::CONTENT_TYPE, header::AUTHORIZATION, header::ACCEPT] {
        if let Some(v) = headers.get(&h) {
            out = out.header(h, v);
        }
    }
    let resp = match out.send().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("todo-eval: the model endpoint failed: {e}");
            return (StatusCode::BAD_GATEWAY, "upstream failed").into_response();
        }
    };
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let bytes: Bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(_) => return (StatusCode::BAD_GATEWAY, "upstream body failed").into_response(),
    };
    rec.log_exchange(&body, &bytes);
    let (prompt, cached, processed, completion) = account(&bytes, &ctype);
    rec.push(Call {
        prompt_tokens: prompt,
        cached_tokens: cached,
        processed_tokens: processed.unwrap_or(prompt.saturating_sub(cached.unwrap_or(0))),
        completion_tokens: completion,
        millis: started.elapsed().as_millis() as u64,
        status,
    });
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, ctype)
        .body(Body::from(bytes))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_cpp_json_answers_give_processed_and_reused_tokens() {
        let body = br#"{"choices":[],"usage":{"prompt_tokens":1200,"completion_tokens":30},
            "timings":{"cache_n":1000,"prompt_n":200,"predicted_n":30}}"#;
        assert_eq!(
            account(body, "application/json"),
            (1200, Some(1000), Some(200), 30)
        );
    }

    #[test]
    fn openai_answers_give_cached_tokens_and_no_timings() {
        let body = br#"{"usage":{"prompt_tokens":900,"completion_tokens":12,
            "prompt_tokens_details":{"cached_tokens":768}}}"#;
        assert_eq!(
            account(body, "application/json"),
            (900, Some(768), None, 12)
        );
        // Without usage (some Ollama versions), nothing is invented.
        assert_eq!(
            account(br#"{"choices":[]}"#, "application/json"),
            (0, None, None, 0)
        );
    }

    #[test]
    fn streamed_answers_are_read_from_their_last_usage_and_timings() {
        let body = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n\
data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"timings\":{\"cache_n\":50,\"prompt_n\":7,\"predicted_n\":3}}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":57,\"completion_tokens\":3}}\n\n\
data: [DONE]\n\n";
        assert_eq!(
            account(body, "text/event-stream"),
            (57, Some(50), Some(7), 3)
        );
        // A stream with timings only still counts.
        let t = b"data: {\"timings\":{\"cache_n\":10,\"prompt_n\":5,\"predicted_n\":2}}\n\ndata: [DONE]\n";
        assert_eq!(
            account(t, "text/event-stream; charset=utf-8"),
            (15, Some(10), Some(5), 2)
        );
    }

    #[tokio::test]
    async fn the_proxy_forwards_unchanged_and_records_each_call() {
        // A one-route upstream standing in for a model server.
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up_addr = upstream.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/v1/chat/completions",
            axum::routing::post(|body: String| async move {
                assert!(body.contains("hello"));
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4}}}"#,
                )
            }),
        );
        tokio::spawn(async move { axum::serve(upstream, app).await.ok() });
        let rec = Recorder::new(&format!("http://{up_addr}/v1"), None).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, rec.clone()));
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        for _ in 0..2 {
            let r = client
                .post(format!("http://{addr}/v1/chat/completions"))
                .header("content-type", "application/json")
                .body(r#"{"messages":[{"role":"user","content":"hello"}]}"#)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["choices"][0]["message"]["content"], "hi");
        }
        let calls = rec.take();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].prompt_tokens, 10);
        assert_eq!(calls[0].cached_tokens, Some(4));
        assert_eq!(calls[0].processed_tokens, 6);
        assert!(rec.take().is_empty());
    }
}
