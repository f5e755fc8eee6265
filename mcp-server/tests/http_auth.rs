//! `todo-mcp http` with authentication: every `/mcp` request carries a verified bearer
//! token, identity is its `sub`, refusals point at the RFC 9728 metadata, and no
//! Authorization header whatsoever produces a 5xx.

#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use todo_core::auth::{AuthSettings, ServiceCredential, Verifier};
use todo_core::tasks::{ListFilter, TaskStore};
use todo_mcp::http::{self, HttpSettings};
use todo_test_support::tokens::*;
use todo_test_support::{Kind, TestDb};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

const ISSUER: &str = "https://auth.example";
const DEADLINE: Duration = Duration::from_secs(20);

/// An authenticated todo-mcp served in-process on a loopback port.
struct Server {
    base: String,
    store: Arc<dyn TaskStore>,
    shutdown: CancellationToken,
    db: Option<TestDb>,
}

impl Server {
    async fn start() -> Server {
        let db = TestDb::new(Kind::Sqlite).await.unwrap().unwrap();
        let verifier = Verifier::new(&AuthSettings {
            jwt_secret: Some(SecretString::from(SECRET)),
            issuer: Some(ISSUER.into()),
            service_secret: Some(SecretString::from(SERVICE_SECRET)),
            ..AuthSettings::default()
        })
        .unwrap();
        let listener = http::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let local = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let app = http::router(
            db.db.task_store(),
            HttpSettings {
                allowed_hosts: todo_service::settings::allowed_hosts(local, &[]),
                allowed_origins: vec![],
                open_user: "nobody".into(),
                auth: Some(verifier),
                public_url: None,
                authorization_servers: vec![ISSUER.into()],
            },
            shutdown.clone(),
        );
        tokio::spawn(http::serve(listener, app, shutdown.clone()));
        Server {
            base: format!("http://{local}"),
            store: db.db.task_store(),
            shutdown,
            db: Some(db),
        }
    }

    fn post(&self, body: &Value) -> reqwest::RequestBuilder {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(DEADLINE)
            .build()
            .unwrap()
            .post(format!("{}/mcp", self.base))
            .header("Accept", "application/json, text/event-stream")
            .header("Content-Type", "application/json")
            .header("MCP-Protocol-Version", "2025-06-18")
            .json(body)
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(db) = self.db.take() {
            db.cleanup().await;
        }
    }
}

fn user_token(sub: &str) -> String {
    hs256(SECRET, &claims_with(sub, json!({"iss": ISSUER})))
}

fn tool_call(name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": name, "arguments": arguments}})
}

async fn result(resp: reqwest::Response) -> Value {
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["result"].clone()
}

