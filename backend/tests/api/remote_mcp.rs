//! The backend with a remote todo-mcp (`MCP_SERVER_URL`): every MCP request carries the
//! backend's own short-lived credential naming the user, never the person's token.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use todo_core::tasks::TaskStore;
use todo_test_support::{Kind, TestDb};

use crate::auth::{hs256_options, send, token};
use crate::helpers::*;
use crate::tokens::*;

/// An authenticated todo-mcp on its own database, recording the Authorization headers.
struct RemoteMcp {
    url: String,
    store: Arc<dyn TaskStore>,
    seen: Arc<Mutex<Vec<String>>>,
    server: McpServer,
}

impl RemoteMcp {
    async fn start(service_secret: &str) -> RemoteMcp {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let server = McpServer::start(service_secret, |app| {
            app.layer(axum::middleware::from_fn(
                move |req: Request, next: Next| {
                    let value = req
                        .headers()
                        .get("authorization")
                        .map(|v| v.to_str().unwrap_or("").to_string())
                        .unwrap_or_default();
                    record.lock().unwrap().push(value);
                    next.run(req)
                },
            ))
        })
        .await;
        RemoteMcp {
            url: server.url.clone(),
            store: server.store.clone(),
            seen,
            server,
        }
    }

    /// A backend (on SQLite) whose tools are this server's.
    async fn app(&self) -> TestApp {
        spawn_app_with(
            Kind::Sqlite,
            remote_options(&self.url, Some(SERVICE_SECRET)),
        )
        .await
        .expect("an app on SQLite always starts")
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

fn remote_options(url: &str, service_secret: Option<&str>) -> Options {
    let mut o = hs256_options();
    o.mcp_server_url = Some(url.to_string());
    o.access.mcp_service_secret = service_secret.map(SecretString::from);
    o
}

fn payload(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn remote_tools_are_called_with_a_service_credential_naming_the_user() {
    let mcp = RemoteMcp::start(SERVICE_SECRET).await;
    let app = mcp.app().await;
    app.llm_responds(Script::new(
        &[
            ("r1", "add_task", r#"{"title":"Remote milk"}"#),
            ("r2", "add_task", r#"{"title":"for bob","user_id":"bob"}"#),
        ],
        "Added.",
    ))
    .await;
    let user_token = token("alice");
    let r = send(
        &app,
        Method::POST,
        "/api/alice/chat",
        Some(&format!("Bearer {user_token}")),
        Some(json!({"message": "add milk"})),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["tool_calls"][0]["is_error"], false, "{body}");
    assert_eq!(body["tool_calls"][1]["is_error"], true, "{body}");

    // The task was made remotely, for alice, and nothing for bob.
    assert_eq!(
        mcp.store.get("alice", 1).await.unwrap().title,
        "Remote milk"
    );
    assert!(mcp.store.get("bob", 1).await.is_err());

    let seen = mcp.seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    let mut subjects = Vec::new();
    for header in &seen {
        let t = header
            .strip_prefix("Bearer ")
            .unwrap_or_else(|| panic!("an MCP request without a bearer token: {header:?}"));
        assert_ne!(t, user_token, "the person's token was passed through");
        let claims = payload(t);
        assert_eq!(claims["iss"], "todo-backend");
        assert_eq!(claims["aud"], "todo-mcp");
        let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
        assert!(lifetime <= 120, "a short-lived credential, got {lifetime}s");
        subjects.push(claims["sub"].as_str().unwrap().to_string());
    }
    assert!(subjects.iter().any(|s| s == "alice"), "{subjects:?}");
    assert!(!subjects.iter().any(|s| s == "bob"), "{subjects:?}");
    app.cleanup().await;
    mcp.stop().await;
}

#[tokio::test]
async fn the_backend_refuses_to_start_without_a_working_service_credential() {
    let mcp = RemoteMcp::start(SERVICE_SECRET).await;
    let build = |o: Options| async move {
        let db = TestDb::new(Kind::Sqlite).await.unwrap().unwrap();
        let settings = todo_backend::config::Settings {
            database_url: Some(db.url.clone()),
            db: Default::default(),
            llm: None,
            mcp_server_url: o.mcp_server_url,
            prompt: "p".into(),
            limits: o.limits,
            max_message_chars: 100,
            max_body_bytes: 10_000,
            access: o.access,
            prices: Default::default(),
            retention: Default::default(),
        };
        let result = todo_backend::app::build_state(&settings)
            .await
            .map(|_| ())
            .map_err(|e| format!("{e:#}"));
        db.cleanup().await;
        result
    };
    let missing = build(remote_options(&mcp.url, None)).await.unwrap_err();
    assert!(missing.contains("MCP_SERVICE_SECRET"), "{missing}");
    let wrong = tokio::time::timeout(
        Duration::from_secs(30),
        build(remote_options(&mcp.url, Some(OTHER_SECRET))),
    )
    .await
    .expect("start-up gives up")
    .unwrap_err();
    assert!(wrong.contains("cannot list the tools"), "{wrong}");
    mcp.stop().await;
}

#[tokio::test]
async fn a_turn_through_a_remote_server_is_one_undo_group() {
    let mcp = RemoteMcp::start(SERVICE_SECRET).await;
    let app = mcp.app().await;
    mcp.store
        .add(
            "alice",
            todo_core::tasks::NewTask {
                title: todo_core::tasks::Title::parse("Earlier").unwrap(),
                parent: None,
                repeat: None,
                description: None,
                due: None,
                priority: Default::default(),
                tags: vec![],
            },
        )
        .await
        .unwrap();
    app.llm_responds(Script::new(
        &[
            ("r1", "add_task", r#"{"title":"One"}"#),
            ("r2", "add_task", r#"{"title":"Two"}"#),
            ("r3", "complete_task", r#"{"id":1}"#),
        ],
        "Done.",
    ))
    .await;
    let r = send(
        &app,
        Method::POST,
        "/api/alice/chat",
        Some(&format!("Bearer {}", token("alice"))),
        Some(json!({"message": "two more, and finish the first"})),
    )
    .await;
    assert_eq!(r.status(), 200);
    // Three MCP requests, one group: one undo reverts all three, and the earlier add is
    // the next group.
    let report = mcp.store.undo("alice").await.unwrap();
    assert_eq!(report.undone.len(), 3, "{report:?}");
    assert!(!mcp.store.get("alice", 1).await.unwrap().completed);
    let next = mcp.store.undo("alice").await.unwrap();
    assert_eq!(next.undone[0].task.title, "Earlier");
    app.cleanup().await;
    mcp.stop().await;
}

#[tokio::test]
async fn an_unreachable_tool_server_is_its_own_503_not_a_database_one() {
    let mcp = RemoteMcp::start(SERVICE_SECRET).await;
    let app = mcp.app().await;
    app.llm_responds(Script::new(
        &[("r1", "add_task", r#"{"title":"Milk"}"#)],
        "Added.",
    ))
    .await;
    mcp.stop().await;
    let auth = format!("Bearer {}", token("alice"));
    for (method, path, body) in [
        (
            Method::POST,
            "/api/alice/chat",
            Some(json!({"message": "add milk"})),
        ),
        (Method::GET, "/api/alice/tasks", None),
    ] {
        let r = send(&app, method, path, Some(&auth), body).await;
        assert_eq!(r.status(), 503, "{path}");
        assert!(r.headers().get("retry-after").is_some(), "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "tools_unavailable", "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("task tools"), "{path}: {message}");
        assert!(!message.contains("database"), "{path}: {message}");
    }
    app.cleanup().await;
}
