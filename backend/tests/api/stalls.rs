//! A bounded cost per turn: a remote todo-mcp that stops answering can never pin the
//! concurrency slots. One deadline covers the whole turn (opening the tool session, every
//! tool call, storage) and every MCP request has its own timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use secrecy::SecretString;
use serde_json::{Value, json};
use todo_backend::access::AccessSettings;
use todo_backend::agent::TurnLimits;
use todo_mcp::auth::{AuthSettings, Verifier};
use todo_mcp::http::{self, HttpSettings};
use todo_mcp::tasks::TaskStore;
use todo_mcp::testing::{Kind, TestDb};
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

pub const SERVICE_SECRET: &str = "a-service-secret-of-at-least-32-bytes!!";

/// How the stub todo-mcp behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Answer = 0,
    /// Never answers anything (not even the session handshake).
    StallAll = 1,
    /// Answers everything but `tools/call` of `add_task`.
    StallToolCalls = 2,
    /// Runs `tools/call` of `add_task` but never sends the result back.
    HoldToolResults = 3,
}

/// A real todo-mcp (service credential required) behind a switch that can make it stall.
pub struct StallingMcp {
    pub url: String,
    pub store: Arc<dyn TaskStore>,
    mode: Arc<AtomicU8>,
    /// Tool calls executed while results were held back.
    pub held: Arc<AtomicUsize>,
    shutdown: CancellationToken,
    db: TestDb,
}

impl StallingMcp {
    pub async fn start() -> StallingMcp {
        let db = TestDb::new(Kind::Sqlite).await.unwrap().unwrap();
        let verifier = Verifier::new(&AuthSettings {
            service_secret: Some(SecretString::from(SERVICE_SECRET)),
            ..AuthSettings::default()
        })
        .unwrap();
        let listener = http::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let local = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let mode = Arc::new(AtomicU8::new(Mode::Answer as u8));
        let held = Arc::new(AtomicUsize::new(0));
        let (m, h) = (mode.clone(), held.clone());
        let app = http::router(
            db.db.task_store(),
            HttpSettings {
                allowed_hosts: todo_mcp::settings::allowed_hosts(local, &[]),
                allowed_origins: vec![],
                open_user: "nobody".into(),
                auth: Some(verifier),
                public_url: None,
                authorization_servers: vec![],
            },
            shutdown.clone(),
        )
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let (mode, held) = (m.clone(), h.clone());
                async move {
                    let (parts, body) = req.into_parts();
                    let bytes = axum::body::to_bytes(body, 1 << 20)
                        .await
                        .unwrap_or_default();
                    // Only calls that change something: reads (the open-task view) still answer.
                    let text = String::from_utf8_lossy(&bytes);
                    let is_call = text.contains("\"tools/call\"") && text.contains("\"add_task\"");
                    let req = Request::from_parts(parts, Body::from(bytes));
                    match mode.load(Ordering::SeqCst) {
                        1 => std::future::pending().await,
                        2 if is_call => std::future::pending().await,
                        3 if is_call => {
                            let _ran = next.run(req).await;
                            held.fetch_add(1, Ordering::SeqCst);
                            std::future::pending().await
                        }
                        _ => next.run(req).await,
                    }
                }
            },
        ));
        tokio::spawn(http::serve(listener, app, shutdown.clone()));
        StallingMcp {
            url: format!("http://{local}/mcp"),
            store: db.db.task_store(),
            mode,
            held,
            shutdown,
            db,
        }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.db.cleanup().await;
    }
}

/// A backend on `mcp` with one concurrency slot.
fn options(mcp: &StallingMcp, turn: u64, per_request: u64) -> Options {
    Options {
        mcp_server_url: Some(mcp.url.clone()),
        limits: TurnLimits {
            turn_timeout: Duration::from_secs(turn),
            mcp_request_timeout: Duration::from_secs(per_request),
            ..TurnLimits::default()
        },
        access: AccessSettings {
            mcp_service_secret: Some(SecretString::from(SERVICE_SECRET)),
            single_user_dev: true,
            max_concurrent_turns: 1,
            ..AccessSettings::default()
        },
        ..Options::default()
    }
}

async fn status_and_body(r: reqwest::Response) -> (u16, Value) {
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_todo_mcp_that_never_answers_ends_the_turn_at_its_deadline_and_frees_the_slot() {
    let mcp = StallingMcp::start().await;
    let Some(app) = spawn_app_with(Kind::Sqlite, options(&mcp, 2, 600)).await else {
        return;
    };
    app.llm_responds(Script::new(
        &[("c1", "add_task", r#"{"title":"Milk"}"#)],
        "Added.",
    ))
    .await;

    // Opening the tool session stalls: the turn ends at its deadline.
    mcp.set(Mode::StallAll);
    let (status, body) =
        status_and_body(app.chat("alice", json!({"message": "add milk"})).await).await;
    assert!(matches!(status, 503 | 504), "{status} {body}");

    // The session opens but the tool call stalls: the turn still ends at its deadline,
    // with the call recorded and answered in the history.
    mcp.set(Mode::StallToolCalls);
    let (status, body) =
        status_and_body(app.chat("alice", json!({"message": "add milk"})).await).await;
    assert_eq!(status, 504, "{body}");

    // The one slot is free again: new turns run, and the stalled conversation continues.
    mcp.set(Mode::Answer);
    let (status, body) =
        status_and_body(app.chat("alice", json!({"message": "add milk"})).await).await;
    assert_eq!(status, 200, "{body}");
    let list = app.get_json("/api/alice/conversations").await;
    let ids: Vec<String> = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        let r = app
            .chat(
                "alice",
                json!({"message": "and now?", "conversation_id": id}),
            )
            .await;
        let (status, body) = status_and_body(r).await;
        assert_eq!(status, 200, "conversation {id}: {body}");
    }
    for req in app.llm_requests().await {
        assert_valid_sequence(&req["messages"]);
    }
    app.cleanup().await;
    mcp.stop().await;
}

#[tokio::test]
async fn each_mcp_request_has_its_own_timeout_and_the_model_is_told() {
    let mcp = StallingMcp::start().await;
    let Some(app) = spawn_app_with(Kind::Sqlite, options(&mcp, 30, 1)).await else {
        return;
    };
    app.llm_responds(Script::new(
        &[("c1", "add_task", r#"{"title":"Milk"}"#)],
        "It did not work.",
    ))
    .await;
    mcp.set(Mode::StallToolCalls);
    let (status, body) =
        status_and_body(app.chat("alice", json!({"message": "add milk"})).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tool_calls"][0]["is_error"], true, "{body}");
    assert!(
        body["tool_calls"][0]["result"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("did not answer within 1 s"),
        "{body}"
    );
    app.cleanup().await;
    mcp.stop().await;
}
