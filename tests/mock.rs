//! A deterministic OpenAI-compatible chat-completions server for tests and benchmarks.
//!
//! It speaks the real wire format and is as strict as the real API about the shape of a
//! request (including "every assistant tool call is answered by a tool message"), so a
//! backend that passes against it sends histories a real provider accepts. What it
//! answers follows [`crate::grammar`] for a person's message and summarises tool results
//! after a tool round.
//!
//! With `stream: true` it answers chat-completion chunks as server-sent events (see
//! `stream.rs`).
//!
//! Routes: `POST /v1/chat/completions` and `POST /chat/completions`, `GET /v1/models`,
//! `GET /stats` (request and token counters), `POST /reset` (zeroes them and clears
//! faults), `POST /faults` (inject failures, see [`FaultPlan`]), `GET /healthz`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

pub use self::faults::FaultPlan;
use self::faults::Faults;
use self::request::{ChatRequest, InMessage, Role, validate};
use crate::grammar::{self, Plan};

/// Largest request body accepted: long histories are what benchmarks measure.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How the mock behaves.
#[derive(Debug, Clone, Default)]
pub struct MockConfig {
    /// Added before every chat completion answer, to model a real provider's latency.
    pub latency: Duration,
    /// Between the chunks of a streamed answer, to model a model writing.
    pub chunk_delay: Duration,
}

/// Counters behind `GET /stats`.
#[derive(Debug, Default)]
struct Stats {
    requests: AtomicU64,
    rejected: AtomicU64,
    injected_failures: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
}

impl Stats {
    fn snapshot(&self) -> Value {
        json!({
            "requests": self.requests.load(Ordering::SeqCst),
            "rejected": self.rejected.load(Ordering::SeqCst),
            "injected_failures": self.injected_failures.load(Ordering::SeqCst),
            "prompt_tokens": self.prompt_tokens.load(Ordering::SeqCst),
            "completion_tokens": self.completion_tokens.load(Ordering::SeqCst),
        })
    }

    fn reset(&self) {
        for c in [
            &self.requests,
            &self.rejected,
            &self.injected_failures,
            &self.prompt_tokens,
            &self.completion_tokens,
        ] {
            c.store(0, Ordering::SeqCst);
        }
    }
}

#[derive(Debug)]
struct Shared {
    config: MockConfig,
    stats: Stats,
    faults: Faults,
}

/// The mock's routes.
pub fn router(config: MockConfig) -> Router {
    let shared = Arc::new(Shared {
        config,
        stats: Stats::default(),
        faults: Faults::default(),
    });
    Router::new()
        .route("/v1/chat/completions", post(completions))
        .route("/chat/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/stats", get(stats))
        .route("/reset", post(reset))
        .route("/faults", post(set_faults))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(unknown_route)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared)
}