fn all() -> ListFilter {
    ListFilter {
        status: todo_core::tasks::StatusFilter::All,
        query: None,
        tag: None,
        due_before: None,
        due_after: None,
        parent: None,
        hide_subtasks: false,
        limit: 100,
        offset: 0,
    }
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401_pointing_at_the_resource_metadata() {
    let s = Server::start().await;
    let add = tool_call("add_task", json!({"title": "smuggled"}));
    let expired = hs256(
        SECRET,
        &claims_with("alice", json!({"iss": ISSUER, "exp": now() - 3600})),
    );
    let wrong_issuer = hs256(SECRET, &claims_with("alice", json!({"iss": "https://x"})));
    let cases: Vec<(&str, Option<String>, Option<&str>)> = vec![
        ("no header", None, None),
        (
            "garbage",
            Some("Bearer garbage".into()),
            Some("invalid_token"),
        ),
        (
            "basic",
            Some("Basic YWxpY2U6cHc=".into()),
            Some("invalid_request"),
        ),
        (
            "expired",
            Some(format!("Bearer {expired}")),
            Some("invalid_token"),
        ),
        (
            "wrong issuer",
            Some(format!("Bearer {wrong_issuer}")),
            Some("invalid_token"),
        ),
        (
            "alg none",
            Some(format!("Bearer {}", unsigned(&claims("alice")))),
            Some("invalid_token"),
        ),
    ];
    let metadata_url = format!("{}/.well-known/oauth-protected-resource", s.base);
    for (case, header, code) in cases {
        let mut req = s.post(&add);
        if let Some(h) = header {
            req = req.header("Authorization", h);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{case}");
        let challenge = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            challenge.starts_with(&format!("Bearer resource_metadata=\"{metadata_url}\"")),
            "{case}: {challenge}"
        );
        match code {
            Some(c) => assert!(
                challenge.contains(&format!("error=\"{c}\"")),
                "{case}: {challenge}"
            ),
            None => assert!(!challenge.contains("error="), "{case}: {challenge}"),
        }
        let body: Value = resp.json().await.unwrap();
        assert!(body["error_description"].is_string(), "{case}: {body}");
    }
    assert!(
        s.store
            .list("alice", &all())
            .await
            .unwrap()
            .tasks
            .is_empty()
    );
    assert!(
        s.store
            .list("nobody", &all())
            .await
            .unwrap()
            .tasks
            .is_empty()
    );

    // The metadata document is public.
    let doc: Value = reqwest::get(&metadata_url)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["resource"], format!("{}/mcp", s.base));
    assert_eq!(doc["authorization_servers"], json!([ISSUER]));
    assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    let by_path: Value = reqwest::get(format!("{metadata_url}/mcp"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_path, doc);
    // Health stays open.
    assert_eq!(
        reqwest::get(format!("{}/healthz", s.base))
            .await
            .unwrap()
            .status(),
        200
    );
    s.stop().await;
}

#[tokio::test]
async fn the_caller_is_the_token_sub_and_nothing_the_client_sends_overrides_it() {
    let s = Server::start().await;
    let alice = format!("Bearer {}", user_token("alice"));
    let bob = format!("Bearer {}", user_token("bob"));
    let added = result(
        s.post(&tool_call("add_task", json!({"title": "Alice's"})))
            .header("Authorization", &alice)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(added["isError"], false, "{added}");
    assert_eq!(s.store.get("alice", 1).await.unwrap().title, "Alice's");

    // Bob sees nothing of it, cannot name alice, and cannot touch her task number.
    let listed = result(
        s.post(&tool_call("list_tasks", json!({})))
            .header("Authorization", &bob)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(listed["structuredContent"]["tasks"], json!([]));
    let impersonate = result(
        s.post(&tool_call("list_tasks", json!({"user_id": "alice"})))
            .header("Authorization", &bob)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(impersonate["isError"], true, "{impersonate}");
    let delete = result(
        s.post(&tool_call("delete_task", json!({"id": 1})))
            .header("Authorization", &bob)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(delete["isError"], true, "{delete}");
    assert!(
        delete["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("No task #1")
    );
    assert!(!s.store.get("alice", 1).await.unwrap().completed);
    assert_eq!(s.store.list("alice", &all()).await.unwrap().tasks.len(), 1);

    // The backend's service credential acts for the user it names.
    let cred = ServiceCredential::new(&SecretString::from(SERVICE_SECRET), Duration::from_secs(60));
    let service = format!(
        "Bearer {}",
        cred.token_for("carol").unwrap().expose_secret()
    );
    let added = result(
        s.post(&tool_call("add_task", json!({"title": "Carol's"})))
            .header("Authorization", &service)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(added["isError"], false, "{added}");
    assert_eq!(s.store.get("carol", 1).await.unwrap().title, "Carol's");
    s.stop().await;
}

#[test]
fn no_authorization_header_produces_a_server_error() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(Server::start());
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(DEADLINE)
        .build()
        .unwrap();
    let url = format!("{}/mcp", s.base);
    let body = serde_json::to_vec(&tool_call("list_tasks", json!({}))).unwrap();
    // The flag is not needed: every value goes to the one MCP endpoint.
    no_authorization_value_gets_a_server_error(&rt, user_token("alice"), |value, _| {
        let req = client
            .post(&url)
            .header("Accept", "application/json, text/event-stream")
            .header("Content-Type", "application/json")
            .header("Authorization", value.as_slice())
            .body(body.clone());
        async move { req.send().await.map(|r| r.status()) }
    });
    rt.block_on(s.stop());
}

#[tokio::test]
async fn the_binary_verifies_tokens_when_auth_is_configured_and_refuses_weak_secrets() {
    let db = TestDb::new(Kind::Sqlite).await.unwrap().unwrap();
    let command = |secret: &str| {
        let mut cmd = todo_test_support::process::command(env!("CARGO_BIN_EXE_todo-mcp"));
        cmd.args(["http", "--bind", "127.0.0.1:0"])
            .env("DATABASE_URL", &db.url)
            .env("AUTH_JWT_SECRET", secret)
            .env("AUTH_AUDIENCE", "todo-mcp-test")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    };

    let mut weak = command("short").spawn().unwrap();
    let status = tokio::time::timeout(DEADLINE, weak.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success());
    let mut err = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut weak.stderr.take().unwrap(), &mut err)
        .await
        .unwrap();
    assert!(
        err.contains("AUTH_JWT_SECRET must be at least 32 bytes"),
        "{err}"
    );

    // Refused at start-up, each with a message: user tokens without an audience, one secret
    // for users and the service, a leeway that would keep expired tokens alive.
    for (name, value, expected) in [
        ("AUTH_AUDIENCE", "", "AUTH_AUDIENCE"),
        ("MCP_SERVICE_SECRET", SECRET, "MCP_SERVICE_SECRET"),
        ("AUTH_LEEWAY_SECS", "86400", "AUTH_LEEWAY_SECS"),
    ] {
        let mut c = command(SECRET);
        c.env(name, value);
        let out = tokio::time::timeout(DEADLINE, c.output())
            .await
            .unwrap()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}={value:?} accepted");
        assert!(err.contains(expected), "{name}={value:?}: {err}");
    }

    let mut child = command(SECRET).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(i) = line.find("listening on http://") {
                let rest = &line[i + "listening on ".len()..];
                return rest.split_whitespace().next().unwrap().to_string();
            }
        }
        panic!("todo-mcp exited before listening");
    })
    .await
    .unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(DEADLINE)
        .build()
        .unwrap();
    let post = || {
        client
            .post(&url)
            .header("Accept", "application/json, text/event-stream")
            .header("Content-Type", "application/json")
            .json(&tool_call("list_tasks", json!({})))
    };
    assert_eq!(post().send().await.unwrap().status(), 401);
    let elsewhere = hs256(
        SECRET,
        &claims_with("alice", json!({"aud": "another-service"})),
    );
    assert_eq!(
        post()
            .bearer_auth(&elsewhere)
            .send()
            .await
            .unwrap()
            .status(),
        401,
        "a token minted for another service"
    );
    let token = hs256(
        SECRET,
        &claims_with("alice", json!({"aud": "todo-mcp-test"})),
    );
    assert_eq!(
        post().bearer_auth(&token).send().await.unwrap().status(),
        200
    );
    child.kill().await.unwrap();
    db.cleanup().await;
}