/// Serves the mock on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: MockConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(config))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The mock running inside this process, stopped on drop.
pub struct MockLlm {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl MockLlm {
    /// Binds `addr` (port 0 for a free port) and serves in the background.
    pub async fn start(addr: SocketAddr, config: MockConfig) -> std::io::Result<MockLlm> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, config, async move {
            let _ = stopped.await;
        }));
        Ok(MockLlm {
            addr,
            stop: Some(stop),
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL a client is configured with (`…/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

impl Drop for MockLlm {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// An OpenAI-style error answer.
fn api_error(status: StatusCode, message: impl Into<String>, param: Option<&str>) -> Response {
    let kind = if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    let body = json!({
        "error": {"message": message.into(), "type": kind, "param": param, "code": null}
    });
    (status, axum::Json(body)).into_response()
}

// ---------------------------------------------------------------------------------------
// Answers

/// The assistant message the mock answers with, before wire encoding.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    content: Option<String>,
    calls: Vec<grammar::PlannedCall>,
}

fn text(t: impl Into<String>) -> Answer {
    Answer {
        content: Some(t.into()),
        calls: Vec::new(),
    }
}

/// The person's words of a user message: the backend puts a `<context>…</context>` data block
/// (moment, zone, open tasks) before them, which the mock's grammar does not read.
fn persons_words(text: &str) -> &str {
    match text
        .strip_prefix("<context>")
        .and_then(|t| t.split_once("</context>"))
    {
        Some((_, words)) => words.trim_start(),
        None => text,
    }
}

fn answer(req: &ChatRequest) -> Answer {
    let Some(last) = req.messages.last() else {
        return text("");
    };
    match last.role {
        Role::Tool => {
            // The results of the last round: the tool messages after the last assistant one.
            let results: Vec<String> = req
                .messages
                .iter()
                .rev()
                .take_while(|m| m.role == Role::Tool)
                .map(InMessage::text)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            text(format!("Done. {}", results.join("; ")))
        }
        Role::User => match grammar::plan(persons_words(&last.text())) {
            Plan::Text(t) => text(t),
            Plan::Calls(calls) => {
                let offered: Vec<&str> = req
                    .tools
                    .iter()
                    .flatten()
                    .map(|t| t.function.name.as_str())
                    .collect();
                match calls
                    .iter()
                    .find(|c| c.must_be_offered && !offered.contains(&c.name.as_str()))
                {
                    Some(missing) => text(format!(
                        "I can't do that: the tool {} is not available.",
                        missing.name
                    )),
                    None => Answer {
                        content: None,
                        calls,
                    },
                }
            }
        },
        Role::Assistant | Role::System | Role::Developer => text("Is there anything else?"),
    }
}

fn hex_digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The wire body of a completion. Ids derive from the request, so the same request always
/// gets the same answer (`created` aside).
fn completion_body(req: &ChatRequest, raw: &[u8], a: &Answer, prompt_tokens: u64) -> Value {
    let digest = hex_digest(raw);
    let completion_chars = a.content.as_deref().map_or(0, |c| c.chars().count())
        + a.calls
            .iter()
            .map(|c| c.name.chars().count() + c.arguments.chars().count())
            .sum::<usize>();
    let completion_tokens = (completion_chars as u64 / 4).max(1);
    let mut message = json!({"role": "assistant", "content": a.content});
    if !a.calls.is_empty() {
        message["tool_calls"] = a
            .calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                json!({
                    "id": format!("call_{}_{i}", &digest[..16]),
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                })
            })
            .collect();
    }
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    json!({
        "id": format!("chatcmpl-{}", &digest[..24]),
        "object": "chat.completion",
        "created": created,
        "model": req.model,
        "system_fingerprint": "mock-llm",
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": if a.calls.is_empty() { "stop" } else { "tool_calls" },
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    })
}

async fn completions(
    State(shared): State<Arc<Shared>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let stats = &shared.stats;
    stats.requests.fetch_add(1, Ordering::SeqCst);
    let reject = |status: StatusCode, message: String, param: Option<&str>| {
        stats.rejected.fetch_add(1, Ordering::SeqCst);
        api_error(status, message, param)
    };
    let raw = match body {
        Ok(b) => b,
        Err(e) => return reject(e.status(), e.body_text(), None),
    };
    let req: ChatRequest = match serde_json::from_slice(&raw) {
        Ok(r) => r,
        Err(e) => {
            return reject(
                StatusCode::BAD_REQUEST,
                format!("We could not parse the JSON body of your request: {e}"),
                None,
            );
        }
    };
    if let Err((message, param)) = validate(&req) {
        return reject(StatusCode::BAD_REQUEST, message, Some(param));
    }
    if let Some(f) = shared.faults.next() {
        stats.injected_failures.fetch_add(1, Ordering::SeqCst);
        let mut r = api_error(f.status, "mock-llm: injected failure", None);
        if let Some(v) = f.retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let prompt_tokens = req.messages.iter().map(InMessage::chars).sum::<usize>() as u64 / 4;
    let a = answer(&req);
    let body = completion_body(&req, &raw, &a, prompt_tokens);
    if !shared.config.latency.is_zero() {
        tokio::time::sleep(shared.config.latency).await;
    }
    stats
        .prompt_tokens
        .fetch_add(prompt_tokens, Ordering::SeqCst);
    stats.completion_tokens.fetch_add(
        body["usage"]["completion_tokens"].as_u64().unwrap_or(0),
        Ordering::SeqCst,
    );
    if req.stream == Some(true) {
        let usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
        return stream::response(stream::chunks(&body, usage), shared.config.chunk_delay);
    }
    axum::Json(body).into_response()
}

async fn models() -> axum::Json<Value> {
    axum::Json(json!({
        "object": "list",
        "data": [{"id": "mock", "object": "model", "created": 0, "owned_by": "mock-llm"}],
    }))
}

async fn stats(State(shared): State<Arc<Shared>>) -> axum::Json<Value> {
    axum::Json(shared.stats.snapshot())
}

async fn reset(State(shared): State<Arc<Shared>>) -> axum::Json<Value> {
    shared.stats.reset();
    shared.faults.clear();
    axum::Json(shared.stats.snapshot())
}

async fn set_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let plan: FaultPlan = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                format!("invalid fault plan: {e}"),
                None,
            );
        }
    };
    if plan.error_status().is_none() {
        return api_error(
            StatusCode::BAD_REQUEST,
            format!(
                "status {} is not an HTTP error status (400-599)",
                plan.status
            ),
            Some("status"),
        );
    }
    shared.faults.set(plan);
    axum::Json(shared.faults.current()).into_response()
}

async fn unknown_route(method: Method, uri: Uri) -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        format!("Unknown request URL: {method} {}.", uri.path()),
        None,
    )
}

mod faults;
mod request;
mod stream;
#[cfg(test)]
mod tests;
